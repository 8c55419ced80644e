"""Agent runs, their event logs, tool calls and artifacts (DESIGN §5). All in the instance's schema."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    WAITING = "waiting", "Waiting for delegated runs"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class ReviewStatus(models.TextChoices):
    NONE = "", "Not in review"
    PENDING = "pending", "Needs review"
    REVIEWED = "reviewed", "Reviewed"


class ThreadStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class Thread(models.Model):
    """A conversation with one agent for one client (or none): a sequence of runs, one per turn.

    Each turn is an ordinary run (events, streaming, approvals, cancel, limits, feedback) whose
    conversation starts from the previous finished turn's checkpoint plus the new user message.
    One turn at a time: services decide it on this row (SELECT … FOR UPDATE). The agent version is
    pinned when the thread is created and kept until it is closed.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent_type = models.CharField(max_length=40, db_index=True)
    agent_version = models.CharField(max_length=20, help_text="Pinned when the thread was created.")
    client = models.ForeignKey("tuning.Client", null=True, blank=True, on_delete=models.PROTECT,
                               related_name="threads")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="agent_threads")
    title = models.CharField(max_length=200, blank=True)
    specialization = models.JSONField(default=dict, blank=True)
    sandbox = models.BooleanField(default=False, help_text="Side-effecting tools are simulated in every turn.")
    status = models.CharField(max_length=10, choices=ThreadStatus.choices, default=ThreadStatus.OPEN, db_index=True)
    turns_count = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        from tuning.models import agent_label

        return self.title or f"{agent_label(self.agent_type)} thread"


