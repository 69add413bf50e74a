"""An in-memory BPM system and a BpmHook over it, for testing the Airflow-facing layer.

A test double with real behaviour: processes run through their tasks, completing the last task
completes the process, files hold real bytes (or generate them lazily) and streams can break or
be cut short. Tests observe its state (how many starts, which tasks completed, open streams).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from airflow_bpm_provider.exceptions import BpmConfigError, BpmConflict, BpmNotFound
from airflow_bpm_provider.hooks import registry
from airflow_bpm_provider.hooks.base import BpmHook
from airflow_bpm_provider.hooks.http import Flow, Headers, Reply
from airflow_bpm_provider.models import ProcessFile, ProcessInstance, ProcessState, Task

CONN_TYPE = "memory_bpm"
CONN_ID = "bpm_memory"
HOST = "https://bpm.example.test"
PASSWORD = "memory-secret-4711"
# How this pretend vendor spells its states (ProcessInstance.raw_state).
VENDOR_STATES = {
    ProcessState.RUNNING: "active",
    ProcessState.SUSPENDED: "suspended",
    ProcessState.COMPLETED: "ended",
    ProcessState.FAILED: "error",
    ProcessState.CANCELLED: "aborted",
}


@dataclass
class StoredFile:
    id: str
    name: str
    content: bytes | Callable[[], Iterator[bytes]]
    size: int | None  # what the system announces (ProcessFile.size)
    group: str | None = None
    external_url: str | None = None
    content_length: bool = True  # send a Content-Length header
    break_after: int | None = None  # the connection drops after this many bytes
    truncate_to: int | None = None  # the stream ends quietly after this many bytes

    def chunks(self, chunk_size: int) -> Iterator[bytes]:
        if callable(self.content):
            yield from self.content()
            return
        for start in range(0, len(self.content), chunk_size):
            yield self.content[start : start + chunk_size]


@dataclass
class StoredTask:
    id: str
    name: str
    instance_id: str
    assignee: str | None = None
    completed_with: dict[str, Any] | None = None

    @property
    def open(self) -> bool:
        return self.completed_with is None


@dataclass
class StoredInstance:
    id: str
    definition: str
    definition_name: str
    title: str | None
    business_key: str | None
    variables: dict[str, Any]
    remaining_tasks: list[str]
    state: ProcessState = ProcessState.RUNNING
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended_at: datetime | None = None
    files: list[StoredFile] = field(default_factory=list)


class MemoryBpm:
    """The BPM system: definitions with linear tasks, instances, tasks and files."""

    def __init__(self) -> None:
        self.definitions: dict[str, tuple[str, list[str]]] = {}
        self.instances: dict[str, StoredInstance] = {}
        self.tasks: dict[str, StoredTask] = {}
        self.starts: list[dict[str, Any]] = []
        self.open_streams = 0
        self.streams_opened = 0
        self.supports_business_key = True
        self._ids = itertools.count(101)

    def define(self, key: str, name: str, tasks: list[str] | tuple[str, ...] = ("Review",)) -> None:
        self.definitions[key] = (name, list(tasks))

    def start(
        self, key: str, variables: Mapping[str, Any] | None, business_key: str | None, title: str | None
    ) -> StoredInstance:
        if key not in self.definitions:
            raise BpmNotFound(f"no process definition {key!r}", system="MemoryBPM")
        self.starts.append({"process": key, "variables": dict(variables or {}), "business_key": business_key})
        name, tasks = self.definitions[key]
        instance = StoredInstance(
            id=str(next(self._ids)),
            definition=key,
            definition_name=name,
            title=title,
            business_key=business_key,
            variables=dict(variables or {}),
            remaining_tasks=list(tasks),
        )
        self.instances[instance.id] = instance
        self._advance(instance)
        return instance

    def instance(self, instance_id: str) -> StoredInstance:
        try:
            return self.instances[str(instance_id)]
        except KeyError:
            raise BpmNotFound(f"no process instance {instance_id}", system="MemoryBPM") from None

    def task(self, task_id: str) -> StoredTask:
        try:
            return self.tasks[str(task_id)]
        except KeyError:
            raise BpmNotFound(f"no task {task_id}", system="MemoryBPM") from None

    def _advance(self, instance: StoredInstance) -> None:
        """Open the next task, or complete the instance when none is left."""
        if instance.remaining_tasks:
            name = instance.remaining_tasks.pop(0)
            task = StoredTask(id=str(next(self._ids)), name=name, instance_id=instance.id)
            self.tasks[task.id] = task
        else:
            self.end(instance.id, ProcessState.COMPLETED)

    def open_tasks(self, instance_id: str | None = None) -> list[StoredTask]:
        return [
            task
            for task in self.tasks.values()
            if task.open
            and (instance_id is None or task.instance_id == instance_id)
            and not self.instances[task.instance_id].state.ended
        ]

    def open_parallel_task(self, instance_id: str, name: str) -> StoredTask:
        task = StoredTask(id=str(next(self._ids)), name=name, instance_id=instance_id)
        self.tasks[task.id] = task
        return task

    def claim(self, task_id: str, assignee: str) -> None:
        task = self.task(task_id)
        if task.assignee not in (None, assignee):
            raise BpmConflict(f"task {task_id} is claimed by {task.assignee}", system="MemoryBPM")
        task.assignee = assignee

    def complete(self, task_id: str, variables: Mapping[str, Any] | None) -> None:
        task = self.task(task_id)
        if not task.open:
            raise BpmConflict(f"task {task_id} is completed already", system="MemoryBPM")
        instance = self.instance(task.instance_id)
        task.completed_with = dict(variables or {})
        instance.variables.update(task.completed_with)
        if not any(t.open for t in self.tasks.values() if t.instance_id == instance.id):
            self._advance(instance)

    def end(self, instance_id: str, state: ProcessState) -> None:
        instance = self.instance(instance_id)
        instance.state = state
        instance.ended_at = datetime.now(UTC)

    def add_file(
        self,
        instance_id: str,
        name: str,
        content: bytes | Callable[[], Iterator[bytes]] = b"",
        *,
        size: int | None = -1,
        **options: Any,
    ) -> StoredFile:
        if size == -1:
            size = len(content) if isinstance(content, bytes) else None
        stored = StoredFile(id=str(next(self._ids)), name=name, content=content, size=size, **options)
        self.instance(instance_id).files.append(stored)
        return stored


class MemoryBpmHook(BpmHook):
    """The hook contract over :class:`MemoryBpm`; the connection only provides the UI base URL."""

    conn_type = CONN_TYPE
    hook_name = "In-memory BPM (tests)"
    system = "MemoryBPM"
    backend: ClassVar[MemoryBpm]
    START_OPTIONS = frozenset({"title"})
    FILTERS = frozenset({"query", "definition", "state", "business_key"})

    def _probe(self) -> str:
        return f"{len(self.backend.definitions)} definitions"

    def _to_model(self, stored: StoredInstance) -> ProcessInstance:
        return ProcessInstance(
            id=stored.id,
            state=stored.state,
            definition=stored.definition,
            definition_name=stored.definition_name,
            business_key=stored.business_key,
            title=stored.title,
            started_at=stored.started_at,
            ended_at=stored.ended_at,
            url=self.ui_url(stored.id),
            raw_state=VENDOR_STATES[stored.state],
        )

    def start_process(
        self,
        process: str,
        *,
        variables: Mapping[str, Any] | None = None,
        business_key: str | None = None,
        **options: Any,
    ) -> ProcessInstance:
        unknown = sorted(set(options) - self.START_OPTIONS)
        if unknown:
            raise BpmConfigError(f"unknown start options: {', '.join(unknown)}", conn_id=self.bpm_conn_id)
        stored = self.backend.start(process, variables, business_key, options.get("title"))
        return self._to_model(stored)

    def _get_process_flow(self, instance_id: str) -> Flow[ProcessInstance]:
        yield from ()  # in memory: nothing to send
        return self._to_model(self.backend.instance(instance_id))

    def find_processes(self, **filters: Any) -> Iterator[ProcessInstance]:
        unknown = sorted(set(filters) - self.FILTERS)
        if unknown:
            raise BpmConfigError(f"unknown filters: {', '.join(unknown)}", conn_id=self.bpm_conn_id)
        wanted = dict(filters.pop("query", None) or {})
        wanted.update(filters)
        for stored in list(self.backend.instances.values()):
            if all(str(getattr(stored, key)) == str(value) for key, value in wanted.items()):
                yield self._to_model(stored)

    def find_process_by_business_key(self, process: str, business_key: str) -> ProcessInstance | None:
        if not self.backend.supports_business_key:
            return super().find_process_by_business_key(process, business_key)
        found = [
            stored
            for stored in self.backend.instances.values()
            if stored.definition == process and stored.business_key == business_key
        ]
        return self._to_model(found[-1]) if found else None

    def cancel_process(self, instance_id: str) -> None:
        self.backend.end(instance_id, ProcessState.CANCELLED)

    def _list_tasks_flow(
        self, *, process_instance_id: str | None = None, name: str | None = None
    ) -> Flow[list[Task]]:
        yield from ()
        return [
            Task(id=task.id, name=task.name, process_instance_id=task.instance_id, assignee=task.assignee)
            for task in self.backend.open_tasks(process_instance_id)
            if name is None or task.name == name
        ]

    def claim_task(self, task_id: str, assignee: str | None = None) -> None:
        self.backend.claim(task_id, assignee or self.settings.login or "")

    def complete_task(self, task_id: str, variables: Mapping[str, Any] | None = None, **options: Any) -> None:
        if options:
            raise BpmConfigError(f"unknown complete options: {', '.join(sorted(options))}")
        self.backend.complete(task_id, variables)

    def list_files(self, instance_id: str) -> Iterator[ProcessFile]:
        for stored in self.backend.instance(instance_id).files:
            yield ProcessFile(
                name=stored.name,
                size=stored.size,
                content_type="application/octet-stream",
                process_instance_id=str(instance_id),
                ref={"file_id": stored.id},
                group=stored.group,
                external_url=stored.external_url,
            )

    @contextmanager
    def open_file(self, file: ProcessFile) -> Iterator[Reply]:
        instance = self.backend.instance(file.process_instance_id)
        stored = next((f for f in instance.files if f.id == file.ref["file_id"]), None)
        if stored is None:
            raise BpmNotFound(f"no file {file.ref['file_id']}", system=self.system)
        headers = {"Content-Type": "application/octet-stream"}
        if stored.content_length and isinstance(stored.content, bytes):
            headers["Content-Length"] = str(len(stored.content))
        self.backend.open_streams += 1
        self.backend.streams_opened += 1
        reply = Reply(status=200, headers=Headers(headers), stream=_Stream(stored, self.backend))
        try:
            yield reply
        finally:
            reply.close()

    def ui_url(self, instance_id: str) -> str | None:
        return f"{self.base_url}/process/{instance_id}"


class _Stream:
    """Stands where a streamed ``requests.Response`` stands in a real reply."""

    def __init__(self, stored: StoredFile, backend: MemoryBpm) -> None:
        self.stored = stored
        self.backend = backend
        self.closed = False

    def iter_content(self, chunk_size: int) -> Iterator[bytes]:
        sent, stored = 0, self.stored
        for chunk in stored.chunks(chunk_size):
            if stored.truncate_to is not None and sent + len(chunk) > stored.truncate_to:
                yield chunk[: stored.truncate_to - sent]
                return
            if stored.break_after is not None and sent + len(chunk) > stored.break_after:
                yield chunk[: stored.break_after - sent]
                raise ConnectionError("connection reset by peer")
            sent += len(chunk)
            yield chunk

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.backend.open_streams -= 1


def install(monkeypatch: Any, *, conn_id: str = CONN_ID) -> MemoryBpm:
    """Serve ``conn_id`` from a fresh MemoryBpm through the real get_bpm_hook lookup."""
    backend = MemoryBpm()
    monkeypatch.setattr(MemoryBpmHook, "backend", backend, raising=False)
    monkeypatch.setitem(registry.HOOK_CLASSES, CONN_TYPE, f"{__name__}.MemoryBpmHook")
    connection = {"conn_type": CONN_TYPE, "host": HOST, "login": "robot", "password": PASSWORD}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
    return backend
