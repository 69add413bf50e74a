"""The emulated Activiti / Flowable REST API, spoken to with plain HTTP as the vendors document it."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_bpm_provider.testing.engine import COMPLETED, DataDef, TaskDef
from airflow_bpm_provider.testing.server import Emulator

USER = ("WSO2.COM/kermit", "kermit-pw")  # a secondary user store login: DOMAIN/user
OTHER = ("gonzo", "gonzo-pw")
BASES = ["/bpmn", "/activiti-rest/service", "/flowable-rest/service"]
TENANT = "-1234"  # WSO2's super tenant: what WSO2 EI deploys its definitions for
TENANT_REQUIRED = "TenantId should be specified to be used with either processDefinitionKey or message."

MODEL = b"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" targetNamespace="demo">
  <message id="msgNewOrder" name="newOrderMessage"/>
  <process id="order" name="Order handling" isExecutable="true">
    <startEvent id="theStart"/>
    <startEvent id="byMessage"><messageEventDefinition messageRef="msgNewOrder"/></startEvent>
    <sequenceFlow id="f1" sourceRef="theStart" targetRef="review"/>
    <sequenceFlow id="f2" sourceRef="byMessage" targetRef="review"/>
    <userTask id="review" name="Review order"/>
    <sequenceFlow id="f3" sourceRef="review" targetRef="ship"/>
    <userTask id="ship" name="Ship order"/>
    <sequenceFlow id="f4" sourceRef="ship" targetRef="theEnd"/>
    <endEvent id="theEnd"/>
  </process>
</definitions>
"""


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    emulator = Emulator.start()
    emulator.engine.add_user(*USER)
    emulator.engine.add_user(*OTHER)
    try:
        yield emulator
    finally:
        emulator.stop()


class Client:
    def __init__(self, emu: Emulator, base: str = "/bpmn", auth: tuple[str, str] | None = USER) -> None:
        self.root = emu.url + base
        self.session = requests.Session()
        self.session.auth = auth

    def call(self, method: str, path: str, status: int | None = None, **kwargs: Any) -> Any:
        """The raw reply without ``status``; with it, the status is checked and JSON decoded."""
        reply = self.session.request(method, self.root + path, **kwargs)
        if status is None:
            return reply
        assert reply.status_code == status, reply.text
        if not reply.content or not reply.headers.get("content-type", "").startswith("application/json"):
            return reply
        return reply.json()

    def deploy(self, name: str = "order.bpmn20.xml", content: bytes = MODEL, **params: str) -> dict:
        return self.call(
            "POST", "/repository/deployments", 201, files={"file": (name, content)}, params=params
        )

    def start(self, **body: Any) -> dict:
        """Start in the super tenant by key or message (WSO2 requires a tenant there), as sent."""
        if "processDefinitionId" not in body:
            body.setdefault("tenantId", TENANT)
        return self.call("POST", "/runtime/process-instances", 201, json=body)

    def tasks(self, instance_id: str) -> list[dict]:
        return self.call("GET", "/runtime/tasks", 200, params={"processInstanceId": instance_id})["data"]


@pytest.fixture(scope="module")
def deployed(emu: Emulator) -> dict:
    # WSO2's /bpmn cannot deploy; the model lands in its super tenant as a Carbon app would put it.
    return Client(emu, "/activiti-rest/service").deploy(tenantId=TENANT)


def error_of(reply: requests.Response, base: str) -> str:
    body = reply.json()
    if base == "/bpmn":
        assert body["statusCode"] == reply.status_code  # WSO2's documented error body
        return body["errorMessage"]
    assert set(body) == {"message", "exception"}  # Activiti 5.17+ / Flowable ErrorInfo
    return body["exception"]


# ---- auth and errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("base", BASES)
def test_every_request_needs_basic_credentials_of_an_engine_user(emu: Emulator, base: str):
    for auth in (None, (USER[0], "wrong")):
        reply = Client(emu, base, auth=auth).call("GET", "/runtime/tasks")
        assert reply.status_code == 401
        assert reply.headers["WWW-Authenticate"].startswith("Basic")
        assert "Basic credentials" in error_of(reply, base)


# ---- repository --------------------------------------------------------------------------------


