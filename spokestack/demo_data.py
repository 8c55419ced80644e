"""The demo's fixed data, importable without Django (the launcher prints it)."""

from __future__ import annotations

from dataclasses import dataclass

DEMO_PASSWORD = "spokestack-demo"  # noqa: S105 - the local demo's documented password
PLATFORM_HOST = "localhost"
PLATFORM_ADMIN = "platform@spokestack.localhost"


@dataclass(frozen=True)
class DemoInstance:
    schema: str
    name: str
    host: str
    tier: str
    region: str
    language: str
    timezone: str
    clients: tuple[tuple[str, str, str, str], ...]  # name, vertical, region, language
    demo_agent: str = "copy"
    demo_task: str = ""

    @property
    def admin_email(self) -> str:
        return f"admin@{self.host}"


DEMO_INSTANCES = (
    DemoInstance("alpha", "Agency Alpha", "alpha.localhost", "enterprise", "GCC", "ar", "Asia/Dubai",
                 (("Desert Bloom Cosmetics", "beauty", "GCC", "ar"), ("Gulf Bank", "finance", "GCC", "en")),
                 "copy", "Write three Instagram captions for Desert Bloom's Ramadan glow collection and check them "
                 "against the brand rules before saving the best one as a draft."),
    DemoInstance("beta", "Agency Beta", "beta.localhost", "professional", "EU", "en", "Europe/London",
                 (("Thames Outfitters", "fashion", "EU", "en"), ("Covent Kitchen", "food", "EU", "en")),
                 "brief", "Create a creative brief for Thames Outfitters' autumn outerwear launch in the UK."),
    DemoInstance("gamma", "Agency Gamma", "gamma.localhost", "professional", "US", "en", "America/New_York",
                 (("Hudson Cloud", "technology", "US", "en"), ("Brooklyn Health", "healthcare", "US", "en")),
                 "media_buying", "Recommend a bid strategy and forecast a $50,000 budget for Hudson Cloud's Q1 "
                 "lead-generation campaign, then save the plan."),
)

# Tier-3 tuning for each instance's first client, so the prompt preview and the runs show it:
# (brand voice, a never rule, an approved example (kind, text)).
DEMO_CLIENT_TUNING = {
    "alpha": ("Warm, confident and poetic; celebrates Arabian heritage and modern women.",
              "Never use discount or urgency language such as '% off', 'sale' or 'hurry'.",
              ("caption", "Glow gently through the holy month: oud, rose and a little light.")),
    "beta": ("Understated British tailoring; dry wit, no exclamation marks.",
             "Never claim a garment is waterproof unless it is rated 10,000 mm or more.",
             ("headline", "Built for the walk home, not the catwalk.")),
    "gamma": ("Clear, technical and calm; numbers before adjectives.",
              "Never promise 100% uptime or 'zero downtime'.",
              ("email subject", "Your cluster, 38% cheaper to run by Q2")),
}

# The sample ERP's demo keys per agency (spokestack.sample_erp.DEMO_API_KEYS).
DEMO_ERP_AGENCY = {"alpha": "alpha", "beta": "beta", "gamma": "gamma"}

# The demo's webhook skill, one per instance for the copy agent, served by the sample ERP
# (`POST /hooks/competitor-check`, authenticated with the agency's ERP key). Its description
# shares words with Alpha's copy task, so the offline model calls it in that demo run.
DEMO_SKILL_NAME = "competitor_check"
DEMO_SKILL_PATH = "/hooks/competitor-check"
DEMO_SKILL_AGENT_TYPES = ("copy",)
DEMO_SKILL_DESCRIPTION = (
    "Check draft copy (captions, headlines, posts) against the agency's ERP for names of the "
    "client's competitors before saving it. Returns the competitors found in the text; rewrite "
    "the copy if any are named.")
DEMO_SKILL_INPUT_SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string", "description": "The copy to check.", "minLength": 1,
                            "maxLength": 10000}},
    "required": ["text"],
}

# The guide's upgrade scenario (§9.12, §9.14) in one agency: Gamma runs media buying 2.3.1, optimises
# for performance and ROAS, has a `roas_optimizer` webhook skill that compensates for 2.3's bidding and
# reviews every update (policy staged); 2.4.0 optimises for reach and changes the default bid strategy,
# so the impact analysis marks it caution and it waits for review. Its description shares no word with
# Gamma's demo task, so the offline model does not call it in that run.
DEMO_VERSIONS_SCHEMA = "gamma"
DEMO_VERSIONS_AGENT = "media_buying"
DEMO_VERSIONS_FROM = "2.3.1"
DEMO_VERSIONS_TO = "2.4.0"
DEMO_VERSIONS_PREFERENCES = ("performance", "roas")
DEMO_ROAS_SKILL_NAME = "roas_optimizer"
DEMO_ROAS_SKILL_PATH = "/hooks/roas-optimizer"
DEMO_ROAS_SKILL_RELIES_ON = ("recommend_bid_strategy",)
DEMO_ROAS_SKILL_DESCRIPTION = (
    "Optimises toward a target ROAS from conversion value data in the agency's ERP: returns the ROAS target and "
    "the average order value to give when the objective is sales.")
DEMO_ROAS_SKILL_INPUT_SCHEMA = {
    "type": "object",
    "properties": {"client": {"type": "string", "description": "The client's name.", "minLength": 1,
                              "maxLength": 200}},
    "required": ["client"],
}
