"""A small, real platform catalog (tier 1) for the tuning tests, the benchmark and the browser
test's daphne (pinned there with TUNING_PLATFORM_CATALOG=tests.tuning.catalog.CATALOG)."""

from __future__ import annotations

from tuning.assembly import PlatformTier


def _tool(name: str, description: str, **properties: dict) -> dict:
    return {"name": name, "description": description,
            "input_schema": {"type": "object", "properties": properties, "required": sorted(properties)}}


COPY = PlatformTier(
    agent_type="copy",
    version="1.2.0",
    base_prompt="You are the agency's copywriter. Write copy that fits the brief and the brand.",
    tools=(
        _tool("search_projects", "Find past projects of the client.", query={"type": "string"}),
        _tool("draft_document", "Save a draft for review.", title={"type": "string"}, body={"type": "string"}),
        _tool("publish_post", "Publish a social post.", text={"type": "string"}),
        _tool("brand_check", "Check a text against the client's rules.", text={"type": "string"}),
    ),
    knowledge={
        "vertical": {"beauty": "Beauty buyers respond to texture, ritual and proof of results.",
                     "finance": "Finance copy must be accurate and carry the required disclaimers."},
        "region": {"GCC": "Respect local customs; Ramadan campaigns need particular care."},
        "language": {"ar": "Write in Modern Standard Arabic unless told otherwise."},
    },
    max_effort="high",
    max_tokens_limit=8192,
    default_effort="medium",
    default_max_tokens=2048,
    confirmation_patterns=("delete_*", "publish_*"),
    content_filters=("hate", "self_harm"),
)

RFP = PlatformTier(
    agent_type="rfp",
    version="2.0.1",
    base_prompt="You answer requests for proposals with the agency's credentials and past work.",
    tools=(
        _tool("search_projects", "Find past projects of the client.", query={"type": "string"}),
        _tool("team_lookup", "Find people with a skill.", skill={"type": "string"}),
        _tool("delete_draft", "Delete a draft.", draft_id={"type": "string"}),
    ),
    knowledge={"vertical": {}, "region": {}, "language": {}},
    max_effort="high",
    max_tokens_limit=16000,
    default_effort="",
    default_max_tokens=4096,
    confirmation_patterns=("delete_*",),
    content_filters=("hate",),
)


class FixtureCatalog:
    def __init__(self, *tiers: PlatformTier) -> None:
        self._tiers = {tier.agent_type: tier for tier in tiers}

    def agent_types(self) -> list[str]:
        return sorted(self._tiers)

    def versions(self, agent_type: str) -> list[str]:
        return [self._tiers[agent_type].version] if agent_type in self._tiers else []

    def platform_tier(self, agent_type: str, version: str | None = None) -> PlatformTier:
        return self._tiers[agent_type]

    def tool_names(self) -> dict[str, frozenset[str]]:
        return {t: frozenset(tool["name"] for tool in tier.tools) for t, tier in self._tiers.items()}


CATALOG = FixtureCatalog(COPY, RFP)