def test_deploying_a_model_creates_definitions_from_its_processes(emu: Emulator, deployed: dict):
    client = Client(emu, "/activiti-rest/service")
    assert deployed["name"] == "order.bpmn20.xml" and deployed["tenantId"] == TENANT
    assert client.call("GET", f"/repository/deployments/{deployed['id']}", 200)["id"] == deployed["id"]
    listed = client.call("GET", "/repository/deployments", 200, params={"name": "order.bpmn20.xml"})
    assert deployed["id"] in [d["id"] for d in listed["data"]]
    definitions = client.call(
        "GET", "/repository/process-definitions", 200, params={"deploymentId": deployed["id"]}
    )
    (definition,) = definitions["data"]
    assert definition["key"] == "order" and definition["name"] == "Order handling"
    assert definition["id"] == f"order:{definition['version']}:{definition['id'].rsplit(':', 1)[1]}"
    assert definition["deploymentId"] == deployed["id"] and definition["suspended"] is False
    assert client.call("GET", f"/repository/process-definitions/{definition['id']}", 200)["key"] == "order"
    engine_definition = emu.engine.definitions[int(definition["id"].rsplit(":", 1)[1])]
    assert [t.name for t in engine_definition.tasks] == ["Review order", "Ship order"]
    assert engine_definition.start_messages == ["newOrderMessage"]


def test_a_bar_archive_deploys_every_model_inside(emu: Emulator):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bar:
        bar.writestr("processes/second.bpmn20.xml", MODEL.replace(b'id="order"', b'id="second"'))
        bar.writestr("readme.txt", "not a model")
    client = Client(emu, "/flowable-rest/service")
    deployment = client.deploy("bundle.bar", archive.getvalue(), tenantId="acme")
    assert deployment["tenantId"] == "acme"
    latest = client.call(
        "GET", "/repository/process-definitions", 200, params={"key": "second", "latest": "true"}
    )
    assert [(d["key"], d["tenantId"]) for d in latest["data"]] == [("second", "acme")]


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("notes.txt", b"x", "File must be of type"),
        ("broken.bpmn20.xml", b"<definitions", "not well-formed"),
        (
            "empty.bpmn",
            b'<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"/>',
            "no executable",
        ),
    ],
)
def test_a_bad_upload_is_refused(emu: Emulator, name: str, content: bytes, fragment: str):
    client = Client(emu, "/activiti-rest/service")
    reply = client.call("POST", "/repository/deployments", files={"file": (name, content)})
    assert reply.status_code == 400 and fragment in error_of(reply, "/activiti-rest/service")


def test_wso2_lists_deployments_but_cannot_create_them(emu: Emulator, deployed: dict):
    # Seed 004 documents GET repository/deployments and GET .../{id} only; WSO2's REST layer has
    # no POST there (a .bar is deployed in a Carbon application or the management console).
    client = Client(emu, "/bpmn")
    before = len(emu.engine.deployments)
    reply = client.call("POST", "/repository/deployments", files={"file": ("order.bpmn20.xml", MODEL)})
    assert reply.status_code == 405 and reply.headers["Allow"] == "GET"
    assert error_of(reply, "/bpmn")
    assert len(emu.engine.deployments) == before
    listed = client.call("GET", "/repository/deployments", 200)
    assert deployed["id"] in [d["id"] for d in listed["data"]]
    assert client.call("GET", f"/repository/deployments/{deployed['id']}", 200)["tenantId"] == TENANT


def test_definitions_seeded_from_python_have_a_deployment_too(emu: Emulator):
    definition = emu.engine.deploy("seeded-python", "Seeded", tasks=[TaskDef("Do", 1, "do")])
    client = Client(emu, "/flowable-rest/service")
    listed = client.call("GET", "/repository/process-definitions", 200, params={"key": "seeded-python"})
    deployment_id = listed["data"][0]["deploymentId"]
    assert deployment_id == str(definition.id)
    assert (
        client.call("GET", f"/repository/deployments/{deployment_id}", 200)["name"]
        == "seeded-python.bpmn20.xml"
    )


# ---- starting ----------------------------------------------------------------------------------


