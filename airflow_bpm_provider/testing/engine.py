"""The vendor-neutral, in-memory BPM engine behind every emulated dialect.

Definitions are a straight line of user tasks; a task may offer choices (Questetra's user-select
flows) that continue, complete or fail the process. Dialects in :mod:`.dialects` translate their
vendor's HTTP API onto this engine, so one process started through one API is the same object a
test can inspect from Python.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

RUNNING, SUSPENDED, COMPLETED, FAILED, CANCELLED = "RUNNING", "SUSPENDED", "COMPLETED", "FAILED", "CANCELLED"
TASK_OPEN, TASK_CLAIMED, TASK_ENDED = "OPEN", "CLAIMED", "ENDED"

DATA_TYPES = ("STRING", "DECIMAL", "DATE", "DATETIME", "SELECT", "FILE", "USER", "BOOLEAN", "JSON")


class EngineError(Exception):
    """A request the engine refuses; ``kind`` is not_found, conflict, invalid or forbidden."""

    def __init__(self, kind: str, message: str, details: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.details = dict(details or {})


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=(datetime.now(UTC).microsecond // 1000) * 1000)


@dataclass
class DataDef:
    number: int
    name: str
    type: str = "STRING"
    choices: list[tuple[str, str]] = field(default_factory=list)  # (value, display) for SELECT
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    vendor_type: str | None = None  # the type name a vendor API used for it ("long", "json", ...)


@dataclass
class Choice:
    """A button on a task: ``outcome`` is next (the following task), complete or fail."""

    id: int
    name: str
    outcome: str = "next"


@dataclass
class TaskDef:
    name: str
    node_number: int
    key: str
    editable: list[int] = field(default_factory=list)  # data numbers the task may write
    choices: list[Choice] = field(default_factory=list)
    candidate_groups: list[tuple[int, str]] = field(default_factory=list)  # executing roles


@dataclass
class ProcessDefinition:
    id: int
    key: str
    name: str
    version: int
    tasks: list[TaskDef]
    data: list[DataDef]
    category: str = "Demo"
    start_node_number: int = 0
    enabled: bool = True
    description: str = ""
    deployed_at: datetime = field(default_factory=now)
    deployment_id: int | None = None  # the Deployment it came from, if uploaded as a model
    tenant_id: str = ""
    start_messages: list[str] = field(default_factory=list)  # message names that start it
    # (data item, file name, content, content type) every new instance starts with: a demo's receipt
    start_files: list[tuple[int | str, str, bytes, str]] = field(default_factory=list)

    def data_by_number(self, number: int) -> DataDef:
        for item in self.data:
            if item.number == number:
                return item
        raise EngineError("invalid", f"process {self.key} has no data item {number}")

    def data_by_name(self, name: str) -> DataDef | None:
        return next((item for item in self.data if item.name == name), None)


@dataclass
class StoredFile:
    """File content, either given or generated on the fly (large demo files cost no memory)."""

    id: int
    name: str
    content_type: str
    size: int
    content: bytes | None = None
    seed: int = 0
    created_at: datetime = field(default_factory=now)
    version: int = 1

    def chunks(self, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        if self.content is not None:
            for start in range(0, len(self.content), chunk_size):
                yield self.content[start : start + chunk_size]
            return
        block = hashlib.sha256(f"{self.seed}:{self.name}".encode()).digest() * 2048  # 64 KiB
        remaining = self.size
        while remaining > 0:
            piece = block[: min(remaining, len(block), chunk_size)]
            remaining -= len(piece)
            yield piece

    def read(self) -> bytes:
        return b"".join(self.chunks())


@dataclass
class Deployment:
    """An uploaded model file (BPMN XML or an archive) and the definitions deployed from it."""

    id: int
    name: str
    resources: dict[str, bytes] = field(default_factory=dict)
    tenant_id: str = ""
    category: str | None = None
    deployed_at: datetime = field(default_factory=now)


@dataclass
class Attachment:
    """A file (or a link to one) attached to a task; it outlives the task."""

    id: int
    name: str
    description: str | None = None
    type: str | None = None
    file: StoredFile | None = None
    external_url: str | None = None
    user: str | None = None
    created_at: datetime = field(default_factory=now)


@dataclass
class DataValue:
    instance_data_id: int  # Questetra's processDataInstanceId
    definition: DataDef
    value: Any = None  # list[StoredFile] for FILE items


@dataclass
class Instance:
    id: int
    definition: ProcessDefinition
    started_by: str
    state: str = RUNNING
    title: str | None = None
    business_key: str | None = None
    started_at: datetime = field(default_factory=now)
    ended_at: datetime | None = None
    delete_reason: str | None = None
    data: dict[int, DataValue] = field(default_factory=dict)
    current_node: int | None = None
    starred: set[int] = field(default_factory=set)
    sequence: int = 0  # 1, 2, 3... per definition key, in start order

    @property
    def ended(self) -> bool:
        return self.state in (COMPLETED, FAILED, CANCELLED)

    def value(self, name_or_number: str | int) -> Any:
        for item in self.data.values():
            if name_or_number in (item.definition.number, item.definition.name):
                return item.value
        raise KeyError(name_or_number)

    def files(self) -> list[tuple[DataValue, StoredFile]]:
        return [
            (item, stored)
            for number, item in sorted(self.data.items())
            if item.definition.type == "FILE"
            for stored in (item.value or [])
        ]


@dataclass
class TaskInstance:
    id: int
    instance: Instance
    definition: TaskDef
    state: str = TASK_OPEN
    assignee: str | None = None
    owner: str | None = None
    delegation: str | None = None
    created_at: datetime = field(default_factory=now)
    ended_at: datetime | None = None
    comments: list[dict[str, Any]] = field(default_factory=list)
    claimed_at: datetime | None = None
    attachments: list[Attachment] = field(default_factory=list)
    priority: int = 50
    due_at: datetime | None = None
    description: str | None = None
    display_name: str | None = None  # set when a user renames the task

    @property
    def open(self) -> bool:
        return self.state != TASK_ENDED

    @property
    def name(self) -> str:
        return self.display_name if self.display_name is not None else self.definition.name


@dataclass(frozen=True)
class PendingStep:
    """Where a process goes once ``due``: its task number ``index``, or its end in ``end_state``."""

    due: datetime
    index: int = 0
    end_state: str | None = None


class Engine:
    """Thread-safe state for all dialects. Ids come from one counter so they never collide.

    ``advance_after`` (seconds, default 0) lets each step a process takes after a completed task,
    to its next task or to its end, happen that long later, as if an automated step ran in
    between: a wait that starts right after a task is completed then really waits. A started
    process is at its first task at once, as BPM engines run to the first wait state within the
    start request (Questetra hands the starter that first form in its answer). The steps are
    taken by :meth:`advance_due`, which the HTTP app calls before every request, with the due
    time as their timestamp, so what a client sees depends on the clock only, not on timing.
    """

    def __init__(self, *, advance_after: float = 0.0) -> None:
        if advance_after < 0:
            raise ValueError(f"advance_after must not be negative, got {advance_after}")
        self.advance_after = advance_after
        self.pending: dict[int, PendingStep] = {}  # instance id -> its next step, once due
        self.lock = threading.RLock()
        self._ids = itertools.count(101)
        self.users: dict[str, str] = {}
        self.tokens: dict[str, str] = {}  # bearer token -> login
        self.definitions: dict[int, ProcessDefinition] = {}
        self.instances: dict[int, Instance] = {}
        self.tasks: dict[int, TaskInstance] = {}
        self.files: dict[int, tuple[Instance, DataValue, StoredFile]] = {}
        self.deployments: dict[int, Deployment] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) log, for tests
        self._sequences: dict[str, int] = {}

    def next_id(self) -> int:
        return next(self._ids)

    # ---- users ------------------------------------------------------------------------------

    def add_user(self, login: str, password: str) -> None:
        self.users[login] = password

    def check_password(self, login: str | None, password: str | None) -> bool:
        return login is not None and login in self.users and self.users[login] == password

    def add_token(self, token: str, login: str) -> None:
        """Register a bearer token that authenticates as ``login`` (an existing user)."""
        if login not in self.users:
            raise EngineError("invalid", f"no user {login!r} to give a token to")
        self.tokens[token] = login

    def user_for_token(self, token: str | None) -> str | None:
        return self.tokens.get(token) if token else None

    # ---- definitions ------------------------------------------------------------------------

    def deploy(
        self,
        key: str,
        name: str,
        *,
        tasks: list[TaskDef] | None = None,
        data: list[DataDef] | None = None,
        category: str = "Demo",
        definition_id: int | None = None,
        enabled: bool = True,
    ) -> ProcessDefinition:
        with self.lock:
            version = 1 + max((d.version for d in self.definitions.values() if d.key == key), default=0)
            definition = ProcessDefinition(
                id=definition_id if definition_id is not None else self.next_id(),
                key=key,
                name=name,
                version=version,
                tasks=list(tasks or []),
                data=list(data or []),
                category=category,
                enabled=enabled,
            )
            self.definitions[definition.id] = definition
            return definition

    def definition(self, definition_id: int) -> ProcessDefinition:
        try:
            return self.definitions[int(definition_id)]
        except (KeyError, ValueError):
            raise EngineError("not_found", f"no process definition {definition_id}") from None

    def latest(self, key: str) -> ProcessDefinition:
        matches = [d for d in self.definitions.values() if d.key == key]
        if not matches:
            raise EngineError("not_found", f"no process definition with key {key!r}")
        return max(matches, key=lambda d: d.version)

    # ---- instances --------------------------------------------------------------------------

    def start(
        self,
        definition: ProcessDefinition,
        *,
        user: str,
        title: str | None = None,
        business_key: str | None = None,
        values: Mapping[int | str, Any] | None = None,
    ) -> Instance:
        with self.lock:
            if not definition.enabled:
                raise EngineError("invalid", f"process definition {definition.key} is disabled")
            self._sequences[definition.key] = self._sequences.get(definition.key, 0) + 1
            instance = Instance(
                id=self.next_id(),
                definition=definition,
                started_by=user,
                title=title,
                business_key=business_key,
                sequence=self._sequences[definition.key],
            )
            for item in definition.data:
                instance.data[item.number] = DataValue(
                    self.next_id(), item, [] if item.type == "FILE" else None
                )
            self.instances[instance.id] = instance
            if values:
                self.set_values(instance, values)
            for data, name, content, content_type in definition.start_files:
                self.add_file(instance, data, name, content=content, content_type=content_type)
            self._enter(instance, 0)
            return instance

    def instance(self, instance_id: int | str) -> Instance:
        try:
            return self.instances[int(instance_id)]
        except (KeyError, ValueError):
            raise EngineError("not_found", f"no process instance {instance_id}") from None

    def set_values(self, instance: Instance, values: Mapping[int | str, Any]) -> None:
        errors: dict[str, str] = {}
        for key, value in values.items():
            item = self._data_item(instance, key)
            if item is None:
                errors[str(key)] = f"no data item {key!r}"
                continue
            problem = _check_value(item.definition, value)
            if problem:
                errors[str(key)] = problem
                continue
            if item.definition.type == "FILE":
                continue  # files are added through add_file
            item.value = value
        if errors:
            raise EngineError("invalid", "invalid data values", errors)

    def _data_item(self, instance: Instance, key: int | str) -> DataValue | None:
        for item in instance.data.values():
            if (
                key == item.definition.number
                or key == item.definition.name
                or str(key) == str(item.definition.number)
            ):
                return item
        return None

    def add_file(
        self,
        instance: Instance,
        data: int | str,
        name: str,
        *,
        content: bytes | None = None,
        size: int | None = None,
        content_type: str = "application/octet-stream",
        replace: bool = False,
    ) -> StoredFile:
        """Add a file to a FILE data item; ``replace`` drops its earlier files (a single-file item)."""
        with self.lock:
            item = self._data_item(instance, data)
            if item is None or item.definition.type != "FILE":
                raise EngineError("invalid", f"{data!r} is not a file data item of process {instance.id}")
            if replace:
                for old in item.value or []:
                    self.files.pop(old.id, None)
                item.value = []
            stored = StoredFile(
                id=self.next_id(),
                name=name,
                content_type=content_type,
                size=len(content) if content is not None else int(size or 0),
                content=content,
                seed=instance.id,
            )
            item.value = [*(item.value or []), stored]
            self.files[stored.id] = (instance, item, stored)
            return stored

    def file(self, file_id: int | str) -> tuple[Instance, DataValue, StoredFile]:
        try:
            return self.files[int(file_id)]
        except (KeyError, ValueError):
            raise EngineError("not_found", f"no file {file_id}") from None

    def end(self, instance: Instance, state: str, reason: str | None = None) -> None:
        with self.lock:
            if instance.ended:
                raise EngineError("conflict", f"process {instance.id} has already ended")
            self.pending.pop(instance.id, None)
            instance.state = state
            instance.ended_at = now()
            instance.delete_reason = reason
            instance.current_node = None
            for task in self.open_tasks(instance.id):
                task.state = TASK_ENDED
                task.ended_at = instance.ended_at

    def delete(self, instance: Instance) -> None:
        with self.lock:
            for task in [t for t in self.tasks.values() if t.instance is instance]:
                del self.tasks[task.id]
            for file_id in [fid for fid, (inst, _, _) in self.files.items() if inst is instance]:
                del self.files[file_id]
            del self.instances[instance.id]
            self.pending.pop(instance.id, None)

    def suspend(self, instance: Instance, suspended: bool) -> None:
        with self.lock:
            if instance.ended:
                raise EngineError("conflict", f"process {instance.id} has ended")
            if suspended and instance.state == SUSPENDED:
                raise EngineError("conflict", f"process {instance.id} is already suspended")
            if not suspended and instance.state == RUNNING:
                raise EngineError("conflict", f"process {instance.id} is already active")
            instance.state = SUSPENDED if suspended else RUNNING

    def find(self, **filters: Any) -> list[Instance]:
        """Instances matching simple equality filters, oldest first."""
        result = []
        for instance in sorted(self.instances.values(), key=lambda i: i.id):
            if filters.get("definition_key") and instance.definition.key != filters["definition_key"]:
                continue
            if filters.get("definition_id") and instance.definition.id != int(filters["definition_id"]):
                continue
            if filters.get("business_key") is not None and instance.business_key != filters["business_key"]:
                continue
            if filters.get("states") and instance.state not in filters["states"]:
                continue
            if filters.get("started_by") and instance.started_by != filters["started_by"]:
                continue
            result.append(instance)
        return result

    # ---- tasks ------------------------------------------------------------------------------

    def _enter(self, instance: Instance, index: int, at: datetime | None = None) -> None:
        tasks = instance.definition.tasks
        if index >= len(tasks):
            instance.state = COMPLETED
            instance.ended_at = at or now()
            instance.current_node = None
            return
        task_def = tasks[index]
        instance.current_node = task_def.node_number
        task = TaskInstance(id=self.next_id(), instance=instance, definition=task_def)
        if at is not None:
            task.created_at = at
        self.tasks[task.id] = task

    def _step_after_task(self, instance: Instance, *, index: int = 0, end: str | None = None) -> None:
        """Go on to task ``index`` or end in ``end``: now, or ``advance_after`` seconds from now."""
        if self.advance_after <= 0:
            if end is not None:
                self.end(instance, end)
            else:
                self._enter(instance, index)
            return
        # Between two steps the process runs with no task open, as during an automated step.
        instance.current_node = None
        due = now() + timedelta(seconds=self.advance_after)
        self.pending[instance.id] = PendingStep(due, index, end)

    def advance_due(self, at: datetime | None = None) -> int:
        """Take every pending step due by ``at`` (default now), oldest first; returns how many.

        A suspended process keeps its step until it is resumed and the step is due.
        """
        if not self.pending:  # the common case, checked on every request: no lock needed
            return 0
        at = at or now()
        taken = 0
        with self.lock:
            due = sorted((step.due, iid) for iid, step in self.pending.items() if step.due <= at)
            for _, instance_id in due:
                instance = self.instances.get(instance_id)
                if instance is not None and instance.state == SUSPENDED:
                    continue
                step = self.pending.pop(instance_id)
                if instance is None or instance.ended:
                    continue
                if step.end_state is not None:
                    self.end(instance, step.end_state)
                    instance.ended_at = step.due
                else:
                    self._enter(instance, step.index, at=step.due)
                taken += 1
        return taken

    def task(self, task_id: int | str) -> TaskInstance:
        try:
            return self.tasks[int(task_id)]
        except (KeyError, ValueError):
            raise EngineError("not_found", f"no task {task_id}") from None

    def open_tasks(self, instance_id: int | None = None, name: str | None = None) -> list[TaskInstance]:
        return [
            t
            for t in sorted(self.tasks.values(), key=lambda t: t.id)
            if t.open
            and (instance_id is None or t.instance.id == int(instance_id))
            and (name is None or t.definition.name == name)
        ]

    def claim(self, task: TaskInstance, user: str | None, *, force: bool = False) -> None:
        """Assign ``task`` to ``user`` (None gives it back); ``force`` reassigns a claimed task."""
        with self.lock:
            if not task.open:
                raise EngineError("conflict", f"task {task.id} has ended")
            if not force and user is not None and task.assignee not in (None, user):
                raise EngineError("conflict", f"task {task.id} is already claimed by {task.assignee}")
            if user is not None and task.assignee != user:
                task.claimed_at = now()
            task.assignee = user
            task.state = TASK_CLAIMED if user else TASK_OPEN
            if user is None:
                task.claimed_at = None

    def complete(
        self,
        task: TaskInstance,
        *,
        user: str | None = None,
        values: Mapping[int | str, Any] | None = None,
        choice: int | None = None,
    ) -> None:
        with self.lock:
            if not task.open:
                raise EngineError("conflict", f"task {task.id} has already been completed")
            instance = task.instance
            if instance.state == SUSPENDED:
                raise EngineError("conflict", f"process {instance.id} is suspended")
            if values:
                self.set_values(instance, values)
            missing = [
                d.name
                for d in instance.definition.data
                if d.required
                and d.number in task.definition.editable
                and _empty(instance.data[d.number].value)
            ]
            if missing:
                raise EngineError(
                    "invalid", "required data missing", {name: "a value is required" for name in missing}
                )
            outcome = "next"
            if task.definition.choices:
                chosen = next((c for c in task.definition.choices if c.id == choice), None)
                if chosen is None:
                    valid = ", ".join(str(c.id) for c in task.definition.choices)
                    raise EngineError("invalid", f"task {task.id} needs a choice (flow) among: {valid}")
                outcome = chosen.outcome
            task.state = TASK_ENDED
            task.ended_at = now()
            task.assignee = task.assignee or user
            if outcome == "fail":
                self._step_after_task(instance, end=FAILED)
            elif outcome == "complete":
                self._step_after_task(instance, end=COMPLETED)
            else:
                index = instance.definition.tasks.index(task.definition)
                self._step_after_task(instance, index=index + 1)

    # ---- deployments, ad-hoc variables, delegation, attachments -----------------------------

    def add_deployment(
        self, name: str, resources: Mapping[str, bytes], *, tenant_id: str = "", category: str | None = None
    ) -> Deployment:
        """Record an uploaded model; deploy its definitions with ``deploy`` and ``deployment_id``."""
        with self.lock:
            deployment = Deployment(
                id=self.next_id(),
                name=name,
                resources=dict(resources),
                tenant_id=tenant_id,
                category=category,
            )
            self.deployments[deployment.id] = deployment
            return deployment

    def deployment(self, deployment_id: int | str) -> Deployment:
        try:
            return self.deployments[int(deployment_id)]
        except (KeyError, ValueError):
            raise EngineError("not_found", f"no deployment {deployment_id}") from None

    def set_variable(
        self,
        instance: Instance,
        name: str,
        value: Any,
        *,
        type: str = "STRING",
        vendor_type: str | None = None,
    ) -> DataValue:
        """Set a value by name, adding an instance-only data item when the definition has none.

        Engines like Activiti let a process carry variables its model never declared, of any type;
        a changed type gives this instance its own copy of the item's definition.
        """
        if type not in DATA_TYPES:
            raise EngineError("invalid", f"unknown data type {type!r}")
        with self.lock:
            item = self._data_item(instance, name)
            if item is None:
                number = 1 + max([*instance.data, *(d.number for d in instance.definition.data)], default=0)
                item = DataValue(self.next_id(), DataDef(number, name, type, vendor_type=vendor_type))
                instance.data[number] = item
            else:
                if item.definition.type == "FILE":
                    for old in item.value or []:
                        self.files.pop(old.id, None)
                if (item.definition.type, item.definition.vendor_type) != (type, vendor_type):
                    item.definition = replace(item.definition, type=type, vendor_type=vendor_type)
            item.value = [] if type == "FILE" else value
            return item

    def delegate(self, task: TaskInstance, user: str) -> None:
        """Hand the task to ``user`` for now; the assignee stays owner and gets it back on resolve."""
        with self.lock:
            if not task.open:
                raise EngineError("conflict", f"task {task.id} has ended")
            if task.owner is None:
                task.owner = task.assignee
            task.assignee = user
            task.delegation = "pending"
            task.state = TASK_CLAIMED

    def resolve(self, task: TaskInstance) -> None:
        with self.lock:
            if not task.open:
                raise EngineError("conflict", f"task {task.id} has ended")
            task.delegation = "resolved"
            task.assignee = task.owner
            task.state = TASK_CLAIMED if task.assignee else TASK_OPEN

    def add_attachment(
        self,
        task: TaskInstance,
        name: str,
        *,
        content: bytes | None = None,
        size: int | None = None,
        content_type: str | None = None,
        description: str | None = None,
        external_url: str | None = None,
        user: str | None = None,
    ) -> Attachment:
        """Attach content (given, or generated lazily from ``size``) or a link to a task."""
        with self.lock:
            stored = None
            if external_url is None:
                stored = StoredFile(
                    id=self.next_id(),
                    name=name,
                    content_type=content_type or "application/octet-stream",
                    size=len(content) if content is not None else int(size or 0),
                    content=content,
                    seed=task.instance.id,
                )
            attachment = Attachment(
                id=self.next_id(),
                name=name,
                description=description,
                type=content_type,
                file=stored,
                external_url=external_url,
                user=user,
            )
            task.attachments.append(attachment)
            return attachment


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _check_value(definition: DataDef, value: Any) -> str | None:
    if value is None:
        return None
    if definition.type == "DECIMAL":
        try:
            number = float(value)
        except (TypeError, ValueError):
            return f"{value!r} is not a number"
        if definition.minimum is not None and number < definition.minimum:
            return f"must be at least {definition.minimum}"
        if definition.maximum is not None and number > definition.maximum:
            return f"must be at most {definition.maximum}"
    if definition.type == "SELECT":
        allowed = {choice for choice, _ in definition.choices}
        values = value if isinstance(value, list) else [value]
        bad = [v for v in values if v not in allowed]
        if bad:
            return f"{bad[0]!r} is not one of {sorted(allowed)}"
    return None
