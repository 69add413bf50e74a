"""Airflow's long-running processes (scheduler, dag-processor, triggerer) in a throwaway home.

Event-driven scheduling needs them: ``airflow dags test`` does not run asset watchers. Used by the
event-scheduling test and by ``make demo``. Everything started here is stopped on exit, also when
the caller fails; each process runs in its own process group, so its children go with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# Short loops so a test sees a new DAG file, a new trigger and an asset event within seconds.
FAST_LOOPS = {
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "false",
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    "AIRFLOW__CORE__PARALLELISM": "4",
}

# ``--skip-serve-logs``: the scheduler (LocalExecutor) and the triggerer would otherwise start a
# log server, which Airflow binds to every interface (0.0.0.0 / ::) with no setting for the host;
# nothing here reads logs through it. Its ports are still set to free ones (see AirflowServices).
COMMANDS = {
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
    "api-server": ["api-server", "--host", "127.0.0.1"],
}


def wait_for(check: Callable[[], T], *, timeout: float, what: str, interval: float = 0.5) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class AirflowServices:
    """Start, restart and stop Airflow processes; read what they did from the SQLite metadata DB."""

    def __init__(self, env: Mapping[str, str], *, log_dir: Path) -> None:
        # Log servers are not started (COMMANDS); should one start anyway, it takes a free port, so
        # other Airflow processes on this machine keep their defaults.
        ports = {
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        }
        self.env = {**FAST_LOOPS, **ports, **dict(env)}
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen] = {}
        self.db = Path(self.env["AIRFLOW_HOME"]) / "airflow.db"
        self._starts: dict[str, int] = {}

    def __enter__(self) -> AirflowServices:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(self, *names: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            if name in self.processes and self.processes[name].poll() is None:
                continue
            self._starts[name] = self._starts.get(name, 0) + 1
            log = (self.log_dir / f"{name}-{self._starts[name]}.log").open("w")
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", *COMMANDS[name]],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends its children too
            )
            log.close()

    def stop(self, name: str, *, timeout: float = 30.0) -> None:
        """SIGTERM (a graceful shutdown, as in a rolling restart); SIGKILL after ``timeout``."""
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait(10)
        # Children left in the group (task runners, parsing processes) go too.
        _signal_group(process, signal.SIGKILL)

    def unpause(self, dag_id: str, *, timeout: float = 120) -> None:
        """Unpause a DAG once the dag-processor stored it (an earlier ``dags test`` may have paused it)."""
        wait_for(lambda: self.query("SELECT 1 FROM dag WHERE dag_id = ?", [dag_id]), timeout=timeout,
                 what=f"the DAG {dag_id} to be parsed")  # fmt: skip
        subprocess.run(
            [sys.executable, "-m", "airflow", "dags", "unpause", dag_id],
            env=self.env,
            capture_output=True,
            check=True,
            timeout=timeout,
        )

    def restart(self, name: str) -> None:
        self.stop(name)
        self.start(name)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"airflow {name} exited with {process.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 60) -> str:
        path = self.log_dir / f"{name}-{self._starts.get(name, 1)}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # ---- reading the metadata DB ----------------------------------------------------------------

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        if not self.db.exists():
            return []
        connection = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return connection.execute(sql, tuple(params)).fetchall()
        except sqlite3.OperationalError:  # a table not created yet, or the DB busy
            return []
        finally:
            connection.close()

    def asset_events(self, asset_name: str) -> list[dict[str, Any]]:
        """The asset events of the asset named ``asset_name``, oldest first: ``{"id", "extra", "payload"}``.

        ``payload`` is what a watcher's trigger event carried; a task's outlet event has its extra only.
        """
        rows = self.query(
            "SELECT e.id, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE a.name = ? ORDER BY e.id",
            [asset_name],
        )
        events = [{"id": row[0], "extra": json.loads(row[1] or "{}")} for row in rows]
        return [{**event, "payload": event["extra"].get("payload")} for event in events]

    def triggered_runs(self, dag_id: str) -> dict[str, list[int]]:
        """Each asset-triggered run of ``dag_id`` with the asset event ids it was made from."""
        rows = self.query(
            "SELECT r.run_id, x.event_id FROM dag_run r LEFT JOIN dagrun_asset_event x "
            "ON x.dag_run_id = r.id WHERE r.dag_id = ? AND r.run_type = 'asset_triggered' ORDER BY r.id",
            [dag_id],
        )
        runs: dict[str, list[int]] = {}
        for run_id, event_id in rows:
            runs.setdefault(run_id, [])
            if event_id is not None:
                runs[run_id].append(event_id)
        return runs

    def run_states(self, dag_id: str) -> dict[str, str]:
        rows = self.query(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? AND run_type = 'asset_triggered'", [dag_id]
        )
        return dict(rows)

    def state_store(self, asset_name: str) -> dict[str, Any]:
        rows = self.query(
            "SELECT s.key, s.value FROM asset_state_store s JOIN asset a ON a.id = s.asset_id "
            "WHERE a.name = ?",
            [asset_name],
        )
        return {key: json.loads(value) for key, value in rows}


def api_server_env(port: int) -> dict[str, str]:
    """Settings for one api-server on 127.0.0.1:``port`` that the workers' task runners reach.

    One worker on a SQLite DB shared by four processes answers slowly at times, hence the long
    execution API timeout; the JWT secret is fresh per run.
    """
    import secrets

    return {
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
