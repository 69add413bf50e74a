"""Demo data for the yuuvis Momentum dialect: an intake process holding scanned documents, and an
invoice approval that the example DAG ``example_yuuvis`` starts for one of them.

Keys and the login carry a ``yuuvis`` prefix so the demos of the other dialects, which share the
engine, never pick these definitions up (or the other way round).
"""

from __future__ import annotations

from typing import Any

from airflow_bpm_provider.testing.demo_quickstart import deploy_quickstart
from airflow_bpm_provider.testing.engine import DataDef, Engine, TaskDef

CONN_ID = "yuuvis_demo"
USER = "yuuvis.clerk"
PASSWORD = "yuuvis-demo-password"
TENANT = "demo"
APPROVAL_KEY = "yuuvis-invoice-approval"
APPROVAL_TASK = "Review invoice"
INTAKE_KEY = "yuuvis-document-intake"
INTAKE_BUSINESS_KEY = "scan-4711"
SCAN_NAME = "invoice-4711.pdf"
ATTACHMENT_NAME = "Lieferschein Übersicht 4711.pdf"


def seed_yuuvis_demo(engine: Engine) -> dict[str, Any]:
    """Deploy the demo definitions and start the intake process once; safe to call again."""
    with engine.lock:
        engine.add_user(USER, PASSWORD)
        if not any(d.key == APPROVAL_KEY for d in engine.definitions.values()):
            engine.deploy(
                APPROVAL_KEY,
                "Invoice approval (yuuvis demo)",
                category="http://www.yuuvis.com/processdef",
                tasks=[TaskDef(APPROVAL_TASK, 1, "reviewInvoice", editable=[2, 3])],
                data=[
                    DataDef(1, "amount", "DECIMAL"),
                    DataDef(2, "approved", "BOOLEAN"),
                    DataDef(3, "comment", "STRING"),
                ],
            )
        intake = next(
            (
                i
                for i in engine.instances.values()
                if i.definition.key == INTAKE_KEY and i.business_key == INTAKE_BUSINESS_KEY
            ),
            None,
        )
        if intake is None:
            definition = next((d for d in engine.definitions.values() if d.key == INTAKE_KEY), None)
            if definition is None:
                definition = engine.deploy(
                    INTAKE_KEY,
                    "Document intake (yuuvis demo)",
                    category="http://www.yuuvis.com/processdef",
                    tasks=[TaskDef("Classify document", 1, "classifyDocument")],
                    data=[DataDef(1, "documentId", "FILE"), DataDef(2, "attachments", "FILE")],
                )
            intake = engine.start(definition, user=USER, title="Scan 4711", business_key=INTAKE_BUSINESS_KEY)
            engine.add_file(intake, "documentId", SCAN_NAME, size=180_000, content_type="application/pdf")
            engine.add_file(
                intake,
                "attachments",
                ATTACHMENT_NAME,
                content=b"%PDF-1.4\n% delivery note 4711\n%%EOF\n",
                content_type="application/pdf",
            )
        documents = [str(stored.id) for _, stored in intake.files()]
        deploy_quickstart(engine)
    return {
        "conn_id": CONN_ID,
        "login": USER,
        "password": PASSWORD,
        "tenant": TENANT,
        "approval_key": APPROVAL_KEY,
        "approval_task": APPROVAL_TASK,
        "intake_key": INTAKE_KEY,
        "intake_business_key": INTAKE_BUSINESS_KEY,
        "intake_instance_id": str(intake.id),
        "document_ids": documents,
    }


def yuuvis_demo_connection(url: str) -> dict[str, Any]:
    """The ``yuuvis_demo`` connection for an emulator at ``url`` (AIRFLOW_CONN_* JSON fields)."""
    return {
        "conn_type": "yuuvis_bpm",
        "host": url,
        "login": USER,
        "password": PASSWORD,
        # documentId is the documented default; the Quickstart's expense keeps its receipt's id in receipt
        "extra": {"tenant": TENANT, "retry_delay": 0.2, "document_variables": ["documentId", "receipt"]},
    }
