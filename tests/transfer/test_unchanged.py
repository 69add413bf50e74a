"""A re-run proves same-size files unchanged from the last manifest, without reading them back.

Reads of the destination are counted at fsspec's ``open`` (every store read goes through it);
the manifest's own read is not counted.
"""

from __future__ import annotations

import json
import os

import fsspec.spec
import memory_bpm
import pytest
from airflow.sdk import ObjectStoragePath
from test_s3_destination import BUCKET, body, s3  # noqa: F401 - the moto server fixture

from airflow_bpm_provider.hooks.registry import get_bpm_hook
from airflow_bpm_provider.transfer.export import export_process_files
from airflow_bpm_provider.transfer.unchanged import KnownDigests, store_version

MANIFEST = "manifest.json"


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """Paths opened for reading at any fsspec store, the manifest left out."""
    opened: list[str] = []
    original = fsspec.spec.AbstractFileSystem.open

    def counting_open(self, path, mode="rb", *args, **kwargs):
        if "r" in mode and not str(path).endswith(MANIFEST):
            opened.append(str(path))
        return original(self, path, mode, *args, **kwargs)

    monkeypatch.setattr(fsspec.spec.AbstractFileSystem, "open", counting_open)
    return opened


@pytest.fixture
def files(bpm):
    bpm.define("exp", "Expense report")
    instance = bpm.start("exp", {}, None, "Trip")
    stored = [
        bpm.add_file(instance.id, "a.pdf", b"%PDF " + b"a" * 3000),
        bpm.add_file(instance.id, "b.csv", b"x,y\n" * 500),
        bpm.add_file(instance.id, "c.txt", b"c" * 10),
    ]
    return instance, stored


def export(destination, instance, **kwargs):
    return export_process_files(
        get_bpm_hook(memory_bpm.CONN_ID),
        destination,
        process_instance_ids=[instance.id],
        layout="{file_name}",
        **kwargs,
    )


def statuses(manifest) -> dict[str, str]:
    return {entry["file_name"]: entry["status"] for entry in manifest}


# ---- a local folder ---------------------------------------------------------------------------


def test_a_rerun_reads_nothing_back_when_the_manifest_proves_it(files, reads, tmp_path):
    instance, _ = files
    assert set(statuses(export(tmp_path, instance, manifest_name=MANIFEST)).values()) == {"written"}
    reads.clear()
    again = export(tmp_path, instance, manifest_name=MANIFEST)
    assert set(statuses(again).values()) == {"unchanged"}
    assert reads == []
    # And again: the manifest this run wrote vouches the same way.
    assert set(statuses(export(tmp_path, instance, manifest_name=MANIFEST)).values()) == {"unchanged"}
    assert reads == []


def test_without_a_manifest_every_same_size_file_is_still_read_back(files, reads, tmp_path):
    instance, _ = files
    export(tmp_path, instance)
    reads.clear()
    assert set(statuses(export(tmp_path, instance)).values()) == {"unchanged"}
    assert sorted(os.path.basename(path) for path in reads) == ["a.pdf", "b.csv", "c.txt"]


def test_a_file_changed_at_the_destination_with_the_same_size_is_detected(files, reads, tmp_path):
    instance, _ = files
    export(tmp_path, instance, manifest_name=MANIFEST)
    target = tmp_path / "b.csv"
    before = os.stat(target)
    with open(target, "r+b") as changed:  # same size, same inode, other bytes
        changed.write(b"X")
    # Even with its mtime set back to what the manifest saw: ctime cannot be set back.
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(target).st_size == before.st_size
    reads.clear()
    again = statuses(export(tmp_path, instance, manifest_name=MANIFEST))
    assert again == {"a.pdf": "unchanged", "b.csv": "replaced", "c.txt": "unchanged"}
    assert [os.path.basename(path) for path in reads] == ["b.csv"]
    assert target.read_bytes() == b"x,y\n" * 500


