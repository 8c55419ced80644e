"""The resource agent's tools and the sample ERP's resourcing module, on a real ERP on loopback.

Numbers are the seeds' (spokestack/sample_erp/resourcing.py): e.g. Agency Alpha's week of
2026-11-30 has the UAE National Day on two days, so a 40-hour person has 24 hours available and
an allocation of 16 h/week books 3 days x 3.2 h = 9.6 h.
"""

import itertools

import pytest

from agents.registry import ToolContext, ToolError, get_spec
from spokestack.erp import ErpClient, ErpError
from spokestack.sample_erp import data, resourcing
from spokestack.sample_erp.server import ErpStore
from tests.agents import test_tools
from tests.agents.test_tools import call, client_of, writes

erp = test_tools.erp  # the sample ERP on loopback (a fixture)

_calls = itertools.count(1)
JANUARY = {"from": "2027-01-04", "to": "2027-01-29"}


def make_ctx(base_url: str, *, agency: str = "alpha", client=None, sandbox: bool = False, key: str | None = None,
             client_scope=None, settings=None) -> ToolContext:
    tool_use_id = f"toolu_res_{next(_calls)}"
    return ToolContext(instance=None, run_id="run-r", tool_use_id=tool_use_id,
                       idempotency_key=key or f"run-r:{tool_use_id}", client=client, sandbox=sandbox,
                       client_scope=frozenset(client_scope) if client_scope is not None else None,
                       settings=settings or {},
                       erp_factory=lambda: ErpClient(base_url=base_url, api_key=data.DEMO_API_KEYS[agency]))


def erp_client(base_url: str, agency: str = "alpha") -> ErpClient:
    return ErpClient(base_url=base_url, api_key=data.DEMO_API_KEYS[agency])


def person(result: dict, person_id: str) -> dict:
    return next(p for p in result["people"] if p["person_id"] == person_id)


def week(row: dict, monday: str) -> dict:
    return next(w for w in row["weeks"] if w["week"] == monday)


# --- the seeds -------------------------------------------------------------------------------------


def test_seeds_cover_the_real_team_and_clients_and_overbook_nobody():
    store = ErpStore()
    for agency, team in data.TEAM.items():
        ids = [m["id"] for m in team]
        slugs = {c["slug"] for c in data.CLIENTS[agency]}
        matrix = {row["person_id"]: row["skills"] for row in store.table(agency, "skills_matrix")}
        assert list(matrix) == ids and {c["person_id"] for c in store.table(agency, "contracts")} == set(ids)
        for member in team:
            assert set(member["capabilities"]) <= set(matrix[member["id"]]), member["id"]
            assert all(1 <= level <= 5 for level in matrix[member["id"]].values())
        for allocation in store.table(agency, "allocations"):
            assert allocation["person_id"] in ids and allocation["client"] in slugs | {None}
            assert not allocation["id"].startswith(f"{agency}-allocation-"), "seeded ids never collide with written"
        rows = resourcing.capacity(store, agency, weeks=list(resourcing.WEEKS), people=ids)
        assert [w["week"] for w in rows[0]["weeks"]][::17] == ["2026-11-30", "2027-03-29"]
        assert all(w["free"] >= 0 for row in rows for w in row["weeks"]), "the seeds overbook nobody"


# --- ERP endpoints ---------------------------------------------------------------------------------


