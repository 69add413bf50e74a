"""The polling triggers: serialization, and real waits against the emulator for every system it speaks."""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from airflow.sdk.serde import deserialize, serialize
from trigger_events import first_event

from airflow_bpm_provider.testing import Emulator
from airflow_bpm_provider.testing.engine import CANCELLED, FAILED, Instance, ProcessDefinition, TaskDef
from airflow_bpm_provider.triggers import polling
from airflow_bpm_provider.triggers.polling import BpmPollingTrigger
from airflow_bpm_provider.triggers.process import BpmProcessStateTrigger
from airflow_bpm_provider.triggers.task import BpmTaskTrigger

CONN_ID = "bpm_wait"
USER = "robot@example.com"
PASSWORD = "trigger-secret-8842"
FAST_RETRIES = {"retry_delay": 0.01, "retry_max_delay": 0.05, "max_retries": 3}


@dataclass(frozen=True)
class System:
    """How to reach one dialect of the emulator, and how that system names a process to start."""

    name: str
    connection: Callable[[str], dict[str, Any]]


# One row per system whose hook and emulator dialect exist; the engine behind them is shared.
SYSTEMS = [
    System("questetra", lambda url: {"conn_type": "questetra", "host": url}),
    System("dataspider", lambda url: {"conn_type": "questetra", "host": url + "/userweb"}),
    System("flowable", lambda url: {"conn_type": "activiti", "host": url + "/flowable-rest/service"}),
    System("activiti", lambda url: {"conn_type": "activiti", "host": url + "/bpmn"}),
    System(
        "yuuvis",
        lambda url: {"conn_type": "yuuvis_bpm", "host": url, "extra": {"tenant": "demo"}},
    ),
    System("bonita", lambda url: {"conn_type": "bonita", "host": url + "/bonita"}),
]


class CountingEmulator(Emulator):
    """The emulator, counting how many requests it is answering at the same moment."""

    in_flight = 0
    max_in_flight = 0

    def app(self) -> Any:
        inner = super().app()

        async def counting(scope: dict, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return await inner(scope, receive, send)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await inner(scope, receive, send)
            finally:
                self.in_flight -= 1

        return counting


@pytest.fixture(scope="module")
def emu() -> Iterator[CountingEmulator]:
    emulator = CountingEmulator.start()
    emulator.engine.add_user(USER, PASSWORD)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(autouse=True)
def calm_emulator(emu: CountingEmulator) -> Iterator[None]:
    yield
    emu.faults.clear()


@pytest.fixture(scope="module")
def definition(emu: CountingEmulator) -> ProcessDefinition:
    return emu.engine.deploy(
        "trigger-wait",
        "Trigger wait",
        tasks=[TaskDef("Review", 1, "review"), TaskDef("Approve", 2, "approve")],
    )


@pytest.fixture(params=SYSTEMS, ids=lambda system: system.name)
def system(request: pytest.FixtureRequest) -> System:
    return request.param


@pytest.fixture
def connect(emu: CountingEmulator, system: System, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Point connection CONN_ID at the system's dialect (as AIRFLOW_CONN_*, read by the async lookup)."""

    def set_connection(password: str = PASSWORD, **extra: Any) -> None:
        fields = system.connection(emu.url)
        fields.update(login=USER, password=password)
        fields["extra"] = {**fields.get("extra", {}), **FAST_RETRIES, **extra}
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(fields))

    set_connection()
    return set_connection


@pytest.fixture
def instance(emu: CountingEmulator, definition: ProcessDefinition, connect: Any) -> Instance:
    return emu.engine.start(definition, user=USER, title="waited for")


def finish_task(emu: Emulator, instance: Instance) -> None:
    emu.engine.complete(emu.engine.open_tasks(instance.id)[0], user=USER)


async def when(condition: Callable[[], bool], timeout: float = 20) -> None:
    give_up = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < give_up, "the condition never came true"
        await asyncio.sleep(0.01)


def wait_while_polling(emu: Emulator, trigger: BpmPollingTrigger, act: Callable[[], None]) -> dict[str, Any]:
    """Let the trigger poll a few times without an answer, then ``act`` and return its event."""

    async def scenario() -> dict[str, Any]:
        seen = len(emu.engine.requests)
        waiting = asyncio.ensure_future(first_event(trigger))
        await when(lambda: len(emu.engine.requests) >= seen + 3)
        assert not waiting.done(), waiting.result() if waiting.done() else None
        act()
        return await waiting

    return asyncio.run(scenario())


# ---- serialization --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "trigger",
    [
        BpmProcessStateTrigger(
            "conn",
            "42",
            target_states=["completed", "CANCELLED"],
            failure_states=["FAILED"],
            poll_interval=7,
            deadline=1_900_000_000.5,
            max_consecutive_errors=3,
            cancel_on_kill=True,
        ),
        BpmProcessStateTrigger("conn", 42),
        BpmTaskTrigger("conn", "42", task_name="Approve", poll_interval=2.5, deadline=None),
        BpmTaskTrigger("conn", "42"),
    ],
    ids=["process-all-kwargs", "process-defaults", "task-named", "task-defaults"],
)
def test_serialize_round_trips_through_json_and_airflow_serde(trigger):
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    assert cls is type(trigger)

    stored = json.loads(json.dumps(kwargs))  # JSON primitives only
    assert stored == kwargs
    assert cls(**stored).serialize() == (classpath, kwargs)
    # the task runner stores trigger kwargs with Airflow's serde
    assert cls(**deserialize(serialize(kwargs))).serialize() == (classpath, kwargs)


