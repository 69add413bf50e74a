"""Seed 000 as one task: export every file of the matching Questetra processes into storage.

Run it with ``make demo`` (emulator) or point the ``questetra_demo`` connection at a real
Questetra BPM Suite. ``destination`` may be any ObjectStoragePath URL: ``file:///...``,
``s3://bucket/prefix`` (with ``dest_conn_id``; tested), or ``gs://`` / ``abfs://`` with their providers.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_bpm_provider.operators.files import BpmDownloadProcessFilesOperator

# One export task per Questetra app (processModelInfoId): 11 is the demo's "Expense approval",
# 12 its "Contract review" (which holds the large file).
APPS = {"expenses": 11, "contracts": 12}

with DAG(
    dag_id="bpm_questetra_file_export",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["bpm", "questetra", "example"],
    params={"started_from": Param("2024-01-01", type="string", description="processes started on or after")},
) as dag:
    for folder, app_id in APPS.items():
        BpmDownloadProcessFilesOperator(
            task_id=f"export_{folder}",
            bpm_conn_id="questetra_demo",
            # Criteria as a mapping: built into criteria XML with every value escaped.
            query={
                "process_model_info_id": app_id,
                "start_date_from": "{{ params.started_from }}",
                "states": ["STARTED", "ENDED", "FAILED"],
            },
            destination="{{ var.value.get('bpm_demo_output', '/tmp/airflow-bpm-demo') }}/questetra/" + folder,
            manifest_name="manifest.json",
        )
