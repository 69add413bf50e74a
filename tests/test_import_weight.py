"""DAG files import operators and sensors on every parse, a triggerer imports each trigger's module:
those imports must stay light (their time is measured by bench/imports.py)."""

from __future__ import annotations

import subprocess
import sys

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


def test_dag_facing_modules_do_not_import_heavy_libraries():
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        f"for m in {DAG_FACING!r}: __import__(m)\n"
        "import json; print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    # Airflow's SDK is imported first: what it loads itself is not this provider's cost.
    prelude = (
        "import airflow.sdk, airflow.providers.common.compat.sdk as s; s.BaseOperator; s.BaseSensorOperator\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, check=True
    ).stdout
    import json

    loaded = json.loads(out.strip().splitlines()[-1])
    offenders = [
        m for m in loaded if m.split(".")[0] in {h.split(".")[0] for h in HEAVY} and m.startswith(HEAVY)
    ]
    assert offenders == [], f"importing the operators, sensors or triggers pulled in {offenders}"
