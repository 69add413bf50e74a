"""The README's Quickstart DAG, taken from README.md as printed, run with real Airflow on every
connection type of the emulator: with ``airflow dags test``, and as runs triggered without a
logical date (``airflow dags trigger``) that a scheduler, a dag-processor, a triggerer and an
api-server carry out; there every process ends a few seconds after its approval, so each end-wait
really defers and the triggerer resumes it. Slow (about two minutes per kind of run): it is the
README's promise, run as a user runs it, on seven systems.

Each system gets a copy of the DAG in which only the connections differ: ``my_bpm`` becomes that
system's demo connection and ``aws_default`` an aws connection to that system's own moto S3, so
every copy exports to ``s3://my-bucket/bpm-files/`` as printed without the copies overwriting
each other's ``manifest.json``. The DAG id gets the connection id appended, since one Airflow
holds all copies. Then every exported object must be the bytes the emulator holds, and every
process must have been approved the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from airflow_bpm_provider.testing import Emulator
from airflow_bpm_provider.testing.airflow_services import AirflowServices, api_server_env, free_port, wait_for
from airflow_bpm_provider.testing.dag_runner import airflow_env, migrate
from airflow_bpm_provider.testing.demo_quickstart import PROCESS, QUESTETRA_KEY, RECEIPT, RECEIPT_NAME
from airflow_bpm_provider.testing.demo_systems import all_connections, seed_all
from airflow_bpm_provider.testing.engine import COMPLETED, Engine

README = Path(__file__).resolve().parent.parent / "README.md"
# Every connection type and API dialect the emulator serves.
SYSTEMS = (
    "questetra_demo",
    "dataspider_demo",
    "bonita_demo",
    "activiti_demo",  # WSO2 EI
    "flowable_demo",
    "activiti_rest_demo",
    "yuuvis_demo",
)
BUCKET, PREFIX, MANIFEST = "my-bucket", "bpm-files/", "bpm-files/manifest.json"
RUN_TIMEOUT = 240


def quickstart_code() -> str:
    """The first Python block of the README's "## Quickstart" section."""
    section = README.read_text().split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert match, "the Quickstart section has no Python block"
    return match.group(1)


def dag_copy(code: str, conn_id: str) -> str:
    """The Quickstart for one system: its connections and a DAG id of its own, nothing else."""
    assert code.count('bpm_conn_id="my_bpm"') == 5 and code.count('dest_conn_id="aws_default"') == 1
    assert code.count('DAG("approval"') == 1
    return (
        code.replace('bpm_conn_id="my_bpm"', f'bpm_conn_id="{conn_id}"')
        .replace('dest_conn_id="aws_default"', f'dest_conn_id="aws_{conn_id}"')
        .replace('DAG("approval"', f'DAG("approval_{conn_id}"')
    )