class AgentRun(models.Model):
    """One execution of an agent on a task: a row with a state machine, owned by services.

    `messages` is the conversation checkpoint after the last completed step, so a task that is
    redelivered after its worker died resumes there. `lease_until` says a worker is working on
    the run; a run whose lease expired while running is handed to another worker. `checks` and
    `review_status` say whether the final output passed the deterministic check and whether a
    person still has to look at it (agents/checks.py).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent_type = models.CharField(max_length=40, db_index=True)
    agent_version = models.CharField(max_length=20)
    client = models.ForeignKey("tuning.Client", null=True, blank=True, on_delete=models.PROTECT, related_name="runs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="agent_runs")
    task = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)
    specialization = models.JSONField(default=dict, blank=True)
    sandbox = models.BooleanField(default=False, help_text="Side-effecting tools are simulated.")
    idempotency_key = models.CharField(max_length=200, blank=True)
    thread = models.ForeignKey(Thread, null=True, blank=True, on_delete=models.PROTECT, related_name="turns")
    thread_turn = models.PositiveIntegerField(null=True, blank=True, help_text="1 for a thread's first turn.")

    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    output = models.TextField(blank=True)
    simulated = models.BooleanField(default=False, help_text="Answered by the offline model.")
    cancel_requested = models.BooleanField(default=False)

    model = models.CharField(max_length=60, blank=True)
    used_fallback = models.BooleanField(default=False)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cache_creation_input_tokens = models.PositiveIntegerField(default=0)
    cache_read_input_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=10, decimal_places=6, default=0)
    iterations = models.PositiveIntegerField(default=0)
    tool_calls_count = models.PositiveIntegerField(default=0)

    # The deterministic check of the final output (agents/checks.py) and the review queue it feeds.
    checks = models.JSONField(default=dict, blank=True, editable=False,
                              help_text="The output check: passed, violations [{source, rule, phrase, match, span}], "
                                        "what was checked, whether the agent revised.")
    review_status = models.CharField(max_length=10, choices=ReviewStatus.choices, default=ReviewStatus.NONE,
                                     blank=True, db_index=True, editable=False,
                                     help_text="pending: waits for a person's feedback on the output.")
    review_reason = models.TextField(blank=True, editable=False, help_text="Why the run needs review.")
    reviewed_at = models.DateTimeField(null=True, blank=True, editable=False,
                                       help_text="When feedback took the run out of the review queue.")

    messages = models.JSONField(default=list, blank=True)
    last_seq = models.PositiveIntegerField(default=0)
    lease_owner = models.CharField(max_length=120, blank=True,
                                   help_text="The claim token of the execution holding the run (one per execution).")
    lease_until = models.DateTimeField(null=True, blank=True, help_text="Set from the database's clock only.")
    requeued_at = models.DateTimeField(null=True, blank=True, editable=False,
                                       help_text="When the reaper last queued the run again (cleared by a claim).")

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Delegation (DESIGN §13, agents/delegation.py): a child run does part of its parent's work for one
    # of the parent's tool calls (`parent_call`: at most one child per call), at depth 1 or 2. Its
    # events are mirrored into its ancestors' logs (as `child.event`, by a trigger); its cost, and its
    # own children's, is rolled up into `children_cost_usd` of its parent when it finishes.
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children",
                               editable=False)
    parent_call = models.OneToOneField("ToolCall", null=True, blank=True, on_delete=models.CASCADE,
                                       related_name="child_run", editable=False)
    depth = models.PositiveSmallIntegerField(default=0, editable=False)
    # The budget reservation of the model call in flight (usage/budgets.py): {ledgers, amount, limits}.
    budget_hold = models.JSONField(null=True, blank=True, editable=False)
    usage_recorded = models.BooleanField(default=False, editable=False,
                                         help_text="Counted in the usage rollup (once, when it ended).")
    children_cost_usd = models.DecimalField(max_digits=10, decimal_places=6, default=0, editable=False,
                                            help_text="What its delegated runs cost, theirs included.")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["created_by", "idempotency_key"], condition=~models.Q(idempotency_key=""),
                                    name="agentrun_idempotency_per_user"),
            models.UniqueConstraint(fields=["thread", "thread_turn"], condition=models.Q(thread__isnull=False),
                                    name="agentrun_one_run_per_thread_turn"),
        ]
        indexes = [models.Index(fields=["status", "lease_until"], name="agentrun_lease_idx"),
                   models.Index(fields=["finished_at"], condition=models.Q(usage_recorded=False),
                                name="agentrun_usage_pending_idx")]
        permissions = [("cancel_agentrun", "Can cancel agent runs")]

    def __str__(self) -> str:
        from tuning.models import agent_label

        return f"{agent_label(self.agent_type)} {self.agent_version} · {self.get_status_display()}"

    @property
    def is_finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def total_cost_usd(self):
        """Its own cost and that of the runs it delegated to."""
        return self.cost_usd + self.children_cost_usd

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class RunEvent(models.Model):
    """The run's event log: the single source for every viewer (admin, websocket, SSE).

    `seq` is allocated in the database (one UPDATE … RETURNING on the run), so events are
    totally ordered per run whoever writes them, and a reconnecting viewer asks for
    everything after the last `seq` it saw.
    """

    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=40)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="runevent_seq_per_run")]

    def __str__(self) -> str:
        return f"Event {self.seq}: {self.type.replace('_', ' ')}"


class ToolCallStatus(models.TextChoices):
    STARTED = "started", "Started"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    DELEGATED = "delegated", "Delegated to a child run"


class ToolCall(models.Model):
    """One tool_use block of the model and what came of it.

    (run, tool_use_id) is unique: a step that is replayed after a worker died finds the calls
    that already completed and reuses their results instead of calling the tool again; a call
    that was cut off is retried with the same `idempotency_key`, which side-effecting tools
    send to the system they write to.
    """

    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="tool_calls")
    tool_use_id = models.CharField(max_length=100)
    name = models.CharField(max_length=100)
    input = models.JSONField(default=dict)
    status = models.CharField(max_length=20, choices=ToolCallStatus.choices, default=ToolCallStatus.STARTED)
    result = models.JSONField(null=True, blank=True)
    is_error = models.BooleanField(default=False)
    side_effect = models.BooleanField(default=False)
    idempotency_key = models.CharField(max_length=200)
    iteration = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(auto_now_add=True)
    duration_ms = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["run", "started_at", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "tool_use_id"], name="toolcall_once_per_run")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_status_display().lower()})"


class Artifact(models.Model):
    """Something a run produced that people use and judge: a draft, a brief, a plan."""

    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="artifacts")
    kind = models.CharField(max_length=40)  # draft | brief | plan | response | output
    title = models.CharField(max_length=200, blank=True)
    content = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    tool_call = models.ForeignKey(ToolCall, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "created_at", "id"]

    def __str__(self) -> str:
        return self.title or self.kind


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Closed (run cancelled)"


class ApprovalPriority(models.IntegerChoices):
    """How urgently a person should look (sorted by the number: urgent first)."""

    LOW = 10, "Low"
    NORMAL = 20, "Normal"
    HIGH = 30, "High"
    URGENT = 40, "Urgent"


class ApprovalRequest(models.Model):
    """One tool call a person must approve before it runs (DESIGN §6).

    Shows the exact call (tool, input as sent, run, client) and the rule that demanded it.
    The first decision wins: services move it out of `pending` with a conditional update, so
    a late or repeated decision changes nothing and is answered 409. The run waits in
    awaiting_approval, holding no worker, until every request of its turn is decided.
    `notified_at` is set when a worker task claims the approvers' e-mail, so a task delivered
    twice sends it once.

    The queue (agents/approvals.py): a `priority` and an optional `assigned_to` from the matching
    `ApprovalRule` (anyone who may decide still can); the SLA timeline `warn_at` (75 % of `sla`),
    `sla_due_at` (100 %: escalation to instance admins) and `expires_at` (the SLA plus the same
    again as grace); `warned_at`/`escalated_at` are claimed by conditional updates, so each step is
    notified once however many beat workers run. `approved_by_rule`: an auto rule approved it.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="approvals")
    tool_call = models.OneToOneField(ToolCall, on_delete=models.CASCADE, related_name="approval")
    client = models.ForeignKey("tuning.Client", null=True, blank=True, on_delete=models.PROTECT,
                               related_name="approval_requests")
    tool_name = models.CharField(max_length=100)
    tool_input = models.JSONField(default=dict, blank=True)
    rendered_input = models.TextField(blank=True)
    rule = models.CharField(max_length=200, help_text="Which rule demanded approval.")
    status = models.CharField(max_length=20, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING,
                              db_index=True)
    note = models.TextField(blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="approval_decisions")
    decided_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(db_index=True)
    notified_at = models.DateTimeField(null=True, blank=True, editable=False,
                                       help_text="When the approvers' e-mail was claimed by a worker task.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    priority = models.PositiveSmallIntegerField(choices=ApprovalPriority.choices, default=ApprovalPriority.NORMAL,
                                                db_index=True)
    assigned_to = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="approvals_assigned",
                                    help_text="Asked first; anyone else who may decide still can.")
    sla = models.DurationField(null=True, blank=True, editable=False, help_text="The SLA it was given.")
    warn_at = models.DateTimeField(null=True, blank=True, editable=False, help_text="75 % of the SLA.")
    sla_due_at = models.DateTimeField(null=True, blank=True, editable=False,
                                      help_text="The SLA's end: escalated to the instance admins then.")
    warned_at = models.DateTimeField(null=True, blank=True, editable=False)
    escalated_at = models.DateTimeField(null=True, blank=True, editable=False)
    approved_by_rule = models.ForeignKey("ApprovalRule", null=True, blank=True, on_delete=models.SET_NULL,
                                         related_name="approvals", editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "expires_at"], name="approval_pending_idx")]

    def __str__(self) -> str:
        return f"{self.tool_name} ({self.get_status_display()})"