@pytest.mark.parametrize("base", BASES)
def test_start_by_key_with_business_key_and_typed_variables(emu: Emulator, deployed: dict, base: str):
    client = Client(emu, base)
    started = client.start(
        processDefinitionKey="order",
        businessKey="myBusinessKey",
        variables=[
            {"name": "myVar", "value": "This is a variable"},
            {"name": "count", "type": "integer", "value": 3},
            {"name": "big", "type": "long", "value": 2**40},
            {"name": "due", "type": "date", "value": "2015-01-17T13:06:02.438+02:00"},
        ],
    )
    assert started["businessKey"] == "myBusinessKey"
    assert started["suspended"] is False and started["ended"] is False
    assert started["processDefinitionId"].startswith("order:") and started["activityId"] == "review"
    assert ("startTime" in started) is (base == "/flowable-rest/service")  # a newer Flowable field
    variables = client.call("GET", f"/runtime/process-instances/{started['id']}/variables", 200)
    assert {v["name"]: (v["type"], v["value"]) for v in variables} == {
        "myVar": ("string", "This is a variable"),
        "count": ("integer", 3),
        "big": ("long", 2**40),
        "due": ("date", "2015-01-17T11:06:02.438+0000"),
    }


def test_start_by_id_and_by_message(emu: Emulator, deployed: dict):
    client = Client(emu)
    definition = client.call(
        "GET", "/repository/process-definitions", 200, params={"deploymentId": deployed["id"]}
    )
    by_id = client.start(processDefinitionId=definition["data"][0]["id"])
    assert by_id["processDefinitionId"] == definition["data"][0]["id"]
    by_message = client.start(message="newOrderMessage", businessKey="via-message")
    assert by_message["processDefinitionId"].startswith("order:")


@pytest.mark.parametrize("target", [{"processDefinitionKey": "order"}, {"message": "newOrderMessage"}])
@pytest.mark.parametrize("tenant", [{}, {"tenantId": ""}])
def test_wso2_refuses_a_start_by_key_or_message_without_a_tenant(emu: Emulator, deployed, target, tenant):
    # Seed 004: "When sending a request body with the processDefinitionKey or message, providing
    # the tenantId is mandatory."
    before = len(emu.engine.instances)
    reply = Client(emu, "/bpmn").call("POST", "/runtime/process-instances", json={**target, **tenant})
    assert reply.status_code == 400
    assert error_of(reply, "/bpmn") == TENANT_REQUIRED
    assert len(emu.engine.instances) == before


def test_only_wso2_insists_on_the_tenant(emu: Emulator, deployed: dict):
    definition_id = Client(emu).call(
        "GET", "/repository/process-definitions", 200, params={"deploymentId": deployed["id"]}
    )["data"][0]["id"]
    assert (
        Client(emu, "/bpmn").start(processDefinitionId=definition_id)["processDefinitionId"] == definition_id
    )
    # Activiti 5.21 itself looks the key up without a tenant, so a tenant's definition stays unseen.
    reply = Client(emu, "/activiti-rest/service").call(
        "POST", "/runtime/process-instances", json={"processDefinitionKey": "order"}
    )
    assert reply.status_code == 400
    assert "no processes deployed with key 'order'" in error_of(reply, "/activiti-rest/service")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"processDefinitionKey": "nope"}, "no processes deployed with key 'nope'"),
        ({"processDefinitionKey": "order", "tenantId": "other"}, "for tenant identifier 'other'"),
        ({"processDefinitionId": "nope:1:999999"}, "no deployed process definition found with id"),
        ({"message": "nobody"}, "no subscription to message with name 'nobody'"),
        ({}, "Either processDefinitionId, processDefinitionKey or message is required"),
        ({"processDefinitionKey": "order", "message": "x"}, "Only one of"),
        ({"processDefinitionId": "order:1:1", "tenantId": "t"}, "TenantId can only be used"),
        (
            {"processDefinitionKey": "order", "variables": [{"name": "n", "type": "integer", "value": "x"}]},
            "converter can only convert integers",
        ),
        (
            {
                "processDefinitionKey": "order",
                "variables": [{"name": "n", "type": "integer", "value": 2**40}],
            },
            "does not fit type integer",
        ),
        (
            {"processDefinitionKey": "order", "variables": [{"name": "n", "type": "json", "value": {}}]},
            "unsupported type: 'json'",  # Activiti 5 has no json variables
        ),
    ],
)
def test_start_refusals_answer_400_with_the_engines_message(emu: Emulator, deployed: dict, body, fragment):
    before = len(emu.engine.instances)
    reply = Client(emu, "/activiti-rest/service").call("POST", "/runtime/process-instances", json=body)
    assert reply.status_code == 400, reply.text
    assert fragment in error_of(reply, "/activiti-rest/service")
    assert len(emu.engine.instances) == before


