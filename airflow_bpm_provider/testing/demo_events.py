"""The event part of ``make demo``: processes end in the emulator, ``bpm_events_export`` runs once for each.

Asset watchers run only in a triggerer, so this part starts Airflow's own processes (api-server,
dag-processor, scheduler, triggerer) on 127.0.0.1 for a bounded time, instead of
``airflow dags test``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow_bpm_provider.operators.files import destination_uri
from airflow_bpm_provider.testing.airflow_services import AirflowServices, api_server_env, free_port, wait_for
from airflow_bpm_provider.testing.engine import COMPLETED, Engine

DAG_ID = "bpm_events_export"
WATCHED = "bpm://questetra_demo/expense-approval/completed"
EXPENSE_APP = 11
PROCESSES = 3
FINISHED = ("success", "failed")  # a run in one of these is done; only "success" is a good outcome
SUCCEEDED = "success"


def start_expenses(engine: Engine, user: str, count: int = PROCESSES) -> list[Any]:
    """Expense approvals waiting for their approver, each with one receipt."""
    definition = engine.definition(EXPENSE_APP)
    started = []
    for number in range(1, count + 1):
        instance = engine.start(definition, user=user, title=f"Event demo expense {number}")
        engine.add_file(
            instance, 3, f"receipt-{number}.txt", content=f"receipt {number}\n".encode(), replace=True
        )
        started.append(instance)
    return started


def run_events_demo(
    engine: Engine, user: str, env: Mapping[str, str], output: Path, *, timeout: float = 420
) -> dict[str, Any]:
    """End a few processes; return each run of the DAG with the processes it exported."""
    port = free_port()
    env = {
        **env,
        **api_server_env(port),
        "BPM_EVENTS_DESTINATION": str(output / "events"),
        "BPM_EVENTS_POLL_INTERVAL": "2",
    }
    exported = destination_uri(env["BPM_EVENTS_DESTINATION"])
    instances = start_expenses(engine, user)
    deadline = time.monotonic() + timeout
    left = lambda: max(5.0, deadline - time.monotonic())  # noqa: E731
    home = Path(env["AIRFLOW_HOME"])
    with AirflowServices(env, log_dir=home / "service-logs") as services:
        services.start("api-server", "dag-processor", "scheduler", "triggerer")
        try:
            services.unpause(DAG_ID, timeout=left())
            wait_for(lambda: services.state_store(WATCHED), timeout=left(), what="the watcher's first poll")
            for instance in instances:
                engine.end(instance, COMPLETED)
                wait_for(
                    lambda i=instance: str(i.id) in _run_processes(services),
                    timeout=left(),
                    what=f"the DAG run for process {instance.id}",
                )
            wait_for(
                lambda: all(s in FINISHED for s in services.run_states(DAG_ID).values()),
                timeout=left(),
                what="the runs to finish",
            )
        except TimeoutError as exc:
            return {"ok": False, "error": str(exc), "runs": _runs(services), "logs": str(services.log_dir)}
        runs = _runs(services)
        error = runs_error(runs)
        return {
            "ok": error is None,
            **({"error": error} if error else {}),
            "ended": [str(i.id) for i in instances],
            "runs": runs,
            "exports": [e["extra"] for e in services.asset_events(exported)],
            "logs": str(services.log_dir),
        }


def runs_error(runs: list[Mapping[str, Any]]) -> str | None:
    """Why the finished runs are not a success (None when every one succeeded, and there is one)."""
    if not runs:
        return "no run of the DAG"
    failed = [run["run_id"] for run in runs if run.get("state") != SUCCEEDED]
    if failed:
        return f"{len(failed)} of {len(runs)} run(s) did not succeed: {', '.join(failed)}"
    return None


def _run_processes(services: AirflowServices) -> list[str]:
    return [pid for run in _runs(services) for pid in run["processes"]]


def _runs(services: AirflowServices) -> list[dict[str, Any]]:
    events = {e["id"]: e["payload"] for e in services.asset_events(WATCHED)}
    states = services.run_states(DAG_ID)
    return [
        {
            "run_id": run_id,
            "state": states.get(run_id),
            "processes": [events[e]["instance"]["id"] for e in event_ids if e in events],
        }
        for run_id, event_ids in services.triggered_runs(DAG_ID).items()
    ]


def print_events_summary(result: Mapping[str, Any]) -> None:
    print("\nEvent-driven runs (scheduler + dag-processor + triggerer, asset watcher on Questetra):")
    if not result.get("ok"):
        print(f"  FAILED: {result.get('error')} (logs: {result.get('logs')})")
    else:
        print(f"  processes ended in the emulator: {', '.join(result['ended'])}")
    for run in result.get("runs", []):
        print(f"  {run['state'] or '?':<8} {run['run_id']}  processes {', '.join(run['processes'])}")
    for extra in result.get("exports", []):
        print(
            f"  export asset event: {extra.get('files')} file(s), {extra.get('bytes')} bytes, "
            f"processes {', '.join(extra.get('processes') or [])}, manifest {extra.get('manifest')}"
        )
