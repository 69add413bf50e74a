"""BpmTaskSensor in deferrable mode: check once, defer, resume with the trigger's event."""

from __future__ import annotations

import time
from datetime import timedelta

import memory_bpm
import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)
from airflow_runtime import context_for, run
from trigger_events import run_trigger

from airflow_bpm_provider.deferral import DEFER_MARGIN
from airflow_bpm_provider.models import ProcessState
from airflow_bpm_provider.sensors.task import BpmTaskSensor
from airflow_bpm_provider.triggers.task import BpmTaskTrigger


@pytest.fixture
def instance(bpm):
    bpm.define("expense", "Expense report", ["Review", "Approve"])
    return bpm.start("expense", {}, "INV-1", "Trip")


def make(**kwargs) -> BpmTaskSensor:
    with DAG("bpm_task_wait", schedule=None):
        return BpmTaskSensor(
            task_id="wait_task", bpm_conn_id=memory_bpm.CONN_ID, **{"deferrable": True, **kwargs}
        )


def defer(sensor, context=None) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as info:
        run(sensor, context or context_for(sensor))
    return info.value


def test_deferrable_defaults_to_airflows_setting(monkeypatch):
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "true")
    with DAG("d", schedule=None):
        assert BpmTaskSensor(task_id="t", bpm_conn_id="c", process_instance_id="1").deferrable is True
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "false")
    with DAG("d", schedule=None):
        assert BpmTaskSensor(task_id="t", bpm_conn_id="c", process_instance_id="1").deferrable is False


def test_a_missing_task_defers_with_the_right_trigger(bpm, instance, supervisor):
    sensor = make(
        process_instance_id=instance.id, task_name="{{ params.task }}", poke_interval=20, timeout=120
    )
    before = time.time()
    deferred = defer(sensor, context_for(sensor, params={"task": "Approve"}))
    after = time.time()

    classpath, kwargs = deferred.trigger.serialize()
    assert classpath == "airflow_bpm_provider.triggers.task.BpmTaskTrigger"
    assert before + 120 <= kwargs.pop("deadline") <= after + 120
    assert kwargs == {
        "bpm_conn_id": memory_bpm.CONN_ID,
        "process_instance_id": instance.id,
        "task_name": "Approve",
        "poll_interval": 20.0,
        "max_consecutive_errors": 5,
        "cancel_on_kill": False,
    }
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout == timedelta(seconds=120) + DEFER_MARGIN


def test_an_open_task_is_returned_without_deferring(bpm, instance, supervisor):
    sensor = make(process_instance_id=instance.id, mode="reschedule")
    assert run(sensor, context_for(sensor)) == bpm.open_tasks(instance.id)[0].id


def test_an_ended_process_fails_before_deferring_and_soft_fail_skips(bpm, instance, supervisor):
    bpm.end(instance.id, ProcessState.CANCELLED)
    strict = make(process_instance_id=instance.id, task_name="Approve")
    with pytest.raises(AirflowFailException, match="task 'Approve' will never arrive"):
        run(strict, context_for(strict))
    soft = make(process_instance_id=instance.id, task_name="Approve", soft_fail=True)
    with pytest.raises(AirflowSkipException):
        run(soft, context_for(soft))


def test_the_round_trip_through_the_trigger_returns_the_task_id(bpm, instance, supervisor):
    sensor = make(process_instance_id=instance.id, task_name="Approve")
    context = context_for(sensor)
    deferred = defer(sensor, context)
    bpm.complete(bpm.open_tasks(instance.id)[0].id, {})  # Review done: Approve opens

    event = run_trigger(deferred.trigger)
    result = sensor.resume_execution(deferred.method_name, {"event": event}, context)

    assert result == bpm.open_tasks(instance.id)[0].id
    assert result == sensor.poke(context).xcom_value


