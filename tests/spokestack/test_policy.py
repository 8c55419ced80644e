"""The access policy (spokestack/accounts/policy.py): one table that every path asks.

The permission matrix is generated from the table: for every action, every role (and platform
support, and a person without a role) is sent through the API and, where an admin page exists,
the admin; the answer must be the table's. Allowed: neither 403 nor 404 (nor 401, nor a 5xx).
Refused: 403 (a role that may never take the action gets 403 whatever the client). A client the
person may not see: 404 (the execute request names its client in the body, so it answers 400 with
the message of a client that does not exist). The four role holes of issue #13 (finding 4) have
their own tests below, written before the fix.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django.urls import URLPattern, URLResolver

from spokestack.accounts import policy
from spokestack.errors import NotAllowed

from ..conftest import HOST_A, ROOT
from ..skills.conftest import scripted  # noqa: F401 - the approval probes' model, by fixture name

ROLES = ["instance_admin", "instance_manager", "account_manager", "client_contact", "support", "no_role"]
SCOPED = set(policy.SCOPED_ROLES)


# --- the world a probe needs, made on demand through the services -----------------------------


class World:
    def __init__(self, request, instance) -> None:
        self.request, self.instance = request, instance

    def fixture(self, name: str):
        return self.request.getfixturevalue(name)

    @cached_property
    def mine(self):
        from tuning.services import client_create

        return client_create(name="Mine Cosmetics", vertical="beauty")

    @cached_property
    def other(self):
        from tuning.services import client_create

        return client_create(name="Other Bank", vertical="finance")

    def client(self, where: str):
        return self.mine if where == "mine" else self.other

    def user(self, role: str):
        if role in SCOPED:
            return self.fixture("assigned")(role, self.mine)
        user = self.fixture("make_user")("instance_admin" if role in ("support", "no_role") else role)
        if role in ("support", "no_role"):
            user.groups.clear()
            user.is_superuser = role == "support"
            user.save(update_fields=["is_superuser"])
            policy.forget(user)
        return user

    def api(self, user):
        return self.fixture("api")(self.instance, user)

    @staticmethod
    def admin(user):
        http = HttpClient(HTTP_HOST=HOST_A)
        http.force_login(user)
        return http

    # objects, per client
    def _per_client(self, name: str, where: str, make: Callable[[Any], Any]):
        cache = self.__dict__.setdefault(f"_{name}", {})
        if where not in cache:
            cache[where] = make(self.client(where))
        return cache[where]

    def run(self, where: str):
        from agents.services import run_create

        return self._per_client("run", where, lambda c: run_create(
            actor=None, agent_type="copy", task="Write a caption.", client_id=c.pk).run)

    def finished_run(self, where: str):
        from agents.models import AgentRun, RunStatus

        def make(client):
            run = self.run(where)  # finished as the worker's run_finish would leave it
            AgentRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, output=f"A caption for {client}.")
            return run

        return self._per_client("finished", where, make)

    def approval(self, where: str):
        def make(client):
            from agents.loop import execute_run
            from agents.models import ApprovalRequest, RunStatus
            from agents.services import run_create
            from tuning.services import instance_tuning_update

            from ..skills.conftest import text_turn, tool_turn

            model = self.fixture("scripted")
            instance_tuning_update(actor=None, changes={"require_approval_for": ["save_draft"]}, reason="legal")
            marker = f"policy-{uuid.uuid4().hex[:8]}"
            model.script(marker, [tool_turn(("toolu_p1", "save_draft", {"content": "Glow."})), text_turn()])
            run = run_create(actor=None, agent_type="copy", task=f"{marker}: caption", client_id=client.pk,
                             sandbox=True).run
            assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.AWAITING_APPROVAL
            return ApprovalRequest.objects.get(run=run)

        return self._per_client("approval", where, make)

    def rule(self, where: str):
        from tuning.services import client_rule_add

        return self._per_client("rule", where, lambda c: client_rule_add(
            actor=None, client=c, kind="never", text=f"Mention {c.name}'s rivals"))

    def example(self, where: str):
        from tuning.services import client_example_add

        return self._per_client("example", where, lambda c: client_example_add(
            actor=None, client=c, kind="caption", text="Glow, naturally."))

    def audit_entry(self, where: str):
        from tuning.models import TuningChange

        return self._per_client("entry", where, lambda c: TuningChange.objects.get(
            entity="content_rule", entity_id=str(self.rule(where).pk)))

    def analysis(self, where: str):
        from feedback.services import analysis_run

        return self._per_client("analysis", where, lambda c: analysis_run(client=c, use_model=False))

    @cached_property
    def skill(self):
        from skills.services import skill_create

        return skill_create(actor=None, name="conflict_check", description="Checks conflicts.",
                            input_schema={"type": "object"}, execution_type="internal", handler="check_conflicts",
                            agent_types=["copy"]).skill

    @cached_property
    def session(self):
        from versions.services import sandbox_create

        return sandbox_create(actor=None, agent_type="media_buying", test_version="2.3.1")


# --- probes: one request each, through the API or the admin ------------------------------------


@dataclass(frozen=True)
class Probe:
    action: str
    surface: str  # api | admin
    where: str | None  # mine | other | None (no client involved)
    call: Callable[[World, Any, Any], Any]  # (world, http, client or None) -> response
    hidden_status: int = 404
    marker: bytes | None = None  # an admin page whose answer is a part of it (a field, a form)

    @property
    def id(self) -> str:
        return f"{self.action}:{self.surface}:{self.where or '-'}"


def _memory(world: World, client):
    from tuning.services import memory_propose

    return world._per_client("memory", _where(world, client), lambda c: memory_propose(
        actor=None, client=c, text=f"{c.name} prefers British spelling."))


def _thread(world: World, client):
    from agents.threads import thread_create

    return world._per_client("thread", _where(world, client), lambda c: thread_create(
        actor=None, agent_type="copy", client_id=c.pk, title=f"Captions for {c.name}").thread)


def _subscription(world: World):
    from spokestack.webhooks.models import WebhookSubscription

    return world._per_client("webhook", "mine", lambda c: WebhookSubscription.objects.create(
        url="https://hooks.example.com/spokestack", event_types=["run.failed"]))


def _markdown_file(name: str, text: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, text)


def _read(response):
    """A streamed download as a plain response (the matrix reads `content`)."""
    from django.http import HttpResponse

    if not getattr(response, "streaming", False):
        return response
    return HttpResponse(b"".join(response.streaming_content), status=response.status_code)


def _document(world: World, client):
    from tuning.knowledge.services import document_upload

    return world._per_client("document", _where(world, client), lambda c: document_upload(
        actor=None, client=c, title=f"{c.name} brand guidelines",
        uploaded_file=_markdown_file("guidelines.md", b"# Voice\nWarm and plain.")))


def _eval_case(world: World, client):
    from versions.evals.services import eval_case_create

    return world._per_client("eval_case", _where(world, client), lambda c: eval_case_create(
        actor=None, data={"agent_type": "copy", "task": f"A caption for {c.name}.", "client_id": c.pk}))


def _both(action: str, surface: str, call, **kwargs) -> list[Probe]:
    return [Probe(action, surface, where, call, **kwargs) for where in ("mine", "other")]


def _api(action, call, where=None, **kw):
    return [Probe(action, "api", where, call, **kw)]


def _admin(action, call, where=None, **kw):
    return [Probe(action, "admin", where, call, **kw)]


J = {"format": "json"}
PROBES: list[Probe] = [
    *_api("profile.view", lambda w, h, c: h.get("/api/v1/me")),
    *_api("token.create", lambda w, h, c: h.post("/api/v1/tokens", {"name": "ERP sync"}, **J)),
    *_admin("token.create", lambda w, h, c: h.get("/admin/accounts/apitoken/add/")),
    *_admin("user.view", lambda w, h, c: h.get("/admin/auth/user/")),
    *_admin("user.view", lambda w, h, c: h.get("/admin/auth/group/")),
    *_admin("user.manage", lambda w, h, c: h.get("/admin/auth/user/add/")),
    *_api("agent.view", lambda w, h, c: h.get("/api/v1/agents")),
    # runs
    *_both("run.create", "api", lambda w, h, c: h.post("/api/v1/agent/execute", {
        "agent_type": "copy", "task": "Write a caption.", "client_id": c.pk}, **J), hidden_status=400),
    *_admin("run.create", lambda w, h, c: h.get("/admin/agents/agentrun/run/")),
    *_api("run.view", lambda w, h, c: h.get("/api/v1/agent/runs")),
    *_both("run.view", "api", lambda w, h, c: h.get(f"/api/v1/agent/status/{w.run(_where(w, c)).pk}")),
    *_admin("run.view", lambda w, h, c: h.get("/admin/agents/agentrun/")),
    *_both("run.view", "admin", lambda w, h, c: h.get(f"/admin/agents/agentrun/{w.run(_where(w, c)).pk}/change/")),
    *_both("run.cancel", "api", lambda w, h, c: h.delete(f"/api/v1/agent/task/{w.run(_where(w, c)).pk}")),
    *_admin("run.cancel", lambda w, h, c: h.post("/admin/agents/agentrun/", {
        "action": "cancel_runs", "_selected_action": [str(w.run("mine").pk)], "index": "0"}), where="mine"),
    *_both("run.cancel", "admin", lambda w, h, c: h.post(f"/admin/agents/agentrun/{w.run(_where(w, c)).pk}/cancel/")),
    # usage and budgets (issue #20)
    *_both("usage.view", "api", lambda w, h, c: h.get(f"/api/v1/usage?client_id={c.pk}")),
    *_both("usage.view", "api", lambda w, h, c: h.get(f"/api/v1/usage.csv?client_id={c.pk}")),
    *_admin("usage.view", lambda w, h, c: h.get("/admin/usage/usagedaily/")),
    *_both("usage.view", "admin", lambda w, h, c: h.get(f"/admin/usage/usagedaily/?client_id={c.pk}")),
    *_both("usage.view", "admin", lambda w, h, c: h.get(f"/admin/usage/usagedaily/export.csv?client_id={c.pk}")),
    # budgets (issue #20)
    *_api("budget.manage", lambda w, h, c: h.get("/api/v1/budgets")),
    *_api("budget.manage", lambda w, h, c: h.put(f"/api/v1/budgets/clients/{w.mine.pk}",
                                                 {"monthly_limit_usd": "5"}, **J)),
    *_admin("budget.manage", lambda w, h, c: h.get("/admin/usage/budget/")),
    # event webhooks (issue #21)
    *_api("webhook.view", lambda w, h, c: h.get("/api/v1/webhooks")),
    *_api("webhook.view", lambda w, h, c: h.get(f"/api/v1/webhooks/{_subscription(w).pk}/deliveries")),
    *_admin("webhook.view", lambda w, h, c: h.get("/admin/webhooks/webhooksubscription/")),
    *_admin("webhook.view", lambda w, h, c: h.get("/admin/webhooks/webhookdelivery/")),
    *_api("webhook.manage", lambda w, h, c: h.patch(f"/api/v1/webhooks/{_subscription(w).pk}",
                                                    {"description": "ERP"}, **J)),
    *_admin("webhook.manage", lambda w, h, c: h.get("/admin/webhooks/webhooksubscription/add/")),
    # threads
    *_both("thread.create", "api", lambda w, h, c: h.post("/api/v1/threads", {
        "agent_type": "copy", "client_id": c.pk}, **J), hidden_status=400),
    *_api("thread.view", lambda w, h, c: h.get("/api/v1/threads")),
    *_both("thread.view", "api", lambda w, h, c: h.get(f"/api/v1/threads/{_thread(w, c).pk}")),
    *_admin("thread.view", lambda w, h, c: h.get("/admin/agents/thread/")),
    *_both("thread.view", "admin", lambda w, h, c: h.get(f"/admin/agents/thread/{_thread(w, c).pk}/change/")),
    *_both("thread.message", "api", lambda w, h, c: h.post(f"/api/v1/threads/{_thread(w, c).pk}/messages", {
        "message": "Shorter."}, **J)),
    *_both("thread.close", "api", lambda w, h, c: h.delete(f"/api/v1/threads/{_thread(w, c).pk}")),
    # approvals
    *_api("approval.view", lambda w, h, c: h.get("/api/v1/approvals")),
    *_api("approval.rule.manage", lambda w, h, c: h.get("/api/v1/approval-rules")),
    *_api("approval.rule.manage", lambda w, h, c: h.post("/api/v1/approval-rules", {
        "tool_name": "request_discount_approval", "field_path": "discount_pct", "op": "<=", "value": 5}, **J)),
    *_admin("approval.rule.manage", lambda w, h, c: h.get("/admin/agents/approvalrule/")),
    *_both("approval.decide", "admin", lambda w, h, c: h.post(
        f"/admin/agents/agentrun/{w.approval(_where(w, c)).run_id}/approvals/{w.approval(_where(w, c)).pk}/decide/",
        {"note": "", "_approve": "1"})),
    *_admin("approval.view", lambda w, h, c: h.get("/admin/agents/approvalrequest/")),
    *_both("approval.view", "admin", lambda w, h, c: h.get(
        f"/admin/agents/approvalrequest/{w.approval(_where(w, c)).pk}/change/")),
    *_both("approval.decide", "api", lambda w, h, c: h.post(
        f"/api/v1/approvals/{w.approval(_where(w, c)).pk}/approve", {}, **J)),
    *_both("approval.decide", "admin", lambda w, h, c: h.post(
        f"/admin/agents/approvalrequest/{w.approval(_where(w, c)).pk}/change/", {"note": "", "_approve": "1"})),
    # clients and tier 3
    *_api("client.view", lambda w, h, c: h.get("/api/v1/clients")),
    *_both("client.view", "api", lambda w, h, c: h.get(f"/api/v1/clients/{c.pk}")),
    *_both("client.view", "api", lambda w, h, c: h.get(f"/api/v1/clients/{c.pk}/rules")),
    *_admin("client.view", lambda w, h, c: h.get("/admin/tuning/client/")),
    *_both("client.view", "admin", lambda w, h, c: h.get(f"/admin/tuning/client/{c.pk}/change/")),
    *_admin("client.create", lambda w, h, c: h.get("/admin/tuning/client/add/")),
    *_both("client.edit", "api", lambda w, h, c: h.patch(f"/api/v1/clients/{c.pk}", {"region": "EU"}, **J)),
    *_admin("client.edit", lambda w, h, c: h.get(f"/admin/tuning/client/{c.pk}/change/"), where="mine",
            marker=b'name="name"'),
    *_admin("client.assign", lambda w, h, c: h.get(f"/admin/tuning/client/{c.pk}/change/"), where="mine",
            marker=b'id="id_account_managers"'),
    # keeping the platform in step with an ERP (#14): clients, assignments, people
    *_api("client.create", lambda w, h, c: h.post("/api/v1/clients", {"name": "Probe Client"}, **J)),
    *_both("client.edit", "api", lambda w, h, c: h.post(f"/api/v1/clients/{c.pk}/archive", {}, **J)),
    *_both("client.edit", "api", lambda w, h, c: h.post(f"/api/v1/clients/{c.pk}/unarchive", {}, **J)),
    *_both("client.assign", "api", lambda w, h, c: h.get(f"/api/v1/clients/{c.pk}/assignments")),
    *_both("client.assign", "api", lambda w, h, c: h.post(f"/api/v1/clients/{c.pk}/assignments", {
        "user_id": w.fixture("make_user")("account_manager").pk}, **J)),
    *_both("client.assign", "api", lambda w, h, c: h.delete(
        f"/api/v1/clients/{c.pk}/assignments/{w.fixture('assigned')('account_manager', c).pk}")),
    *_api("user.view", lambda w, h, c: h.get("/api/v1/users")),
    *_api("user.view", lambda w, h, c: h.get(f"/api/v1/users/{w.fixture('make_user')('client_contact').pk}")),
    *_api("user.manage", lambda w, h, c: h.post("/api/v1/users", {"email": "probe@example.com",
                                                                   "role": "client_contact"}, **J)),
    *_api("user.manage", lambda w, h, c: h.patch(f"/api/v1/users/{w.fixture('make_user')('client_contact').pk}",
                                                 {"first_name": "Probe"}, **J)),
    *_api("user.manage", lambda w, h, c: h.delete(f"/api/v1/users/{w.fixture('make_user')('client_contact').pk}")),
    *_both("client_tuning.edit", "api", lambda w, h, c: h.put(f"/api/v1/clients/{c.pk}/tuning",
                                                              {"brand_voice": "Playful."}, **J)),
    *_both("preferences.edit", "api", lambda w, h, c: h.put(f"/api/v1/clients/{c.pk}/tuning",
                                                            {"length_preferences": {"caption": "short"}}, **J)),
    *_both("client_rule.add", "api", lambda w, h, c: h.post(f"/api/v1/clients/{c.pk}/rules",
                                                           {"kind": "never", "text": "Mention prices"}, **J)),
    *_both("client_rule.change", "api", lambda w, h, c: h.patch(
        f"/api/v1/clients/{c.pk}/rules/{w.rule(_where(w, c)).pk}", {"text": "Mention discounts"}, **J)),
    *_both("client_rule.remove", "api", lambda w, h, c: h.delete(
        f"/api/v1/clients/{c.pk}/rules/{w.rule(_where(w, c)).pk}")),
    *_both("example.add", "api", lambda w, h, c: h.post(f"/api/v1/clients/{c.pk}/examples",
                                                       {"kind": "caption", "text": "Glow."}, **J)),
    *_both("example.remove", "api", lambda w, h, c: h.delete(
        f"/api/v1/clients/{c.pk}/examples/{w.example(_where(w, c)).pk}")),
    *_both("memory.view", "api", lambda w, h, c: h.get(f"/api/v1/memories/{_memory(w, c).pk}")),
    *_both("memory.propose", "api", lambda w, h, c: h.post(
        "/api/v1/memories", {"client_id": c.pk, "text": "Prefers teal.", "status": "proposed"}, **J)),
    *_both("memory.decide", "api", lambda w, h, c: h.post(f"/api/v1/memories/{_memory(w, c).pk}/accept", **J)),
    *_both("memory.write", "api", lambda w, h, c: h.delete(f"/api/v1/memories/{_memory(w, c).pk}")),
    *_both("knowledge.view", "api", lambda w, h, c: h.get(f"/api/v1/knowledge/documents/{_document(w, c).pk}")),
    *_both("knowledge.view", "api", lambda w, h, c: _read(h.get(
        f"/api/v1/knowledge/documents/{_document(w, c).pk}/file"))),
    *_both("knowledge.upload", "api", lambda w, h, c: h.post("/api/v1/knowledge/documents", {
        "client_id": c.pk, "file": _markdown_file("tone.md", b"# Tone\nCalm.")})),
    *_both("knowledge.delete", "api", lambda w, h, c: h.delete(f"/api/v1/knowledge/documents/{_document(w, c).pk}")),
    *_both("knowledge.pin", "api", lambda w, h, c: h.post(f"/api/v1/knowledge/documents/{_document(w, c).pk}/pin",
                                                        {"excerpt": "Warm and plain."}, **J)),
    *_both("knowledge.view", "api", lambda w, h, c: h.get(f"/api/v1/knowledge/search?q=voice&client_id={c.pk}")),
    *_both("prompt.preview", "api", lambda w, h, c: h.get(f"/api/v1/agents/copy/prompt-preview?client_id={c.pk}")),
    *_admin("prompt.preview", lambda w, h, c: h.get(f"/admin/tuning/client/preview/?agent_type=copy&client={c.pk}"),
            where="mine"),
    # the audit log
    *_api("audit.view", lambda w, h, c: h.get("/api/v1/tuning/audit")),
    *_both("audit.view", "api", lambda w, h, c: h.get(f"/api/v1/clients/{c.pk}/tuning/audit")),
    *_admin("audit.view", lambda w, h, c: h.get("/admin/tuning/tuningchange/")),
    *_both("audit.view", "admin", lambda w, h, c: h.get(f"/admin/tuning/client/{c.pk}/history/")),
    *_both("audit.rollback", "api", lambda w, h, c: h.post(
        f"/api/v1/tuning/rollback/{w.audit_entry(_where(w, c)).pk}", {}, **J)),
    *_both("audit.rollback", "admin", lambda w, h, c: h.get(
        f"/admin/tuning/tuningchange/{w.audit_entry(_where(w, c)).pk}/rollback/")),
    # tier 2 and skills
    *_api("instance_tuning.view", lambda w, h, c: h.get("/api/v1/tuning")),
    *_api("instance_tuning.view", lambda w, h, c: h.get("/api/v1/agents/copy/tuning")),
    *_admin("instance_tuning.view", lambda w, h, c: h.get("/admin/tuning/instancetuning/")),
    *_api("instance_tuning.edit", lambda w, h, c: h.put("/api/v1/tuning", {"prompt_extension": "Cite sources."}, **J)),
    *_api("skill.view", lambda w, h, c: h.get("/api/v1/agents/copy/skills")),
    *_api("skill.view", lambda w, h, c: h.get(f"/api/v1/skills/{w.skill.pk}")),
    *_admin("skill.view", lambda w, h, c: h.get("/admin/skills/skill/")),
    *_api("skill.edit", lambda w, h, c: h.patch(f"/api/v1/skills/{w.skill.pk}", {"description": "Changed."}, **J)),
    *_admin("skill.edit", lambda w, h, c: h.get("/admin/skills/skill/add/")),
    *_api("skill.test", lambda w, h, c: h.post(f"/api/v1/skills/{w.skill.pk}/test", {"input": {}}, **J)),
    *_admin("skill.test", lambda w, h, c: h.get(f"/admin/skills/skill/{w.skill.pk}/test/")),
    # agency-built agents and the tool library
    *_api("agent.view", lambda w, h, c: h.get("/api/v1/tools")),
    *_api("studio.view", lambda w, h, c: h.get("/api/v1/studio/agents")),
    *_api("studio.view", lambda w, h, c: h.get("/api/v1/studio/schema")),
    *_api("studio.build", lambda w, h, c: h.post("/api/v1/studio/agents", {"slug": "probe_agent", "definition": {}},
                                                 **J)),
    *_api("studio.build", lambda w, h, c: h.post("/api/v1/studio/agents/import", {}, **J)),
    *_admin("studio.view", lambda w, h, c: h.get("/admin/studio/agencyagent/")),
    *_admin("studio.build", lambda w, h, c: h.get("/admin/studio/agencyagent/add/")),
    *_admin("studio.build", lambda w, h, c: h.get("/admin/studio/agencyagent/import/")),
    # versions and sandboxes
    *_api("version.view", lambda w, h, c: h.get("/api/v1/agents/copy/version")),
    *_api("version.view", lambda w, h, c: h.get("/api/v1/agents/copy/versions")),
    *_api("version.view", lambda w, h, c: h.get("/api/v1/updates")),
    *_admin("version.view", lambda w, h, c: h.get("/admin/versions/agentversionconfig/")),
    *_api("version.configure", lambda w, h, c: h.put("/api/v1/agents/copy/version", {}, **J)),
    *_admin("version.configure", lambda w, h, c: h.post("/admin/versions/agentversionconfig/rollback/copy/",
                                                        {"version": "0.0.0", "reason": "probe"})),
    *_api("sandbox.view", lambda w, h, c: h.get(f"/api/v1/sandbox/{w.session.pk}")),
    *_admin("sandbox.view", lambda w, h, c: h.get(f"/admin/versions/agentversionconfig/sandbox/{w.session.pk}/")),
    *_api("sandbox.run", lambda w, h, c: h.post("/api/v1/sandbox", {"agent_type": "media_buying",
                                                                     "test_version": "2.3.1"}, **J)),
    *_admin("sandbox.run", lambda w, h, c: h.post(f"/admin/versions/agentversionconfig/sandbox/{w.session.pk}/",
                                                  {"decision": "test", "task": "Plan a launch."})),
    *_api("sandbox.decide", lambda w, h, c: h.post(f"/api/v1/sandbox/{w.session.pk}/defer", {}, **J)),
    *_admin("sandbox.decide", lambda w, h, c: h.post(f"/admin/versions/agentversionconfig/sandbox/{w.session.pk}/",
                                                     {"decision": "defer"})),
    # evals (issue 22)
    *_both("eval.view", "api", lambda w, h, c: h.get(f"/api/v1/evals/cases/{_eval_case(w, c).pk}")),
    *_admin("eval.view", lambda w, h, c: h.get("/admin/versions/evalcase/")),
    *_admin("eval.view", lambda w, h, c: h.get("/admin/versions/evalrun/")),
    *_both("eval.manage", "api", lambda w, h, c: h.patch(f"/api/v1/evals/cases/{_eval_case(w, c).pk}",
                                                         {"title": "probe"}, **J)),
    *_admin("eval.manage", lambda w, h, c: h.get("/admin/versions/evalcase/add/")),
    *_api("eval.run", lambda w, h, c: h.post("/api/v1/evals/runs", {"agent_type": "copy"}, **J)),
    *_admin("eval.run", lambda w, h, c: h.post("/admin/versions/evalcase/", {
        "action": "run_eval_set", "_selected_action": [_eval_case(w, w.mine).pk]})),
    # feedback
    *_both("feedback.add", "api", lambda w, h, c: h.post("/api/v1/feedback", {
        "run_id": str(w.finished_run(_where(w, c)).pk), "verdict": "approved"}, **J)),
    *_both("feedback.add", "admin", lambda w, h, c: h.post(
        f"/admin/feedback/feedback/give/{w.finished_run(_where(w, c)).pk}/", {"verdict": "approved"})),
    *_admin("feedback.view", lambda w, h, c: h.get("/admin/feedback/feedback/")),
    *_both("analysis.view", "api", lambda w, h, c: (w.analysis(_where(w, c)), h.get(
        f"/api/v1/clients/{c.pk}/feedback/analysis"))[1]),
    *_both("analysis.run", "api", lambda w, h, c: h.post(f"/api/v1/clients/{c.pk}/feedback/analysis",
                                                        {"not_a_field": 1}, **J)),
    *_both("analysis.run", "admin", lambda w, h, c: h.post(f"/admin/feedback/suggestion/analyze/{c.pk}/")),
    *_both("suggestion.view", "api", lambda w, h, c: h.get(f"/api/v1/clients/{c.pk}/feedback/suggestions")),
    *_admin("suggestion.view", lambda w, h, c: h.get("/admin/feedback/suggestion/")),
    *_both("suggestion.decide", "api", lambda w, h, c: h.post(f"/api/v1/clients/{c.pk}/feedback/apply-suggestions",
                                                             {"suggestion_ids": []}, **J)),
    *_admin("feedback_settings.view", lambda w, h, c: h.get("/admin/feedback/feedbacksettings/")),
    *_admin("feedback_settings.edit", lambda w, h, c: h.get("/admin/feedback/feedbacksettings/add/")),
]


def _where(world: World, client) -> str:
    return "mine" if client.pk == world.mine.pk else "other"


def expected(action: str, role: str, where: str | None) -> str:
    """The table's answer: allowed | refused | hidden (a client the person may not see)."""
    row = policy.rule(action)
    if role == "support":
        return "allowed" if row.support else "refused"
    if role == "no_role" or role not in row.roles:
        return "refused"
    if where == "other" and row.assigned and role in SCOPED:
        return "hidden"
    return "allowed"


