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
from airflow_bpm_provider.testing.dialects.yuuvis_entries import state_of

# (mode, store, DAGs): every example DAG in both modes; the third round, to keep the tier under
# 10 minutes on 2 cores, exports into the third store with the file-export DAG (the most bytes)
# and one DAG whose waits defer.
ROUNDS = [
    ("poke", "s3", all_dags()),
    ("deferrable", "gs", all_dags()),
    ("deferrable", "abfs", ["bpm_questetra_file_export", "bpm_bonita_expense"]),
]
# Bounds, so a failing run cannot hang CI: each round, and all rounds together (the cluster's own
# start-up is bounded in e2e_cluster), with a clear message naming the unfinished runs.
ROUND_TIMEOUT = 240
TIER_TIMEOUT = 12 * 60
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


def run_round(cluster: Cluster, mode: str, scheme: str, dag_ids: list[str], tier_deadline: float) -> Round:
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
    deadline = min(started + ROUND_TIMEOUT, tier_deadline)
    for dag_id, run_id in run_ids.items():
        airflow.trigger(dag_id, run_id)
    pending = dict(run_ids)
    while pending:
        if time.monotonic() > deadline:
            bound = "tier" if deadline == tier_deadline else "round"
            unfinished = ", ".join(
                f"{dag_id}/{run_id} ({airflow.run_state(dag_id, run_id)})"
                for dag_id, run_id in pending.items()
            )
            raise AssertionError(
                f"round {prefix}: {bound} deadline passed ({ROUND_TIMEOUT} s per round, {TIER_TIMEOUT} s "
                f"for all rounds) after {time.monotonic() - started:.0f} s; unfinished runs: {unfinished}; "
                f"process logs in {airflow.logs}"
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
    tier_deadline = time.monotonic() + TIER_TIMEOUT
    done = [run_round(cluster, mode, scheme, dag_ids, tier_deadline) for mode, scheme, dag_ids in ROUNDS]
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
                # One workload per try, plus the resume of a deferred wait (same try).
                executions += ti["try_number"] + (ti["task_id"] in WAITS[dag_id] and r.mode == "deferrable")
    # Celery's result backend has one row per workload the worker ran: every start and every resume.
    # Only the checked DAGs are loaded (e2e_airflow.dag_folder), so the count is exact.
    # A workload reports its task's state before Celery records its own result: wait for the last.
    deadline = time.monotonic() + 60
    while True:
        with (
            psycopg2.connect(cluster.database_url.replace("+psycopg2", "")) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute("SELECT status, count(*) FROM celery_taskmeta GROUP BY status")
            statuses = dict(cursor.fetchall())
        if sum(statuses.values()) >= executions or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert statuses == {"SUCCESS": executions}, (statuses, executions)
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


STORED = {"written", "replaced", "unchanged"}  # statuses of an entry whose file is in the store
EXPORTED_APPS = {"expenses": "expense", "contracts": "contract"}  # file-export folder -> Questetra model


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
DOCUMENT_VARIABLES = {"documentId"}  # yuuvis: a variable naming a DMS object (a stored file's id)


def _engine_files(cluster: Cluster) -> dict[int, Counter[str]]:
    """Per process, the sha256 of every file the emulator holds for it (data items, attachments)
    and of every DMS document a ``documentId`` variable of it references (what yuuvis exports)."""
    files: dict[int, Counter[str]] = {}
    by_id: dict[str, Any] = {}
    for instance in cluster.engine.instances.values():
        for _, stored in instance.files():
            files.setdefault(instance.id, Counter())[_digest(stored)] += 1
            by_id[str(stored.id)] = stored
    for task in cluster.engine.tasks.values():
        for attachment in task.attachments:
            if attachment.file is not None:  # a link (external_url) has no content here
                files.setdefault(task.instance.id, Counter())[_digest(attachment.file)] += 1
    free = state_of(cluster.engine).variables  # yuuvis keeps undeclared variables beside the engine
    for instance in cluster.engine.instances.values():
        referenced = [
            item.value
            for item in instance.data.values()
            if item.definition.name in DOCUMENT_VARIABLES and item.definition.type != "FILE"
        ]
        referenced += [
            value for name, (_, value) in free.get(instance.id, {}).items() if name in DOCUMENT_VARIABLES
        ]
        for value in referenced:
            for one in value if isinstance(value, list) else [value]:
                if str(one) in by_id:
                    files.setdefault(instance.id, Counter())[_digest(by_id[str(one)])] += 1
    return files


def _digest(stored: Any) -> str:
    return hashlib.sha256(b"".join(stored.chunks())).hexdigest()


def _required_processes(cluster: Cluster, r: Round, dag_id: str, folder: str) -> tuple[set[int], set[int]]:
    """The processes a DAG's export must hold (derived from the emulator), and those it may hold too."""
    owned = {
        instance.id
        for instance in cluster.engine.instances.values()
        if _owner(instance, {dag_id: r.run_ids[dag_id]}) is not None
    }
    if dag_id != "bpm_questetra_file_export":
        return owned, set()
    # Every seeded process of the folder's app (all started in 2024, the DAG's started_from); the
    # approval DAG's own processes (same app) may be there too, depending on timing.
    summary = next(v for k, v in cluster.summaries.items() if k.startswith("Questetra"))
    model = summary["models"][EXPORTED_APPS[folder.split("/")[1]]]
    seeded = set(summary["instances"].values())
    of_model = {i.id for i in cluster.engine.instances.values() if i.definition.id == model}
    return of_model & seeded, of_model - seeded


def test_exports_landed_in_every_store_as_the_manifest_says(cluster, rounds):
    engine_files = _engine_files(cluster)
    for r in rounds:
        round_stored = 0
        folders = {name.split("/")[0] for name in r.manifests}
        assert folders == {FOLDERS[dag_id] for dag_id in r.run_ids}, (r.prefix, folders)
        for dag_id in r.run_ids:
            manifests = {n: e for n, e in r.manifests.items() if n.split("/")[0] == FOLDERS[dag_id]}
            expected = stored = external = 0
            for name, entries in manifests.items():
                where = (r.prefix, dag_id, name)
                required, allowed = _required_processes(cluster, r, dag_id, name.rsplit("/", 1)[0])
                assert required, (*where, "no process to export found in the emulator")
                by_process: dict[int, list[dict[str, Any]]] = {}
                for entry in entries:
                    assert entry["status"] in STORED | {"external"}, (*where, entry)
                    by_process.setdefault(int(entry["process_id"]), []).append(entry)
                # Every process the emulator says the DAG exports is there (none missing, none extra);
                # a process without files has no entry.
                with_files = {p for p in required if engine_files.get(p)}
                assert with_files <= set(by_process) <= required | allowed, (*where, sorted(by_process))
                for process_id in required | (set(by_process) & allowed):
                    in_store: Counter[str] = Counter()
                    for entry in by_process.get(process_id, []):
                        if entry["status"] == "external":  # a link, not content: counted apart
                            assert entry.get("url"), (*where, entry)
                            external += 1
                            continue
                        # In the store, byte for byte as the manifest says.
                        assert entry["stored_size"] == entry["size"], (*where, entry)
                        assert entry["stored_sha256"] == entry["sha256"], (*where, entry)
                        in_store[entry["sha256"]] += 1
                    # Exactly the files the emulator holds for the process: none missing, none extra.
                    # A document without content (Bonita's empty placeholder) has nothing to export.
                    held = Counter(
                        {
                            d: n
                            for d, n in engine_files.get(process_id, Counter()).items()
                            if d != EMPTY_SHA256
                        }
                    )
                    in_store.pop(EMPTY_SHA256, None)
                    if process_id in allowed:
                        # Another round's or DAG's process, caught mid-run: what it had then.
                        assert not in_store - held, (*where, process_id, in_store - held)
                        continue
                    assert in_store == held, (*where, process_id, held - in_store, in_store - held)
                    stored += in_store.total()
                    expected += held.total()
            # A DAG whose process holds no file (the Questetra approval) exports an empty manifest.
            assert stored == expected, (r.prefix, dag_id, stored, expected)
            round_stored += stored
            FIGURES.append(
                f"{r.prefix} {dag_id}: {stored}/{expected} files stored as the emulator holds them, "
                f"{external} external references"
            )
        assert round_stored > 0, (r.prefix, "no file exported in the whole round")
