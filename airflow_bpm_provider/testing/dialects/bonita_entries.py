"""What the Bonita dialect adds to the shared engine, and how engine objects look in Bonita's JSON.

Bonita-only state lives in a :class:`BonitaState` per engine (sessions, uploaded temp files,
numeric user ids, archived-case ids, contracts, document metadata), so the engine itself stays
vendor-neutral and a demo seed can describe contracts before any server starts.

Mapping onto the engine:

- a Bonita process is a definition: ``name`` = its key, ``displayName`` = its name, ``version`` =
  ``"<n>.0"``; a case is an instance; a human task is an open task;
- a document is a FILE data item of the case: each file in it is one *version* (the last one is
  the live document, the earlier ones are archived); a document's id is the data item's instance
  id, an archived version's id and every ``contentStorageId`` are the stored file's id;
- an external document (``isInternal`` false) is a stored file without content whose URL this
  state remembers;
- the process contract is a list of data items (registered with :meth:`BonitaState.set_contract`;
  without one every non-file data item may be given); a task's contract is its editable items.
"""

from __future__ import annotations

import secrets
import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

from airflow_bpm_provider.testing.engine import (
    CANCELLED,
    COMPLETED,
    FAILED,
    RUNNING,
    SUSPENDED,
    DataDef,
    DataValue,
    Engine,
    Instance,
    ProcessDefinition,
    StoredFile,
    TaskInstance,
)

CASE_STATES = {
    RUNNING: "started",
    SUSPENDED: "suspended",
    COMPLETED: "completed",
    FAILED: "error",
    CANCELLED: "cancelled",
}
VERSION = "2025.1"
JAVA_TYPES = (
    "java.lang.String",
    "java.lang.Integer",
    "java.lang.Double",
    "java.lang.Long",
    "java.lang.Boolean",
    "java.util.Date",
)
CONTRACT_TYPES = {
    "STRING": "TEXT",
    "SELECT": "TEXT",
    "USER": "TEXT",
    "JSON": "TEXT",
    "DECIMAL": "DECIMAL",
    "BOOLEAN": "BOOLEAN",
    "DATE": "LOCALDATE",
    "DATETIME": "OFFSETDATETIME",
    "FILE": "FILE",
}
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class ApiError(Exception):
    """An error answer: Error.yaml's ``{exception, message, explanations}`` with a status."""

    def __init__(
        self, status: int, message: str, *, exception: str | None = None, explanations: Iterable[str] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.exception = exception or {
            400: "org.bonitasoft.web.toolkit.client.common.exception.api.APIMalformedUrlException",
            401: "org.bonitasoft.web.toolkit.client.common.exception.http.UnauthorizedException",
            403: "org.bonitasoft.web.toolkit.client.common.exception.api.APIForbiddenException",
            404: "org.bonitasoft.web.toolkit.client.common.exception.api.APIItemNotFoundException",
        }.get(status, "org.bonitasoft.web.toolkit.client.common.exception.api.APIException")
        self.explanations = list(explanations)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"exception": self.exception, "message": self.message}
        if self.explanations:
            body["explanations"] = self.explanations
        return body


@dataclass
class Session:
    login: str
    token: str


@dataclass
class Upload:
    file_name: str
    content: bytes
    content_type: str


@dataclass
class InitialDocument:
    """A document every new case gets (Bonita documents can start with a file or a URL)."""

    data: str  # the FILE data item's name = the document name
    file_name: str
    content: bytes | None = None
    size: int | None = None
    content_type: str = "application/octet-stream"
    url: str | None = None


@dataclass
class DocumentInfo:
    submitted_by: str | None = None
    description: str = ""
    url: str | None = None  # set for external documents
    content_deleted: bool = False