def test_capacity_endpoint_counts_holidays_leave_and_bookings(erp):
    _, base_url = erp
    answer = erp_client(base_url).get("/capacity", params={"person": "alpha-t01", "to": "2026-12-25"})
    assert answer["weeks"] == ["2026-11-30", "2026-12-07", "2026-12-14", "2026-12-21"]
    noura = answer["results"][0]
    first = noura["weeks"][0]
    assert (first["contracted"], first["time_off"], first["available"], first["booked"], first["free"]) == (
        40, 16, 24, 14.4, 9.6)
    assert first["time_off_reasons"] == ["UAE National Day"]
    assert [(b["allocation_id"], b["hours"]) for b in first["bookings"]] == [("alpha-al01", 9.6), ("alpha-al02", 4.8)]
    leave = noura["weeks"][3]
    assert (leave["available"], leave["booked"], leave["time_off_reasons"]) == (0, 0, ["annual_leave"])
    ramadan = erp_client(base_url).get("/capacity", params={"person": "alpha-t02", "from": "2027-02-08",
                                                              "to": "2027-02-12"})["results"][0]["weeks"][0]
    assert (ramadan["available"], ramadan["booked"], ramadan["free"]) == (30, 16, 14), "two hours shorter a day"
    uk = erp_client(base_url, "beta").get("/capacity", params={"person": "beta-t03", "from": "2026-12-28",
                                                                 "to": "2027-01-01"})["results"][0]["weeks"][0]
    assert (uk["contracted"], uk["available"], uk["time_off_reasons"]) == (
        30, 18, ["Boxing Day (substitute day)", "New Year's Day"])


def test_capacity_and_skills_filters_and_their_400s(erp):
    _, base_url = erp
    alpha = erp_client(base_url)
    assert [r["person_id"] for r in alpha.get("/capacity", params={"skill": "analytics", "min_level": 4,
                                                                    "to": "2026-12-04"})["results"]] == ["alpha-t06"]
    assert [r["name"] for r in alpha.get("/capacity", params={"role": "director", "to": "2026-12-04"})["results"]] == [
        "Noura Al Suwaidi", "Rami Khoury"]
    skills = alpha.get("/skills", params={"skill": "social"})
    assert [(r["name"], r["skills"]) for r in skills["results"]] == [
        ("Karim Youssef", {"social": 3}), ("Fatima Zahra", {"social": 4})]
    assert skills["levels"]["5"] == "expert, can lead"
    calendar = alpha.get("/work-calendar")
    assert len(calendar["weeks"]) == 18 and calendar["holidays"][0]["name"] == "UAE National Day"
    for path, params, message in [
        ("/capacity", {"from": "2027-13-01"}, "from: '2027-13-01' is not a date"),
        ("/capacity", {"from": "2027-02-01", "to": "2027-01-01"}, "before from"),
        ("/capacity", {"from": "2027-06-01", "to": "2027-06-30"}, "No week of the planning calendar"),
        ("/capacity", {"min_level": "9"}, "min_level: a whole number from 1"),
        ("/skills", {"min_level": "0"}, "min_level"),
    ]:
        with pytest.raises(ErpError, match=message) as error:
            alpha.get(path, params=params)
        assert error.value.status_code == 400
    with pytest.raises(ErpError, match="No team member 'beta-t01'") as error:
        alpha.get("/capacity", params={"person": "beta-t01"})
    assert error.value.status_code == 404


