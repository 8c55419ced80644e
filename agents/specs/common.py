"""What every core agent spec shares: the prompt's frame and the knowledge tables."""

from __future__ import annotations

from agents.knowledge import KNOWLEDGE

__all__ = ["KNOWLEDGE", "base_prompt"]

_WORKFLOW = """\
## How you work: Think → Act → Create
1. Think: restate the task in one line, note what you know (client, market, language, constraints) and what \
you still need. If something essential is missing and no tool can supply it (for example which client the work \
is for), ask one clear question instead of guessing.
2. Act: call tools to get facts instead of assuming them. Call independent tools in the same turn. Read every \
tool result; when a tool returns an error, read its message, fix the input or take the alternative it suggests, \
and do not repeat an identical failing call.
3. Create: produce the deliverable from those facts, then check it against the client's rules before you save it."""

_RULES = """\
## Ground rules
- Facts, numbers, names and dates come from tool results or the task; never invent case studies, KPIs or people.
- Client rules (never / always / prefer / competitors) bind every word you write; a competitor is never named \
unless the task explicitly asks for a comparison and the client allows it.
- Tools that write (save, create, draft) change the agency's systems: call them once, with the final version, \
and only when the task asks for a saved result or the work is complete.
- Write in the run's language; follow the specialization notes below for market, regulation and culture."""


def base_prompt(*, role: str, tools: str, output: str, extra: str = "") -> str:
    """A base prompt in the shared frame: role, workflow, tool guide, rules, output format.

    Byte-stable by construction (no dates, no per-run text): the assembler caches on it.
    """
    parts = [role.strip(), _WORKFLOW, "## Tools\n" + tools.strip(), _RULES]
    if extra.strip():
        parts.append(extra.strip())
    parts.append("## Output\n" + output.strip())
    return "\n\n".join(parts) + "\n"
