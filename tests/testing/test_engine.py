"""Rules of the vendor-neutral engine that every emulated dialect relies on."""

from __future__ import annotations

import pytest

from airflow_bpm_provider.testing.engine import (
    CANCELLED,
    COMPLETED,
    FAILED,
    RUNNING,
    SUSPENDED,
    TASK_CLAIMED,
    TASK_ENDED,
    TASK_OPEN,
    Choice,
    DataDef,
    Engine,
    EngineError,
    TaskDef,
)


@pytest.fixture
def engine() -> Engine:
    engine = Engine()
    engine.add_user("alice@example.com", "a-secret")
    engine.add_user("bob@example.com", "b-secret")
    return engine


@pytest.fixture
def approval(engine):
    return engine.deploy(
        "approval",
        "Approval",
        tasks=[
            TaskDef("Apply", 0, "apply", editable=[0, 1]),
            TaskDef(
                "Decide",
                1,
                "decide",
                choices=[
                    Choice(7, "Approve", "next"),
                    Choice(8, "Reject", "fail"),
                    Choice(9, "Done", "complete"),
                ],
            ),
            TaskDef("Archive", 2, "archive"),
        ],
        data=[
            DataDef(0, "Subject", "STRING", required=True),
            DataDef(1, "Amount", "DECIMAL", minimum=0, maximum=100),
            DataDef(2, "Files", "FILE"),
        ],
    )


def test_passwords_and_tokens(engine):
    assert engine.check_password("alice@example.com", "a-secret")
    assert not engine.check_password("alice@example.com", "b-secret")
    assert not engine.check_password(None, None)
    engine.add_token("tok-1", "alice@example.com")
    assert engine.user_for_token("tok-1") == "alice@example.com"
    assert engine.user_for_token("tok-2") is None
    with pytest.raises(EngineError) as caught:
        engine.add_token("tok-3", "nobody@example.com")
    assert caught.value.kind == "invalid"


def test_start_creates_first_task_and_numbers_instances_per_definition_key(engine, approval):
    first = engine.start(approval, user="alice@example.com", title="one")
    second = engine.start(approval, user="alice@example.com", title="two")
    other = engine.start(
        engine.deploy("other", "Other", tasks=[TaskDef("T", 0, "t")]), user="bob@example.com"
    )
    assert (first.sequence, second.sequence, other.sequence) == (1, 2, 1)
    tasks = engine.open_tasks(first.id)
    assert [t.definition.name for t in tasks] == ["Apply"]
    assert tasks[0].state == TASK_OPEN and first.current_node == 0 and first.state == RUNNING
    assert set(first.data) == {0, 1, 2} and first.data[2].value == []


def test_redeploy_makes_a_new_version(engine, approval):
    again = engine.deploy("approval", "Approval v2", tasks=approval.tasks, data=approval.data)
    assert again.version == 2 and again.id != approval.id
    assert engine.latest("approval") is again
    assert approval.deployed_at <= again.deployed_at


def test_claim_conflict_and_forced_reassignment(engine, approval):
    task = engine.open_tasks(engine.start(approval, user="alice@example.com").id)[0]
    engine.claim(task, "alice@example.com")
    assert task.state == TASK_CLAIMED and task.claimed_at is not None
    claimed_at = task.claimed_at
    engine.claim(task, "alice@example.com")  # claiming again by the same user is harmless
    assert task.claimed_at == claimed_at
    with pytest.raises(EngineError) as caught:
        engine.claim(task, "bob@example.com")
    assert caught.value.kind == "conflict" and "alice@example.com" in caught.value.message
    engine.claim(task, "bob@example.com", force=True)
    assert task.assignee == "bob@example.com"
    engine.claim(task, None)
    assert task.state == TASK_OPEN and task.assignee is None and task.claimed_at is None


