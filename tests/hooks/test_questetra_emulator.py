"""QuestetraHook end to end against the emulator: retry-safe starts and claiming, also via operators."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import airflow_runtime
import pytest
from airflow.models.connection import Connection
from airflow.sdk import DAG

from airflow_bpm_provider.exceptions import BpmConflict, BpmValidationError
from airflow_bpm_provider.hooks.questetra import QuestetraHook
from airflow_bpm_provider.hooks.retry import RetryPolicy
from airflow_bpm_provider.models import ProcessState
from airflow_bpm_provider.operators.process import BpmStartProcessOperator
from airflow_bpm_provider.operators.task import BpmCompleteTaskOperator
from airflow_bpm_provider.testing import Emulator
from airflow_bpm_provider.testing.engine import TASK_CLAIMED

CONN_ID = "questetra_emulator"


@pytest.fixture
def emu(monkeypatch) -> Iterator[Emulator]:
    emulator = Emulator.start()
    emulator.summary = emulator.seed_demo(large_file_mb=1)  # type: ignore[attr-defined]
    connection = {
        "conn_type": "questetra",
        "host": emulator.url,
        "login": emulator.summary["user"],  # type: ignore[attr-defined]
        "password": emulator.summary["password"],  # type: ignore[attr-defined]
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def hook(emu) -> Iterator[QuestetraHook]:
    summary: dict[str, Any] = emu.summary
    connection = Connection(
        conn_id=CONN_ID,
        conn_type="questetra",
        host=emu.url,
        login=summary["user"],
        password=summary["password"],
    )
    with QuestetraHook(CONN_ID, connection=connection, retry_policy=RetryPolicy(initial_delay=0.0)) as found:
        yield found


def expense_app(emu: Emulator) -> str:
    return str(emu.summary["models"]["expense"])  # type: ignore[attr-defined]


def instances_titled(emu: Emulator, title: str) -> list[int]:
    return [i.id for i in emu.engine.instances.values() if i.title == title]


# ---- retry-safe starts --------------------------------------------------------------------------


def test_a_refused_first_form_still_leaves_a_titled_process_a_retry_finds(emu, hook):
    app = expense_app(emu)
    # "Purpose" is required: the server refuses the submit (success="false"), not the hook
    with pytest.raises(BpmValidationError, match="its first task could not be submitted") as caught:
        hook.start_process(app, variables={"Amount": 100}, business_key="EXP-RETRY-1")
    assert "Purpose is required" in str(caught.value)
    [pid] = instances_titled(emu, "EXP-RETRY-1")
    found = hook.find_process_by_business_key(app, "EXP-RETRY-1")
    assert found is not None and found.id == str(pid)
    assert found.title == "EXP-RETRY-1" and found.state is ProcessState.RUNNING
    [first] = hook.list_tasks(process_instance_id=found.id)
    assert first.name == "Apply"  # still open: nothing was submitted


def test_a_business_key_alone_leaves_the_first_task_open(emu, hook):
    app = expense_app(emu)
    started = hook.start_process(app, business_key="EXP-KEY-2")
    assert started.title == "EXP-KEY-2" and started.state is ProcessState.RUNNING
    [first] = hook.list_tasks(process_instance_id=started.id)
    assert first.name == "Apply"
    task = emu.engine.tasks[int(first.id)]
    assert task.open and task.state == TASK_CLAIMED and task.assignee == emu.summary["user"]
    assert hook.find_process_by_business_key(app, "EXP-KEY-2").id == started.id


def test_variables_and_a_business_key_submit_the_first_task(emu, hook):
    app = expense_app(emu)
    started = hook.start_process(
        app, variables={"Purpose": "Train", "Amount": 1200}, business_key="EXP-KEY-3"
    )
    assert started.title == "EXP-KEY-3"
    [next_task] = hook.list_tasks(process_instance_id=started.id)
    assert next_task.name == "Approve"
    assert emu.engine.instances[int(started.id)].value("Purpose") == "Train"


def test_the_start_operator_retry_reuses_the_process_its_refused_first_try_started(emu, supervisor):
    app = expense_app(emu)
    with DAG("questetra_retry", schedule=None):
        start = BpmStartProcessOperator(
            task_id="start",
            bpm_conn_id=CONN_ID,
            process=app,
            business_key="EXP-{{ ds }}",
            variables={"Amount": 100},  # no Purpose: refused
        )
    with pytest.raises(BpmValidationError):
        airflow_runtime.run(start, airflow_runtime.context_for(start))
    [pid] = instances_titled(emu, "EXP-2024-05-01")
    # The retry finds that process and submits its first task again: the same values are
    # refused again (no silent success with an unsubmitted form), and no second process starts.
    with pytest.raises(BpmValidationError, match="Purpose is required"):
        airflow_runtime.run(start, airflow_runtime.context_for(start, try_number=2))
    assert instances_titled(emu, "EXP-2024-05-01") == [pid]


def test_a_retry_with_corrected_variables_submits_the_first_task_of_the_reused_process(emu, supervisor):
    app = expense_app(emu)
    with DAG("questetra_resume", schedule=None):
        start = BpmStartProcessOperator(
            task_id="start",
            bpm_conn_id=CONN_ID,
            process=app,
            business_key="EXP-RESUME",
            variables={"Amount": 100},  # no Purpose: refused after the title was saved
        )
    with pytest.raises(BpmValidationError):
        airflow_runtime.run(start, airflow_runtime.context_for(start))
    start.variables = {"Purpose": "Taxi", "Amount": 100}  # the DAG author fixes the template
    pid = airflow_runtime.run(start, airflow_runtime.context_for(start, try_number=2))
    assert instances_titled(emu, "EXP-RESUME") == [int(pid)]
    instance = emu.engine.instances[int(pid)]
    assert instance.value("Purpose") == "Taxi"
    assert [t.definition.name for t in emu.engine.open_tasks(int(pid))] == ["Approve"]
    # A third try finds the first task submitted and leaves the process as it is.
    assert airflow_runtime.run(start, airflow_runtime.context_for(start, try_number=3)) == pid
    assert [t.definition.name for t in emu.engine.open_tasks(int(pid))] == ["Approve"]


# ---- claiming -----------------------------------------------------------------------------------


def test_claiming_a_task_already_allocated_to_me_succeeds(emu, hook):
    draft = emu.summary["instances"]["expense_draft"]  # its first task is allocated to the demo user
    [task] = hook.list_tasks(process_instance_id=draft)
    hook.claim_task(task.id)
    assert emu.engine.tasks[int(task.id)].assignee == emu.summary["user"]


def test_claiming_twice_succeeds(emu, hook):
    running = emu.summary["instances"]["expense_running"]  # its "Approve" task is offered
    [task] = hook.list_tasks(process_instance_id=running)
    assert task.state == "OFFERED"
    hook.claim_task(task.id)
    hook.claim_task(task.id)
    assert emu.engine.tasks[int(task.id)].assignee == emu.summary["user"]


def test_claiming_a_task_someone_else_holds_names_them(emu, hook):
    review = emu.summary["instances"]["contract_review"]  # "Review" is allocated to the approver
    [task] = hook.list_tasks(process_instance_id=review)
    with pytest.raises(BpmConflict, match=f"task {task.id} is allocated to 'approver'"):
        hook.claim_task(task.id)
    assert emu.engine.tasks[int(task.id)].assignee == "approver@example.com"


def test_complete_operator_with_claim_on_the_first_task_of_a_started_process(emu, hook, supervisor):
    started = hook.start_process(expense_app(emu), business_key="EXP-CLAIM")
    with DAG("questetra_claim", schedule=None):
        complete = BpmCompleteTaskOperator(
            task_id="complete",
            bpm_conn_id=CONN_ID,
            process_instance_id=started.id,
            task_name="Apply",
            claim=True,
            variables={"Purpose": "Taxi", "Amount": 3000},
        )
    task_id = airflow_runtime.run(complete, airflow_runtime.context_for(complete))
    assert not emu.engine.tasks[int(task_id)].open
    assert [t.name for t in hook.list_tasks(process_instance_id=started.id)] == ["Approve"]
