"""Deterministic demo data: apps, processes in every state, and files that test a downloader.

The files include non-ASCII names, names that must not be trusted as paths (``../escape.txt``,
``CON.txt``), duplicate names within one process, an empty file and one large file whose
content is generated while it streams (it costs no memory). The same call on a fresh engine
always yields the same ids, timestamps and bytes.
"""

from __future__ import annotations

import struct
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_bpm_provider.testing.demo_quickstart import deploy_questetra_quickstart
from airflow_bpm_provider.testing.engine import (
    FAILED,
    Choice,
    DataDef,
    Engine,
    Instance,
    TaskDef,
)

DEMO_USER = "demo@example.com"
DEMO_PASSWORD = "demo-api-password"
DEMO_TOKEN = "demo-api-token"
APPROVER = "approver@example.com"
APPROVER_PASSWORD = "approver-api-password"
BASE_TIME = datetime(2024, 4, 1, 0, 30, tzinfo=UTC)  # 09:30 in Tokyo


def _pdf(title: str) -> bytes:
    body = f"%PDF-1.4\n% airflow-bpm-provider demo: {title}\n".encode()
    return body + b"0" * (1200 - len(body)) + b"\n%%EOF\n"


def _png() -> bytes:
    """A valid 1x1 PNG, built here so the demo needs no binary fixture."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x2a\x7f\xd4")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _deploy_models(engine: Engine) -> dict[str, Any]:
    # Fixed app ids (below the engine's counter, which starts at 101) so example DAGs can name them.
    # Key apart from the Quickstart's shared "expense-approval" definition (demo_quickstart.py):
    # Questetra names an app by id and name, never by key, so the key only has to be unique.
    expense = engine.deploy(
        "questetra-expense-approval",
        "Expense approval",
        definition_id=11,
        category="Finance",
        tasks=[
            TaskDef("Apply", 0, "apply", editable=[0, 1, 2, 3, 4, 5]),
            TaskDef(
                "Approve",
                1,
                "approve",
                choices=[Choice(21, "Approve", "complete"), Choice(22, "Reject", "fail")],
                candidate_groups=[(1, "Finance")],
            ),
        ],
        data=[
            DataDef(0, "Purpose", "STRING", required=True),
            DataDef(1, "Amount", "DECIMAL", required=True, minimum=0, maximum=1_000_000),
            DataDef(
                2,
                "Payment method",
                "SELECT",
                choices=[("card", "Corporate card"), ("cash", "Cash"), ("transfer", "Bank transfer")],
            ),
            DataDef(3, "Receipts", "FILE"),
            DataDef(4, "Approver", "USER"),
            DataDef(5, "Expense date", "DATE"),
        ],
    )
    expense.description = "Apply for reimbursement; a manager approves or rejects."
    contract = engine.deploy(
        "contract-review",
        "Contract review",
        definition_id=12,
        category="Legal",
        tasks=[
            TaskDef("Draft", 0, "draft", editable=[0, 1, 2]),
            TaskDef(
                "Review",
                2,
                "review",
                editable=[2],
                choices=[Choice(31, "Accept"), Choice(32, "Reject", "fail")],
            ),
            TaskDef("Sign", 4, "sign", editable=[3]),
        ],
        data=[
            DataDef(0, "Counterparty", "STRING", required=True),
            DataDef(1, "Contract", "FILE"),
            DataDef(2, "Attachments", "FILE"),
            DataDef(3, "Signed at", "DATETIME"),
        ],
    )
    contract.description = "Draft, review and sign a contract with its attachments."
    leave = engine.deploy(
        "leave-request",
        "Leave request",
        definition_id=13,
        category="HR",
        tasks=[
            TaskDef("Request", 0, "request", editable=[0, 1, 2]),
            TaskDef(
                "Confirm",
                1,
                "confirm",
                choices=[Choice(41, "Confirm", "complete"), Choice(42, "Decline", "fail")],
            ),
        ],
        data=[
            DataDef(0, "Reason", "STRING"),
            DataDef(1, "First day", "DATE", required=True),
            DataDef(2, "Days", "DECIMAL", minimum=0.5, maximum=30),
        ],
    )
    leave.description = "Ask for days off."
    quickstart = deploy_questetra_quickstart(engine)
    for definition in (expense, contract, leave, quickstart):
        definition.deployed_at = BASE_TIME - timedelta(days=30)
    return {"expense": expense, "contract": contract, "leave": leave, "quickstart": quickstart}


def _act(
    engine: Engine,
    instance: Instance,
    user: str,
    values: dict[int, Any] | None = None,
    choice: int | None = None,
) -> None:
    """The user accepts the process's open task and completes it."""
    task = engine.open_tasks(instance.id)[0]
    engine.claim(task, user)
    engine.complete(task, user=user, values=values, choice=choice)


def _retime(engine: Engine, instance: Instance, started: datetime) -> None:
    """Give the instance and its tasks fixed, plausible times (two hours per step)."""
    instance.started_at = started
    tasks = sorted((t for t in engine.tasks.values() if t.instance is instance), key=lambda t: t.id)
    moment = started
    for task in tasks:
        task.created_at = moment
        task.claimed_at = moment + timedelta(minutes=10) if task.assignee else None
        if task.ended_at is not None:
            task.ended_at = moment + timedelta(hours=1)
        moment += timedelta(hours=2)
    if instance.ended:
        instance.ended_at = max([started, *(t.ended_at for t in tasks if t.ended_at)]) + timedelta(minutes=1)
    for _, stored in instance.files():
        stored.created_at = started


