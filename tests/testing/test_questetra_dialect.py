"""The Questetra / DataSpider BPM Workflow API of the emulator, driven over HTTP with ``requests``.

Expected shapes (field names, types, state names, XML structure) are written from the vendor's
Workflow API reference, not from the emulator's code.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from urllib.parse import unquote

import pytest
import requests
from lxml import etree

from airflow_bpm_provider.testing import Emulator
from airflow_bpm_provider.testing.engine import EngineError, TaskDef

DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{4}$")
NS2 = "process-data-definition-detail"
ACTIVITY_KEYS = {
    "id",
    "nodeName",
    "nodeNumber",
    "processModelActivateDatetime",
    "processModelId",
    "processModelInfoCategory",
    "processModelInfoId",
    "processModelInfoName",
    "processModelInfoShortExplanation",
    "processModelInfoViewPriority",
    "processModelVersion",
}
PROCESS_KEYS = {
    "processInstanceId",
    "processInstanceIdForView",
    "processInstanceSequenceNumber",
    "processInstanceInitQgroupId",
    "processInstanceInitQgroupName",
    "processInstanceInitQuserId",
    "processInstanceInitQuserName",
    "processInstanceStartDatetime",
    "processInstanceEndDatetime",
    "processInstanceState",
    "processInstanceDebug",
    "processInstanceTitle",
    "processModelInfoId",
    "processModelInfoName",
    "processModelInfoCategory",
    "processModelVersion",
}
WORKITEM_KEYS = PROCESS_KEYS | {
    "id",
    "allocateDatetime",
    "allocatedQuserId",
    "allocatedQuserName",
    "allocatedQgroupId",
    "allocatedQgroupName",
    "endDatetime",
    "nodeName",
    "nodeNumber",
    "offerDatetime",
    "startDatetime",
    "state",
    "failType",
    "swimlaneType",
    "timeLimitDatetime",
    "starred",
    "read",
    "data",
}
DATA_KEYS = {"id", "processDataDefinitionNumber", "name", "dataType", "subType", "value", "viewOrder"}
FILE_KEYS = {"id", "name", "contentType", "length", "lengthText", "image", "processDataInstanceId"}

ENDPOINTS = [
    ("GET", "/API/PE/ProcessModel/listStartable"),
    ("POST", "/API/PE/ProcessInstance/start"),
    ("GET", "/API/PE/Workitem/listAllocated"),
    ("GET", "/API/PE/Workitem/listOffered"),
    ("POST", "/API/PE/Workitem/batchAccept"),
    ("GET", "/API/PE/Workitem/Form/viewXml"),
    ("POST", "/API/PE/Workitem/Form/save"),
    ("GET", "/API/OR/ProcessInstance/list"),
    ("POST", "/API/OR/ProcessInstance/listCsv"),
    ("GET", "/API/OR/ProcessInstance/listCsvUtf16"),
    ("GET", "/API/OR/ProcessInstance/view"),
    ("GET", "/API/OR/ProcessInstance/File/download"),
    ("POST", "/API/OR/ProcessInstance/stop"),
    ("POST", "/API/OR/ProcessInstance/delete"),
    ("GET", "/API/OR/Workitem/list"),
    ("GET", "/API/OR/Workitem/listCsv"),
    ("GET", "/API/OR/Workitem/listCsvUtf16"),
    ("POST", "/API/OR/Workitem/Star/add"),
    ("POST", "/API/OR/Workitem/Star/remove"),
    ("POST", "/API/PIM/Workitem/reallocate"),
]


class Api:
    def __init__(
        self, emulator: Emulator, summary: dict, *, prefix: str = "", login: str | None = None
    ) -> None:
        self.emulator = emulator
        self.base = emulator.url + prefix
        login = login or summary["user"]
        self.auth = (login, summary["users"][login])

    def get(self, path: str, params: dict | list | None = None, **kwargs) -> requests.Response:
        return requests.get(self.base + path, params=params, auth=self.auth, timeout=30, **kwargs)

    def post(self, path: str, data: dict | list | None = None, **kwargs) -> requests.Response:
        return requests.post(self.base + path, data=data, auth=self.auth, timeout=30, **kwargs)

    def json(self, path: str, data: dict | list | None = None) -> dict:
        reply = self.post(path, data)
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"].startswith("application/json")
        return reply.json()

    def processes(self, criteria: str | None = None, **params) -> dict:
        data = {"limit": 1000, **params}
        if criteria is not None:
            data["criteria"] = criteria
        return self.json("/API/OR/ProcessInstance/list", data)

    def workitems(self, criteria: str | None = None, **params) -> dict:
        data = {"limit": 1000, **params}
        if criteria is not None:
            data["criteria"] = criteria
        return self.json("/API/OR/Workitem/list", data)

    def view(self, instance_id: int) -> dict:
        return self.json("/API/OR/ProcessInstance/view", {"processInstanceId": instance_id})[
            "processInstance"
        ]

    def form(self, workitem_id: int) -> etree._Element:
        reply = self.get("/API/PE/Workitem/Form/viewXml", {"workitemId": workitem_id})
        assert reply.status_code == 200, reply.text
        assert "xml" in reply.headers["content-type"]
        return etree.fromstring(reply.content)

    def save(self, data: list | dict, **kwargs) -> etree._Element:
        reply = self.post("/API/PE/Workitem/Form/save", data, **kwargs)
        assert reply.status_code == 200, reply.text  # the vendor reports failures inside a 200
        root = etree.fromstring(reply.content)
        assert root.tag == "result"
        return root

    def start(self, model: int, node: int = 0) -> dict:
        data = {"processModelInfoId": model, "nodeNumber": node}
        return self.json("/API/PE/ProcessInstance/start", data)["workitem"]


def _process_criteria(*children: str) -> str:
    return "<process-instance-criteria>" + "".join(children) + "</process-instance-criteria>"


def _data(kind: str, number: int, condition: str = "<view/>", value: str | None = None) -> str:
    value_xml = "" if value is None else f"<value>{value}</value>"
    number_xml = f"<data-definition-number>{number}</data-definition-number>"
    return f"<data><{kind}>{number_xml}{condition}{value_xml}</{kind}></data>"


def _ids(result: dict, key: str = "processInstances", field: str = "processInstanceId") -> list[int]:
    return [entry[field] for entry in result[key]]


def _errors(reply: requests.Response) -> list[dict]:
    body = reply.json()
    assert set(body) == {"errors"}
    for error in body["errors"]:
        assert set(error) == {"errorCode", "input", "type"}
        assert isinstance(error["errorCode"], str) and error["errorCode"].isdigit()
    return body["errors"]


def _result_errors(root: etree._Element, container: str) -> dict[str, str]:
    assert root.get("success") == "false"
    return {e.findtext("key"): e.findtext("detail") for e in root.findall(f"{container}/error")}


@pytest.fixture(scope="module")
def demo():
    emulator = Emulator.start()
    summary = emulator.seed_demo(large_file_mb=3)
    yield emulator, summary
    emulator.stop()


@pytest.fixture
def api(demo) -> Api:
    emulator, summary = demo
    emulator.faults.clear()
    return Api(emulator, summary)


@pytest.fixture
def fresh():
    emulator = Emulator.start()
    summary = emulator.seed_demo(large_file_mb=1)
    yield Api(emulator, summary), summary
    emulator.stop()


# ---- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_endpoint_needs_credentials(demo, method, path):
    emulator, summary = demo
    for prefix in ("", "/userweb"):
        for auth in (None, (summary["user"], "wrong"), ("nobody@example.com", summary["password"])):
            reply = requests.request(method, emulator.url + prefix + path, auth=auth, timeout=10)
            assert reply.status_code == 401, (prefix, path, auth and auth[0])
            assert "www-authenticate" not in {h.lower() for h in reply.headers}


@pytest.mark.parametrize(
    "header", ["Basic !!!not-base64", "Basic " + "bm8tY29sb24=", "Bearer wrong-token", "Digest x", "Bearer"]
)
def test_malformed_or_unknown_credentials(demo, header):
    emulator, _ = demo
    reply = requests.get(
        emulator.url + "/API/OR/ProcessInstance/list", headers={"Authorization": header}, timeout=10
    )
    assert reply.status_code == 401 and "www-authenticate" not in {h.lower() for h in reply.headers}


def test_bearer_token(demo):
    emulator, summary = demo
    reply = requests.get(
        emulator.url + "/userweb/API/User/Quser/self",
        headers={"Authorization": f"Bearer {summary['token']}"},
        timeout=10,
    )
    assert reply.status_code == 200
    assert reply.json() == {"quser": {"email": "demo@example.com", "id": 1, "name": "demo"}}


def test_both_context_roots_serve_the_same_data(demo):
    emulator, summary = demo
    questetra = Api(emulator, summary).processes()
    dataspider = Api(emulator, summary, prefix="/userweb").processes()
    assert questetra == dataspider and questetra["count"] == len(summary["instances"])


def test_post_only_endpoints_refuse_get(api):
    for path in (
        "/API/PE/ProcessInstance/start",
        "/API/PE/Workitem/Form/save",
        "/API/OR/ProcessInstance/stop",
    ):
        assert api.get(path).status_code == 405


# ---- PE: startable apps, start --------------------------------------------------------------


def test_list_startable_defaults_to_one_entry(api, demo):
    _, summary = demo
    reply = api.get("/API/PE/ProcessModel/listStartable")
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) == {"count", "startableActivities"}
    assert body["count"] == 4 and len(body["startableActivities"]) == 1
    entry = body["startableActivities"][0]
    assert set(entry) == ACTIVITY_KEYS
    assert entry["processModelInfoId"] == summary["models"]["expense"]
    assert (entry["nodeName"], entry["nodeNumber"], entry["processModelVersion"]) == ("Apply", 0, 1)
    assert (
        entry["processModelInfoName"] == "Expense approval" and entry["processModelInfoCategory"] == "Finance"
    )
    for key in ("id", "nodeNumber", "processModelId", "processModelInfoId", "processModelInfoViewPriority"):
        assert isinstance(entry[key], int) and not isinstance(entry[key], bool)
    assert DATETIME.match(entry["processModelActivateDatetime"])


def test_list_startable_filters_and_pages(api, demo):
    _, summary = demo
    everything = api.json("/API/PE/ProcessModel/listStartable", {"limit": 1000})
    assert [e["processModelInfoId"] for e in everything["startableActivities"]] == list(
        summary["models"].values()
    )
    second = api.get("/API/PE/ProcessModel/listStartable", {"start": 1, "limit": 1}).json()
    assert second["count"] == 4 and second["startableActivities"] == everything["startableActivities"][1:2]
    legal = api.get("/API/PE/ProcessModel/listStartable", {"category": "Legal", "limit": 10}).json()
    assert [e["processModelInfoName"] for e in legal["startableActivities"]] == ["Contract review"]
    named = api.get("/API/PE/ProcessModel/listStartable", {"query": "request", "limit": 10}).json()
    assert (named["count"], named["startableActivities"][0]["processModelInfoName"]) == (1, "Leave request")
    # query matches a part of the app name, as documented (seed 003)
    quickstart = api.json("/API/PE/ProcessModel/listStartable", {"query": "approval", "limit": 10})
    assert [e["processModelInfoName"] for e in quickstart["startableActivities"]] == [
        "Expense approval",
        "expense-approval",
    ]
    assert api.get("/API/PE/ProcessModel/listStartable", {"limit": 0}).json()["startableActivities"] == []


@pytest.mark.parametrize(
    ("name", "value"), [("limit", "1001"), ("limit", "-1"), ("start", "x"), ("limit", "1.5")]
)
def test_paging_parameters_are_checked(api, name, value):
    for path in (
        "/API/PE/ProcessModel/listStartable",
        "/API/OR/ProcessInstance/list",
        "/API/OR/Workitem/list",
    ):
        reply = api.get(path, {name: value})
        assert reply.status_code == 400
        assert _errors(reply)[0]["input"] == name and _errors(reply)[0]["type"] == "InvalidParameter"


def test_start_returns_the_first_task_allocated_to_the_starter(fresh):
    api, summary = fresh
    reply = api.post(
        "/API/PE/ProcessInstance/start",
        {"processModelInfoId": summary["models"]["contract"], "nodeNumber": 0},
    )
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) == {"workitem"}
    workitem = body["workitem"]
    assert set(workitem) == WORKITEM_KEYS
    assert (workitem["state"], workitem["nodeName"], workitem["nodeNumber"]) == ("ALLOCATED", "Draft", 0)
    assert (workitem["allocatedQuserId"], workitem["allocatedQuserName"]) == (1, "demo")
    assert workitem["offerDatetime"] is None and workitem["data"] is None
    assert workitem["processInstanceState"] == "STARTED" and workitem["processInstanceEndDatetime"] is None
    assert workitem["processInstanceIdForView"] == f"p{workitem['processInstanceId']}"
    assert workitem["processInstanceSequenceNumber"] == 3  # the demo started two contracts before
    assert DATETIME.match(workitem["allocateDatetime"]) and DATETIME.match(
        workitem["processInstanceStartDatetime"]
    )
    assert workitem["processModelInfoId"] == summary["models"]["contract"]
    for key in (
        "id",
        "processInstanceId",
        "allocatedQuserId",
        "processInstanceInitQuserId",
        "processModelVersion",
    ):
        assert isinstance(workitem[key], int)
    allocated = api.json("/API/PE/Workitem/listAllocated")
    assert workitem["id"] in [w["id"] for w in allocated["workitems"]]


def test_start_accepts_query_string_parameters_too(fresh):
    api, summary = fresh
    reply = requests.post(
        api.base + "/API/PE/ProcessInstance/start",
        params={"processModelInfoId": summary["models"]["leave"], "nodeNumber": 0},
        auth=api.auth,
        timeout=10,
    )
    assert reply.status_code == 200 and reply.json()["workitem"]["nodeName"] == "Request"


def test_start_rejects_a_wrong_node_or_model(fresh):
    api, summary = fresh
    wrong_node = api.post(
        "/API/PE/ProcessInstance/start", {"processModelInfoId": summary["models"]["expense"], "nodeNumber": 1}
    )
    assert wrong_node.status_code == 400 and _errors(wrong_node)[0]["input"] == "nodeNumber"
    unknown = api.post("/API/PE/ProcessInstance/start", {"processModelInfoId": 999999, "nodeNumber": 0})
    assert unknown.status_code == 404 and _errors(unknown)[0]["type"] == "ProcessModelDoesNotExist"
    missing = api.post("/API/PE/ProcessInstance/start", {"nodeNumber": 0})
    assert missing.status_code == 400 and _errors(missing)[0]["input"] == "processModelInfoId"
    before = len(api.emulator.engine.instances)
    assert before == len(summary["instances"])


# ---- PE: task lists, accepting ----------------------------------------------------------------


def test_allocated_and_offered_lists(api, demo):
    _, summary = demo
    allocated = api.json("/API/PE/Workitem/listAllocated")
    assert set(allocated) == {"count", "workitems"} and allocated["count"] == len(allocated["workitems"])
    assert [(w["processInstanceId"], w["nodeName"], w["state"]) for w in allocated["workitems"]] == [
        (summary["instances"]["expense_draft"], "Apply", "ALLOCATED")
    ]
    offered = api.json("/API/PE/Workitem/listOffered")
    assert [(w["processInstanceId"], w["nodeName"], w["state"]) for w in offered["workitems"]] == [
        (summary["instances"]["expense_running"], "Approve", "OFFERED")
    ]
    entry = offered["workitems"][0]
    assert (
        set(entry) == WORKITEM_KEYS
        and entry["allocatedQuserId"] is None
        and DATETIME.match(entry["offerDatetime"])
    )
    approver = Api(api.emulator, summary, login="approver@example.com").json("/API/PE/Workitem/listAllocated")
    assert [w["nodeName"] for w in approver["workitems"]] == ["Review"]


def test_batch_accept_reports_each_workitem(fresh):
    api, _ = fresh
    offered = api.json("/API/PE/Workitem/listOffered")["workitems"][0]["id"]
    allocated = api.json("/API/PE/Workitem/listAllocated")["workitems"][0]["id"]
    reply = api.post(
        "/API/PE/Workitem/batchAccept",
        [("workitemIds", offered), ("workitemIds", 987654), ("workitemIds", allocated)],
    )
    assert reply.status_code == 200
    results = reply.json()["results"]
    assert [r["workitemId"] for r in results] == [offered, 987654, allocated]
    assert results[0]["success"] is True and results[0]["workitem"]["state"] == "ALLOCATED"
    assert results[0]["workitem"]["allocatedQuserId"] == 1 and results[0]["workitem"]["id"] == offered
    assert results[1] == {
        "success": False,
        "workitemId": 987654,
        "error": {"errorCode": "40003", "type": "WorkitemDoesNotExist"},
    }
    assert results[2]["success"] is False and set(results[2]["error"]) == {"errorCode", "type"}
    # a failed result may carry the task (the document: "may be absent"), telling who holds it
    assert results[2]["workitem"]["id"] == allocated and results[2]["workitem"]["state"] == "ALLOCATED"
    assert set(results[2]["workitem"]) == WORKITEM_KEYS
    assert api.json("/API/PE/Workitem/listOffered")["count"] == 0
    again = api.post("/API/PE/Workitem/batchAccept", [("workitemIds", offered)]).json()["results"]
    assert again[0]["success"] is False
    missing = api.post("/API/PE/Workitem/batchAccept", {})
    assert missing.status_code == 400 and _errors(missing)[0]["input"] == "workitemIds"


# ---- PE: task form ---------------------------------------------------------------------------


def _form_data(root: etree._Element) -> dict[str, etree._Element]:
    return {element.get("number"): element for element in root.findall("form-data")}


def test_form_xml_has_the_vendor_structure(api, demo):
    _, summary = demo
    draft = api.json("/API/PE/Workitem/listAllocated")["workitems"][0]
    root = api.form(draft["id"])
    assert root.tag == "workitem-form" and root.nsmap == {"ns2": NS2}
    assert root.findtext("title") == "Draft: office chairs"
    assert root.findtext("title-accessibility") == "3"
    assert (root.findtext("node-number"), root.findtext("task-name")) == ("0", "Apply")
    assert root.findtext("workitem-id") == str(draft["id"])
    assert root.find("user-selects") is not None and len(root.find("user-selects")) == 0
    items = _form_data(root)
    assert list(items) == ["0", "1", "2", "3", "4", "5"]
    codes = {number: element.findtext("data-type") for number, element in items.items()}
    assert codes == {"0": "0", "1": "12", "2": "11", "3": "14", "4": "8", "5": "5"}
    view = api.view(summary["instances"]["expense_draft"])
    for number, element in items.items():
        assert element.findtext("accessibility") == "3"  # Apply may edit every item
        assert int(element.get("id")) > 0
        assert element.findtext("data-instance-id") == str(view["data"][number]["id"])
        assert element.findtext("process-instance-id") == str(summary["instances"]["expense_draft"])
        assert element.findtext("name") == view["data"][number]["name"]
        assert element.findtext("view-order") == str(view["data"][number]["viewOrder"])
        assert element.findtext("required") in ("true", "false")
    assert items["0"].findtext("required") == "true" and items["2"].findtext("required") == "false"
    # child order as in the vendor's sample for a decimal item
    order = [etree.QName(child).localname for child in items["1"]]
    sample = ["accessibility", "data-type", "name", "data-instance-id", "process-instance-id", "view-order"]
    sample += ["decimal-detail", "description", "columns", "required"]
    assert [tag for tag in order if tag in sample] == sample
    detail = items["1"].find(f"{{{NS2}}}decimal-detail")
    assert detail.findtext(f"{{{NS2}}}minimum") == "0" and detail.findtext(f"{{{NS2}}}maximum") == "1000000"
    choices = [
        (item.findtext(f"{{{NS2}}}value"), item.findtext(f"{{{NS2}}}display"))
        for item in items["2"].find("items").findall(f"{{{NS2}}}item")
    ]
    assert choices == [("card", "Corporate card"), ("cash", "Cash"), ("transfer", "Bank transfer")]
    assert b'xmlns:ns2="process-data-definition-detail"' in etree.tostring(root)


def test_form_of_a_decision_task(api):
    offered = api.json("/API/PE/Workitem/listOffered")["workitems"][0]
    root = api.form(offered["id"])
    selects = [(s.findtext("flow-id"), s.findtext("name")) for s in root.findall("user-selects/user-select")]
    assert selects == [("21", "Approve"), ("22", "Reject")]
    items = _form_data(root)
    assert {element.findtext("accessibility") for element in items.values()} == {"1"}
    assert items["1"].findtext("value") == "4800" and items["0"].findtext("value") == "Taxi to the client"
    assert root.find("executing-roles") is None
    read = [w for w in api.json("/API/PE/Workitem/listOffered")["workitems"] if w["id"] == offered["id"]]
    assert read[0]["read"] is True


def test_form_errors(api, demo):
    _, summary = demo
    missing = api.get("/API/PE/Workitem/Form/viewXml", {"workitemId": 999999})
    assert missing.status_code == 404 and _errors(missing)[0] == {
        "errorCode": "40003",
        "input": "workitemId",
        "type": "WorkitemDoesNotExist",
    }
    someone_elses = Api(api.emulator, summary, login="approver@example.com").json(
        "/API/PE/Workitem/listAllocated"
    )
    forbidden = api.get("/API/PE/Workitem/Form/viewXml", {"workitemId": someone_elses["workitems"][0]["id"]})
    assert forbidden.status_code == 403 and _errors(forbidden)[0]["type"] == "Forbidden"
    ended = api.workitems(
        "<workitem-criteria><workitem-states><workitem-state>ENDED</workitem-state></workitem-states>"
        "</workitem-criteria>"
    )["workitems"][0]
    assert api.get("/API/PE/Workitem/Form/viewXml", {"workitemId": ended["id"]}).status_code == 400


# ---- PE: saving ------------------------------------------------------------------------------


def test_save_completes_the_task_with_its_data(fresh):
    api, summary = fresh
    workitem = api.start(summary["models"]["expense"])
    result = api.save(
        [
            ("workitemId", workitem["id"]),
            ("title", "Hotel in Kyoto"),
            ("data[0].input", "Two nights"),
            ("data[1].usdecimal", "12,345.5"),
            ("data[2].selects", "transfer"),
            ("data[4].email", "approver@example.com"),
            ("data[5].input", "2024-05-01"),
        ]
    )
    assert result.get("success") == "true" and len(result) == 0
    view = api.view(workitem["processInstanceId"])
    assert view["processInstanceTitle"] == "Hotel in Kyoto" and view["activeTokenNodeName"] == "Approve"
    data = view["data"]
    assert data["0"]["value"] == "Two nights" and data["1"]["value"] == "12345.5"
    assert data["2"]["value"] == [{"display": "Bank transfer", "value": "transfer"}]
    assert data["4"]["value"] == {"email": "approver@example.com", "id": 2, "name": "approver"}
    assert data["5"]["value"] == "2024-05-01" and data["3"]["value"] is None
    ended = api.workitems(
        f"<workitem-criteria><process-instance-id>{view['processInstanceId']}</process-instance-id>"
        "</workitem-criteria>"
    )
    assert sorted((w["nodeName"], w["state"]) for w in ended["workitems"]) == [
        ("Apply", "ENDED"),
        ("Approve", "OFFERED"),
    ]


def test_save_validation_errors_keep_the_task(fresh):
    api, summary = fresh
    workitem = api.start(summary["models"]["expense"])
    result = api.save(
        [
            ("workitemId", workitem["id"]),
            ("data[1].usdecimal", "-5"),
            ("data[2].selects", "bitcoin"),
            ("data[5].input", "2024-02-30"),
            ("data[4].email", "nobody@example.com"),
            ("data[9].input", "x"),
            ("data[0].usdecimal", "1"),
        ]
    )
    errors = _result_errors(result, "process-data-validation-errors")
    assert set(errors) == {
        "data[1].usdecimal",
        "data[2].selects",
        "data[5].input",
        "data[4].email",
        "data[9].input",
        "data[0].usdecimal",
        "data[0].input",  # still required: the wrongly named parameter did not fill it
    }
    assert all(errors.values())
    assert result.find("errors") is None
    view = api.view(workitem["processInstanceId"])
    assert view["activeTokenNodeName"] == "Apply" and view["data"]["1"]["value"] is None
    required = _result_errors(api.save({"workitemId": workitem["id"]}), "process-data-validation-errors")
    assert set(required) == {"data[0].input", "data[1].usdecimal"}


def test_save_checks_flow_allocation_and_editability(fresh):
    api, _ = fresh
    offered = api.json("/API/PE/Workitem/listOffered")["workitems"][0]
    not_mine = _result_errors(api.save({"workitemId": offered["id"], "flow": 21}), "errors")
    assert list(not_mine) == ["workitemId"]
    assert _result_errors(api.save({"workitemId": 999999}), "errors").keys() == {"workitemId"}
    api.post("/API/PE/Workitem/batchAccept", {"workitemIds": offered["id"]})
    assert list(_result_errors(api.save({"workitemId": offered["id"]}), "errors")) == ["flow"]
    assert list(_result_errors(api.save({"workitemId": offered["id"], "flow": 99}), "errors")) == ["flow"]
    read_only = api.save({"workitemId": offered["id"], "flow": 21, "data[0].input": "changed"})
    assert list(_result_errors(read_only, "process-data-validation-errors")) == ["data[0].input"]
    assert api.save({"workitemId": offered["id"], "flow": 22}).get("success") == "true"
    view = api.view(offered["processInstanceId"])
    assert view["processInstanceState"] == "FAILED" and DATETIME.match(view["processInstanceEndDatetime"])
    assert list(_result_errors(api.save({"workitemId": offered["id"], "flow": 21}), "errors")) == [
        "workitemId"
    ]


def test_engine_refusals_during_save_are_reported_in_the_result(fresh, monkeypatch):
    api, summary = fresh
    workitem = api.start(summary["models"]["expense"])
    engine = api.emulator.engine

    def refuse(*args, **kwargs):
        raise EngineError("invalid", "invalid data values", {"data[1].usdecimal": "too precise"})

    monkeypatch.setattr(engine, "set_values", refuse)
    result = api.save({"workitemId": workitem["id"], "data[0].input": "x", "data[1].usdecimal": "1"})
    assert _result_errors(result, "process-data-validation-errors") == {"data[1].usdecimal": "too precise"}

    def conflict(*args, **kwargs):
        raise EngineError("conflict", "the process moved on")

    monkeypatch.undo()  # values are accepted again; completing is refused
    monkeypatch.setattr(engine, "complete", conflict)
    result = api.save({"workitemId": workitem["id"], "data[0].input": "x", "data[1].usdecimal": "1"})
    assert _result_errors(result, "errors") == {"workitemId": "the process moved on"}


def test_save_only_keeps_the_task_open(fresh):
    api, summary = fresh
    workitem = api.start(summary["models"]["expense"])
    assert api.save({"workitemId": workitem["id"], "saveOnly": "true", "data[0].input": "partial"}).get(
        "success"
    ) == ("true")
    mine = [w for w in api.json("/API/PE/Workitem/listAllocated")["workitems"] if w["id"] == workitem["id"]]
    assert mine[0]["state"] == "STARTED" and DATETIME.match(mine[0]["startDatetime"])
    assert api.view(workitem["processInstanceId"])["data"]["0"]["value"] == "partial"
    assert api.save({"workitemId": workitem["id"], "data[1].usdecimal": "10"}).get("success") == "true"
    assert api.view(workitem["processInstanceId"])["activeTokenNodeName"] == "Approve"


def test_executing_roles(fresh):
    api, _ = fresh
    definition = api.emulator.engine.deploy(
        "roles", "Roles", tasks=[TaskDef("Pick", 3, "pick", candidate_groups=[(5, "Sales"), (6, "Support")])]
    )
    workitem = api.start(definition.id, node=3)
    roles = api.form(workitem["id"]).findall("executing-roles/executing-role")
    assert [(r.findtext("qgroup-id"), r.findtext("qgroup-name")) for r in roles] == [
        ("5", "Sales"),
        ("6", "Support"),
    ]
    assert list(_result_errors(api.save({"workitemId": workitem["id"]}), "errors")) == ["qgroupId"]
    assert list(_result_errors(api.save({"workitemId": workitem["id"], "qgroupId": 7}), "errors")) == [
        "qgroupId"
    ]
    assert api.save({"workitemId": workitem["id"], "qgroupId": 6}).get("success") == "true"
    task = api.workitems(
        f"<workitem-criteria><process-instance-id>{workitem['processInstanceId']}</process-instance-id>"
        "</workitem-criteria>"
    )["workitems"][0]
    assert (task["state"], task["allocatedQgroupId"], task["allocatedQgroupName"]) == ("ENDED", 6, "Support")
    assert api.view(workitem["processInstanceId"])["processInstanceState"] == "ENDED"


def test_save_with_an_uploaded_file(fresh):
    api, summary = fresh
    workitem = api.start(summary["models"]["expense"])
    reply = api.post(
        "/API/PE/Workitem/Form/save",
        {"workitemId": workitem["id"], "data[0].input": "With receipt", "data[1].usdecimal": "1"},
        files=[("data[3].upload", ("scan 1.pdf", b"%PDF-1.4 scanned", "application/pdf"))],
    )
    assert reply.status_code == 200 and etree.fromstring(reply.content).get("success") == "true"
    files = api.view(workitem["processInstanceId"])["data"]["3"]["value"]
    assert [(f["name"], f["contentType"], f["length"]) for f in files] == [
        ("scan 1.pdf", "application/pdf", 16)
    ]
    download = api.get(
        "/API/OR/ProcessInstance/File/download",
        {"id": files[0]["id"], "processDataInstanceId": files[0]["processDataInstanceId"]},
    )
    assert download.content == b"%PDF-1.4 scanned"
    as_text = api.save({"workitemId": workitem["id"], "data[3].upload": "not a file"})
    assert as_text.get("success") == "false"


# ---- OR: process search --------------------------------------------------------------------


def test_process_list_defaults_to_one_newest_first_with_total_count(api, demo):
    _, summary = demo
    reply = api.get("/API/OR/ProcessInstance/list")
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) == {"count", "processInstances"}
    assert body["count"] == len(summary["instances"]) and len(body["processInstances"]) == 1
    newest = body["processInstances"][0]
    assert newest["processInstanceId"] == summary["instances"]["leave_stopped"]
    assert set(newest) == PROCESS_KEYS | {"activeTokenNodeName", "data"}
    assert newest["data"] is None and newest["processInstanceState"] == "FAILED"
    assert newest["processInstanceStartDatetime"] == "2024-04-08T09:30:00+0900"
    assert isinstance(newest["processInstanceDebug"], bool)


def test_process_list_pages(api, demo):
    _, summary = demo
    everything = _ids(api.processes())
    assert everything == sorted(summary["instances"].values(), reverse=True)
    pages = [_ids(api.json("/API/OR/ProcessInstance/list", {"start": s, "limit": 3})) for s in (0, 3, 6)]
    assert [number for page in pages for number in page] == everything
    assert api.json("/API/OR/ProcessInstance/list", {"start": 100, "limit": 3}) == {
        "count": len(everything),
        "processInstances": [],
    }
    ascending = api.processes(_process_criteria("<sort-direction>ASC</sort-direction>"))
    assert _ids(ascending) == everything[::-1]
    by_end = api.processes(
        _process_criteria(
            "<sort-property>processInstanceEndDatetime</sort-property>",
            "<states><state>ENDED</state><state>FAILED</state></states>",
        )
    )
    ends = [p["processInstanceEndDatetime"] for p in by_end["processInstances"]]
    assert ends == sorted(ends, reverse=True) and by_end["count"] == 5


def test_process_criteria_filters(api, demo):
    _, summary = demo
    ids = summary["instances"]

    def found(*children: str) -> set[int]:
        return set(_ids(api.processes(_process_criteria(*children))))

    expense = f"<process-model-info-id>{summary['models']['expense']}</process-model-info-id>"
    assert found(expense) == {
        ids[k] for k in ("expense_running", "expense_approved", "expense_rejected", "expense_draft")
    }
    assert found("<states><state>ENDED</state></states>") == {
        ids["expense_approved"],
        ids["contract_signed"],
        ids["leave_completed"],
    }
    assert found("<states><state>STARTED</state></states>", expense) == {
        ids["expense_running"],
        ids["expense_draft"],
    }
    assert found("<title>Q3</title>", "<title>supplier</title>") == {ids["contract_review"]}
    assert found("<title>Q3</title>", "<title>nothing like it</title>") == set()
    # days are the user's (Tokyo) days; a day given as "to" includes all of it
    assert found(
        "<start-date-from>2024-04-03</start-date-from>", "<start-date-to>2024-04-05</start-date-to>"
    ) == {
        ids["expense_rejected"],
        ids["expense_draft"],
        ids["contract_review"],
    }
    assert ids["expense_rejected"] not in found("<start-date-from>2024-04-03 09:31</start-date-from>")
    assert found("<end-date-from>2024-04-06</end-date-from>") == {
        ids["contract_signed"],
        ids["leave_completed"],
        ids["leave_stopped"],
    }
    assert len(found("<init-quser-id>#me</init-quser-id>")) == len(ids)
    assert len(found("<init-quser-id>1</init-quser-id>")) == len(ids)
    assert found("<init-quser-id>2</init-quser-id>") == set()
    approver = Api(api.emulator, summary, login="approver@example.com")
    assert approver.processes(_process_criteria("<init-quser-id>#me</init-quser-id>"))["count"] == 0


def test_only_named_data_items_are_returned(api, demo):
    _, summary = demo
    ids = summary["instances"]
    expense = f"<process-model-info-id>{summary['models']['expense']}</process-model-info-id>"
    plain = api.processes(_process_criteria(expense))
    assert {p["data"] is None for p in plain["processInstances"]} == {True}
    big = api.processes(_process_criteria(expense, _data("decimal", 1, "<greater-equals/>", "50000")))
    assert set(_ids(big)) == {ids["expense_approved"], ids["expense_rejected"]}
    for entry in big["processInstances"]:
        assert list(entry["data"]) == ["1"]
        assert set(entry["data"]["1"]) == DATA_KEYS and entry["data"]["1"]["dataType"] == "DECIMAL"
    assert {p["data"]["1"]["value"] for p in big["processInstances"]} == {"56000.5", "120000"}
    two = api.processes(
        _process_criteria(
            expense,
            "<data><select><data-definition-number>2</data-definition-number><view/></select>"
            "<file><data-definition-number>3</data-definition-number><view/></file></data>",
        )
    )
    assert two["count"] == 4 and {tuple(sorted(p["data"])) for p in two["processInstances"]} == {("2", "3")}
    running = next(p for p in two["processInstances"] if p["processInstanceId"] == ids["expense_running"])
    assert running["data"]["2"]["value"] == [{"display": "Corporate card", "value": "card"}]
    assert running["data"]["3"]["dataType"] == "FILE2"
    assert [f["name"] for f in running["data"]["3"]["value"]] == ["見積書.pdf", "receipt.png"]
    draft = next(p for p in two["processInstances"] if p["processInstanceId"] == ids["expense_draft"])
    assert draft["data"]["3"]["value"] is None and draft["data"]["2"]["value"] is None


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (_data("string", 0, "<contains/>", "Taxi"), {"expense_running"}),
        (_data("string", 0, "<empty/>"), {"expense_draft"}),
        (_data("string", 0, "<not-empty/>"), {"expense_running", "expense_approved", "expense_rejected"}),
        (_data("decimal", 1, "<equals/>", "4800"), {"expense_running"}),
        (_data("decimal", 1, "<less-equals/>", "56000.50"), {"expense_running", "expense_approved"}),
        (_data("select", 2, "<selected/>", "cash"), {"expense_rejected"}),
        (_data("file", 3, "<contains/>", "見積"), {"expense_running"}),
        (_data("file", 3, "<contains/>", "receipt"), {"expense_running", "expense_rejected"}),
        (_data("date", 5, "<after-equals/>", "2024-04-02"), {"expense_approved", "expense_rejected"}),
        (_data("date", 5, "<equals/>", "2024-04-01"), {"expense_running"}),
        (_data("quser", 4, "<equals/>", "2"), {"expense_running", "expense_approved", "expense_rejected"}),
    ],
)
def test_data_conditions(api, demo, condition, expected):
    _, summary = demo
    expense = f"<process-model-info-id>{summary['models']['expense']}</process-model-info-id>"
    found = api.processes(_process_criteria(expense, condition))
    assert set(_ids(found)) == {summary["instances"][name] for name in expected}


def test_datetime_condition(api, demo):
    _, summary = demo
    contract = f"<process-model-info-id>{summary['models']['contract']}</process-model-info-id>"
    signed = api.processes(
        _process_criteria(contract, _data("datetime", 3, "<after-equals/>", "2024-04-08 10:00"))
    )
    assert _ids(signed) == [summary["instances"]["contract_signed"]]
    assert signed["processInstances"][0]["data"]["3"]["value"] == "2024-04-08T10:00:00+0900"
    later = api.processes(
        _process_criteria(contract, _data("datetime", 3, "<after-equals/>", "2024-04-08 10:01"))
    )
    assert later["count"] == 0


@pytest.mark.parametrize(
    "criteria",
    [
        "<process-instance-criteria>",
        "not xml at all",
        "<workitem-criteria/>",
        _process_criteria("<unknown-element>1</unknown-element>"),
        _process_criteria("<process-model-info-id>abc</process-model-info-id>"),
        _process_criteria("<states><state>RUNNING</state></states>"),
        _process_criteria("<start-date-from>yesterday</start-date-from>"),
        _process_criteria("<sort-property>nodeName</sort-property>"),
        _process_criteria("<sort-direction>UP</sort-direction>"),
        _process_criteria(_data("decimal", 1, "<equals/>")),
        _process_criteria(_data("decimal", 1, "<equals/>", "many")),
        _process_criteria(_data("colour", 1)),
        _process_criteria("<data><string><view/></string></data>"),
    ],
)
def test_invalid_criteria_is_a_400(api, criteria):
    for path in ("/API/OR/ProcessInstance/list", "/API/OR/ProcessInstance/listCsv"):
        reply = api.post(path, {"criteria": criteria})
        assert reply.status_code == 400, criteria
        assert _errors(reply) == [
            {"errorCode": _errors(reply)[0]["errorCode"], "input": "criteria", "type": "InvalidCriteria"}
        ]


def test_process_csv(api, demo):
    _, summary = demo
    criteria = _process_criteria(
        f"<process-model-info-id>{summary['models']['expense']}</process-model-info-id>",
        "<sort-direction>ASC</sort-direction>",
        _data("decimal", 1),
        "<data><file><data-definition-number>3</data-definition-number><view/></file></data>",
    )
    reply = api.post("/API/OR/ProcessInstance/listCsv", {"criteria": criteria, "limit": 10})
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(reply.content.decode("utf-8"), newline="")))
    assert rows[0][:6] == ["App ID", "App Name", "Category", "Version", "Process ID", "Status"]
    assert rows[0][-3:] == ["Amount", "Receipts_FileName", "Receipts_ContentType"]
    assert len(rows) == 5
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["Process ID"] == str(summary["instances"]["expense_running"])
    assert (first["Status"], first["Title"], first["Amount"]) == ("Running", "出張 大阪 / taxi", "4800")
    assert (
        first["Receipts_FileName"] == "見積書.pdf\nreceipt.png"
        and first["Start Time"] == "2024-04-01 09:30:00"
    )
    assert [row[5] for row in rows[1:]] == ["Running", "Completed", "Failed", "Running"]
    utf16 = api.post("/API/OR/ProcessInstance/listCsvUtf16", {"criteria": criteria, "limit": 10})
    assert utf16.content.startswith(b"\xff\xfe")
    tab_rows = list(csv.reader(io.StringIO(utf16.content.decode("utf-16"), newline=""), delimiter="\t"))
    assert tab_rows == rows
    one = api.post("/API/OR/ProcessInstance/listCsv", {"criteria": criteria})
    assert len(list(csv.reader(io.StringIO(one.text, newline="")))) == 2  # header + limit 1


# ---- OR: task search -----------------------------------------------------------------------


def test_workitem_list_and_criteria(api, demo):
    _, summary = demo
    ids = summary["instances"]
    default = api.get("/API/OR/Workitem/list").json()
    assert set(default) == {"count", "workitems"} and len(default["workitems"]) == 1
    assert default["count"] == len(api.emulator.engine.tasks)
    signed = api.workitems(
        f"<workitem-criteria><process-instance-id>{ids['contract_signed']}</process-instance-id>"
        "<sort-direction>ASC</sort-direction></workitem-criteria>"
    )
    assert [(w["nodeName"], w["state"]) for w in signed["workitems"]] == [
        ("Draft", "ENDED"),
        ("Review", "ENDED"),
        ("Sign", "ENDED"),
    ]
    assert all(set(w) == WORKITEM_KEYS and w["data"] is None for w in signed["workitems"])
    assert signed["workitems"][1]["allocatedQuserName"] == "approver"

    def states(*names: str) -> list[tuple[int, str]]:
        wanted = "".join(f"<workitem-state>{n}</workitem-state>" for n in names)
        found = api.workitems(
            f"<workitem-criteria><workitem-states>{wanted}</workitem-states></workitem-criteria>"
        )
        return sorted((w["processInstanceId"], w["nodeName"]) for w in found["workitems"])

    assert states("OFFERED") == [(ids["expense_running"], "Approve")]
    assert states("ALLOCATED") == sorted(
        [(ids["expense_draft"], "Apply"), (ids["contract_review"], "Review")]
    )
    approvals = api.workitems(
        f"<workitem-criteria><process-model-info-id>{summary['models']['expense']}</process-model-info-id>"
        "<node-number>1</node-number><sort-property>nodeName</sort-property></workitem-criteria>"
    )
    assert sorted(w["processInstanceId"] for w in approvals["workitems"]) == sorted(
        [ids["expense_running"], ids["expense_approved"], ids["expense_rejected"]]
    )
    mine = api.workitems(
        "<workitem-criteria><workitem-allocated-quser-id>#me</workitem-allocated-quser-id>"
        "<workitem-states><workitem-state>ALLOCATED</workitem-state></workitem-states></workitem-criteria>"
    )
    assert [(w["processInstanceId"], w["nodeName"]) for w in mine["workitems"]] == [
        (ids["expense_draft"], "Apply")
    ]
    with_data = api.workitems(
        f"<workitem-criteria><process-instance-id>{ids['expense_running']}</process-instance-id>"
        "<data><decimal><data-definition-number>1</data-definition-number><view/></decimal></data>"
        "</workitem-criteria>"
    )
    assert [w["data"]["1"]["value"] for w in with_data["workitems"]] == ["4800", "4800"]
    by_name = api.workitems("<workitem-criteria><sort-property>nodeName</sort-property></workitem-criteria>")
    names = [w["nodeName"] for w in by_name["workitems"]]
    assert names == sorted(names, reverse=True)
    nothing = api.workitems(
        "<workitem-criteria><workitem-time-limit-to>2030-01-01</workitem-time-limit-to></workitem-criteria>"
    )
    assert nothing["count"] == 0
    bad = api.post("/API/OR/Workitem/list", {"criteria": _process_criteria()})
    assert bad.status_code == 400 and _errors(bad)[0]["input"] == "criteria"


def test_workitem_csv(api, demo):
    _, summary = demo
    criteria = (
        f"<workitem-criteria><process-instance-id>{summary['instances']['contract_signed']}</process-instance-id>"
        "</workitem-criteria>"
    )
    for path, encoding, separator in (("listCsv", "utf-8", ","), ("listCsvUtf16", "utf-16", "\t")):
        reply = api.post(f"/API/OR/Workitem/{path}", {"criteria": criteria, "limit": 10})
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(reply.content.decode(encoding), newline=""), delimiter=separator))
        assert rows[0][:4] == ["Process ID", "App Name", "Title", "Task"]
        assert sorted(row[3] for row in rows[1:]) == ["Draft", "Review", "Sign"]


# ---- OR: one process, files ------------------------------------------------------------------


def test_view_returns_every_data_item(api, demo):
    _, summary = demo
    view = api.view(summary["instances"]["expense_running"])
    assert set(view) == PROCESS_KEYS | {"activeTokenNodeName", "data"}
    assert view["processInstanceState"] == "STARTED" and view["activeTokenNodeName"] == "Approve"
    assert view["processInstanceEndDatetime"] is None
    assert list(view["data"]) == ["0", "1", "2", "3", "4", "5"]
    types = {number: item["dataType"] for number, item in view["data"].items()}
    assert types == {"0": "STRING", "1": "DECIMAL", "2": "SELECT", "3": "FILE2", "4": "QUSER", "5": "DATE"}
    for number, item in view["data"].items():
        assert set(item) == DATA_KEYS and item["processDataDefinitionNumber"] == int(number)
        assert isinstance(item["id"], int) and isinstance(item["viewOrder"], int)
    files = view["data"]["3"]["value"]
    assert [set(f) for f in files] == [FILE_KEYS, FILE_KEYS]
    first, png = files
    assert (first["name"], first["contentType"], first["image"]) == ("見積書.pdf", "application/pdf", False)
    assert first["processDataInstanceId"] == view["data"]["3"]["id"] and png["image"] is True
    assert first["lengthText"].endswith(" KB") and isinstance(first["length"], int)
    ended = api.view(summary["instances"]["expense_approved"])
    assert ended["processInstanceState"] == "ENDED" and ended["activeTokenNodeName"] is None
    assert DATETIME.match(ended["processInstanceEndDatetime"])
    missing = api.get("/API/OR/ProcessInstance/view", {"processInstanceId": 999999})
    assert missing.status_code == 404 and _errors(missing)[0]["type"] == "ProcessInstanceDoesNotExist"


def _download(api: Api, entry: dict, **kwargs) -> requests.Response:
    params = {"id": entry["id"], "processDataInstanceId": entry["processDataInstanceId"]}
    return api.get("/API/OR/ProcessInstance/File/download", params, **kwargs)


def _disposition_name(header: str) -> str:
    extended = re.search(r"filename\*=UTF-8''([^;]+)", header)
    if extended:
        return unquote(extended.group(1))
    return re.search(r'filename="([^"]*)"', header).group(1)


def test_every_demo_file_downloads_intact(api, demo):
    _, summary = demo
    for entry in summary["files"]:
        file = {"id": entry["id"], "processDataInstanceId": entry["data_instance_id"]}
        reply = _download(api, file, stream=True)
        assert reply.status_code == 200
        assert reply.headers["content-length"] == str(entry["size"])
        assert reply.headers["content-type"].split(";")[0] == entry["content_type"]
        disposition = reply.headers["content-disposition"]
        assert disposition.startswith("attachment;") and _disposition_name(disposition) == entry["name"]
        digest = hashlib.sha256()
        for chunk in reply.iter_content(1 << 16):
            digest.update(chunk)
        expected = hashlib.sha256(api.emulator.engine.file(entry["id"])[2].read()).hexdigest()
        assert digest.hexdigest() == expected, entry["name"]


def test_content_disposition_forms(api, demo):
    _, summary = demo
    by_name = {
        f["name"]: {"id": f["id"], "processDataInstanceId": f["data_instance_id"]} for f in summary["files"]
    }
    japanese = _download(api, by_name["見積書.pdf"]).headers["content-disposition"]
    assert "filename*=UTF-8''%E8%A6%8B%E7%A9%8D%E6%9B%B8.pdf" in japanese
    assert 'filename="' in japanese and japanese.isascii()
    umlaut = _download(api, by_name["Übersicht ä.txt"]).headers["content-disposition"]
    assert "filename*=UTF-8''%C3%9Cbersicht%20%C3%A4.txt" in umlaut
    # the server hands hostile names over as they are; keeping them inside a folder is the client's job
    assert _download(api, by_name["../escape.txt"]).headers["content-disposition"] == (
        'attachment; filename="../escape.txt"'
    )
    assert _download(api, by_name["empty.txt"]).content == b""


def test_download_needs_the_matching_data_item(api, demo):
    _, summary = demo
    entry = summary["files"][0]
    other = next(f for f in summary["files"] if f["data_instance_id"] != entry["data_instance_id"])
    wrong = _download(api, {"id": entry["id"], "processDataInstanceId": other["data_instance_id"]})
    assert wrong.status_code == 404 and _errors(wrong)[0]["input"] == "processDataInstanceId"
    unknown = _download(api, {"id": 999999, "processDataInstanceId": entry["data_instance_id"]})
    assert unknown.status_code == 404 and _errors(unknown)[0]["type"] == "FileDoesNotExist"
    missing = api.get("/API/OR/ProcessInstance/File/download", {"id": entry["id"]})
    assert missing.status_code == 400 and _errors(missing)[0]["input"] == "processDataInstanceId"


def test_truncated_download_is_incomplete(api, demo):
    emulator, summary = demo
    large = summary["large_file"]
    file = {"id": large["id"], "processDataInstanceId": large["data_instance_id"]}
    emulator.faults.truncate("File/download")
    reply = _download(api, file, stream=True)
    assert reply.status_code == 200 and reply.headers["content-length"] == str(large["size"])
    received = 0
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for chunk in reply.iter_content(1 << 16):
            received += len(chunk)
    assert received == large["size"] // 2
    again = _download(api, file)
    assert len(again.content) == large["size"]


# ---- changes: star, reallocate, stop, delete ------------------------------------------------------


def test_star_add_and_remove(fresh):
    api, _ = fresh
    workitem = api.json("/API/PE/Workitem/listAllocated")["workitems"][0]
    assert workitem["starred"] is False
    reply = api.post("/API/OR/Workitem/Star/add", {"workitemId": workitem["id"]})
    assert reply.status_code == 200 and reply.content == b""
    assert api.json("/API/PE/Workitem/listAllocated")["workitems"][0]["starred"] is True
    starred = api.workitems(
        "<workitem-criteria><workitem-starred>true</workitem-starred></workitem-criteria>"
    )
    assert {w["processInstanceId"] for w in starred["workitems"]} == {workitem["processInstanceId"]}
    assert api.get("/API/OR/Workitem/Star/remove", {"workitemId": workitem["id"]}).status_code == 200
    assert api.json("/API/PE/Workitem/listAllocated")["workitems"][0]["starred"] is False
    assert api.post("/API/OR/Workitem/Star/add", {"workitemId": 999999}).status_code == 404


def test_reallocate(fresh):
    api, summary = fresh
    workitem = api.json("/API/PE/Workitem/listAllocated")["workitems"][0]
    reply = api.post(
        "/API/PIM/Workitem/reallocate", {"workitemId": workitem["id"], "quserId": 2, "qgroupId": 1}
    )
    assert reply.status_code == 200
    moved = reply.json()["workitem"]
    assert (moved["allocatedQuserId"], moved["allocatedQuserName"]) == (2, "approver")
    assert (moved["allocatedQgroupId"], moved["allocatedQgroupName"]) == (1, "Finance")
    assert api.json("/API/PE/Workitem/listAllocated")["count"] == 0
    approver = Api(api.emulator, summary, login="approver@example.com")
    assert workitem["id"] in [w["id"] for w in approver.json("/API/PE/Workitem/listAllocated")["workitems"]]
    unknown = api.post(
        "/API/PIM/Workitem/reallocate", {"workitemId": workitem["id"], "quserId": 99, "qgroupId": 1}
    )
    assert unknown.status_code == 400 and _errors(unknown)[0]["input"] == "quserId"
    no_group = api.post("/API/PIM/Workitem/reallocate", {"workitemId": workitem["id"], "quserId": 1})
    assert no_group.status_code == 400 and _errors(no_group)[0]["input"] == "qgroupId"


def test_stop_and_delete(fresh):
    api, summary = fresh
    running = summary["instances"]["expense_running"]
    reply = api.post("/API/OR/ProcessInstance/stop", {"processInstanceId": running})
    assert reply.status_code == 200 and reply.content == b""
    view = api.view(running)
    assert view["processInstanceState"] == "FAILED" and DATETIME.match(view["processInstanceEndDatetime"])
    assert view["activeTokenNodeName"] is None
    assert api.json("/API/PE/Workitem/listOffered")["count"] == 0
    again = api.post("/API/OR/ProcessInstance/stop", {"processInstanceId": running})
    assert again.status_code == 400 and _errors(again)[0] == {
        "errorCode": _errors(again)[0]["errorCode"],
        "input": "processInstanceId",
        "type": "IllegalState",
    }
    files = view["data"]["3"]["value"]
    assert api.post("/API/OR/ProcessInstance/delete", {"processInstanceId": running}).status_code == 200
    assert api.get("/API/OR/ProcessInstance/view", {"processInstanceId": running}).status_code == 404
    assert _download(api, files[0]).status_code == 404
    assert running not in _ids(api.processes())
    assert api.post("/API/OR/ProcessInstance/delete", {"processInstanceId": running}).status_code == 404


def test_stop_is_reflected_in_task_search(fresh):
    api, summary = fresh
    draft = summary["instances"]["expense_draft"]
    api.post("/API/OR/ProcessInstance/stop", {"processInstanceId": draft})
    tasks = api.workitems(
        f"<workitem-criteria><process-instance-id>{draft}</process-instance-id></workitem-criteria>"
    )
    assert [(w["state"], w["processInstanceState"]) for w in tasks["workitems"]] == [("ENDED", "FAILED")]
    failed = api.processes(_process_criteria("<states><state>FAILED</state></states>"))
    assert draft in _ids(failed)
