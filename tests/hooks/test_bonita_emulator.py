"""BonitaHook end to end against the emulator, and the generic operators on a ``bonita`` connection."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import airflow_runtime
import pytest
from airflow.sdk import DAG

from airflow_bpm_provider.exceptions import (
    BpmAuthError,
    BpmNotFound,
    BpmTransferError,
    BpmValidationError,
)
from airflow_bpm_provider.hooks.bonita import BonitaHook
from airflow_bpm_provider.hooks.registry import get_bpm_hook
from airflow_bpm_provider.models import ProcessFile, ProcessState
from airflow_bpm_provider.operators.files import BpmDownloadProcessFilesOperator
from airflow_bpm_provider.operators.process import BpmStartProcessOperator
from airflow_bpm_provider.operators.task import BpmCompleteTaskOperator
from airflow_bpm_provider.sensors.process import BpmProcessStateSensor
from airflow_bpm_provider.sensors.task import BpmTaskSensor
from airflow_bpm_provider.testing.dag_runner import load_example
from airflow_bpm_provider.testing.demo_bonita import (
    CONN_ID,
    EXPENSE,
    NOTIFICATION,
    POLICY_SIZE,
    REVIEW_TASK,
    TERMS_URL,
    USER,
    bonita_demo_connection,
    seed_bonita_demo,
)
from airflow_bpm_provider.testing.dialects.bonita_entries import state_for
from airflow_bpm_provider.testing.server import Emulator


@pytest.fixture
def emu(monkeypatch) -> Iterator[Emulator]:
    emulator = Emulator.start()
    seed_bonita_demo(emulator.engine)
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(bonita_demo_connection(emulator.url)))
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def demo(emu) -> dict[str, Any]:
    return seed_bonita_demo(emu.engine)


@pytest.fixture
def hook(emu) -> Iterator[BonitaHook]:
    found = get_bpm_hook(CONN_ID)
    assert isinstance(found, BonitaHook)
    try:
        yield found
    finally:
        found.close()


def calls(emu: Emulator, method: str, path: str) -> int:
    return sum(1 for m, p in emu.engine.requests if m == method and p == path)


def test_connection_test_logs_in_and_out(emu, hook):
    ok, message = hook.test_connection()
    assert ok and f"as {USER!r}" in message
    hook.close()
    assert calls(emu, "POST", "/bonita/loginservice") == 1
    assert calls(emu, "GET", "/bonita/logoutservice") == 1
    assert not state_for(emu.engine).sessions


def test_wrong_password_is_a_clear_auth_error(emu, monkeypatch):
    connection = {**bonita_demo_connection(emu.url), "password": "Wrong-Secret-123"}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))
    with pytest.raises(BpmAuthError) as info:
        get_bpm_hook(CONN_ID).get_process("1")
    assert "walter.bates" in str(info.value) and "Wrong-Secret-123" not in str(info.value)


def test_an_expired_session_is_renewed_once(emu, hook, demo):
    hook.get_process(demo["cases"]["open"])
    state_for(emu.engine).expire_sessions()
    assert hook.get_process(demo["cases"]["open"]).state is ProcessState.RUNNING
    assert calls(emu, "POST", "/bonita/loginservice") == 2


def test_start_review_and_end_with_contracts(emu, hook, demo):
    instance = hook.start_process(
        EXPENSE,
        variables={"employee": "Helen", "amount": 20.5, "dueDate": date(2024, 5, 1), "itemCount": 2},
        business_key="K-42",
    )
    case = emu.engine.instance(instance.id)
    assert case.definition.version == 2  # the latest enabled version
    assert case.value("businessKey") == "K-42" and case.value("dueDate") == "2024-05-01"
    assert hook.find_process_by_business_key(EXPENSE, "K-42").id == instance.id
    assert hook.find_process_by_business_key(EXPENSE, "K-43") is None

    (task,) = hook.list_tasks(process_instance_id=instance.id, name=REVIEW_TASK)
    assert task.assignee is None
    with pytest.raises(BpmValidationError) as info:
        hook.complete_task(task.id, {"comment": "no decision"})
    assert info.value.details == ["Expected input [approved] is missing"]
    hook.claim_task(task.id)
    assert emu.engine.task(task.id).assignee == USER
    hook.complete_task(task.id, {"approved": True})

    ended = hook.get_process(instance.id)  # the live case 404s now: read from archivedCase
    assert ended.state is ProcessState.COMPLETED and ended.raw_state == "completed"
    assert ended.definition_name == EXPENSE
    assert hook.find_process_by_business_key(EXPENSE, "K-42").state is ProcessState.COMPLETED
    assert hook.get_archived_case_variable(instance.id, "approved").value is True


def test_get_process_has_the_business_key_so_the_export_title_falls_back_to_it(emu, hook, tmp_path):
    from airflow_bpm_provider.transfer.export import layout_values

    instance = hook.start_process(
        EXPENSE, variables={"employee": "Helen", "amount": 5, "itemCount": 1}, business_key="K-77"
    )
    live = hook.get_process(instance.id)
    assert live.business_key == "K-77" and live.title is None
    assert layout_values(live, ProcessFile("a.txt", 1, None, live.id))["title"] == "K-77"
    emu.engine.end(emu.engine.instance(instance.id), "COMPLETED")
    assert hook.get_process(instance.id).business_key == "K-77"  # archivedCaseVariable


def test_an_export_by_filters_gets_the_business_key_live_and_archived(emu, hook):
    # A case listing carries no business key: the export reads each listed case's key variable
    # (caseVariable, archivedCaseVariable once ended) so {title} falls back to it, as by id.
    from airflow_bpm_provider.transfer.export import layout_values, select_processes

    live = hook.start_process(
        EXPENSE, variables={"employee": "Q", "amount": 3, "itemCount": 1}, business_key="Q-LIVE"
    )
    ended = hook.start_process(
        EXPENSE, variables={"employee": "R", "amount": 4, "itemCount": 1}, business_key="Q-ENDED"
    )
    emu.engine.end(emu.engine.instance(ended.id), "COMPLETED")
    listed = {p.id: p for p in hook.find_processes(definition=EXPENSE)}
    assert listed[live.id].business_key is None  # what the listing alone gives
    selected = {p.id: p for p in select_processes(hook, filters={"definition": EXPENSE})}
    assert (selected[live.id].business_key, selected[ended.id].business_key) == ("Q-LIVE", "Q-ENDED")
    assert layout_values(selected[ended.id], ProcessFile("a.txt", 1, None, ended.id))["title"] == "Q-ENDED"


def test_a_search_index_finds_the_business_key_in_two_searches(emu, monkeypatch):
    state_for(emu.engine).search_indexes = {3: "businessKey"}
    connection = bonita_demo_connection(emu.url)
    connection["extra"] = {**connection["extra"], "business_key_search_index": 3}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))
    hook = get_bpm_hook(CONN_ID)
    first = hook.start_process(
        EXPENSE, variables={"employee": "A", "amount": 1, "itemCount": 1}, business_key="S-1"
    )
    hook.start_process(EXPENSE, variables={"employee": "B", "amount": 2, "itemCount": 1}, business_key="S-2")
    before = len(emu.engine.requests)
    found = hook.find_process_by_business_key(EXPENSE, "S-1")
    assert found is not None and (found.id, found.business_key) == (first.id, "S-1")
    sent = [path for _, path in emu.engine.requests[before:]]
    assert sent.count("/bonita/API/bpm/case") + sent.count("/bonita/API/bpm/archivedCase") == 2
    assert not [path for path in sent if "Variable" in path]
    assert hook.find_process_by_business_key(EXPENSE, "S-3") is None
    before = len(emu.engine.requests)
    (listed,) = hook.find_processes(definition=EXPENSE, business_key="S-1")
    assert (listed.id, listed.business_key) == (first.id, "S-1")
    assert not [path for _, path in emu.engine.requests[before:] if "Variable" in path]
    assert hook.get_process(first.id).business_key == "S-1"
    hook.close()


def test_contract_violation_and_unknown_process_are_clear(emu, hook):
    with pytest.raises(BpmValidationError) as info:
        hook.start_process(EXPENSE, variables={"amount": -3})
    assert "Expected input [employee] is missing" in info.value.details
    assert "Input [amount] must be at least 0" in info.value.details
    with pytest.raises(BpmNotFound) as unknown:
        hook.start_process("bonita-expense-reprot")
    assert "did you mean: bonita-expense-report" in str(unknown.value)


def test_case_creation_limit_is_waited_out(emu, hook):
    sleeps: list[float] = []
    hook._sleep = sleeps.append
    emu.faults.add("/instantiation", 429, retry_after="3", method="POST")
    instance = hook.start_process(EXPENSE, variables={"employee": "Helen", "amount": 1})
    assert sleeps == [3.0] and emu.engine.instance(instance.id)


def test_process_without_contract_starts_through_case(emu, hook):
    instance = hook.start_process(NOTIFICATION, variables={"message": "hello", "priority": 5}, via="case")
    assert instance.state is ProcessState.RUNNING and instance.raw_state == "started"
    assert hook.get_case_variable(instance.id, "priority").value == 5
    hook.cancel_process(instance.id)
    assert hook.get_process(instance.id).state is ProcessState.CANCELLED
    hook.cancel_process(instance.id)  # already ended: nothing to do


def test_find_processes_live_and_archived(hook, demo):
    everything = {p.id: p.state for p in hook.find_processes(definition=EXPENSE)}
    assert everything[demo["cases"]["open"]] is ProcessState.RUNNING
    assert everything[demo["cases"]["completed"]] is ProcessState.COMPLETED
    done = [p.id for p in hook.find_processes(definition=EXPENSE, states=["COMPLETED"])]
    assert done == [demo["cases"]["completed"]]
    by_key = [p.id for p in hook.find_processes(definition=EXPENSE, business_key="EXP-DEMO-1")]
    assert by_key == [demo["cases"]["open"]]


def test_case_variables_round_trip_through_java_types(emu, hook, demo):
    case_id = demo["cases"]["open"]
    hook.update_case_variable(case_id, "comment", "looks fine")
    hook.update_case_variable(case_id, "amount", 99.5)
    hook.update_case_variable(case_id, "itemCount", 4, java_type="java.lang.Long")
    hook.update_case_variable(case_id, "dueDate", datetime(2024, 12, 24, tzinfo=UTC))
    values = {v.name: v.value for v in hook.search_case_variables(case_id)}
    assert values["comment"] == "looks fine" and values["amount"] == 99.5 and values["itemCount"] == 4
    assert values["dueDate"] == datetime(2024, 12, 24, tzinfo=UTC)
    # Bonita refuses an Integer for a Long variable: the default int mapping needs the explicit type.
    from airflow_bpm_provider.exceptions import BpmServerError

    with pytest.raises(BpmServerError, match="Error when updating case variable"):
        hook.update_case_variable(case_id, "itemCount", 4)
    assert hook.get_activity_variable(demo["review_task"], "employee").value == "Walter Bates"


def test_documents_add_update_versions_and_delete(emu, hook, demo, tmp_path):
    case_id = demo["cases"]["open"]
    local = tmp_path / "minutes.txt"
    local.write_text("minutes, first draft")
    added = hook.add_document(case_id, "minutes", source=str(local), description="draft")
    local.write_text("minutes, final")
    hook.update_document(added["id"], source=local, file_name="minutes-final.txt")
    versions = hook.document_versions(added["id"])
    assert [(v["version"], v["fileName"]) for v in versions] == [
        ("1", "minutes.txt"),
        ("2", "minutes-final.txt"),
    ]
    (file,) = [f for f in hook.list_files(case_id) if f.group == "minutes"]
    with hook.open_file(file) as reply:
        assert b"".join(reply.iter_bytes(1024)) == b"minutes, final"
    hook.delete_document(added["id"])
    assert not [f for f in hook.list_files(case_id) if f.group == "minutes"]
    link = hook.add_document(case_id, "photo", url="https://x.example/p.png")
    assert link["isInternal"] == "false"


def test_files_of_a_case_latest_by_default_all_on_request(hook, demo):
    case_id = demo["cases"]["open"]
    latest = list(hook.list_files(case_id))
    assert sorted(f.name for f in latest) == sorted(demo["files"]["open"])
    (terms,) = [f for f in latest if f.group == "terms"]
    assert terms.external_url == TERMS_URL
    every = [f.name for f in hook.list_files(case_id, all_versions=True) if f.group == "policy"]
    assert every == ["expense-policy-v1.pdf", "expense-policy-v2.pdf", "expense-policy-v3.pdf"]
    (policy,) = [f for f in latest if f.group == "policy"]
    digest, size = hashlib.sha256(), 0
    with hook.open_file(policy) as reply:
        for chunk in reply.iter_bytes(64 * 1024):
            digest.update(chunk)
            size += len(chunk)
    assert size == POLICY_SIZE
    done = [f.name for f in hook.list_files(demo["cases"]["completed"], all_versions=True)]
    assert done == ["lunch.txt", "lunch.txt"]


def test_export_reports_external_documents_and_detects_truncation(emu, hook, demo, tmp_path):
    from airflow_bpm_provider.transfer.export import export_process_files

    manifest = export_process_files(hook, str(tmp_path), process_instance_ids=[demo["cases"]["open"]])
    statuses = {entry["file_name"]: entry["status"] for entry in manifest}
    assert statuses["terms-2025.pdf"] == "external"
    assert statuses["expense-policy-v3.pdf"] == "written"
    emu.faults.truncate("/portal/documentDownload")
    with pytest.raises(BpmTransferError):
        export_process_files(
            hook, str(tmp_path / "again"), process_instance_ids=[demo["cases"]["open"]], retries=0
        )


def test_bearer_connection(emu, monkeypatch, demo):
    connection = {
        **bonita_demo_connection(emu.url),
        "password": demo["token"],
        "extra": {"auth_type": "bearer"},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))
    with get_bpm_hook(CONN_ID) as hook:
        (task,) = hook.list_tasks(process_instance_id=demo["cases"]["open"])
        hook.claim_task(task.id)
    assert calls(emu, "POST", "/bonita/loginservice") == 0
    assert emu.engine.task(task.id).assignee == USER


def test_async_twins_for_triggers(emu, hook, demo):
    import asyncio

    async def run() -> Any:
        try:
            return await hook.aget_process(demo["cases"]["completed"]), await hook.alist_tasks(
                process_instance_id=demo["cases"]["open"]
            )
        finally:
            await hook.aclose()

    instance, tasks = asyncio.run(run())
    assert instance.state is ProcessState.COMPLETED
    assert [t.name for t in tasks] == [REVIEW_TASK]


# ---- the generic operators and sensors on a bonita connection -------------------------------------


def test_generic_operators_drive_a_bonita_case(emu, supervisor, tmp_path):
    with DAG("bonita_generic", schedule=None):
        start = BpmStartProcessOperator(
            task_id="start",
            bpm_conn_id=CONN_ID,
            process=EXPENSE,
            business_key="generic-{{ ds }}",
            variables={"employee": "Helen Kelly", "amount": 10, "dueDate": "{{ ds }}"},
        )
        pid = "{{ ti.xcom_pull(task_ids='start') }}"
        wait_task = BpmTaskSensor(
            task_id="wait_task", bpm_conn_id=CONN_ID, process_instance_id=pid, task_name=REVIEW_TASK
        )
        complete = BpmCompleteTaskOperator(
            task_id="complete",
            bpm_conn_id=CONN_ID,
            process_instance_id=pid,
            task_name=REVIEW_TASK,
            claim=True,
            variables={"approved": False, "comment": "too expensive"},
            complete_options={"assign": True},
        )
        wait_end = BpmProcessStateSensor(task_id="wait_end", bpm_conn_id=CONN_ID, process_instance_id=pid)
        download = BpmDownloadProcessFilesOperator(
            task_id="download", bpm_conn_id=CONN_ID, process_instance_ids=pid, destination=str(tmp_path)
        )

    instance_id = airflow_runtime.run_and_push(start)
    case = emu.engine.instance(instance_id)
    assert case.value("businessKey") == "generic-2024-05-01" and case.value("dueDate") == "2024-05-01"
    task_id = airflow_runtime.run_and_push(wait_task)
    assert emu.engine.task(task_id).definition.name == REVIEW_TASK
    assert airflow_runtime.run_and_push(complete) == task_id
    assert case.value("approved") is False and emu.engine.task(task_id).assignee == USER
    state = airflow_runtime.run_and_push(wait_end)
    assert state["state"] == "COMPLETED" and state["id"] == instance_id
    manifest = airflow_runtime.run_and_push(download)
    assert sorted((e["file_name"], e["status"]) for e in manifest) == [
        ("expense-policy.pdf", "written"),
        ("terms-2025.pdf", "external"),
    ]
    [landed] = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix == ".pdf"]
    assert landed.stat().st_size == POLICY_SIZE

    again = BpmStartProcessOperator(
        task_id="start_again",
        bpm_conn_id=CONN_ID,
        process=EXPENSE,
        business_key="generic-2024-05-01",
        dag=start.dag,
    )
    assert (
        airflow_runtime.run_and_push(again) == instance_id
    )  # retry-safe: found by the business-key variable


def test_the_example_dag_runs_task_by_task(emu, supervisor, tmp_path):
    dag = load_example("example_bonita").dag

    assert dag.dag_id == "bpm_bonita_expense"
    order = ["start_expense", "wait_for_review", "approve", "wait_until_completed", "export_documents"]
    assert sorted(dag.task_ids) == sorted(order)
    dag.get_task("export_documents").destination = str(tmp_path)
    results = {task_id: airflow_runtime.run_and_push(dag.get_task(task_id)) for task_id in order}
    case = emu.engine.instance(results["start_expense"])
    assert case.definition.key == EXPENSE and case.state == "COMPLETED"
    assert case.value("approved") is True and case.value("businessKey").startswith("expense-")
    assert results["wait_until_completed"]["state"] == "COMPLETED"
    assert {e["file_name"]: e["status"] for e in results["export_documents"]} == {
        "expense-policy.pdf": "written",
        "terms-2025.pdf": "external",
    }
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert {e["file_name"] for e in manifest["files"]} == {"expense-policy.pdf", "terms-2025.pdf"}
