# ruff: noqa: F811 - the scripted model fixture is imported by name
"""Issue #15 (finding 2) in the browser: the admin header and the landing page update live from
`ws/events/`. An agency admin keeps the landing page open; a gated call of a run is held for
approval by the real loop, and the header's badge ("1 approval waiting") and the landing page's
count change without a reload; an update notification adds "1 update to review". An account
manager of another client, on the same page at the same time, sees no change until a call of
their own client is held."""

import os
import uuid

import pytest
from django_tenants.utils import schema_context

from ..conftest import PASSWORD, host_of, wait_for
from ..skills.conftest import scripted, text_turn, tool_turn  # noqa: F401 - fixtures by name
from .support import SCREENSHOTS

os.environ.setdefault("TUNING_PLATFORM_CATALOG", "tests.tuning.catalog.CATALOG")
DRAFT = {"content": "Glow gently this Ramadan."}


def log_in(page, base, email, next_url="/admin/"):
    page.goto(f"{base}/admin/login/?next={next_url}")
    page.fill("#id_username", email)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"**{next_url}")


def live(page, topics: str) -> None:
    """Wait until the header's script subscribed to the topics and read the counts."""
    page.wait_for_selector(f"#live-header[data-loaded][data-subscribed='{topics}']", state="attached",
                           timeout=15_000)


