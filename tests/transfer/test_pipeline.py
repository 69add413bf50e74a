"""A large download read, hashed and written at once: whole, checked, resumable, bounded."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import tracemalloc

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_bpm_provider.exceptions import BpmTransferError
from airflow_bpm_provider.transfer import writer
from airflow_bpm_provider.transfer.writer import Download

MiB = 1024 * 1024


def reader(data: bytes, *, break_after: int | None = None, piece: int = 100_000):
    """``readinto`` over ``data`` in network-sized pieces, raising once ``break_after`` bytes went."""
    source = io.BytesIO(data)

    def readinto(buffer: memoryview) -> int:
        if break_after is not None and source.tell() >= break_after:
            raise ConnectionResetError("reset by peer")
        return source.readinto(buffer[:piece])

    return readinto


def visible(folder) -> list[str]:
    return sorted(name for name in os.listdir(folder))


def test_a_large_stream_lands_whole_with_its_hash_read_on_another_thread_than_written(tmp_path, monkeypatch):
    data = os.urandom(9 * MiB + 12345)
    writers: set[str] = set()
    write = writer.LocalSink.write

    def recording(self, chunk):
        writers.add(threading.current_thread().name)
        return write(self, chunk)

    monkeypatch.setattr(writer.LocalSink, "write", recording)
    download = Download(ObjectStoragePath(str(tmp_path)) / "big.bin", what="big.bin")
    download.pump(reader(data), expected_size=len(data))
    entry = download.finish(process_id="1", file_name="big.bin", relative_path="big.bin")
    assert (tmp_path / "big.bin").read_bytes() == data
    assert entry.sha256 == hashlib.sha256(data).hexdigest()
    assert entry.size == len(data)
    assert writers == {"bpm-write"}
    assert visible(tmp_path) == ["big.bin"]


def test_more_bytes_than_announced_are_refused_and_nothing_appears(tmp_path):
    data = os.urandom(5 * MiB)
    download = Download(ObjectStoragePath(str(tmp_path)) / "f.bin", what="f.bin")
    with pytest.raises(BpmTransferError, match="more than the announced"):
        download.pump(reader(data), expected_size=4 * MiB)
    download.abort()
    assert visible(tmp_path) == []


def test_fewer_bytes_than_announced_are_caught(tmp_path):
    data = os.urandom(3 * MiB)
    download = Download(ObjectStoragePath(str(tmp_path)) / "f.bin", what="f.bin")
    with pytest.raises(BpmTransferError, match="cut short"):
        download.pump(reader(data), expected_size=len(data) + 1)
    download.abort()
    assert visible(tmp_path) == []


def test_a_broken_stream_resumes_where_the_written_bytes_end(tmp_path):
    data = os.urandom(11 * MiB + 7)
    download = Download(ObjectStoragePath(str(tmp_path)) / "f.bin", what="f.bin")
    with pytest.raises(BpmTransferError, match="broke off"):
        download.pump(reader(data, break_after=6 * MiB + 5), expected_size=len(data))
    # Only whole buffers were handed over, and every one of them was written and hashed.
    assert 0 < download.received <= 6 * MiB + 5
    assert os.path.getsize(download._sink.temp) == download.received
    rest = data[download.received :]
    download.pump(reader(rest), expected_size=len(data))
    entry = download.finish(process_id="1", file_name="f.bin", relative_path="f.bin")
    assert (tmp_path / "f.bin").read_bytes() == data
    assert entry.sha256 == hashlib.sha256(data).hexdigest()


def test_a_failed_write_surfaces_and_the_next_try_starts_from_zero(tmp_path, monkeypatch):
    data = os.urandom(8 * MiB)
    calls = []
    write = writer.LocalSink.write

    def failing_once(self, chunk):
        calls.append(len(chunk))
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return write(self, chunk)

    monkeypatch.setattr(writer.LocalSink, "write", failing_once)
    download = Download(ObjectStoragePath(str(tmp_path)) / "f.bin", what="f.bin")
    with pytest.raises(BpmTransferError, match="No space left on device"):
        download.pump(reader(data), expected_size=len(data))
    assert download.received == 0
    assert visible(tmp_path) == []  # the partial copy is gone
    download.pump(reader(data), expected_size=len(data))
    entry = download.finish(process_id="1", file_name="f.bin", relative_path="f.bin")
    assert entry.sha256 == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "f.bin").read_bytes() == data


def test_memory_stays_at_the_buffers_for_a_64_mib_stream(tmp_path):
    size = 64 * MiB
    block = bytes(range(256)) * 4096  # 1 MiB

    def readinto(buffer: memoryview, state=[0]) -> int:  # noqa: B006 - one stream per test
        left = size - state[0]
        count = min(len(buffer), left, len(block))
        buffer[:count] = block[:count]
        state[0] += count
        return count

    tracemalloc.start()
    try:
        download = Download(ObjectStoragePath(str(tmp_path)) / "big.bin", what="big.bin")
        download.pump(readinto, expected_size=size)
        download.finish(process_id=None, file_name=None, relative_path="big.bin")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert os.path.getsize(tmp_path / "big.bin") == size
    buffers = writer.PIPELINE_BUFFER * writer.PIPELINE_DEPTH
    assert peak < buffers + 2 * MiB, f"peak {peak / MiB:.1f} MiB for a 64 MiB stream"
