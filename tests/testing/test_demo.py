"""The demo data set: contents, determinism and a large file that costs no memory."""

from __future__ import annotations

import hashlib
import tracemalloc

import pytest

from airflow_bpm_provider.testing.demo import seed_demo
from airflow_bpm_provider.testing.engine import COMPLETED, FAILED, RUNNING, Engine


@pytest.fixture(scope="module")
def seeded() -> tuple[Engine, dict]:
    engine = Engine()
    return engine, seed_demo(engine, large_file_mb=3)


def test_users_and_token(seeded):
    engine, summary = seeded
    assert (summary["user"], summary["password"]) == ("demo@example.com", "demo-api-password")
    assert engine.check_password("demo@example.com", "demo-api-password")
    assert engine.check_password("approver@example.com", summary["users"]["approver@example.com"])
    assert engine.user_for_token(summary["token"]) == "demo@example.com"


def test_custom_user():
    engine = Engine()
    summary = seed_demo(engine, large_file_mb=0, user="me@corp.example", password="pw-1")
    assert engine.check_password("me@corp.example", "pw-1")
    assert {i.started_by for i in engine.instances.values()} == {"me@corp.example"}
    assert summary["large_file"] is None


def test_models(seeded):
    engine, summary = seeded
    models = {key: engine.definition(number) for key, number in summary["models"].items()}
    assert set(models) == {"expense", "contract", "leave", "quickstart"}
    quickstart = models["quickstart"]  # the README Quickstart's app, found by its name
    assert (quickstart.id, quickstart.name) == (14, "expense-approval")
    assert [t.name for t in quickstart.tasks] == ["Apply", "Approve"]
    assert [d.name for d in quickstart.data] == ["amount", "purpose", "approved", "receipt"]
    expense = models["expense"]
    assert [t.name for t in expense.tasks] == ["Apply", "Approve"]
    assert {d.type for d in expense.data} >= {"DECIMAL", "SELECT", "FILE"}
    assert [(c.name, c.outcome) for c in expense.tasks[1].choices] == [
        ("Approve", "complete"),
        ("Reject", "fail"),
    ]
    assert [d.name for d in models["contract"].data if d.type == "FILE"] == ["Contract", "Attachments"]
    assert not [d for d in models["leave"].data if d.type == "FILE"]
    assert summary["start_nodes"] == {key: m.tasks[0].node_number for key, m in models.items()}


def test_instances_in_every_state(seeded):
    engine, summary = seeded
    states = {name: engine.instance(number).state for name, number in summary["instances"].items()}
    assert states == summary["states"]
    assert set(states.values()) == {RUNNING, COMPLETED, FAILED}
    assert len(states) >= 6
    running = engine.instance(summary["instances"]["expense_running"])
    assert [t.definition.name for t in engine.open_tasks(running.id)] == ["Approve"]
    assert running.value("Amount") == "4800" and running.value("Payment method") == ["card"]
    for number in summary["instances"].values():
        instance = engine.instance(number)
        assert instance.ended == (instance.ended_at is not None)
        if instance.ended:
            assert instance.ended_at > instance.started_at


def test_files(seeded):
    engine, summary = seeded
    names = [f["name"] for f in summary["files"]]
    for expected in (
        "見積書.pdf",
        "Übersicht ä.txt",
        "../escape.txt",
        "CON.txt",
        "empty.txt",
        "scan-archive.bin",
    ):
        assert expected in names
    review = engine.instance(summary["instances"]["contract_review"])
    review_names = [stored.name for _, stored in review.files()]
    assert review_names.count("notes.txt") == 2 and review_names.count("contract.pdf") == 2
    actual = [stored for instance in engine.instances.values() for _, stored in instance.files()]
    assert summary["file_count"] == len(actual) == len(summary["files"])
    assert summary["file_bytes"] == sum(s.size for s in actual)
    for entry in summary["files"]:
        instance, item, stored = engine.file(entry["id"])
        assert (instance.id, item.instance_data_id, stored.name, stored.size) == (
            entry["instance"],
            entry["data_instance_id"],
            entry["name"],
            entry["size"],
        )
    png = next(s for s in actual if s.name == "receipt.png")
    assert png.read().startswith(b"\x89PNG\r\n\x1a\n") and png.content_type == "image/png"


def _fingerprint(engine: Engine) -> list[tuple]:
    return [
        (
            i.id,
            i.state,
            i.title,
            i.started_at,
            i.ended_at,
            stored.id,
            stored.name,
            hashlib.sha256(stored.read()).digest(),
        )
        for i in sorted(engine.instances.values(), key=lambda i: i.id)
        for _, stored in i.files()
    ]


def test_deterministic():
    first, second = Engine(), Engine()
    assert seed_demo(first, large_file_mb=1) == seed_demo(second, large_file_mb=1)
    assert _fingerprint(first) == _fingerprint(second)
    times = [(t.id, t.created_at, t.claimed_at, t.ended_at) for t in first.tasks.values()]
    assert times == [(t.id, t.created_at, t.claimed_at, t.ended_at) for t in second.tasks.values()]


def test_large_file_is_generated_while_streaming():
    engine = Engine()
    summary = seed_demo(engine, large_file_mb=24)
    large = summary["large_file"]
    assert large["size"] == 24 * 1024 * 1024
    _, _, stored = engine.file(large["id"])
    assert stored.content is None  # nothing held in memory
    digest, total = hashlib.sha256(), 0
    tracemalloc.start()
    try:
        for chunk in stored.chunks():
            digest.update(chunk)
            total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == large["size"]
    assert peak < 2 * 1024 * 1024, f"streaming 24 MiB peaked at {peak} bytes"
    assert summary["file_bytes"] > large["size"]
