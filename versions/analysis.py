"""Impact analysis of a core-agent update on one instance (DESIGN §8). Pure: no database.

It compares two registered versions of an agent type and checks the changes against the
instance's skills and optimization preferences. The rules, from the guide:

* a new core tool with a skill's name → critical (the model would see two tools of one name);
* a removed core tool a skill relies on → critical;
* a modified core tool whose description overlaps a skill's purpose → review;
* a behaviour change a skill may assume (the skill's text overlaps the change) → review;
* the version optimises for something the instance's preferences conflict with → caution.

Recommendation: caution if anything is critical or the optimization conflicts, review if
anything needs review or the release is breaking, else safe.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from agents.registry import AgentSpec, _semver_key, get_spec, versions

# The guide's conflict pairs (symmetric).
OPTIMIZATION_CONFLICTS: dict[str, frozenset[str]] = {
    "reach": frozenset({"performance", "roas", "conversions"}),
    "brand_awareness": frozenset({"direct_response", "conversions"}),
}
OPTIMIZATION_TAGS = frozenset({"reach", "brand_awareness", "performance", "roas", "conversions", "direct_response",
                               "cpa", "engagement", "awareness", "traffic", "quality", "speed", "cost"})
OVERLAP_THRESHOLD = 0.3

_STOPWORDS = frozenset(
    "a an and are as at be by for from has have in into is it its of on or our that the their this to was "
    "with when what which will give use used uses using returns return any one more than not only all each "
    "who how you your them they then also new now".split())


def optimization_conflict(a: str, b: str) -> bool:
    return b in OPTIMIZATION_CONFLICTS.get(a, ()) or a in OPTIMIZATION_CONFLICTS.get(b, ())


def words(text: str) -> frozenset[str]:
    tokens = re.findall(r"[a-z0-9]+", text.lower())
    return frozenset(t[:-1] if len(t) > 4 and t.endswith("s") else t
                     for t in tokens if len(t) > 2 and t not in _STOPWORDS)


def overlap(a: str, b: str) -> float:
    """Share of the smaller text's words found in the other (0..1): short skill descriptions
    against long tool descriptions, so Jaccard would understate a clear match."""
    wa, wb = words(a), words(b)
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / min(len(wa), len(wb))


@dataclass(frozen=True)
class SkillFacts:
    name: str
    description: str
    relies_on_tools: tuple[str, ...] = ()


@dataclass
class ReleaseDelta:
    """What changed from one version to a later one, over every release in between."""

    added: dict[str, str] = field(default_factory=dict)  # tool -> description (new version)
    removed: dict[str, str] = field(default_factory=dict)
    modified: dict[str, str] = field(default_factory=dict)  # tool -> summary of the change
    descriptions: dict[str, str] = field(default_factory=dict)  # every tool of the new version
    behaviour_changes: list[str] = field(default_factory=list)
    prompt_changes: list[str] = field(default_factory=list)
    deprecations: list[str] = field(default_factory=list)
    breaking: bool = False
    optimization_tags: list[str] = field(default_factory=list)
    notes: str = ""


def release_delta(agent_type: str, from_version: str, to_version: str) -> ReleaseDelta:
    old, new = get_spec(agent_type, from_version), get_spec(agent_type, to_version)
    if old is None or new is None:
        raise LookupError(f"{agent_type} {from_version} → {to_version}")
    delta = ReleaseDelta(optimization_tags=list(new.release.optimization_tags), notes=new.release.notes)
    old_tools = {t.name: t for t in old.tools}
    new_tools = {t.name: t for t in new.tools}
    delta.descriptions = {name: t.description for name, t in new_tools.items()}
    delta.added = {n: t.description for n, t in new_tools.items() if n not in old_tools}
    delta.removed = {n: t.description for n, t in old_tools.items() if n not in new_tools}
    for name, tool in new_tools.items():
        if name in old_tools and old_tools[name] is not tool:
            delta.modified[name] = "The tool changed."
    low, high = _semver_key(from_version), _semver_key(to_version)
    between: list[AgentSpec] = [get_spec(agent_type, v) for v in versions(agent_type) if low < _semver_key(v) <= high]
    for spec in between:
        info = spec.release
        delta.breaking = delta.breaking or info.breaking
        delta.behaviour_changes += list(info.behaviour_changes)
        delta.prompt_changes += list(info.prompt_changes)
        delta.deprecations += list(info.deprecations)
        for change in info.tool_changes:
            if change.kind == "modified" and change.tool in new_tools:
                delta.modified[change.tool] = change.summary
    return delta


def analyse_impact(*, agent_type: str, from_version: str, to_version: str, skills: Iterable[SkillFacts],
                   preferences: Iterable[str]) -> dict:
    """The analysis as stored on the notification and shown in the API and the admin."""
    delta = release_delta(agent_type, from_version, to_version)
    conflicts: list[dict] = []
    affected: dict[str, list[str]] = {}

    def conflict(severity: str, kind: str, skill: str, detail: str) -> None:
        conflicts.append({"severity": severity, "kind": kind, "skill": skill, "detail": detail})
        affected.setdefault(skill, []).append(kind)

    for skill in skills:
        text = f"{skill.name.replace('_', ' ')} {skill.description}"
        if skill.name in delta.added:
            conflict("critical", "name_collision", skill.name,
                     f"{agent_type} {to_version} adds a core tool named {skill.name}; rename the skill before updating.")
        for tool in skill.relies_on_tools:
            if tool in delta.removed:
                conflict("critical", "removed_tool", skill.name,
                         f"The skill relies on {tool}, which {to_version} removes.")
        for tool, summary in delta.modified.items():
            score = overlap(text, f"{tool.replace('_', ' ')} {delta.descriptions[tool]} {summary}")
            if tool in skill.relies_on_tools or score >= OVERLAP_THRESHOLD:
                conflict("review", "modified_tool_overlap", skill.name,
                         f"{tool} changed ({summary}) and overlaps what the skill does (similarity {score:.2f}).")
        for change in delta.behaviour_changes:
            if overlap(text, change) >= OVERLAP_THRESHOLD:
                conflict("review", "behaviour_change", skill.name,
                         f"Behaviour change the skill may assume otherwise: {change}.")

    prefs = [p for p in preferences if p]
    mismatches = [{"instance": p, "version": t} for p in prefs for t in delta.optimization_tags
                  if optimization_conflict(p, t)]
    critical = [c for c in conflicts if c["severity"] == "critical"]
    review = [c for c in conflicts if c["severity"] == "review"]
    if critical:
        recommendation = "caution"
        reason = "Critical conflicts: " + "; ".join(c["detail"] for c in critical)
    elif mismatches:
        recommendation = "caution"
        pairs = ", ".join(f"{m['instance']} vs {m['version']}" for m in mismatches)
        reason = (f"Optimization mismatch: this instance optimises for {', '.join(prefs)} and {to_version} optimises "
                  f"for {', '.join(delta.optimization_tags)} ({pairs}).")
    elif review or delta.breaking:
        recommendation = "review"
        reason = "; ".join(c["detail"] for c in review) or f"{to_version} is a breaking release."
    else:
        recommendation = "safe"
        reason = "No conflicts with this instance's skills or preferences."
    if mismatches and critical:
        reason += " Optimization mismatch: " + ", ".join(f"{m['instance']} vs {m['version']}" for m in mismatches) + "."
    return {
        "agent_type": agent_type, "from_version": from_version, "to_version": to_version,
        "recommendation": recommendation, "reason": reason, "conflicts": conflicts,
        "affected_skills": sorted(affected),
        "optimization": {"instance": prefs, "version": delta.optimization_tags, "mismatches": mismatches},
        "changes": {"added": sorted(delta.added), "removed": sorted(delta.removed),
                    "modified": [{"tool": t, "summary": s} for t, s in sorted(delta.modified.items())],
                    "behaviour_changes": delta.behaviour_changes, "prompt_changes": delta.prompt_changes,
                    "deprecations": delta.deprecations, "breaking": delta.breaking},
        "notes": delta.notes,
    }


def notification_text(analysis: dict) -> str:
    """The update notification (markdown), as in the guide: what's new, changes, impact, affected
    skills, conflicts, next steps."""
    a, ch = analysis, analysis["changes"]
    lines = [f"# {a['agent_type']} {a['to_version']} is available (you run {a['from_version']})", "",
             "## What's new", a["notes"] or "(no release notes)", "", "## Changes"]
    lines += [f"- Added tool `{t}`" for t in ch["added"]]
    lines += [f"- Removed tool `{t}`" for t in ch["removed"]]
    lines += [f"- Changed tool `{m['tool']}`: {m['summary']}" for m in ch["modified"]]
    lines += [f"- Behaviour: {b}" for b in ch["behaviour_changes"]]
    lines += [f"- Deprecated: {d}" for d in ch["deprecations"]]
    lines += ["", "## Impact on this instance", f"**Recommendation: {a['recommendation'].upper()}** — {a['reason']}", "",
              "## Affected skills", *([f"- {s}" for s in a["affected_skills"]] or ["- none"]), "", "## Conflicts",
              *([f"- [{c['severity']}] {c['skill']}: {c['detail']}" for c in a["conflicts"]] or ["- none"])]
    for m in a["optimization"]["mismatches"]:
        lines.append(f"- [caution] optimization: you prefer {m['instance']}, the version optimises for {m['version']}")
    lines += ["", "## Next steps",
              "- Test it in the sandbox on your own tasks (current and new version side by side).",
              "- Approve to update, reject to stay on your current version (pinned), or defer the decision.",
              "- You can roll back to any earlier version at any time."]
    return "\n".join(lines)
