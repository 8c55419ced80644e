"""Usage and budgets (issue #20, DESIGN §14).

`UsageDaily` is the rollup the usage pages, the API and CSV read: one row per day (in the
instance's time zone) × agent × client × user × model, kept current as runs end (usage/services.py
`usage_record`: once per run, in the statement that marks the run counted), never recomputed by
scanning runs. Run durations are kept as a histogram (`duration_buckets`, DURATION_BUCKETS_MS upper
bounds) so p50/p95 of any group of rows is read from their summed buckets.

`Budget` is a monthly cost limit for the instance (its tier's, or what platform staff set), a
client or a user; `BudgetPeriod` is its ledger for one month: what model calls have `reserved`
(their worst case, before they are made) and what they `spent` (their real cost, once answered).
A reservation is one conditional UPDATE per covering budget in one transaction (usage/budgets.py),
so concurrent calls can never together cross a limit.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models

# Upper bounds (ms) of the run-duration histogram's buckets; the last bucket is everything above.
DURATION_BUCKETS_MS = (250, 500, 1_000, 2_000, 4_000, 8_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000,
                       1_800_000)


def _empty_buckets() -> list[int]:
    return [0] * (len(DURATION_BUCKETS_MS) + 1)


class UsageDaily(models.Model):
    day = models.DateField()
    agent_type = models.CharField(max_length=40)
    client = models.ForeignKey("tuning.Client", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    model = models.CharField(max_length=60, blank=True)
    runs_succeeded = models.PositiveIntegerField(default=0)
    runs_failed = models.PositiveIntegerField(default=0)
    runs_cancelled = models.PositiveIntegerField(default=0)
    turns = models.PositiveIntegerField(default=0)
    tool_calls = models.PositiveIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_creation_input_tokens = models.BigIntegerField(default=0)
    cache_read_input_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    duration_ms_total = models.BigIntegerField(default=0)
    duration_buckets = ArrayField(models.IntegerField(), default=_empty_buckets)

    class Meta:
        verbose_name = verbose_name_plural = "usage"
        constraints = [models.UniqueConstraint(fields=["day", "agent_type", "client", "user", "model"],
                                               nulls_distinct=False, name="usagedaily_one_row_per_group")]
        indexes = [models.Index(fields=["day"], name="usagedaily_day_idx")]

    @property
    def runs(self) -> int:
        return self.runs_succeeded + self.runs_failed + self.runs_cancelled


class BudgetScope(models.TextChoices):
    INSTANCE = "instance", "The instance"
    CLIENT = "client", "A client"
    USER = "user", "A person"


class Budget(models.Model):
    """A monthly cost limit. The instance's row is kept in step with its tier (or the platform's
    override) by usage/budgets.py; clients' and users' are set by instance admins, never above it."""

    scope = models.CharField(max_length=10, choices=BudgetScope.choices)
    client = models.OneToOneField("tuning.Client", null=True, blank=True, on_delete=models.CASCADE,
                                  related_name="budget")
    # SET_NULL, not CASCADE: users also live in the public schema, where this table does not exist, and
    # Django reads CASCADE relations while collecting a deletion; a person's budget left without its
    # person is ignored (usage/budgets.py covers_for) and shown as such.
    user = models.OneToOneField(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="budget")
    monthly_limit_usd = models.DecimalField(max_digits=12, decimal_places=2)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope"], condition=models.Q(scope="instance"), name="budget_one_instance"),
            models.CheckConstraint(
                condition=(models.Q(scope="instance", client__isnull=True, user__isnull=True)
                           | models.Q(scope="client", client__isnull=False, user__isnull=True)
                           | models.Q(scope="user", client__isnull=True)),
                name="budget_scope_matches_its_owner"),
        ]


class BudgetPeriod(models.Model):
    """One budget's ledger for one month (its first day, in the instance's time zone)."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="periods")
    month = models.DateField()
    reserved_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    spent_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    warned_80_at = models.DateTimeField(null=True, blank=True)
    warned_95_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["budget", "month"], name="budgetperiod_one_per_month")]
