"""BpmProcessEventTrigger against the emulator: configuration, cursor, shared poll in ack mode."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from airflow.triggers.shared_stream import SharedStreamManager

from airflow_bpm_provider.exceptions import BpmConfigError
from airflow_bpm_provider.testing import Emulator
from airflow_bpm_provider.testing.engine import COMPLETED, FAILED, TaskDef
from airflow_bpm_provider.triggers.events import BpmProcessEventTrigger, Cursor

USER, PASSWORD = "watcher@example.com", "watcher-password-77"


class Store:
    """The asset state store as a trigger sees it (aget / aset), values kept as JSON."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.writes = 0

    async def aget(self, key: str, default=None):
        return json.loads(self.values[key]) if key in self.values else default

    async def aset(self, key: str, value) -> None:
        self.values[key] = json.dumps(value)
        self.writes += 1

    def seen(self) -> set[str]:
        return {i for raw in self.values.values() for i in json.loads(raw)["seen"]}


@pytest.fixture
def emu(monkeypatch):
    with Emulator.start() as emulator:
        emulator.engine.add_user(USER, PASSWORD)
        fields = {"login": USER, "password": PASSWORD, "extra": {"retry_delay": 0.05}}
        connections = {
            "w_questetra": {**fields, "conn_type": "questetra", "host": emulator.url},
            "w_bonita": {**fields, "conn_type": "bonita", "host": f"{emulator.url}/bonita"},
        }
        for conn_id, conn in connections.items():
            monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        emulator.definition = emulator.engine.deploy("expense", "Expense", tasks=[TaskDef("Approve", 1, "a")])
        yield emulator


def watcher(emu, conn_id: str = "w_questetra", **kwargs) -> BpmProcessEventTrigger:
    definition = str(emu.definition.id) if conn_id == "w_questetra" else "expense"
    trigger = BpmProcessEventTrigger(bpm_conn_id=conn_id, definition=definition, poll_interval=1, **kwargs)
    return trigger


def start(emu, count: int) -> list:
    return [emu.engine.start(emu.definition, user=USER) for _ in range(count)]


async def take(events, count: int, timeout: float = 20) -> list[dict]:
    return [(await asyncio.wait_for(anext(events), timeout)).payload for _ in range(count)]


async def nothing_more(events, seconds: float = 2.5) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(events), seconds)


# ---- configuration, checked when the DAG is parsed --------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"states": ["DONE"]}, "cannot watch state 'DONE'"),
        ({"states": ["SUSPENDED"]}, "cannot watch state 'SUSPENDED'"),
        ({"states": ["STARTED", "COMPLETED"]}, "STARTED cannot be combined"),
        ({"states": []}, "at least one state"),
        ({"definition": ""}, "'definition' is required"),
        ({"definition": None}, "'definition' is required"),
        ({"filters": {"since": datetime(2024, 1, 1)}}, "'filters' must be a dict of JSON values"),
        ({"filters": "business_key=X-1"}, "'filters' must be a mapping"),
        ({"filters": [("business_key", "X-1")]}, "'filters' must be a mapping"),
        ({"filters": {1: "x"}}, "'filters' must be a dict of JSON values"),
        ({"filters": {"query": "<process-instance-criteria/>"}}, "'filters' 'query' must be a mapping"),
        ({"filters": {"definition": "other"}}, "'filters' may not set definition"),
        ({"poll_interval": 0}, "'poll_interval' must be a number of seconds >= 1"),
        ({"margin": -1}, "'margin' must be a number"),
    ],
)
def test_bad_configuration_is_a_config_error_naming_the_connection(kwargs, message):
    arguments = {"bpm_conn_id": "my_bpm", "definition": "expense", **kwargs}
    with pytest.raises(BpmConfigError, match=message) as raised:
        BpmProcessEventTrigger(**arguments)
    assert raised.value.conn_id == "my_bpm" or "bpm_conn_id" in str(raised.value)