@pytest.mark.browser
@pytest.mark.live
def test_the_header_and_landing_counts_follow_approvals_and_updates_without_a_reload(live_instance, daphne_server,
                                                                                     browser, page, scripted):
    from agents.loop import execute_run
    from agents.models import AgentRun, RunStatus
    from agents.services import run_create
    from spokestack.accounts.services import user_create
    from spokestack.realtime import publish_update_event
    from tuning.services import client_assign, client_create, instance_tuning_update
    from versions.services import release_notify_instance

    schema = live_instance.instance.schema_name
    with schema_context(schema):
        user_create(email="owner@agency.example", password=PASSWORD, role="instance_admin")
        manager = user_create(email="am@dune.example", password=PASSWORD, role="account_manager")
        bloom = client_create(name="Desert Bloom", vertical="beauty", region="GCC")
        dune = client_create(name="Dune Coffee", vertical="food", region="GCC")
        client_assign(user=manager, client=dune, role="account_manager")
        instance_tuning_update(actor=None, changes={"require_approval_for": ["save_draft"]}, reason="legal review")

    def gated_call(client) -> None:
        """A run of `client` whose save_draft call the loop holds for approval."""
        marker = f"[gate-{uuid.uuid4().hex[:8]}]"
        scripted.script(marker, [tool_turn((f"toolu_{uuid.uuid4().hex[:12]}", "save_draft", DRAFT)),
                                 text_turn("Saved the draft for review.")])
        with schema_context(schema):
            run = run_create(actor=None, agent_type="copy", task=f"{marker}: write and save a caption.",
                             client_id=client.pk, sandbox=True).run
            # Run here, unless the session's worker (started by an earlier test) took the task first.
            assert execute_run(run_id=str(run.pk), worker="browser-test") in ("awaiting_approval", "skipped")
            wait_for(lambda: AgentRun.objects.get(pk=run.pk).status == RunStatus.AWAITING_APPROVAL, timeout=30)

    base = f"http://{host_of(live_instance.instance)}:{daphne_server}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # The admin's ws/events/ sockets pass through here: the test can end one as the server does at
    # its end of life (4000) and keep the next ones out for a while.
    sockets, kept_out = [], []

    def route(ws):
        sockets.append(ws)
        if kept_out:
            ws.close(code=1013, reason="try again later")
        else:
            ws.connect_to_server()

    page.route_web_socket("**/ws/events/", route)
    log_in(page, base, "owner@agency.example")
    live(page, "approvals updates")
    other = browser.new_context().new_page()
    log_in(other, base, "am@dune.example")
    live(other, "approvals")  # an account manager does not see updates (policy version.view)
    for viewer in (page, other):
        assert viewer.locator("#live-approvals").is_hidden() and viewer.locator("#live-updates").is_hidden()
        assert viewer.locator("#landing-approvals").inner_text() == "0"
        assert viewer.locator("#header-timezone").inner_text() == "Times in UTC"
        viewer.evaluate("window.notReloaded = true")
    assert other.locator("#landing-updates").count() == 0

    # A call of Desert Bloom's run is held: the admin's header and landing page count it at once.
    gated_call(bloom)
    badge = page.locator("#live-approvals")
    badge.wait_for(state="visible", timeout=15_000)
    assert badge.inner_text() == "1 approval waiting"
    assert badge.get_attribute("href") == "/admin/agents/approvalrequest/"
    page.wait_for_function("document.getElementById('landing-approvals').textContent === '1'", timeout=5_000)
    # The Approvals panel's count too.
    assert page.locator("#approvals-pending").inner_text().startswith("1 tool call waiting for approval.")
    assert page.evaluate("window.notReloaded") is True
    # ... and Dune Coffee's account manager hears nothing of it.
    other.wait_for_timeout(1500)
    assert other.locator("#live-approvals").is_hidden() and other.locator("#landing-approvals").inner_text() == "0"
    assert other.evaluate("window.notReloaded") is True
    other.screenshot(path=str(SCREENSHOTS / "live_header_other_client_unchanged.png"), full_page=True)

    # An update to review: the admin's header says so and links to the agents and versions page.
    with schema_context(schema):
        note = release_notify_instance(agent_type="media_buying", version="2.4.0", previous_version="2.3.1")
        publish_update_event(note)  # versions.services publishes it itself once its call site is added
    updates = page.locator("#live-updates")
    updates.wait_for(state="visible", timeout=15_000)
    assert updates.inner_text() == "1 update to review"
    assert updates.get_attribute("href") == "/admin/versions/agentversionconfig/"
    page.wait_for_function("document.getElementById('landing-updates').textContent === '1'", timeout=5_000)
    page.screenshot(path=str(SCREENSHOTS / "live_header_admin_counts.png"), full_page=True)

    # A call of the account manager's own client: now their header counts it, live.
    gated_call(dune)
    mine = other.locator("#live-approvals")
    mine.wait_for(state="visible", timeout=15_000)
    assert mine.inner_text() == "1 approval waiting"
    other.wait_for_function("document.getElementById('landing-approvals').textContent === '1'", timeout=5_000)
    assert other.locator("#live-updates").is_hidden() and other.evaluate("window.notReloaded") is True
    page.wait_for_function("document.getElementById('live-approvals').textContent === '2 approvals waiting'",
                           timeout=15_000)
    other.screenshot(path=str(SCREENSHOTS / "live_header_account_manager.png"), full_page=True)

    # The socket reaches its end of life (4000) and the next handshakes fail for a while: what is
    # held meanwhile is counted once the header is back (it reads the counts on every reconnect).
    kept_out.append(True)
    sockets[-1].close(code=4000, reason="max_lifetime")
    page.wait_for_selector("#live-header:not([data-subscribed])", state="attached", timeout=5_000)
    for _ in range(150):  # it tries again at once, then after a backoff (Playwright calls the route meanwhile)
        if len(sockets) >= 3:
            break
        page.wait_for_timeout(100)
    assert len(sockets) >= 3, sockets
    gated_call(bloom)
    assert badge.inner_text() == "2 approvals waiting", "nothing reaches a page while it is disconnected"
    kept_out.clear()
    live(page, "approvals updates")
    page.wait_for_function("document.getElementById('live-approvals').textContent === '3 approvals waiting'",
                           timeout=15_000)
    assert page.locator("#landing-approvals").inner_text() == "3" and page.evaluate("window.notReloaded") is True

    # The badge leads to the approvals queue.
    badge.click()
    page.wait_for_url("**/admin/agents/approvalrequest/**")
    assert page.locator("#result_list tbody tr").count() == 3
    other.context.close()
