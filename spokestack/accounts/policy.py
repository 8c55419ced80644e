"""Who may do what in an instance (DESIGN §10): one table, asked by every path.

Each `Rule` is one action: the roles that may take it, whether an account manager or a client
contact must be assigned to the object's client (a guardian object permission on the `Client`
row: `tuning.manage_client` for an account manager, `tuning.contact_client` for a client
contact, given by `tuning.services.client_assign`), and whether platform support (a superuser)
may take it. Instance admins and instance managers act on every client.

Services call `require(actor, action, client=…)`; `visible_clients(actor)` scopes every
queryset; the API base view (`spokestack.api.views.InstanceApiView`) and the admin base class
(`spokestack.admin_site.InstanceModelAdmin`) ask `allows`/`require` with the action they name;
the role groups' Django model permissions are generated from `Rule.model_perms`. A new feature
adds rows here, never a check of its own.

`client=None` asks at the role level ("may this role take this action at all?"): the API base
view asks it before it knows the object, and an object that belongs to no client is judged by
it (the scoped selectors decide whether the actor sees that object at all). With a client, a
scoped role must be assigned to it. `actor=None` is the system itself (a shell, a scheduled job),
which may do everything; the audit log names it.

Answers are lookups: an actor's roles and the clients they are assigned to are read once per
user object (two queries) and kept on it; `forget(actor)` drops them after an assignment changes.

Refusals: a role that may never take the action gets NotAllowed (403) whatever the client; a role
that may, asked about a client the actor cannot see, gets NotFound (404), so a client's existence
does not leak.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.apps import apps
from django.contrib.auth.models import AbstractUser
from django.db.models import Model, QuerySet

from spokestack.errors import NotAllowed, NotFound

from .roles import Role, is_support, roles_of

IA, IM, AM, CC = Role.INSTANCE_ADMIN, Role.INSTANCE_MANAGER, Role.ACCOUNT_MANAGER, Role.CLIENT_CONTACT
EVERY_ROLE = (IA, IM, AM, CC)

# The roles that act only on the clients they are assigned to, and the object permission
# (on the Client row, app `tuning`) that assigns them.
MANAGE = "manage_client"
CONTACT = "contact_client"
SCOPED_ROLES: dict[str, str] = {AM: MANAGE, CC: CONTACT}


@dataclass(frozen=True)
class Rule:
    action: str
    roles: frozenset[str]
    assigned: bool  # account managers and client contacts act only on clients assigned to them
    support: bool  # platform support (a superuser) may act
    why: str  # the reason for this row's answers, shown in the README's matrix
    model_perms: tuple[str, ...] = ()  # Django model permissions the roles' groups get for it
    what: str = ""  # "Your role does not allow you to {what}."

    @property
    def refusal(self) -> str:
        return f"Your role does not allow you to {self.what or self.action.replace('.', ' ').replace('_', ' ')}."


def _rule(action: str, roles: Iterable[str], *, assigned: bool, support: bool, why: str, what: str = "",
          perms: Iterable[str] = ()) -> Rule:
    return Rule(action=action, roles=frozenset(roles), assigned=assigned, support=support, why=why, what=what,
                model_perms=tuple(perms))


RULES: tuple[Rule, ...] = (
    # --- you ----------------------------------------------------------------------------------
    _rule("profile.view", EVERY_ROLE, assigned=False, support=True,
          why="Everyone with a role may see whose credentials they hold and in which instance.",
          what="see your profile"),
    _rule("token.create", EVERY_ROLE, assigned=False, support=False,
          why="Your own tokens (create, list, revoke). A token carries only its owner's rights, so it grants nothing new. Support works in audited "
              "sessions and keeps no long-lived credentials in an agency's instance.",
          what="create, list or revoke your API tokens", perms=["accounts.view_apitoken", "accounts.add_apitoken"]),
    _rule("user.view", (IA, IM), assigned=False, support=True,
          why="Managers assign people to clients, so they see who exists.",
          what="see the people of this instance", perms=["auth.view_user", "auth.view_group"]),
    _rule("user.manage", (IA,), assigned=False, support=True,
          why="Who holds which role is the agency admin's decision; this includes everyone's API tokens.",
          what="manage people, roles and their API tokens",
          perms=["auth.add_user", "auth.change_user", "accounts.change_apitoken", "accounts.delete_apitoken"]),
    # --- agents and runs ----------------------------------------------------------------------
    _rule("agent.view", (IA, IM, AM), assigned=False, support=True,
          why="Whoever may run agents sees which agents and tools exist; a client contact sees runs, not the catalog.",
          what="see the agents of this instance"),
    _rule("run.create", (IA, IM, AM), assigned=True, support=False,
          why="Running agents is agency work: a client contact reviews the output instead. An account manager "
              "runs agents for their clients only. Support does not act as the agency (runs cost it money and "
              "speak in its name).",
          what="run agents", perms=["agents.add_agentrun"]),
    _rule("run.view", EVERY_ROLE, assigned=True, support=True,
          why="A client contact follows their client's runs to judge the output.",
          what="see runs", perms=["agents.view_agentrun", "agents.view_runevent", "agents.view_toolcall",
                                  "agents.view_artifact"]),
    _rule("run.cancel", (IA, IM, AM), assigned=True, support=True,
          why="Stopping work is the agency's decision: a client contact rejects or corrects the output instead. "
              "Support may stop a runaway run.",
          what="cancel runs", perms=["agents.cancel_agentrun"]),
    _rule("thread.view", EVERY_ROLE, assigned=True, support=True,
          why="A thread is a sequence of runs: whoever may see a client's runs sees its threads.",
          what="see threads", perms=["agents.view_thread"]),
    _rule("thread.create", (IA, IM, AM), assigned=True, support=False,
          why="A thread runs agents, as an execute does: agency work, for an account manager's own clients.",
          what="start threads"),
    _rule("thread.message", (IA, IM, AM), assigned=True, support=False,
          why="Each message starts a run, as an execute does.",
          what="send messages to threads"),
    _rule("thread.close", (IA, IM, AM), assigned=True, support=False,
          why="Closing ends the conversation for everyone on the client; whoever may run its agents may close it.",
          what="close threads"),
    _rule("approval.view", (IA, IM, AM), assigned=True, support=True,
          why="Approvals are the agency's gate before anything leaves it; an account manager sees their "
              "clients' requests.",
          what="see approval requests", perms=["agents.view_approvalrequest"]),
    _rule("approval.decide", (IA, IM, AM), assigned=True, support=False,
          why="A person of the agency decides what is sent in its name; support never approves.",
          what="decide approval requests", perms=["agents.change_approvalrequest"]),
    _rule("approval.rule.manage", (IA,), assigned=False, support=False,
          why="A rule approves calls without asking anyone, or decides who is asked first: the agency admin's "
              "decision, like who holds which role.",
          what="manage approval rules", perms=["agents.view_approvalrule", "agents.add_approvalrule",
                                               "agents.change_approvalrule", "agents.delete_approvalrule"]),
    # --- clients and tier 3 -------------------------------------------------------------------
    _rule("client.view", EVERY_ROLE, assigned=True, support=True,
          why="Everyone sees the clients they work on, with their tuning, rules and examples.",
          what="see this client", perms=["tuning.view_client", "tuning.view_clienttuning",
                                         "tuning.view_contentrule", "tuning.view_approvedexample"]),
    _rule("client.create", (IA,), assigned=False, support=True,
          why="Which brands the agency works for is the agency admin's decision.",
          what="create clients", perms=["tuning.add_client"]),
    _rule("client.edit", (IA,), assigned=True, support=True,
          why="Vertical, region and language change every agent's specialization for the client.",
          what="change a client's details", perms=["tuning.change_client"]),
    _rule("client.assign", (IA, IM), assigned=True, support=True,
          why="Managers staff clients; an account manager cannot widen their own access.",
          what="assign people to clients"),
    _rule("client_tuning.edit", (IA, IM, AM), assigned=True, support=True,
          why="Tier 3 is tuned by the agency's people for the client; a client contact changes only their "
              "preferences (preferences.edit).",
          what="change this client's tuning",
          perms=["tuning.add_clienttuning", "tuning.change_clienttuning"]),
    _rule("preferences.edit", EVERY_ROLE, assigned=True, support=True,
          why="Format and length preferences are the client's own to state.",
          what="change this client's preferences",
          perms=["tuning.add_clienttuning", "tuning.change_clienttuning"]),
    _rule("client_rule.add", (IA, IM, AM), assigned=True, support=True,
          why="Always/never/prefer rules steer every output; the agency's people write them.",
          what="change this client's rules", perms=["tuning.add_contentrule"]),
    _rule("client_rule.change", (IA, IM, AM), assigned=True, support=True,
          why="As adding a rule.", what="change this client's rules", perms=["tuning.change_contentrule"]),
    _rule("client_rule.remove", (IA, IM, AM), assigned=True, support=True,
          why="As adding a rule.", what="change this client's rules", perms=["tuning.delete_contentrule"]),
    _rule("example.add", EVERY_ROLE, assigned=True, support=True,
          why="The client says what it approves of: a client contact adds approved examples.",
          what="add examples for this client", perms=["tuning.add_approvedexample"]),
    _rule("example.remove", (IA, IM, AM), assigned=True, support=True,
          why="Removing what was approved is for the people who tune the client.",
          what="remove examples for this client", perms=["tuning.delete_approvedexample"]),
    _rule("memory.view", EVERY_ROLE, assigned=True, support=True,
          why="What agents are told about a client is readable by everyone who works on it, the client included; "
              "agency-wide memories by instance admins and managers.",
          what="see this client's memories", perms=["tuning.view_memory"]),
    _rule("memory.propose", EVERY_ROLE, assigned=True, support=False,
          why="Anyone who works on the client may propose a fact (as agents do with remember); a proposal is "
              "told to no run until the agency accepts it.",
          what="propose memories for this client", perms=["tuning.add_memory"]),
    _rule("memory.decide", (IA, IM, AM), assigned=True, support=True,
          why="Accepting a memory changes every run for the client, as a client rule does: a client contact "
              "proposes, the agency decides.",
          what="accept or reject this client's memories", perms=["tuning.change_memory"]),
    _rule("memory.write", (IA, IM, AM), assigned=True, support=True,
          why="Writing, editing or deleting a memory directly is as accepting one.",
          what="write or delete this client's memories", perms=["tuning.add_memory", "tuning.change_memory",
                                                               "tuning.delete_memory"]),
    _rule("knowledge.view", EVERY_ROLE, assigned=True, support=True,
          why="A client's documents are what its agents are told to cite: readable by everyone who works on it, "
              "the client included; instance-wide documents by everyone.",
          what="see this client's documents", perms=["knowledge.view_document"]),
    _rule("knowledge.upload", EVERY_ROLE, assigned=True, support=False,
          why="The client owns its brand guidelines: a client contact may upload for their client. Instance-wide "
              "documents are uploaded by instance admins and managers.",
          what="upload documents for this client", perms=["knowledge.add_document"]),
    _rule("knowledge.delete", (IA, IM, AM), assigned=True, support=True,
          why="Removing a document changes what every agent of the client can cite: the agency decides.",
          what="delete this client's documents", perms=["knowledge.delete_document"]),
    _rule("knowledge.pin", (IA, IM, AM), assigned=True, support=True,
          why="A pinned excerpt is told to every run for the client, as a client rule is.",
          what="pin this client's documents into its prompt", perms=["knowledge.change_document"]),
    _rule("prompt.preview", (IA, IM, AM), assigned=True, support=True,
          why="A preview shows tier 2 too; an account manager previews their clients' prompts only (without a "
              "client a preview is instance_tuning.view).",
          what="preview prompts"),
    _rule("audit.view", (IA, IM, AM), assigned=True, support=True,
          why="The log names the agency's staff, reasons and tickets: an account manager reads their clients' "
              "entries, a client contact none.",
          what="read the audit log", perms=["tuning.view_tuningchange"]),
    _rule("audit.rollback", (IA, IM, AM), assigned=True, support=True,
          why="A rollback goes through the service that made the change, which checks that change's row again.",
          what="roll back changes"),
    # --- tier 2 and skills --------------------------------------------------------------------
    _rule("instance_tuning.view", (IA, IM), assigned=False, support=True,
          why="Tier 2 is the agency's instance-wide configuration: admins and managers read it.",
          what="read the instance's tuning", perms=["tuning.view_instancetuning"]),
    _rule("instance_tuning.edit", (IA,), assigned=False, support=True,
          why="Tier 2 changes every client's output: instance admins only.",
          what="change the instance's tuning", perms=["tuning.add_instancetuning", "tuning.change_instancetuning"]),
    _rule("skill.view", (IA, IM), assigned=False, support=True,
          why="Skills are instance configuration (tier 2).",
          what="see skills", perms=["skills.view_skill", "skills.view_skillcall", "skills.view_mcpserver",
                                    "skills.view_mcptool", "skills.view_mcptoolcall"]),
    _rule("skill.edit", (IA,), assigned=False, support=True,
          why="A skill is code the agents call, with secrets: instance admins only.",
          what="change skills; ask an instance admin",
          perms=["skills.add_skill", "skills.change_skill", "skills.delete_skill", "skills.add_mcpserver",
                 "skills.change_mcpserver", "skills.delete_mcpserver", "skills.change_mcptool"]),
    _rule("skill.test", (IA,), assigned=False, support=True,
          why="A test calls the skill for real (a webhook fires).",
          what="test skills; ask an instance admin", perms=["skills.test_skill"]),
    # --- agency-built agents (agents.studio) -----------------------------------------------------
    _rule("studio.view", (IA, IM), assigned=False, support=True,
          why="An agency-built agent's definition is instance configuration (tier 2): its readers see the "
              "studio; account managers run the published agents (agent.view, run.create).",
          what="see agency-built agents and the tool library",
          perms=["studio.view_agencyagent", "studio.view_agentversion"]),
    _rule("studio.build", (IA,), assigned=False, support=True,
          why="An agent's instructions and tools speak for the agency to every client: instance admins build, "
              "test, publish, roll back, archive and import them.",
          what="build agents; ask an instance admin",
          perms=["studio.add_agencyagent", "studio.change_agencyagent", "studio.add_agentversion"]),
    # --- versions and sandboxes ---------------------------------------------------------------
    _rule("version.view", (IA, IM), assigned=False, support=True,
          why="The agents-and-versions page is instance configuration (tier-2 readers); account managers "
              "and client contacts work through runs.",
          what="see agent versions",
          perms=["versions.view_agentversionconfig", "versions.view_versionchange",
                 "versions.view_updatenotification"]),
    _rule("version.configure", (IA,), assigned=False, support=True,
          why="Which version runs (pin, policy, rollback, reviewing an update, proposing a skill to the core) "
              "changes every client's output.",
          what="manage agent versions",
          perms=["versions.change_agentversionconfig", "versions.change_updatenotification"]),
    _rule("sandbox.view", (IA, IM), assigned=False, support=True,
          why="A comparison holds outputs for any client of the instance: tier-2 readers only.",
          what="see sandbox comparisons", perms=["versions.view_sandboxsession", "versions.view_sandboxtest"]),
    _rule("sandbox.run", (IA,), assigned=False, support=False,
          why="Opening a sandbox and testing in it run both versions (model tokens, any client's data); "
              "support does not run agents (run.create).",
          what="run sandbox tests", perms=["versions.add_sandboxsession", "versions.add_sandboxtest"]),
    _rule("sandbox.decide", (IA,), assigned=False, support=True,
          why="Promoting or rejecting a version changes what runs for every client.",
          what="decide sandbox sessions", perms=["versions.change_sandboxsession"]),
    _rule("eval.view", (IA, IM, AM), assigned=True, support=True,
          why="Eval cases and results hold clients' tasks and outputs: managers see every client's, an account "
              "manager their clients' cases and results only.",
          what="see eval cases and results",
          perms=["versions.view_evalcase", "versions.view_evalrun", "versions.view_evalresult"]),
    _rule("eval.manage", (IA, IM, AM), assigned=True, support=False,
          why="Writing a case costs nothing and an account manager knows their clients' brief best: they write "
              "cases for their clients (a case without a client is a manager's); running them is eval.run.",
          what="write eval cases",
          perms=["versions.add_evalcase", "versions.change_evalcase", "versions.delete_evalcase"]),
    _rule("eval.run", (IA, IM), assigned=False, support=False,
          why="An eval run runs every case of a set (model tokens, any client's data) in sandbox mode; "
              "support does not run agents (run.create).",
          what="run eval sets", perms=["versions.add_evalrun"]),
    # --- usage and budgets (usage) -------------------------------------------------------------
    _rule("usage.view", (IA, IM, AM), assigned=True, support=True,
          why="What the agents cost: managers see the whole instance, an account manager their clients' usage only. "
              "A client contact sees runs, not the agency's costs.",
          what="see usage and costs", perms=["usage.view_usagedaily"]),
    _rule("budget.manage", (IA,), assigned=False, support=False,
          why="Budgets decide which work stops: the agency admin sets them per client and per person, never above "
              "the instance's own (its tier's, or what the platform set). Support does not set an agency's spend.",
          what="set budgets", perms=["usage.view_budget", "usage.add_budget", "usage.change_budget",
                                     "usage.delete_budget"]),
    # --- event webhooks (spokestack.webhooks) ---------------------------------------------------
    _rule("webhook.view", (IA, IM), assigned=False, support=True,
          why="Where the instance's events go and what the receivers answered: instance configuration, every "
              "client's events (secrets are never shown back).",
          what="see event webhooks and their deliveries",
          perms=["webhooks.view_webhooksubscription", "webhooks.view_webhookdelivery", "webhooks.view_webhookevent",
                 "webhooks.view_webhookattempt"]),
    _rule("webhook.manage", (IA,), assigned=False, support=False,
          why="A subscription sends every client's events to a URL outside the platform: the agency admin decides "
              "where (and may redeliver).",
          what="change event webhooks; ask an instance admin",
          perms=["webhooks.add_webhooksubscription", "webhooks.change_webhooksubscription",
                 "webhooks.delete_webhooksubscription", "webhooks.change_webhookdelivery"]),
    # --- feedback -----------------------------------------------------------------------------
    _rule("feedback.add", EVERY_ROLE, assigned=True, support=False,
          why="Feedback teaches the client's tuning, so it comes from the agency and the client, on the "
              "client's runs; support's opinion is neither.",
          what="give feedback", perms=["feedback.add_feedback"]),
    _rule("feedback.view", EVERY_ROLE, assigned=True, support=True,
          why="Everyone who may give feedback on a client reads it.",
          what="see feedback", perms=["feedback.view_feedback"]),
    _rule("analysis.view", EVERY_ROLE, assigned=True, support=True,
          why="A client contact sees what their feedback taught; reading runs nothing.",
          what="see this client's feedback analysis", perms=["feedback.view_analysis"]),
    _rule("analysis.run", (IA, IM, AM), assigned=True, support=False,
          why="An analysis is a model request the agency pays for; it also runs on schedule.",
          what="run a feedback analysis", perms=["feedback.add_analysis"]),
    _rule("suggestion.view", EVERY_ROLE, assigned=True, support=True,
          why="A client contact sees what their feedback proposes.",
          what="see suggestions", perms=["feedback.view_suggestion"]),
    _rule("suggestion.decide", (IA, IM, AM), assigned=True, support=True,
          why="Applying a suggestion adds a client rule: as client_rule.add.",
          what="decide on this client's suggestions", perms=["feedback.change_suggestion"]),
    _rule("feedback_settings.view", (IA, IM), assigned=False, support=True,
          why="Auto-apply is instance configuration (tier-2 readers).",
          what="see the feedback settings", perms=["feedback.view_feedbacksettings"]),
    _rule("feedback_settings.edit", (IA,), assigned=False, support=True,
          why="Auto-apply lets the model change every client's rules: instance admins only.",
          what="change auto-apply", perms=["feedback.add_feedbacksettings", "feedback.change_feedbacksettings"]),
)

TABLE: dict[str, Rule] = {rule.action: rule for rule in RULES}
assert len(TABLE) == len(RULES), "one row per action"


def rule(action: str) -> Rule:
    try:
        return TABLE[action]
    except KeyError:
        raise LookupError(f"'{action}' is not an action of spokestack.accounts.policy") from None


# --- the actor's facts, read once per user object --------------------------------------------

_ASSIGNED = "_spokestack_assigned"


def assigned_client_ids(actor: AbstractUser | None) -> dict[str, frozenset[int]]:
    """{object permission codename: client ids} the actor holds (one query, then kept on the actor)."""
    if actor is None or not actor.is_active or not getattr(actor, "pk", None):
        return {}
    cached = getattr(actor, _ASSIGNED, None)
    if cached is None:
        from django.contrib.contenttypes.models import ContentType
        from guardian.models import UserObjectPermission

        Client = apps.get_model("tuning", "Client")
        found: dict[str, set[int]] = {MANAGE: set(), CONTACT: set()}
        rows = UserObjectPermission.objects.filter(
            user_id=actor.pk, content_type=ContentType.objects.get_for_model(Client),
            permission__codename__in=[MANAGE, CONTACT]).values_list("permission__codename", "object_pk")
        for codename, object_pk in rows:
            found[codename].add(int(object_pk))
        cached = {codename: frozenset(ids) for codename, ids in found.items()}
        setattr(actor, _ASSIGNED, cached)
    return cached


def forget(actor: AbstractUser | None) -> None:
    """Drop what was read about the actor (roles, assignments) after they changed."""
    if actor is None:
        return
    for attr in (_ASSIGNED, "_spokestack_roles", "_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        actor.__dict__.pop(attr, None)


def _client_pk(client: Model | int | None) -> int | None:
    if client is None:
        return None
    return client if isinstance(client, int) else client.pk


# --- the questions -----------------------------------------------------------------------------


def allows(actor: AbstractUser | None, action: str, client: Model | int | None = None) -> bool:
    """May the actor take the action (on this client)? See the module docstring for client=None."""
    row = rule(action)
    if actor is None:
        return True
    if row.support and is_support(actor):
        return True
    roles = roles_of(actor) & row.roles
    if not roles:
        return False
    client_pk = _client_pk(client)
    for role in roles:
        relation = SCOPED_ROLES.get(role)
        if relation is None or not row.assigned or client_pk is None:
            return True
        if client_pk in assigned_client_ids(actor).get(relation, ()):
            return True
    return False


def acts_on_every_client(actor: AbstractUser | None, action: str) -> bool:
    """The actor may take the action on any client, not only on assigned ones."""
    row = rule(action)
    if actor is None or (row.support and is_support(actor)):
        return True
    return any(role not in SCOPED_ROLES or not row.assigned for role in roles_of(actor) & row.roles)


def sees_every_client(actor: AbstractUser | None) -> bool:
    """The actor sees every client (the system, support, instance admins and managers)."""
    return acts_on_every_client(actor, "client.view")


def can_see_client(actor: AbstractUser | None, client: Model | int) -> bool:
    return allows(actor, "client.view", client)


def require(actor: AbstractUser | None, action: str, client: Model | int | None = None) -> None:
    """NotAllowed (403) when the actor's role may not take the action; NotFound (404) when it may but
    the client is one the actor cannot see; NotAllowed when they see it but are not assigned to act."""
    if allows(actor, action, client):
        return
    if actor is not None and not is_support(actor) and not roles_of(actor):
        raise NotAllowed("Your account has no role in this instance.", details={"action": action})
    if client is not None and allows(actor, action) and not can_see_client(actor, client):
        raise NotFound("No such client.", details={"client_id": _client_pk(client)})
    raise NotAllowed(rule(action).refusal, details={"action": action})


def clients_for(actor: AbstractUser | None, action: str) -> QuerySet:
    """The clients on which the actor may take the action (a queryset, for `client__in=`)."""
    Client = apps.get_model("tuning", "Client")
    if acts_on_every_client(actor, action):
        return Client.objects.all()
    assigned = assigned_client_ids(actor)
    ids: set[int] = set()
    for role in roles_of(actor) & rule(action).roles:
        ids |= assigned.get(SCOPED_ROLES[role], frozenset())
    return Client.objects.filter(pk__in=sorted(ids)) if ids else Client.objects.none()


def visible_clients(actor: AbstractUser | None) -> QuerySet:
    """The clients the actor may see: every client, or the ones they are assigned to. Scope every
    queryset of client data with it (`client__in=visible_clients(actor)`)."""
    return clients_for(actor, "client.view")


# --- what the table generates ------------------------------------------------------------------


def role_model_permissions() -> dict[str, list[str]]:
    """{role: ["app_label.codename", …]}: the Django model permissions of each role's group."""
    perms: dict[str, set[str]] = {role: set() for role in Role.values}
    for row in RULES:
        for role in row.roles:
            perms[role].update(row.model_perms)
    return {role: sorted(names) for role, names in perms.items()}


ROLE_HEADINGS = {IA: "Instance admin", IM: "Instance manager", AM: "Account manager", CC: "Client contact"}


def _cell(row: Rule, role: str) -> str:
    if role not in row.roles:
        return "—"
    return "their clients" if row.assigned and role in SCOPED_ROLES else "yes"


def matrix_markdown() -> str:
    """The table as Markdown (the README's matrix; `manage.py access_matrix` prints it)."""
    head = ["Action", *ROLE_HEADINGS.values(), "Platform support", "Why"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for row in RULES:
        cells = [f"`{row.action}`", *(_cell(row, role) for role in ROLE_HEADINGS),
                 "yes" if row.support else "—", row.why]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
