"""Deferral with real Airflow: ``airflow dags test`` runs each trigger in-process, then resumes the task.

The emulator's people work a task only after its process has been looked at three more times, so
the third look is always a trigger's poll: every wait in the DAG defers, and then succeeds.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from airflow_bpm_provider.testing import Emulator
from airflow_bpm_provider.testing.dag_runner import airflow_env, migrate, run_dag
from airflow_bpm_provider.testing.engine import COMPLETED, TaskDef

DAGS = Path(__file__).parent / "dags"
USER, PASSWORD = "probe@example.com", "probe-password-5150"
VIEW = "/API/OR/ProcessInstance/view"


class WatchedEmulator(Emulator):
    """Counts how often each process instance was read (Questetra's view call)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.views: Counter[str] = Counter()

    def app(self) -> Any:
        inner = super().app()

        async def watching(scope: dict, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] == VIEW:
                for pid in parse_qs(scope["query_string"].decode()).get("processInstanceId", []):
                    self.views[pid] += 1
            await inner(scope, receive, send)

        return watching


def people_at_work(emu: WatchedEmulator, stop: threading.Event) -> None:
    """Complete each open task once its process has been read three times since the task was seen."""
    seen_at: dict[int, int] = {}
    while not stop.wait(0.1):
        for task in emu.engine.open_tasks():
            pid = str(task.instance.id)
            views = emu.views[pid]
            if seen_at.setdefault(task.id, views) + 3 <= views:
                emu.engine.complete(task, user=USER)


def test_every_wait_defers_and_resumes_under_airflow_dags_test(tmp_path):
    emu = WatchedEmulator.start()
    stop = threading.Event()
    try:
        engine = emu.engine
        engine.add_user(USER, PASSWORD)
        one = engine.deploy("one-step", "One step", tasks=[TaskDef("Review", 1, "review")])
        two = engine.deploy(
            "two-steps", "Two steps", tasks=[TaskDef("Review", 1, "review"), TaskDef("Approve", 2, "approve")]
        )
        threading.Thread(target=people_at_work, args=(emu, stop), daemon=True).start()
        connection = {"conn_type": "questetra", "host": emu.url, "login": USER, "password": PASSWORD}
        env = airflow_env(
            tmp_path / "home",
            connections={"probe_bpm": connection},
            dags_folder=DAGS,
            extra={"AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "true"},
        )
        migrate(env)
        result = run_dag(
            "bpm_defer_probe",
            env,
            log_dir=tmp_path / "logs",
            conf={"one_step": str(one.id), "two_steps": str(two.id)},
            timeout=600,
        )
    finally:
        stop.set()
        emu.stop()

    log = result.log_path.read_text(errors="replace")
    assert result.ok, result.tail(80)
    deferred = re.findall(r"Pausing task as DEFERRED\..*?task_id=(\w+)", log)
    assert deferred == ["start_and_wait", "wait_for_approve", "wait_until_completed"], result.tail(80)
    assert log.count("[DAG TEST] Trigger completed") == 3
    assert [i.state for i in engine.instances.values()] == [COMPLETED, COMPLETED]
    assert "probe-password-5150" not in log
