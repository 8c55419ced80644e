"""The assembler's cache never shows one transaction's uncommitted tuning to another run."""

import threading

import pytest
from django.db import connection, transaction
from django_tenants.utils import schema_context

from tuning.assembly import assemble_prompt
from tuning.services import client_create, client_rule_add

from .catalog import COPY


@pytest.mark.live
def test_uncommitted_rule_stays_private_to_its_transaction(live_instance, live_db):
    """The writer's entry is older than one committed meanwhile, so both see the same newest
    entry id: only the writer's transaction id keeps its cached prompt to itself."""
    schema = live_instance.instance.schema_name
    with schema_context(schema):
        client, other = client_create(name="Acme"), client_create(name="Other")
        assert b"Draft rule" not in assemble_prompt(platform=COPY, client=client).prefix_bytes()
    written, committed, assembled, checked = (threading.Event() for _ in range(4))
    seen = {}

    def writer():
        try:
            with schema_context(schema), transaction.atomic():
                client_rule_add(actor=None, client=client, kind="never", text="Draft rule")
                written.set()
                committed.wait(10)
                seen["writer"] = b"Draft rule" in assemble_prompt(platform=COPY, client=client).prefix_bytes()
                assembled.set()
                checked.wait(10)
                transaction.set_rollback(True)
        finally:
            written.set()
            assembled.set()
            connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    assert written.wait(10)
    with schema_context(schema):
        client_rule_add(actor=None, client=other, kind="always", text="Committed meanwhile")
        committed.set()
        assert assembled.wait(10)
        seen["reader"] = b"Draft rule" in assemble_prompt(platform=COPY, client=client).prefix_bytes()
        checked.set()
        thread.join(10)
        seen["after_rollback"] = b"Draft rule" in assemble_prompt(platform=COPY, client=client).prefix_bytes()
    assert seen == {"writer": True, "reader": False, "after_rollback": False}