def test_flowable_keeps_json_variables(emu: Emulator, deployed: dict):
    client = Client(emu, "/flowable-rest/service")
    started = client.start(
        processDefinitionKey="order",
        variables=[{"name": "order", "type": "json", "value": {"lines": [1, 2]}}],
        returnVariables=True,
    )
    assert started["variables"] == [
        {"name": "order", "type": "json", "value": {"lines": [1, 2]}, "scope": "local"}
    ]


# ---- instances: runtime and history ------------------------------------------------------------


def test_suspend_activate_and_conflicts(emu: Emulator, deployed: dict):
    client = Client(emu)
    instance = client.start(processDefinitionKey="order")
    path = f"/runtime/process-instances/{instance['id']}"
    assert client.call("PUT", path, 200, json={"action": "suspend"})["suspended"] is True
    again = client.call("PUT", path, json={"action": "suspend"})
    assert again.status_code == 409 and "already suspended" in error_of(again, "/bpmn")
    task_id = client.tasks(instance["id"])[0]["id"]
    assert client.tasks(instance["id"])[0]["suspended"] is True
    refused = client.call("POST", f"/runtime/tasks/{task_id}", json={"action": "complete"})
    assert refused.status_code == 409
    assert client.call("PUT", path, 200, json={"action": "activate"})["suspended"] is False
    bad = client.call("PUT", path, json={"action": "pause"})
    assert bad.status_code == 400 and "Invalid action" in error_of(bad, "/bpmn")


@pytest.mark.parametrize("base", BASES)
def test_an_ended_instance_is_404_at_runtime_and_lives_on_in_history(
    emu: Emulator, deployed: dict, base: str
):
    client = Client(emu, base)
    instance = client.start(processDefinitionKey="order", businessKey="to-finish")
    for _ in range(2):
        task_id = client.tasks(instance["id"])[0]["id"]
        client.call("POST", f"/runtime/tasks/{task_id}", 200, json={"action": "complete"})
    gone = client.call("GET", f"/runtime/process-instances/{instance['id']}")
    assert gone.status_code == 404 and instance["id"] in error_of(gone, base)
    assert client.call("GET", f"/runtime/process-instances/{instance['id']}/variables").status_code == 404
    history = client.call("GET", f"/history/historic-process-instances/{instance['id']}", 200)
    assert history["endTime"] and history["deleteReason"] is None and history["businessKey"] == "to-finish"
    assert history["durationInMillis"] >= 0 and history["startTime"] <= history["endTime"]


def test_deleting_records_the_reason_in_history(emu: Emulator, deployed: dict):
    client = Client(emu)
    instance = client.start(processDefinitionKey="order")
    path = f"/runtime/process-instances/{instance['id']}"
    reply = client.call("DELETE", path, params={"deleteReason": "duplicate order"})
    assert reply.status_code == 204 and reply.content == b""
    assert client.call("DELETE", path).status_code == 404
    history = client.call("GET", f"/history/historic-process-instances/{instance['id']}", 200)
    assert history["deleteReason"] == "duplicate order" and history["endTime"]
    assert client.tasks(instance["id"]) == []


@pytest.mark.parametrize(
    ("base", "recorded"),
    [
        ("/bpmn", ""),  # WSO2's REST layer turns a missing deleteReason into ""
        ("/activiti-rest/service", "ACTIVITI_DELETED"),  # Activiti 5.21's DeleteProcessInstanceCmd
    ],
)
def test_deleting_without_a_reason_records_the_servers_default(emu, deployed, base, recorded):
    client = Client(emu, base)
    instance = client.start(processDefinitionKey="order")
    assert client.call("DELETE", f"/runtime/process-instances/{instance['id']}").status_code == 204
    history = client.call("GET", f"/history/historic-process-instances/{instance['id']}", 200)
    assert history["deleteReason"] == recorded and history["endTime"]
    assert history["endActivityId"] is None  # deleted, not ended at an end event