class ApprovalRuleOp(models.TextChoices):
    EQ = "==", "equals"
    NE = "!=", "differs from"
    LT = "<", "<"
    LE = "<=", "≤"
    GT = ">", ">"
    GE = ">=", "≥"
    IN = "in", "is one of"
    CONTAINS = "contains", "contains"


class ApprovalRuleAction(models.TextChoices):
    APPROVE = "approve", "Approve automatically"
    ROUTE = "route", "Ask a person (set priority / assignee)"


class ApprovalAssignee(models.TextChoices):
    NONE = "", "Nobody in particular"
    ACCOUNT_MANAGER = "account_manager", "The client's account manager (else a manager, else an admin)"
    INSTANCE_MANAGER = "instance_manager", "An instance manager (else an admin)"
    INSTANCE_ADMIN = "instance_admin", "An instance admin"


class ApprovalRule(models.Model):
    """An instance admin's rule for gated calls of one tool (agents/approvals.py `approval_rule_match`).

    A call matches when its input's `field_path` (dotted; empty: every call to the tool) compares
    to `value` by `op`, type-safely (a string never matches a number). `approve` rules approve the
    call without asking anyone (the request is recorded as approved by the rule); `route` rules
    leave it to a person but set its priority and whom it is assigned to. Only gated calls are
    looked at: a rule never gates a call by itself."""

    tool_name = models.CharField(max_length=100, db_index=True)
    field_path = models.CharField(max_length=200, blank=True,
                                  help_text="A field of the call's input, dotted for nested ones (discount_pct).")
    op = models.CharField(max_length=10, choices=ApprovalRuleOp.choices, blank=True)
    value = models.JSONField(null=True, blank=True, help_text="JSON: 5, \"EUR\", [\"a\", \"b\"], true.")
    action = models.CharField(max_length=10, choices=ApprovalRuleAction.choices, default=ApprovalRuleAction.APPROVE)
    priority = models.PositiveSmallIntegerField(choices=ApprovalPriority.choices, null=True, blank=True)
    assignee_role = models.CharField(max_length=20, choices=ApprovalAssignee.choices, blank=True)
    enabled = models.BooleanField(default=True, db_index=True)
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tool_name", "id"]

    def __str__(self) -> str:
        return self.preview

    @property
    def preview(self) -> str:
        """Plain language: "approve request_discount_approval when discount_pct ≤ 5"."""
        verb = "approve" if self.action == ApprovalRuleAction.APPROVE else "ask a person about"
        text = f"{verb} {self.tool_name}"
        if self.field_path:
            import json

            label = dict(ApprovalRuleOp.choices).get(self.op, self.op)
            text += f" when {self.field_path} {label} {json.dumps(self.value, ensure_ascii=False)}"
        extras = []
        if self.priority:
            extras.append(f"priority {ApprovalPriority(self.priority).label.lower()}")
        if self.assignee_role:
            extras.append(f"assigned to {ApprovalAssignee(self.assignee_role).label.split(' (')[0].lower()}")
        if extras:
            text += f" ({', '.join(extras)})"
        return text if self.enabled else f"{text} [disabled]"
