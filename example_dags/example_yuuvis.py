"""yuuvis Momentum: start an invoice approval for a scanned document, work its task, export its files.

1. ``pick_document`` reads the DMS object id of the scan held by the intake process
   (business key ``scan-4711``);
2. ``start_approval`` starts ``yuuvis-invoice-approval`` with that id in ``documentId``
   (retry-safe: the business key is the run id);
3. ``wait_for_review`` waits for the "Review invoice" task, ``approve`` claims and completes it;
4. ``wait_until_completed`` waits for the end, ``export_files`` downloads the referenced DMS
   documents under the Airflow Variable ``bpm_demo_output`` (default ``/tmp/airflow-bpm-demo``).

Connection ``yuuvis_demo`` (type ``yuuvis_bpm``): the API gateway URL as host, login and password,
extra ``{"tenant": "demo"}``. The emulator's ``seed_yuuvis_demo`` provides all of it.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

from airflow_bpm_provider.operators.files import BpmDownloadProcessFilesOperator
from airflow_bpm_provider.operators.process import BpmStartProcessOperator
from airflow_bpm_provider.operators.task import BpmCompleteTaskOperator
from airflow_bpm_provider.sensors.process import BpmProcessStateSensor
from airflow_bpm_provider.sensors.task import BpmTaskSensor

CONN_ID = "yuuvis_demo"
INTAKE_PROCESS = "yuuvis-document-intake"
INTAKE_BUSINESS_KEY = "scan-4711"
APPROVAL_PROCESS = "yuuvis-invoice-approval"
REVIEW_TASK = "Review invoice"
DESTINATION = "{{ var.value.get('bpm_demo_output', '/tmp/airflow-bpm-demo') }}/yuuvis"
INSTANCE_ID = "{{ ti.xcom_pull(task_ids='start_approval') }}"

with DAG(
    dag_id="bpm_yuuvis_approval",
    description="yuuvis Momentum BPM engine: approval of a DMS document, then export of its files",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["bpm", "yuuvis", "example"],
) as dag:

    @task
    def pick_document() -> str:
        """The DMS object id of the scan the intake process references in ``documentId``."""
        from airflow_bpm_provider.hooks.registry import get_bpm_hook

        with get_bpm_hook(CONN_ID) as hook:
            intake = hook.find_process_by_business_key(INTAKE_PROCESS, INTAKE_BUSINESS_KEY)
            if intake is None:
                raise ValueError(f"no {INTAKE_PROCESS} process with business key {INTAKE_BUSINESS_KEY!r}")
            scans = [f for f in hook.list_files(intake.id) if f.group == "documentId"]
            if not scans:
                raise ValueError(f"process {intake.id} references no document in documentId")
            return str(scans[0].ref["object_id"])

    start_approval = BpmStartProcessOperator(
        task_id="start_approval",
        bpm_conn_id=CONN_ID,
        process=APPROVAL_PROCESS,
        business_key="invoice-4711-{{ run_id }}",
        variables={
            "documentId": "{{ ti.xcom_pull(task_ids='pick_document') }}",
            "amount": 1250.5,
        },
        start_options={"name": "Invoice 4711"},
    )

    wait_for_review = BpmTaskSensor(
        task_id="wait_for_review",
        bpm_conn_id=CONN_ID,
        process_instance_id=INSTANCE_ID,
        task_name=REVIEW_TASK,
        poke_interval=2,
        timeout=300,
    )

    approve = BpmCompleteTaskOperator(
        task_id="approve",
        bpm_conn_id=CONN_ID,
        process_instance_id=INSTANCE_ID,
        task_name=REVIEW_TASK,
        claim=True,
        variables={"approved": True, "comment": "approved by pipeline {{ run_id }}"},
    )

    wait_until_completed = BpmProcessStateSensor(
        task_id="wait_until_completed",
        bpm_conn_id=CONN_ID,
        process_instance_id=INSTANCE_ID,
        poke_interval=2,
        timeout=300,
    )

    export_files = BpmDownloadProcessFilesOperator(
        task_id="export_files",
        bpm_conn_id=CONN_ID,
        process_instance_ids=INSTANCE_ID,
        destination=DESTINATION,
        manifest_name="manifest.json",
    )

    pick_document() >> start_approval >> wait_for_review >> approve >> wait_until_completed >> export_files
