"""Writing one download to a local ObjectStoragePath: atomic, size-checked, idempotent, bounded."""

from __future__ import annotations

import hashlib
import os
import tracemalloc

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_bpm_provider.exceptions import BpmTransferError
from airflow_bpm_provider.transfer.writer import write_file

MiB = 1024 * 1024


def chunks_of(data: bytes, size: int = 7):
    for start in range(0, len(data), size):
        yield data[start : start + size]


def listing(root) -> list[str]:
    """Every file and folder under ``root``, hidden ones included."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(found)


@pytest.fixture
def dest(tmp_path):
    path = tmp_path / "dest"
    path.mkdir()
    return path


def test_a_new_file_is_written_with_its_size_and_hash(dest):
    data = b"hello world\n" * 1000
    target = ObjectStoragePath(f"file://{dest}") / "183_App_(Test)" / "README.txt"
    result = write_file(
        chunks_of(data),
        target,
        expected_size=len(data),
        process_id="183",
        file_name="README.txt",
        relative_path="183_App_(Test)/README.txt",
    )
    assert (dest / "183_App_(Test)" / "README.txt").read_bytes() == data
    assert result.status == "written"
    assert result.size == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.url == f"{dest}/183_App_(Test)/README.txt"
    assert result.to_dict()["relative_path"] == "183_App_(Test)/README.txt"
    assert result.process_id == "183"
    assert listing(dest) == ["183_App_(Test)", "183_App_(Test)/README.txt"]


def test_a_plain_path_destination_works_too(dest):
    target = ObjectStoragePath(str(dest)) / "a.bin"
    result = write_file([b"abc"], target, expected_size=3)
    assert (dest / "a.bin").read_bytes() == b"abc"
    assert result.relative_path == "a.bin"


def test_an_identical_file_is_left_alone_and_a_different_one_replaced(dest):
    target = ObjectStoragePath(str(dest)) / "f.txt"
    write_file([b"version 1"], target, expected_size=9)
    before = os.stat(dest / "f.txt")

    again = write_file([b"version 1"], target, expected_size=9)
    assert again.status == "unchanged"
    after = os.stat(dest / "f.txt")
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    same_size = write_file([b"version 2"], target, expected_size=9)
    assert same_size.status == "replaced"
    assert (dest / "f.txt").read_bytes() == b"version 2"

    longer = write_file([b"version 3!"], target, expected_size=10)
    assert longer.status == "replaced"
    assert (dest / "f.txt").read_bytes() == b"version 3!"
    assert listing(dest) == ["f.txt"]


def test_a_truncated_stream_leaves_nothing_at_the_destination(dest):
    seen_during: list[list[str]] = []

    def stream():
        yield b"x" * 100
        seen_during.append(listing(dest))
        yield b"x" * 100  # the server announced 1000 and stops at 200

    target = ObjectStoragePath(str(dest)) / "sub" / "f.bin"
    with pytest.raises(BpmTransferError) as info:
        write_file(stream(), target, expected_size=1000, file_name="f.bin", process_id="9")
    assert "received 200 bytes but the server announced 1000" in str(info.value)
    assert "'f.bin'" in str(info.value)
    # While it streams only a hidden sibling exists, never a half-written target.
    assert len(seen_during) == 1 and seen_during[0][0] == "sub"
    assert [os.path.basename(p).startswith(".bpm-") for p in seen_during[0][1:]] == [True]
    assert listing(dest) == [], "a failed download removes its temp file and the folders it made"


def test_a_failed_stream_keeps_the_previous_version_intact(dest):
    (dest / "f.bin").write_bytes(b"old content")

    def stream():
        yield b"new"
        raise ConnectionError("connection reset by peer")

    with pytest.raises(BpmTransferError) as info:
        write_file(stream(), ObjectStoragePath(str(dest)) / "f.bin", expected_size=6)
    assert "broke off after 3 bytes" in str(info.value)
    assert "ConnectionError: connection reset by peer" in str(info.value)
    assert isinstance(info.value.__cause__, ConnectionError)
    assert (dest / "f.bin").read_bytes() == b"old content"
    assert listing(dest) == ["f.bin"]


def test_more_bytes_than_announced_is_refused_without_reading_on(dest):
    pulled = []

    def endless():
        while True:
            pulled.append(1)
            yield b"y" * 10

    with pytest.raises(BpmTransferError) as info:
        write_file(endless(), ObjectStoragePath(str(dest)) / "f", expected_size=25)
    assert "more than the announced 25 bytes" in str(info.value)
    assert len(pulled) == 3
    assert listing(dest) == []


def test_fewer_bytes_than_announced_by_one_is_caught(dest):
    with pytest.raises(BpmTransferError):
        write_file([b"12345"], ObjectStoragePath(str(dest)) / "f", expected_size=6)
    with pytest.raises(BpmTransferError):
        write_file([b"12345"], ObjectStoragePath(str(dest)) / "f", expected_size=4)
    assert listing(dest) == []


def test_without_an_announced_size_any_length_is_accepted(dest):
    result = write_file([b"", b"abc", b"", b"de"], ObjectStoragePath(str(dest)) / "f", expected_size=None)
    assert result.size == 5
    assert (dest / "f").read_bytes() == b"abcde"


def test_an_empty_file_is_a_file(dest):
    result = write_file([], ObjectStoragePath(str(dest)) / "empty.txt", expected_size=0)
    assert result.status == "written"
    assert (dest / "empty.txt").read_bytes() == b""
    assert result.sha256 == hashlib.sha256(b"").hexdigest()


def test_a_folder_in_the_way_is_a_clear_error(dest):
    (dest / "taken").mkdir()
    with pytest.raises(BpmTransferError) as info:
        write_file([b"a"], ObjectStoragePath(str(dest)) / "taken", expected_size=1)
    assert "is a directory" in str(info.value)
    assert listing(dest) == ["taken"]


def test_memory_stays_bounded_for_a_64_mib_file(dest):
    size = 64 * MiB
    block = 256 * 1024

    def generated():
        for index in range(size // block):
            yield bytes([index % 251]) * block

    tracemalloc.start()
    try:
        result = write_file(generated(), ObjectStoragePath(str(dest)) / "big.bin", expected_size=size)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.size == size
    assert os.path.getsize(dest / "big.bin") == size
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB while writing a 64 MiB file"

    expected = hashlib.sha256()
    for chunk in generated():
        expected.update(chunk)
    assert result.sha256 == expected.hexdigest()