def test_runtime_list_and_query_page_with_start_and_size(emu: Emulator, deployed: dict):
    client = Client(emu, "/flowable-rest/service")
    ids = [client.start(processDefinitionKey="order", businessKey="paged")["id"] for _ in range(5)]
    first = client.call(
        "GET", "/runtime/process-instances", 200, params={"businessKey": "paged", "start": 0, "size": 2}
    )
    assert first["total"] == 5 and [r["id"] for r in first["data"]] == ids[:2] and first["size"] == 2
    rest = client.call(
        "POST", "/query/process-instances", 200,
        json={"processBusinessKey": "paged", "start": 2, "size": 10, "sort": "id", "order": "desc"},
    )  # fmt: skip
    assert [r["id"] for r in rest["data"]] == list(reversed(ids))[2:]
    default = client.call(
        "GET", "/runtime/process-instances", 200, params={"businessKey": "paged", "size": ""}
    )
    assert default["start"] == 0
    bad = client.call("GET", "/runtime/process-instances", params={"sort": "colour"})
    assert bad.status_code == 400 and "'colour' is not a valid property" in error_of(
        bad, "/flowable-rest/service"
    )


def test_include_process_variables_gives_short_pages_like_flowable_engine_1348(emu: Emulator, deployed: dict):
    client = Client(emu, "/flowable-rest/service")
    for n in range(3):
        client.start(
            processDefinitionKey="order",
            businessKey="joined",
            variables=[{"name": "a", "value": n}, {"name": "b", "value": n}, {"name": "c", "value": n}],
        )
    params = {"businessKey": "joined", "start": 0, "size": 3}
    plain = client.call("GET", "/runtime/process-instances", 200, params=params)
    assert len(plain["data"]) == 3 and plain["total"] == 3
    joined = client.call(
        "GET", "/runtime/process-instances", 200, params={**params, "includeProcessVariables": "true"}
    )
    assert joined["total"] == 3 and len(joined["data"]) == 1  # 3 variable rows of the first instance
    assert {v["name"] for v in joined["data"][0]["variables"]} == {"a", "b", "c"}


def test_history_lists_running_and_ended_instances_with_filters(emu: Emulator, deployed: dict):
    client = Client(emu)
    running = client.start(processDefinitionKey="order", businessKey="hist")
    ended = client.start(processDefinitionKey="order", businessKey="hist")
    client.call("DELETE", f"/runtime/process-instances/{ended['id']}", params={"deleteReason": "x"})
    all_of_them = client.call(
        "GET", "/history/historic-process-instances", 200, params={"businessKey": "hist"}
    )
    assert {r["id"] for r in all_of_them["data"]} == {running["id"], ended["id"]}
    finished = client.call(
        "GET", "/history/historic-process-instances", 200, params={"businessKey": "hist", "finished": "true"}
    )
    assert [r["id"] for r in finished["data"]] == [ended["id"]]
    newest = client.call(
        "GET",
        "/history/historic-process-instances",
        200,
        params={"businessKey": "hist", "sort": "startTime", "order": "desc", "size": 1},
    )
    assert newest["data"][0]["id"] == ended["id"] and newest["total"] == 2
    started_at = all_of_them["data"][0]["startTime"]
    later = client.call(
        "POST",
        "/query/historic-process-instances",
        200,
        json={"processBusinessKey": "hist", "startedAfter": "2999-01-01T00:00:00Z"},
    )
    assert later["total"] == 0 and started_at


@pytest.mark.parametrize(
    ("base", "value", "status"),
    [
        ("/bpmn", "2000-01-01T00:00:00Z", 200),
        ("/bpmn", "2000-01-01T02:00:00+02:00", 200),
        ("/bpmn", "2000-01-01T00:00:00.000Z", 400),  # RequestUtil: yyyy-MM-dd'T'HH:mm:ssz only
        ("/bpmn", "2000-01-01", 400),
        ("/activiti-rest/service", "2000-01-01T00:00:00Z", 200),
        ("/activiti-rest/service", "2000-01-01T00:00:00.123+00:00", 400),
        ("/flowable-rest/service", "2000-01-01T00:00:00.000Z", 200),
    ],
)
def test_query_string_dates_are_read_as_strictly_as_each_server_does(emu, deployed, base, value, status):
    client = Client(emu, base)
    client.start(processDefinitionKey="order")
    reply = client.call("GET", "/history/historic-process-instances", params={"startedAfter": value})
    assert reply.status_code == status, reply.text
    if status == 400:
        assert error_of(reply, base) == f"Failed to parse date {value}"
    else:
        assert reply.json()["total"] >= 1