def test_allocation_endpoints_check_person_dates_and_capacity(erp):
    _, base_url = erp
    alpha = erp_client(base_url)
    good = {"person_id": "alpha-t06", "client": "gulf-bank", "project": "SME reporting", "hours_per_week": 10,
            "start": "2027-01-04", "end": "2027-01-29"}
    for change, status, message in [
        ({"person_id": "beta-t01"}, 400, "person_id: no team member 'beta-t01'. Team: alpha-t01"),
        ({"end": "2027-01-01"}, 400, "end: 2027-01-01 is before start"),
        ({"start": "2027-1-4"}, 400, "start: '2027-1-4' is not a date"),
        ({"end": "2027-05-28"}, 400, "outside the planning calendar"),
        ({"hours_per_week": 45}, 400, "at most Daniel Pereira's contracted 40 hours"),
        ({"client": "thames-outfitters"}, 400, "client: no client 'thames-outfitters'"),
        ({"start": "2027-01-02", "end": "2027-01-03"}, 400, "no working day"),
        ({"person_id": "alpha-t04", "hours_per_week": 20}, 409,
         r"Rami Khoury \(alpha-t04\) is over capacity in 4 week\(s\): 2027-01-04 \+10 h \(10 free, 20 needed\)"),
    ]:
        with pytest.raises(ErpError, match=message) as error:
            alpha.post("/allocations", {**good, **change})
        assert error.value.status_code == status
    assert writes(base_url)["count"] == 0, "a refused allocation writes nothing"

    created = alpha.post("/allocations", good, idempotency_key="k1")
    assert created["id"] == "alpha-allocation-0001" and created["status"] == "tentative"
    assert (created["person_name"], created["role"]) == ("Daniel Pereira", "Data Analyst")
    daniel = alpha.get("/capacity", params={"person": "alpha-t06", **JANUARY})["results"][0]
    assert [w["booked"] for w in daniel["weeks"]] == [10, 10, 10, 10]
    # PATCH: more hours than fit is refused; the allocation's own hours are not counted twice
    alpha.patch("/allocations/alpha-allocation-0001", {"hours_per_week": 40})
    with pytest.raises(ErpError, match="over capacity") as error:
        alpha.patch("/allocations/alpha-al07", {"hours_per_week": 40})
    assert error.value.status_code == 409
    alpha.patch("/allocations/alpha-al07", {"status": "cancelled"})
    rami = alpha.get("/capacity", params={"person": "alpha-t04", **JANUARY})["results"][0]
    assert [w["free"] for w in rami["weeks"]] == [40, 40, 40, 40], "a cancelled allocation books nothing"
    with pytest.raises(ErpError, match="status: 'done' is not one of tentative, confirmed, cancelled"):
        alpha.patch("/allocations/alpha-al06", {"status": "done"})
    with pytest.raises(ErpError) as error:
        alpha.get("/allocations/beta-al01")
    assert error.value.status_code == 404, "another agency's allocation does not exist here"
    listed = alpha.get("/allocations", params={"client": "gulf-bank"})
    assert {a["id"] for a in listed["results"]} == {"alpha-al01", "alpha-al04", "alpha-al05", "alpha-allocation-0001"}


# --- get_team_capacity ------------------------------------------------------------------------------


def test_get_team_capacity_reports_weeks_people_and_bookings(erp):
    _, base_url = erp
    result = call("resource", "get_team_capacity", make_ctx(base_url), {})
    assert result["weeks"] == ["2026-11-30", "2026-12-07", "2026-12-14", "2026-12-21"] and result["count"] == 6
    noura = week(person(result, "alpha-t01"), "2026-11-30")
    assert (noura["available"], noura["booked"], noura["free"]) == (24, 14.4, 9.6)
    assert {b["project"] for b in noura["bookings"]} == {"Home finance awareness", "New business: pitches"}
    assert result["overbooked"] == []
    copywriters = call("resource", "get_team_capacity", make_ctx(base_url),
                       {"role": "copywriter", "from": "2027-02-08", "to": "2027-02-19"})
    assert [p["name"] for p in copywriters["people"]] == ["Karim Youssef"]
    assert [w["free"] for w in copywriters["people"][0]["weeks"]] == [14, 14]
    assert copywriters["people"][0]["totals"] == {"available": 60, "booked": 32, "free": 28, "utilisation": 0.533}
    with pytest.raises(ToolError, match="No team member matches role 'astronaut'. Call get_team_capacity without it"):
        call("resource", "get_team_capacity", make_ctx(base_url), {"role": "astronaut"})
    with pytest.raises(ToolError, match="to \\(2027-01-01\\) is before from"):
        call("resource", "get_team_capacity", make_ctx(base_url), {"from": "2027-02-01", "to": "2027-01-01"})


