"""The export job over a hook: selection, layout, duplicates, external files, failures, manifest."""

from __future__ import annotations

import hashlib
import json
import logging
import os

import memory_bpm
import pytest

from airflow_bpm_provider.exceptions import BpmConfigError, BpmTransferError
from airflow_bpm_provider.hooks.http import Headers
from airflow_bpm_provider.hooks.registry import get_bpm_hook
from airflow_bpm_provider.models import ProcessFile, ProcessState
from airflow_bpm_provider.transfer.export import announced_size, export_process_files


def tree(root) -> dict[str, bytes]:
    found = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as stored:
                found[os.path.relpath(path, root)] = stored.read()
    return found


@pytest.fixture
def hook(bpm):
    bpm.define("exp", "Expense report", ["Approve"])
    bpm.define("hire", "Hiring")
    return get_bpm_hook(memory_bpm.CONN_ID)


def test_files_of_selected_processes_land_under_the_seed_layout(bpm, hook, tmp_path):
    trip = bpm.start("exp", {}, None, "Trip to Kyoto")
    bpm.add_file(trip.id, "ques-kun-01.png", b"\x89PNG" + bytes(range(256)), group="Receipts")
    bpm.add_file(trip.id, "README.txt", b"read me\n", group="Receipts")
    other = bpm.start("hire", {}, None, "Alice")
    bpm.add_file(other.id, "cv.pdf", b"%PDF cv")

    manifest = export_process_files(hook, str(tmp_path), process_instance_ids=[trip.id, other.id])

    assert tree(tmp_path) == {
        f"{trip.id}_Expense report_(Trip to Kyoto)/ques-kun-01.png": b"\x89PNG" + bytes(range(256)),
        f"{trip.id}_Expense report_(Trip to Kyoto)/README.txt": b"read me\n",
        f"{other.id}_Hiring_(Alice)/cv.pdf": b"%PDF cv",
    }
    assert manifest[1] == {
        "process_id": trip.id,
        "file_name": "README.txt",
        "path": f"{trip.id}_Expense report_(Trip to Kyoto)/README.txt",
        "url": f"{tmp_path}/{trip.id}_Expense report_(Trip to Kyoto)/README.txt",
        "size": 8,
        "sha256": hashlib.sha256(b"read me\n").hexdigest(),
        "status": "written",
        "group": "Receipts",
    }
    assert [entry["group"] for entry in manifest] == ["Receipts", "Receipts", None]
    assert bpm.open_streams == 0


def test_duplicate_and_hostile_names_stay_inside_and_apart_and_a_rerun_changes_nothing(bpm, hook, tmp_path):
    dest = tmp_path / "dest"
    instance = bpm.start("exp", {}, None, "../../..")
    for name, content in [
        ("a.txt", b"1"),
        ("A.TXT", b"2"),
        ("a.txt", b"3"),
        ("../../a.txt", b"4"),
        ("CON", b"5"),
    ]:
        bpm.add_file(instance.id, name, content)

    first = export_process_files(hook, str(dest), process_instance_ids=instance.id)
    folder = f"{instance.id}_Expense report_(.._.._..)"
    assert [entry["path"] for entry in first] == [
        f"{folder}/a.txt",
        f"{folder}/A (2).TXT",
        f"{folder}/a (3).txt",
        f"{folder}/_.._a.txt",
        f"{folder}/_CON",
    ]
    assert tree(dest) == {
        f"{folder}/a.txt": b"1",
        f"{folder}/A (2).TXT": b"2",
        f"{folder}/a (3).txt": b"3",
        f"{folder}/_.._a.txt": b"4",
        f"{folder}/_CON": b"5",
    }
    assert os.listdir(tmp_path) == ["dest"]

    second = export_process_files(hook, str(dest), process_instance_ids=[instance.id])
    assert [entry["status"] for entry in second] == ["unchanged"] * 5
    assert [entry["path"] for entry in second] == [entry["path"] for entry in first]

    bpm.instance(instance.id).files[2].content = b"three"
    bpm.instance(instance.id).files[2].size = 5
    third = export_process_files(hook, str(dest), process_instance_ids=[instance.id])
    assert [entry["status"] for entry in third] == [
        "unchanged",
        "unchanged",
        "replaced",
        "unchanged",
        "unchanged",
    ]
    assert (dest / folder / "a (3).txt").read_bytes() == b"three"


