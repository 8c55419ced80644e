"""Issue #15: a crawl of the admin as each role. Signed in as an instance admin, an instance
manager, an account manager of one client, a client contact, and platform staff, it opens the
landing page, every link of the menu, and every admin link those pages show (a few of each shape:
one change page per changelist is enough), and asks of every page what a person would notice:

- no server error (a 500 is recorded with its URL, the crawl goes on, and the test lists them all);
- a refusal is the styled 403 page that says why, never Django's bare "403 Forbidden";
- a link shown to a role leads somewhere that role may go (a link that ends on a 403 is a link
  the menu should not have shown);
- the page's text shows no Python dict or list repr, no raw Markdown and no snake_case label
  ("Competitor_check"), and no "feedbacks"-style plural.

The instance's data is made with the services (runs finished and one waiting for approval,
feedback and suggestions, tuning changes, a skill), so changelists have rows to open."""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test import Client as HttpClient

from agents.approvals import approval_request_create
from agents.models import AgentRun, RunStatus, ToolCall, ToolCallStatus
from agents.services import run_create
from feedback.services import analysis_run, feedback_give
from skills.services import skill_create
from tuning.services import client_create, client_rule_add, client_tuning_update, instance_tuning_update

from ..conftest import HOST_A

SKIP_PATHS = ("/admin/logout/", "/admin/r/", "/admin/jsi18n/")
PER_SHAPE = 2  # pages opened per URL shape (ids replaced), so one changelist's rows do not dominate
MAX_PAGES = 400

PY_REPR = re.compile(r"[\[{]\s*'[\w ]+'\s*[:,]")  # {'tone': …} or ['a', …
MARKDOWN = re.compile(r"(^|\n)\s*#{1,4} \S|\*\*[A-Za-z][^*\n]*\*\*|\]\(https?://")
SNAKE_LABEL = re.compile(r"\b[A-Z][a-z]+(?:_[a-z]+)+\b")
BAD_PLURAL = re.compile(r"\b(feedbacks|analysiss|statuss)\b", re.IGNORECASE)


