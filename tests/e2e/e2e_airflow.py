"""A distributed Airflow on loopback: PostgreSQL metadata DB, Redis broker, CeleryExecutor, five processes.

Every process gets the same configuration through ``AIRFLOW__...`` variables in a throwaway
``AIRFLOW_HOME``; only the Celery worker also gets its own host name, so a task instance's
``hostname`` proves which process ran it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from e2e_processes import Service, free_port, port_open, stop_all, wait_for

from airflow_bpm_provider.testing.dag_runner import EXAMPLE_DAGS

AIRFLOW = [sys.executable, "-m", "airflow"]
USER = "e2e-admin"
WORKER_HOSTNAME = "bpm-e2e-celery-worker"
DEFAULT_QUEUE = "default"

# Only the worker imports these: its host name, and gs:// through gcsfs without the google provider.
WORKER_IDENTITY = f'''
def hostname() -> str:
    return "{WORKER_HOSTNAME}"
'''
WORKER_LOCAL_SETTINGS = """
import os

_attached_in = None


def dag_policy(dag):
    # Runs in the task process when it parses the DAG file: attach gcsfs there, after the fork.
    global _attached_in
    if _attached_in != os.getpid() and os.environ.get("E2E_GCS_ENDPOINT"):
        from gcsfs import GCSFileSystem

        from airflow.sdk.io import attach
        from airflow.sdk.io.store import _STORE_CACHE

        _STORE_CACHE.pop("gs", None)
        endpoint = os.environ["E2E_GCS_ENDPOINT"]
        attach("gs", fs=GCSFileSystem(endpoint_url=endpoint, token="anon", project="e2e"))
        _attached_in = os.getpid()