def test_external_files_are_reported_not_downloaded(bpm, hook, tmp_path):
    instance = bpm.start("exp", {}, None, "T")
    bpm.add_file(instance.id, "linked.docx", b"", size=1234, external_url="https://dms.example.test/d/9")
    bpm.add_file(instance.id, "local.txt", b"here")

    manifest = export_process_files(hook, tmp_path, process_instance_ids=[instance.id])

    assert manifest[0] == {
        "process_id": instance.id,
        "file_name": "linked.docx",
        "path": None,
        "url": "https://dms.example.test/d/9",
        "size": 1234,
        "sha256": None,
        "status": "external",
        "group": None,
    }
    assert manifest[1]["status"] == "written"
    assert bpm.streams_opened == 1
    assert list(tree(tmp_path)) == [f"{instance.id}_Expense report_(T)/local.txt"]


def test_one_failing_file_does_not_stop_the_others_and_every_failure_is_named(bpm, hook, tmp_path, caplog):
    one = bpm.start("exp", {}, None, "one")
    bpm.add_file(one.id, "ok-1.txt", b"fine")
    bpm.add_file(one.id, "broken.bin", b"x" * 5000, break_after=1000)
    bpm.add_file(one.id, "short.bin", b"y" * 10, size=20)
    two = bpm.start("hire", {}, None, "two")
    bpm.add_file(two.id, "ok-2.txt", b"also fine")

    with caplog.at_level(logging.INFO), pytest.raises(BpmTransferError) as info:
        export_process_files(
            hook, tmp_path, process_instance_ids=[one.id, "no-such-id", two.id], manifest_name="manifest.json"
        )

    message = str(info.value)
    assert "3 failure(s), 2 file(s) landed" in message
    assert "'broken.bin'" in message and "broke off after 1000 bytes" in message
    assert "'short.bin'" in message and "received 10 bytes but the server announced 20" in message
    assert "process no-such-id: could not be read" in message
    assert sorted(tree(tmp_path)) == [
        f"{one.id}_Expense report_(one)/ok-1.txt",
        f"{two.id}_Hiring_(two)/ok-2.txt",
    ]
    assert "manifest.json" not in os.listdir(tmp_path)  # its presence would say "complete"
    assert "ok-2.txt" in caplog.text  # the successes are logged
    assert memory_bpm.PASSWORD not in message and memory_bpm.PASSWORD not in caplog.text
    assert bpm.open_streams == 0


def test_processes_found_by_a_vendor_query_and_filters(bpm, hook, tmp_path):
    running = bpm.start("exp", {}, None, "running")
    done = bpm.start("exp", {}, None, "done")
    other = bpm.start("hire", {}, None, "other")
    bpm.end(done.id, ProcessState.COMPLETED)
    for instance in (running, done, other):
        bpm.add_file(instance.id, "f.txt", instance.title.encode())

    by_query = export_process_files(hook, tmp_path / "q", query={"definition": "exp"})
    assert [entry["process_id"] for entry in by_query] == [running.id, done.id]

    by_both = export_process_files(
        hook, tmp_path / "b", query={"definition": "exp"}, filters={"state": "COMPLETED"}
    )
    assert [entry["process_id"] for entry in by_both] == [done.id]

    with pytest.raises(BpmConfigError, match="unknown filters: colour"):
        export_process_files(hook, tmp_path / "c", filters={"colour": "red"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "nothing selects the processes"),
        ({"process_instance_ids": ["1"], "query": {"definition": "exp"}}, "not both"),
        ({"process_instance_ids": ["1"], "filters": {"state": "RUNNING"}}, "not both"),
        ({"process_instance_ids": []}, "non-empty"),
        ({"process_instance_ids": ["1", " "]}, "non-empty"),
        ({"process_instance_ids": ["1"], "layout": "{nope}/{file_name}"}, "unknown placeholder {nope}"),
    ],
)
def test_bad_selections_fail_before_anything_is_written(hook, tmp_path, kwargs, message):
    with pytest.raises(BpmConfigError, match=message.replace("{", r"\{").replace("}", r"\}")):
        export_process_files(hook, tmp_path / "d", **kwargs)
    assert not (tmp_path / "d").exists()


