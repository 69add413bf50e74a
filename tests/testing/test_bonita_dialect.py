"""The Bonita dialect of the emulator over HTTP, checked against Bonita's documented behaviour.

Expectations come from Bonita's OpenAPI spec (paths/loginservice.yaml, logoutservice.yaml,
API@bpm@*.yaml, components/parameters/page*.yaml, components/schemas/Error.yaml) and seed 001.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_bpm_provider.testing.demo_bonita import (
    EXPENSE,
    NOTIFICATION,
    OTHER_USER,
    PASSWORD,
    REVIEW_TASK,
    TERMS_URL,
    TOKEN,
    USER,
    seed_bonita_demo,
)
from airflow_bpm_provider.testing.dialects.bonita_entries import state_for
from airflow_bpm_provider.testing.server import Emulator

CSRF = "X-Bonita-API-Token"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    emulator = Emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def demo(emu: Emulator) -> dict[str, Any]:
    return seed_bonita_demo(emu.engine)


class Client:
    """A logged-in Bonita REST client: the session cookie always, the CSRF header on changes."""

    def __init__(self, base: str, login: str = USER, password: str = PASSWORD) -> None:
        self.base = base
        self.http = requests.Session()
        reply = self.http.post(
            f"{base}/loginservice",
            data={"username": login, "password": password, "redirect": "false"},
            allow_redirects=False,
        )
        assert reply.status_code == 204, reply.text
        self.token = self.http.cookies[CSRF]

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(self.base + path, **kwargs)

    def change(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {CSRF: self.token, **kwargs.pop("headers", {})}
        return self.http.request(method, self.base + path, headers=headers, **kwargs)


@pytest.fixture
def client(emu: Emulator, demo: dict[str, Any]) -> Client:
    return Client(f"{emu.url}/bonita")


def start_expense(client: Client, **inputs: Any) -> str:
    process = client.get(
        "/API/bpm/process",
        params=[("p", 0), ("c", 1), ("f", f"name={EXPENSE}"), ("f", "activationState=ENABLED")],
    ).json()[0]
    body = {"employee": "Helen", "amount": 12.0, **inputs}
    reply = client.change("POST", f"/API/bpm/process/{process['id']}/instantiation", json=body)
    assert reply.status_code == 201, reply.text
    return reply.json()["caseId"]


# ---- login, session, CSRF ---------------------------------------------------------------------


def test_login_sets_session_and_token_cookies(emu, demo):
    http = requests.Session()
    reply = http.post(
        f"{emu.url}/bonita/loginservice",
        data={"username": USER, "password": PASSWORD, "redirect": "false"},
        allow_redirects=False,
    )
    assert reply.status_code == 204  # loginservice.yaml
    assert {"JSESSIONID", CSRF} <= set(http.cookies.keys())
    assert reply.headers[CSRF] == http.cookies[CSRF]
    cookie = next(c for c in http.cookies if c.name == "JSESSIONID")
    assert cookie.path == "/bonita"
    session = http.get(f"{emu.url}/bonita/API/system/session/unusedId").json()
    assert session["user_name"] == USER and session["user_id"].isdigit()


def test_wrong_password_is_401(emu, demo):
    reply = requests.post(
        f"{emu.url}/bonita/loginservice", data={"username": USER, "password": "nope", "redirect": "false"}
    )
    assert reply.status_code == 401


def test_api_needs_a_session_and_changes_need_the_token(client, emu, demo):
    assert requests.get(f"{emu.url}/bonita/API/bpm/case", params={"p": 0, "c": 1}).status_code == 401
    task = demo["review_task"]
    no_header = client.http.put(f"{client.base}/API/bpm/humanTask/{task}", json={"assigned_id": "1"})
    assert no_header.status_code == 401
    wrong = client.http.put(
        f"{client.base}/API/bpm/humanTask/{task}", json={"assigned_id": "1"}, headers={CSRF: "forged"}
    )
    assert wrong.status_code == 401
    assert client.change("PUT", f"/API/bpm/humanTask/{task}", json={"assigned_id": "1"}).status_code == 200
    assert client.get("/API/bpm/case", params={"p": 0, "c": 1}).status_code == 200  # GET: no token needed


def test_logout_and_expired_sessions_end_access(client, emu):
    assert client.get("/logoutservice", params={"redirect": "false"}).status_code == 200
    assert client.get("/API/bpm/case", params={"p": 0, "c": 1}).status_code == 401
    again = Client(client.base)
    state_for(emu.engine).expire_sessions()
    assert again.get("/API/bpm/case", params={"p": 0, "c": 1}).status_code == 401


def test_bearer_token_works_without_session_or_csrf(emu, demo):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    reply = requests.get(f"{emu.url}/bonita/API/system/session/unusedId", headers=headers)
    assert reply.json()["user_name"] == USER
    put = requests.put(
        f"{emu.url}/bonita/API/bpm/humanTask/{demo['review_task']}", json={"assigned_id": ""}, headers=headers
    )
    assert put.status_code == 200
    bad = requests.get(f"{emu.url}/bonita/API/bpm/case?p=0&c=1", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401


# ---- searches -----------------------------------------------------------------------------------


def test_search_requires_p_and_c_and_reports_the_total(client):
    assert client.get("/API/bpm/process").status_code == 400
    first = client.get("/API/bpm/process", params={"p": 0, "c": 2, "o": "name ASC"})
    total = int(first.headers["Content-Range"].rsplit("/", 1)[1])
    assert total >= 3 and len(first.json()) == 2
    pages = [
        client.get("/API/bpm/process", params={"p": p, "c": 2, "o": "name ASC"}).json() for p in range(3)
    ]
    names = [row["name"] for page in pages for row in page]
    assert names == sorted(names) and len(names) == total


def test_process_filters_on_name_version_and_activation_state(client, demo):
    rows = client.get("/API/bpm/process", params=[("p", 0), ("c", 10), ("f", f"name={EXPENSE}")]).json()
    assert sorted((r["version"], r["activationState"]) for r in rows) == [
        ("1.0", "DISABLED"),
        ("2.0", "ENABLED"),
    ]
    latest = client.get(
        "/API/bpm/process",
        params=[
            ("p", 0),
            ("c", 1),
            ("f", f"name={EXPENSE}"),
            ("f", "activationState=ENABLED"),
            ("o", "deploymentDate DESC"),
        ],
    ).json()
    assert [r["id"] for r in latest] == [demo["processes"]["expense_id"]]
    contract = client.get(f"/API/bpm/process/{latest[0]['id']}/contract").json()
    assert {i["name"]: i["type"] for i in contract["inputs"]}["amount"] == "DECIMAL"


# ---- cases, archived cases, contracts ---------------------------------------------------------------


def test_instantiation_violating_the_contract_lists_every_explanation(client, demo):
    pid = demo["processes"]["expense_id"]
    reply = client.change("POST", f"/API/bpm/process/{pid}/instantiation", json={"amount": "lots"})
    assert reply.status_code == 400
    body = reply.json()
    assert body["exception"].endswith("ContractViolationException")
    assert "Contract is not valid" in body["message"]
    assert "Expected input [employee] is missing" in body["explanations"]
    assert any("[amount]" in e for e in body["explanations"])
    negative = client.change(
        "POST", f"/API/bpm/process/{pid}/instantiation", json={"employee": "x", "amount": -1}
    )
    assert negative.json()["explanations"] == ["Input [amount] must be at least 0"]


def test_disabled_version_cannot_start(client, demo):
    reply = client.change(
        "POST", f"/API/bpm/process/{demo['processes']['expense_disabled_id']}/instantiation", json={}
    )
    assert reply.status_code == 400 and "disabled" in reply.json()["message"]


def test_a_case_lives_until_it_ends_then_is_archived(client, emu, demo):
    case_id = start_expense(client)
    case = client.get(f"/API/bpm/case/{case_id}", params={"d": "processDefinitionId"}).json()
    assert case["state"] == "started" and case["processDefinitionId"]["name"] == EXPENSE
    tasks = client.get(
        "/API/bpm/humanTask", params=[("p", 0), ("c", 10), ("f", f"caseId={case_id}"), ("f", "state=ready")]
    ).json()
    assert [t["name"] for t in tasks] == [REVIEW_TASK] and tasks[0]["assigned_id"] == ""
    task_id = tasks[0]["id"]
    missing = client.change("POST", f"/API/bpm/userTask/{task_id}/execution", json={})
    assert missing.status_code == 400 and missing.json()["explanations"] == [
        "Expected input [approved] is missing"
    ]
    done = client.change(
        "POST", f"/API/bpm/userTask/{task_id}/execution", params={"assign": "true"}, json={"approved": True}
    )
    assert done.status_code == 204
    assert client.get(f"/API/bpm/case/{case_id}").status_code == 404
    archived = client.get(
        "/API/bpm/archivedCase", params=[("p", 0), ("c", 1), ("f", f"sourceObjectId={case_id}")]
    ).json()
    assert archived[0]["state"] == "completed" and archived[0]["sourceObjectId"] == case_id
    assert archived[0]["id"] != case_id and archived[0]["end_date"]
    assert client.get(f"/API/bpm/archivedCase/{archived[0]['id']}").json()["sourceObjectId"] == case_id
    assert emu.engine.instance(case_id).value("approved") is True


def test_case_without_contract_starts_with_variables_and_can_be_cancelled_or_deleted(client, demo):
    pid = demo["processes"]["notification_id"]
    reply = client.change(
        "POST",
        "/API/bpm/case",
        json={
            "processDefinitionId": pid,
            "variables": [{"name": "message", "value": "hi"}, {"name": "priority", "value": 2}],
        },
    )
    assert reply.status_code == 200
    case_id = reply.json()["id"]
    variable = client.get(f"/API/bpm/caseVariable/{case_id}/priority").json()
    assert (variable["type"], variable["value"]) == ("java.lang.Long", "2")
    assert client.change("PUT", f"/API/bpm/case/{case_id}", json={"state": "started"}).status_code == 400
    assert client.change("PUT", f"/API/bpm/case/{case_id}", json={"state": "cancelled"}).status_code == 200
    archived = client.get(
        "/API/bpm/archivedCase", params=[("p", 0), ("c", 1), ("f", f"sourceObjectId={case_id}")]
    )
    assert archived.json()[0]["state"] == "cancelled"
    second = client.change(
        "POST", "/API/bpm/case", json={"processDefinitionId": pid, "variables": []}
    ).json()["id"]
    assert client.change("DELETE", f"/API/bpm/case/{second}").status_code == 200
    assert client.get(f"/API/bpm/case/{second}").status_code == 404
    with_contract = client.change(
        "POST", "/API/bpm/case", json={"processDefinitionId": demo["processes"]["expense_id"]}
    )
    assert with_contract.status_code == 400


def test_task_assignment_by_user_id(client, emu, demo):
    task = demo["review_task"]
    other = Client(client.base, OTHER_USER)
    other_id = other.get("/API/system/session/unusedId").json()["user_id"]
    assert (
        client.change("PUT", f"/API/bpm/humanTask/{task}", json={"assigned_id": other_id}).status_code == 200
    )
    assert client.get(f"/API/bpm/humanTask/{task}").json()["assigned_id"] == other_id
    assert emu.engine.task(task).assignee == OTHER_USER
    assigned = client.get(
        "/API/bpm/humanTask", params=[("p", 0), ("c", 5), ("f", f"assigned_id={other_id}")]
    ).json()
    assert [t["id"] for t in assigned] == [task]
    # Assigned to someone else: executing it is refused.
    assert (
        client.change("POST", f"/API/bpm/userTask/{task}/execution", json={"approved": True}).status_code
        == 403
    )


# ---- variables ---------------------------------------------------------------------------------------


def test_case_variables_typed_update_and_archived_values(client, demo):
    case_id = demo["cases"]["open"]
    rows = client.get(
        "/API/bpm/caseVariable", params=[("p", 0), ("c", 50), ("f", f"case_id={case_id}")]
    ).json()
    types = {r["name"]: r["type"] for r in rows}
    assert types["amount"] == "java.lang.Double" and types["itemCount"] == "java.lang.Long"
    assert types["dueDate"] == "java.util.Date" and "receipt" not in types  # documents are not variables
    assert (
        client.get("/API/bpm/caseVariable", params={"p": 0, "c": 5}).status_code == 400
    )  # case_id mandatory

    def put(name: str, java_type: str, value: Any) -> requests.Response:
        return client.change(
            "PUT", f"/API/bpm/caseVariable/{case_id}/{name}", json={"type": java_type, "value": value}
        )

    assert put("itemCount", "java.lang.Long", "7").status_code == 200
    assert put("itemCount", "java.lang.Integer", "7").status_code == 500  # not the variable's type
    assert put("amount", "java.lang.Float", "1.5").status_code == 500  # not an updatable type
    assert put("dueDate", "java.util.Date", "Wed Dec 25 00:00:00 UTC 2024").status_code == 200
    assert put("dueDate", "java.util.Date", "2024-12-25").status_code == 500
    due = client.get(f"/API/bpm/caseVariable/{case_id}/dueDate").json()
    assert due["value"] == "Wed Dec 25 00:00:00 UTC 2024"
    assert client.get(f"/API/bpm/caseVariable/{case_id}/itemCount").json()["value"] == "7"

    done = demo["cases"]["completed"]
    assert client.get(f"/API/bpm/caseVariable/{done}/comment").status_code == 404
    archived = client.get(f"/API/bpm/archivedCaseVariable/{done}/comment").json()
    assert archived["value"] == "fine" and archived["archivedDate"]
    listed = client.get(
        "/API/bpm/archivedCaseVariable", params=[("p", 0), ("c", 50), ("f", f"case_id={done}")]
    ).json()
    assert {r["name"] for r in listed} >= {"comment", "approved"}


def test_activity_variables_live_and_archived(client, emu, demo):
    task = demo["review_task"]
    live = client.get(f"/API/bpm/activityVariable/{task}/employee").json()
    assert live["value"] == "Walter Bates" and live["className"] == "java.lang.String"
    assert client.get(f"/API/bpm/archivedActivityVariable/{task}/employee").status_code == 404
    done_task = next(t for t in emu.engine.tasks.values() if str(t.instance.id) == demo["cases"]["completed"])
    archived = client.get(f"/API/bpm/archivedActivityVariable/{done_task.id}/approved").json()
    assert archived["value"] == "true" and archived["containerType"] == "ACTIVITY_INSTANCE"


# ---- documents -------------------------------------------------------------------------------------


def test_documents_versions_external_and_download(client, emu, demo):
    case_id = demo["cases"]["open"]
    docs = client.get(
        "/API/bpm/caseDocument", params=[("p", 0), ("c", 10), ("f", f"caseId={case_id}")]
    ).json()
    by_name = {d["name"]: d for d in docs}
    assert set(by_name) == {"policy", "receipt", "terms"}
    assert by_name["policy"]["version"] == "3" and by_name["policy"]["isInternal"] == "true"
    assert by_name["terms"]["isInternal"] == "false" and by_name["terms"]["url"] == TERMS_URL
    older = client.get(
        "/API/bpm/archivedCaseDocument",
        params=[("p", 0), ("c", 10), ("f", f"sourceObjectId={by_name['policy']['id']}")],
    ).json()
    assert [d["version"] for d in older] == ["1", "2"]
    assert all(d["sourceObjectId"] == by_name["policy"]["id"] and d["archivedDate"] for d in older)

    url = by_name["policy"]["url"]
    assert url.startswith("documentDownload?fileName=expense-policy-v3.pdf&contentStorageId=")
    with client.get(f"/portal/{url}", stream=True) as reply:
        assert reply.headers["Content-Length"] == str(300 * 1024)
        assert sum(len(c) for c in reply.iter_content(8192)) == 300 * 1024
    external = client.get(
        "/portal/documentDownload", params={"contentStorageId": by_name["terms"]["contentStorageId"]}
    )
    assert external.status_code == 404
    assert requests.get(f"{client.base}/portal/{url}").status_code == 401


def test_truncated_download_is_detectable(client, emu, demo):
    docs = client.get(
        "/API/bpm/caseDocument", params=[("p", 0), ("c", 10), ("f", f"caseId={demo['cases']['open']}")]
    ).json()
    policy = next(d for d in docs if d["name"] == "policy")
    emu.faults.truncate("/portal/documentDownload")
    with (
        pytest.raises(requests.exceptions.ChunkedEncodingError),
        client.get(f"/portal/{policy['url']}", stream=True) as reply,
    ):
        b"".join(reply.iter_content(8192))


def test_upload_add_update_and_delete_documents(client, emu, demo):
    case_id = start_expense(client)
    upload = client.change(
        "POST", "/API/formFileUpload", files={"file": ("notes.txt", b"first notes", "text/plain")}
    )
    assert upload.status_code == 200
    temp = upload.json()
    assert temp["filename"] == "notes.txt" and temp["contentType"] == "text/plain"
    added = client.change(
        "POST",
        "/API/bpm/caseDocument",
        json={
            "caseId": case_id,
            "file": temp["tempPath"],
            "name": "Notes",
            "fileName": "notes-v1.txt",
            "description": "draft",
        },
    ).json()
    assert (added["name"], added["fileName"], added["version"], added["description"]) == (
        "Notes",
        "notes-v1.txt",
        "1",
        "draft",
    )
    # The temp file is used up, and a second document with the same name is refused.
    again = client.change(
        "POST", "/API/bpm/caseDocument", json={"caseId": case_id, "file": temp["tempPath"], "name": "Notes"}
    )
    assert again.status_code == 500
    second = client.change("POST", "/API/formFileUpload", files={"file": ("n2.txt", b"second notes")}).json()
    updated = client.change(
        "PUT", f"/API/bpm/caseDocument/{added['id']}", json={"file": second["tempPath"]}
    ).json()
    assert (updated["id"], updated["version"], updated["fileName"]) == (added["id"], "2", "n2.txt")
    assert updated["description"] == "draft"  # kept from the previous version
    linked = client.change(
        "POST",
        "/API/bpm/caseDocument",
        json={"caseId": case_id, "url": "https://x.example/a.png", "name": "Photo"},
    ).json()
    assert linked["isInternal"] == "false" and linked["fileName"] == "a.png"
    content = client.get(f"/portal/{updated['url']}").content
    assert content == b"second notes"
    assert client.change("DELETE", f"/API/bpm/caseDocument/{added['id']}").status_code == 200
    assert client.get(f"/API/bpm/caseDocument/{added['id']}").status_code == 404
    # The contract's FILE input takes an upload too.
    receipt = client.change(
        "POST", "/API/formFileUpload", files={"file": ("r.pdf", b"%PDF-", "application/pdf")}
    ).json()
    with_file = start_expense(client, receipt=receipt)
    docs = client.get(
        "/API/bpm/caseDocument",
        params=[("p", 0), ("c", 10), ("f", f"caseId={with_file}"), ("f", "name=receipt")],
    ).json()
    assert [d["fileName"] for d in docs] == ["r.pdf"]


def test_documents_of_an_ended_case_are_all_archived(client, demo):
    done = demo["cases"]["completed"]
    live = client.get("/API/bpm/caseDocument", params=[("p", 0), ("c", 10), ("f", f"caseId={done}")]).json()
    assert live == []
    archived = client.get(
        "/API/bpm/archivedCaseDocument", params=[("p", 0), ("c", 10), ("f", f"caseId={done}")]
    ).json()
    assert [(d["name"], d["version"]) for d in archived] == [("receipt", "1"), ("receipt", "2")]
    archived_case = client.get(
        "/API/bpm/archivedCase", params=[("p", 0), ("c", 1), ("f", f"sourceObjectId={done}")]
    ).json()[0]
    by_archived_id = client.get(
        "/API/bpm/archivedCaseDocument",
        params=[("p", 0), ("c", 10), ("f", f"archivedCaseId={archived_case['id']}")],
    ).json()
    assert by_archived_id == archived
    assert client.change("DELETE", f"/API/bpm/archivedCaseDocument/{archived[0]['id']}").status_code == 200
    assert client.get(f"/portal/{archived[0]['url']}").status_code == 404


def test_seed_is_idempotent(emu):
    first = seed_bonita_demo(emu.engine)
    second = seed_bonita_demo(emu.engine)
    assert first["cases"] == second["cases"] and first["processes"] == second["processes"]
    assert sum(1 for d in emu.engine.definitions.values() if d.key == EXPENSE) == 2
    assert sum(1 for d in emu.engine.definitions.values() if d.key == NOTIFICATION) == 1
