"""Start a pipeline from BPM events: when an expense approval ends, export its files.

The DAG has no time schedule. It runs on an Asset whose watcher, a BpmProcessEventTrigger in
the triggerer, reports each process of the Questetra app "Expense approval" (id 11 in the
emulator's demo data) that ends as COMPLETED. The export reads the ended process ids from the
asset events that triggered the run: usually one, but Airflow puts events that arrive together
into one run, so every one of them is exported. The export's own outlet Asset (its destination)
gets an event with counts, bytes and the manifest location, for DAGs scheduled on "files exported".

The destination is the environment variable ``BPM_EVENTS_DESTINATION``, else the Airflow
Variable ``bpm_events_destination``, else a folder in the local temp directory. The local folder
is for the demo only: in production use object storage, e.g. ``s3://my-bucket/expenses/`` or
``gs://...`` (with ``dest_conn_id``), since a local folder is on one worker only and is lost with
it. ``make demo`` runs it with a real scheduler, dag-processor and triggerer against the emulator;
against a real system, point the ``questetra_demo`` connection at it and set the destination.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, Variable, task

from airflow_bpm_provider.operators.files import BpmDownloadProcessFilesOperator
from airflow_bpm_provider.triggers.events import BpmProcessEventTrigger

CONN_ID = "questetra_demo"
LOCAL_DESTINATION = os.path.join(tempfile.gettempdir(), "bpm-events")  # the demo's; not for production


def events_destination() -> str:
    """The export's destination URL (also its outlet Asset), read when the DAG is parsed."""
    configured = os.environ.get("BPM_EVENTS_DESTINATION")
    if not configured:
        try:
            configured = Variable.get("bpm_events_destination", default=None)
        except Exception:  # no metadata DB or API reachable while parsing: the local default
            configured = None
    return configured or LOCAL_DESTINATION


DESTINATION = events_destination()

EXPENSE_ENDED = Asset(
    "bpm://questetra_demo/expense-approval/completed",
    watchers=[
        AssetWatcher(
            name="questetra_expense_completed",
            trigger=BpmProcessEventTrigger(
                bpm_conn_id=CONN_ID,
                definition="11",
                states=["COMPLETED"],
                poll_interval=float(os.environ.get("BPM_EVENTS_POLL_INTERVAL", "30")),
            ),
        )
    ],
)

with DAG(
    dag_id="bpm_events_export",
    schedule=[EXPENSE_ENDED],
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    tags=["bpm", "questetra", "events", "example"],
):

    @task
    def ended_processes(triggering_asset_events: Any = None) -> list[str]:
        """The ids of the processes whose end triggered this run."""
        events = triggering_asset_events[EXPENSE_ENDED] if triggering_asset_events else []
        return [event.extra["payload"]["instance"]["id"] for event in events]

    BpmDownloadProcessFilesOperator(
        task_id="export_files",
        bpm_conn_id=CONN_ID,
        process_instance_ids=ended_processes(),
        destination=DESTINATION,  # also the outlet Asset: file://... or s3://...
        layout="{process_id}/{file_name}",
        manifest_name="manifest-{{ run_id | replace(':', '-') | replace('+', '-') }}.json",
    )
