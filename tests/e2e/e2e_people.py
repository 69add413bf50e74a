"""People who take their time: each process step waits until a release rule lets it go on.

Against the plain emulator every wait of the example DAGs is over at the sensors' first check, so
a deferrable sensor would never defer. Here a process's next task appears, and a finished
process reaches COMPLETED, only once the rule says so; in deferrable mode the rule is "a task of
this process's DAG run is DEFERRED", so the triggerer has to notice the change and resume it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from airflow_bpm_provider.testing.engine import COMPLETED, Engine, Instance

Rule = Callable[[Instance, float], bool]  # (instance, seconds held) -> release now?
Holds = Callable[[Instance], bool]  # hold this instance's steps at all?


@dataclass
class Held:
    instance: Instance
    step: Callable[[], None]
    since: float = field(default_factory=time.monotonic)


class PatientEngine(Engine):
    """An Engine whose steps after ``start_holding`` wait for ``rule`` (checked by ``release_due``)."""

    def __init__(self) -> None:
        super().__init__()
        self.rule: Rule | None = None
        self.holds: Holds = lambda instance: True
        self.held: list[Held] = []
        self.released = 0

    def start_holding(self, rule: Rule, holds: Holds) -> None:
        with self.lock:
            self.rule, self.holds = rule, holds

    def _enter(self, instance: Instance, index: int) -> None:
        # Questetra's start call hands back the starter's own first work item, so a process
        # without its owner's mark yet (Questetra sets the title later) starts at once.
        if self.rule is None or not self.holds(instance):
            super()._enter(instance, index)
            return
        instance.current_node = None  # between two steps: no open task yet
        self.held.append(Held(instance, lambda: Engine._enter(self, instance, index)))

    def end(self, instance: Instance, state: str, reason: str | None = None) -> None:
        if self.rule is None or state != COMPLETED or not self.holds(instance):
            super().end(instance, state, reason)
            return
        self.held.append(Held(instance, lambda: Engine.end(self, instance, state, reason)))

    def release_due(self) -> int:
        """Let every held step whose rule says so go on; returns how many went on."""
        with self.lock:
            due = [
                h
                for h in self.held
                if self.rule is not None and self.rule(h.instance, time.monotonic() - h.since)
            ]
            for held in due:
                self.held.remove(held)
                held.step()
            self.released += len(due)
            return len(due)


def keep_releasing(engine: PatientEngine, stop: threading.Event, interval: float = 0.3) -> threading.Thread:
    def loop() -> None:
        while not stop.wait(interval):
            engine.release_due()

    thread = threading.Thread(target=loop, name="patient-people", daemon=True)
    thread.start()
    return thread
