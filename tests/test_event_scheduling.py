"""Event-driven scheduling with real Airflow processes: scheduler, dag-processor and triggerer.

One DAG per connection type of the emulator is scheduled on an asset whose watcher is a
BpmProcessEventTrigger. The emulator ends processes; every ended process must become exactly
one asset event and be in exactly one DAG run, also across a triggerer restart during which
another process ends.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from airflow_bpm_provider.testing import Emulator
from airflow_bpm_provider.testing.airflow_services import AirflowServices, wait_for
from airflow_bpm_provider.testing.dag_runner import airflow_env, migrate
from airflow_bpm_provider.testing.engine import COMPLETED, TaskDef

USER, PASSWORD = "events@example.com", "events-password-5150"
KEY = "expense"
POLL = 2

DAG_FILE = """
import json

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher

from airflow_bpm_provider.triggers.events import BpmProcessEventTrigger

for conn_id, definition in json.loads({watched!r}).items():
    asset = Asset(
        f"bpm-events://{{conn_id}}",
        watchers=[AssetWatcher(
            name=f"{{conn_id}}_ended",
            trigger=BpmProcessEventTrigger(bpm_conn_id=conn_id, definition=definition, poll_interval={poll}),
        )],
    )
    start = pendulum.datetime(2024, 1, 1)
    with DAG(f"events_{{conn_id}}", schedule=[asset], start_date=start, catchup=False):
        pass
"""


def connections(url: str) -> dict[str, dict]:
    fields = {"login": USER, "password": PASSWORD, "extra": {"retry_delay": 0.2}}
    return {
        "ev_questetra": {**fields, "conn_type": "questetra", "host": url},
        "ev_bonita": {**fields, "conn_type": "bonita", "host": f"{url}/bonita"},
        "ev_activiti": {**fields, "conn_type": "activiti", "host": f"{url}/flowable-rest/service"},
        "ev_yuuvis": {
            **fields,
            "conn_type": "yuuvis_bpm",
            "host": url,
            "extra": {"tenant": "events", "retry_delay": 0.2},
        },
    }


def ended_ids(services: AirflowServices, conn_id: str) -> list[str]:
    return [event["payload"]["instance"]["id"] for event in services.asset_events(f"bpm-events://{conn_id}")]


def run_ids(services: AirflowServices, conn_id: str) -> list[str]:
    """The process ids of the events each asset-triggered run of the connection's DAG was made from."""
    events = {e["id"]: e["payload"] for e in services.asset_events(f"bpm-events://{conn_id}")}
    runs = services.triggered_runs(f"events_{conn_id}")
    return [events[e]["instance"]["id"] for run in runs.values() for e in run if e in events]


def cursor_covers(services: AirflowServices, conn_id: str, ids: set[str]) -> bool:
    """The watcher's stored cursor knows ``ids``: their events are persisted and acknowledged."""
    stored = services.state_store(f"bpm-events://{conn_id}")
    return any(ids <= set(cursor.get("seen", {})) for cursor in stored.values())


def test_each_ended_process_runs_its_dag_once_across_a_triggerer_restart(tmp_path: Path):
    emu = Emulator.start()
    engine = emu.engine
    engine.add_user(USER, PASSWORD)
    definition = engine.deploy(KEY, "Expense", tasks=[TaskDef("Approve", 1, "approve")])
    other = engine.deploy("other", "Other", tasks=[TaskDef("Check", 1, "check")])
    conns = connections(emu.url)
    watched = {
        "ev_questetra": str(definition.id),
        "ev_bonita": KEY,
        "ev_activiti": KEY,
        "ev_yuuvis": KEY,
    }
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "events_dags.py").write_text(DAG_FILE.format(watched=json.dumps(watched), poll=POLL))
    env = airflow_env(tmp_path / "home", connections=conns, dags_folder=dags)
    migrate(env)
    # Ended before the watchers exist: never reported (a new watcher starts from now).
    before = engine.start(definition, user=USER)
    engine.end(before, COMPLETED)
    running = [engine.start(definition, user=USER) for _ in range(4)]
    unwatched = engine.start(other, user=USER)

    with emu, AirflowServices(env, log_dir=tmp_path / "logs") as services:

        def see_runs(instance: object) -> None:
            """Every DAG gets a run made from the process's event."""
            for conn_id in watched:
                wait_for(
                    lambda c=conn_id: str(instance.id) in run_ids(services, c),
                    timeout=150,
                    what=f"a run of events_{conn_id} for process {instance.id}",
                )

        def end_and_see_runs(instance: object) -> None:
            engine.end(instance, COMPLETED)
            see_runs(instance)

        services.start("dag-processor", "scheduler", "triggerer")
        try:
            # Every watcher has polled once and stored its starting cursor.
            wait_for(
                lambda: all(services.state_store(f"bpm-events://{c}") for c in watched),
                timeout=180,
                what="every watcher's first cursor",
                interval=1,
            )
            engine.end(unwatched, COMPLETED)  # another definition: no event
            end_and_see_runs(running[0])
            end_and_see_runs(running[1])
            first = {str(running[0].id), str(running[1].id)}
            for conn_id in watched:
                wait_for(
                    lambda c=conn_id: cursor_covers(services, c, first),
                    timeout=60,
                    what=f"{conn_id}'s cursor acknowledging the first processes",
                )
            services.stop("triggerer")
            engine.end(running[2], COMPLETED)  # ends while no triggerer runs
            engine.start(definition, user=USER)  # still running: no event
            services.start("triggerer")
            see_runs(running[2])
            end_and_see_runs(running[3])
            time.sleep(3 * POLL)  # a few more polls: nothing may be reported again
            services.check_alive()
        except BaseException:
            print("triggerer log:\n" + services.tail("triggerer", 120))
            print("scheduler log:\n" + services.tail("scheduler", 40))
            raise

        expected = [str(instance.id) for instance in running[:4]]
        for conn_id in watched:
            ids = ended_ids(services, conn_id)
            assert sorted(ids) == sorted(expected), (conn_id, ids)
            events = {e["id"]: e["payload"] for e in services.asset_events(f"bpm-events://{conn_id}")}
            runs = services.triggered_runs(f"events_{conn_id}")
            consumed = [event for run_events in runs.values() for event in run_events]
            # One run per ended process, made from that process's event only.
            assert sorted(len(v) for v in runs.values()) == [1] * len(expected), (conn_id, runs)
            assert sorted(consumed) == sorted(events), (conn_id, runs)
            payload = next(iter(events.values()))
            assert payload["state"] == "COMPLETED"
            assert payload["bpm_conn_id"] == conn_id
