"""YuuvisBpmHook end to end against the emulator, and the generic operators on a yuuvis_bpm connection."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta

import airflow_runtime
import pytest
from airflow.sdk import DAG

from airflow_bpm_provider.exceptions import BpmAuthError, BpmNotFound, BpmValidationError
from airflow_bpm_provider.hooks.http import Request
from airflow_bpm_provider.hooks.registry import get_bpm_hook
from airflow_bpm_provider.hooks.yuuvis import YuuvisBpmHook
from airflow_bpm_provider.models import ProcessState
from airflow_bpm_provider.operators.files import BpmDownloadProcessFilesOperator
from airflow_bpm_provider.operators.process import BpmStartProcessOperator
from airflow_bpm_provider.operators.task import BpmCompleteTaskOperator
from airflow_bpm_provider.sensors.process import BpmProcessStateSensor
from airflow_bpm_provider.sensors.task import BpmTaskSensor
from airflow_bpm_provider.testing.dag_runner import load_example
from airflow_bpm_provider.testing.demo_yuuvis import (
    APPROVAL_KEY,
    APPROVAL_TASK,
    ATTACHMENT_NAME,
    CONN_ID,
    INTAKE_BUSINESS_KEY,
    INTAKE_KEY,
    SCAN_NAME,
    seed_yuuvis_demo,
    yuuvis_demo_connection,
)
from airflow_bpm_provider.testing.server import Emulator


@pytest.fixture
def emu(monkeypatch) -> Iterator[Emulator]:
    emulator = Emulator.start()
    seed_yuuvis_demo(emulator.engine)
    connection = yuuvis_demo_connection(emulator.url)
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def hook(emu) -> Iterator[YuuvisBpmHook]:
    found = get_bpm_hook(CONN_ID)
    assert isinstance(found, YuuvisBpmHook)
    try:
        yield found
    finally:
        found.close()


def requests_to(emu: Emulator, method: str, path: str) -> int:
    return sum(1 for m, p in emu.engine.requests if m == method and p == path)


def test_connection_test(hook):
    ok, message = hook.test_connection()
    assert ok and "tenant 'demo'" in message


def test_seed_is_idempotent(emu):
    first = seed_yuuvis_demo(emu.engine)
    second = seed_yuuvis_demo(emu.engine)
    assert first == second
    assert len(first["document_ids"]) == 2


def test_a_whole_process_through_the_hook(emu, hook):
    started = hook.start_process(
        APPROVAL_KEY, business_key="inv-1", name="Invoice 1", variables={"amount": 120.5, "documentId": "x"}
    )
    assert (started.state, started.definition, started.business_key, started.title) == (
        ProcessState.RUNNING,
        APPROVAL_KEY,
        "inv-1",
        "Invoice 1",
    )
    assert hook.find_process_by_business_key(APPROVAL_KEY, "inv-1").id == started.id
    assert [p.id for p in hook.find_processes(definition=APPROVAL_KEY, states=["RUNNING"])] == [started.id]
    [task] = hook.list_tasks(process_instance_id=started.id, name=APPROVAL_TASK)
    hook.claim_task(task.id)
    assert hook.get_task(task.id).assignee == "yuuvis.clerk"
    hook.complete_task(task.id, {"approved": True, "comment": "ok"})
    done = hook.get_process(started.id)
    assert done.state is ProcessState.COMPLETED and done.ended_at is not None
    assert list(hook.list_tasks(process_instance_id=started.id)) == []
    assert [p.id for p in hook.find_processes(definition=APPROVAL_KEY, states=["COMPLETED"])] == [started.id]
    assert list(hook.find_processes(definition=APPROVAL_KEY, states=["RUNNING"])) == []
    variables = {v["name"]: v["value"] for v in hook.get_process_raw(started.id)["variables"]}
    assert variables["approved"] is True and variables["amount"] == 120.5


def test_cancel_and_the_invisible_process(emu, hook):
    started = hook.start_process(APPROVAL_KEY)
    hook.cancel_process(started.id)
    assert hook.get_process(started.id).state is ProcessState.CANCELLED
    emu.engine.add_user("other", "other-pw")
    foreign = emu.engine.start(emu.engine.latest(APPROVAL_KEY), user="other")
    with pytest.raises(
        BpmNotFound, match=f"process instance '{foreign.id}' does not exist or user 'yuuvis.clerk'"
    ):
        hook.get_process(str(foreign.id))


def test_only_admins_may_list_processes_started_by_other_users(emu, hook):
    emu.engine.add_user("other", "other-pw")
    with pytest.raises(BpmValidationError) as info:
        list(hook.find_processes(started_by="other"))
    text = str(info.value)
    assert "processes started by 'other'" in text
    assert "only admins may list processes started by other users" in text
    assert "may only ask for their own processes" in text  # the server's message stays
    mine = hook.start_process(APPROVAL_KEY)
    # startedBy takes the user id (seed 002), which is not the login: the login is refused.
    with pytest.raises(BpmValidationError, match="may only ask for their own processes"):
        list(hook.find_processes(started_by="yuuvis.clerk"))
    assert mine.id in [p.id for p in hook.find_processes(started_by=hook.current_user_id)]


def test_the_emulator_names_users_by_an_id_distinct_from_the_login(emu, hook):
    me = hook.request(Request("GET", "/tenant-management/api/idm/me")).json()
    assert me["username"] == "yuuvis.clerk" and me["id"] != "yuuvis.clerk"
    assert hook.current_user_id == me["id"]
    started = hook.start_process(APPROVAL_KEY)
    assert started.raw["startUserId"] == me["id"]
    since = started.started_at - timedelta(seconds=1)
    assert [p.id for p in hook.find_unclaimed_starts(APPROVAL_KEY, since)] == [started.id]
    [task] = [t for t in hook.find_tasks() if t.process_instance_id == started.id]
    hook.claim_task(task.id)  # for myself: the user id, which the emulator takes as this user
    assert emu.engine.task(int(task.id)).assignee == "yuuvis.clerk"


def test_start_errors_and_wrong_tenant(emu, hook, monkeypatch):
    with pytest.raises(BpmValidationError, match="no process definition found with key 'nope'"):
        hook.start_process("nope")
    with pytest.raises(BpmValidationError, match="'many' is not a number"):
        hook.start_process(APPROVAL_KEY, variables={"amount": "many"})
    bad = {**yuuvis_demo_connection(emu.url), "password": "wrong"}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(bad))
    with pytest.raises(BpmAuthError, match="tenant 'demo'") as info:
        get_bpm_hook(CONN_ID).get_process("1")
    assert "wrong" not in str(info.value)


def test_paging_and_one_gateway_session(emu, hook):
    ids = [hook.start_process(APPROVAL_KEY, business_key=f"bulk-{n}").id for n in range(23)]
    before = requests_to(emu, "GET", "/bpm-engine/api/processes")
    found = [
        p.id for p in hook.find_processes(definition=APPROVAL_KEY, business_key_like="bulk-%", page_size=10)
    ]
    assert sorted(found) == sorted(ids)
    assert requests_to(emu, "GET", "/bpm-engine/api/processes") - before == 3
    cookie = hook.get_conn().cookie("GWSESSIONID")
    assert cookie
    hook.get_process(ids[0])
    assert hook.get_conn().cookie("GWSESSIONID") == cookie


def test_delegate_and_resolve(emu, hook):
    emu.engine.add_user("helper", "helper-pw")
    started = hook.start_process(APPROVAL_KEY)
    [task] = hook.list_tasks(process_instance_id=started.id)
    hook.claim_task(task.id)
    hook.delegate_task(task.id, "helper", {"comment": "please check"})
    assert hook.get_task(task.id).raw["delegationState"] == "PENDING"
    emu.engine.claim(emu.engine.task(task.id), "yuuvis.clerk", force=True)  # the helper hands it back
    hook.resolve_task(task.id, {"approved": False})
    resolved = hook.get_task(task.id)
    assert resolved.assignee == "yuuvis.clerk" and resolved.raw["delegationState"] == "RESOLVED"


def test_files_are_listed_named_and_streamed(emu, hook):
    intake = hook.find_process_by_business_key(INTAKE_KEY, INTAKE_BUSINESS_KEY)
    files = list(hook.list_files(intake.id))
    assert [(f.name, f.group) for f in files] == [(SCAN_NAME, "documentId"), (ATTACHMENT_NAME, "attachments")]
    assert files[0].size == 180_000 and files[0].content_type == "application/pdf"
    stored = {s.name: s for _, s in emu.engine.instance(intake.id).files()}
    for file in files:
        with hook.open_file(file) as reply:
            body = b"".join(reply.iter_bytes(65536))
        assert hashlib.sha256(body).hexdigest() == hashlib.sha256(stored[file.name].read()).hexdigest()


def test_export_lands_files_under_their_dms_names(emu, hook, tmp_path):
    from airflow_bpm_provider.transfer.export import export_process_files

    intake = hook.find_process_by_business_key(INTAKE_KEY, INTAKE_BUSINESS_KEY)
    manifest = export_process_files(hook, str(tmp_path), process_instance_ids=[intake.id])
    assert sorted(entry["file_name"] for entry in manifest) == sorted([SCAN_NAME, ATTACHMENT_NAME])
    assert all(entry["status"] == "written" for entry in manifest)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted([SCAN_NAME, ATTACHMENT_NAME])


def test_a_truncated_download_fails_the_export(emu, hook, tmp_path):
    from airflow_bpm_provider.exceptions import BpmError
    from airflow_bpm_provider.transfer.export import export_process_files

    intake = hook.find_process_by_business_key(INTAKE_KEY, INTAKE_BUSINESS_KEY)
    emu.faults.truncate("/contents/file", times=5)
    with pytest.raises(BpmError):
        export_process_files(hook, str(tmp_path), process_instance_ids=[intake.id], retries=0)
    assert not any(p.name == SCAN_NAME for p in tmp_path.rglob("*"))


# ---- the generic operators and sensors on a yuuvis_bpm connection -----------------------------


def test_generic_operators_drive_a_yuuvis_process(emu, supervisor, tmp_path):
    with DAG("yuuvis_generic", schedule=None):
        start = BpmStartProcessOperator(
            task_id="start",
            bpm_conn_id=CONN_ID,
            process=APPROVAL_KEY,
            business_key="generic-{{ ds }}",
            variables={"documentId": "{{ params.document }}", "amount": 10},
            start_options={"name": "Generic {{ ds }}"},
            params={"document": seed_yuuvis_demo(emu.engine)["document_ids"][0]},
        )
        pid = "{{ ti.xcom_pull(task_ids='start') }}"
        wait_task = BpmTaskSensor(
            task_id="wait_task", bpm_conn_id=CONN_ID, process_instance_id=pid, task_name=APPROVAL_TASK
        )
        complete = BpmCompleteTaskOperator(
            task_id="complete",
            bpm_conn_id=CONN_ID,
            process_instance_id=pid,
            task_name=APPROVAL_TASK,
            claim=True,
            variables={"approved": True},
        )
        wait_end = BpmProcessStateSensor(task_id="wait_end", bpm_conn_id=CONN_ID, process_instance_id=pid)
        download = BpmDownloadProcessFilesOperator(
            task_id="download", bpm_conn_id=CONN_ID, process_instance_ids=pid, destination=str(tmp_path)
        )

    context = airflow_runtime.context_for(start, params={"document": start.params["document"]})
    instance_id = airflow_runtime.run(start, context)
    context["ti"].xcom_push("return_value", instance_id)
    assert supervisor.xcom(context["ti"], "process_instance_id") == instance_id
    assert emu.engine.instance(instance_id).title == "Generic 2024-05-01"

    task_id = airflow_runtime.run_and_push(wait_task)
    assert emu.engine.task(task_id).definition.name == APPROVAL_TASK
    assert airflow_runtime.run_and_push(complete) == task_id
    assert emu.engine.task(task_id).assignee == "yuuvis.clerk"
    state = airflow_runtime.run_and_push(wait_end)
    assert state["state"] == "COMPLETED" and state["id"] == instance_id
    manifest = airflow_runtime.run_and_push(download)
    assert [entry["file_name"] for entry in manifest] == [SCAN_NAME]
    [landed] = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert landed.name == SCAN_NAME and landed.stat().st_size == 180_000

    again = BpmStartProcessOperator(
        task_id="start_again",
        bpm_conn_id=CONN_ID,
        process=APPROVAL_KEY,
        business_key="generic-2024-05-01",
        dag=start.dag,
    )
    assert airflow_runtime.run_and_push(again) == instance_id  # retry-safe: found by business key


def test_the_example_dag_runs_task_by_task(emu, supervisor, tmp_path):
    dag = load_example("example_yuuvis").dag

    assert dag.dag_id == "bpm_yuuvis_approval"
    order = [
        "pick_document",
        "start_approval",
        "wait_for_review",
        "approve",
        "wait_until_completed",
        "export_files",
    ]
    assert sorted(dag.task_ids) == sorted(order)
    dag.get_task("export_files").destination = str(tmp_path)
    results = {task_id: airflow_runtime.run_and_push(dag.get_task(task_id)) for task_id in order}
    document = results["pick_document"]
    instance = emu.engine.instance(results["start_approval"])
    assert instance.definition.key == APPROVAL_KEY and instance.state == "COMPLETED"
    assert instance.value("approved") is True
    assert results["wait_until_completed"]["state"] == "COMPLETED"
    assert [entry["file_name"] for entry in results["export_files"]] == [SCAN_NAME]
    assert document == seed_yuuvis_demo(emu.engine)["document_ids"][0]
