"""The emulated yuuvis Momentum gateway: tenant header, session cookie, visibility, envelope, DMS."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests

from airflow_bpm_provider.testing.dialects.yuuvis_entries import user_id_of
from airflow_bpm_provider.testing.engine import DataDef, TaskDef
from airflow_bpm_provider.testing.server import Emulator

TENANT = {"X-ID-TENANT-NAME": "acme"}
ANN = ("ann", "ann-pw")
BOB = ("bob", "bob-pw")


@pytest.fixture
def emu() -> Iterator[Emulator]:
    emulator = Emulator.start()
    engine = emulator.engine
    engine.add_user(*ANN)
    engine.add_user(*BOB)
    engine.deploy(
        "invoice",
        "Invoice",
        category="finance",
        tasks=[TaskDef("Review", 1, "review", editable=[1, 2]), TaskDef("Pay", 2, "pay")],
        data=[DataDef(1, "amount", "DECIMAL"), DataDef(2, "approved", "BOOLEAN"), DataDef(3, "scan", "FILE")],
    )
    try:
        yield emulator
    finally:
        emulator.stop()


class Client:
    """One user's HTTP session (cookies kept) against the emulator."""

    def __init__(
        self, emu: Emulator, auth: tuple[str, str] | None = ANN, tenant: str | None = "acme"
    ) -> None:
        self.url = emu.url
        self.session = requests.Session()
        if auth:
            self.session.auth = auth
        if tenant:
            self.session.headers["X-ID-TENANT-NAME"] = tenant

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.session.get(self.url + path, params=params)

    def post(self, path: str, body: Any) -> requests.Response:
        return self.session.post(self.url + path, json=body)

    def delete(self, path: str) -> requests.Response:
        return self.session.delete(self.url + path)

    def start(self, **body: Any) -> dict[str, Any]:
        reply = self.post("/bpm-engine/api/processes", {"processDefinitionKey": "invoice", **body})
        assert reply.status_code == 201, reply.text
        return reply.json()

    def processes(self, **params: Any) -> dict[str, Any]:
        reply = self.get("/bpm-engine/api/processes", **params)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def tasks(self, **params: Any) -> list[dict[str, Any]]:
        reply = self.get("/bpm-engine/api/tasks", **params)
        assert reply.status_code == 200, reply.text
        return reply.json()["objects"]


def error(reply: requests.Response, status: int) -> str:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["status"] == status and body["path"] == reply.request.path_url.split("?")[0]
    return body["message"]


# ---- gateway -----------------------------------------------------------------------------------


def test_tenant_header_is_required(emu):
    reply = Client(emu, tenant=None).get("/bpm-engine/api/processes")
    assert "X-ID-TENANT-NAME header missing" in error(reply, 401)
    assert "set-cookie" not in reply.headers


@pytest.mark.parametrize("auth", [("ann", "wrong"), ("nobody", "x"), None])
def test_bad_or_missing_credentials(emu, auth):
    assert error(Client(emu, auth=auth).get("/bpm-engine/api/processes"), 401)


def test_session_cookie_is_set_once_and_then_suffices(emu):
    client = Client(emu)
    first = client.get("/bpm-engine/api/processes")
    assert first.status_code == 200 and "GWSESSIONID=" in first.headers["set-cookie"]
    second = client.get("/bpm-engine/api/processes")
    assert second.status_code == 200 and "set-cookie" not in second.headers
    cookie = client.session.cookies["GWSESSIONID"]
    cookie_only = requests.get(
        emu.url + "/bpm-engine/api/processes", headers=TENANT, cookies={"GWSESSIONID": cookie}
    )
    assert cookie_only.status_code == 200
    other_tenant = requests.get(
        emu.url + "/bpm-engine/api/processes",
        headers={"X-ID-TENANT-NAME": "other"},
        cookies={"GWSESSIONID": cookie},
    )
    assert other_tenant.status_code == 401
    unknown = requests.get(
        emu.url + "/bpm-engine/api/processes", headers=TENANT, cookies={"GWSESSIONID": "x"}
    )
    assert unknown.status_code == 401


def test_bearer_token(emu):
    emu.engine.add_token("tok-123", "ann")
    ok = requests.get(
        emu.url + "/bpm-engine/api/processes", headers={**TENANT, "Authorization": "Bearer tok-123"}
    )
    bad = requests.get(
        emu.url + "/bpm-engine/api/processes", headers={**TENANT, "Authorization": "Bearer nope"}
    )
    assert ok.status_code == 200 and bad.status_code == 401


# ---- processes ---------------------------------------------------------------------------------


