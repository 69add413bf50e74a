"""WSO2 EI / Activiti / Flowable: run an order approval on a deployed BPMN model, export its files.

1. ``ensure_model`` makes sure ``example_activiti_order.bpmn20.xml`` (the demo's model) is
   deployed. WSO2 EI's REST API cannot deploy (a ``.bar`` goes in inside a Carbon application or
   through the management console), so by default the task only checks that the model is there.
   On Flowable or the Activiti REST webapp, trigger with ``{"deploy_model": true}`` and the task
   uploads the model as a new version, so the DAG ships the model it runs;
2. ``start_order`` starts ``activiti-order-approval`` with typed variables (retry-safe: the
   business key is the run id);
3. ``wait_for_review`` waits for the "Review order" task; ``attach_documents`` stores the invoice
   as a binary process variable and a delivery note as an attachment of that task;
4. ``approve`` claims and completes the task, ``wait_until_completed`` waits for the end, and
   ``export_files`` downloads the instance's files (binary variables and task attachments) to
   ``activiti/`` under the Airflow Variable ``bpm_demo_output`` (default ``/tmp/airflow-bpm-demo``).

Connection ``activiti_demo`` (type ``activiti``): the REST root as host (WSO2 EI
``https://host:9445/bpmn``, Flowable ``http://host:8080/flowable-rest/service``), login (a WSO2
secondary user store login is ``DOMAIN/user``) and password; extra ``tenant_id``, required on
WSO2 EI (``-1234`` for the super tenant) and on multi-tenant engines. The emulator's
``seed_activiti_demo`` provides all of it, playing WSO2 EI.
"""

from __future__ import annotations

from datetime import datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_bpm_provider.operators.files import BpmDownloadProcessFilesOperator
from airflow_bpm_provider.operators.process import BpmStartProcessOperator
from airflow_bpm_provider.operators.task import BpmCompleteTaskOperator
from airflow_bpm_provider.sensors.process import BpmProcessStateSensor
from airflow_bpm_provider.sensors.task import BpmTaskSensor

CONN_ID = "activiti_demo"
PROCESS = "activiti-order-approval"
REVIEW_TASK = "Review order"
# The demo's model ships in the package so the emulator can seed it; point MODEL at your own file.
MODEL = Path(files("airflow_bpm_provider.testing.models").joinpath("example_activiti_order.bpmn20.xml"))
DESTINATION = "{{ var.value.get('bpm_demo_output', '/tmp/airflow-bpm-demo') }}/activiti"
INSTANCE_ID = "{{ ti.xcom_pull(task_ids='start_order') }}"
INVOICE = b"%PDF-1.4\n% invoice for order 4711\n%%EOF\n"
DELIVERY_NOTE = b"Delivery note for order 4711: 3 pallets, ACME GmbH, Hamburg.\n"

with DAG(
    dag_id="bpm_activiti_order",
    description="WSO2 EI / Activiti / Flowable: approve an order on a deployed model, export its files",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["bpm", "activiti", "flowable", "wso2", "example"],
    params={
        "deploy_model": Param(
            False,
            type="boolean",
            description="Upload the model first (Flowable / Activiti REST; WSO2 EI cannot deploy via REST)",
        )
    },
) as dag:

    @task
    def ensure_model(params: dict[str, Any] | None = None) -> str:
        """The id of the deployment holding the order model; uploads it first when asked to."""
        from airflow_bpm_provider.exceptions import BpmNotFound
        from airflow_bpm_provider.hooks.registry import get_bpm_hook

        with get_bpm_hook(CONN_ID) as hook:
            if (params or {}).get("deploy_model"):
                return str(hook.deploy(MODEL)["id"])
            filters: dict[str, Any] = {"key": PROCESS, "latest": True}
            if hook.tenant_id:
                filters["tenantId"] = hook.tenant_id
            definition = next(hook.list_process_definitions(**filters), None)
            if definition is None:
                raise BpmNotFound(
                    f"process definition {PROCESS!r} is not deployed (tenant {hook.tenant_id or 'none'}): "
                    f"deploy {MODEL.name} (on WSO2 EI as a .bar in a Carbon application), or trigger "
                    'with {"deploy_model": true} on Flowable / Activiti',
                    system=hook.system,
                    conn_id=CONN_ID,
                )
            return str(definition["deploymentId"])

    start_order = BpmStartProcessOperator(
        task_id="start_order",
        bpm_conn_id=CONN_ID,
        process=PROCESS,
        business_key="order-4711-{{ run_id }}",
        variables={"customer": "ACME GmbH", "amount": 1250.5, "pallets": 3, "rush": False},
    )

    wait_for_review = BpmTaskSensor(
        task_id="wait_for_review",
        bpm_conn_id=CONN_ID,
        process_instance_id=INSTANCE_ID,
        task_name=REVIEW_TASK,
        poke_interval=2,
        timeout=300,
    )

    @task
    def attach_documents(instance_id: str, review_task_id: str) -> None:
        """The invoice as a binary process variable, the delivery note attached to the review task."""
        from airflow_bpm_provider.hooks.registry import get_bpm_hook

        with get_bpm_hook(CONN_ID) as hook:
            hook.set_variable(instance_id, "invoice", INVOICE)
            hook.add_attachment(review_task_id, "delivery-note.txt", DELIVERY_NOTE, content_type="text/plain")

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

    documents = attach_documents(INSTANCE_ID, "{{ ti.xcom_pull(task_ids='wait_for_review') }}")
    ensure_model() >> start_order >> wait_for_review >> documents >> approve
    approve >> wait_until_completed >> export_files
