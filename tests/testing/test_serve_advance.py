"""The emulator's step delay (``Engine.advance_after``): deterministic under an explicit clock."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import requests

from airflow_bpm_provider.testing.engine import (
    CANCELLED,
    COMPLETED,
    FAILED,
    RUNNING,
    Choice,
    Engine,
    TaskDef,
)
from airflow_bpm_provider.testing.server import Emulator


def engine_with_two_steps(advance_after: float) -> tuple[Engine, object]:
    engine = Engine(advance_after=advance_after)
    engine.add_user("u", "p")
    definition = engine.deploy(
        "two-steps",
        "Two steps",
        tasks=[
            TaskDef("Draft", 0, "draft"),
            TaskDef(
                "Approve",
                1,
                "approve",
                choices=[Choice(1, "Approve", "complete"), Choice(2, "Reject", "fail")],
            ),
        ],
    )
    return engine, definition


def test_without_a_delay_every_step_is_taken_at_once():
    engine, definition = engine_with_two_steps(0)
    instance = engine.start(definition, user="u")
    engine.complete(engine.open_tasks(instance.id)[0], user="u")
    assert [t.name for t in engine.open_tasks(instance.id)] == ["Approve"]
    engine.complete(engine.open_tasks(instance.id)[0], user="u", choice=1)
    assert instance.state == COMPLETED and not engine.pending


def test_the_next_task_appears_when_due_stamped_with_the_due_time():
    engine, definition = engine_with_two_steps(5)
    instance = engine.start(definition, user="u")
    (draft,) = engine.open_tasks(instance.id)  # a started process is at its first task at once
    engine.complete(draft, user="u")
    due = engine.pending[instance.id].due
    assert due - draft.ended_at == pytest.approx(timedelta(seconds=5), abs=timedelta(milliseconds=5))
    assert engine.open_tasks(instance.id) == [] and instance.state == RUNNING
    assert instance.current_node is None  # between two steps, at no task
    assert engine.advance_due(at=due - timedelta(milliseconds=1)) == 0
    assert engine.open_tasks(instance.id) == []
    assert engine.advance_due(at=due + timedelta(hours=1)) == 1
    (approve,) = engine.open_tasks(instance.id)
    assert (approve.name, approve.created_at, instance.current_node) == ("Approve", due, 1)
    assert engine.advance_due(at=due + timedelta(hours=2)) == 0


@pytest.mark.parametrize(("choice", "state"), [(1, COMPLETED), (2, FAILED)])
def test_the_end_comes_when_due(choice, state):
    engine, definition = engine_with_two_steps(2)
    instance = engine.start(definition, user="u")
    engine.complete(engine.open_tasks(instance.id)[0], user="u")
    engine.advance_due(at=engine.pending[instance.id].due)
    engine.complete(engine.open_tasks(instance.id)[0], user="u", choice=choice)
    due = engine.pending[instance.id].due
    assert instance.state == RUNNING and not instance.ended
    engine.advance_due(at=due)
    assert (instance.state, instance.ended_at) == (state, due)


def test_steps_are_taken_oldest_first():
    engine, definition = engine_with_two_steps(3)
    first, second = engine.start(definition, user="u"), engine.start(definition, user="u")
    engine.complete(engine.open_tasks(second.id)[0], user="u")
    time.sleep(0.01)  # timestamps have millisecond resolution
    engine.complete(engine.open_tasks(first.id)[0], user="u")
    later = max(step.due for step in engine.pending.values())
    assert engine.advance_due(at=later) == 2
    approvals = [t for t in engine.open_tasks() if t.name == "Approve"]
    assert [t.instance.id for t in approvals] == [second.id, first.id]  # task ids follow the due order


def test_a_cancelled_or_deleted_process_loses_its_step():
    engine, definition = engine_with_two_steps(1)
    cancelled, deleted = engine.start(definition, user="u"), engine.start(definition, user="u")
    for instance in (cancelled, deleted):
        engine.complete(engine.open_tasks(instance.id)[0], user="u")
    engine.end(cancelled, CANCELLED)
    engine.delete(deleted)
    assert engine.pending == {}
    assert engine.advance_due(at=cancelled.ended_at + timedelta(hours=1)) == 0
    assert cancelled.state == CANCELLED and engine.open_tasks() == []


def test_a_suspended_process_keeps_its_step_until_resumed():
    engine, definition = engine_with_two_steps(1)
    instance = engine.start(definition, user="u")
    engine.complete(engine.open_tasks(instance.id)[0], user="u")
    due = engine.pending[instance.id].due
    engine.suspend(instance, True)
    assert engine.advance_due(at=due + timedelta(seconds=5)) == 0
    engine.suspend(instance, False)
    assert engine.advance_due(at=due + timedelta(seconds=5)) == 1
    assert [t.name for t in engine.open_tasks(instance.id)] == ["Approve"]


def test_a_negative_delay_is_refused():
    with pytest.raises(ValueError, match="must not be negative"):
        Engine(advance_after=-1)


def test_every_request_takes_the_due_steps_first():
    """The HTTP app advances before any dialect answers, so every API sees the same moment."""
    with Emulator.start(advance_after=0.2) as emulator:
        engine = emulator.engine
        engine.add_user("u", "p")
        definition = engine.deploy("one-step", "One step", tasks=[TaskDef("Do", 0, "do")])
        instance = engine.start(definition, user="u")
        engine.complete(engine.open_tasks(instance.id)[0], user="u")
        health = requests.get(f"{emulator.url}/_emulator/health", timeout=10).json()
        assert (health["advance_after"], health["pending_steps"]) == (0.2, 1)
        assert instance.state == RUNNING
        due = engine.pending[instance.id].due
        while instance.state == RUNNING:
            requests.get(f"{emulator.url}/_emulator/health", timeout=10)
        assert (instance.state, instance.ended_at) == (COMPLETED, due)


def test_the_demo_seeds_take_their_own_steps_at_once():
    from airflow_bpm_provider.testing.demo_systems import seed_all

    engine = Engine(advance_after=30)
    seed_all(engine, large_file_mb=1)
    assert engine.pending == {} and engine.advance_after == 30
    assert any(instance.ended for instance in engine.instances.values())