def test_start_answers_the_process_with_its_variables(emu):
    body = Client(emu).start(
        businessKey="inv-1",
        name="Invoice 1",
        variables=[
            {"name": "amount", "type": "double", "value": 12.5},
            {"name": "documentId", "type": "string", "value": "obj-9"},
        ],
    )
    assert body["businessKey"] == "inv-1" and body["name"] == "Invoice 1"
    assert body["processDefinitionId"].startswith("invoice:1:")
    assert body["processDefinitionName"] == "Invoice" and body["startUserId"] == user_id_of("ann")
    assert body["startTime"].endswith("Z") and body["endTime"] is None and body["suspended"] is False
    variables = {v["name"]: (v["type"], v["value"]) for v in body["variables"]}
    assert variables == {"amount": ("double", 12.5), "documentId": ("string", "obj-9")}
    assert emu.engine.instance(body["id"]).value("amount") == 12.5


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"processDefinitionKey": "nope"}, "no process definition found with key 'nope'"),
        ({}, "processDefinitionKey is required"),
        ({"processDefinitionKey": "invoice", "variables": [{"name": "x", "type": "blob"}]}, "type 'blob'"),
        (
            {
                "processDefinitionKey": "invoice",
                "variables": [{"name": "n", "type": "integer", "value": "1"}],
            },
            "is not of type integer",
        ),
        (
            {"processDefinitionKey": "invoice", "variables": [{"name": "amount", "value": "lots"}]},
            "'lots' is not a number",
        ),
        ({"processDefinitionKey": "invoice", "variables": {"amount": 1}}, "variables must be a list"),
    ],
)
def test_start_refusals(emu, body, message):
    reply = Client(emu).post("/bpm-engine/api/processes", body)
    assert message in error(reply, 400)


def test_envelope_and_paging(emu):
    client = Client(emu)
    ids = [client.start(businessKey=f"k{n}")["id"] for n in range(5)]
    pages = [client.processes(page=n, size=2) for n in range(3)]
    assert [[p["id"] for p in page["objects"]] for page in pages] == [ids[0:2], ids[2:4], ids[4:]]
    assert [page["hasMoreItems"] for page in pages] == [True, True, False]
    assert [page["numItems"] for page in pages] == [2, 2, 1]
    assert {page["totalNumItems"] for page in pages} == {5}
    assert client.processes()["numItems"] == 5  # default size 10
    assert [p["id"] for p in client.processes(sort="desc")["objects"]] == ids[::-1]
    assert error(client.get("/bpm-engine/api/processes", size=0), 400)


def test_process_filters(emu):
    client = Client(emu)
    a = client.start(businessKey="inv-a", name="Alpha invoice")
    b = client.start(businessKey="inv-b", name="beta invoice")
    c = client.start(businessKey="other", name="Gamma")
    engine = emu.engine
    engine.suspend(engine.instance(b["id"]), True)
    engine.end(engine.instance(c["id"]), "COMPLETED")
    engine.instance(a["id"]).started_at -= timedelta(days=2)
    later = b["startTime"]

    def ids(**params: Any) -> list[str]:
        return [p["id"] for p in client.processes(**params)["objects"]]

    assert ids(businessKey="inv-a") == [a["id"]]
    assert ids(businessKeyLike="inv-%") == [a["id"], b["id"]]
    assert ids(name="Gamma") == [c["id"]]
    assert ids(nameLike="%invoice") == [a["id"], b["id"]]
    assert ids(nameLike="alpha%") == []
    assert ids(nameLikeIgnoreCase="ALPHA%") == [a["id"]]
    assert ids(processDefinitionKey="invoice", processDefinitionVersion=1) == [a["id"], b["id"], c["id"]]
    assert ids(processDefinitionVersion=2) == []
    assert ids(processDefinitionId=a["processDefinitionId"], processDefinitionCategory="finance") == [
        a["id"],
        b["id"],
        c["id"],
    ]
    assert ids(processDefinitionCategory="hr") == []
    assert ids(suspended="true") == [b["id"]]
    assert ids(suspended="false") == [a["id"], c["id"]]
    assert ids(isCompleted="true") == [c["id"]]
    assert ids(isCompleted="false") == [a["id"], b["id"]]
    assert ids(startedBefore=later) == [a["id"]]
    assert ids(startedAfter=a["startTime"].replace("Z", "+00:00")) == [b["id"], c["id"]]
    assert ids(startedBy=user_id_of("ann"), excludeSubprocesses="true") == [a["id"], b["id"], c["id"]]
    assert ids(involvedUser="ann") == [a["id"], b["id"], c["id"]]
    assert ids(involvedUser="bob") == []
    assert ids(subProcessInstanceId="x") == [] and ids(superProcessInstanceId="x") == []
    assert "only ask for their own" in error(
        client.get("/bpm-engine/api/processes", startedBy=user_id_of("bob")), 400
    )
    assert error(client.get("/bpm-engine/api/processes", isCompleted="yes"), 400)
    assert error(client.get("/bpm-engine/api/processes", startedAfter="yesterday"), 400)
    with_variables = client.processes(businessKey="inv-a", includeProcessVariables="true")["objects"][0]
    assert with_variables["variables"] == []  # nothing set
    assert client.processes(businessKey="inv-a")["objects"][0]["variables"] == []