def test_get_team_capacity_names_only_readable_clients_projects(erp):
    _, base_url = erp
    full = call("resource", "get_team_capacity", make_ctx(base_url), {})
    scoped = call("resource", "get_team_capacity", make_ctx(base_url, client_scope={"gulf-bank"}), {})
    rami = week(person(scoped, "alpha-t04"), "2026-11-30")
    assert rami["bookings"] == [] and rami["other_clients_hours"] == 24
    assert (rami["booked"], rami["free"]) == (24, 0), "totals still count every booking"
    assert "desert-bloom" not in str(scoped) and "Ramadan" not in str(scoped)
    noura = week(person(scoped, "alpha-t01"), "2026-11-30")
    assert {b["client"] for b in noura["bookings"]} == {"gulf-bank", None}, "agency-wide work stays visible"
    assert [p["totals"] for p in scoped["people"]] == [p["totals"] for p in full["people"]]
    for_client = call("resource", "get_team_capacity", make_ctx(base_url, client=client_of("desert-bloom-cosmetics")),
                      {})
    assert "Home finance awareness" not in str(for_client) and "Ramadan 2027 films" in str(for_client)
    with pytest.raises(ToolError, match="no client 'desert-bloom-cosmetics' this run may act for"):
        call("resource", "get_team_capacity", make_ctx(base_url, client_scope={"gulf-bank"}),
             {"client": "desert-bloom-cosmetics"})


def test_get_team_capacity_settings_change_weeks_and_detail(erp):
    _, base_url = erp
    two = call("resource", "get_team_capacity", make_ctx(base_url, settings={"weeks_shown": 2}), {"from": "2027-03-24"})
    assert two["weeks"] == ["2027-03-22", "2027-03-29"]
    last = call("resource", "get_team_capacity", make_ctx(base_url, settings={"weeks_shown": 4}), {"from": "2027-03-24"})
    assert last["weeks"] == ["2027-03-22", "2027-03-29"], "never past the calendar's end"
    bare = call("resource", "get_team_capacity", make_ctx(base_url, settings={"show_bookings": False}), {})
    assert all("bookings" not in w and "other_clients_hours" not in w for p in bare["people"] for w in p["weeks"])
    with pytest.raises(ToolError, match="after the planning calendar"):
        call("resource", "get_team_capacity", make_ctx(base_url), {"from": "2027-06-01"})


# --- get_skills_matrix ---------------------------------------------------------------------------------


def test_get_skills_matrix_lists_levels_and_an_index(erp):
    _, base_url = erp
    everyone = call("resource", "get_skills_matrix", make_ctx(base_url, agency="gamma"), {})
    assert everyone["count"] == 6 and everyone["by_skill"]["copywriting"] == [
        {"person_id": "gamma-t02", "name": "Maria Gonzalez", "level": 5},
        {"person_id": "gamma-t04", "name": "Aaliyah Brooks", "level": 2}]
    senior = call("resource", "get_skills_matrix", make_ctx(base_url, agency="gamma"),
                  {"skill": "copywriting", "min_level": 3})
    assert [p["name"] for p in senior["people"]] == ["Maria Gonzalez"] and "note" not in senior
    one = call("resource", "get_skills_matrix", make_ctx(base_url), {"person_id": "alpha-t02"})
    assert one["people"][0]["skills"] == {"arabic_copywriting": 5, "copywriting": 4, "social": 3, "content": 2}
    none = call("resource", "get_skills_matrix", make_ctx(base_url), {"skill": "ctv"})
    assert none["count"] == 0 and "Nobody has 'ctv'" in none["note"]


# --- find_available_people -----------------------------------------------------------------------------


