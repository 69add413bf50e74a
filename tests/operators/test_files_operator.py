"""BpmDownloadProcessFilesOperator: the export job as one templated task returning the manifest."""

from __future__ import annotations

import json
import os

import memory_bpm
import pytest
from airflow.sdk import DAG, ObjectStoragePath
from airflow_runtime import context_for, run

from airflow_bpm_provider.exceptions import BpmConfigError, BpmTransferError
from airflow_bpm_provider.operators.files import BpmDownloadProcessFilesOperator


@pytest.fixture
def instance(bpm):
    bpm.define("expense", "Expense report")
    instance = bpm.start("expense", {}, "INV-1", "Trip")
    bpm.add_file(instance.id, "receipt.pdf", b"%PDF receipt", group="Receipts")
    bpm.add_file(instance.id, "receipt.pdf", b"%PDF second receipt", group="Receipts")
    return instance


def make(**kwargs) -> BpmDownloadProcessFilesOperator:
    with DAG("bpm_export", schedule=None):
        return BpmDownloadProcessFilesOperator(task_id="export", bpm_conn_id=memory_bpm.CONN_ID, **kwargs)


def test_templated_selection_destination_and_layout_and_the_manifest_is_returned(
    bpm, instance, supervisor, tmp_path
):
    op = make(
        destination="{{ params.root }}/{{ ds }}",
        process_instance_ids="{{ params.pid }}",
        layout="{{ params.prefix }}/{business_key}/{group}/{file_name}",
        manifest_name="manifest-{{ ds }}.json",
    )
    context = context_for(op, params={"root": str(tmp_path), "pid": instance.id, "prefix": "bpm"})
    manifest = run(op, context)

    day = tmp_path / "2024-05-01"
    assert [entry["path"] for entry in manifest] == [
        "bpm/INV-1/Receipts/receipt.pdf",
        "bpm/INV-1/Receipts/receipt (2).pdf",
    ]
    assert (day / "bpm/INV-1/Receipts/receipt.pdf").read_bytes() == b"%PDF receipt"
    assert (day / "bpm/INV-1/Receipts/receipt (2).pdf").read_bytes() == b"%PDF second receipt"
    assert json.loads((day / "manifest-2024-05-01.json").read_text())["files"] == manifest
    assert {entry["status"] for entry in manifest} == {"written"}

    again = run(make(destination=str(day), process_instance_ids=[instance.id], layout=op.layout), context)
    assert {entry["status"] for entry in again} == {"unchanged"}


def test_a_query_selects_processes_and_an_object_storage_path_is_accepted(
    bpm, instance, supervisor, tmp_path
):
    other = bpm.start("expense", {}, "INV-2", "Other")
    bpm.add_file(other.id, "note.txt", b"note")
    op = make(destination=ObjectStoragePath(f"file://{tmp_path}"), query={"business_key": "INV-2"})
    manifest = run(op, context_for(op))
    assert [(entry["process_id"], entry["path"]) for entry in manifest] == [
        (other.id, f"{other.id}_Expense report_(Other)/note.txt")
    ]
    assert os.listdir(tmp_path) == [f"{other.id}_Expense report_(Other)"]


def test_a_failing_file_fails_the_task_after_the_others_landed(bpm, instance, supervisor, tmp_path):
    bpm.add_file(instance.id, "cut.bin", b"x" * 100, size=500)
    op = make(destination=str(tmp_path), process_instance_ids=[instance.id])
    with pytest.raises(BpmTransferError, match=r"'cut\.bin'"):
        run(op, context_for(op))
    folder = tmp_path / f"{instance.id}_Expense report_(Trip)"
    assert sorted(os.listdir(folder)) == ["receipt (2).pdf", "receipt.pdf"]


def test_file_retries_are_not_the_tasks_own_retries(tmp_path):
    from airflow_bpm_provider.transfer.fetch import DEFAULT_RETRIES

    with DAG("file_retries", schedule=None, default_args={"retries": 0}):
        default = BpmDownloadProcessFilesOperator(
            task_id="default", bpm_conn_id="bpm", destination=str(tmp_path), process_instance_ids=["1"]
        )
        both = BpmDownloadProcessFilesOperator(
            task_id="both",
            bpm_conn_id="bpm",
            destination=str(tmp_path),
            process_instance_ids=["1"],
            retries=2,
            file_retries=5,
        )
    assert (default.retries, default.file_retries) == (0, DEFAULT_RETRIES)
    assert (both.retries, both.file_retries) == (2, 5)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"process_instance_ids": ["1"], "layout": "{id}/{file_name}"},
            BpmConfigError,
            r"unknown placeholder \{id\}",
        ),
        ({"process_instance_ids": ["1"], "layout": "../{file_name}"}, BpmConfigError, "'..'"),
        ({"process_instance_ids": ["1"], "layout": "{process_id}"}, BpmConfigError, "file_name"),
        ({}, ValueError, "select the processes"),
        ({"process_instance_ids": ["1"], "query": {"a": 1}}, ValueError, "not both"),
        ({"process_instance_ids": ["1"], "max_concurrency": 0}, ValueError, "max_concurrency"),
        ({"process_instance_ids": ["1"], "file_retries": -1}, ValueError, "file_retries"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        make(destination=str(tmp_path), **kwargs)


def test_template_fields():
    assert {"process_instance_ids", "query", "destination", "layout"} <= set(
        BpmDownloadProcessFilesOperator.template_fields
    )


def test_dest_conn_id_is_templated_and_the_rendered_connection_is_the_one_written_with(
    bpm, instance, supervisor, monkeypatch
):
    """A DAG takes its store's connection from a template (a Variable, params) per environment."""
    import uuid

    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        conn_id = f"store_{uuid.uuid4().hex[:8]}"  # fresh: Airflow caches a filesystem per conn id
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}",
            json.dumps(
                {
                    "conn_type": "aws",
                    "login": "testing-key",
                    "password": "testing-secret",
                    "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
                }
            ),
        )
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing-key",
            aws_secret_access_key="testing-secret",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket="exports")

        op = make(
            destination="s3://exports/run/",
            dest_conn_id="{{ params.store }}",
            process_instance_ids=[instance.id],
        )
        assert "dest_conn_id" in BpmDownloadProcessFilesOperator.template_fields
        manifest = run(op, context_for(op, params={"store": conn_id}))

        assert op.dest_conn_id == conn_id
        assert {entry["status"] for entry in manifest} == {"written"}
        listed = client.list_objects_v2(Bucket="exports", Prefix="run/").get("Contents", [])
        assert sorted(item["Key"] for item in listed) == sorted(f"run/{entry['path']}" for entry in manifest)
    finally:
        server.stop()
