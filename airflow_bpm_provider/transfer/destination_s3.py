"""S3 through s3fs: a multipart upload whose parts go up while the next ones download.

s3fs's own file object uploads one part at a time, in the thread that writes, so the download
stops while each part is sent. Here each full pipeline buffer (one part) is handed to s3fs's
event loop as it arrives and stays held until S3 has it; at most ``buffer_depth`` parts are in
memory at once (hashing, uploading or being read into). The object appears only when the
upload completes; an aborted one is removed from S3, so nothing half-written is ever visible.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from airflow_bpm_provider.transfer.writer import Sink

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

# S3's smallest part (but the last): memory is parts x this, so it stays the minimum.
PART_SIZE = 5 * 1024 * 1024
# Parts in memory at once: one being read into and hashed while the other goes up (10 MiB).
PARTS_IN_MEMORY = 2


def is_s3fs(fs: Any) -> bool:
    return type(fs).__module__.split(".")[0] == "s3fs" and hasattr(fs, "_call_s3") and hasattr(fs, "loop")


class S3PartSink(Sink):
    """A sink for s3fs whose parts upload concurrently, each while the next one downloads."""

    buffer_size = PART_SIZE
    buffer_depth = PARTS_IN_MEMORY

    def __init__(self, target: ObjectStoragePath) -> None:
        self.fs = target.fs
        self.path = target.path
        self.bucket, self.key, _ = self.fs.split_path(target.path)
        self._upload_id: str | None = None
        self._small = bytearray()  # a file below one part goes up in one PUT at commit
        self._parts: list[Future[dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._error: BaseException | None = None

    def _call(self, method: str, **kwargs: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(self.fs._call_s3(method, **kwargs), self.fs.loop)

    def write(self, data: bytes | memoryview) -> None:
        done = threading.Event()
        self.submit(memoryview(bytes(data)), done.set)
        done.wait()
        self._raise()

    def submit(self, data: memoryview, done: Callable[[], None]) -> None:
        self._raise()
        if self._upload_id is None and not self._parts and len(data) < PART_SIZE:
            # Only the last part may be short: with nothing sent yet, this may be the whole file.
            self._small += data
            done()
            if len(self._small) >= PART_SIZE:
                self._send_part(memoryview(bytes(self._small)), lambda: None)
                self._small = bytearray()
            return
        if self._small:
            # A short piece came first (a resumed download): it joins this part.
            data = memoryview(bytes(self._small) + bytes(data))
            self._small = bytearray()
            done()
            done = _nothing
        self._send_part(data, done)

    def _send_part(self, data: memoryview, done: Callable[[], None]) -> None:
        if self._upload_id is None:
            answer = self._call("create_multipart_upload", Bucket=self.bucket, Key=self.key).result()
            self._upload_id = answer["UploadId"]
        number = len(self._parts) + 1
        # A file object over the buffer: aiohttp then sends it in small pieces, where bytes
        # would be copied whole once or twice on their way to the socket.
        body = _PartBody(data)
        future = self._call(
            "upload_part",
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
        )

        def landed(future: Future[Any], done: Callable[[], None] = done) -> None:
            error = future.exception()
            if error is not None:
                with self._lock:
                    self._error = self._error or error
            done()

        future.add_done_callback(landed)
        self._parts.append(future)

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def restart(self) -> None:
        self.abort()
        self._upload_id = None
        self._parts = []
        self._small = bytearray()
        self._error = None

    def commit(self) -> None:
        if self._upload_id is None:
            self._call("put_object", Bucket=self.bucket, Key=self.key, Body=bytes(self._small)).result()
        else:
            answers = [part.result() for part in self._parts]
            self._raise()
            parts = [{"PartNumber": n, "ETag": a["ETag"]} for n, a in enumerate(answers, start=1)]
            self._call(
                "complete_multipart_upload",
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},
            ).result()
            self._upload_id = None
        self._small = bytearray()
        self.fs.invalidate_cache(self.path)

    def abort(self) -> None:
        for part in self._parts:
            with suppress(Exception):
                part.result()
        if self._upload_id is not None:
            with suppress(Exception):
                self._call(
                    "abort_multipart_upload", Bucket=self.bucket, Key=self.key, UploadId=self._upload_id
                ).result()
            self._upload_id = None
        self._parts = []
        self._small = bytearray()


def _nothing() -> None:
    return None


class _PartBody(io.RawIOBase):
    """A read-only, seekable file over one part's buffer (no copy of the part itself)."""

    def __init__(self, data: memoryview) -> None:
        super().__init__()
        self._data = data
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def __len__(self) -> int:
        return len(self._data)

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._data)}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        piece = self._data[self._position : self._position + len(buffer)]
        buffer[: len(piece)] = piece
        self._position += len(piece)
        return len(piece)

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size is None or size < 0 else self._position + size
        piece = bytes(self._data[self._position : end])
        self._position += len(piece)
        return piece

    def close(self) -> None:
        """Left open: a retried request reads the part again (s3fs retries the same body)."""
