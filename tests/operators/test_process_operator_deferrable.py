"""BpmStartProcessOperator(wait_for_completion=True, deferrable=True), and cancel_on_kill."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import memory_bpm
import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowException, TaskDeferred
from airflow_runtime import context_for, run
from trigger_events import run_trigger

from airflow_bpm_provider.deferral import DEFAULT_WAIT, DEFER_MARGIN
from airflow_bpm_provider.models import ProcessState
from airflow_bpm_provider.operators.process import BpmStartProcessOperator


@pytest.fixture
def expense(bpm):
    bpm.define("expense", "Expense report", ["Review", "Approve"])
    bpm.define("instant", "Nothing to do", [])  # completes as it starts
    return bpm


def make(**kwargs) -> BpmStartProcessOperator:
    defaults = {"process": "expense", "wait_for_completion": True, "deferrable": True, "poll_interval": 10}
    with DAG("bpm_start", schedule=None):
        return BpmStartProcessOperator(
            task_id="start", bpm_conn_id=memory_bpm.CONN_ID, **{**defaults, **kwargs}
        )


def defer(op, context) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as info:
        run(op, context)
    return info.value


def only_instance(bpm):
    (instance,) = bpm.instances.values()
    return instance


def test_deferrable_defaults_to_airflows_setting(monkeypatch):
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    with DAG("d", schedule=None):
        assert BpmStartProcessOperator(task_id="s", bpm_conn_id="c", process="p").deferrable is True
    monkeypatch.delenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE")
    with DAG("d", schedule=None):
        assert BpmStartProcessOperator(task_id="s", bpm_conn_id="c", process="p").deferrable is False


def test_it_starts_on_the_worker_pushes_id_and_url_then_defers(expense, supervisor):
    op = make(timeout=900, target_states=["completed"], failure_states=["failed"], cancel_on_kill=True)
    context = context_for(op)
    before = time.time()
    deferred = defer(op, context)
    after = time.time()

    instance = only_instance(expense)
    assert len(expense.starts) == 1
    ti = context["ti"]
    assert supervisor.xcom(ti, "process_instance_id") == instance.id
    assert supervisor.xcom(ti, "process_instance_url") == f"{memory_bpm.HOST}/process/{instance.id}"

    classpath, kwargs = deferred.trigger.serialize()
    assert classpath == "airflow_bpm_provider.triggers.process.BpmProcessStateTrigger"
    assert before + 900 <= kwargs.pop("deadline") <= after + 900
    assert kwargs == {
        "bpm_conn_id": memory_bpm.CONN_ID,
        "process_instance_id": instance.id,
        "target_states": ["COMPLETED"],
        "failure_states": ["FAILED"],
        "poll_interval": 10.0,
        "max_consecutive_errors": 5,
        "cancel_on_kill": True,
    }
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout == timedelta(seconds=900) + DEFER_MARGIN


def test_without_timeout_the_execution_timeout_bounds_the_wait(expense, supervisor):
    op = make(execution_timeout=timedelta(hours=2))
    deferred = defer(op, context_for(op))
    assert deferred.timeout == timedelta(hours=2) + DEFER_MARGIN
    assert deferred.trigger.deadline == pytest.approx(time.time() + 7200, abs=5)


def test_without_any_timeout_the_wait_gets_the_default_budget_and_says_so(expense, supervisor, logs):
    op = make()
    context = context_for(op)
    deferred = defer(op, context)
    assert timedelta(days=7) == DEFAULT_WAIT
    assert deferred.timeout == DEFAULT_WAIT + DEFER_MARGIN
    assert deferred.trigger.deadline == pytest.approx(time.time() + DEFAULT_WAIT.total_seconds(), abs=5)
    assert "Neither timeout nor execution_timeout is set: waiting at most 7 days" in logs()
    with pytest.raises(AirflowException, match=r"after waiting 604800\.0 s for COMPLETED"):
        op.execute_complete(context, {"status": "timeout", "message": "the deadline passed"})


def test_an_explicit_budget_logs_no_default(expense, supervisor, logs):
    op = make(timeout=60)
    defer(op, context_for(op))
    assert "Neither timeout nor execution_timeout" not in logs()


def test_a_process_that_completes_as_it_starts_never_defers(expense, supervisor):
    op = make(process="instant")
    instance_id = run(op, context_for(op))
    assert expense.instance(instance_id).state is ProcessState.COMPLETED


def test_a_reused_failed_instance_fails_before_deferring(expense, supervisor):
    earlier = expense.start("expense", {}, "INV-9", None)
    expense.end(earlier.id, ProcessState.FAILED)
    op = make(business_key="INV-9")
    with pytest.raises(AirflowException, match=f"process instance {earlier.id} is FAILED"):
        run(op, context_for(op, try_number=2))
    assert len(expense.starts) == 1


def test_without_waiting_nothing_defers(expense, supervisor):
    op = make(wait_for_completion=False)
    assert run(op, context_for(op)) == only_instance(expense).id


def test_the_round_trip_through_the_trigger_returns_the_instance_id(expense, supervisor):
    op = make(poll_interval=0)
    context = context_for(op)
    deferred = defer(op, context)
    instance = only_instance(expense)
    assert deferred.trigger.poll_interval == 1.0  # a trigger never polls in a tight loop
    for _ in range(2):
        expense.complete(expense.open_tasks(instance.id)[0].id, {})

    event = run_trigger(deferred.trigger)
    assert op.resume_execution(deferred.method_name, {"event": event}, context) == instance.id


@pytest.mark.parametrize("state", [ProcessState.FAILED, ProcessState.CANCELLED])
def test_a_failed_event_fails_as_the_polling_wait_does(expense, supervisor, state):
    op = make()
    context = context_for(op)
    deferred = defer(op, context)
    instance = only_instance(expense)
    expense.end(instance.id, state)
    event = run_trigger(deferred.trigger)

    with pytest.raises(AirflowException) as info:
        op.execute_complete(context, event)
    assert str(info.value) == f"process instance {instance.id} is {state.value} (vendor state " + (
        f"'{memory_bpm.VENDOR_STATES[state]}'; see {memory_bpm.HOST}/process/{instance.id}), a failure state"
    )


def test_timeout_error_and_garbage_events(expense, supervisor):
    op = make(timeout=60)
    context = context_for(op)
    with pytest.raises(AirflowException, match=r"the deadline passed; .* after waiting 60 s for COMPLETED"):
        op.execute_complete(context, {"status": "timeout", "message": "the deadline passed; is RUNNING"})
    with pytest.raises(AirflowException, match="process instance 5 failed: HTTP 503"):
        op.execute_complete(context, {"status": "error", "message": "HTTP 503", "process_instance_id": "5"})
    for garbage, named in [
        (None, "NoneType"),
        ([], "list"),
        ({"status": None}, "status is None"),
        ({"status": "cancelled"}, "status is 'cancelled'"),
        ({"status": "success", "instance": "42"}, "without the instance"),
    ]:
        with pytest.raises(AirflowException, match=named):
            op.execute_complete(context, garbage)


def test_a_success_event_for_a_running_process_is_not_believed(expense, supervisor):
    op = make()
    event = {"status": "success", "instance": {"id": "1", "state": "RUNNING"}}
    with pytest.raises(AirflowException, match="reported success, but process instance 1 is RUNNING"):
        op.execute_complete(context_for(op), event)


# ---- cancel_on_kill -------------------------------------------------------------------------


def test_on_kill_cancels_the_started_process_in_poke_mode(expense, supervisor):
    op = make(deferrable=False, cancel_on_kill=True, poll_interval=0)
    op._sleep = lambda seconds: op.on_kill()  # the user kills the task while it waits
    with pytest.raises(AirflowException, match="is CANCELLED"):
        run(op, context_for(op))
    assert only_instance(expense).state is ProcessState.CANCELLED


def test_on_kill_leaves_the_process_alone_by_default(expense, supervisor):
    op = make(deferrable=False, poll_interval=0, timeout=0)
    with pytest.raises(AirflowException, match="after waiting"):
        run(op, context_for(op))
    op.on_kill()
    assert only_instance(expense).state is ProcessState.RUNNING


def test_on_kill_before_anything_started_does_nothing(expense):
    make(cancel_on_kill=True).on_kill()
    assert expense.instances == {}


def test_the_deferred_trigger_cancels_on_a_users_kill(expense, supervisor):
    op = make(cancel_on_kill=True)
    deferred = defer(op, context_for(op))
    asyncio.run(deferred.trigger.on_kill())
    assert only_instance(expense).state is ProcessState.CANCELLED