@dataclass
class BonitaState:
    """Bonita-only facts about one engine; reach it with :func:`state_for`."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    sessions: dict[str, Session] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)
    archived_ids: dict[int, int] = field(default_factory=dict)  # case id → archived case id
    contracts: dict[int, list[str]] = field(default_factory=dict)  # definition id → input names
    initial_documents: dict[int, list[InitialDocument]] = field(default_factory=dict)
    documents: dict[int, DocumentInfo] = field(default_factory=dict)  # stored file id → info
    csrf: bool = True
    # Design-time search indexes (Subscription editions): index 1-5 → the variable it shows.
    search_indexes: dict[int, str] = field(default_factory=dict)

    # ---- sessions and users -----------------------------------------------------------------

    def open_session(self, login: str) -> tuple[str, Session]:
        with self.lock:
            session_id = secrets.token_hex(16).upper()
            session = Session(login, secrets.token_urlsafe(24))
            self.sessions[session_id] = session
            return session_id, session

    def expire_sessions(self) -> None:
        """Forget every session, as a Bonita restart or a session timeout would."""
        with self.lock:
            self.sessions.clear()

    def user_id(self, engine: Engine, login: str | None) -> str:
        if not login:
            return ""
        with self.lock:
            for known in engine.users:
                self.user_ids.setdefault(known, len(self.user_ids) + 1)
            if login not in self.user_ids:
                self.user_ids[login] = len(self.user_ids) + 1
            return str(self.user_ids[login])

    def login_of(self, engine: Engine, user_id: str) -> str | None:
        self.user_id(engine, next(iter(engine.users), None))
        return next((login for login, uid in self.user_ids.items() if str(uid) == str(user_id)), None)

    # ---- cases --------------------------------------------------------------------------------

    def archived_id(self, engine: Engine, instance: Instance) -> int:
        with self.lock:
            if instance.id not in self.archived_ids:
                self.archived_ids[instance.id] = engine.next_id()
            return self.archived_ids[instance.id]

    def instance_of_archived(self, engine: Engine, archived_id: str) -> Instance | None:
        for case_id, known in self.archived_ids.items():
            if str(known) == str(archived_id) and case_id in engine.instances:
                return engine.instances[case_id]
        return None

    # ---- contracts and documents ----------------------------------------------------------

    def set_contract(self, definition: ProcessDefinition, inputs: Iterable[str]) -> None:
        """The data items a start must (if required) or may give, by name."""
        names = list(inputs)
        unknown = [n for n in names if definition.data_by_name(n) is None]
        if unknown:
            raise ValueError(f"process {definition.key} has no data items {unknown}")
        self.contracts[definition.id] = names

    def contract(self, definition: ProcessDefinition) -> list[DataDef] | None:
        names = self.contracts.get(definition.id)
        if names is None:
            return None
        return [d for d in (definition.data_by_name(n) for n in names) if d is not None]

    def info(self, stored: StoredFile) -> DocumentInfo:
        with self.lock:
            return self.documents.setdefault(stored.id, DocumentInfo())


_STATES: weakref.WeakKeyDictionary[Engine, BonitaState] = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()


def state_for(engine: Engine) -> BonitaState:
    with _STATES_LOCK:
        state = _STATES.get(engine)
        if state is None:
            state = _STATES[engine] = BonitaState()
        return state


# ---- formats ------------------------------------------------------------------------------------


def timestamp(value: datetime | None) -> str:
    """Bonita's 'yyyy-MM-dd HH:mm:ss.SSS' (in UTC here); "" when there is none."""
    if value is None:
        return ""
    value = value.astimezone(UTC) if value.tzinfo else value
    return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"


def java_date(value: datetime) -> str:
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    day = f"{_DAYS[value.weekday()]} {_MONTHS[value.month - 1]} {value.day:02d}"
    return f"{day} {value:%H:%M:%S} UTC {value.year}"