@pytest.mark.parametrize("base", BASES)
def test_dates_in_a_query_body_may_carry_a_fraction(emu: Emulator, deployed: dict, base: str):
    # A JSON body goes through Jackson's ISO 8601 parser, not RequestUtil.
    client = Client(emu, base)
    client.start(processDefinitionKey="order")
    body = {"startedAfter": "2000-01-01T00:00:00.000Z"}
    assert client.call("POST", "/query/historic-process-instances", 200, json=body)["total"] >= 1


# ---- variables ---------------------------------------------------------------------------------


def test_variables_create_update_and_binary_data(emu: Emulator, deployed: dict):
    client = Client(emu, "/activiti-rest/service")
    instance = client.start(processDefinitionKey="order")
    root = f"/runtime/process-instances/{instance['id']}/variables"
    created = client.call("POST", root, 201, json=[{"name": "note", "type": "string", "value": "a"}])
    assert created == [{"name": "note", "type": "string", "value": "a", "scope": "local"}]
    duplicate = client.call("POST", root, json=[{"name": "note", "value": "b"}])
    assert duplicate.status_code == 409 and "already present" in error_of(duplicate, "/activiti-rest/service")
    client.call(
        "PUT", root, 201, json=[{"name": "note", "value": "b"}, {"name": "n", "type": "short", "value": 7}]
    )
    assert client.call("GET", f"{root}/note", 200)["value"] == "b"
    assert client.call("GET", f"{root}/n", 200) == {
        "name": "n",
        "type": "short",
        "value": 7,
        "scope": "local",
    }
    updated = client.call("PUT", f"{root}/n", 200, json={"name": "n", "type": "double", "value": 1.5})
    assert updated["type"] == "double"
    mismatch = client.call("PUT", f"{root}/n", json={"name": "m", "value": 1})
    assert mismatch.status_code == 400
    assert client.call("GET", f"{root}/missing").status_code == 404

    content = bytes(range(256)) * 300
    binary = client.call(
        "PUT", root, 201, files={"file": ("scan.pdf", content, "application/pdf")}, data={"name": "scan"}
    )
    assert binary["type"] == "binary" and binary["value"] is None
    assert binary["valueUrl"].endswith(f"/activiti-rest/service{root}/scan/data")
    data = client.call("GET", f"{root}/scan/data", 200)
    assert data.content == content and data.headers["content-length"] == str(len(content))
    assert client.call("GET", f"{root}/note/data").status_code == 404
    replaced = client.call(
        "PUT", f"{root}/scan", 200, files={"file": ("v2", b"second")}, data={"name": "scan"}
    )
    assert replaced["name"] == "scan"
    assert client.call("GET", f"{root}/scan/data", 200).content == b"second"
    again = client.call("POST", root, files={"file": ("x", b"x")}, data={"name": "scan"})
    assert again.status_code == 409


def test_history_keeps_variables_and_their_data(emu: Emulator, deployed: dict):
    client = Client(emu)
    instance = client.start(processDefinitionKey="order", variables=[{"name": "amount", "value": 12}])
    iid = instance["id"]
    client.call(
        "PUT",
        f"/runtime/process-instances/{iid}/variables",
        201,
        files={"file": ("f", b"kept")},
        data={"name": "doc"},
    )
    client.call("DELETE", f"/runtime/process-instances/{iid}")
    rows = client.call("GET", "/history/historic-variable-instances", 200, params={"processInstanceId": iid})
    by_name = {row["variable"]["name"]: row for row in rows["data"]}
    assert by_name["amount"]["variable"] == {"name": "amount", "type": "integer", "value": 12}
    assert by_name["doc"]["variable"]["type"] == "binary" and by_name["doc"]["taskId"] is None
    assert (
        client.call("GET", f"/history/historic-process-instances/{iid}/variables/doc/data", 200).content
        == b"kept"
    )
    assert client.call("GET", f"/runtime/process-instances/{iid}/variables/doc/data").status_code == 404


def test_a_truncation_fault_cuts_the_download_short(emu: Emulator, deployed: dict):
    client = Client(emu)
    instance = client.start(processDefinitionKey="order")
    root = f"/runtime/process-instances/{instance['id']}/variables"
    client.call("PUT", root, 201, files={"file": ("f", b"x" * 200_000)}, data={"name": "big"})
    emu.faults.truncate(f"{root}/big/data")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        client.call("GET", f"{root}/big/data")
    assert len(client.call("GET", f"{root}/big/data", 200).content) == 200_000


