"""A lost start answer under real Airflow (``dag.test``, a triggered run without a logical date):
the task's second try finds the first try's "start sent" mark in Airflow's own task state store
and adopts the process the server did start, so exactly one exists."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from test_process_operator_durable import READ_TIMEOUT, LosingEmulator, _questetra

from airflow_bpm_provider.testing.dag_runner import airflow_env, migrate

DAGS = Path(__file__).parent / "dags"


def test_a_lost_start_answer_is_adopted_by_the_next_try_under_airflow(tmp_path):
    emu = LosingEmulator.start()
    try:
        conn, system = _questetra(emu)
        emu.lose.append(system.start)
        conn = {**conn, "extra": {"timeout": READ_TIMEOUT, "retry_delay": 0.05}}
        env = airflow_env(tmp_path / "home", connections={"durable_bpm": conn}, dags_folder=DAGS)
        migrate(env)
        conf = {"process": system.process, "business_key": "K-airflow-1"}
        result = subprocess.run(
            [sys.executable, str(DAGS / "bpm_durable_probe.py"), json.dumps(conf)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        emu.stop()

    log = result.stdout + result.stderr
    tail = log[-6000:]
    assert result.returncode == 0, tail
    assert "logical_date=None" in log, tail
    assert re.search(r"DagRun Finished: dag_id=bpm_durable_probe, logical_date=None.*state=success", log), (
        tail
    )
    assert emu.lost == 1
    (instance,) = system.instances()
    assert instance.title == "K-airflow-1"  # the adopting try finished the start
    assert "but got no answer; adopting process instance" in log, tail
    assert "task_state_store not available" not in log
    assert "durable-password-7781" not in log