def parse_java_date(text: str) -> datetime:
    parts = str(text).split()
    if len(parts) != 6 or parts[1] not in _MONTHS or parts[0] not in _DAYS:
        raise ValueError(f"{text} cannot be converted to Date")
    clock = datetime.strptime(parts[3], "%H:%M:%S")
    return datetime(
        int(parts[5]),
        _MONTHS.index(parts[1]) + 1,
        int(parts[2]),
        clock.hour,
        clock.minute,
        clock.second,
        tzinfo=UTC,
    )


def java_type(data: DataDef) -> str:
    if data.vendor_type and data.vendor_type.startswith("java."):
        return data.vendor_type
    return {
        "DECIMAL": "java.lang.Double",
        "BOOLEAN": "java.lang.Boolean",
        "DATE": "java.util.Date",
        "DATETIME": "java.util.Date",
    }.get(data.type, "java.lang.String")


def variable_text(data: DataDef, value: Any) -> str | None:
    """A variable's value the way Bonita prints it: String.valueOf of the Java object."""
    if value is None:
        return None
    kind = java_type(data)
    if kind == "java.lang.Boolean":
        return "true" if value in (True, "true") else "false"
    if kind in ("java.lang.Long", "java.lang.Integer"):
        return str(int(float(value)))
    if kind == "java.lang.Double":
        return repr(float(value))
    if kind == "java.util.Date":
        moment = as_datetime(value)
        return java_date(moment) if moment is not None else str(value)
    return str(value)


def as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def convert_update(java_class: str, text: Any) -> Any:
    """What Bonita's REST converters make of a PUT caseVariable value (ValueError when they fail)."""
    if text is None:
        return None
    text = str(text)
    if java_class == "java.lang.String":
        return text
    if java_class in ("java.lang.Integer", "java.lang.Long"):
        number = int(text)
        if java_class == "java.lang.Integer" and not -(2**31) <= number < 2**31:
            raise ValueError(f"{text} is out of range for java.lang.Integer")
        return number
    if java_class == "java.lang.Double":
        return float(text)
    if java_class == "java.lang.Boolean":
        return text.lower() == "true"  # Java's Boolean.valueOf
    if not text:
        return None
    return parse_java_date(text)


# ---- JSON of engine objects -------------------------------------------------------------------


def version_text(definition: ProcessDefinition) -> str:
    return f"{definition.version}.0"


def process_json(definition: ProcessDefinition) -> dict[str, Any]:
    """ProcessDefinition.yaml."""
    deployed = timestamp(getattr(definition, "deployed_at", None))
    return {
        "id": str(definition.id),
        "icon": "",
        "displayDescription": definition.description,
        "deploymentDate": deployed,
        "description": definition.description,
        "activationState": "ENABLED" if definition.enabled else "DISABLED",
        "name": definition.key,
        "deployedBy": "1",
        "displayName": definition.name,
        "actorinitiatorid": "1",
        "last_update_date": deployed,
        "configurationState": "RESOLVED",
        "version": version_text(definition),
    }


def case_json(
    engine: Engine, state: BonitaState, instance: Instance, deploy: Iterable[str] = ()
) -> dict[str, Any]:
    """ProcessInstance.yaml (``d`` expands processDefinitionId and started_by)."""
    started_by = state.user_id(engine, instance.started_by)
    body: dict[str, Any] = {
        "id": str(instance.id),
        "end_date": timestamp(instance.ended_at),
        "startedBySubstitute": started_by,
        "start": timestamp(instance.started_at),
        "state": CASE_STATES.get(instance.state, "started"),
        "rootCaseId": str(instance.id),
        "callerId": "-1",
        "started_by": started_by,
        "processDefinitionId": str(instance.definition.id),
        "last_update_date": timestamp(instance.ended_at or instance.started_at),
    }
    for n in range(1, 6):
        body[f"searchIndex{n}Label"] = state.search_indexes.get(n, "")
        body[f"searchIndex{n}Value"] = search_index_value(state, instance, n)
    _deploy(engine, body, instance.definition, instance.started_by, deploy)
    return body


