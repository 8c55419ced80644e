"""Issue #21 part 3 in a real browser: an instance admin writes an auto-approval rule (a number for a
numeric comparison, or the form says what to fix) and the list reads it back in plain language; the
MCP server page refuses a private address with the egress rule's reason."""

from __future__ import annotations

import pytest

from .support import SCREENSHOTS, log_in

RULES = "/admin/agents/approvalrule/"


@pytest.mark.browser
@pytest.mark.live
def test_an_admin_writes_an_approval_rule_and_sees_it_in_plain_language(live_instance, daphne_server, page):
    instance, admin = live_instance.instance, live_instance.admin
    base = f"http://{instance.domains.get().domain}:{daphne_server}"
    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url) if not request.url.startswith(base) else None)
    log_in(page, base, admin.email, f"{RULES}add/")
    page.fill("#id_tool_name", "request_discount_approval")
    page.fill("#id_field_path", "discount_pct")
    page.select_option("#id_op", "<=")
    page.fill("#id_value", '"five"')
    page.click("input[name=_save]")
    page.wait_for_selector(".errorlist")
    assert "number" in page.inner_text(".errorlist").lower()  # a numeric comparison needs a number
    page.fill("#id_value", "5")
    page.click("input[name=_save]")
    page.wait_for_selector("#result_list")
    row = page.inner_text("#result_list tbody tr")
    assert "request_discount_approval" in row and "discount_pct" in row and "≤ 5" in row
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "approval_rules.png"), full_page=True)

    page.goto(f"{base}/admin/skills/mcpserver/add/")
    page.fill("#id_name", "crm")
    page.fill("#id_url", "http://169.254.169.254/mcp")
    page.click("input[name=_save]")
    page.wait_for_selector(".errorlist")
    assert "metadata" in page.inner_text(".errorlist").lower()
    page.screenshot(path=str(SCREENSHOTS / "mcp_server_refused.png"), full_page=True)
    assert not outside, outside
