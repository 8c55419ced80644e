"""Services: governance, the audit log's immutability, assignments and their rollback."""

import pytest
from django.db import DatabaseError, connection, transaction

from spokestack.accounts import policy
from spokestack.errors import InvalidInput, NotAllowed, NotFound
from tuning.models import ClientTuning, TuningChange
from tuning.selectors import clients_visible_to
from tuning.services import (
    client_assign,
    client_example_add,
    client_rule_add,
    client_tuning_update,
    client_unassign,
    instance_tuning_update,
    tuning_rollback,
)


def test_every_service_write_is_audited_with_who_and_why(in_a, make_user, make_client):
    admin = make_user("instance_admin")
    client = make_client("Acme")
    instance_tuning_update(actor=admin, changes={"effort": "low", "brand_voice": "Clear."}, reason="pilot",
                           ticket="T-1")
    client_tuning_update(actor=admin, client=client, changes={"tone_keywords": ["warm"]})
    client_rule_add(actor=admin, client=client, kind="always", text="Say thanks")
    client_example_add(actor=admin, client=client, kind="caption", text="Hello")
    tuning = TuningChange.objects.exclude(entity__in=["user", "client"])  # the person and client made above
    entries = list(tuning.order_by("id").values_list("tier", "entity", "action", "field", "actor_label"))
    assert entries == [
        (2, "instance_tuning", "update", "effort", admin.username),
        (2, "instance_tuning", "update", "brand_voice", admin.username),
        (3, "client_tuning", "update", "tone_keywords", admin.username),
        (3, "content_rule", "create", "", admin.username),
        (3, "approved_example", "create", "", admin.username),
    ]
    first = tuning.order_by("id")[1]
    assert (first.reason, first.ticket, first.old_value, first.new_value) == ("pilot", "T-1", "", "Clear.")
    assert first.affected_clients == [client.pk]
    # Saving the same values again changes nothing and writes nothing.
    instance_tuning_update(actor=admin, changes={"effort": "low"})
    assert tuning.count() == 5


def test_the_audit_log_is_immutable_in_python_and_in_the_database(in_a, make_client):
    client_rule_add(actor=None, client=make_client("Acme"), kind="never", text="x")
    entry = TuningChange.objects.get(entity="content_rule")
    assert entry.actor_label == "system"
    with pytest.raises(RuntimeError):
        entry.save()
    with pytest.raises(RuntimeError):
        entry.delete()
    for statement in ("UPDATE tuning_tuningchange SET reason = 'edited'", "DELETE FROM tuning_tuningchange"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
    assert TuningChange.objects.get(entity="content_rule").reason == ""


def test_roles_in_services(in_a, make_user, make_client, assigned):
    mine, other = make_client("Mine"), make_client("Other")
    manager = assigned("account_manager", mine)
    contact = assigned("client_contact", mine)
    instance_manager = make_user("instance_manager")
    with pytest.raises(NotAllowed):
        instance_tuning_update(actor=instance_manager, changes={"brand_voice": "x"})
    with pytest.raises(NotAllowed):
        instance_tuning_update(actor=manager, changes={"brand_voice": "x"})
    with pytest.raises(NotFound):
        client_tuning_update(actor=manager, client=other, changes={"brand_voice": "x"})
    with pytest.raises(NotAllowed):
        client_tuning_update(actor=contact, client=mine, changes={"brand_voice": "x"})
    with pytest.raises(NotAllowed):
        client_rule_add(actor=contact, client=mine, kind="never", text="x")
    client_tuning_update(actor=contact, client=mine, changes={"format_preferences": {"emoji": "never"}})
    client_example_add(actor=contact, client=mine, kind="caption", text="Approved by us")
    client_tuning_update(actor=instance_manager, client=other, changes={"brand_voice": "x"})
    assert list(clients_visible_to(actor=manager)) == [mine]
    assert list(clients_visible_to(actor=contact)) == [mine]
    assert set(clients_visible_to(actor=instance_manager)) == {mine, other}
    assert list(clients_visible_to(actor=make_user("client_contact"))) == []
    with pytest.raises(NotAllowed):
        client_assign(user=make_user("account_manager"), client=mine, role="account_manager", actor=manager)
    with pytest.raises(InvalidInput, match="role: 'instance_admin' cannot be assigned"):
        client_assign(user=manager, client=other, role="instance_admin")
    with pytest.raises(InvalidInput, match="does not have the role"):
        client_assign(user=contact, client=other, role="account_manager")


def test_assignment_is_audited_and_rolls_back(in_a, make_user, make_client):
    admin = make_user("instance_admin")
    client = make_client("Acme")
    manager = make_user("account_manager")
    client_assign(user=manager, client=client, role="account_manager", actor=admin, reason="new AM")
    entry = TuningChange.objects.get(entity="client_assignment")
    assert entry.new_value == {"user_id": manager.pk, "user": manager.username, "role": "account_manager"}
    assert list(clients_visible_to(actor=manager)) == [client]
    undo = tuning_rollback(actor=admin, change=entry)
    assert undo.action == "delete" and undo.rollback_of_id == entry.pk
    policy.forget(manager)  # its assignments were read before the change
    assert list(clients_visible_to(actor=manager)) == []
    client_unassign(user=manager, client=client, role="account_manager", actor=admin)  # idempotent, audited
    assert TuningChange.objects.filter(entity="client_assignment").count() == 3


def test_rollback_of_a_new_row_returns_to_inheriting(in_a, make_client):
    client = make_client("Acme")
    row = client_tuning_update(actor=None, client=client, agent_type="copy", changes={"brand_voice": "Copy voice"})
    entry = TuningChange.objects.get(field="brand_voice")
    assert entry.old_value == ""
    tuning_rollback(actor=None, change=entry)
    assert ClientTuning.objects.get(pk=row.pk).brand_voice == ""


def test_feedback_rules_keep_their_provenance_and_support_is_audited_as_support(in_a, make_client, make_user):
    from tuning.assembly import assemble_prompt

    from .catalog import COPY

    client = make_client("Acme")
    rule = client_rule_add(actor=None, client=client, kind="prefer", text="Shorter headlines",
                           source="feedback_suggestion", source_reference=42)
    assert (rule.source, rule.source_reference) == ("feedback_suggestion", "42")
    assert assemble_prompt(platform=COPY, client=client).rules[0].source == "feedback_suggestion"
    support = make_user("instance_admin")
    support.is_superuser = True
    support.save(update_fields=["is_superuser"])
    client_tuning_update(actor=support, client=client, changes={"brand_voice": "Fixed by support."})
    assert TuningChange.objects.latest("id").actor_label == f"support: {support.username}"