def seed_demo(
    engine: Engine, *, large_file_mb: int = 24, user: str = DEMO_USER, password: str = DEMO_PASSWORD
) -> dict[str, Any]:
    """Fill ``engine`` with the demo and return what tests and the demo script can check against."""
    engine.add_user(user, password)
    engine.add_user(APPROVER, APPROVER_PASSWORD)
    engine.add_token(DEMO_TOKEN, user)
    models = _deploy_models(engine)
    expense, contract, leave = models["expense"], models["contract"], models["leave"]
    instances: dict[str, Instance] = {}

    def expense_values(purpose: str, amount: str, method: str, day: str) -> dict[int, Any]:
        return {0: purpose, 1: amount, 2: [method], 4: APPROVER, 5: day}

    running = instances["expense_running"] = engine.start(expense, user=user, title="出張 大阪 / taxi")
    engine.add_file(running, 3, "見積書.pdf", content=_pdf("mitsumorisho"), content_type="application/pdf")
    engine.add_file(running, 3, "receipt.png", content=_png(), content_type="image/png")
    _act(engine, running, user, expense_values("Taxi to the client", "4800", "card", "2024-04-01"))

    approved = instances["expense_approved"] = engine.start(expense, user=user, title="Conference tickets")
    engine.add_file(
        approved,
        3,
        "Übersicht ä.txt",
        content="Übersicht: Tickets für 2 Personen\n".encode(),
        content_type="text/plain",
    )
    engine.add_file(approved, 3, "../escape.txt", content=b"a name that tries to leave its folder\n")
    engine.add_file(approved, 3, "empty.txt", content=b"", content_type="text/plain")
    _act(engine, approved, user, expense_values("PyCon tickets", "56000.50", "transfer", "2024-04-02"))
    _act(engine, approved, APPROVER, choice=21)

    rejected = instances["expense_rejected"] = engine.start(expense, user=user, title="Team dinner")
    engine.add_file(
        rejected, 3, "CON.txt", content=b"a reserved device name on Windows\n", content_type="text/plain"
    )
    engine.add_file(rejected, 3, "receipt.png", content=_png(), content_type="image/png")
    _act(engine, rejected, user, expense_values("Dinner with the team", "120000", "cash", "2024-04-03"))
    _act(engine, rejected, APPROVER, choice=22)

    draft = instances["expense_draft"] = engine.start(expense, user=user, title="Draft: office chairs")
    engine.claim(engine.open_tasks(draft.id)[0], user)

    review = instances["contract_review"] = engine.start(
        contract, user=user, title="Q3/Q4 supplier agreement"
    )
    engine.add_file(review, 1, "contract.pdf", content=_pdf("contract"), content_type="application/pdf")
    engine.add_file(
        review, 2, "contract.pdf", content=_pdf("contract, annotated"), content_type="application/pdf"
    )
    engine.add_file(review, 2, "notes.txt", content=b"first notes\n", content_type="text/plain")
    engine.add_file(review, 2, "notes.txt", content=b"second notes, same name\n", content_type="text/plain")
    _act(engine, review, user, {0: "ACME Supplies Ltd."})
    engine.claim(engine.open_tasks(review.id)[0], APPROVER)

    signed = instances["contract_signed"] = engine.start(contract, user=user, title="Cleaning services 2024")
    if large_file_mb > 0:
        engine.add_file(
            signed,
            1,
            "scan-archive.bin",
            size=large_file_mb * 1024 * 1024,
            content_type="application/octet-stream",
        )
    engine.add_file(signed, 2, "signed.pdf", content=_pdf("signed"), content_type="application/pdf")
    _act(engine, signed, user, {0: "CleanCo K.K."})
    _act(engine, signed, APPROVER, choice=31)
    _act(engine, signed, user, {3: datetime(2024, 4, 8, 1, 0, tzinfo=UTC)})

    holiday = instances["leave_completed"] = engine.start(leave, user=user, title="Summer holiday")
    _act(engine, holiday, user, {0: "Family trip", 1: "2024-08-13", 2: "3"})
    _act(engine, holiday, APPROVER, choice=41)

    stopped = instances["leave_stopped"] = engine.start(leave, user=user, title="Cancelled leave")
    engine.end(stopped, FAILED, reason="stopped by the applicant")

    for day, instance in enumerate(instances.values()):
        _retime(engine, instance, BASE_TIME + timedelta(days=day))
    return _summary(engine, user, password, models, instances)


def _summary(
    engine: Engine, user: str, password: str, models: dict[str, Any], instances: dict[str, Instance]
) -> dict[str, Any]:
    files = [
        {
            "instance": instance.id,
            "data": item.definition.number,
            "data_instance_id": item.instance_data_id,
            "id": stored.id,
            "name": stored.name,
            "size": stored.size,
            "content_type": stored.content_type,
        }
        for instance in instances.values()
        for item, stored in instance.files()
    ]
    large = next((f for f in files if f["name"] == "scan-archive.bin"), None)
    return {
        "user": user,
        "password": password,
        "token": DEMO_TOKEN,
        "users": {user: password, APPROVER: APPROVER_PASSWORD},
        "models": {name: definition.id for name, definition in models.items()},
        "model_keys": {name: definition.key for name, definition in models.items()},
        "start_nodes": {name: definition.tasks[0].node_number for name, definition in models.items()},
        "instances": {name: instance.id for name, instance in instances.items()},
        "states": {name: instance.state for name, instance in instances.items()},
        "files": files,
        "file_count": len(files),
        "file_bytes": sum(f["size"] for f in files),
        "large_file": large,
    }
