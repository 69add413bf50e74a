"""The distributed cluster the e2e tier runs on; everything it starts, it stops (also on failure)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e_airflow import Airflow
from e2e_people import PatientEngine
from e2e_processes import Service, free_port, port_open, start_postgres, stop_all, wait_for
from e2e_stores import Store, start_azure, start_gcs, start_s3, wait_ready

from airflow_bpm_provider.testing import Emulator
from airflow_bpm_provider.testing.demo_systems import all_connections, all_dags, seed_all

LARGE_FILE_MB = 3
FIGURES: list[str] = []


@dataclass
class Cluster:
    airflow: Airflow
    emulator: Emulator
    engine: PatientEngine
    stores: dict[str, Store]
    database_url: str
    root: Path
    summaries: dict[str, Any]  # what seed_all put in the emulator, per BPM system
    deferrable: bool = False
    started: float = field(default_factory=time.monotonic)

    def switch_mode(self, *, deferrable: bool) -> None:
        if deferrable == self.deferrable:
            return
        self.airflow.stop_parsing_and_working()
        self.airflow.start_parsing_and_working(deferrable=deferrable)
        self.deferrable = deferrable


def _create_database(admin_url: str) -> None:
    import psycopg2

    connection = psycopg2.connect(admin_url)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE airflow")
    finally:
        connection.close()


def _postgres_ready(admin_url: str) -> bool:
    import psycopg2

    psycopg2.connect(admin_url, connect_timeout=2).close()
    return True


@contextlib.contextmanager
def start_cluster(keep_logs: Callable[[], bool]) -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix="bpm-e2e-"))
    logs = root / "logs"
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        # Every server is registered the moment it starts: whatever fails later, all that runs is
        # stopped. The data folder is removed after (ExitStack unwinds last-in first-out).
        pg_root = Path(tempfile.mkdtemp(prefix="bpm-e2e-pg-"))
        stack.callback(shutil.rmtree, pg_root, True)
        services: list[Service] = []
        stack.callback(stop_all, services)

        redis_port, pg_port = free_port(), free_port()
        redis = Service(
            "redis",
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(redis_port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            log_dir=logs,
        )
        services.append(redis)
        postgres = start_postgres(pg_root / "data", pg_port, logs)
        services.append(postgres)
        stores: dict[str, Store] = {}
        for start_store in (start_s3, start_gcs, start_azure):
            store = start_store(logs)  # one at a time: a failing start leaves the others registered
            services.append(store.service)
            stores[store.scheme] = store

        engine = PatientEngine()
        emulator = Emulator.start(engine)
        stack.callback(emulator.stop)
        summaries = seed_all(engine, large_file_mb=LARGE_FILE_MB)

        admin_url = f"postgresql://airflow@127.0.0.1:{pg_port}/postgres"
        wait_for(lambda: port_open(redis_port), "redis", timeout=30, process=redis)
        wait_for(lambda: _postgres_ready(admin_url), "postgres", timeout=60, process=postgres)
        _create_database(admin_url)
        for store in stores.values():
            wait_ready(store)

        connections: dict[str, Any] = dict(all_connections(emulator.url, summaries))
        for store in stores.values():
            if store.conn_id:
                connections[store.conn_id] = store.connection
        database = f"postgresql+psycopg2://airflow@127.0.0.1:{pg_port}/airflow"
        airflow = Airflow(
            root / "airflow-home",
            database_url=database,
            broker_url=f"redis://127.0.0.1:{redis_port}/0",
            result_backend=f"db+postgresql+psycopg2://airflow@127.0.0.1:{pg_port}/airflow",
            connections=connections,
            dag_ids=all_dags(),
            extra_env={
                "E2E_GCS_ENDPOINT": stores["gs"].endpoint,
                # gcsfs (also the one universal-pathlib makes for gs:// paths) goes to the emulator.
                "STORAGE_EMULATOR_HOST": stores["gs"].endpoint,
                "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
            },
        )
        airflow.migrate()
        stack.callback(airflow.stop)
        airflow.start(deferrable=False)
        # The DAG folder holds exactly the DAGs the tier checks: no other DAG runs by accident.
        wait_for(lambda: set(all_dags()) == set(airflow.dags()), "example DAGs parsed", timeout=240,
                 process=airflow.processes["dag-processor"])  # fmt: skip
        assert airflow.import_errors() == []
        FIGURES.append(f"cluster up in {time.monotonic() - started:.0f} s (logs: {logs})")
        yield Cluster(airflow, emulator, engine, stores, database, root, summaries)
    # Reached only when nothing broke: a failed session keeps its logs for a look.
    if not keep_logs():
        shutil.rmtree(root, ignore_errors=True)