def test_a_failed_event_fails_the_way_poke_does(bpm, instance, supervisor):
    sensor = make(process_instance_id=instance.id, task_name="Approve")
    context = context_for(sensor)
    deferred = defer(sensor, context)
    bpm.end(instance.id, ProcessState.FAILED)
    event = run_trigger(deferred.trigger)

    with pytest.raises(AirflowFailException) as resumed:
        sensor.execute_complete(context, event)
    with pytest.raises(AirflowFailException) as poked:
        sensor.poke(context)
    assert str(resumed.value) == str(poked.value)


def test_a_failed_event_for_a_running_process_is_not_believed(bpm, instance, supervisor):
    sensor = make(process_instance_id=instance.id)
    event = {"status": "failed", "instance": {"id": instance.id, "state": "RUNNING"}}
    with pytest.raises(AirflowException, match="reported failed, but process instance"):
        sensor.execute_complete(context_for(sensor), event)


def test_timeout_error_and_garbage_events(bpm, instance, supervisor):
    sensor = make(process_instance_id=instance.id, task_name="Approve")
    context = context_for(sensor)
    with pytest.raises(AirflowSensorTimeout, match="no task 'Approve' yet"):
        sensor.execute_complete(context, {"status": "timeout", "message": "no task 'Approve' yet"})
    with pytest.raises(AirflowException, match=r"task 'Approve' .* failed: connection refused"):
        sensor.execute_complete(context, {"status": "error", "message": "connection refused"})
    for garbage, named in [
        (None, "NoneType"),
        ({"message": "hi"}, "status is None"),
        ({"status": "SUCCESS"}, "status is 'SUCCESS'"),
        ({"status": "success", "task": {"name": "x"}}, "without the task"),
    ]:
        with pytest.raises(AirflowException, match=named):
            sensor.execute_complete(context, garbage)


def test_soft_fail_skips_a_timeout_event(bpm, instance, supervisor):
    sensor = make(process_instance_id=instance.id, soft_fail=True)
    with pytest.raises(AirflowSkipException):
        sensor.execute_complete(context_for(sensor), {"status": "timeout", "message": "late"})
    with pytest.raises(AirflowSkipException):
        sensor.execute_complete(
            context_for(sensor), {"status": "failed", "instance": {"id": "1", "state": "COMPLETED"}}
        )


def test_the_trigger_built_by_the_sensor_is_a_task_trigger(bpm, instance, supervisor):
    deferred = defer(make(process_instance_id=instance.id, task_name="Approve"))
    assert isinstance(deferred.trigger, BpmTaskTrigger)


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_a_missing_connection_under_never_fail_skips_in_either_mode(supervisor, deferrable):
    with DAG("bpm_task_wait", schedule=None):
        sensor = BpmTaskSensor(
            task_id="wait_task",
            bpm_conn_id="no_such_bpm",
            process_instance_id="1",
            never_fail=True,
            deferrable=deferrable,
        )
    with pytest.raises(AirflowSkipException):
        run(sensor, context_for(sensor))


def test_a_missing_connection_under_silent_fail_still_defers(supervisor):
    with DAG("bpm_task_wait", schedule=None):
        sensor = BpmTaskSensor(
            task_id="wait_task",
            bpm_conn_id="no_such_bpm",
            process_instance_id="1",
            silent_fail=True,
            deferrable=True,
        )
    assert defer(sensor).trigger.bpm_conn_id == "no_such_bpm"


def test_the_success_event_carries_the_instance_but_the_xcom_stays_the_task_id(bpm, instance, supervisor):
    sensor = make(process_instance_id=instance.id, task_name="Approve")
    context = context_for(sensor)
    deferred = defer(sensor, context)
    bpm.complete(bpm.open_tasks(instance.id)[0].id, {})  # Review done: Approve opens

    event = run_trigger(deferred.trigger)

    assert event["instance"]["id"] == instance.id
    assert event["instance"]["state"] == "RUNNING"
    assert event["url"] == f"{memory_bpm.HOST}/process/{instance.id}"
    approve = bpm.open_tasks(instance.id)[0].id
    assert event["task"]["id"] == approve
    assert sensor.resume_execution(deferred.method_name, {"event": event}, context) == approve