def test_the_manifest_is_written_atomically_next_to_the_files_and_reserved(bpm, hook, tmp_path):
    instance = bpm.start("exp", {}, None, "T")
    bpm.add_file(instance.id, "manifest.json", b"a user's own file")
    bpm.add_file(instance.id, "b.txt", b"b")

    manifest = export_process_files(
        hook,
        tmp_path,
        process_instance_ids=[instance.id],
        layout="{file_name}",
        manifest_name="manifest.json",
    )
    assert [entry["path"] for entry in manifest] == ["manifest (2).json", "b.txt"]
    assert (tmp_path / "manifest (2).json").read_bytes() == b"a user's own file"
    assert json.loads((tmp_path / "manifest.json").read_text())["files"] == manifest
    assert sorted(os.listdir(tmp_path)) == ["b.txt", "manifest (2).json", "manifest.json"]

    def rerun():
        return export_process_files(
            hook,
            tmp_path,
            process_instance_ids=[instance.id],
            layout="{file_name}",
            manifest_name="manifest.json",
        )

    # The manifest records each run's statuses, so its content changes once (written → unchanged).
    again = rerun()
    assert [entry["status"] for entry in again] == ["unchanged", "unchanged"]
    assert json.loads((tmp_path / "manifest.json").read_text())["files"] == again
    before = (tmp_path / "manifest.json").read_bytes()
    rerun()
    # Removed when a run starts (its presence means "complete"), then written again, identical.
    assert (tmp_path / "manifest.json").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["b.txt", "manifest (2).json", "manifest.json"]


def test_content_length_is_checked_when_the_file_has_no_size(bpm, hook, tmp_path):
    instance = bpm.start("exp", {}, None, "T")
    bpm.add_file(instance.id, "cut.bin", b"z" * 300, size=None, truncate_to=120)
    with pytest.raises(BpmTransferError, match="received 120 bytes but the server announced 300"):
        export_process_files(hook, tmp_path, process_instance_ids=[instance.id])
    assert tree(tmp_path) == {}


def test_a_stream_of_unknown_length_is_accepted(bpm, hook, tmp_path):
    instance = bpm.start("exp", {}, None, "T")

    def generated():
        yield b"part1-"
        yield b"part2"

    bpm.add_file(instance.id, "gen.txt", generated, size=None)
    manifest = export_process_files(hook, tmp_path, process_instance_ids=[instance.id])
    assert manifest[0]["size"] == 11
    assert (tmp_path / f"{instance.id}_Expense report_(T)" / "gen.txt").read_bytes() == b"part1-part2"


@pytest.mark.parametrize(
    ("size", "headers", "expected"),
    [
        (10, {"Content-Length": "99"}, 10),
        (None, {"Content-Length": "99"}, 99),
        (None, {"content-length": "99", "Content-Encoding": "identity"}, 99),
        (None, {"Content-Length": "40", "Content-Encoding": "gzip"}, None),  # decoded length differs
        (None, {"Content-Length": "garbage"}, None),
        (None, {}, None),
    ],
)
def test_announced_size(size, headers, expected):
    file = ProcessFile(name="f", size=size, content_type=None, process_instance_id="1")
    assert announced_size(file, Headers(headers)) == expected


def test_layout_title_falls_back_to_the_business_key():
    from airflow_bpm_provider.models import ProcessFile, ProcessInstance, ProcessState
    from airflow_bpm_provider.transfer.export import layout_values

    untitled = ProcessInstance(id="7", state=ProcessState.RUNNING, definition="order", business_key="PO-42")
    file = ProcessFile(name="a.pdf", size=1, content_type=None, process_instance_id="7")
    assert layout_values(untitled, file)["title"] == "PO-42"
    titled = ProcessInstance(id="7", state=ProcessState.RUNNING, title="Quote", business_key="PO-42")
    assert layout_values(titled, file)["title"] == "Quote"


@pytest.mark.parametrize("limit", [1, 3])
def test_downloads_run_in_parallel_up_to_max_concurrency(bpm, hook, tmp_path, limit):
    import threading
    import time

    instance = bpm.start("exp", {}, None, "Parallel")
    peak, lock = [0], threading.Lock()

    def slow_body():
        with lock:
            peak[0] = max(peak[0], bpm.open_streams)
        time.sleep(0.05)
        yield b"slow"

    for index in range(8):
        bpm.add_file(instance.id, f"f{index}.txt", slow_body, size=4)
    manifest = export_process_files(hook, tmp_path, process_instance_ids=instance.id, max_concurrency=limit)
    assert [entry["file_name"] for entry in manifest] == [f"f{index}.txt" for index in range(8)]
    assert peak[0] == limit
    assert bpm.open_streams == 0


def test_a_broken_stream_is_tried_again_until_the_bound_then_named(bpm, hook, tmp_path):
    instance = bpm.start("exp", {}, None, "Flaky")
    bpm.add_file(instance.id, "flaky.bin", b"x" * 1000, break_after=10)
    with pytest.raises(BpmTransferError) as info:
        export_process_files(hook, tmp_path, process_instance_ids=instance.id, retries=2)
    assert bpm.streams_opened == 3, "one try and two retries"
    (detail,) = info.value.details
    assert f"connection '{memory_bpm.CONN_ID}', process {instance.id}, file 'flaky.bin'" in detail
    assert "gave up after 3 tries" in detail