def test_kwargs_are_json_primitives_and_rebuild_the_same_trigger():
    trigger = BpmProcessEventTrigger(
        bpm_conn_id="my_bpm",
        definition="expense",
        states=["failed", "Completed"],
        filters={"business_key": "X-1"},
        margin=60,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_bpm_provider.triggers.events.BpmProcessEventTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert kwargs["states"] == ["COMPLETED", "FAILED"]
    again = BpmProcessEventTrigger(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert again.cursor_key == trigger.cursor_key


def test_watchers_of_one_definition_share_a_poll_others_do_not():
    completed = BpmProcessEventTrigger(bpm_conn_id="c", definition="d")
    failed = BpmProcessEventTrigger(bpm_conn_id="c", definition="d", states=["FAILED", "CANCELLED"])
    started = BpmProcessEventTrigger(bpm_conn_id="c", definition="d", states="started")
    other = BpmProcessEventTrigger(bpm_conn_id="c", definition="e")
    assert completed.shared_stream_key() == failed.shared_stream_key()
    assert completed.cursor_key != failed.cursor_key
    assert len({completed.shared_stream_key(), started.shared_stream_key(), other.shared_stream_key()}) == 3


# ---- what each system is asked -------------------------------------------------------------------


class QuestetraLike:
    """A hook of conn_type questetra that records what find_processes was asked."""

    conn_type = "questetra"

    def __init__(self, tz, instances) -> None:
        self.timezone = tz
        self.instances = instances
        self.calls: list[dict] = []

    def find_processes(self, **filters):
        self.calls.append(filters)
        return iter(self.instances)


@pytest.mark.parametrize("kind", ["ended", "started"])
def test_questetra_bound_without_a_timezone_is_early_enough_for_any_zone(kind):
    from airflow_bpm_provider.models import ProcessInstance, ProcessState
    from airflow_bpm_provider.triggers.events import list_changes

    since = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    key = "end_date_from" if kind == "ended" else "start_date_from"
    field = "ended_at" if kind == "ended" else "started_at"
    early = ProcessInstance("1", ProcessState.COMPLETED, **{field: since - timedelta(seconds=1)})
    # Written by the server in its user's zone (UTC-5 here), with the offset.
    west = timezone(timedelta(hours=-5))
    late = ProcessInstance(
        "2", ProcessState.COMPLETED, **{field: (since + timedelta(seconds=1)).astimezone(west)}
    )
    hook = QuestetraLike(None, [early, late])
    found = list_changes(hook, "11", kind, since, {"query": {"title": "x"}})
    (call,) = hook.calls
    # UTC wall clock minus 14 hours, naive: read in any zone (UTC-12 to UTC+14) it is not after since.
    assert call["query"] == {"title": "x", key: datetime(2024, 4, 30, 22, 0)}
    assert [i.id for i in found] == ["2"]  # the exact bound is kept on the client

    tz = timezone(timedelta(hours=9))
    hook = QuestetraLike(tz, [early, late])
    list_changes(hook, "11", kind, since)
    assert hook.calls[0]["query"] == {key: since}  # the zone is known: the instant itself


# ---- the cursor -------------------------------------------------------------------------------


def test_cursor_accepts_late_rows_within_the_margin_once():
    t0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    cursor = Cursor(t0)
    cursor.add("1", t0)
    assert not cursor.is_new("1", t0, 300)  # the same instant, already seen
    assert cursor.is_new("2", t0, 300)  # another instance at the same instant
    assert cursor.is_new("3", t0 - timedelta(seconds=200), 300)  # late-visible, inside the margin
    assert not cursor.is_new("4", t0 - timedelta(seconds=400), 300)  # older than the margin
    cursor.add("5", t0 + timedelta(seconds=600))
    cursor.prune(300)
    assert set(cursor.seen) == {"5"}
    assert Cursor.from_json(json.loads(json.dumps(cursor.to_json()))) == cursor
    assert Cursor.from_json({"v": 99}) is None


# ---- standalone run: the path without the triggerer's shared streams ------------------------------


@pytest.mark.parametrize("conn_id", ["w_questetra", "w_bonita"])
def test_each_ended_instance_once_and_a_restart_catches_up_without_repeats(emu, conn_id):
    engine = emu.engine
    early = start(emu, 1)[0]
    engine.end(early, COMPLETED)  # before the watcher existed: not reported
    running = start(emu, 4)
    store = Store()

    async def scenario() -> None:
        trigger = watcher(emu, conn_id)
        trigger.asset_state_store = store
        events = trigger.run()
        first_poll = asyncio.ensure_future(anext(events))
        await asyncio.sleep(1.5)  # the first poll sets the starting cursor
        engine.end(running[0], COMPLETED)
        engine.end(running[1], FAILED)  # not watched
        payload = (await asyncio.wait_for(first_poll, 20)).payload
        assert payload["instance"]["id"] == str(running[0].id)
        assert payload["state"] == "COMPLETED" and payload["bpm_conn_id"] == conn_id
        assert json.loads(json.dumps(payload)) == payload
        await nothing_more(events)  # polls go on; the cursor moved past running[0]
        await events.aclose()
        assert str(running[0].id) in store.seen()

        engine.end(running[2], COMPLETED)  # while no watcher runs
        restarted = watcher(emu, conn_id)
        restarted.asset_state_store = store
        events = restarted.run()
        got = await take(events, 1)
        engine.end(running[3], COMPLETED)
        got += await take(events, 1)
        await nothing_more(events)
        await events.aclose()
        assert [p["instance"]["id"] for p in got] == [str(running[2].id), str(running[3].id)]

    asyncio.run(scenario())


def test_without_a_state_store_a_watcher_starts_from_now_and_says_so(emu, logs):
    running = start(emu, 2)

    async def scenario() -> None:
        events = watcher(emu).run()
        first = asyncio.ensure_future(anext(events))
        await asyncio.sleep(1.5)
        emu.engine.end(running[0], COMPLETED)
        assert (await asyncio.wait_for(first, 20)).payload["instance"]["id"] == str(running[0].id)
        await events.aclose()

    asyncio.run(scenario())
    text = logs()
    assert "No asset state store" in text
    assert "cursor lives in memory" in text


# ---- shared poll in ack mode: the cursor is written only once the events are persisted -------------


def test_two_watchers_share_one_poll_and_write_cursors_only_after_persistence(emu):
    engine = emu.engine
    running = start(emu, 3)
    completed, failed = watcher(emu), watcher(emu, states=["FAILED"])
    stores = {1: Store(), 2: Store()}
    completed.asset_state_store, failed.asset_state_store = stores[1], stores[2]
    key = completed.shared_stream_key()
    assert key == failed.shared_stream_key()

    async def scenario() -> None:
        manager = SharedStreamManager(ack_timeout=60)
        received: dict[int, list] = {1: [], 2: []}

        async def drive(trigger_id: int, trigger: BpmProcessEventTrigger) -> None:
            # What the triggerer's run_trigger does for a shared-stream trigger.
            raw = manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=key)
            stream = trigger.filter_shared_stream(raw)
            async for event in stream:
                seq = manager.bind_pending_event(trigger_id=trigger_id, key=key)
                received[trigger_id].append((event.payload, seq))

        tasks = [asyncio.create_task(drive(1, completed)), asyncio.create_task(drive(2, failed))]
        started = time.monotonic()
        try:
            while not (stores[1].values and stores[2].values):  # starting cursors
                await asyncio.sleep(0.1)
            engine.end(running[0], COMPLETED)
            engine.end(running[1], FAILED)
            while not (received[1] and received[2]):
                await asyncio.sleep(0.1)
            await asyncio.sleep(2.5)  # more polls and ticks: still not persisted
            assert str(running[0].id) not in stores[1].seen()
            assert str(running[1].id) not in stores[2].seen()
            (event1, seq1), (event2, seq2) = received[1][0], received[2][0]
            assert event1["instance"]["id"] == str(running[0].id)
            assert event2["instance"]["id"] == str(running[1].id) and event2["state"] == "FAILED"
            assert seq1 is not None and seq2 is not None
            manager.confirm_persisted([seq1, seq2])
            for _ in range(100):
                if str(running[0].id) in stores[1].seen() and str(running[1].id) in stores[2].seen():
                    break
                await asyncio.sleep(0.1)
            assert str(running[0].id) in stores[1].seen()
            assert str(running[1].id) in stores[2].seen()
            assert len(received[1]) == len(received[2]) == 1
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await manager.stop_all()
        return time.monotonic() - started

    seconds = asyncio.run(scenario())
    searches = [path for _, path in engine.requests if path.endswith("ProcessInstance/list")]
    # One listing per second for both watchers together, not one each.
    assert 2 <= len(searches) <= seconds + 1, (len(searches), seconds)


def test_a_config_error_in_the_shared_poll_ends_each_watcher_not_the_poll(emu, logs):
    # A criteria key Questetra does not know: the hook says so only when the poll asks.
    filters = {"query": {"no_such_criterion": 1}}
    completed, failed = watcher(emu, filters=filters), watcher(emu, states=["FAILED"], filters=filters)
    completed.asset_state_store, failed.asset_state_store = Store(), Store()
    key = completed.shared_stream_key()

    async def scenario() -> list:
        manager = SharedStreamManager(ack_timeout=60)

        async def drive(trigger_id: int, trigger: BpmProcessEventTrigger) -> list:
            raw = manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=key)
            return [event async for event in trigger.filter_shared_stream(raw)]

        try:
            return await asyncio.wait_for(
                asyncio.gather(drive(1, completed), drive(2, failed), return_exceptions=True), 20
            )
        finally:
            await manager.stop_all()

    assert asyncio.run(scenario()) == [[], []]  # each ended cleanly, no exception, no event
    text = logs()
    assert "stopped: its poll is misconfigured" in text
    assert "no_such_criterion" in text
    assert "Shared stream poll failed" not in text


def test_the_event_demo_fails_when_a_run_failed():
    from airflow_bpm_provider.testing.demo_events import runs_error

    ok = {"run_id": "r1", "state": "success", "processes": ["1"]}
    assert runs_error([ok]) is None
    assert "r2" in runs_error([ok, {"run_id": "r2", "state": "failed", "processes": ["2"]}])
    assert runs_error([]) == "no run of the DAG"


def test_the_readme_event_example_builds_both_dags():
    import re
    from pathlib import Path

    from airflow.sdk import Asset

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Start pipelines from BPM events", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    namespace: dict = {}
    exec(compile(code, "README events example", "exec"), namespace)
    (watcher_,) = namespace["EXPENSE_ENDED"].watchers
    assert isinstance(watcher_.trigger, BpmProcessEventTrigger)
    assert watcher_.trigger.states == ["COMPLETED"]
    export_dag, load_dag = namespace["export_dag"], namespace["load_dag"]
    assert export_dag.get_task("export").outlets == [Asset("s3://my-bucket/expenses/")]
    assert export_dag.get_task("export").upstream_task_ids == {"ended_processes"}
    assert list(load_dag.timetable.asset_condition.objects) == [Asset("s3://my-bucket/expenses/")]
