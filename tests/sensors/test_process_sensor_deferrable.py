"""BpmProcessStateSensor in deferrable mode: check once, defer, resume with the trigger's event."""

from __future__ import annotations

import time
from datetime import timedelta

import memory_bpm
import pytest
from airflow.sdk import DAG
from airflow.sdk.bases.operator import TriggerFailureReason
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
from airflow_bpm_provider.sensors.process import BpmProcessStateSensor
from airflow_bpm_provider.triggers.process import BpmProcessStateTrigger


@pytest.fixture
def instance(bpm):
    bpm.define("expense", "Expense report", ["Review"])
    return bpm.start("expense", {}, "INV-1", "Trip")


def make(**kwargs) -> BpmProcessStateSensor:
    with DAG("bpm_wait", schedule=None):
        return BpmProcessStateSensor(
            task_id="wait", bpm_conn_id=memory_bpm.CONN_ID, **{"deferrable": True, **kwargs}
        )


def finish(bpm, instance_id):
    for task in bpm.open_tasks(instance_id):
        bpm.complete(task.id, {})


def defer(sensor, context=None) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as info:
        run(sensor, context or context_for(sensor))
    return info.value


@pytest.mark.parametrize(("setting", "expected"), [("true", True), ("false", False), (None, False)])
def test_deferrable_defaults_to_airflows_setting(monkeypatch, setting, expected):
    if setting is None:
        monkeypatch.delenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", raising=False)
    else:
        monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", setting)
    with DAG("bpm_wait", schedule=None):
        sensor = BpmProcessStateSensor(task_id="wait", bpm_conn_id="c", process_instance_id="1")
        explicit = BpmProcessStateSensor(
            task_id="explicit", bpm_conn_id="c", process_instance_id="1", deferrable=not expected
        )
    assert sensor.deferrable is expected
    assert explicit.deferrable is not expected


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_a_running_process_defers_with_the_right_trigger_and_a_timeout_margin(
    bpm, instance, supervisor, mode
):
    sensor = make(
        process_instance_id="{{ params.pid }}",
        target_states=["completed", "suspended"],
        failure_states=["failed"],
        poke_interval=15,
        timeout=600,
        mode=mode,
    )
    before = time.time()
    deferred = defer(sensor, context_for(sensor, params={"pid": instance.id}))
    after = time.time()

    assert deferred.method_name == "execute_complete"
    assert isinstance(deferred.trigger, BpmProcessStateTrigger)
    classpath, kwargs = deferred.trigger.serialize()
    assert classpath == "airflow_bpm_provider.triggers.process.BpmProcessStateTrigger"
    deadline = kwargs.pop("deadline")
    assert before + 600 <= deadline <= after + 600
    assert kwargs == {
        "bpm_conn_id": memory_bpm.CONN_ID,
        "process_instance_id": instance.id,  # rendered
        "target_states": ["COMPLETED", "SUSPENDED"],
        "failure_states": ["FAILED"],
        "poll_interval": 15.0,
        "max_consecutive_errors": 5,
        "cancel_on_kill": False,
    }
    assert deferred.timeout == timedelta(seconds=600) + DEFER_MARGIN


def test_a_zero_poke_interval_does_not_make_the_trigger_spin(bpm, instance, supervisor):
    deferred = defer(make(process_instance_id=instance.id, poke_interval=0))
    assert deferred.trigger.poll_interval == 1.0


def test_a_process_already_in_a_target_state_never_defers(bpm, instance, supervisor):
    finish(bpm, instance.id)
    sensor = make(process_instance_id=instance.id)
    result = run(sensor, context_for(sensor))
    assert result["state"] == "COMPLETED"
    assert result["id"] == instance.id


@pytest.mark.parametrize(
    ("soft_fail", "expected"), [(False, AirflowFailException), (True, AirflowSkipException)]
)
def test_a_process_already_failed_fails_before_deferring(bpm, instance, supervisor, soft_fail, expected):
    bpm.end(instance.id, ProcessState.FAILED)
    sensor = make(process_instance_id=instance.id, soft_fail=soft_fail)
    with pytest.raises(expected) as info:
        run(sensor, context_for(sensor))
    assert type(info.value) is expected


def test_silent_fail_defers_after_a_failed_first_check(bpm, supervisor):
    sensor = make(process_instance_id="404404", silent_fail=True)
    assert defer(sensor).trigger.process_instance_id == "404404"
    noisy = make(process_instance_id="404404")
    with pytest.raises(Exception, match="no process instance 404404"):
        run(noisy, context_for(noisy))


def test_the_round_trip_through_the_trigger_returns_what_poke_returns(bpm, instance, supervisor):
    sensor = make(process_instance_id=instance.id, poke_interval=0.01)
    context = context_for(sensor)
    deferred = defer(sensor, context)
    finish(bpm, instance.id)

    event = run_trigger(deferred.trigger)
    resumed = sensor.resume_execution(deferred.method_name, {"event": event}, context)

    assert resumed == sensor.poke(context).xcom_value
    assert resumed["state"] == "COMPLETED"
    assert resumed["url"] == f"{memory_bpm.HOST}/process/{instance.id}"


