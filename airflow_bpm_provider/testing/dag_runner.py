"""Run DAGs with real Airflow (``airflow dags test``) against an emulator, in a throwaway home.

Used by ``make demo`` and by the DAG-level tests, so both exercise exactly what a user runs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

# The example DAGs live in the clone's top-level example_dags/ (a DAG folder, not a package).
EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"


def load_example(name: str) -> ModuleType:
    """Import ``example_dags/<name>.py`` as a fresh module (a new DAG object on every call)."""
    path = EXAMPLE_DAGS / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the example DAGs come with a clone of the repository")
    spec = importlib.util.spec_from_file_location(f"bpm_example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class DagRunResult:
    dag_id: str
    ok: bool
    seconds: float
    log_path: Path

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def airflow_env(
    home: Path,
    *,
    connections: Mapping[str, Mapping[str, Any]],
    dags_folder: Path = EXAMPLE_DAGS,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for an isolated Airflow: its own home and SQLite DB, connections as env vars."""
    inherited = os.environ.items()
    env = {key: value for key, value in inherited if not key.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        }
    )
    for conn_id, fields in connections.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(dict(fields))
    env.update(extra or {})
    return env


def migrate(env: Mapping[str, str], *, timeout: float = 300) -> None:
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{result.stderr[-3000:]}")


def run_dag(
    dag_id: str,
    env: Mapping[str, str],
    *,
    log_dir: Path,
    conf: Mapping[str, Any] | None = None,
    timeout: float = 900,
) -> DagRunResult:
    """``airflow dags test`` one DAG (deferred tasks' triggers run in-process); exit code 0 = success."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{dag_id}.log"
    command = [sys.executable, "-m", "airflow", "dags", "test", dag_id]
    if conf:
        command += ["--conf", json.dumps(dict(conf))]
    started = time.monotonic()
    with log_path.open("w") as log:
        try:
            code = subprocess.run(
                command, env=dict(env), stdout=log, stderr=subprocess.STDOUT, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            log.write(f"\n[dag_runner] timed out after {timeout} s\n")
            code = -1
    return DagRunResult(dag_id, code == 0, time.monotonic() - started, log_path)