# ---- tasks -------------------------------------------------------------------------------------


def test_task_shapes_differ_like_the_documented_servers(emu: Emulator, deployed: dict):
    instance = Client(emu).start(processDefinitionKey="order")
    wso2 = Client(emu, "/bpmn").tasks(instance["id"])[0]
    assert wso2["processInstance"].endswith(f"/bpmn/runtime/process-instances/{instance['id']}")
    assert "processInstanceId" not in wso2
    flowable = Client(emu, "/flowable-rest/service").tasks(instance["id"])[0]
    assert flowable["processInstanceId"] == instance["id"] and flowable["name"] == "Review order"
    assert flowable["taskDefinitionKey"] == "review" and "claimTime" in flowable


def test_claim_conflict_delegate_resolve_and_complete_with_variables(emu: Emulator, deployed: dict):
    kermit, gonzo = Client(emu), Client(emu, auth=OTHER)
    instance = kermit.start(processDefinitionKey="order")
    task_id = kermit.tasks(instance["id"])[0]["id"]
    path = f"/runtime/tasks/{task_id}"
    kermit.call("POST", path, 200, json={"action": "claim", "assignee": USER[0]})
    kermit.call("POST", path, 200, json={"action": "claim", "assignee": USER[0]})  # same user again: fine
    conflict = gonzo.call("POST", path, json={"action": "claim", "assignee": "gonzo"})
    assert conflict.status_code == 409
    assert error_of(conflict, "/bpmn") == f"Task '{task_id}' is already claimed by someone else."
    kermit.call("POST", path, 200, json={"action": "delegate", "assignee": "gonzo"})
    delegated = kermit.call("GET", path, 200)
    assert (delegated["assignee"], delegated["owner"], delegated["delegationState"]) == (
        "gonzo",
        USER[0],
        "pending",
    )
    kermit.call("POST", path, 200, json={"action": "resolve"})
    resolved = kermit.call("GET", path, 200)
    assert (resolved["assignee"], resolved["delegationState"]) == (USER[0], "resolved")
    bad = kermit.call("POST", path, json={"action": "approve"})
    assert bad.status_code == 400 and "Invalid action: 'approve'" in error_of(bad, "/bpmn")
    kermit.call(
        "POST", path, 200, json={"action": "complete", "variables": [{"name": "approved", "value": True}]}
    )
    assert kermit.call("GET", path).status_code == 404
    variables = kermit.call("GET", f"/runtime/process-instances/{instance['id']}/variables", 200)
    assert {"name": "approved", "type": "boolean", "value": True, "scope": "local"} in variables
    (second,) = kermit.tasks(instance["id"])
    assert second["name"] == "Ship order"


def test_update_query_and_delete_tasks(emu: Emulator, deployed: dict):
    client = Client(emu)
    instance = client.start(processDefinitionKey="order", businessKey="update-me")
    task_id = client.tasks(instance["id"])[0]["id"]
    path = f"/runtime/tasks/{task_id}"
    updated = client.call(
        "PUT", path, 200,
        json={"name": "Check order", "priority": 20, "dueDate": "2030-01-17T13:06:02.438+02:00",
              "owner": "boss"},
    )  # fmt: skip
    assert (updated["name"], updated["priority"], updated["owner"]) == ("Check order", 20, "boss")
    assert updated["dueDate"] == "2030-01-17T11:06:02.438+0000"
    found = client.call("POST", "/query/tasks", 200, json={"name": "Check order", "priority": 20})
    assert [t["id"] for t in found["data"]] == [task_id]
    assert client.call("GET", "/runtime/tasks", 200, params={"nameLike": "Check%"})["total"] >= 1
    cleared = client.call("PUT", path, 200, json={"dueDate": None})
    assert cleared["dueDate"] is None and cleared["name"] == "Check order"
    refused = client.call("DELETE", path, params={"cascadeHistory": "true"})
    assert refused.status_code == 403 and "part of a process-instance" in error_of(refused, "/bpmn")


