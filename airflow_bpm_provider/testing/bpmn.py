"""Deploy BPMN 2.0 models (``.bpmn20.xml``, ``.bpmn``, or a ``.bar``/``.zip`` of them) onto the engine.

The emulator engine runs straight lines of user tasks, so a model is read for what that needs: each
executable process's id (the definition key) and name, its user tasks in flow order from the start
event, and the message names of message start events. Everything else in the model is ignored.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field

from airflow_bpm_provider.testing.engine import Deployment, Engine, EngineError, ProcessDefinition, TaskDef

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
MODEL_SUFFIXES = (".bpmn20.xml", ".bpmn")
ARCHIVE_SUFFIXES = (".bar", ".zip")


@dataclass
class ParsedProcess:
    key: str
    name: str
    user_tasks: list[tuple[str, str]] = field(default_factory=list)  # (id, name) in flow order
    start_messages: list[str] = field(default_factory=list)


def _tag(name: str) -> str:
    return f"{{{BPMN_NS}}}{name}"


def parse_bpmn(content: bytes) -> list[ParsedProcess]:
    from lxml import etree

    # Uploaded XML is untrusted: no entities, no network.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(content, parser)
    except etree.XMLSyntaxError as exc:
        raise EngineError("invalid", f"the model is not well-formed XML: {exc}") from None
    messages = {m.get("id"): m.get("name") or m.get("id") for m in root.iter(_tag("message"))}
    processes = []
    for process in root.iter(_tag("process")):
        if process.get("isExecutable", "true").lower() == "false" or not process.get("id"):
            continue
        processes.append(_parse_process(process, messages))
    if not processes:
        raise EngineError("invalid", "the model has no executable BPMN process")
    return processes


def _parse_process(process: object, messages: Mapping[str | None, str | None]) -> ParsedProcess:
    nodes = {child.get("id"): child for child in process if isinstance(child.tag, str)}  # type: ignore[attr-defined]
    flows: dict[str, list[str]] = {}
    for flow in process.iter(_tag("sequenceFlow")):  # type: ignore[attr-defined]
        flows.setdefault(flow.get("sourceRef"), []).append(flow.get("targetRef"))
    starts = [node for node in nodes.values() if node.tag == _tag("startEvent")]
    parsed = ParsedProcess(key=process.get("id"), name=process.get("name") or process.get("id"))  # type: ignore[attr-defined]
    for start in starts:
        for definition in start.iter(_tag("messageEventDefinition")):
            name = messages.get(definition.get("messageRef")) or definition.get("messageRef")
            if name:
                parsed.start_messages.append(name)
    # Breadth-first from the start events: a linear model gives its tasks in order; branches are
    # flattened, which is all the emulator's straight-line engine can run anyway.
    seen: set[str] = set()
    queue = [start.get("id") for start in starts]
    while queue:
        node_id = queue.pop(0)
        if node_id in seen or node_id not in nodes:
            continue
        seen.add(node_id)
        node = nodes[node_id]
        if node.tag == _tag("userTask"):
            parsed.user_tasks.append((node_id, node.get("name") or node_id))
        queue.extend(flows.get(node_id, []))
    return parsed


def model_resources(file_name: str, content: bytes) -> dict[str, bytes]:
    """The BPMN resources of an upload: the file itself, or the models inside an archive."""
    lower = file_name.lower()
    if lower.endswith(MODEL_SUFFIXES):
        return {file_name: content}
    if lower.endswith(ARCHIVE_SUFFIXES):
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                return {
                    info.filename: archive.read(info)
                    for info in archive.infolist()
                    if info.filename.lower().endswith(MODEL_SUFFIXES)
                }
        except zipfile.BadZipFile:
            raise EngineError("invalid", f"{file_name} is not a zip archive") from None
    raise EngineError("invalid", "File must be of type .bpmn20.xml, .bpmn, .bar or .zip")


def deploy_model(
    engine: Engine, file_name: str, content: bytes, *, name: str | None = None, tenant_id: str = ""
) -> tuple[Deployment, list[ProcessDefinition]]:
    """Parse an upload and deploy every process in it as a new definition version."""
    resources = model_resources(file_name, content)
    parsed = [process for data in resources.values() for process in parse_bpmn(data)]
    if not parsed:
        raise EngineError("invalid", f"{file_name} contains no BPMN model")
    with engine.lock:
        deployment = engine.add_deployment(name or file_name, resources, tenant_id=tenant_id)
        definitions = []
        for process in parsed:
            tasks = [
                TaskDef(name=task_name, node_number=index, key=task_id)
                for index, (task_id, task_name) in enumerate(process.user_tasks, start=1)
            ]
            definition = engine.deploy(process.key, process.name, tasks=tasks, category="BPMN")
            definition.deployment_id = deployment.id
            definition.tenant_id = tenant_id
            definition.start_messages = list(process.start_messages)
            definitions.append(definition)
    return deployment, definitions
