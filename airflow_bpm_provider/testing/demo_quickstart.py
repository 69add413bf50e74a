"""The README Quickstart's "expense approval", deployed the same way on every dialect.

A user writes ``process="expense-approval"``, ``variables={"amount": ..., "purpose": ...}`` to
start it, waits for the task ``"Approve"`` and completes it with ``{"approved": True}``; then the
process has completed, on every system. What each system calls the process differs, so the name
sits where that system looks for it:

- Bonita (process name), Activiti / Flowable / WSO2 EI and yuuvis (``processDefinitionKey``) share
  one definition keyed ``expense-approval``. It belongs to WSO2's super tenant ``-1234``, which
  the demo connections of the Activiti family name (WSO2 requires a tenant to start by key);
  Bonita and yuuvis do not filter by tenant.
- Questetra / DataSpider start a process at its first human task, which the starter fills in, so
  their app (named ``expense-approval``, found by its name) opens with "Apply" (amount, purpose)
  and then offers "Approve". Its own key keeps it apart from the shared definition.

Each process gets one receipt when it starts, so the Quickstart's export has a file to copy.
"""

from __future__ import annotations

from dataclasses import replace

from airflow_bpm_provider.testing.engine import DataDef, Engine, ProcessDefinition, TaskDef

PROCESS = "expense-approval"
APPROVE_TASK = "Approve"
TENANT = "-1234"
BUSINESS_KEY_VARIABLE = "businessKey"  # Bonita keeps the business key in a variable
QUESTETRA_KEY = "questetra-quickstart-expense-approval"
QUESTETRA_APP_ID = 14  # a fixed app id below the engine's counter, like the other Questetra demo apps
RECEIPT_NAME = "receipt.txt"
RECEIPT = b"Quickstart receipt: cloud costs, 1234.50\n"

_DATA = [
    DataDef(0, "amount", "DECIMAL", required=True, minimum=0),
    DataDef(1, "purpose", "STRING", required=True),
    DataDef(2, "approved", "BOOLEAN"),
    DataDef(3, "receipt", "FILE"),
]


def _existing(engine: Engine, key: str) -> ProcessDefinition | None:
    return next((d for d in engine.definitions.values() if d.key == key), None)


def deploy_quickstart(engine: Engine) -> ProcessDefinition:
    """The definition Bonita, Activiti / Flowable / WSO2 EI and yuuvis start; deployed once."""
    from airflow_bpm_provider.testing.dialects.bonita_entries import state_for

    with engine.lock:
        definition = _existing(engine, PROCESS)
        if definition is None:
            definition = engine.deploy(
                PROCESS,
                "Expense approval (Quickstart)",
                category="Quickstart",
                tasks=[TaskDef(APPROVE_TASK, 1, "approve", editable=[2])],
                data=[
                    *(replace(d) for d in _DATA),
                    DataDef(4, BUSINESS_KEY_VARIABLE, "STRING"),
                ],
            )
            definition.tenant_id = TENANT
            definition.start_files = [("receipt", RECEIPT_NAME, RECEIPT, "text/plain")]
            state_for(engine).set_contract(definition, ["amount", "purpose", BUSINESS_KEY_VARIABLE])
    return definition


def deploy_questetra_quickstart(engine: Engine) -> ProcessDefinition:
    """The Questetra / DataSpider app ``expense-approval``: "Apply" by the starter, then "Approve"."""
    with engine.lock:
        definition = _existing(engine, QUESTETRA_KEY)
        if definition is None:
            definition = engine.deploy(
                QUESTETRA_KEY,
                PROCESS,
                definition_id=QUESTETRA_APP_ID,
                category="Quickstart",
                tasks=[
                    TaskDef("Apply", 0, "apply", editable=[0, 1]),
                    TaskDef(APPROVE_TASK, 1, "approve", editable=[2]),
                ],
                data=[replace(d) for d in _DATA],
            )
            definition.start_files = [("receipt", RECEIPT_NAME, RECEIPT, "text/plain")]
    return definition