def test_serialized_kwargs_are_normalised():
    _, kwargs = BpmProcessStateTrigger("c", 7, target_states=["completed"], failure_states=()).serialize()
    assert kwargs == {
        "bpm_conn_id": "c",
        "process_instance_id": "7",
        "poll_interval": 30.0,
        "deadline": None,
        "max_consecutive_errors": 5,
        "cancel_on_kill": False,
        "target_states": ["COMPLETED"],
        "failure_states": [],
    }


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: BpmProcessStateTrigger("c", "1", poll_interval=0), "poll_interval"),
        (lambda: BpmProcessStateTrigger("c", "1", max_consecutive_errors=0), "max_consecutive_errors"),
        (lambda: BpmProcessStateTrigger("c", "1", target_states=["DONE"]), "unknown process state 'DONE'"),
        (lambda: BpmProcessStateTrigger("c", "1", failure_states=["COMPLETED"]), "in both"),
    ],
)
def test_bad_arguments_fail_when_built(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# ---- the process trigger against each system -----------------------------------------------


def test_process_success_after_polling(emu, instance):
    trigger = BpmProcessStateTrigger(CONN_ID, str(instance.id), poll_interval=0.05)
    starts = len(emu.engine.instances)

    def people_finish_the_work() -> None:
        finish_task(emu, instance)
        finish_task(emu, instance)

    event = wait_while_polling(emu, trigger, people_finish_the_work)

    assert event["status"] == "success"
    assert event["process_instance_id"] == str(instance.id)
    assert event["instance"]["id"] == str(instance.id)
    assert event["instance"]["state"] == "COMPLETED"
    assert event["instance"]["ended_at"]
    assert f"process instance {instance.id} is COMPLETED" in event["message"]
    assert len(emu.engine.instances) == starts  # a trigger never starts anything


def test_process_failure_state(emu, instance):
    trigger = BpmProcessStateTrigger(CONN_ID, str(instance.id), poll_interval=0.05)
    event = wait_while_polling(emu, trigger, lambda: emu.engine.end(instance, FAILED, reason="rejected"))
    assert event["status"] == "failed"
    # Questetra reports FAILED; Activiti and yuuvis know only deleted (CANCELLED) instances
    assert event["instance"]["state"] in {"FAILED", "CANCELLED"}
    assert event["message"].endswith("a failure state")


def test_an_end_outside_both_state_sets_fails_instead_of_waiting_forever(emu, instance):
    emu.engine.end(instance, CANCELLED, reason="withdrawn")
    trigger = BpmProcessStateTrigger(CONN_ID, str(instance.id), failure_states=[], poll_interval=0.05)
    event = asyncio.run(first_event(trigger))
    assert event["status"] == "failed"
    assert "ended without reaching COMPLETED" in event["message"]


def test_timeout_carries_the_last_instance_seen(emu, instance):
    deadline = time.time() + 0.4
    trigger = BpmProcessStateTrigger(CONN_ID, str(instance.id), poll_interval=0.05, deadline=deadline)
    event = asyncio.run(first_event(trigger))
    assert event["status"] == "timeout"
    assert event["instance"]["state"] == "RUNNING"
    assert "the deadline passed" in event["message"]


def test_a_passed_deadline_still_checks_once(emu, instance, definition):
    past = time.time() - 60
    running = BpmProcessStateTrigger(CONN_ID, str(instance.id), deadline=past)
    assert asyncio.run(first_event(running))["status"] == "timeout"

    done = emu.engine.start(definition, user=USER)
    finish_task(emu, done)
    finish_task(emu, done)
    ended = BpmProcessStateTrigger(CONN_ID, str(done.id), deadline=past)
    assert asyncio.run(first_event(ended))["status"] == "success"


def process_completed(emu: Emulator, instance: Instance) -> BpmPollingTrigger:
    finish_task(emu, instance)
    finish_task(emu, instance)
    return BpmProcessStateTrigger(CONN_ID, str(instance.id), poll_interval=0.02, max_consecutive_errors=4)


def task_open(emu: Emulator, instance: Instance) -> BpmPollingTrigger:
    return BpmTaskTrigger(
        CONN_ID, str(instance.id), task_name="Review", poll_interval=0.02, max_consecutive_errors=4
    )


@pytest.mark.parametrize("status", [500, 503])
@pytest.mark.parametrize(
    ("awaited", "expected_state"),
    [(process_completed, "COMPLETED"), (task_open, "RUNNING")],
    ids=["process", "task"],
)
def test_server_errors_then_recovery(emu, instance, connect, status, awaited, expected_state):
    # One attempt per request: every injected error fails a whole poll, which the trigger counts.
    connect(max_retries=1)
    trigger = awaited(emu, instance)
    emu.faults.add("", status, times=3)
    event = asyncio.run(first_event(trigger))
    assert event["status"] == "success"
    assert event["instance"]["state"] == expected_state
    assert emu.faults.take("GET", "/") is None  # all three errors were met, and polling went on


def test_errors_that_do_not_stop_end_the_wait_with_an_error(emu, instance, connect):
    connect(max_retries=1)
    emu.faults.add("", 502, times=1000)
    trigger = BpmProcessStateTrigger(CONN_ID, str(instance.id), poll_interval=0.02, max_consecutive_errors=3)
    event = asyncio.run(first_event(trigger))
    assert event["status"] == "error"
    assert event["message"].startswith("3 polls in a row failed; last error:")
    assert "HTTP 502" in event["message"]


def test_the_hook_retries_inside_one_poll(emu, instance, connect):
    connect(max_retries=4)
    finish_task(emu, instance)
    finish_task(emu, instance)
    emu.faults.add("", 503, times=3, retry_after="0")
    # a single failed poll would end this wait with an error: the hook's retries must absorb all three
    trigger = BpmProcessStateTrigger(CONN_ID, str(instance.id), poll_interval=0.02, max_consecutive_errors=1)
    assert asyncio.run(first_event(trigger))["status"] == "success"


def test_refused_credentials_end_the_wait_at_once_without_the_password(emu, instance, connect):
    connect(password="wrong-password-3141")
    trigger = BpmProcessStateTrigger(CONN_ID, str(instance.id), poll_interval=0.02)
    event = asyncio.run(first_event(trigger))
    assert event["status"] == "error"
    assert "401" in event["message"] or "authentication" in event["message"].lower()
    assert "wrong-password-3141" not in json.dumps(event)


def test_an_unknown_instance_is_an_error(emu, connect):
    event = asyncio.run(first_event(BpmProcessStateTrigger(CONN_ID, "999999", poll_interval=0.02)))
    assert event["status"] == "error"
    assert "999999" in event["message"] or "not found" in event["message"]


# ---- the task trigger against each system --------------------------------------------------


def test_task_trigger_waits_for_the_named_task(emu, instance):
    trigger = BpmTaskTrigger(CONN_ID, str(instance.id), task_name="Approve", poll_interval=0.05)
    event = wait_while_polling(emu, trigger, lambda: finish_task(emu, instance))
    approve = emu.engine.open_tasks(instance.id)[0]
    assert event["status"] == "success"
    assert event["task"]["id"] == str(approve.id)
    assert event["task"]["name"] == "Approve"
    assert event["process_instance_id"] == str(instance.id)
    # the final instance data comes along, as read after the task was found
    assert event["instance"]["id"] == str(instance.id)
    assert event["instance"]["state"] == "RUNNING"
    assert "url" in event


def test_task_trigger_without_a_name_takes_the_open_task(emu, instance):
    event = asyncio.run(first_event(BpmTaskTrigger(CONN_ID, str(instance.id), poll_interval=0.05)))
    assert event["status"] == "success"
    assert event["task"]["name"] == "Review"


def test_task_trigger_fails_when_the_process_ends_first(emu, instance):
    trigger = BpmTaskTrigger(CONN_ID, str(instance.id), task_name="Approve", poll_interval=0.05)
    event = wait_while_polling(emu, trigger, lambda: emu.engine.end(instance, FAILED, reason="stopped"))
    assert event["status"] == "failed"
    assert event["instance"]["state"] in {"FAILED", "CANCELLED"}
    assert "task 'Approve' will never arrive" in event["message"]


def test_task_trigger_times_out(emu, instance):
    trigger = BpmTaskTrigger(
        CONN_ID, str(instance.id), task_name="Sign", poll_interval=0.05, deadline=time.time() + 0.3
    )
    event = asyncio.run(first_event(trigger))
    assert event["status"] == "timeout"
    assert event["instance"]["state"] == "RUNNING"


# ---- the event loop, the connection, kill and cleanup (one system is enough) ---------------


@pytest.mark.parametrize("system", SYSTEMS[:1], ids=["questetra"], indirect=True)
def test_triggers_wait_side_by_side_in_one_event_loop(emu, definition, system, connect):
    # Every request takes 0.3 s at the server. Ten triggers that never block the loop have their
    # first polls in flight at the same moment; a blocking client would send them one by one.
    # (Task lists, which no API batches: process reads of many triggers share one request.)
    emu.faults.latency = 0.3
    emu.max_in_flight = 0
    instances = [emu.engine.start(definition, user=USER) for _ in range(10)]
    deadline = time.time() + 0.5
    triggers = [
        BpmTaskTrigger(CONN_ID, str(i.id), task_name="Never", poll_interval=5, deadline=deadline)
        for i in instances
    ]

    async def all_of_them() -> list[dict[str, Any]]:
        return await asyncio.gather(*(first_event(t) for t in triggers))

    events = asyncio.run(all_of_them())
    assert [e["status"] for e in events] == ["timeout"] * 10
    assert emu.max_in_flight == 10


def test_a_missing_connection_is_an_error_event():
    event = asyncio.run(first_event(BpmProcessStateTrigger("no_such_connection", "1")))
    assert event["status"] == "error"
    assert "no_such_connection" in event["message"]


def test_on_kill_cancels_the_process_only_when_asked(emu, instance):
    asyncio.run(BpmProcessStateTrigger(CONN_ID, str(instance.id)).on_kill())
    assert not instance.ended

    asyncio.run(BpmProcessStateTrigger(CONN_ID, str(instance.id), cancel_on_kill=True).on_kill())
    assert instance.ended


@pytest.mark.parametrize("system", SYSTEMS[:1], ids=["questetra"], indirect=True)
def test_on_kill_of_an_ended_process_only_logs(emu, instance):
    emu.engine.end(instance, FAILED)
    asyncio.run(BpmProcessStateTrigger(CONN_ID, str(instance.id), cancel_on_kill=True).on_kill())
    assert instance.state == FAILED


@pytest.mark.parametrize("system", SYSTEMS[:1], ids=["questetra"], indirect=True)
def test_stopping_the_trigger_leaves_the_process_alone(emu, instance):
    # What a triggerer shutdown or hand-over does: cancel the run, then call cleanup().
    trigger = BpmProcessStateTrigger(CONN_ID, str(instance.id), poll_interval=0.05, cancel_on_kill=True)

    async def stop_after_some_polls() -> None:
        seen = len(emu.engine.requests)
        running = asyncio.ensure_future(first_event(trigger))
        await when(lambda: len(emu.engine.requests) >= seen + 2)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        await trigger.cleanup()

    asyncio.run(stop_after_some_polls())
    assert not instance.ended


@pytest.mark.parametrize("system", SYSTEMS[:1], ids=["questetra"], indirect=True)
def test_a_poll_stuck_past_the_deadline_is_cut_short(emu, instance, monkeypatch):
    monkeypatch.setattr(polling, "DEADLINE_GRACE", 0.2)
    emu.faults.latency = 5.0  # the server hangs far beyond deadline + grace
    trigger = BpmProcessStateTrigger(CONN_ID, str(instance.id), deadline=time.time() + 0.2)
    started = time.monotonic()
    event = asyncio.run(first_event(trigger))
    assert event["status"] == "timeout"
    assert event["message"].startswith("the deadline passed while polling")
    assert time.monotonic() - started < 4.0  # did not sit out the server's 5 s


@pytest.mark.parametrize("system", SYSTEMS[:1], ids=["questetra"], indirect=True)
def test_on_kill_gives_up_before_airflows_on_kill_timeout(emu, instance, monkeypatch, logs):
    # Airflow cancels on_kill after [triggerer] on_kill_timeout; the trigger ends its own wait
    # earlier (here 2 s allowed: 1 s) and logs that the outcome is unknown.
    monkeypatch.setenv("AIRFLOW__TRIGGERER__ON_KILL_TIMEOUT", "2")
    assert polling.on_kill_budget() == 1.0
    emu.faults.latency = 3.0
    trigger = BpmProcessStateTrigger(CONN_ID, str(instance.id), cancel_on_kill=True)

    async def kill() -> float:
        started = time.monotonic()
        await trigger.on_kill()
        return time.monotonic() - started

    took = asyncio.run(kill())
    assert took < 2.0
    assert f"Cancelling process {instance.id} did not finish within 1 s" in logs()


def test_on_kill_budget_defaults_below_airflows_30_seconds(monkeypatch):
    monkeypatch.delenv("AIRFLOW__TRIGGERER__ON_KILL_TIMEOUT", raising=False)
    assert polling.on_kill_budget() == 25.0


@pytest.mark.parametrize("system", SYSTEMS[:1], ids=["questetra"], indirect=True)
def test_on_kill_retries_briefly_whatever_the_connection_allows(emu, instance, connect, logs):
    connect(max_retries=8, retry_delay=0.01, retry_max_delay=0.01)
    emu.faults.add("", 429, times=1000, retry_after="0")  # 429: retried even for a non-idempotent stop
    seen = len(emu.engine.requests)
    asyncio.run(BpmProcessStateTrigger(CONN_ID, str(instance.id), cancel_on_kill=True).on_kill())
    assert len(emu.engine.requests) - seen == polling.KILL_RETRY_POLICY.max_attempts == 2
    assert not instance.ended
    assert f"Could not cancel process {instance.id}: rate limited" in logs()


# ---- the hook a trigger uses is built off the event loop -----------------------------------

PROBE_MODULE = '''
import threading

from airflow_bpm_provider.hooks.questetra import QuestetraHook

IMPORTED_IN = threading.get_ident()


class ProbeHook(QuestetraHook):
    """Questetra, under its own module, so a test sees which thread imported it."""
'''


@pytest.mark.parametrize("system", SYSTEMS[:1], ids=["questetra"], indirect=True)
def test_the_hook_module_is_imported_off_the_event_loop(emu, instance, tmp_path, monkeypatch):
    import sys
    import threading

    from airflow_bpm_provider.hooks import registry

    (tmp_path / "bpm_probe_hook.py").write_text(PROBE_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "bpm_probe_hook", raising=False)
    monkeypatch.setitem(registry.HOOK_CLASSES, "bpm_probe", "bpm_probe_hook.ProbeHook")
    fields = {"conn_type": "bpm_probe", "host": emu.url, "login": USER, "password": PASSWORD}
    monkeypatch.setenv("AIRFLOW_CONN_PROBED", json.dumps(fields))

    finish_task(emu, instance)
    finish_task(emu, instance)
    event = asyncio.run(first_event(BpmProcessStateTrigger("probed", str(instance.id))))

    assert event["status"] == "success"  # the probe hook really served the wait
    loop_thread = threading.get_ident()  # asyncio.run ran the event loop in this thread
    assert sys.modules["bpm_probe_hook"].IMPORTED_IN not in (None, loop_thread)


class TriggererComms:
    """Answers MaskSecret as the triggerer's TriggerCommsDecoder does without a greenback portal.

    A sync ``send`` from the event loop's own thread cannot wait for its answer there: the real
    decoder raises (Airflow's ``mask_secret`` then swallows that, and the supervisor never hears
    of the secret). From any other thread it hands the message to the loop and waits.
    """

    def __init__(self) -> None:
        self.masked: list[Any] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread: int | None = None

    def attach(self) -> None:
        import threading

        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()

    def send(self, msg: Any) -> Any:
        import threading

        assert self.loop is not None
        if threading.get_ident() == self.loop_thread:
            raise RuntimeError("Sync SDK methods cannot be called from a trigger's async def run()")
        return asyncio.run_coroutine_threadsafe(self.asend(msg), self.loop).result()

    async def asend(self, msg: Any) -> Any:
        from airflow.sdk.execution_time.comms import MaskSecret

        assert isinstance(msg, MaskSecret), f"the triggerer double does not answer {type(msg).__name__}"
        self.masked.append(msg.value)
        return None


@pytest.mark.parametrize("system", SYSTEMS[:1], ids=["questetra"], indirect=True)
def test_every_secret_reaches_the_triggerers_masker(emu, instance, monkeypatch):
    import base64

    from airflow.sdk.execution_time import task_runner

    comms = TriggererComms()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", comms, raising=False)
    finish_task(emu, instance)
    finish_task(emu, instance)

    async def wait() -> dict[str, Any]:
        comms.attach()
        return await first_event(BpmProcessStateTrigger(CONN_ID, str(instance.id)))

    assert asyncio.run(wait())["status"] == "success"
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert PASSWORD in comms.masked
    assert basic in comms.masked  # the hook's own secret, registered from a worker thread


@pytest.mark.parametrize("system", SYSTEMS[:1], ids=["questetra"], indirect=True)
def test_the_async_lookup_takes_a_retry_policy_and_parses_the_settings_at_once(emu, connect):
    from airflow_bpm_provider.hooks.registry import aget_bpm_hook, get_bpm_hook
    from airflow_bpm_provider.hooks.retry import RetryPolicy

    short = RetryPolicy(max_attempts=1)
    hook = asyncio.run(aget_bpm_hook(CONN_ID, retry_policy=short))
    assert hook.retry_policy is short
    assert "settings" in vars(hook)  # cached: the event loop never parses nor masks
    assert asyncio.run(aget_bpm_hook(CONN_ID)).retry_policy.max_attempts == FAST_RETRIES["max_retries"]
    assert get_bpm_hook(CONN_ID, retry_policy=short).retry_policy is short
