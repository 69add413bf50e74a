"""Demo data for the Bonita dialect: an expense process with a contract and documents, a process
without a contract, and two cases to look at (one open, one archived).

The open case shows every kind of document: ``policy`` has three versions, ``receipt`` one, and
``terms`` is external (Bonita only keeps its URL). The example DAG ``bpm_bonita_expense`` starts a new
expense case; every new case gets the ``policy`` and ``terms`` documents the definition declares.

Process names carry a ``bonita-`` prefix so the demos of the other dialects, which share the
engine, never pick these definitions up (or the other way round).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from airflow_bpm_provider.testing.demo_quickstart import deploy_quickstart
from airflow_bpm_provider.testing.dialects.bonita_entries import (
    InitialDocument,
    add_document_version,
    document_item,
    state_for,
)
from airflow_bpm_provider.testing.engine import DataDef, Engine, Instance, ProcessDefinition, TaskDef

CONN_ID = "bonita_demo"
USER = "walter.bates"
PASSWORD = "bpm"
OTHER_USER = "helen.kelly"
TOKEN = "bonita-demo-bearer-token"
EXPENSE = "bonita-expense-report"
NOTIFICATION = "bonita-notification"
REVIEW_TASK = "Review expenses"
ACK_TASK = "Acknowledge"
BUSINESS_KEY_VARIABLE = "businessKey"
OPEN_KEY = "EXP-DEMO-1"
DONE_KEY = "EXP-DEMO-0"
TERMS_URL = "https://www.example.com/travel/terms-2025.pdf"
POLICY_SIZE = 300 * 1024  # generated lazily: no memory cost

EXPENSE_DATA = [
    DataDef(0, "employee", "STRING", required=True),
    DataDef(1, "amount", "DECIMAL", required=True, minimum=0),
    DataDef(2, BUSINESS_KEY_VARIABLE, "STRING"),
    DataDef(3, "dueDate", "DATE"),
    DataDef(4, "itemCount", "DECIMAL", vendor_type="java.lang.Long"),
    DataDef(5, "approved", "BOOLEAN", required=True),
    DataDef(6, "comment", "STRING"),
    DataDef(7, "receipt", "FILE"),
    DataDef(8, "policy", "FILE"),
    DataDef(9, "terms", "FILE"),
]
EXPENSE_CONTRACT = ["employee", "amount", BUSINESS_KEY_VARIABLE, "dueDate", "itemCount", "receipt"]


def _definitions(engine: Engine, key: str) -> list[ProcessDefinition]:
    return sorted((d for d in engine.definitions.values() if d.key == key), key=lambda d: d.version)


def _deploy_expense(engine: Engine) -> tuple[ProcessDefinition, ProcessDefinition]:
    """Version 1.0 (disabled) and 2.0 (enabled): a name alone must find 2.0."""
    versions = _definitions(engine, EXPENSE)
    while len(versions) < 2:
        engine.deploy(
            EXPENSE,
            "Expense report (Bonita demo)",
            category="Bonita demo",
            tasks=[TaskDef(REVIEW_TASK, 1, "reviewExpenses", editable=[5, 6])],
            data=[replace(d, choices=list(d.choices)) for d in EXPENSE_DATA],
        )
        versions = _definitions(engine, EXPENSE)
    old, current = versions[0], versions[-1]
    old.enabled = False
    state = state_for(engine)
    for definition in (old, current):
        state.set_contract(definition, EXPENSE_CONTRACT)
        state.initial_documents[definition.id] = [
            InitialDocument("policy", "expense-policy.pdf", size=POLICY_SIZE, content_type="application/pdf"),
            InitialDocument("terms", "terms-2025.pdf", content_type="application/pdf", url=TERMS_URL),
        ]
    return old, current


def _deploy_notification(engine: Engine) -> ProcessDefinition:
    """A process without a contract: started through POST /API/bpm/case with variables."""
    existing = _definitions(engine, NOTIFICATION)
    if existing:
        return existing[-1]
    definition = engine.deploy(
        NOTIFICATION,
        "Notification (Bonita demo)",
        category="Bonita demo",
        tasks=[TaskDef(ACK_TASK, 1, "acknowledge")],
        data=[
            DataDef(0, "message", "STRING"),
            DataDef(1, "priority", "DECIMAL", vendor_type="java.lang.Long"),
        ],
    )
    state_for(engine).set_contract(definition, [])
    return definition


def _case(
    engine: Engine, definition: ProcessDefinition, business_key: str, amount: float
) -> tuple[Instance, bool]:
    for instance in engine.instances.values():
        if instance.definition.key == EXPENSE and instance.business_key == business_key:
            return instance, False
    instance = engine.start(
        definition,
        user=USER,
        business_key=business_key,
        values={
            "employee": "Walter Bates",
            "amount": amount,
            BUSINESS_KEY_VARIABLE: business_key,
            "itemCount": 3,
        },
    )
    return instance, True


def seed_bonita_demo(engine: Engine) -> dict[str, Any]:
    """Deploy the demo processes and create the demo cases; safe to call again."""
    state = state_for(engine)
    with engine.lock:
        for login in (USER, OTHER_USER):
            if login not in engine.users:
                engine.add_user(login, PASSWORD)
        if hasattr(engine, "add_token"):
            engine.add_token(TOKEN, USER)
        old, expense = _deploy_expense(engine)
        notification = _deploy_notification(engine)

        open_case, created = _case(engine, expense, OPEN_KEY, 142.5)
        if created:
            policy = document_item(engine, open_case, "policy")
            for version, size in enumerate((120_000, 150_000, POLICY_SIZE), start=1):
                add_document_version(
                    engine, state, open_case, policy, f"expense-policy-v{version}.pdf", size=size,
                    content_type="application/pdf", description=f"policy, revision {version}",
                )  # fmt: skip
            add_document_version(
                engine, state, open_case, document_item(engine, open_case, "receipt"), "taxi-receipt.png",
                content=b"\x89PNG\r\n\x1a\n demo receipt", content_type="image/png",
            )  # fmt: skip
            add_document_version(
                engine,
                state,
                open_case,
                document_item(engine, open_case, "terms"),
                "terms-2025.pdf",
                url=TERMS_URL,
            )

        done_case, created = _case(engine, expense, DONE_KEY, 18.0)
        if created:
            receipt = document_item(engine, done_case, "receipt")
            add_document_version(
                engine, state, done_case, receipt, "lunch.txt", content=b"lunch, first scan\n"
            )
            add_document_version(
                engine, state, done_case, receipt, "lunch.txt", content=b"lunch, 18.00 EUR\n"
            )
            (review,) = engine.open_tasks(done_case.id)
            engine.claim(review, OTHER_USER)
            engine.complete(review, user=OTHER_USER, values={"approved": True, "comment": "fine"})

        open_tasks = engine.open_tasks(open_case.id, REVIEW_TASK)
        deploy_quickstart(engine)
    return {
        "conn_id": CONN_ID,
        "user": USER,
        "password": PASSWORD,
        "token": TOKEN,
        "business_key_variable": BUSINESS_KEY_VARIABLE,
        "processes": {
            "expense": EXPENSE,
            "expense_id": str(expense.id),
            "expense_disabled_id": str(old.id),
            "notification": NOTIFICATION,
            "notification_id": str(notification.id),
        },
        "cases": {"open": str(open_case.id), "completed": str(done_case.id)},
        "review_task": str(open_tasks[0].id) if open_tasks else None,
        "files": {
            "open": ["expense-policy-v3.pdf", "taxi-receipt.png", "terms-2025.pdf"],
            "completed": ["lunch.txt"],
        },
    }


def bonita_demo_connection(url: str) -> dict[str, Any]:
    """The ``bonita_demo`` connection for an emulator at ``url`` (AIRFLOW_CONN_* JSON fields)."""
    return {
        "conn_type": "bonita",
        "host": f"{url.rstrip('/')}/bonita",
        "login": USER,
        "password": PASSWORD,
        "extra": {"business_key_variable": BUSINESS_KEY_VARIABLE, "retry_delay": 0.2},
    }