def test_find_available_people_ranks_by_fit_level_and_free_hours(erp):
    _, base_url = erp
    result = call("resource", "find_available_people", make_ctx(base_url),
                  {"skill": "analytics", "hours_per_week": 10, **JANUARY})
    assert [(p["name"], p["fits"]) for p in result["people"]] == [("Daniel Pereira", True), ("Aisha Rahman", False)]
    aisha = result["people"][1]
    assert aisha["free_by_week"] == {"2027-01-04": 12, "2027-01-11": 7.2, "2027-01-18": 12, "2027-01-25": 12}
    assert aisha["weeks_short"] == {"2027-01-11": 2.8}, "two training days that week"
    assert result["fully_free"] == 1 and "note" not in result
    senior = call("resource", "find_available_people", make_ctx(base_url),
                  {"skill": "analytics", "min_level": 4, "hours_per_week": 10, **JANUARY})
    assert [p["name"] for p in senior["people"]] == ["Daniel Pereira"]
    nobody = call("resource", "find_available_people", make_ctx(base_url),
                  {"skill": "ctv", "hours_per_week": 10, **JANUARY})
    assert nobody["count"] == 0 and "Nobody has 'ctv'" in nobody["note"]
    with pytest.raises(ToolError, match="to \\(2027-01-01\\) is before from"):
        call("resource", "find_available_people", make_ctx(base_url),
             {"skill": "analytics", "hours_per_week": 10, "from": "2027-01-04", "to": "2027-01-01"})


def test_find_available_people_honours_the_utilisation_cap(erp):
    _, base_url = erp
    need = {"skill": "analytics", "hours_per_week": 35, **JANUARY}
    assert call("resource", "find_available_people", make_ctx(base_url), need)["fully_free"] == 1
    capped = call("resource", "find_available_people", make_ctx(base_url, settings={"max_utilisation": 0.8}), need)
    assert capped["fully_free"] == 0 and capped["people"][0]["min_free"] == 32 and "split the work" in capped["note"]


# --- propose_allocation --------------------------------------------------------------------------------


def test_propose_allocation_assigns_splits_and_reports_what_it_cannot_fill(erp):
    _, base_url = erp
    result = call("resource", "propose_allocation", make_ctx(base_url), {"requirements": [
        {"skill": "social", "hours_per_week": 20, **JANUARY, "role": "Social lead"},
        {"skill": "analytics", "hours_per_week": 45, **JANUARY},
        {"skill": "video", "hours_per_week": 30, **JANUARY},
    ]})
    assert [(a["requirement"], a["name"], a["hours_per_week"], a["split"]) for a in result["assignments"]] == [
        (0, "Fatima Zahra", 20, False), (1, "Daniel Pereira", 40, True), (1, "Aisha Rahman", 5, True)]
    assert result["assignments"][0]["role"] == "Social lead" and result["assignments"][0]["level"] == 4
    assert result["complete"] is False and result["unfilled"][0]["need"] == "video 30 h/week"
    assert result["unfilled"][0]["best_candidate"]["name"] == "Rami Khoury"
    assert result["overbooking_warnings"] == [
        "Booking Rami Khoury for video 30 h/week would overbook them: 2027-01-04 by 20 h, 2027-01-11 by 20 h, "
        "2027-01-18 by 20 h, 2027-01-25 by 20 h."]
    assert writes(base_url)["count"] == 0, "a proposal books nothing"
    assert call("resource", "propose_allocation", make_ctx(base_url), {"requirements": [
        {"skill": "social", "hours_per_week": 20, **JANUARY, "role": "Social lead"},
        {"skill": "analytics", "hours_per_week": 45, **JANUARY},
        {"skill": "video", "hours_per_week": 30, **JANUARY}]}) == result, "deterministic"