def answer(probe: Probe, response) -> str:
    status = response.status_code
    assert status < 500, f"{probe.id}: {status}"
    if status == 403:
        return "refused"
    if status == probe.hidden_status:
        return "hidden"
    if probe.marker is not None:
        return "allowed" if probe.marker in response.content else "refused"
    if status in (401, 404):
        return f"HTTP {status}"
    return "allowed"


@pytest.fixture
def world(request, in_a):
    return World(request, in_a)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("probe", PROBES, ids=lambda p: p.id)
def test_permission_matrix(world, probe, role):
    user = world.user(role)
    http = world.api(user) if probe.surface == "api" else world.admin(user)
    client = world.client(probe.where) if probe.where else None
    response = probe.call(world, http, client)
    body = response.content[:300] if probe.surface == "api" else b""
    assert answer(probe, response) == expected(probe.action, role, probe.where), (probe.id, role,
                                                                                   response.status_code, body)


def test_every_action_is_asked_through_the_api_or_the_admin():
    assert set(policy.TABLE) - {probe.action for probe in PROBES} == set()


# --- every path asks the table ------------------------------------------------------------------


def _api_views(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _api_views(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback.cls


def test_every_instance_api_view_names_its_action_per_method():
    from spokestack.api import urls
    from spokestack.api.health import HealthView, ReadinessView
    from spokestack.api.views import InstanceApiView

    public = {HealthView, ReadinessView}  # liveness and readiness probes answer anyone
    seen = 0
    for route, view in _api_views(urls.urlpatterns):
        if view in public:
            continue
        assert issubclass(view, InstanceApiView), route
        for method in ("get", "post", "put", "patch", "delete"):
            if hasattr(view, method):
                action = view.action.get(method) if isinstance(view.action, dict) else view.action
                assert action in policy.TABLE, (route, method, action)
                seen += 1
    assert seen > 40


def test_a_view_that_names_no_action_answers_no_one(in_a, make_user):
    from rest_framework.response import Response
    from rest_framework.test import APIRequestFactory, force_authenticate

    from spokestack.api.views import InstanceApiView

    class Forgotten(InstanceApiView):
        def get(self, request):
            return Response({"leaked": True})

    request = APIRequestFactory().get("/api/v1/forgotten", HTTP_HOST=HOST_A)
    force_authenticate(request, user=make_user("instance_admin"))
    response = Forgotten.as_view()(request)
    assert response.status_code == 403 and "leaked" not in response.data


def test_every_instance_admin_page_and_inline_asks_the_policy():
    from spokestack.admin_site import InstanceInline, InstanceModelAdmin, instance_admin

    for model, model_admin in instance_admin._registry.items():
        assert isinstance(model_admin, InstanceModelAdmin), model
        assert model_admin.view_action in policy.TABLE, model
        for name in ("add_action", "change_action", "delete_action"):
            assert getattr(model_admin, name) in (None, *policy.TABLE), (model, name)
        for inline in model_admin.inlines:
            assert issubclass(inline, InstanceInline), inline
            assert inline.view_action in policy.TABLE, inline


def test_role_groups_carry_exactly_the_generated_model_permissions(in_a):
    from django.contrib.auth.models import Permission

    existing = {f"{a}.{c}" for a, c in Permission.objects.values_list("content_type__app_label", "codename")}
    generated = policy.role_model_permissions()
    assert {name for names in generated.values() for name in names} - existing == set(), "a typo in the table"
    for role, names in generated.items():
        group = Group.objects.get(name=role)
        held = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}
        assert held == set(names), role


def test_a_policy_check_is_a_lookup(in_a, assigned, make_user):
    from tuning.services import client_create

    mine, other = client_create(name="Mine Cosmetics"), client_create(name="Other Bank")
    people = [assigned("account_manager", mine), assigned("client_contact", mine), make_user("instance_manager")]
    for person in people:
        policy.allows(person, "client.view", mine)  # reads the roles and the assignments once
    with CaptureQueriesContext(connection) as queries:
        for person in people:
            for action in policy.TABLE:
                for client in (None, mine, other.pk):
                    policy.allows(person, action, client)
    assert len(queries) == 0


def test_readme_matrix_is_the_commands_output():
    out = io.StringIO()
    call_command("access_matrix", stdout=out)
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- access-matrix:start.*?-->\n(.*?)<!-- access-matrix:end -->", readme, re.S)
    assert found, "README.md has no access matrix between the markers"
    assert found.group(1) == out.getvalue(), "run `manage.py access_matrix` and paste its output into the README"


# --- finding 4 of issue #13: admin and API role holes -------------------------------------------


@pytest.fixture
def two_clients(in_a):
    from tuning.services import client_create

    return client_create(name="Mine Cosmetics"), client_create(name="Other Bank")


def test_an_account_manager_gets_403_not_500_on_the_agents_and_versions_page(two_clients, assigned):
    manager = assigned("account_manager", two_clients[0])
    assert World.admin(manager).get("/admin/versions/agentversionconfig/").status_code == 403


def test_an_account_manager_cannot_see_a_sandbox_comparison(two_clients, assigned):
    from versions.services import sandbox_create

    session = sandbox_create(actor=None, agent_type="media_buying", test_version="2.3.1")
    manager = assigned("account_manager", two_clients[0])
    page = World.admin(manager).get(f"/admin/versions/agentversionconfig/sandbox/{session.pk}/")
    assert page.status_code == 403 and b"2.3.1" not in page.content


def test_a_client_contact_cannot_cancel_runs(two_clients, assigned, api):
    from agents.models import RunStatus
    from agents.services import run_cancel, run_create

    mine = two_clients[0]
    run = run_create(actor=None, agent_type="copy", task="Write a caption.", client_id=mine.pk).run
    contact = assigned("client_contact", mine)
    assert api(connection.tenant, contact).delete(f"/api/v1/agent/task/{run.pk}").status_code == 403
    with pytest.raises(NotAllowed):
        run_cancel(actor=contact, run=run)
    admin_page = World.admin(contact).post("/admin/agents/agentrun/", {
        "action": "cancel_runs", "_selected_action": [str(run.pk)], "index": "0"})
    assert admin_page.status_code == 403
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and not run.cancel_requested


def test_scoped_people_see_only_their_clients_in_the_runs_filter(two_clients, assigned):
    from agents.services import run_create

    mine, other = two_clients
    for client in two_clients:
        run_create(actor=None, agent_type="copy", task="Write a caption.", client_id=client.pk)
    mine_too = run_create(actor=None, agent_type="copy", task="x", client_id=mine.pk).run
    assert mine_too.client == mine
    for role in ("account_manager", "client_contact"):
        page = World.admin(assigned(role, mine)).get("/admin/agents/agentrun/")
        assert page.status_code == 200 and b"Mine Cosmetics" in page.content
        assert b"Other Bank" not in page.content, role
