"""Many triggers of one connection in one event loop: one hook, one login, batched reads."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from test_triggers import SYSTEMS, USER, System, when
from trigger_events import first_event

from airflow_bpm_provider.testing import Emulator
from airflow_bpm_provider.testing.dialects.bonita_entries import state_for
from airflow_bpm_provider.testing.engine import CANCELLED, ProcessDefinition, TaskDef
from airflow_bpm_provider.triggers import shared_poll
from airflow_bpm_provider.triggers.process import BpmProcessStateTrigger
from airflow_bpm_provider.triggers.task import BpmTaskTrigger

CONN_ID = "bpm_many"
PASSWORD = "shared-secret-7731"
WAITS = 40
INTERVAL = 0.3
LOGIN_PATHS = ("/bonita/loginservice",)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    emulator = Emulator.start()
    emulator.engine.add_user(USER, PASSWORD)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(autouse=True)
def calm(emu: Emulator) -> Iterator[None]:
    yield
    emu.faults.clear()


@pytest.fixture(scope="module")
def definition(emu: Emulator) -> ProcessDefinition:
    return emu.engine.deploy("shared-wait", "Shared wait", tasks=[TaskDef("Review", 1, "review")])


@pytest.fixture(params=SYSTEMS, ids=lambda system: system.name)
def system(request: pytest.FixtureRequest, emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> System:
    fields = request.param.connection(emu.url)
    fields.update(login=USER, password=PASSWORD)
    fields["extra"] = {**fields.get("extra", {}), "retry_delay": 0.01, "max_retries": 2}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(fields))
    return request.param


def requests_since(emu: Emulator, start: int) -> list[tuple[str, str]]:
    return emu.engine.requests[start:]


def complete_all(emu: Emulator, instances: list[Any]) -> None:
    for instance in instances:
        for task in emu.engine.open_tasks(instance.id):
            emu.engine.complete(task, user=USER)


def run_all(triggers: list[Any], during: Callable[[], Any]) -> list[dict[str, Any]]:
    async def scenario() -> list[dict[str, Any]]:
        waiting = [asyncio.ensure_future(first_event(t, timeout=60)) for t in triggers]
        await during()
        return await asyncio.gather(*waiting)

    return asyncio.run(scenario())


def test_waits_share_one_login_and_batch_their_polls(emu, definition, system):
    instances = [emu.engine.start(definition, user=USER) for _ in range(WAITS)]
    triggers = [BpmProcessStateTrigger(CONN_ID, str(i.id), poll_interval=INTERVAL) for i in instances]
    # one unknown instance among them: only its own wait fails
    triggers.append(BpmProcessStateTrigger(CONN_ID, "987654", poll_interval=INTERVAL))
    start = len(emu.engine.requests)
    ticks: list[int] = []
    completed_at: list[int] = []

    async def people_work_later() -> None:
        for _ in range(3):  # three ticks after the first poll of each
            seen = len(emu.engine.requests)
            await asyncio.sleep(INTERVAL)
            ticks.append(len(emu.engine.requests) - seen)
        complete_all(emu, instances)
        completed_at.append(len(emu.engine.requests))

    events = run_all(triggers, people_work_later)
    # The tick that sees all 40 end reads them in a few listings too, not one by one; only the
    # unknown instance is still read on its own (twice: a live and an archived read on Bonita).
    finishing = requests_since(emu, completed_at[0])
    assert len(finishing) <= 8, Counter(path for _, path in finishing).most_common(5)

    assert [e["status"] for e in events[:-1]] == ["success"] * WAITS
    assert all(e["instance"]["state"] == "COMPLETED" for e in events[:-1])
    assert events[-1]["status"] == "error"
    sent = requests_since(emu, start)
    logins = [path for _, path in sent if path.endswith(LOGIN_PATHS)]
    assert len(logins) == (1 if system.name == "bonita" else 0)
    # After the first reads, a tick costs a few requests (at most 4) for all 41 waits, not one
    # each. The measuring window is not aligned with the poll clock, so it may hold parts of two.
    assert max(ticks[1:]) <= 8, (ticks, Counter(path for _, path in sent).most_common(5))
    assert shared_poll._SHARED == {} or all(not v for v in shared_poll._SHARED.values())


@pytest.fixture(scope="module")
def two_steps(emu: Emulator) -> ProcessDefinition:
    return emu.engine.deploy(
        "shared-two-steps",
        "Shared two steps",
        tasks=[TaskDef("Review", 1, "review"), TaskDef("Approve", 2, "approve")],
    )


def test_task_waits_batch_their_task_lists_too(emu, two_steps, system):
    instances = [emu.engine.start(two_steps, user=USER) for _ in range(WAITS)]
    triggers = [
        BpmTaskTrigger(CONN_ID, str(i.id), task_name="Approve", poll_interval=INTERVAL) for i in instances
    ]
    triggers.append(BpmTaskTrigger(CONN_ID, "987654", task_name="Approve", poll_interval=INTERVAL))
    window: list[tuple[str, str]] = []

    async def people_review_later() -> None:
        loop = asyncio.get_running_loop()

        def everyone_polled_once() -> bool:
            shared = shared_poll._SHARED.get(loop, {}).get(CONN_ID)
            return shared is not None and len(shared._last_seen) >= WAITS

        await when(everyone_polled_once)
        await asyncio.sleep(INTERVAL)
        seen = len(emu.engine.requests)
        await asyncio.sleep(3 * INTERVAL)
        window.extend(emu.engine.requests[seen:])
        complete_all(emu, instances)  # Review done: Approve opens

    events = run_all(triggers, people_review_later)

    assert [e["status"] for e in events[:-1]] == ["success"] * WAITS
    assert {e["task"]["name"] for e in events[:-1]} == {"Approve"}
    assert [e["task"]["id"] for e in events[:-1]] == [
        str(emu.engine.open_tasks(i.id)[0].id) for i in instances
    ]
    assert events[-1]["status"] == "error"
    # three ticks of 41 task waits: a task listing and a process listing each (unbatched: 246)
    assert len(window) <= 4 * 2 + 4, Counter(path for _, path in window).most_common(4)


@pytest.mark.parametrize("system", SYSTEMS[-1:], ids=["bonita"], indirect=True)
def test_an_expired_session_logs_in_again_once_for_everyone(emu, definition, system):
    instances = [emu.engine.start(definition, user=USER) for _ in range(10)]
    # task waits are not batched: ten requests go out at each tick, all with the same session
    triggers = [
        BpmTaskTrigger(CONN_ID, str(i.id), task_name="Never", poll_interval=INTERVAL) for i in instances
    ]
    start = len(emu.engine.requests)

    async def expire_the_session() -> None:
        await when(lambda: sum(p.endswith(LOGIN_PATHS) for _, p in requests_since(emu, start)) == 1)
        await asyncio.sleep(INTERVAL * 1.5)
        state_for(emu.engine).expire_sessions()  # as a Bonita restart or session timeout does
        await asyncio.sleep(INTERVAL * 3)
        for instance in instances:
            emu.engine.end(instance, CANCELLED)

    events = run_all(triggers, expire_the_session)
    assert {e["status"] for e in events} == {"failed"}  # ended without the task, not an auth error
    logins = [p for _, p in requests_since(emu, start) if p.endswith(LOGIN_PATHS)]
    assert len(logins) == 2  # the first login, and one more after the 401s


@pytest.mark.parametrize("system", SYSTEMS[2:3], ids=["flowable"], indirect=True)
def test_a_cancelled_trigger_leaves_the_others_polling(emu, definition, system):
    instances = [emu.engine.start(definition, user=USER) for _ in range(5)]
    triggers = [BpmProcessStateTrigger(CONN_ID, str(i.id), poll_interval=INTERVAL) for i in instances]

    async def scenario() -> list[Any]:
        waiting = [asyncio.ensure_future(first_event(t)) for t in triggers]
        start = len(emu.engine.requests)
        await when(lambda: len(emu.engine.requests) > start)
        waiting[0].cancel()  # cancelled while a shared read is under way
        await asyncio.sleep(INTERVAL * 2)
        complete_all(emu, instances)
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert shared_poll._SHARED.get(asyncio.get_running_loop(), {}) == {}  # closed with the last
        return results

    results = asyncio.run(scenario())
    assert isinstance(results[0], asyncio.CancelledError)
    assert [r["status"] for r in results[1:]] == ["success"] * 4


def test_polls_fall_on_the_interval_clock():
    assert shared_poll.aligned_wait(30, 61.0) == pytest.approx(29.0)
    assert shared_poll.aligned_wait(30, 90.0) == 30
    assert 0 < shared_poll.aligned_wait(0.05, 1234.56789) <= 0.05
