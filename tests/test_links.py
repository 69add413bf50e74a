"""The "BPM process" extra link reads the URL the start operator pushed, via Airflow's XCom API."""

from __future__ import annotations

import memory_bpm
from airflow.sdk import DAG
from airflow.sdk.types import TaskInstanceKey
from airflow_runtime import context_for, run

from airflow_bpm_provider.links import BpmProcessLink
from airflow_bpm_provider.operators.process import BpmStartProcessOperator


def make() -> BpmStartProcessOperator:
    with DAG("bpm_link", schedule=None):
        return BpmStartProcessOperator(task_id="start", bpm_conn_id=memory_bpm.CONN_ID, process="expense")


def test_the_link_is_the_started_instance_url(bpm, supervisor):
    bpm.define("expense", "Expense report")
    op = make()
    context = context_for(op)
    instance_id = run(op, context)

    # What the task runner does when the task finishes: ask each extra link with the task instance.
    links = {link.name: link.get_link(op, ti_key=context["ti"]) for link in op.operator_extra_links}
    assert links == {"BPM process": f"{memory_bpm.HOST}/process/{instance_id}"}

    ti = context["ti"]
    key = TaskInstanceKey(dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, try_number=1, map_index=-1)
    assert BpmProcessLink().get_link(op, ti_key=key) == f"{memory_bpm.HOST}/process/{instance_id}"


def test_no_link_before_the_operator_pushed_one(supervisor):
    op = make()
    assert BpmProcessLink().get_link(op, ti_key=context_for(op)["ti"]) == ""


def test_the_link_is_named_and_stored_under_its_own_xcom_key():
    assert BpmProcessLink().name == "BPM process"
    assert BpmProcessLink().xcom_key == "_link_BpmProcessLink"
