# ruff: noqa: F811 - fixtures shared with tests/skills are imported by name
"""Issue #20: an instance admin opens the Usage page: the charts are drawn (server-side SVG, nothing
fetched from elsewhere), filtering by a client changes the totals, and the CSV link downloads."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from ..skills.conftest import scripted, text_turn, tool_turn  # noqa: F401
from .support import SCREENSHOTS, in_thread, log_in

PAGE = "/admin/usage/usagedaily/"


@pytest.mark.browser
@pytest.mark.live
def test_the_usage_page_draws_its_charts_filters_and_exports(live_instance, daphne_server, scripted, runs_stay_here,
                                                              page):
    from agents.loop import execute_run
    from agents.services import run_create
    from tuning.services import client_create

    instance = live_instance.instance
    admin = live_instance.admin

    def agency():
        bloom = client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC", language="en")
        foods = client_create(name="Other Foods", vertical="food", region="GCC", language="en")
        plan = [("copy", bloom, "ubr-1", [tool_turn(("toolu_ub1", "check_brand_rules", {"text": "Glow."})),
                                          text_turn("Glow gently.")]),
                ("brief", bloom, "ubr-2", [text_turn("A brief.")]),
                ("copy", foods, "ubr-3", [text_turn("Taste it.")])]
        for agent_type, client, marker, turns in plan:
            scripted.script(marker, turns)
            run = run_create(actor=admin, agent_type=agent_type, task=f"{marker}: write it.", client_id=client.pk,
                             sandbox=True).run
            assert execute_run(run_id=str(run.pk), worker="browser") == "succeeded"
        return bloom.pk

    bloom_id = in_thread(instance.schema_name, agency)
    base = f"http://{instance.domains.get().domain}:{daphne_server}"
    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url) if not request.url.startswith(base) else None)
    log_in(page, base, admin.email, PAGE)

    page.wait_for_selector("svg.usage-chart rect.segment")
    assert page.locator("svg.usage-chart").count() == 3
    box = page.locator("#chart-cost-agent svg").bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 150  # drawn, not an empty box
    assert "Desert Bloom Cosmetics" in page.inner_text("#chart-cost-client")
    assert page.inner_text("#usage-total-runs") == "3"
    all_cost = page.inner_text("#usage-total-cost")
    assert page.locator("#usage-top-runs tbody tr").count() == 3
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "usage_page.png"), full_page=True)

    page.select_option("#usage-client", str(bloom_id))
    page.click("#usage-filters button[type=submit]")
    page.wait_for_url(f"**client_id={bloom_id}**")
    assert page.inner_text("#usage-total-runs") == "2"
    assert page.inner_text("#usage-total-cost") != all_cost
    assert page.locator("#usage-top-runs tbody tr").count() == 2
    page.screenshot(path=str(SCREENSHOTS / "usage_page_client.png"), full_page=True)

    with page.expect_download() as download:
        page.click("#usage-csv")
    lines = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert {line["agent_type"]: line["runs"] for line in lines[:-1]} == {"copy": "1", "brief": "1"}
    assert lines[-1]["agent_type"] == "total" and lines[-1]["runs"] == "2"
    assert not outside, outside  # no chart library, no font, nothing from elsewhere
