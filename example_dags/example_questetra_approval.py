"""An approval round trip on DataSpider BPM / Questetra: start, wait for the task, approve, wait, export.

The ``dataspider_demo`` connection points at the Workflow API under the ``/userweb`` context
root, as DataSpider BPM serves it; a Questetra Cloud connection works the same way.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_bpm_provider.operators.files import BpmDownloadProcessFilesOperator
from airflow_bpm_provider.operators.process import BpmStartProcessOperator
from airflow_bpm_provider.operators.task import BpmCompleteTaskOperator
from airflow_bpm_provider.sensors.process import BpmProcessStateSensor
from airflow_bpm_provider.sensors.task import BpmTaskSensor

CONN = "dataspider_demo"
STARTED = "{{ ti.xcom_pull(task_ids='start_expense_approval') }}"

with DAG(
    dag_id="bpm_questetra_approval",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["bpm", "questetra", "dataspider", "example"],
) as dag:
    start = BpmStartProcessOperator(
        task_id="start_expense_approval",
        bpm_conn_id=CONN,
        process="11",  # processModelInfoId; "11/0" would name the start node explicitly
        # Questetra has no business key: it becomes the process title, and a retry of this task
        # finds the process its earlier try started instead of starting a second one.
        business_key="Airflow expense {{ run_id }}",
        variables={
            "Purpose": "Cloud costs for {{ dag_run.run_after | ds }}",
            "Amount": 1234.5,
            "Payment method": "card",
            "Expense date": "{{ dag_run.run_after | ds }}",
        },
    )
    approval_open = BpmTaskSensor(
        task_id="wait_for_approval_task",
        bpm_conn_id=CONN,
        process_instance_id=STARTED,
        task_name="Approve",
        poke_interval=2,
        timeout=300,
    )
    approve = BpmCompleteTaskOperator(
        task_id="approve",
        bpm_conn_id=CONN,
        bpm_task_id="{{ ti.xcom_pull(task_ids='wait_for_approval_task') }}",
        claim=True,
        complete_options={"flow": "Approve"},
    )
    completed = BpmProcessStateSensor(
        task_id="wait_for_completion",
        bpm_conn_id=CONN,
        process_instance_id=STARTED,
        target_states=["COMPLETED"],
        poke_interval=2,
        timeout=300,
    )
    export = BpmDownloadProcessFilesOperator(
        task_id="export_files",
        bpm_conn_id=CONN,
        process_instance_ids=[STARTED],
        destination="{{ var.value.get('bpm_demo_output', '/tmp/airflow-bpm-demo') }}/questetra-approval",
        manifest_name="manifest.json",
    )
    start >> approval_open >> approve >> completed >> export
