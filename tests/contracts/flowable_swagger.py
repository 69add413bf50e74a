"""Check captured HTTP requests against Flowable's official Swagger 2.0 spec of its process REST API.

``flowable-swagger-process.yaml`` is Flowable's own file, unmodified, under the Apache License 2.0
(``flowable-LICENSE.txt`` beside it). A request passes when its method and path exist in the spec
and its query parameters, form fields and JSON body fields are all declared there, with every
required one present.

The spec leaves out a few parameters the engines do read; they are allowed explicitly here, each
with the document that names it.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

SPEC = Path(__file__).with_name("flowable-swagger-process.yaml")
BASE_PATHS = ("/flowable-rest/service", "/activiti-rest/service", "/bpmn")

# Paging and sorting apply to every list ("The general paging and sorting query-parameters can be
# used for this URL", Activiti/Flowable user guide); the spec declares them on few operations.
PAGING = frozenset({"start", "size", "sort", "order"})
UNDECLARED = {
    # Seed 004 (WSO2 EI BPMN REST API, "Delete a Task"): ?cascadeHistory=..&deleteReason=..
    ("DELETE", "/runtime/tasks/{taskId}"): frozenset({"cascadeHistory", "deleteReason"}),
}


@cache
def spec() -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC.open("rb") as handle:
        return yaml.load(handle, Loader=loader)


@cache
def _templates() -> list[tuple[re.Pattern[str], str, int]]:
    out = []
    for template in spec()["paths"]:
        pattern = re.escape(template).replace(r"\*\*", ".+")
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", pattern)
        out.append((re.compile(f"^{pattern}$"), template, template.count("{")))
    return out


def operation_for(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The spec's path template and operation for a request path (base path stripped)."""
    for base in BASE_PATHS:
        if path.startswith(base + "/"):
            path = path[len(base) :]
            break
    matches = sorted(
        ((params, template) for regex, template, params in _templates() if regex.match(path)),
        key=lambda match: match[0],
    )
    if not matches:
        raise AssertionError(f"{method} {path}: no such path in the Flowable REST API")
    for _, template in matches:  # the most literal template first
        operation = spec()["paths"][template].get(method.lower())
        if operation is not None:
            return template, operation
    raise AssertionError(f"{method} {path}: the Flowable REST API has no {method} on {matches[0][1]}")


def _definition(ref: str) -> dict[str, Any]:
    return spec()["definitions"][ref.rsplit("/", 1)[-1]]


def check_request(request: Any) -> None:
    """Raise AssertionError naming what a werkzeug request does that the spec does not declare."""
    method = request.method
    template, operation = operation_for(method, request.path)
    where = f"{method} {template}"
    parameters = operation.get("parameters", [])
    declared_query = {p["name"]: p for p in parameters if p.get("in") == "query"}
    allowed = set(declared_query) | PAGING | UNDECLARED.get((method, template), frozenset())
    for name in request.args:
        assert name in allowed, f"{where}: query parameter {name!r} is not in the spec"
        enum = declared_query.get(name, {}).get("enum")
        if enum:
            assert request.args[name] in enum, f"{where}: {name}={request.args[name]!r} not in {enum}"
        if declared_query.get(name, {}).get("type") == "boolean":
            assert request.args[name] in ("true", "false"), f"{where}: {name} must be true or false"
    for p in parameters:
        if p.get("required") and p.get("in") == "query":
            assert p["name"] in request.args, f"{where}: required query parameter {p['name']!r} missing"

    form_params = {p["name"]: p for p in parameters if p.get("in") == "formData"}
    if (request.content_type or "").startswith("multipart/form-data"):
        assert form_params, f"{where}: the spec takes no multipart body here"
        sent = set(request.form) | set(request.files)
        for name in sent:
            assert name in form_params, f"{where}: form field {name!r} is not in the spec"
        for name, p in form_params.items():
            if p.get("required"):
                assert name in sent, f"{where}: required form field {name!r} missing"
        return

    body_param = next((p for p in parameters if p.get("in") == "body"), None)
    raw = request.get_data()
    if not raw:
        if body_param is not None and body_param.get("required"):
            raise AssertionError(f"{where}: a body is required")
        return
    assert body_param is not None or form_params, f"{where}: the spec takes no request body"
    body = json.loads(raw)
    schema = (body_param or {}).get("schema", {})
    if "$ref" not in schema or not isinstance(body, dict):
        return  # free-form or a list (variables): nothing declared to check fields against
    definition = _definition(schema["$ref"])
    properties = definition.get("properties") or {}
    if not properties:
        return
    for name in body:
        assert name in properties, f"{where}: body field {name!r} is not in {schema['$ref']}"
    for name in definition.get("required", []):
        assert name in body, f"{where}: required body field {name!r} missing"
    for name, value in body.items():
        items = properties[name].get("items", {})
        if properties[name].get("type") == "array" and "$ref" in items and isinstance(value, list):
            item_props = _definition(items["$ref"]).get("properties") or {}
            for item in value:
                for key in item:
                    assert key in item_props, f"{where}: {name}[].{key} is not in {items['$ref']}"