def test_propose_allocation_never_promises_the_same_hours_twice(erp):
    _, base_url = erp
    need = {"skill": "analytics", "hours_per_week": 30, **JANUARY}
    result = call("resource", "propose_allocation", make_ctx(base_url), {"requirements": [need, need]})
    assert [(a["name"], a["hours_per_week"]) for a in result["assignments"]] == [("Daniel Pereira", 30)]
    assert result["unfilled"][0]["requirement"] == 1
    assert result["unfilled"][0]["best_candidate"]["weeks_short"]["2027-01-04"] == 20, "Daniel has 10 h left"
    no_split = call("resource", "propose_allocation", make_ctx(base_url), {
        "requirements": [{"skill": "analytics", "hours_per_week": 45, **JANUARY}], "allow_split": False})
    assert no_split["assignments"] == [] and no_split["unfilled"][0]["qualified_people"] == 2
    capped = call("resource", "propose_allocation", make_ctx(base_url, settings={"max_utilisation": 0.8}),
                  {"requirements": [need]})
    assert [(a["name"], a["hours_per_week"]) for a in capped["assignments"]] == [
        ("Daniel Pereira", 30)] and capped["max_utilisation"] == 0.8
    tight = call("resource", "propose_allocation", make_ctx(base_url, settings={"max_utilisation": 0.8}),
                 {"requirements": [{**need, "hours_per_week": 34}]})
    assert [(a["name"], a["hours_per_week"]) for a in tight["assignments"]] == [
        ("Daniel Pereira", 32), ("Aisha Rahman", 2)], "under an 80% cap Daniel has 32 h a week, Aisha 2.4 at least"


# --- save_allocation --------------------------------------------------------------------------------


BOOKING = {"person_id": "alpha-t06", "project": "SME reporting", "hours_per_week": 10, "start": "2027-01-04",
           "end": "2027-01-29", "role": "Analyst"}


def test_save_allocation_books_once_per_idempotency_key(erp):
    _, base_url = erp
    ctx = make_ctx(base_url, client=client_of("gulf-bank"), key="run-r:toolu_book")
    first = call("resource", "save_allocation", ctx, BOOKING)
    again = call("resource", "save_allocation", make_ctx(base_url, client=client_of("gulf-bank"),
                                                         key="run-r:toolu_book"), BOOKING)
    assert first == again and first["allocation_id"] == "alpha-allocation-0001" and first["status"] == "tentative"
    assert (first["person_name"], first["client"], first["hours_per_week"]) == ("Daniel Pereira", "gulf-bank", 10)
    log = writes(base_url)
    assert log["count"] == 1 and len(log["replays"]) == 1 and log["results"][0]["path"] == "/allocations"
    stored = erp_client(base_url).get("/allocations/alpha-allocation-0001")
    assert stored["metadata"] == {"agent": "resource", "run_id": "run-r"} and stored["role"] == "Analyst"
    capacity = call("resource", "get_team_capacity", make_ctx(base_url), {"person_id": "alpha-t06", **JANUARY})
    assert [w["booked"] for w in capacity["people"][0]["weeks"]] == [10, 10, 10, 10]


def test_save_allocation_in_sandbox_mode_writes_nothing(erp):
    _, base_url = erp
    result = call("resource", "save_allocation", make_ctx(base_url, sandbox=True),
                  {**BOOKING, "client": "gulf-bank"})
    assert result["simulated"] is True and result["would_have"]["path"] == "/allocations"
    assert result["would_have"]["body"]["person_id"] == "alpha-t06"
    assert writes(base_url)["count"] == 0


def test_save_allocation_refusals_are_readable(erp):
    _, base_url = erp
    ctx = make_ctx(base_url, client=client_of("desert-bloom-cosmetics"))
    over = {**BOOKING, "person_id": "alpha-t04", "hours_per_week": 20, "end": "2027-01-15"}
    with pytest.raises(ErpError, match=r"HTTP 409: Rami Khoury \(alpha-t04\) is over capacity in 2 week\(s\)"):
        call("resource", "save_allocation", ctx, over)
    with pytest.raises(ErpError, match="HTTP 400: person_id: no team member 'alpha-t99'"):
        call("resource", "save_allocation", ctx, {**BOOKING, "person_id": "alpha-t99"})
    with pytest.raises(ToolError, match="end \\(2027-01-01\\) is before start"):
        call("resource", "save_allocation", ctx, {**BOOKING, "end": "2027-01-01"})
    with pytest.raises(ToolError, match="needs to know the client"):
        call("resource", "save_allocation", make_ctx(base_url), BOOKING)
    with pytest.raises(ToolError, match="no client 'desert-bloom-cosmetics' this run may act for"):
        call("resource", "save_allocation", make_ctx(base_url, client_scope={"gulf-bank"}),
             {**BOOKING, "client": "desert-bloom-cosmetics"})
    assert writes(base_url)["count"] == 0


