"""The "BPM process" extra link reads the URL the start operator pushed, via Airflow's XCom API."""

from __future__ import annotations

import memory_bpm
import pytest
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


def recording(supervisor) -> list[str]:
    """The names of the messages the task SDK sends the supervisor from now on."""
    sent: list[str] = []
    answer = supervisor.send

    def send(msg):
        sent.append(type(msg).__name__)
        return answer(msg)

    supervisor.send = send
    return sent


def test_a_failed_start_leaves_no_link_and_asks_xcom_nothing(bpm, supervisor):
    from airflow_bpm_provider.exceptions import BpmError

    op = make()  # process "expense" is not defined: the start is refused
    context = context_for(op)
    with pytest.raises(BpmError):
        run(op, context)
    sent = recording(supervisor)
    # What the task runner's finalize does after the failure: ask each link on the same operator.
    assert [link.get_link(op, ti_key=context["ti"]) for link in op.operator_extra_links] == [""]
    # A GetXCom for the URL the failed try never pushed is what logged "XCom not found".
    assert "GetXCom" not in sent


def test_a_try_resumed_elsewhere_reads_the_url_from_xcom(bpm, supervisor):
    bpm.define("expense", "Expense report")
    op = make()
    context = context_for(op)
    instance_id = run(op, context)
    resumed = make()  # a new process after a deferral: a fresh operator from the DAG file
    sent = recording(supervisor)
    assert (
        BpmProcessLink().get_link(resumed, ti_key=context["ti"]) == f"{memory_bpm.HOST}/process/{instance_id}"
    )
    assert sent == ["GetXCom"]


def test_no_ui_address_gives_an_empty_link_not_none(bpm, supervisor, monkeypatch):
    bpm.define("expense", "Expense report")
    monkeypatch.setattr(memory_bpm.MemoryBpmHook, "ui_url", lambda self, instance_id: None)
    op = make()
    context = context_for(op)
    run(op, context)
    # "" is stored as the link: Airflow shows no button for it (None would be stringified "None").
    assert BpmProcessLink().get_link(op, ti_key=context["ti"]) == ""
    assert BpmProcessLink().get_link(make(), ti_key=context["ti"]) == ""


@pytest.fixture(scope="module")
def activiti():
    from airflow_bpm_provider.testing.demo_activiti import seed_activiti_demo
    from airflow_bpm_provider.testing.server import Emulator

    emulator = Emulator.start()
    seed_activiti_demo(emulator.engine)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.mark.parametrize("ui_url", [None, "https://bpm.example.com/flowable-ui/workflow/#/processes/{id}"])
def test_an_activiti_start_links_to_the_ui_page_the_connection_names(
    activiti, supervisor, monkeypatch, ui_url
):
    import json

    from airflow_bpm_provider.testing.demo_activiti import CONN_ID, PROCESS_KEY, activiti_demo_connections

    fields = activiti_demo_connections(activiti.url)[CONN_ID]
    if ui_url:
        fields["extra"]["ui_url"] = ui_url
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(fields))
    with DAG("bpm_link_activiti", schedule=None):
        op = BpmStartProcessOperator(task_id="start", bpm_conn_id=CONN_ID, process=PROCESS_KEY)
    context = context_for(op)
    instance_id = run(op, context)
    expected = ui_url.replace("{id}", instance_id) if ui_url else ""
    assert BpmProcessLink().get_link(op, ti_key=context["ti"]) == expected
    assert BpmProcessLink().get_link(make(), ti_key=context["ti"]) == expected  # read back from XCom