class _Page(HTMLParser):
    """The page's links and its visible text (not scripts, styles, form values or code)."""

    HIDDEN = {"script", "style", "textarea", "code", "pre", "kbd", "samp", "template", "noscript"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.text: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.HIDDEN:
            self._hidden += 1
        if tag == "a":
            href = dict(attrs).get("href") or ""
            self.links.append(href)

    def handle_endtag(self, tag):
        if tag in self.HIDDEN and self._hidden:
            self._hidden -= 1

    def handle_data(self, data):
        if not self._hidden:
            self.text.append(data)


def _shape(path: str) -> str:
    return re.sub(r"/[0-9a-f-]{8,}/|/\d+/", "/{id}/", path)


def crawl(http: HttpClient, start: str = "/admin/") -> dict[str, list[str]]:
    """Every admin page reachable from `start` by links; returns the problems found, by kind."""
    problems: dict[str, list[str]] = {"500": [], "unstyled 403": [], "link to a 403": [], "text": []}
    shapes: Counter = Counter()
    reported: set[tuple[str, str]] = set()  # each text problem once, on the first page that shows it
    seen: set[str] = set()
    queue: list[tuple[str, str]] = [(start, "")]
    opened = 0
    while queue and opened < MAX_PAGES:
        url, came_from = queue.pop(0)
        path = urlsplit(url).path
        if url in seen or not path.startswith("/admin/") or path.startswith(SKIP_PATHS):
            continue
        seen.add(url)
        query = urlsplit(url).query
        shape = _shape(path) + ("?" if query else "")
        if shapes[shape] >= (1 if query else PER_SHAPE):  # one filtered or sorted variant of a page is enough
            continue
        shapes[shape] += 1
        opened += 1
        response = http.get(url)
        where = f"{url} (linked from {came_from or 'the start'})"
        if response.status_code >= 500:
            problems["500"].append(where)
            continue
        if response.status_code in (301, 302):
            location = response["Location"]
            if urlsplit(location).path.startswith("/admin/login/"):
                problems["link to a 403"].append(f"{where}: sends a signed-in person to the login page")
            else:
                queue.append((location, url))
            continue
        if response.streaming:  # an export: a download, not a page
            continue
        body = response.content.decode(errors="replace")
        if response.status_code == 403:
            if 'id="forbidden-reason"' not in body:
                problems["unstyled 403"].append(where)
            if came_from:
                problems["link to a 403"].append(where)
            continue
        if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
            continue
        page = _Page()
        page.feed(body)
        text = " ".join(" ".join(page.text).split())
        for name, pattern in (("Python repr", PY_REPR), ("raw Markdown", MARKDOWN),
                              ("snake_case label", SNAKE_LABEL), ("bad plural", BAD_PLURAL)):
            found = pattern.search("\n".join(page.text))
            if found and (name, found.group(0).strip().lower()) not in reported:
                reported.add((name, found.group(0).strip().lower()))
                context = text[max(0, text.find(found.group(0).strip()) - 60):][:160]
                problems["text"].append(f"{url}: {name} {found.group(0).strip()!r} in …{context}…")
        for href in page.links:
            if not href or href.startswith(("#", "javascript:", "mailto:")):
                continue
            target = href if href.startswith("/") else None
            if target is None and href.startswith("http"):
                parts = urlsplit(href)
                target = parts.path + (f"?{parts.query}" if parts.query else "")
            elif target is None:
                base = path if path.endswith("/") else path.rsplit("/", 1)[0] + "/"
                target = base + href if not href.startswith("?") else path + href
            queue.append((target, url))
    assert opened > 5, f"the crawl opened only {opened} pages from {start}"
    return {kind: found for kind, found in problems.items() if found}


@pytest.fixture
def agency(in_a, make_user, assigned):
    """Instance A with two clients, a person of every role, and data on every page."""
    admin = make_user("instance_admin")
    mine = client_create(name="Mine Cosmetics", vertical="beauty")
    other = client_create(name="Other Foods", vertical="food")
    people = {
        "instance_admin": admin,
        "instance_manager": make_user("instance_manager"),
        "account_manager": assigned("account_manager", mine),
        "client_contact": assigned("client_contact", mine),
    }
    instance_tuning_update(actor=admin, changes={"brand_voice": "Warm and direct.", "traits": {"formality": 70}},
                           reason="House voice")
    client_tuning_update(actor=admin, client=mine, changes={"brand_voice": "Playful.", "tone_keywords": ["bright", "warm"]},
                         reason="Brand refresh")
    client_rule_add(actor=admin, client=mine, kind="never", text="Promise miracles", reason="Legal")
    skill_create(actor=admin, name="competitor_check", description="Check a competitor's recent campaigns.",
                 input_schema={"type": "object", "properties": {"brand": {"type": "string"}}},
                 execution_type="webhook", agent_types=["copy"], webhook_url="https://hooks.example.com/c",
                 auth_type="none")
    for client in (mine, other):
        for i in range(4):
            run = run_create(actor=admin, agent_type="copy", task=f"Write a caption {i}", client_id=client.pk).run
            AgentRun.objects.filter(pk=run.pk).update(
                status=RunStatus.SUCCEEDED, output=f"Get 20% off today! Glow gently with our serum #{i}.")
            feedback_give(actor=admin, run_id=run.pk, verdict="corrected",
                          corrected_text=f"Glow gently with our serum #{i}.", reason="No discount language",
                          category="brand_voice")
        analysis_run(client=client, actor=admin, use_model=False)
        waiting = run_create(actor=admin, agent_type="copy", task="Publish the post", client_id=client.pk).run
        AgentRun.objects.filter(pk=waiting.pk).update(status=RunStatus.AWAITING_APPROVAL)
        call = ToolCall.objects.create(run=waiting, tool_use_id="toolu_1", name="save_draft",
                                       input={"title": "Spring", "body": "Glow"}, side_effect=True,
                                       status=ToolCallStatus.AWAITING_APPROVAL, idempotency_key="k1")
        approval_request_create(run=waiting, tool_call=call, rule="save_*")
    return people


ROLES = ["instance_admin", "instance_manager", "account_manager", "client_contact"]


@pytest.mark.parametrize("role", ROLES)
def test_every_admin_page_a_role_can_reach_opens_cleanly(agency, role):
    http = HttpClient(HTTP_HOST=HOST_A, raise_request_exception=False)
    http.force_login(agency[role])
    problems = crawl(http)
    connection.set_tenant(connection.tenant)  # requests may leave the connection elsewhere
    assert not problems, "\n".join(f"{kind}:\n  " + "\n  ".join(found) for kind, found in problems.items())


def test_every_platform_admin_page_opens_cleanly(db, instance_a):
    from django.contrib.auth import get_user_model

    connection.set_schema_to_public()
    staff = get_user_model().objects.create_superuser("platform@example.com", "platform@example.com", "pw-123456789")
    http = HttpClient(HTTP_HOST="localhost", raise_request_exception=False)
    http.force_login(staff)
    problems = crawl(http)
    assert not problems, "\n".join(f"{kind}:\n  " + "\n  ".join(found) for kind, found in problems.items())