def test_save_allocation_settings_allow_overbooking_and_cap_the_length(erp):
    _, base_url = erp
    over = {**BOOKING, "person_id": "alpha-t04", "hours_per_week": 20, "end": "2027-01-15", "client": "gulf-bank"}
    booked = call("resource", "save_allocation", make_ctx(base_url, settings={"allow_overbooking": True}), over)
    assert booked["allocation_id"] == "alpha-allocation-0001"
    assert erp_client(base_url).get("/allocations/alpha-allocation-0001")["overbook"] is True
    capacity = call("resource", "get_team_capacity", make_ctx(base_url), {"person_id": "alpha-t04", **JANUARY})
    assert capacity["overbooked"][0] == {"person_id": "alpha-t04", "name": "Rami Khoury", "week": "2027-01-04",
                                         "over_by": 10}
    with pytest.raises(ToolError, match="spans 4 weeks; this agency lets the agent book at most 2 weeks"):
        call("resource", "save_allocation", make_ctx(base_url, settings={"max_weeks": 2}),
             {**BOOKING, "client": "gulf-bank"})
    assert writes(base_url)["count"] == 1


# --- the spec --------------------------------------------------------------------------------------


def test_the_resource_spec_is_registered_with_its_tools_prompt_and_release():
    spec = get_spec("resource")
    assert (spec.version, spec.title) == ("1.0.0", "Resourcing")
    names = [t.name for t in spec.tools]
    assert names[:5] == ["get_team_capacity", "get_skills_matrix", "find_available_people", "propose_allocation",
                         "save_allocation"]
    assert [t.name for t in spec.tools if t.side_effect] == ["save_allocation"]
    assert {c.tool for c in spec.release.tool_changes} == set(names[:5])
    for tool in spec.tools[:5]:
        assert tool.name in spec.base_prompt and 25 <= len(tool.description.split()) and len(tool.description) <= 1024
        assert tool.input_schema.get("additionalProperties") is False


def test_the_resource_spec_meets_the_shared_spec_rules():
    """What tests/agents/test_specs.py and test_tool_settings.py ask of every core agent."""
    import re

    from jsonschema import Draft202012Validator

    from agents.knowledge import KNOWLEDGE

    spec = get_spec("resource", "1.0.0")
    assert spec.max_iterations == 25 and spec.max_tool_calls_per_turn == 10
    assert 0 < spec.time_limit_s <= 900 and 0 < spec.cost_ceiling_usd <= 5 and spec.max_tokens <= spec.max_tokens_limit
    assert {"delete_*", "publish_*"} <= set(spec.confirmation_patterns)
    assert "Think → Act → Create" in spec.base_prompt and "## Output" in spec.base_prompt
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", spec.base_prompt), "byte-stable prompt: no dates"
    assert spec.knowledge is KNOWLEDGE and spec.release.release_date and spec.release.notes.startswith("## ")
    for tool in spec.tools:
        Draft202012Validator.check_schema(tool.input_schema)
        assert tool.name in spec.base_prompt and len(tool.definition()["description"]) <= 1024
        assert set(tool.input_schema.get("properties", {})).isdisjoint(set(tool.settings) - {"limit"})
        for name, prop in tool.input_schema.get("properties", {}).items():
            assert "type" in prop or "enum" in prop, f"{tool.name}.{name} has no type"