def test_complete_needs_required_data_and_checks_values(engine, approval):
    instance = engine.start(approval, user="alice@example.com")
    task = engine.open_tasks(instance.id)[0]
    with pytest.raises(EngineError) as caught:
        engine.complete(task, user="alice@example.com")
    assert caught.value.kind == "invalid" and "Subject" in caught.value.details
    with pytest.raises(EngineError) as caught:
        engine.complete(task, user="alice@example.com", values={"Subject": "x", 1: "500"})
    assert "1" in caught.value.details and task.open
    engine.complete(task, user="alice@example.com", values={"Subject": "Laptop", 1: "99"})
    assert task.state == TASK_ENDED and task.assignee == "alice@example.com"
    assert instance.value("Subject") == "Laptop" and instance.current_node == 1


def _at_decision(engine, approval):
    instance = engine.start(approval, user="alice@example.com")
    engine.complete(engine.open_tasks(instance.id)[0], values={0: "subject"})
    return instance, engine.open_tasks(instance.id)[0]


def test_choices_decide_where_the_process_goes(engine, approval):
    instance, decide = _at_decision(engine, approval)
    with pytest.raises(EngineError) as caught:
        engine.complete(decide)
    assert "7, 8, 9" in caught.value.message
    with pytest.raises(EngineError):
        engine.complete(decide, choice=99)
    engine.complete(decide, choice=7)
    assert [t.definition.name for t in engine.open_tasks(instance.id)] == ["Archive"]
    engine.complete(engine.open_tasks(instance.id)[0])
    assert instance.state == COMPLETED and instance.ended_at is not None and instance.current_node is None

    rejected, decide = _at_decision(engine, approval)
    engine.complete(decide, choice=8)
    assert rejected.state == FAILED and not engine.open_tasks(rejected.id)

    done, decide = _at_decision(engine, approval)
    engine.complete(decide, choice=9)
    assert done.state == COMPLETED


def test_completing_twice_or_while_suspended_conflicts(engine, approval):
    instance = engine.start(approval, user="alice@example.com")
    task = engine.open_tasks(instance.id)[0]
    engine.suspend(instance, True)
    assert instance.state == SUSPENDED
    with pytest.raises(EngineError) as caught:
        engine.complete(task, values={0: "x"})
    assert caught.value.kind == "conflict"
    engine.suspend(instance, False)
    engine.complete(task, values={0: "x"})
    with pytest.raises(EngineError) as caught:
        engine.complete(task)
    assert caught.value.kind == "conflict"


def test_end_closes_open_tasks_and_cannot_repeat(engine, approval):
    instance = engine.start(approval, user="alice@example.com")
    task = engine.open_tasks(instance.id)[0]
    engine.end(instance, CANCELLED, reason="no longer needed")
    assert instance.state == CANCELLED and instance.delete_reason == "no longer needed"
    assert task.state == TASK_ENDED and task.ended_at == instance.ended_at
    with pytest.raises(EngineError) as caught:
        engine.end(instance, FAILED)
    assert caught.value.kind == "conflict"


def test_delete_removes_instance_tasks_and_files(engine, approval):
    instance = engine.start(approval, user="alice@example.com")
    stored = engine.add_file(instance, "Files", "a.txt", content=b"abc", content_type="text/plain")
    assert engine.file(stored.id)[2].read() == b"abc"
    engine.delete(instance)
    for lookup, key in ((engine.instance, instance.id), (engine.file, stored.id)):
        with pytest.raises(EngineError) as caught:
            lookup(key)
        assert caught.value.kind == "not_found"
    assert not [t for t in engine.tasks.values() if t.instance is instance]


def test_files_only_on_file_items_and_lazy_content_is_generated(engine, approval):
    instance = engine.start(approval, user="alice@example.com")
    with pytest.raises(EngineError):
        engine.add_file(instance, 0, "x.txt", content=b"x")
    lazy = engine.add_file(instance, 2, "big.bin", size=200_000)
    assert lazy.content is None and lazy.size == 200_000
    chunks = list(lazy.chunks())
    assert sum(map(len, chunks)) == 200_000 and max(map(len, chunks)) <= 1 << 16
    assert b"".join(chunks) == lazy.read()  # the same bytes every time
    assert [s.name for _, s in instance.files()] == ["big.bin"]
