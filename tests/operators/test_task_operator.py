"""BpmCompleteTaskOperator: find the open task, optionally claim it, complete it."""

from __future__ import annotations

import memory_bpm
import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowException
from airflow_runtime import context_for, run

from airflow_bpm_provider.exceptions import BpmConfigError, BpmConflict
from airflow_bpm_provider.models import ProcessState
from airflow_bpm_provider.operators.task import BpmCompleteTaskOperator


@pytest.fixture
def instance(bpm):
    bpm.define("expense", "Expense report", ["Review", "Approve"])
    return bpm.start("expense", {}, "INV-1", "Trip")


def make(**kwargs) -> BpmCompleteTaskOperator:
    with DAG("bpm_complete", schedule=None):
        return BpmCompleteTaskOperator(task_id="complete", bpm_conn_id=memory_bpm.CONN_ID, **kwargs)


def open_task(bpm, instance_id, name=None):
    return next(t for t in bpm.open_tasks(instance_id) if name is None or t.name == name)


def test_the_task_found_by_process_and_name_is_completed_with_rendered_variables(bpm, instance, supervisor):
    review = open_task(bpm, instance.id, "Review")
    op = make(
        process_instance_id="{{ params.pid }}",
        task_name="{{ params.step }}",
        variables={"checked_on": "{{ ds }}", "ok": True},
    )
    assert run(op, context_for(op, params={"pid": instance.id, "step": "Review"})) == review.id
    assert bpm.task(review.id).completed_with == {"checked_on": "2024-05-01", "ok": True}
    assert [t.name for t in bpm.open_tasks(instance.id)] == ["Approve"]  # the process moved on


def test_a_task_named_by_id_is_completed_and_the_last_one_ends_the_process(bpm, instance, supervisor):
    bpm.complete(open_task(bpm, instance.id).id, {})
    approve = open_task(bpm, instance.id, "Approve")
    op = make(bpm_task_id="{{ params.task }}")
    assert run(op, context_for(op, params={"task": approve.id})) == approve.id
    assert bpm.instance(instance.id).state is ProcessState.COMPLETED


def test_claim_before_completing_uses_the_connection_user_or_the_assignee(bpm, instance, supervisor):
    review = open_task(bpm, instance.id)
    run(make(process_instance_id=instance.id, claim=True), context_for(make(process_instance_id=instance.id)))
    assert bpm.task(review.id).assignee == "robot"  # the connection's login

    approve = open_task(bpm, instance.id)
    op = make(process_instance_id=instance.id, claim=True, assignee="{{ params.who }}")
    run(op, context_for(op, params={"who": "alice"}))
    assert bpm.task(approve.id).assignee == "alice"
    assert bpm.instance(instance.id).state is ProcessState.COMPLETED


def test_a_task_claimed_by_someone_else_is_not_taken_over(bpm, instance, supervisor):
    review = open_task(bpm, instance.id)
    bpm.claim(review.id, "bob")
    op = make(process_instance_id=instance.id, claim=True)
    with pytest.raises(BpmConflict, match="claimed by bob"):
        run(op, context_for(op))
    assert bpm.task(review.id).open


def test_no_open_task_is_a_clear_error(bpm, instance, supervisor):
    op = make(process_instance_id=instance.id, task_name="Approve")
    with pytest.raises(
        AirflowException, match=f"no open task in process instance {instance.id} named 'Approve'"
    ):
        run(op, context_for(op))


def test_several_open_tasks_are_listed_unless_pick_first(bpm, instance, supervisor):
    review = open_task(bpm, instance.id)
    parallel = bpm.open_parallel_task(instance.id, "Review")
    op = make(process_instance_id=instance.id, task_name="Review")
    with pytest.raises(AirflowException) as info:
        run(op, context_for(op))
    assert f"{review.id} (Review), {parallel.id} (Review)" in str(info.value)
    assert "pick='first'" in str(info.value)
    assert bpm.task(review.id).open and bpm.task(parallel.id).open

    op = make(process_instance_id=instance.id, task_name="Review", pick="first")
    assert run(op, context_for(op)) == review.id
    assert not bpm.task(review.id).open and bpm.task(parallel.id).open


def test_vendor_options_are_passed_to_the_hook(bpm, instance, supervisor):
    op = make(process_instance_id=instance.id, complete_options={"flow": "reject"})
    with pytest.raises(BpmConfigError, match="unknown complete options: flow"):
        run(op, context_for(op))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "either bpm_task_id, or process_instance_id"),
        ({"bpm_task_id": "1", "process_instance_id": "2"}, "not both"),
        ({"bpm_task_id": "1", "task_name": "Review"}, "not both|give that too"),
        ({"task_name": "Review"}, "either"),
        ({"process_instance_id": "2", "pick": "last"}, "pick must be"),
        ({"bpm_task_id": "  "}, "either"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


def test_bpm_task_id_does_not_clash_with_the_airflow_task_id():
    op = make(bpm_task_id="77")
    assert (op.task_id, op.bpm_task_id) == ("complete", "77")
    assert "bpm_task_id" in op.template_fields and "task_id" not in op.template_fields
