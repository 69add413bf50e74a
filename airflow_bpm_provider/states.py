"""The vendor-neutral process states, apart from the result classes in :mod:`airflow_bpm_provider.models`.

Operators, sensors and triggers check the states they are given when a DAG file builds them;
that needs only this enum, not the dataclasses of ``models`` (each costs a little at import).
"""

from __future__ import annotations

import enum


class ProcessState(enum.StrEnum):
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def ended(self) -> bool:
        return self in ENDED_STATES

    @classmethod
    def parse(cls, value: str | ProcessState) -> ProcessState:
        """Accept ``"completed"``, ``"COMPLETED"`` or the enum itself; name the valid values otherwise."""
        if isinstance(value, ProcessState):
            return value
        try:
            return cls(str(value).strip().upper())
        except ValueError:
            valid = ", ".join(state.value for state in cls)
            raise ValueError(f"unknown process state {value!r}; expected one of: {valid}") from None


ENDED_STATES = frozenset({ProcessState.COMPLETED, ProcessState.FAILED, ProcessState.CANCELLED})
