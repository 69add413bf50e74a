"""Vendor-neutral results. Each keeps the vendor's raw answer in ``raw`` for anything not mapped."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_bpm_provider.states import ENDED_STATES, ProcessState

__all__ = ["ENDED_STATES", "ProcessFile", "ProcessInstance", "ProcessState", "Task"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class ProcessInstance:
    id: str
    state: ProcessState
    definition: str | None = None
    business_key: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    url: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    title: str | None = None
    definition_name: str | None = None
    raw_state: str | None = None

    @property
    def ended(self) -> bool:
        return self.state.ended

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form for XCom and trigger events (``raw`` left out: it can be large)."""
        return {
            "id": self.id,
            "state": self.state.value,
            "raw_state": self.raw_state,
            "definition": self.definition,
            "definition_name": self.definition_name,
            "business_key": self.business_key,
            "title": self.title,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "url": self.url,
        }


@dataclass(frozen=True)
class Task:
    id: str
    name: str | None
    process_instance_id: str | None
    assignee: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    state: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "process_instance_id": self.process_instance_id,
            "assignee": self.assignee,
            "state": self.state,
        }


@dataclass(frozen=True)
class ProcessFile:
    """A file that belongs to a process instance.

    ``ref`` holds what the owning hook needs to download it (ids, URLs); it is opaque to operators.
    ``group`` names where the file sits in the process (a data item, a document, a variable), and
    ``external_url`` is set for files the BPM system only links to (they cannot be streamed from it).
    """

    name: str
    size: int | None
    content_type: str | None
    process_instance_id: str
    ref: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    group: str | None = None
    external_url: str | None = None