@pytest.mark.parametrize("state", [ProcessState.FAILED, ProcessState.CANCELLED])
def test_a_failed_event_fails_the_way_poke_does(bpm, instance, supervisor, state):
    sensor = make(process_instance_id=instance.id)
    context = context_for(sensor)
    deferred = defer(sensor, context)
    bpm.end(instance.id, state)
    event = run_trigger(deferred.trigger)
    assert event["status"] == "failed"

    with pytest.raises(AirflowFailException) as resumed:
        sensor.execute_complete(context, event)
    with pytest.raises(AirflowFailException) as poked:
        sensor.poke(context)
    assert str(resumed.value) == str(poked.value)
    assert f"{memory_bpm.HOST}/process/{instance.id}" in str(resumed.value)


def test_an_end_outside_both_sets_fails_through_the_trigger_too(bpm, instance, supervisor):
    sensor = make(process_instance_id=instance.id, failure_states=["FAILED"])
    deferred = defer(sensor)
    bpm.end(instance.id, ProcessState.CANCELLED)
    event = run_trigger(deferred.trigger)
    with pytest.raises(AirflowFailException, match="will never reach COMPLETED"):
        sensor.execute_complete(context_for(sensor), event)


def test_timeout_and_error_events(bpm, instance, supervisor):
    sensor = make(process_instance_id=instance.id)
    context = context_for(sensor)
    timeout = {
        "status": "timeout",
        "message": "the deadline passed; still RUNNING",
        "process_instance_id": "1",
    }
    with pytest.raises(AirflowSensorTimeout, match="still RUNNING"):
        sensor.execute_complete(context, timeout)
    error = {"status": "error", "message": "HTTP 401 authentication failed", "process_instance_id": "1"}
    with pytest.raises(AirflowException, match="HTTP 401 authentication failed") as info:
        sensor.execute_complete(context, error)
    assert type(info.value) is AirflowException


@pytest.mark.parametrize(
    ("event", "named"),
    [
        (None, "NoneType None"),
        ("success", "str 'success'"),
        ({}, "status is None"),
        ({"status": "done", "message": "?"}, "status is 'done'"),
        ({"status": "success", "message": "no instance"}, "without the instance"),
        ({"status": "failed", "instance": {"id": "1", "state": "BROKEN"}}, "unreadable instance"),
    ],
)
def test_garbage_events_are_errors_naming_what_came(bpm, instance, supervisor, event, named):
    sensor = make(process_instance_id=instance.id, soft_fail=True)
    with pytest.raises(AirflowException, match=named) as info:
        sensor.execute_complete(context_for(sensor), event)
    assert type(info.value) is AirflowException  # not skipped by soft_fail when called directly


@pytest.mark.parametrize(
    "event",
    [
        {"status": "timeout", "message": "deadline passed"},
        {"status": "failed", "instance": {"id": "7", "state": "FAILED"}},
    ],
)
def test_soft_fail_skips_failed_and_timeout_events(bpm, instance, supervisor, event):
    sensor = make(process_instance_id=instance.id, soft_fail=True)
    with pytest.raises(AirflowSkipException):
        sensor.execute_complete(context_for(sensor), event)


def test_through_airflows_resume_soft_fail_also_skips_errors_and_a_lost_trigger(bpm, instance, supervisor):
    # Airflow 3's BaseSensorOperator.resume_execution skips any AirflowException under soft_fail,
    # and turns the deferral timeout (trigger lost) into a sensor timeout first.
    sensor = make(process_instance_id=instance.id, soft_fail=True)
    context = context_for(sensor)
    with pytest.raises(AirflowSkipException):
        sensor.resume_execution("execute_complete", {"event": {"status": "error", "message": "x"}}, context)
    with pytest.raises(AirflowSkipException):
        sensor.resume_execution("__fail__", {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, context)
    strict = make(process_instance_id=instance.id)
    with pytest.raises(AirflowSensorTimeout):
        strict.resume_execution("__fail__", {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, context)


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_a_missing_connection_under_never_fail_skips_in_either_mode(supervisor, deferrable):
    with DAG("bpm_wait", schedule=None):
        sensor = BpmProcessStateSensor(
            task_id="wait",
            bpm_conn_id="no_such_bpm",
            process_instance_id="1",
            never_fail=True,
            deferrable=deferrable,
        )
    with pytest.raises(AirflowSkipException):
        run(sensor, context_for(sensor))


def test_a_missing_connection_under_silent_fail_still_defers(supervisor):
    # the trigger then reports the missing connection itself, as an error event
    with DAG("bpm_wait", schedule=None):
        sensor = BpmProcessStateSensor(
            task_id="wait",
            bpm_conn_id="no_such_bpm",
            process_instance_id="1",
            silent_fail=True,
            deferrable=True,
        )
    deferred = defer(sensor)
    assert deferred.trigger.bpm_conn_id == "no_such_bpm"
    assert run_trigger(deferred.trigger)["status"] == "error"
