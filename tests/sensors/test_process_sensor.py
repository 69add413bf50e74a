"""BpmProcessStateSensor in poke and reschedule mode, with Airflow's own sensor loop."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import memory_bpm
import pytest
from airflow.sdk import DAG, PokeReturnValue
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowRescheduleException,
    AirflowSensorTimeout,
    AirflowSkipException,
)
from airflow_runtime import context_for, run

from airflow_bpm_provider.models import ProcessState
from airflow_bpm_provider.sensors.process import BpmProcessStateSensor


@pytest.fixture
def instance(bpm):
    bpm.define("expense", "Expense report", ["Review"])
    return bpm.start("expense", {}, "INV-1", "Trip")


def make(**kwargs) -> BpmProcessStateSensor:
    with DAG("bpm_wait", schedule=None):
        return BpmProcessStateSensor(task_id="wait", bpm_conn_id=memory_bpm.CONN_ID, **kwargs)


def own_state(operator) -> dict:
    """The operator's attributes, less the logger Airflow caches on first use."""
    return {key: value for key, value in vars(operator).items() if key != "_cached_logger"}


def finish(bpm, instance_id):
    for task in bpm.open_tasks(instance_id):
        bpm.complete(task.id, {})


def test_poke_is_false_while_running_then_returns_the_instance(bpm, instance, supervisor):
    sensor = make(process_instance_id=instance.id)
    context = context_for(sensor)
    assert sensor.poke(context) is False

    finish(bpm, instance.id)
    result = sensor.poke(context)
    assert isinstance(result, PokeReturnValue)
    assert result.is_done is True
    assert result.xcom_value["id"] == instance.id
    assert result.xcom_value["state"] == "COMPLETED"
    assert result.xcom_value["raw_state"] == "ended"
    assert result.xcom_value["url"] == f"{memory_bpm.HOST}/process/{instance.id}"
    assert result.xcom_value["title"] == "Trip"


@pytest.mark.parametrize("state", [ProcessState.FAILED, ProcessState.CANCELLED])
def test_a_failure_state_fails_at_once_naming_state_and_url(bpm, instance, supervisor, state):
    bpm.end(instance.id, state)
    sensor = make(process_instance_id=instance.id)
    with pytest.raises(AirflowFailException) as info:
        run(sensor, context_for(sensor))
    assert isinstance(info.value, AirflowException)
    assert f"process instance {instance.id} is {state.value}" in str(info.value)
    assert f"{memory_bpm.HOST}/process/{instance.id}" in str(info.value)


def test_soft_fail_skips_instead(bpm, instance, supervisor):
    bpm.end(instance.id, ProcessState.FAILED)
    sensor = make(process_instance_id=instance.id, soft_fail=True)
    with pytest.raises(AirflowSkipException):
        run(sensor, context_for(sensor))


def test_an_end_that_is_neither_target_nor_failure_state_fails(bpm, instance, supervisor):
    bpm.end(instance.id, ProcessState.CANCELLED)
    sensor = make(process_instance_id=instance.id, failure_states=["FAILED"])
    with pytest.raises(AirflowFailException, match="will never reach COMPLETED"):
        sensor.poke(context_for(sensor))


def test_any_target_state_counts(bpm, instance, supervisor):
    bpm.end(instance.id, ProcessState.CANCELLED)
    sensor = make(
        process_instance_id=instance.id, target_states=["completed", "cancelled"], failure_states=[]
    )
    assert run(sensor, context_for(sensor))["state"] == "CANCELLED"


def test_poke_mode_waits_until_the_process_completes(bpm, instance, supervisor):
    sensor = make(process_instance_id="{{ params.pid }}", poke_interval=0.05, timeout=30)
    context = context_for(sensor, params={"pid": instance.id})
    outcome = {}

    def execute():
        outcome["result"] = run(sensor, context)

    worker = threading.Thread(target=execute)
    worker.start()
    time.sleep(0.3)
    assert worker.is_alive()  # still poking
    finish(bpm, instance.id)
    worker.join(10)
    assert outcome["result"]["state"] == "COMPLETED"
    assert outcome["result"]["id"] == instance.id


def test_poke_mode_times_out_and_soft_fail_skips_the_timeout(bpm, instance, supervisor):
    sensor = make(process_instance_id=instance.id, poke_interval=0.01, timeout=0.05)
    with pytest.raises(AirflowSensorTimeout):
        run(sensor, context_for(sensor))
    sensor = make(process_instance_id=instance.id, poke_interval=0.01, timeout=0.05, soft_fail=True)
    with pytest.raises(AirflowSkipException):
        run(sensor, context_for(sensor))


def test_reschedule_mode_frees_the_slot_and_keeps_nothing_between_pokes(bpm, instance, supervisor):
    sensor = make(process_instance_id=instance.id, mode="reschedule", poke_interval=60, timeout=3600)
    state_before = own_state(sensor)

    with pytest.raises(AirflowRescheduleException) as info:
        run(sensor, context_for(sensor))
    assert info.value.reschedule_date > datetime.now(UTC)
    assert own_state(sensor) == state_before

    # The next try is a fresh process: a new copy of the operator, a rescheduled context.
    finish(bpm, instance.id)
    supervisor.first_reschedule_date = datetime.now(UTC)
    again = make(process_instance_id=instance.id, mode="reschedule", poke_interval=60, timeout=3600)
    result = run(again, context_for(again, reschedule_count=1))
    assert result["state"] == "COMPLETED"


def test_reschedule_mode_times_out_from_the_first_poke(bpm, instance, supervisor):
    supervisor.first_reschedule_date = datetime(2000, 1, 1, tzinfo=UTC)
    sensor = make(process_instance_id=instance.id, mode="reschedule", poke_interval=60, timeout=3600)
    with pytest.raises(AirflowSensorTimeout):
        run(sensor, context_for(sensor, reschedule_count=3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_states": ["FINISHED"]}, "target_states: unknown process state 'FINISHED'"),
        ({"failure_states": ["x"]}, "failure_states: unknown process state 'x'"),
        ({"target_states": ["COMPLETED", "FAILED"]}, "FAILED are in both"),
    ],
)
def test_states_are_checked_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(process_instance_id="1", **kwargs)


def test_template_fields():
    assert BpmProcessStateSensor.template_fields == ("process_instance_id",)
