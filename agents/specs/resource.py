"""The resource agent: team capacity, skills and allocations from the agency's resourcing system.

It answers the questions a resource manager gets all day ("who can take 20 hours of Arabic copy
from January?", "can we staff this pitch?") from the ERP's own numbers, proposes a staffing plan
without writing anything, and books allocations only when asked, through the ERP's capacity check.
"""

from __future__ import annotations

from agents.checks import UNVERIFIABLE_GUARANTEES
from agents.registry import AgentSpec, ReleaseInfo, ToolChange, ToolSpec, register
from agents.tools import resource as tools

from .common import KNOWLEDGE, base_prompt

get_team_capacity = ToolSpec(
    name="get_team_capacity",
    description=(
        "Read the team's weekly capacity from the ERP: per person and per week (Mondays), contracted hours, time "
        "off (holidays, leave, shorter Ramadan days), available, booked and free hours, the bookings behind the "
        "booked hours (client, project, tentative or confirmed) and totals with utilisation. Filter by role, "
        "person_id and dates (from/to). Use it to answer 'who is busy when' and to check a plan against real "
        "hours. Bookings for clients this run may not see are summed as other_clients_hours, unnamed."),
    input_schema=tools.TEAM_CAPACITY_SCHEMA,
    handler=tools.get_team_capacity,
    settings=tools.TEAM_CAPACITY_SETTINGS,
)
get_skills_matrix = ToolSpec(
    name="get_skills_matrix",
    description=(
        "Read the agency's skills matrix from the ERP: each person's skills with a level from 1 (learning) to 5 "
        "(expert, can lead), and an index skill → people, best first. Filter by skill, min_level or person_id. "
        "Call it to learn the skill names the ERP uses before searching for people, or to judge whether someone "
        "is senior enough to lead a piece of work."),
    input_schema=tools.SKILLS_SCHEMA,
    handler=tools.get_skills_matrix,
)
find_available_people = ToolSpec(
    name="find_available_people",
    description=(
        "Find who can do a piece of work: people with the skill at min_level or above, ranked by fit (free for "
        "hours_per_week in every week from `from` to `to`), then skill level, then free hours in their tightest "
        "week. Returns each person's free hours per week and the weeks they fall short and by how much. Use it "
        "for one role; for several roles at once use propose_allocation."),
    input_schema=tools.FIND_AVAILABLE_SCHEMA,
    handler=tools.find_available_people,
    settings=tools.UTILISATION_SETTING,
)
propose_allocation = ToolSpec(
    name="propose_allocation",
    description=(
        "Propose a staffing plan for a project without booking anything: give each need (skill, hours_per_week, "
        "from, to, min_level, role) and get the best assignment, deterministic, scarcest skill first, never "
        "promising a person's hours twice; a need nobody can cover alone may be split between two people. Returns "
        "assignments, unfilled needs with the best candidate and their shortfall per week, and overbooking "
        "warnings. Show it to the user, then book with save_allocation."),
    input_schema=tools.PROPOSE_SCHEMA,
    handler=tools.propose_allocation,
    settings=tools.UTILISATION_SETTING,
)
save_allocation = ToolSpec(
    name="save_allocation",
    description=(
        "Book a person on a client's project in the ERP (a write: one call per person and period, only when the "
        "user asked for the booking). The ERP checks the person exists, the dates and that the hours fit the "
        "person's free hours in every week; when they do not it refuses and names each week over and by how "
        "much, so change the hours, dates or person and try again. New bookings are tentative until a resource "
        "manager confirms them. Returns the allocation id; in sandbox mode what it would have booked."),
    input_schema=tools.SAVE_ALLOCATION_SCHEMA,
    handler=tools.save_allocation,
    side_effect=True,
    settings=tools.SAVE_ALLOCATION_SETTINGS,
)

PROMPT = base_prompt(
    role=("You are SpokeStack's resource agent, the agency's resource manager. You match work to people: who has "
          "the skills, who has the hours, and what a staffing plan costs the rest of the agency's commitments. You "
          "protect people from overbooking as carefully as you protect deadlines."),
    tools="""\
- get_skills_matrix: to learn the ERP's skill names and who is senior enough (levels 1-5) before searching.
- get_team_capacity: weekly available, booked and free hours per person; the bookings behind them.
- find_available_people: ranked candidates for one role (skill, hours a week, dates).
- propose_allocation: a complete staffing plan for several roles at once, without booking anything.
- save_allocation: book one person on a client's project; only when the user asked for bookings, once per \
person and period, after a proposal the user has seen or approved.""",
    extra="""\
## Resourcing rules
- Hours come from the ERP, never from estimates: quote free hours per week, not averages over a period that hide \
a full week.
- Holidays and leave matter: a week with a public holiday, leave or shorter working days (Ramadan in the Gulf) has \
fewer hours; say so when it changes the plan.
- Prefer one person per role; split a role only when nobody is free enough, and say who leads it.
- Never book someone over their free hours to make a plan fit. If the ERP refuses a booking, report the weeks and \
hours it names and offer options (other dates, fewer hours, another person, a freelancer).
- Tentative bookings are holds: they count as booked. Name another client's project only if the tool showed it; \
work for clients this run may not see appears as other_clients_hours and stays unnamed.""",
    output="""\
A staffing answer in markdown: the need restated (roles, hours a week, dates); the proposed people with skill \
level and free hours per week; gaps and risks (unfilled needs, weeks short, holidays, utilisation above target) \
with options; then, if you booked, each allocation id and its status (tentative until confirmed).""",
)

RESOURCE_1_0_0 = register(AgentSpec(
    agent_type="resource", version="1.0.0", title="Resourcing",
    description="Plans team capacity and staffing from the ERP's skills, contracts, holidays and bookings.",
    base_prompt=PROMPT,
    tools=(get_team_capacity, get_skills_matrix, find_available_people, propose_allocation, save_allocation),
    knowledge=KNOWLEDGE, max_tokens=3072, time_limit_s=600, cost_ceiling_usd=1.5,
    content_filters=(UNVERIFIABLE_GUARANTEES,),
    release=ReleaseInfo(
        release_date="2026-12-01", optimization_tags=("utilisation", "delivery_planning"),
        notes="## Resourcing 1.0.0\n\nA new core agent for team capacity and allocation, on the ERP's resourcing "
              "module.\n\n- **`get_team_capacity`**: weekly contracted, time-off, available, booked and free hours "
              "per person, with the bookings behind them (other clients' work summed, unnamed).\n"
              "- **`get_skills_matrix`**: person × skill levels 1–5.\n"
              "- **`find_available_people`**: candidates for one role ranked by fit, level and free hours.\n"
              "- **`propose_allocation`**: a deterministic staffing plan for several roles, splits and unfilled "
              "needs, no writes.\n"
              "- **`save_allocation`**: books tentative allocations with an idempotency key; the ERP refuses "
              "overbooking and names the weeks over.\n\n### Agency settings\n- `max_utilisation` (find and "
              "propose), `weeks_shown` and `show_bookings` (capacity), `allow_overbooking` and `max_weeks` (save).",
        tool_changes=tuple(ToolChange("added", name, summary) for name, summary in (
            ("get_team_capacity", "Weekly capacity, bookings and free hours per person."),
            ("get_skills_matrix", "The skills matrix, levels 1-5."),
            ("find_available_people", "Ranked candidates for one role and period."),
            ("propose_allocation", "A staffing plan for several roles, without writes."),
            ("save_allocation", "Books an allocation through the ERP's capacity check."),
        )),
    ),
))
