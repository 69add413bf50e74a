"""Under real Airflow (``dag.test``, a run without a logical date), a start the server refuses
fails with the server's message, and the "BPM process" link of that failed try does not log
Airflow's "XCom not found" for the URL it never pushed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pytest_httpserver import HTTPServer

from airflow_bpm_provider.testing.dag_runner import airflow_env, migrate

DAGS = Path(__file__).parent / "dags"


def test_a_refused_start_fails_without_an_xcom_not_found_from_the_link(httpserver: HTTPServer, tmp_path):
    # Activiti's answer to a start by an unknown key (Flowable REST: 400 with a message).
    httpserver.expect_request(
        "/flowable-rest/service/runtime/process-instances", method="POST"
    ).respond_with_json(
        {
            "message": "no processes deployed with key 'no-such-model'",
            "exception": "FlowableObjectNotFoundException",
        },
        status=400,
    )
    conn = {
        "conn_type": "activiti",
        "host": httpserver.url_for("/flowable-rest/service"),
        "login": "kermit",
        "password": "refused-start-pw-5521",
    }
    env = airflow_env(tmp_path / "home", connections={"refusing_bpm": conn}, dags_folder=DAGS)
    migrate(env)
    result = subprocess.run(
        [sys.executable, str(DAGS / "bpm_failed_start.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = result.stdout + result.stderr
    tail = log[-6000:]
    assert "no processes deployed with key 'no-such-model'" in log, tail
    assert "state=failed" in log, tail
    assert "XCom not found" not in log, tail
    assert "Failed to push an xcom for task operator extra link" not in log, tail
    assert "refused-start-pw-5521" not in log