def search_index_value(state: BonitaState, instance: Instance, n: int) -> str:
    """The text of the variable search index ``n`` shows ("" when none is defined or it is empty)."""
    name = state.search_indexes.get(n)
    for item in instance.data.values() if name else ():
        if item.definition.name == name and item.value not in (None, ""):
            return str(item.value)
    return ""


def archived_case_json(
    engine: Engine, state: BonitaState, instance: Instance, deploy: Iterable[str] = ()
) -> dict[str, Any]:
    """ArchivedProcessInstance.yaml: the case plus sourceObjectId and archivedDate."""
    body = case_json(engine, state, instance, deploy)
    body["id"] = str(state.archived_id(engine, instance))
    body["sourceObjectId"] = str(instance.id)
    body["archivedDate"] = timestamp(instance.ended_at)
    return body


def _deploy(
    engine: Engine, body: dict[str, Any], definition: ProcessDefinition, login: str, deploy: Iterable[str]
) -> None:
    wanted = set(deploy)
    if "processDefinitionId" in wanted:
        body["processDefinitionId"] = process_json(definition)
    if "started_by" in wanted:
        body["started_by"] = {"id": body["started_by"], "userName": login, "enabled": "true"}


def task_json(engine: Engine, state: BonitaState, task: TaskInstance) -> dict[str, Any]:
    """HumanTask.yaml."""
    instance = task.instance
    name = task.definition.name
    display = getattr(task, "name", name)
    return {
        "id": str(task.id),
        "type": "USER_TASK",
        "name": name,
        "displayName": display,
        "description": getattr(task, "description", None) or "",
        "displayDescription": getattr(task, "description", None) or "",
        "state": "ready" if task.open else "completed",
        "reached_state_date": timestamp(task.created_at),
        "last_update_date": timestamp(getattr(task, "claimed_at", None) or task.created_at),
        "dueDate": timestamp(getattr(task, "due_at", None)),
        "priority": "normal",
        "processId": str(instance.definition.id),
        "caseId": str(instance.id),
        "parentCaseId": str(instance.id),
        "rootCaseId": str(instance.id),
        "rootContainerId": str(instance.id),
        "executedBy": "0",
        "executedBySubstitute": "0",
        "actorId": "1",
        "assigned_id": state.user_id(engine, task.assignee) if task.assignee else "",
        "assigned_date": timestamp(getattr(task, "claimed_at", None)),
        "isTerminal": False,
    }


def variable_json(data: DataValue, instance: Instance) -> dict[str, Any]:
    """ProcessInstanceVariable.yaml."""
    return {
        "description": "",
        "name": data.definition.name,
        "value": variable_text(data.definition, data.value),
        "case_id": str(instance.id),
        "type": java_type(data.definition),
    }


def documents_of(instance: Instance) -> list[DataValue]:
    return [item for _, item in sorted(instance.data.items()) if item.definition.type == "FILE"]


def document_json(
    engine: Engine,
    state: BonitaState,
    instance: Instance,
    item: DataValue,
    position: int,
    *,
    archived: bool,
) -> dict[str, Any]:
    """ProcessInstanceDocument.yaml / ArchivedProcessInstanceDocument.yaml for one version."""
    stored: StoredFile = item.value[position]
    info = state.info(stored)
    submitted = state.user_id(engine, info.submitted_by or instance.started_by)
    url = info.url or f"documentDownload?fileName={quote(stored.name, safe='')}&contentStorageId={stored.id}"
    body: dict[str, Any] = {
        "id": str(stored.id if archived else item.instance_data_id),
        "creationDate": timestamp(stored.created_at),
        "author": submitted,
        "index": "-1",
        "contentMimetype": stored.content_type,
        "caseId": str(instance.id),
        "contentStorageId": str(stored.id),
        "isInternal": "false" if info.url else "true",
        "description": info.description,
        "name": item.definition.name,
        "fileName": stored.name,
        "submittedBy": submitted,
        "url": url,
        "version": str(position + 1),
    }
    if archived:
        body["sourceObjectId"] = str(item.instance_data_id)
        following = (
            item.value[position + 1].created_at if position + 1 < len(item.value) else instance.ended_at
        )
        body["archivedDate"] = timestamp(following)
    return body