def test_users_see_only_their_own_processes_in_their_tenant(emu):
    ann = Client(emu)
    started = ann.start(businessKey="mine")
    bob = Client(emu, auth=BOB)
    assert bob.processes()["objects"] == []
    path = f"/bpm-engine/api/processes/{started['id']}"
    assert "was not found" in error(bob.get(path), 404)
    assert error(bob.delete(path), 404)
    assert Client(emu, tenant="elsewhere").processes()["objects"] == []
    assert ann.get(path).json()["id"] == started["id"]


def test_get_process_with_files_and_attachments(emu):
    engine = emu.engine
    definition = engine.deploy(
        "intake",
        "Intake",
        tasks=[TaskDef("Classify", 1, "classify")],
        data=[DataDef(1, "attachments", "FILE")],
    )
    instance = engine.start(definition, user="ann")
    one = engine.add_file(instance, "attachments", "a.pdf", content=b"A")
    two = engine.add_file(instance, "attachments", "b.pdf", content=b"B")
    invoice = engine.start(engine.latest("invoice"), user="ann")
    scan = engine.add_file(invoice, "scan", "scan.pdf", content=b"S")
    client = Client(emu)
    intake_body = client.get(
        f"/bpm-engine/api/processes/{instance.id}", includeProcessVariables="true"
    ).json()
    assert intake_body["attachments"] == [str(one.id), str(two.id)]
    invoice_body = client.get(
        f"/bpm-engine/api/processes/{invoice.id}", includeProcessVariables="true"
    ).json()
    assert {"name": "scan", "type": "string", "value": str(scan.id), "scope": "global"} in invoice_body[
        "variables"
    ]
    engine.add_file(invoice, "scan", "scan2.pdf", content=b"T")
    again = client.get(f"/bpm-engine/api/processes/{invoice.id}", includeProcessVariables="true").json()
    [variable] = [v for v in again["variables"] if v["name"] == "scan"]
    assert variable["type"] == "json" and len(variable["value"]) == 2


def test_delete_cancels_then_removes(emu):
    client = Client(emu)
    started = client.start()
    path = f"/bpm-engine/api/processes/{started['id']}"
    assert client.delete(path).status_code == 200
    body = client.get(path).json()
    assert body["endTime"] and body["deleteReason"] and body["completed"] is True
    assert client.tasks(processInstanceId=started["id"]) == []
    assert client.delete(path).status_code == 200
    assert error(client.get(path), 404)


# ---- tasks ---------------------------------------------------------------------------------------


def test_task_list_claim_and_complete(emu):
    client = Client(emu)
    started = client.start(businessKey="t")
    other = client.start(businessKey="u")
    [task] = client.tasks(processInstanceId=started["id"])
    assert task["name"] == "Review" and task["processInstanceId"] == started["id"]
    assert task["taskDefinitionKey"] == "review" and task["assignee"] is None
    assert (
        client.tasks(name="Review", processDefinitionKey="invoice", page=1, size=1)[0]["processInstanceId"]
        == (other["id"])
    )
    assert client.tasks(name="Pay") == []
    path = f"/bpm-engine/api/tasks/{task['id']}"
    claimed = client.post(path, {"action": "claim", "assignee": "ann"})
    assert claimed.status_code == 200 and claimed.json()["assignee"] == "ann"
    assert client.tasks(processInstanceId=started["id"], isAssigned="true")[0]["id"] == task["id"]
    conflict = Client(emu, auth=BOB).post(path, {"action": "claim"})
    assert error(conflict, 404)  # bob cannot see a task claimed by ann in ann's process
    done = client.post(
        path,
        {
            "action": "complete",
            "variables": [
                {"name": "approved", "type": "boolean", "value": True},
                {"name": "note", "type": "string", "value": "fine"},
            ],
        },
    )
    assert done.status_code == 200
    [pay] = client.tasks(processInstanceId=started["id"])
    assert pay["name"] == "Pay"
    body = client.get(f"/bpm-engine/api/processes/{started['id']}", includeProcessVariables="true").json()
    assert {(v["name"], v["value"]) for v in body["variables"]} >= {("approved", True), ("note", "fine")}
    client.post(f"/bpm-engine/api/tasks/{pay['id']}", {"action": "complete"})
    assert client.get(f"/bpm-engine/api/processes/{started['id']}").json()["endTime"]
    assert error(client.get(path), 404)


