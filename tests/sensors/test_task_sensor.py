"""BpmTaskSensor: succeeds once a (named) task is open; fails when the process ended."""

from __future__ import annotations

import memory_bpm
import pytest
from airflow.sdk import DAG, PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException, AirflowSkipException
from airflow_runtime import context_for, run

from airflow_bpm_provider.models import ProcessState
from airflow_bpm_provider.sensors.task import BpmTaskSensor


@pytest.fixture
def instance(bpm):
    bpm.define("expense", "Expense report", ["Review", "Approve"])
    return bpm.start("expense", {}, "INV-1", "Trip")


def make(**kwargs) -> BpmTaskSensor:
    with DAG("bpm_task_wait", schedule=None):
        return BpmTaskSensor(task_id="wait_task", bpm_conn_id=memory_bpm.CONN_ID, **kwargs)


def test_a_named_task_is_awaited_and_its_id_returned(bpm, instance, supervisor):
    sensor = make(process_instance_id=instance.id, task_name="Approve")
    context = context_for(sensor)
    assert sensor.poke(context) is False  # only Review is open

    review = bpm.open_tasks(instance.id)[0]
    bpm.complete(review.id, {})
    result = sensor.poke(context)
    assert isinstance(result, PokeReturnValue)
    approve = bpm.open_tasks(instance.id)[0]
    assert (result.is_done, result.xcom_value, approve.name) == (True, approve.id, "Approve")


def test_without_a_name_any_open_task_counts(bpm, instance, supervisor):
    sensor = make(process_instance_id="{{ params.pid }}")
    assert run(sensor, context_for(sensor, params={"pid": instance.id})) == bpm.open_tasks(instance.id)[0].id


def test_a_process_that_ended_fails_the_sensor_at_once(bpm, instance, supervisor):
    bpm.end(instance.id, ProcessState.CANCELLED)
    sensor = make(process_instance_id=instance.id, task_name="Approve", mode="reschedule")
    with pytest.raises(AirflowFailException) as info:
        run(sensor, context_for(sensor))
    assert f"process instance {instance.id} is CANCELLED" in str(info.value)
    assert "task 'Approve' will never arrive" in str(info.value)


def test_a_completed_process_fails_it_too_and_soft_fail_skips(bpm, instance, supervisor):
    for _ in range(2):
        bpm.complete(bpm.open_tasks(instance.id)[0].id, {})
    assert bpm.instance(instance.id).state is ProcessState.COMPLETED
    sensor = make(process_instance_id=instance.id, soft_fail=True)
    with pytest.raises(AirflowSkipException):
        run(sensor, context_for(sensor))


def test_reschedule_mode_gives_the_slot_back_while_no_task_is_open(bpm, instance, supervisor):
    sensor = make(process_instance_id=instance.id, task_name="Approve", mode="reschedule", poke_interval=30)
    with pytest.raises(AirflowRescheduleException):
        run(sensor, context_for(sensor))


def test_template_fields():
    assert set(BpmTaskSensor.template_fields) == {"process_instance_id", "task_name"}
