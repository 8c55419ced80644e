"""The worker's run watcher (agents/watcher.py): cancel and viewer flags of the runs in flight,
read for all of them at once, per instance; runs nobody watches are not announced."""

import asyncio
import threading
import time
import uuid

from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import connection
from django_tenants.utils import schema_context

from agents.events import run_group_parts
from agents.models import AgentRun
from agents.services import run_cancel, run_claim, run_write
from agents.watcher import RunWatcher, cancel_flag_key, flags_changed, mark_watched, watch_flag_key
from agents.watcher import watcher as run_watcher
from spokestack.realtime import group_name

from ..conftest import wait_for


def test_flags_count_for_the_run_of_their_own_instance_only(instance_a, instance_b):
    watcher = RunWatcher(poll_seconds=0.02)
    run_id = str(uuid.uuid4())
    watcher.watch(run_id, instance_a.schema_name)
    try:
        with schema_context(instance_b.schema_name):  # the same run id, set in another instance
            cache.set(cancel_flag_key(run_id), True)
            mark_watched(run_id)
        time.sleep(0.3)
        assert not watcher.cancelled(run_id) and not watcher.watched(run_id)

        with schema_context(instance_a.schema_name):
            mark_watched(run_id)
        wait_for(lambda: watcher.watched(run_id), timeout=3)
        assert not watcher.cancelled(run_id)
        with schema_context(instance_a.schema_name):
            cache.set(cancel_flag_key(run_id), True)
            flags_changed()
        wait_for(lambda: watcher.cancelled(run_id), timeout=3)

        watcher.forget(run_id)
        assert not watcher.cancelled(run_id) and watcher.watched(run_id)  # unknown runs are announced
    finally:
        for schema in (instance_a.schema_name, instance_b.schema_name):
            with schema_context(schema):
                cache.delete_many([cancel_flag_key(run_id), watch_flag_key(run_id)])


def test_a_cancel_reaches_the_watcher_of_a_running_run(in_a):
    run = AgentRun.objects.create(agent_type="copy", agent_version="1.0.0", task="Write a tagline.")
    run = run_claim(run_id=run.pk, worker="w1")
    watcher = RunWatcher(poll_seconds=0.02)
    watcher.watch(run.pk, connection.schema_name)
    try:
        assert not watcher.cancelled(run.pk)
        run_cancel(actor=None, run=run)
        wait_for(lambda: watcher.cancelled(run.pk), timeout=3)
    finally:
        watcher.forget(run.pk)
        cache.delete(cancel_flag_key(run.pk))


def test_a_run_is_announced_on_the_channel_layer_only_while_somebody_watches(
        in_a, django_capture_on_commit_callbacks):
    run = AgentRun.objects.create(agent_type="copy", agent_version="1.0.0", task="Write a tagline.")
    run = run_claim(run_id=run.pk, worker="w1")
    group = group_name(connection.schema_name, *run_group_parts(run.pk))

    def nudges_after_a_write() -> list[dict]:
        """Write one event of the run (here, in the test's transaction) while a listener follows its group."""
        subscribed, received = threading.Event(), []

        async def listen() -> None:
            layer = get_channel_layer()
            channel = await layer.new_channel()
            await layer.group_add(group, channel)
            subscribed.set()
            try:
                while True:
                    received.append(await asyncio.wait_for(layer.receive(channel), timeout=0.7))
            except TimeoutError:
                pass
            finally:
                await layer.group_discard(group, channel)

        listener = threading.Thread(target=asyncio.run, args=(listen(),))
        listener.start()
        assert subscribed.wait(5)
        time.sleep(0.1)
        with django_capture_on_commit_callbacks(execute=True):
            run_write(run=run, worker="w1", events=[("turn.started", {"iteration": 1})])
        listener.join(10)
        return received

    run_watcher.watch(run.pk, connection.schema_name)
    try:
        assert nudges_after_a_write() == []  # nobody watches: no channel traffic
        mark_watched(run.pk)
        wait_for(lambda: run_watcher.watched(run.pk), timeout=3)
        assert [m["event"] for m in nudges_after_a_write()] == ["turn.started"]
    finally:
        run_watcher.forget(run.pk)
        cache.delete(watch_flag_key(run.pk))
