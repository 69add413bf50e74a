"""Every example DAG on a distributed Airflow, in poke and in deferrable mode, exporting to S3, GCS and Azure.

Runs are triggered through the REST API without a logical date, as a user or another system
triggers them; the scheduler queues their tasks to Redis, the Celery worker runs them, deferred
waits go to the triggerer. Each round exports into another store; the test reads every exported
object back from the store and checks it against the manifest and against the BPM system.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from e2e_airflow import DEFAULT_QUEUE, WORKER_HOSTNAME
from e2e_cluster import FIGURES, Cluster
from e2e_stores import read_exports

from airflow_bpm_provider.testing.demo_systems import all_dags

# (mode, store, DAGs): every example DAG in both modes; the third round, to keep the tier under
# 10 minutes on 2 cores, exports into the third store with the file-export DAG (the most bytes)
# and one DAG whose waits defer.
ROUNDS = [
    ("poke", "s3", all_dags()),
    ("deferrable", "gs", all_dags()),
    ("deferrable", "abfs", ["bpm_questetra_file_export", "bpm_bonita_expense"]),
]
ROUND_TIMEOUT = 900  # generous: a 2-core machine shared with other work runs far slower
POKE_HOLD = 1.5  # seconds a step takes in poke mode: sensors poke more than once
DEFER_FALLBACK = 120.0  # a step goes on after this even if its wait never deferred (then a test fails)
FOLDERS = {  # the first folder each DAG exports into, under the round's prefix
    "bpm_questetra_approval": "questetra-approval",
    "bpm_activiti_order": "activiti",
    "bpm_yuuvis_approval": "yuuvis",
    "bpm_bonita_expense": "bonita",
    "bpm_questetra_file_export": "questetra",
}
WAITS = {  # the sensors of each example DAG that wait for the BPM system
    "bpm_questetra_approval": {"wait_for_approval_task", "wait_for_completion"},
    "bpm_activiti_order": {"wait_for_review", "wait_until_completed"},
    "bpm_yuuvis_approval": {"wait_for_review", "wait_until_completed"},
    "bpm_bonita_expense": {"wait_for_review", "wait_until_completed"},
    "bpm_questetra_file_export": set(),
}


@dataclass
class Round:
    mode: str
    scheme: str
    prefix: str
    run_ids: dict[str, str]
    states: dict[str, str] = field(default_factory=dict)
    task_instances: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    deferred: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (dag, task) -> TI seen
    manifests: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    triggerers: set[int] = field(default_factory=set)  # ids of the triggerer jobs that ran
    seconds: float = 0.0


def _owner(instance: Any, run_ids: dict[str, str]) -> str | None:
    """The run that started a process: its run id is in the business key (Questetra: the title;
    Bonita: the ``businessKey`` contract input, kept as a variable)."""
    values = [item.value for item in instance.data.values() if isinstance(item.value, str)]
    text = " ".join([instance.business_key or "", instance.title or "", *values])
    return next((run_id for run_id in run_ids.values() if run_id in text), None)


def run_round(cluster: Cluster, mode: str, scheme: str, dag_ids: list[str]) -> Round:
    airflow, engine = cluster.airflow, cluster.engine
    cluster.switch_mode(deferrable=mode == "deferrable")
    prefix = f"{mode}-{scheme}"
    store = cluster.stores[scheme]
    airflow.set_variable("bpm_demo_output", store.url(prefix))
    run_ids = {dag_id: f"e2e-{prefix}-{dag_id}" for dag_id in dag_ids}
    result = Round(mode, scheme, prefix, run_ids)
    deferred_now: set[str] = set()

    def rule(instance: Any, held: float) -> bool:
        if mode == "poke":
            return held >= POKE_HOLD
        return _owner(instance, run_ids) in deferred_now or held >= DEFER_FALLBACK

    engine.start_holding(rule, holds=lambda instance: _owner(instance, run_ids) is not None)
    started = time.monotonic()
    for dag_id, run_id in run_ids.items():
        airflow.trigger(dag_id, run_id)
    pending = dict(run_ids)
    while pending:
        if time.monotonic() - started > ROUND_TIMEOUT:
            raise AssertionError(
                f"round {prefix}: runs still going after {ROUND_TIMEOUT} s: {sorted(pending)}"
            )
        airflow.check_alive()
        # A step goes on only once its wait is in a triggerer's hands (its trigger is claimed).
        claimed = [
            ti
            for ti in airflow.deferred()
            if ti["dag_run_id"] in run_ids.values() and (ti.get("trigger") or {}).get("triggerer_id")
        ]
        deferred_now.clear()
        deferred_now.update(ti["dag_run_id"] for ti in claimed)
        for ti in claimed:
            result.deferred[(ti["dag_id"], ti["task_id"])] = ti
        engine.release_due()
        for dag_id, run_id in list(pending.items()):
            state = airflow.run_state(dag_id, run_id)
            if state in ("success", "failed"):
                result.states[dag_id] = state
                del pending[dag_id]
        time.sleep(0.5)
    result.seconds = time.monotonic() - started
    for dag_id, run_id in run_ids.items():
        result.task_instances[dag_id] = airflow.task_instances(dag_id, run_id)
    result.manifests = read_exports(store, prefix)
    result.triggerers = {job["id"] for job in airflow.jobs("TriggererJob")}
    return result


@pytest.fixture(scope="module")
def rounds(cluster: Cluster) -> list[Round]:
    done = [run_round(cluster, mode, scheme, dag_ids) for mode, scheme, dag_ids in ROUNDS]
    _figures(cluster, done)
    return done


def _figures(cluster: Cluster, done: list[Round]) -> None:
    for r in done:
        ok = sum(state == "success" for state in r.states.values())
        exported = [e for files in r.manifests.values() for e in files if "stored_size" in e]
        FIGURES.append(
            f"{r.mode:<10} -> {r.scheme}://: {ok}/{len(r.run_ids)} runs ok in {r.seconds:.0f} s, "
            f"{len(r.deferred)} waits deferred, {len(exported)} files, "
            f"{sum(e['stored_size'] for e in exported):,} bytes in {len(r.manifests)} manifests"
        )
    by_store = Counter()
    for r in done:
        by_store[r.scheme] += sum(e.get("stored_size", 0) for files in r.manifests.values() for e in files)
    FIGURES.append("bytes per store: " + ", ".join(f"{s}: {n:,}" for s, n in by_store.items()))
    FIGURES.append(
        f"total: {sum(len(r.run_ids) for r in done)} runs in {len({r.mode for r in done})} modes, "
        f"{sum(len(r.deferred) for r in done)} deferrals; "
        f"cluster time {time.monotonic() - cluster.started:.0f} s"
    )


def _logs(cluster: Cluster, dag_id: str, r: Round) -> str:
    failed = [ti["task_id"] for ti in r.task_instances[dag_id] if ti["state"] != "success"]
    return f"{dag_id} ({r.prefix}) failed tasks {failed}; process logs in {cluster.airflow.logs}"


def test_every_example_dag_succeeds_in_every_round(cluster, rounds):
    assert {dag_id for r in rounds if r.mode == "poke" for dag_id in r.run_ids} == set(all_dags())
    assert {dag_id for r in rounds if r.mode == "deferrable" for dag_id in r.run_ids} == set(all_dags())
    for r in rounds:
        assert set(r.states) == set(r.run_ids)
        failed = {
            dag_id: _logs(cluster, dag_id, r) for dag_id, state in r.states.items() if state != "success"
        }
        assert not failed, failed
        for dag_id, tis in r.task_instances.items():
            assert tis and all(ti["state"] == "success" for ti in tis), (dag_id, r.prefix)


def test_every_task_ran_in_the_celery_worker(cluster, rounds):
    import psycopg2

    executions = 0
    for r in rounds:
        for dag_id, tis in r.task_instances.items():
            for ti in tis:
                assert ti["hostname"] == WORKER_HOSTNAME, (dag_id, ti["task_id"], ti["hostname"])
                assert ti["queue"] == DEFAULT_QUEUE, (dag_id, ti["task_id"], ti["queue"])
                executions += 1 + (ti["task_id"] in WAITS[dag_id] and r.mode == "deferrable")
    # Celery's result backend has one row per workload the worker ran: every start and every resume.
    # A workload reports its task's state before Celery records its own result: wait for the last.
    deadline = time.monotonic() + 60
    while True:
        with (
            psycopg2.connect(cluster.database_url.replace("+psycopg2", "")) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute("SELECT status, count(*) FROM celery_taskmeta GROUP BY status")
            statuses = dict(cursor.fetchall())
        if statuses.get("SUCCESS", 0) >= executions or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert statuses.get("SUCCESS", 0) >= executions, statuses
    FIGURES.append(f"celery workloads: {statuses} for {executions} task starts and resumes")


def test_deferrable_waits_deferred_to_the_triggerer_and_resumed(rounds):
    for r in rounds:
        if r.mode != "deferrable":
            assert not r.deferred, (r.prefix, sorted(r.deferred))
            continue
        expected = {(dag_id, task) for dag_id in r.run_ids for task in WAITS[dag_id]}
        assert set(r.deferred) == expected, (r.prefix, sorted(expected - set(r.deferred)))
        for (dag_id, task_id), ti in r.deferred.items():
            trigger = ti["trigger"]
            assert trigger["classpath"].startswith("airflow_bpm_provider.triggers."), ti
            assert trigger["triggerer_id"] in r.triggerers, (ti, r.triggerers)
            # Resumed: the same try succeeded afterwards, on the worker.
            final = next(t for t in r.task_instances[dag_id] if t["task_id"] == task_id)
            assert final["state"] == "success" and final["try_number"] == ti["try_number"], (final, ti)


def test_exports_landed_in_every_store_as_the_manifest_says(cluster, rounds):
    expected = {}

    def add(process_id: int, name: str, stored: Any) -> None:
        digest = hashlib.sha256(b"".join(stored.chunks())).hexdigest()
        expected.setdefault((str(process_id), name), set()).add(digest)

    for instance in cluster.engine.instances.values():
        for _, stored in instance.files():
            add(instance.id, stored.name, stored)
    for task in cluster.engine.tasks.values():
        for attachment in task.attachments:
            if attachment.file is not None:
                add(task.instance.id, attachment.name, attachment.file)
    for r in rounds:
        folders = {name.split("/")[0] for name in r.manifests}
        assert folders == {FOLDERS[dag_id] for dag_id in r.run_ids}, (r.prefix, folders)
        exported = cross_checked = 0
        for name, entries in r.manifests.items():
            for entry in entries:
                if entry.get("status") == "external":
                    continue
                assert entry["stored_size"] == entry["size"], (r.prefix, name, entry)
                assert entry["stored_sha256"] == entry["sha256"], (r.prefix, name, entry)
                exported += 1
                key = (str(entry["process_id"]), entry["file_name"])
                if key in expected:  # what the emulator keeps as files; DAG-set binary variables aside
                    assert entry["sha256"] in expected[key], (r.prefix, name, entry)
                    cross_checked += 1
        assert exported >= 6 and cross_checked >= exported - 2, (r.prefix, exported, cross_checked)
