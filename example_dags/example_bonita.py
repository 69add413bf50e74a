"""Bonita: start an expense report case, review it, wait for its end and export its documents.

1. ``start_expense`` starts the latest enabled version of ``bonita-expense-report`` through its
   instantiation contract (retry-safe: the business key, kept in the ``businessKey`` contract
   input, is the run id);
2. ``wait_for_review`` waits for the "Review expenses" task, ``approve`` assigns it to the
   connection's user and executes it with the task's contract inputs;
3. ``wait_until_completed`` waits for the case to end (it then lives on as an archived case);
4. ``export_documents`` downloads the latest version of each document of the case to
   ``<bpm_demo_output>/bonita`` (Airflow Variable ``bpm_demo_output``, else the environment
   variable ``BPM_DEMO_OUTPUT``, else ``/tmp/airflow-bpm-demo``); the external ``terms`` document,
   which Bonita only links to, is listed in the manifest (``manifest.json``) with its URL.

Connection ``bonita_demo`` (type ``bonita``): the Bonita URL with its context root as host
(``http://localhost:8080/bonita``), login and password, extra
``{"business_key_variable": "businessKey"}``. The emulator's ``seed_bonita_demo`` provides it all.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from airflow_bpm_provider.operators.files import BpmDownloadProcessFilesOperator
from airflow_bpm_provider.operators.process import BpmStartProcessOperator
from airflow_bpm_provider.operators.task import BpmCompleteTaskOperator
from airflow_bpm_provider.sensors.process import BpmProcessStateSensor
from airflow_bpm_provider.sensors.task import BpmTaskSensor

CONN_ID = "bonita_demo"
PROCESS = "bonita-expense-report"
REVIEW_TASK = "Review expenses"
DEFAULT_OUTPUT = os.environ.get("BPM_DEMO_OUTPUT", "/tmp/airflow-bpm-demo")
DESTINATION = "{{ var.value.get('bpm_demo_output', '" + DEFAULT_OUTPUT + "') }}/bonita"
CASE_ID = "{{ ti.xcom_pull(task_ids='start_expense') }}"

with DAG(
    dag_id="bpm_bonita_expense",
    description="Bonita: expense report case with contracts, then export of its documents",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["bpm", "bonita", "example"],
) as dag:
    start_expense = BpmStartProcessOperator(
        task_id="start_expense",
        bpm_conn_id=CONN_ID,
        process=PROCESS,
        business_key="expense-{{ run_id }}",
        variables={
            "employee": "Walter Bates",
            "amount": 87.3,
            "itemCount": 2,
            "dueDate": "{{ dag_run.run_after | ds }}",
        },
    )

    wait_for_review = BpmTaskSensor(
        task_id="wait_for_review",
        bpm_conn_id=CONN_ID,
        process_instance_id=CASE_ID,
        task_name=REVIEW_TASK,
        poke_interval=2,
        timeout=300,
    )

    approve = BpmCompleteTaskOperator(
        task_id="approve",
        bpm_conn_id=CONN_ID,
        process_instance_id=CASE_ID,
        task_name=REVIEW_TASK,
        claim=True,
        variables={"approved": True, "comment": "approved by pipeline {{ run_id }}"},
    )

    wait_until_completed = BpmProcessStateSensor(
        task_id="wait_until_completed",
        bpm_conn_id=CONN_ID,
        process_instance_id=CASE_ID,
        poke_interval=2,
        timeout=300,
    )

    export_documents = BpmDownloadProcessFilesOperator(
        task_id="export_documents",
        bpm_conn_id=CONN_ID,
        process_instance_ids=CASE_ID,
        destination=DESTINATION,
        manifest_name="manifest.json",
    )

    start_expense >> wait_for_review >> approve >> wait_until_completed >> export_documents
