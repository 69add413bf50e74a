"""DAG files import operators and sensors on every parse, a triggerer imports each trigger's module:
those imports must stay light (their time is measured by bench/imports.py)."""

from __future__ import annotations

import inspect
import json
import pkgutil
import subprocess
import sys

import airflow_bpm_provider

HEAVY = ("lxml", "requests", "httpx", "fsspec", "fastapi", "uvicorn", "s3fs", "pendulum.parsing")

DAG_FACING = [
    "airflow_bpm_provider.operators.process",
    "airflow_bpm_provider.operators.task",
    "airflow_bpm_provider.operators.files",
    "airflow_bpm_provider.sensors.process",
    "airflow_bpm_provider.sensors.task",
    "airflow_bpm_provider.hooks.registry",
    # the triggerer imports these for every trigger it runs; they send requests only once running
    "airflow_bpm_provider.triggers.polling",
    "airflow_bpm_provider.triggers.process",
    "airflow_bpm_provider.triggers.task",
    "airflow_bpm_provider.triggers.shared_poll",
]

# The provider's own modules that only a running task or trigger needs: the HTTP layer and its
# retries, the vendor hooks, the result dataclasses and the export machinery (downloads, writes,
# naming). Importing the operators, sensors and triggers used to load all of them.
RUNTIME_ONLY = (
    "airflow_bpm_provider.hooks.base",
    "airflow_bpm_provider.hooks.http",
    "airflow_bpm_provider.hooks.retry",
    "airflow_bpm_provider.hooks.bounds",
    "airflow_bpm_provider.hooks.batch_reads",
    "airflow_bpm_provider.models",
    "airflow_bpm_provider.lineage",
    "airflow_bpm_provider.transfer.export",
    "airflow_bpm_provider.transfer.fetch",
    "airflow_bpm_provider.transfer.writer",
    "airflow_bpm_provider.transfer.naming",
    "tenacity",
)

# Airflow's SDK is imported first: what it loads itself is not this provider's cost.
PRELUDE = (
    "import airflow.sdk, airflow.providers.common.compat.sdk as s; s.BaseOperator; s.BaseSensorOperator\n"
)


def modules_loaded_by(modules: list[str]) -> list[str]:
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        f"for m in {modules!r}: __import__(m)\n"
        "import json; print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", PRELUDE + code], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def every_operator_sensor_and_trigger_module() -> list[str]:
    root = airflow_bpm_provider.__path__[0]
    return [
        f"airflow_bpm_provider.{package}.{info.name}"
        for package in ("operators", "sensors", "triggers")
        for info in pkgutil.iter_modules([f"{root}/{package}"])
    ]


def test_dag_facing_modules_do_not_import_heavy_libraries():
    loaded = modules_loaded_by(DAG_FACING)
    offenders = [
        m for m in loaded if m.split(".")[0] in {h.split(".")[0] for h in HEAVY} and m.startswith(HEAVY)
    ]
    assert offenders == [], f"importing the operators, sensors or triggers pulled in {offenders}"


def test_operator_sensor_and_trigger_modules_leave_runtime_machinery_unloaded():
    modules = every_operator_sensor_and_trigger_module()
    assert len(modules) >= 10, modules  # the listing itself works: every package has its modules
    loaded = set(modules_loaded_by(modules))
    assert set(modules) <= loaded
    offenders = sorted(m for m in loaded if m.startswith(RUNTIME_ONLY) or m.startswith(HEAVY))
    assert offenders == [], f"importing every operator, sensor and trigger module loaded {offenders}"


def test_the_runtime_machinery_still_loads_when_a_trigger_runs():
    """The lazy imports resolve: what the modules left out is there once it is used."""
    from airflow_bpm_provider.hooks.retry import RetryPolicy
    from airflow_bpm_provider.models import ProcessState as FromModels
    from airflow_bpm_provider.states import ProcessState
    from airflow_bpm_provider.triggers import polling

    assert FromModels is ProcessState
    assert isinstance(polling.KILL_RETRY_POLICY, RetryPolicy)
    assert polling.kill_retry_policy().max_attempts == 2


def test_the_file_operator_defaults_are_the_exports_own():
    """The operator spells out the export's defaults instead of importing their heavy modules."""
    from airflow_bpm_provider.operators.files import BpmDownloadProcessFilesOperator
    from airflow_bpm_provider.transfer.fetch import DEFAULT_RETRIES
    from airflow_bpm_provider.transfer.naming import DEFAULT_LAYOUT
    from airflow_bpm_provider.transfer.workers import DEFAULT_CONCURRENCY

    defaults = {
        name: p.default for name, p in inspect.signature(BpmDownloadProcessFilesOperator).parameters.items()
    }
    assert defaults["layout"] == DEFAULT_LAYOUT
    assert defaults["file_retries"] == DEFAULT_RETRIES
    assert defaults["max_concurrency"] == DEFAULT_CONCURRENCY