"""


def dag_folder(target: Path, dag_ids: Iterable[str]) -> Path:
    """A DAG folder with copies of only the example DAG files that define ``dag_ids``.

    The example folder holds more DAGs (an asset-watcher DAG, for one) whose runs would happen by
    accident here and add workloads the checks do not expect. Files other than Python are copied too.
    """
    wanted = set(dag_ids)
    target.mkdir(parents=True)
    found: set[str] = set()
    for source in sorted(EXAMPLE_DAGS.iterdir()):
        if not source.is_file() or source.name == "__init__.py":
            continue
        if source.suffix == ".py":
            defined = set(re.findall(r"""dag_id\s*=\s*["']([\w.-]+)["']""", source.read_text()))
            if not defined & wanted:
                continue
            found |= defined & wanted
        elif source.suffix in (".pyc", ".pyo"):
            continue
        shutil.copy2(source, target / source.name)
    if found != wanted:
        raise RuntimeError(f"no example DAG file defines {sorted(wanted - found)} in {EXAMPLE_DAGS}")
    return target


class Airflow:
    def __init__(
        self,
        home: Path,
        *,
        database_url: str,
        broker_url: str,
        result_backend: str,
        connections: Mapping[str, Mapping[str, Any]],
        dag_ids: Iterable[str],
        extra_env: Mapping[str, str],
    ) -> None:
        self.home = home
        self.logs = home / "process-logs"
        self.api_port = free_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.password = secrets.token_urlsafe(12)
        self.processes: dict[str, Service] = {}
        self._token: str | None = None
        home.mkdir(parents=True, exist_ok=True)
        self.dags_folder = dag_folder(home / "dags", dag_ids)
        (home / "passwords.json").write_text(json.dumps({USER: self.password}))
        worker_path = home / "worker-python"
        worker_path.mkdir()
        (worker_path / "bpm_e2e_worker_identity.py").write_text(WORKER_IDENTITY)
        (worker_path / "airflow_local_settings.py").write_text(WORKER_LOCAL_SETTINGS)
        self.worker_path = worker_path
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
        self.env = {
            **inherited,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__PARALLELISM": "16",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
            "AIRFLOW__CELERY__BROKER_URL": broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": result_backend,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "8",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            # A loaded 2-core machine answers the worker's Execution API calls slower than 5 s at times.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "600",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            "AIRFLOW__TRIGGERER__CAPACITY": "100",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            **extra_env,
        }
        for conn_id, fields in connections.items():
            self.env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(dict(fields))

    # ---- processes ---------------------------------------------------------------------------

    def migrate(self) -> None:
        result = subprocess.run(
            [*AIRFLOW, "db", "migrate"], env=self.env, capture_output=True, text=True, timeout=600
        )
        if result.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}")

    def start(self, *, deferrable: bool) -> None:
        self._start(
            "api-server", [*AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(self.api_port)]
        )
        self._start("scheduler", [*AIRFLOW, "scheduler"])
        self._start("triggerer", [*AIRFLOW, "triggerer", "--skip-serve-logs"])
        self.start_parsing_and_working(deferrable=deferrable)
        wait_for(
            lambda: port_open(self.api_port), "api-server", timeout=180, process=self.processes["api-server"]
        )
        wait_for(self._token_ok, "api-server login", timeout=120, process=self.processes["api-server"])

    def start_parsing_and_working(self, *, deferrable: bool) -> None:
        """The dag-processor and the Celery worker: the two that parse DAG files, so they carry the mode."""
        mode = {"AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "true" if deferrable else "false"}
        self._start("dag-processor", [*AIRFLOW, "dag-processor"], mode)
        worker_env = {
            **mode,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(self.worker_path), os.environ.get("PYTHONPATH")])
            ),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "bpm_e2e_worker_identity.hostname",
        }
        self._start(
            "celery-worker",
            [
                *AIRFLOW,
                "celery",
                "worker",
                "--concurrency",  # poking sensors hold a slot each: room for them and the rest
                "8",
                "--celery-hostname",
                "bpm-e2e@%h",
                "--skip-serve-logs",
            ],
            worker_env,
        )

    def stop_parsing_and_working(self) -> None:
        stop_all([self.processes.pop(name) for name in ("celery-worker", "dag-processor")])

    def _start(self, name: str, command: list[str], extra: Mapping[str, str] | None = None) -> None:
        suffix = sum(1 for n in os.listdir(self.logs) if n.startswith(name)) if self.logs.exists() else 0
        log_name = name if not suffix else f"{name}.{suffix}"
        service = Service(log_name, command, log_dir=self.logs, env={**self.env, **(extra or {})})
        self.processes[name] = service

    def stop(self) -> None:
        stop_all([self.processes.pop(name) for name in list(self.processes)])

    def check_alive(self) -> None:
        dead = [s for s in self.processes.values() if s.exited()]
        if dead:
            raise RuntimeError("; ".join(f"{s.name} exited:\n{s.tail()}" for s in dead))

    # ---- REST API ----------------------------------------------------------------------------

    def _token_ok(self) -> bool:
        import httpx

        reply = httpx.post(
            f"{self.url}/auth/token", json={"username": USER, "password": self.password}, timeout=10
        )
        reply.raise_for_status()
        self._token = reply.json()["access_token"]
        return True

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        assert self._token, "log in first"
        for attempt in range(5):
            try:
                reply = httpx.request(
                    method,
                    f"{self.url}/api/v2{path}",
                    headers={"Authorization": f"Bearer {self._token}"},
                    timeout=30,
                    **kwargs,
                )
            except httpx.TransportError:
                if attempt == 4:
                    raise
                time.sleep(1)
                continue
            if reply.status_code == 401 and attempt < 4:
                self._token_ok()
                continue
            if reply.status_code >= 400:
                raise RuntimeError(f"{method} {path}: {reply.status_code} {reply.text[:500]}")
            return reply.json() if reply.content else None
        raise AssertionError("unreachable")

    def set_variable(self, key: str, value: str) -> None:
        try:
            self.api("PATCH", f"/variables/{key}", json={"key": key, "value": value})
        except RuntimeError as exc:
            if " 404 " not in str(exc):
                raise
            self.api("POST", "/variables", json={"key": key, "value": value})

    def dags(self) -> dict[str, dict[str, Any]]:
        return {d["dag_id"]: d for d in self.api("GET", "/dags", params={"limit": 100})["dags"]}

    def import_errors(self) -> list[dict[str, Any]]:
        return self.api("GET", "/importErrors")["import_errors"]

    def trigger(self, dag_id: str, run_id: str) -> None:
        # No logical date, as a REST trigger from a user or another system sends it.
        self.api(
            "POST", f"/dags/{dag_id}/dagRuns", json={"dag_run_id": run_id, "logical_date": None, "conf": {}}
        )

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})[
            "task_instances"
        ]

    def jobs(self, job_type: str) -> list[dict[str, Any]]:
        return self.api("GET", "/jobs", params={"job_type": job_type, "limit": 100})["jobs"]

    def deferred(self) -> list[dict[str, Any]]:
        return self.api("GET", "/dags/~/dagRuns/~/taskInstances", params={"state": "deferred", "limit": 100})[
            "task_instances"
        ]