def test_claim_conflict_and_bad_actions(emu):
    client = Client(emu)
    started = client.start()
    [task] = client.tasks(processInstanceId=started["id"])
    path = f"/bpm-engine/api/tasks/{task['id']}"
    assert client.post(path, {"action": "claim", "assignee": "carol"}).status_code == 200
    assert "already claimed" in error(client.post(path, {"action": "claim", "assignee": "dave"}), 409)
    assert "Invalid action" in error(client.post(path, {"action": "approve"}), 400)
    assert "only the assignee" in error(client.post(path, {"action": "delegate", "assignee": "x"}), 403)
    bad = client.post(path, {"action": "complete", "variables": [{"name": "amount", "value": "many"}]})
    assert "not a number" in error(bad, 400)


def test_delegate_and_resolve(emu):
    client = Client(emu)
    started = client.start()
    [task] = client.tasks(processInstanceId=started["id"])
    path = f"/bpm-engine/api/tasks/{task['id']}"
    client.post(path, {"action": "claim"})
    delegated = client.post(
        path, {"action": "delegate", "assignee": "bob", "variables": [{"name": "hint", "value": "check VAT"}]}
    ).json()
    assert (delegated["assignee"], delegated["owner"], delegated["delegationState"]) == (
        "bob",
        "ann",
        "PENDING",
    )
    bob = Client(emu, auth=BOB)
    [seen] = bob.tasks()
    assert seen["id"] == task["id"]
    resolved = bob.post(path, {"action": "resolve", "variables": [{"name": "amount", "value": 99}]}).json()
    assert (resolved["assignee"], resolved["delegationState"]) == ("ann", "RESOLVED")
    assert emu.engine.instance(started["id"]).value("amount") == 99
    assert "not delegated" in error(client.post(path, {"action": "resolve"}), 400)


# ---- definitions ---------------------------------------------------------------------------------


def test_definitions(emu):
    emu.engine.deploy("invoice", "Invoice v2", category="finance")
    client = Client(emu)
    every = client.get("/bpm-engine/api/process-definitions", key="invoice").json()
    assert [d["version"] for d in every["objects"]] == [1, 2]
    latest = client.get("/bpm-engine/api/process-definitions", key="invoice", latest="true").json()
    [newest] = latest["objects"]
    assert newest["version"] == 2 and newest["id"].startswith("invoice:2:")
    assert error(client.get("/bpm-engine/api/process-definitions", latest="true", name="Invoice"), 400)
    one = client.get(f"/bpm-engine/api/process-definitions/{newest['id']}").json()
    assert one["name"] == "Invoice v2"
    assert error(client.get("/bpm-engine/api/process-definitions/nope:1:x"), 404)
    assert [
        d["key"] for d in client.get("/bpm-engine/api/process-definitions", keyLike="inv%").json()["objects"]
    ]


# ---- DMS -----------------------------------------------------------------------------------------


def test_dms_metadata_and_content(emu):
    engine = emu.engine
    instance = engine.start(engine.latest("invoice"), user="ann")
    stored = engine.add_file(
        instance, "scan", 'Übersicht "4711".pdf', size=300_000, content_type="application/pdf"
    )
    client = Client(emu)
    meta = client.get(f"/api/dms/objects/{stored.id}").json()["objects"][0]
    assert meta["properties"]["system:objectId"]["value"] == str(stored.id)
    assert meta["contentStreams"][0] == {
        "contentStreamId": f"cs-{stored.id}",
        "length": 300_000,
        "mimeType": "application/pdf",
        "fileName": 'Übersicht "4711".pdf',
        "repositoryId": "emulator",
    }
    reply = client.session.get(f"{emu.url}/api/dms/objects/{stored.id}/contents/file", stream=True)
    assert reply.status_code == 200
    assert reply.headers["content-length"] == "300000"
    assert reply.headers["content-type"].startswith("application/pdf")
    disposition = reply.headers["content-disposition"]
    assert "filename*=UTF-8''%C3%9Cbersicht%20%224711%22.pdf" in disposition
    assert b"".join(reply.iter_content(65536)) == stored.read()
    assert error(client.get("/api/dms/objects/999999"), 404)
    assert error(Client(emu, tenant=None).get(f"/api/dms/objects/{stored.id}"), 401)


def test_dms_truncated_download(emu):
    engine = emu.engine
    instance = engine.start(engine.latest("invoice"), user="ann")
    stored = engine.add_file(instance, "scan", "big.bin", size=200_000)
    emu.faults.truncate("/contents/file")
    reply = Client(emu).session.get(f"{emu.url}/api/dms/objects/{stored.id}/contents/file", stream=True)
    assert reply.headers["content-length"] == "200000"
    with pytest.raises(requests.exceptions.RequestException):
        b"".join(reply.iter_content(65536))