def test_a_file_changed_in_the_bpm_system_with_the_same_size_is_replaced(files, reads, tmp_path):
    instance, stored = files
    export(tmp_path, instance, manifest_name=MANIFEST)
    stored[2].content = b"C" * 10
    reads.clear()
    again = statuses(export(tmp_path, instance, manifest_name=MANIFEST))
    assert again == {"a.pdf": "unchanged", "b.csv": "unchanged", "c.txt": "replaced"}
    assert reads == []  # the recorded hash differs from the download: no need to read it
    assert (tmp_path / "c.txt").read_bytes() == b"C" * 10


def test_a_damaged_manifest_only_costs_the_read_back(files, reads, tmp_path):
    instance, _ = files
    export(tmp_path, instance, manifest_name=MANIFEST)
    (tmp_path / MANIFEST).write_text('{"store_versions": {"a.pdf": {"sha256": 1}}, "files": [')
    reads.clear()
    assert set(statuses(export(tmp_path, instance, manifest_name=MANIFEST)).values()) == {"unchanged"}
    assert len(reads) == 3


def test_a_forged_entry_for_another_version_is_not_trusted(files, reads, tmp_path):
    instance, _ = files
    export(tmp_path, instance, manifest_name=MANIFEST)
    document = json.loads((tmp_path / MANIFEST).read_text())
    document["store_versions"]["a.pdf"]["version"] = "local:0:0:0:0:0"
    (tmp_path / MANIFEST).write_text(json.dumps(document))
    reads.clear()
    assert set(statuses(export(tmp_path, instance, manifest_name=MANIFEST)).values()) == {"unchanged"}
    assert [os.path.basename(path) for path in reads] == ["a.pdf"]


def test_the_manifest_records_each_files_hash_size_and_store_version(files, tmp_path):
    instance, _ = files
    manifest = export(tmp_path, instance, manifest_name=MANIFEST)
    versions = json.loads((tmp_path / MANIFEST).read_text())["store_versions"]
    assert sorted(versions) == ["a.pdf", "b.csv", "c.txt"]
    for entry in manifest:
        recorded = versions[entry["path"]]
        assert (recorded["sha256"], recorded["size"]) == (entry["sha256"], entry["size"])
        assert recorded["version"] == store_version(ObjectStoragePath(str(tmp_path / entry["path"])))


# ---- S3 (moto) ------------------------------------------------------------------------------


def test_s3_rerun_uses_the_etag_and_still_catches_a_same_size_overwrite(files, reads, s3):  # noqa: F811
    conn_id, client = s3
    instance, _ = files
    prefix = "unchanged-run"
    destination = f"s3://{BUCKET}/{prefix}/"
    first = export(destination, instance, dest_conn_id=conn_id, manifest_name=MANIFEST)
    assert set(statuses(first).values()) == {"written"}
    reads.clear()
    assert set(
        statuses(export(destination, instance, dest_conn_id=conn_id, manifest_name=MANIFEST)).values()
    ) == {"unchanged"}
    assert reads == []

    # Someone overwrites one object with other bytes of the same size.
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/c.txt", Body=b"z" * 10)
    reads.clear()
    again = statuses(export(destination, instance, dest_conn_id=conn_id, manifest_name=MANIFEST))
    assert again == {"a.pdf": "unchanged", "b.csv": "unchanged", "c.txt": "replaced"}
    assert [path.rsplit("/", 1)[-1] for path in reads] == ["c.txt"]
    assert body(client, f"{prefix}/c.txt") == b"c" * 10


def test_s3_without_a_version_marker_reads_back(s3, monkeypatch):  # noqa: F811
    conn_id, _ = s3
    root = ObjectStoragePath(f"s3://{BUCKET}/no-version/", conn_id=conn_id)
    target = root / "x.bin"
    target.write_bytes(b"x")
    fs = target.fs
    info = fs.info
    # A store that reports a size but nothing that changes with each write.
    monkeypatch.setattr(fs, "info", lambda path, **kw: {"size": info(path)["size"]})
    assert store_version(target) is None
    known = KnownDigests(root, {"x.bin": {"sha256": "not-it", "size": 1, "version": "size=1"}})
    assert known.sha256_of(target) != "not-it" and known.read_back == 1