@dataclass
class S3:
    """One moto server (its own process, so its own buckets) and a client for it."""

    process: subprocess.Popen
    endpoint: str

    @property
    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def connection(self) -> dict[str, Any]:
        extra = {"endpoint_url": self.endpoint, "region_name": "us-east-1"}
        return {"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}

    def objects(self) -> dict[str, bytes]:
        client = self.client
        listed = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
        return {o["Key"]: client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}

    def empty(self) -> None:
        client = self.client
        for key in self.objects():
            client.delete_object(Bucket=BUCKET, Key=key)


def start_s3(log_dir: Path, name: str) -> S3:
    port = free_port()
    log = (log_dir / f"moto-{name}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    return S3(process, f"http://127.0.0.1:{port}")


@dataclass
class Stack:
    engine: Engine
    connections: dict[str, dict[str, Any]]
    stores: dict[str, S3]
    dags: Path
    migrated: Path  # a migrated Airflow home to copy


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("quickstart")
    logs = root / "logs"
    logs.mkdir()
    stores = {conn_id: start_s3(logs, conn_id) for conn_id in SYSTEMS}
    emu = Emulator.start()
    try:
        connections = {
            conn_id: fields
            for conn_id, fields in all_connections(emu.url, seed_all(emu.engine, large_file_mb=0)).items()
            if conn_id in SYSTEMS
        }
        assert set(connections) == set(SYSTEMS)
        for conn_id, store in stores.items():
            wait_for(lambda s=store: _answers(s), timeout=60, what=f"moto for {conn_id}", interval=0.2)
            store.client.create_bucket(Bucket=BUCKET)
            connections[f"aws_{conn_id}"] = store.connection()
        dags = root / "dags"
        dags.mkdir()
        code = quickstart_code()
        for conn_id in SYSTEMS:
            (dags / f"quickstart_{conn_id}.py").write_text(dag_copy(code, conn_id))
        home = root / "migrated"
        migrate(airflow_env(home, connections={}, dags_folder=dags))
        yield Stack(emu.engine, connections, stores, dags, home)
    finally:
        emu.stop()
        for store in stores.values():
            store.process.kill()
            store.process.wait(10)


def _answers(store: S3) -> bool:
    try:
        store.client.list_buckets()
    except Exception:
        return False
    return True


def _env(stack: Stack, home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = airflow_env(home, connections=stack.connections, dags_folder=stack.dags, extra=extra)
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


def check_exports(stack: Stack, outcomes: dict[str, str]) -> None:
    """Every system's run succeeded, approved its own process, and exported the emulator's bytes."""
    failed = {conn_id: detail for conn_id, detail in outcomes.items() if detail != "success"}
    assert not failed, failed
    processes = set()
    for conn_id in SYSTEMS:
        objects = stack.stores[conn_id].objects()
        assert MANIFEST in objects, f"{conn_id}: no manifest.json in {sorted(objects)}"
        manifest = json.loads(objects[MANIFEST])["files"]
        assert len(manifest) == 1, f"{conn_id}: {manifest}"
        (entry,) = manifest
        instance = stack.engine.instance(entry["process_id"])
        key = QUESTETRA_KEY if conn_id in ("questetra_demo", "dataspider_demo") else PROCESS
        assert instance.definition.key == key, conn_id
        assert instance.state == COMPLETED, conn_id
        assert float(instance.value("amount")) == 1234.5 and instance.value("purpose") == "Cloud costs"
        assert instance.value("approved") is True, (conn_id, instance.value("approved"))
        # the business key: Questetra's title, Bonita's variable, the others' own field
        marker = {
            instance.title,
            instance.business_key,
            instance.value("businessKey" if key == PROCESS else 0),
        }
        assert any(str(m).startswith("expense-") for m in marker), (conn_id, marker)
        [(_, stored)] = instance.files()
        # Activiti's binary variables have no file name of their own: the variable names the file
        assert stored.read() == RECEIPT and entry["file_name"] in (RECEIPT_NAME, "receipt"), entry
        assert entry["sha256"] == hashlib.sha256(RECEIPT).hexdigest() and entry["size"] == len(RECEIPT)
        assert objects[PREFIX + entry["path"]] == RECEIPT, conn_id
        assert set(objects) == {MANIFEST, PREFIX + entry["path"]}, conn_id
        processes.add(instance.id)
    assert len(processes) == len(SYSTEMS)


def test_the_quickstart_runs_with_airflow_dags_test_on_every_system(stack: Stack, tmp_path: Path):
    def run(conn_id: str) -> str:
        home = tmp_path / conn_id
        shutil.copytree(stack.migrated, home)
        log = tmp_path / f"{conn_id}.log"
        with log.open("w") as out:
            code = subprocess.run(
                [sys.executable, "-m", "airflow", "dags", "test", f"approval_{conn_id}"],
                env=_env(stack, home),
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=RUN_TIMEOUT,
            ).returncode
        return "success" if code == 0 else "\n".join(log.read_text().splitlines()[-30:])

    for store in stack.stores.values():
        store.empty()
    # One Airflow home each (copies of one migrated DB), so the runs can go side by side.
    with ThreadPoolExecutor(len(SYSTEMS)) as pool:
        outcomes = dict(zip(SYSTEMS, pool.map(run, SYSTEMS), strict=True))
    check_exports(stack, outcomes)


def test_the_quickstart_runs_when_triggered_without_a_logical_date(stack: Stack, tmp_path: Path):
    home = tmp_path / "home"
    shutil.copytree(stack.migrated, home)
    port = free_port()
    env = _env(
        stack,
        home,
        {
            **api_server_env(port),
            "AIRFLOW__CORE__PARALLELISM": "8",
            # The copied airflow.cfg names the migrated home's log folder; keep this run's own.
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        },
    )
    for store in stack.stores.values():
        store.empty()
    dag_ids = [f"approval_{conn_id}" for conn_id in SYSTEMS]
    # Each process ends some seconds after "Approve" is completed, so every `wait_for_end` finds it
    # still running at its first check, defers, and is resumed by the triggerer process.
    # (15 s: more than the scheduler takes to queue the next task on a loaded machine.)
    stack.engine.advance_after = 15
    with AirflowServices(env, log_dir=tmp_path / "logs") as services:
        services.start("api-server", "dag-processor", "scheduler", "triggerer")
        try:
            wait_for(lambda: _parsed(services, dag_ids), timeout=120, what="the Quickstart DAGs to be parsed")
            # `airflow dags trigger` sets no logical date by default, as a REST trigger with null.
            triggers = [
                subprocess.Popen(
                    [sys.executable, "-m", "airflow", "dags", "trigger", dag_id],
                    env=services.env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                for dag_id in dag_ids
            ]
            for trigger in triggers:
                output, _ = trigger.communicate(timeout=120)
                assert trigger.returncode == 0, output
            runs = wait_for(
                lambda: _finished_runs(services, dag_ids), timeout=RUN_TIMEOUT, what="the runs to finish"
            )
        except BaseException:
            print("scheduler log:\n" + services.tail("scheduler", 60))
            print("triggerer log:\n" + services.tail("triggerer", 60))
            raise
        finally:
            stack.engine.advance_after = 0
    assert all(logical_date is None and kind == "manual" for _, logical_date, kind in runs.values()), runs
    outcomes = {}
    for conn_id, dag_id in zip(SYSTEMS, dag_ids, strict=True):
        state = runs[dag_id][0]
        outcomes[conn_id] = state if state == "success" else f"{state}: {_task_states(home, dag_id)}"
    check_exports(stack, outcomes)
    deferred = {dag_id: _deferred_and_resumed(home, dag_id, "wait_for_end") for dag_id in dag_ids}
    assert all(deferred.values()), deferred


def _deferred_and_resumed(home: Path, dag_id: str, task_id: str) -> bool:
    """The task's log says it deferred (the task runner's own line) and the task then succeeded
    in the same try: only the triggerer can have resumed it."""
    logs = list((home / "logs").glob(f"dag_id={dag_id}/run_id=*/task_id={task_id}/attempt=1.log"))
    deferred = any("Pausing task as DEFERRED" in path.read_text(errors="replace") for path in logs)
    return deferred and ("wait_for_end", "success") in _task_states(home, dag_id)


def _parsed(services: AirflowServices, dag_ids: list[str]) -> bool:
    placeholders = ",".join("?" * len(dag_ids))
    rows = services.query(f"SELECT dag_id FROM dag WHERE dag_id IN ({placeholders})", dag_ids)
    return len(rows) == len(dag_ids)


def _finished_runs(services: AirflowServices, dag_ids: list[str]) -> dict[str, tuple] | None:
    placeholders = ",".join("?" * len(dag_ids))
    rows = services.query(
        f"SELECT dag_id, state, logical_date, run_type FROM dag_run WHERE dag_id IN ({placeholders})", dag_ids
    )
    runs = {dag_id: (state, logical_date, run_type) for dag_id, state, logical_date, run_type in rows}
    if len(runs) == len(dag_ids) and all(state in ("success", "failed") for state, _, _ in runs.values()):
        return runs
    services.check_alive()
    return None


def _task_states(home: Path, dag_id: str) -> list[tuple]:
    with sqlite3.connect(home / "airflow.db") as db:
        return db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ?", [dag_id]).fetchall()
