# Sandbox tests keep their client and specialization; sessions keep who decided, why, and review notes.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("versions", "0002_sandbox_expired"),
        ("tuning", "0006_effort_replaces_temperature"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="sandboxsession",
            name="decided_by",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                    related_name="+", to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name="sandboxsession",
            name="decision_reason",
            field=models.TextField(blank=True, help_text="Why the session was promoted, rejected or deferred."),
        ),
        migrations.AddField(
            model_name="sandboxsession",
            name="notes",
            field=models.TextField(blank=True, help_text="Review notes kept with the session."),
        ),
        migrations.AddField(
            model_name="sandboxtest",
            name="client",
            field=models.ForeignKey(blank=True, help_text="The client both runs work for (its tuning and client-bound tools).",
                                    null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+",
                                    to="tuning.client"),
        ),
        migrations.AddField(
            model_name="sandboxtest",
            name="specialization",
            field=models.JSONField(blank=True, default=dict,
                                   help_text='Normalised {"vertical", "region", "language"} of both runs.'),
        ),
    ]