def test_historic_tasks_list_open_and_completed_ones(emu: Emulator, deployed: dict):
    client = Client(emu)
    instance = client.start(processDefinitionKey="order")
    first = client.tasks(instance["id"])[0]["id"]
    client.call("POST", f"/runtime/tasks/{first}", 200, json={"action": "complete"})
    rows = client.call(
        "GET", "/history/historic-task-instances", 200, params={"processInstanceId": instance["id"]}
    )
    assert [(r["name"], r["endTime"] is not None) for r in rows["data"]] == [
        ("Review order", True),
        ("Ship order", False),
    ]
    done = client.call(
        "GET",
        "/history/historic-task-instances",
        200,
        params={"processInstanceId": instance["id"], "finished": "true"},
    )
    assert [r["id"] for r in done["data"]] == [first]


# ---- attachments and comments ------------------------------------------------------------------


def test_attachments_outlive_their_task(emu: Emulator, deployed: dict):
    client = Client(emu, "/flowable-rest/service")
    instance = client.start(processDefinitionKey="order")
    task_id = client.tasks(instance["id"])[0]["id"]
    root = f"/runtime/tasks/{task_id}/attachments"
    stored = client.call(
        "POST", root, 201,
        files={"file": ("invoice.pdf", b"%PDF invoice", "application/pdf")},
        data={"name": "Invoice", "description": "the invoice", "type": "application/pdf"},
    )  # fmt: skip
    link = client.call("POST", root, 201, json={"name": "Wiki", "externalUrl": "https://wiki.example/order"})
    assert stored["contentUrl"].endswith(f"{root}/{stored['id']}/content") and stored["externalUrl"] is None
    assert link["externalUrl"] == "https://wiki.example/order" and link["contentUrl"] is None
    client.call("POST", f"/runtime/tasks/{task_id}", 200, json={"action": "complete"})

    listed = client.call("GET", root, 200)  # the task is completed: the history still answers
    assert [a["name"] for a in listed] == ["Invoice", "Wiki"]
    content = client.call("GET", f"{root}/{stored['id']}/content", 200)
    assert content.content == b"%PDF invoice" and content.headers["content-type"] == "application/pdf"
    assert client.call("GET", f"{root}/{link['id']}/content").status_code == 404
    assert client.call("GET", f"{root}/{link['id']}", 200)["name"] == "Wiki"
    assert client.call("GET", f"{root}/999999").status_code == 404
    nameless = client.call(
        "POST", f"/runtime/tasks/{client.tasks(instance['id'])[0]['id']}/attachments", json={}
    )
    assert nameless.status_code == 400 and "name is required" in error_of(nameless, "/flowable-rest/service")


def test_comments(emu: Emulator, deployed: dict):
    client = Client(emu)
    instance = client.start(processDefinitionKey="order")
    task_id = client.tasks(instance["id"])[0]["id"]
    root = f"/runtime/tasks/{task_id}/comments"
    comment = client.call(
        "POST", root, 201, json={"message": "This is a comment on the task.", "saveProcessInstanceId": True}
    )
    assert (comment["author"], comment["taskId"], comment["processInstanceId"]) == (
        USER[0],
        task_id,
        instance["id"],
    )
    assert [c["id"] for c in client.call("GET", root, 200)] == [comment["id"]]
    assert client.call("GET", f"{root}/{comment['id']}", 200)["message"] == "This is a comment on the task."
    assert client.call("DELETE", f"{root}/{comment['id']}").status_code == 204
    assert client.call("GET", f"{root}/{comment['id']}").status_code == 404
    assert client.call("POST", root, json={"message": ""}).status_code == 400


# ---- shared engine -----------------------------------------------------------------------------


def test_the_engine_sees_what_the_api_did_and_the_other_way_round(emu: Emulator):
    engine = emu.engine
    definition = engine.deploy(
        "seeded-shared",
        "Seeded",
        tasks=[TaskDef("Fill in", 1, "fill")],
        data=[DataDef(1, "amount", "DECIMAL"), DataDef(2, "scan", "FILE"), DataDef(3, "empty", "STRING")],
    )
    instance = engine.start(definition, user=USER[0], business_key="shared", values={"amount": 7.5})
    engine.add_file(instance, "scan", "scan.pdf", content=b"scan")
    client = Client(emu)
    variables = client.call("GET", f"/runtime/process-instances/{instance.id}/variables", 200)
    assert {v["name"]: v["type"] for v in variables} == {
        "amount": "double",
        "scan": "binary",
    }  # unset: hidden
    task_id = client.tasks(str(instance.id))[0]["id"]
    client.call("POST", f"/runtime/tasks/{task_id}", 200, json={"action": "complete"})
    assert instance.state == COMPLETED
