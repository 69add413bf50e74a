"""ActivitiHook end to end against the emulator, and the generic operators over an ``activiti`` connection."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import airflow_runtime
import pytest
from airflow.models.connection import Connection
from airflow_runtime import context_for, run

from airflow_bpm_provider.exceptions import BpmConfigError, BpmConflict, BpmNotFound, BpmValidationError
from airflow_bpm_provider.hooks.activiti import ActivitiHook
from airflow_bpm_provider.hooks.http import Request
from airflow_bpm_provider.hooks.registry import get_bpm_hook
from airflow_bpm_provider.hooks.retry import RetryPolicy
from airflow_bpm_provider.models import ProcessState
from airflow_bpm_provider.testing.dag_runner import load_example
from airflow_bpm_provider.testing.demo_activiti import (
    CONN_ID,
    MODEL,
    PROCESS_KEY,
    TENANT,
    activiti_demo_connections,
    seed_activiti_demo,
)
from airflow_bpm_provider.testing.server import Emulator

BASES = ["/bpmn", "/activiti-rest/service", "/flowable-rest/service"]
CLERK = ("DEMO/activiti.clerk", "activiti-demo-password")
RIVAL = ("EXT/rival", "rival-password")


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    emulator = Emulator.start()
    seed_activiti_demo(emulator.engine)
    emulator.engine.add_user(*RIVAL)
    try:
        yield emulator
    finally:
        emulator.stop()


def hook_for(emu: Emulator, base: str = "/bpmn", user: tuple[str, str] = CLERK, **extra: str) -> ActivitiHook:
    """A hook in the demo's tenant (WSO2's super tenant); ``tenant_id=""`` leaves the tenant out."""
    extra = {"tenant_id": TENANT, **extra}
    conn = Connection(
        conn_id="activiti_e2e",
        conn_type="activiti",
        host=emu.url + base,
        login=user[0],
        password=user[1],
        extra=json.dumps(extra),
    )
    return ActivitiHook(
        "activiti_e2e", connection=conn, retry_policy=RetryPolicy(initial_delay=0.0, max_attempts=3)
    )


@pytest.mark.parametrize("base", BASES)
def test_an_order_from_deployment_to_history(emu: Emulator, base: str):
    hook, rival = hook_for(emu, base), hook_for(emu, base, RIVAL)
    assert hook.test_connection()[0]
    if base == "/bpmn":
        # WSO2 EI cannot deploy through REST: the seeded model stands for a .bar in a Carbon app.
        with pytest.raises(BpmConfigError, match="Carbon application"):
            hook.deploy(MODEL)
        definition = next(hook.list_process_definitions(key=PROCESS_KEY, tenantId=TENANT, latest=True))
    else:
        deployment = hook.deploy(MODEL)
        assert deployment["tenantId"] == TENANT
        (definition,) = hook.list_process_definitions(deploymentId=deployment["id"])
    assert definition["key"] == PROCESS_KEY

    instance = hook.start_process(
        PROCESS_KEY,
        business_key=f"order-{base}",
        variables={
            "customer": "ACME",
            "amount": 1250.5,
            "pallets": 3,
            "due": datetime(2030, 1, 1, tzinfo=UTC),
        },
    )
    assert instance.state is ProcessState.RUNNING and instance.definition == PROCESS_KEY
    assert hook.get_variables(instance.id) == {
        "customer": "ACME",
        "amount": 1250.5,
        "pallets": 3,
        "due": datetime(2030, 1, 1, tzinfo=UTC),
    }
    assert hook.find_process_by_business_key(PROCESS_KEY, f"order-{base}").id == instance.id

    hook.set_variables(instance.id, {"invoice": b"%PDF invoice", "note": "urgent"})
    (review,) = hook.list_tasks(process_instance_id=instance.id, name="Review order")
    assert review.process_instance_id == instance.id  # also from WSO2's URL-only task shape
    hook.add_attachment(review.id, "delivery-note.txt", b"3 pallets", content_type="text/plain")
    hook.add_attachment(review.id, "wiki", external_url="https://wiki.example/order")
    hook.add_comment(review.id, "checking stock")

    hook.claim_task(review.id)
    with pytest.raises(BpmConflict, match="already claimed by someone else"):
        rival.claim_task(review.id, RIVAL[0])
    hook.suspend_process(instance.id)
    assert hook.get_process(instance.id).state is ProcessState.SUSPENDED
    assert [p.state for p in hook.find_processes(business_key=f"order-{base}")] == [ProcessState.SUSPENDED]
    hook.activate_process(instance.id)
    hook.complete_task(review.id, {"approved": True})

    ended = hook.get_process(instance.id)  # the runtime answers 404 now: read from the history
    assert ended.state is ProcessState.COMPLETED and ended.ended_at is not None
    with pytest.raises(BpmNotFound):
        hook.get_variables(instance.id)
    assert hook.list_comments(review.id)[0]["message"] == "checking stock"

    files = {f.name: f for f in hook.list_files(instance.id)}
    assert set(files) == {"invoice", "delivery-note.txt", "wiki"}
    assert (
        files["invoice"].ref["ended"] is True and files["wiki"].external_url == "https://wiki.example/order"
    )
    for name, expected in (("invoice", b"%PDF invoice"), ("delivery-note.txt", b"3 pallets")):
        with hook.open_file(files[name]) as reply:
            assert b"".join(reply.iter_bytes(3)) == expected
    assert hook.find_process_by_business_key(PROCESS_KEY, f"order-{base}").state is ProcessState.COMPLETED
    hook.close()
    rival.close()


def test_cancelling_is_cancelled_in_history_and_in_searches(emu: Emulator):
    hook = hook_for(emu, "/flowable-rest/service")
    instance = hook.start_process(PROCESS_KEY, business_key="to-cancel")
    hook.cancel_process(instance.id)
    cancelled = hook.get_process(instance.id)
    assert (cancelled.state, cancelled.raw_state) == (ProcessState.CANCELLED, "deleted: cancelled by Airflow")
    assert [p.id for p in hook.find_processes(definition=PROCESS_KEY, states=["CANCELLED"])] == [instance.id]
    hook.cancel_process(instance.id)  # again: already deleted, nothing to do
    assert list(hook.list_tasks(process_instance_id=instance.id)) == []


def test_wso2_needs_the_tenant_and_says_how_to_set_it(emu: Emulator):
    before = len(emu.engine.instances)
    with pytest.raises(BpmValidationError, match=r"tenant_id, e\.g\. -1234 on WSO2 EI") as caught:
        hook_for(emu, "/bpmn", tenant_id="").start_process(PROCESS_KEY)
    assert "TenantId should be specified" in str(caught.value)
    assert len(emu.engine.instances) == before
    assert hook_for(emu, "/bpmn").start_process(PROCESS_KEY).raw["tenantId"] == TENANT


def test_an_instance_wso2_deleted_without_a_reason_is_cancelled(emu: Emulator):
    hook = hook_for(emu, "/bpmn")
    instance = hook.start_process(PROCESS_KEY)
    # Someone else deletes it through the REST API without a reason: WSO2 records "".
    hook.request(Request("DELETE", f"/runtime/process-instances/{instance.id}"))
    assert emu.engine.instance(instance.id).delete_reason == ""
    ended = hook.get_process(instance.id)
    assert (ended.state, ended.raw_state) == (ProcessState.CANCELLED, "deleted")
    hook.cancel_process(instance.id)  # already deleted: nothing to do, no conflict


@pytest.mark.parametrize("base", ["/bpmn", "/activiti-rest/service"])
def test_date_filters_reach_the_strict_servers_in_a_form_they_parse(emu: Emulator, base: str):
    hook = hook_for(emu, base)
    instance = hook.start_process(PROCESS_KEY, business_key=f"dated-{base}")
    started = emu.engine.instance(instance.id).started_at
    found = hook.find_processes(
        business_key=f"dated-{base}",
        started_after=started - timedelta(seconds=5, microseconds=250_000),
        started_before=(started + timedelta(seconds=5)).isoformat(),  # a fraction in a string, too
    )
    assert [p.id for p in found] == [instance.id]


def test_paging_reads_every_instance_over_several_pages(emu: Emulator):
    hook = hook_for(emu, "/activiti-rest/service", page_size="3")
    started = {hook.start_process(PROCESS_KEY, business_key="many").id for _ in range(7)}
    emu.engine.requests.clear()
    found = {p.id for p in hook.find_processes(business_key="many")}
    assert found == started
    history_pages = [p for m, p in emu.engine.requests if p.endswith("/history/historic-process-instances")]
    assert len(history_pages) == 3  # 3 + 3 + 1


def test_start_by_message_and_by_id(emu: Emulator):
    hook = hook_for(emu)
    definition = next(hook.list_process_definitions(key=PROCESS_KEY, latest=True))
    by_id = hook.start_process(f"id:{definition['id']}")
    assert by_id.raw["processDefinitionId"] == definition["id"]
    with pytest.raises(BpmNotFound, match="no subscription to message with name 'nobody'"):
        hook.start_process("nobody", by="message")


@pytest.mark.parametrize(
    ("base", "variables", "error", "fragment"),
    [
        (
            "/bpmn",
            {"lines": [1, 2]},
            BpmValidationError,
            "unsupported type: 'json'",
        ),  # Activiti 5 has no json
        ("/activiti-rest/service", {"n": {"type": "integer", "value": "x"}}, BpmValidationError, "integers"),
        ("/bpmn", {"when": object()}, BpmValidationError, "variable 'when'"),
    ],
)
def test_bad_variables_get_clear_errors(emu: Emulator, base, variables, error, fragment):
    before = len(emu.engine.instances)
    with pytest.raises(error, match=fragment):
        hook_for(emu, base).start_process(PROCESS_KEY, variables=variables)
    assert len(emu.engine.instances) == before


def test_flowable_accepts_json_variables(emu: Emulator):
    hook = hook_for(emu, "/flowable-rest/service")
    instance = hook.start_process(PROCESS_KEY, variables={"lines": [{"sku": "A", "qty": 2}]})
    assert hook.get_variable(instance.id, "lines") == [{"sku": "A", "qty": 2}]


def test_unknown_key_and_unknown_instance(emu: Emulator):
    hook = hook_for(emu)
    with pytest.raises(BpmNotFound, match="no processes deployed with key 'nope'"):
        hook.start_process("nope")
    with pytest.raises(BpmNotFound, match="neither running nor in the history"):
        hook.get_process("999999")
    with pytest.raises(BpmNotFound):
        hook.claim_task("999999")


def test_tenant_is_sent_and_must_match_a_tenant_deployment(emu: Emulator):
    tenant_hook = hook_for(emu, "/flowable-rest/service", tenant_id="acme")
    with pytest.raises(BpmNotFound, match="for tenant identifier 'acme'"):
        tenant_hook.start_process(PROCESS_KEY)
    tenant_hook.deploy(MODEL)
    instance = tenant_hook.start_process(PROCESS_KEY, business_key="tenant-order")
    assert instance.raw["tenantId"] == "acme"
    assert tenant_hook.find_process_by_business_key(PROCESS_KEY, "tenant-order").id == instance.id


def test_a_truncated_download_is_visible_to_the_reader(emu: Emulator):
    hook = hook_for(emu)
    instance = hook.start_process(PROCESS_KEY)
    hook.set_variable(instance.id, "scan", b"x" * 100_000)
    (file,) = hook.list_files(instance.id)
    emu.faults.truncate(f"/process-instances/{instance.id}/variables/scan/data")
    with hook.open_file(file) as reply:
        announced = int(reply.headers["content-length"])
        received = 0
        with pytest.raises(Exception):  # noqa: B017 - the transport's own error for a cut stream
            for chunk in reply.iter_bytes(8192):
                received += len(chunk)
    assert announced == 100_000 and received < announced


# ---- the generic operators and sensors over an ``activiti`` connection --------------------------


def test_the_example_dag_runs_task_by_task_against_the_emulator(emu: Emulator, monkeypatch, tmp_path):
    airflow_runtime.install(monkeypatch)
    for conn_id, fields in activiti_demo_connections(emu.url).items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))
    module = load_example("example_activiti")
    dag = module.dag
    dag.get_task("export_files").destination = str(tmp_path)
    assert get_bpm_hook(CONN_ID).base_url.endswith("/bpmn")
    emu.engine.requests.clear()

    results = {}
    for operator in dag.topological_sort():
        context = context_for(operator)
        results[operator.task_id] = run(operator, context)
        if results[operator.task_id] is not None:  # what the task runner does with a return value
            context["ti"].xcom_push(key="return_value", value=results[operator.task_id])

    # WSO2 EI cannot deploy through REST: by default the DAG only checks that the model is there,
    # and names the deployment of the latest version in the tenant (earlier tests add versions).
    assert ("POST", "/bpmn/repository/deployments") not in emu.engine.requests
    latest = max(
        (d for d in emu.engine.definitions.values() if d.key == PROCESS_KEY and d.tenant_id == TENANT),
        key=lambda d: d.version,
    )
    assert results["ensure_model"] == str(latest.deployment_id)
    instance_id = results["start_order"]
    instance = emu.engine.instance(instance_id)
    assert instance.business_key == "order-4711-manual__2024-05-01"
    assert instance.state == "COMPLETED"
    assert results["wait_for_review"] == results["approve"]  # the review task found, then completed
    assert results["wait_until_completed"]["state"] == "COMPLETED"
    manifest = results["export_files"]
    exported = {entry["file_name"]: entry for entry in manifest}
    assert set(exported) == {"invoice", "delivery-note.txt"}
    for entry in manifest:
        data = (tmp_path / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["size"]
    assert (tmp_path / exported["invoice"]["path"]).read_bytes() == module.INVOICE

    # Retry-safe start: the same business key finds the instance instead of starting another.
    start = dag.get_task("start_order")
    assert run(start, context_for(start, try_number=2)) == instance_id


def test_the_example_dag_deploys_its_model_when_asked_on_flowable(emu: Emulator, monkeypatch):
    airflow_runtime.install(monkeypatch)
    fields = activiti_demo_connections(emu.url)[CONN_ID]
    fields["host"] = emu.url + "/flowable-rest/service"
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(fields))
    # A fresh DAG: a task that ran keeps the kwargs it was called with.
    module = load_example("example_activiti")
    ensure = module.dag.get_task("ensure_model")
    before = set(emu.engine.deployments)
    deployment_id = run(ensure, context_for(ensure, params={"deploy_model": True}))
    (new,) = set(emu.engine.deployments) - before
    assert deployment_id == str(new) and emu.engine.deployments[new].tenant_id == TENANT


def test_the_example_dag_names_what_is_missing_when_the_model_is_not_deployed(emu: Emulator, monkeypatch):
    airflow_runtime.install(monkeypatch)
    fields = activiti_demo_connections(emu.url)[CONN_ID]
    fields["extra"] = {**fields["extra"], "tenant_id": "nobody-deployed-here"}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(fields))
    module = load_example("example_activiti")
    ensure = module.dag.get_task("ensure_model")
    with pytest.raises(
        BpmNotFound, match=r"not deployed \(tenant nobody-deployed-here\).*Carbon application"
    ):
        run(ensure, context_for(ensure))


def test_the_example_dag_and_model_ship_together():
    module = load_example("example_activiti")
    assert Path(module.MODEL) == MODEL and MODEL.is_file()
    assert module.dag.dag_id == "bpm_activiti_order"
