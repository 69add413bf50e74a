"""Writing to S3 through ObjectStoragePath and an aws connection, against a local moto server."""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid

import boto3
import memory_bpm
import pytest
from airflow.sdk import ObjectStoragePath
from moto.server import ThreadedMotoServer

from airflow_bpm_provider.exceptions import BpmTransferError
from airflow_bpm_provider.hooks.registry import get_bpm_hook
from airflow_bpm_provider.transfer.export import export_process_files
from airflow_bpm_provider.transfer.writer import Download, write_file

BUCKET = "exports"


@pytest.fixture(scope="module")
def s3():
    """A moto S3 on 127.0.0.1, an aws connection pointing at it, and a boto3 client to check with."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # A fresh connection id per module: Airflow caches one filesystem per (protocol, conn_id).
    conn_id = f"s3_test_{uuid.uuid4().hex[:8]}"
    connection = {
        "conn_type": "aws",
        "login": "testing-key",
        "password": "testing-secret",
        "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing-key",
            aws_secret_access_key="testing-secret",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=BUCKET)
        try:
            yield conn_id, client
        finally:
            server.stop()


def keys(client, prefix: str) -> list[str]:
    answer = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for item in answer.get("Contents", []))


def body(client, key: str) -> bytes:
    return client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def test_an_object_is_written_then_unchanged_then_replaced(s3):
    conn_id, client = s3
    prefix = f"run-{uuid.uuid4().hex[:6]}/"
    target = ObjectStoragePath(f"s3://{BUCKET}/{prefix}", conn_id=conn_id) / "183_App_(T)" / "a.txt"
    first = write_file([b"hello ", b"s3"], target, expected_size=8, file_name="a.txt", process_id="183")
    assert first.status == "written"
    assert first.url == f"s3://{BUCKET}/{prefix}183_App_(T)/a.txt"
    assert first.sha256 == hashlib.sha256(b"hello s3").hexdigest()
    assert body(client, f"{prefix}183_App_(T)/a.txt") == b"hello s3"

    assert write_file([b"hello s3"], target, expected_size=8).status == "unchanged"
    assert write_file([b"hello S3"], target, expected_size=8).status == "replaced"
    assert body(client, f"{prefix}183_App_(T)/a.txt") == b"hello S3"
    assert keys(client, prefix) == [f"{prefix}183_App_(T)/a.txt"]


def test_a_broken_download_creates_no_object(s3):
    conn_id, client = s3
    prefix = f"run-{uuid.uuid4().hex[:6]}/"
    seen_during = []

    def stream():
        yield b"x" * 1000
        seen_during.append(keys(client, prefix))
        raise ConnectionError("reset")

    target = ObjectStoragePath(f"s3://{BUCKET}/{prefix}", conn_id=conn_id) / "f.bin"
    with pytest.raises(BpmTransferError):
        write_file(stream(), target, expected_size=5000)
    assert seen_during == [[]]
    assert keys(client, prefix) == []


def test_export_to_s3_with_a_manifest(s3, bpm):
    conn_id, client = s3
    prefix = f"run-{uuid.uuid4().hex[:6]}"
    bpm.define("exp", "Expense")
    instance = bpm.start("exp", {}, None, "Trip")
    bpm.add_file(instance.id, "receipt.pdf", b"%PDF-1.7 receipt")
    bpm.add_file(instance.id, "../../escape.txt", b"nope")

    manifest = export_process_files(
        get_bpm_hook(memory_bpm.CONN_ID),
        f"s3://{BUCKET}/{prefix}/",
        dest_conn_id=conn_id,
        process_instance_ids=[instance.id],
        manifest_name="manifest.json",
    )
    folder = f"{instance.id}_Expense_(Trip)"
    assert [entry["path"] for entry in manifest] == [f"{folder}/receipt.pdf", f"{folder}/_.._escape.txt"]
    assert keys(client, prefix + "/") == [
        f"{prefix}/{folder}/_.._escape.txt",
        f"{prefix}/{folder}/receipt.pdf",
        f"{prefix}/manifest.json",
    ]
    assert body(client, f"{prefix}/{folder}/receipt.pdf") == b"%PDF-1.7 receipt"
    written = json.loads(body(client, f"{prefix}/manifest.json"))
    assert written["files"] == manifest


def large_reader(data: bytes, *, break_after: int | None = None):
    source = io.BytesIO(data)

    def readinto(buffer: memoryview) -> int:
        if break_after is not None and source.tell() >= break_after:
            raise ConnectionResetError("reset by peer")
        return source.readinto(buffer[:200_000])

    return readinto


def test_a_large_file_goes_up_in_parts_and_lands_whole(s3):
    conn_id, client = s3
    prefix = f"run-{uuid.uuid4().hex[:6]}/"
    data = os.urandom(12 * 1024 * 1024 + 123)
    target = ObjectStoragePath(f"s3://{BUCKET}/{prefix}", conn_id=conn_id) / "big.bin"
    download = Download(target, what="big.bin")
    download.pump(large_reader(data), expected_size=len(data))
    assert keys(client, prefix) == []  # nothing visible before the upload completes
    entry = download.finish(process_id="1", file_name="big.bin", relative_path="big.bin")
    assert entry.status == "written"
    assert entry.sha256 == hashlib.sha256(data).hexdigest()
    assert body(client, f"{prefix}big.bin") == data
    etag = client.head_object(Bucket=BUCKET, Key=f"{prefix}big.bin")["ETag"]
    assert etag.strip('"').endswith("-3")  # three parts of 5, 5 and 2 MiB
    assert not client.list_multipart_uploads(Bucket=BUCKET).get("Uploads")


def test_a_large_download_that_breaks_leaves_no_object_and_no_open_upload(s3):
    conn_id, client = s3
    prefix = f"run-{uuid.uuid4().hex[:6]}/"
    data = os.urandom(16 * 1024 * 1024)
    target = ObjectStoragePath(f"s3://{BUCKET}/{prefix}", conn_id=conn_id) / "big.bin"
    download = Download(target, what="big.bin")
    with pytest.raises(BpmTransferError, match="broke off"):
        download.pump(large_reader(data, break_after=11 * 1024 * 1024), expected_size=len(data))
    download.abort()
    assert keys(client, prefix) == []
    uploads = client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
    assert [u for u in uploads if u["Key"].startswith(prefix)] == []


def test_a_resumed_large_download_continues_the_same_upload(s3):
    conn_id, client = s3
    prefix = f"run-{uuid.uuid4().hex[:6]}/"
    data = os.urandom(13 * 1024 * 1024 + 5)
    target = ObjectStoragePath(f"s3://{BUCKET}/{prefix}", conn_id=conn_id) / "big.bin"
    download = Download(target, what="big.bin")
    with pytest.raises(BpmTransferError, match="broke off"):
        download.pump(large_reader(data, break_after=7 * 1024 * 1024), expected_size=len(data))
    assert download.received == 5 * 1024 * 1024  # one whole part went up; the rest comes again
    download.pump(large_reader(data[download.received :]), expected_size=len(data))
    entry = download.finish(process_id="1", file_name="big.bin", relative_path="big.bin")
    assert entry.sha256 == hashlib.sha256(data).hexdigest()
    assert body(client, f"{prefix}big.bin") == data
