"""The core `search_knowledge` tool, on every agent of every version (added by `agents.registry.register`).

It searches the documents of the run's client and the instance's own (issue #17, DESIGN §12) and
returns ranked passages, each with the citation the answer quotes and a link the admin opens. A
run without a client searches the instance's documents only; a run never sees another client's.
It only reads, so it is not a side effect and runs the same in sandbox mode.
"""

from __future__ import annotations

import dataclasses

from .registry import AgentSpec, ToolContext, ToolError, ToolSpec

SEARCH_KNOWLEDGE = "search_knowledge"
KINDS = ("brand_guidelines", "style_guide", "past_work", "reference", "other")


def search_knowledge(ctx: ToolContext, tool_input: dict) -> dict:
    from spokestack.errors import DomainError
    from tuning.knowledge.selectors import knowledge_search

    try:
        passages = knowledge_search(query=tool_input["query"], client=ctx.client, kinds=tool_input.get("kinds"),
                                    limit=tool_input.get("limit", 5))
    except DomainError as exc:
        raise ToolError(exc.message) from exc
    if not passages:
        return {"passages": [], "note": "No document matched. Try other words (a product name, a section title), "
                                        "or answer without documents and say that none covered this."}
    return {"passages": [{"citation": p.citation, "excerpt": p.excerpt, "document": p.title, "kind": p.kind,
                          "page": p.page, "section": p.heading, "score": p.score, "url": p.url,
                          "document_id": p.document_id} for p in passages],
            "note": "Cite what you use as (Source: <citation>)."}


SEARCH_KNOWLEDGE_TOOL = ToolSpec(
    name=SEARCH_KNOWLEDGE,
    description=(
        "Search the agency's and this client's documents (brand guidelines, style guides, past work, references) "
        "for passages about a topic, e.g. 'tone of voice' or a product name. Returns the best passages, each with "
        "its citation (document, page, section) and a link; cite the ones you use. Empty when no document matches."),
    input_schema={
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1, "maxLength": 300,
                      "description": "What to look for: a few words, a product name or a question."},
            "kinds": {"type": "array", "items": {"type": "string", "enum": list(KINDS)}, "uniqueItems": True,
                      "description": "Only these kinds of document; all kinds when left out."},
            "limit": {"type": "integer", "minimum": 1, "maximum": 10, "default": 5,
                      "description": "How many passages at most."},
        },
        "required": ["query"], "additionalProperties": False,
    },
    handler=search_knowledge,
)


def scoped_search_knowledge(kinds) -> ToolSpec:
    """`search_knowledge` limited to some kinds of document (an agency-built agent's knowledge scopes):
    the model is offered only those kinds, a search without kinds searches those, and asking for
    another kind is an error naming the allowed ones."""
    allowed = tuple(k for k in KINDS if k in set(kinds))

    def handler(ctx: ToolContext, tool_input: dict) -> dict:
        asked = tool_input.get("kinds") or list(allowed)
        outside = [k for k in asked if k not in allowed]
        if outside:
            raise ToolError(f"kinds: this agent reads only {', '.join(allowed)}; leave kinds out to search them.")
        return search_knowledge(ctx, {**tool_input, "kinds": asked})

    schema = dict(SEARCH_KNOWLEDGE_TOOL.input_schema)
    properties = dict(schema["properties"])
    properties["kinds"] = {**properties["kinds"], "items": {"type": "string", "enum": list(allowed)},
                           "description": "Only these of the kinds this agent reads; all of them when left out."}
    schema["properties"] = properties
    return dataclasses.replace(SEARCH_KNOWLEDGE_TOOL, input_schema=schema, handler=handler,
                               description=SEARCH_KNOWLEDGE_TOOL.description.replace(
                                   "(brand guidelines, style guides, past work, references)",
                                   f"(only: {', '.join(k.replace('_', ' ') for k in allowed)})"))


KNOWLEDGE_PROMPT = (
    "\n## Knowledge and sources\nWhen the work depends on the client's brand guidelines, style guide or past work, "
    "look it up with search_knowledge rather than assuming it. Cite every passage you rely on as (Source: "
    "<citation>), with the citation the tool returned; never cite a document you did not read.\n")


def with_knowledge_tool(spec: AgentSpec) -> AgentSpec:
    """The spec with the core knowledge tool added (once), and its base prompt telling it to cite."""
    if spec.tool(SEARCH_KNOWLEDGE) is not None:
        return spec
    return dataclasses.replace(spec, tools=(*spec.tools, SEARCH_KNOWLEDGE_TOOL),
                               base_prompt=spec.base_prompt + KNOWLEDGE_PROMPT)