def contract_json(inputs: Iterable[DataDef]) -> dict[str, Any]:
    """Contract.yaml: inputs (name, type, multiple, description) and one constraint per required input."""
    items = list(inputs)
    return {
        "inputs": [
            {
                "name": d.name,
                "type": CONTRACT_TYPES.get(d.type, "TEXT"),
                "multiple": "false",
                "description": "",
                "inputs": [],
            }
            for d in items
        ],
        "constraints": [
            {
                "name": d.name,
                "expression": f"{d.name} != null",
                "explanation": f"Expected input [{d.name}] is missing",
                "inputNames": [d.name],
            }
            for d in items
            if d.required
        ],
    }


def contract_problems(inputs: Iterable[DataDef], given: Mapping[str, Any]) -> list[str]:
    """Every violated rule, phrased the way Bonita's ContractViolationException explains it."""
    problems = []
    for data in inputs:
        value = given.get(data.name)
        if value is None:
            if data.required:
                problems.append(f"Expected input [{data.name}] is missing")
            continue
        kind = CONTRACT_TYPES.get(data.type, "TEXT")
        wrong = (
            (kind == "DECIMAL" and (isinstance(value, bool) or not isinstance(value, int | float)))
            or (kind == "BOOLEAN" and not isinstance(value, bool))
            or (kind in ("TEXT", "LOCALDATE", "OFFSETDATETIME") and not isinstance(value, str))
            or (kind == "FILE" and not _file_input(value))
        )
        if wrong:
            problems.append(f"{value!r} cannot be assigned to input [{data.name}] of type {kind}")
        elif kind == "DECIMAL":
            if data.minimum is not None and value < data.minimum:
                problems.append(f"Input [{data.name}] must be at least {data.minimum}")
            if data.maximum is not None and value > data.maximum:
                problems.append(f"Input [{data.name}] must be at most {data.maximum}")
    return problems


def _file_input(value: Any) -> bool:
    """A FILE input: ``{filename, tempPath, contentType}`` of formFileUpload (or a list of them)."""
    values = value if isinstance(value, list) else [value]
    return all(isinstance(v, Mapping) and v.get("tempPath") for v in values)


def add_document_version(
    engine: Engine,
    state: BonitaState,
    instance: Instance,
    item: DataValue,
    file_name: str,
    *,
    content: bytes | None = None,
    size: int | None = None,
    content_type: str | None = None,
    url: str | None = None,
    submitted_by: str | None = None,
    description: str | None = None,
) -> StoredFile:
    """A new version of the document ``item``: stored content, generated content or an external URL."""
    import mimetypes

    kind = content_type or mimetypes.guess_type(file_name)[0] or "application/octet-stream"
    with engine.lock:
        previous = item.value[-1] if item.value else None
        stored = engine.add_file(
            instance,
            item.definition.number,
            file_name,
            content=b"" if url else content,
            size=None if url else size,
            content_type=kind,
        )
        info = state.info(stored)
        info.url = url
        info.submitted_by = submitted_by or instance.started_by
        if description is not None:
            info.description = description
        elif previous is not None:
            info.description = state.info(previous).description
        return stored


def document_item(engine: Engine, instance: Instance, name: str) -> DataValue:
    """The document (FILE data item) ``name`` of a case, created when the definition lacks it."""
    with engine.lock:
        for item in documents_of(instance):
            if item.definition.name == name:
                return item
        # Bonita attaches documents by name even when the definition did not declare them.
        number = engine.next_id()
        item = DataValue(engine.next_id(), DataDef(number, name, "FILE"), [])
        instance.data[number] = item
        return item
