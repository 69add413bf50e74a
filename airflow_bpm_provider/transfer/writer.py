"""Write one download straight to its destination so that only a complete, checked file appears.

The bytes are written once, at the destination side: on a local disk into a hidden sibling of the
target (then size check, fsync and an atomic ``os.replace``), on an object store into a streamed
multipart upload that becomes visible only when it completes, elsewhere into a hidden sibling
that is renamed (on S3 through s3fs, parts go up while the next ones download: see
``destination_s3``). A large download is read into a few reused buffers while other threads hash
and write them (``Download.pump``, see ``pipeline``); a stream of chunks is read by its own thread
through a small bounded queue (``Download.feed``). Either way reading, hashing and writing
overlap while memory stays at a few buffers whatever the file size. A re-run that finds an
identical file leaves it alone.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from airflow_bpm_provider.exceptions import BpmError, BpmTransferError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

COPY_BUFFER = 1024 * 1024
# Chunks in flight between the network thread and the writer: bounds memory (x chunk size).
QUEUE_DEPTH = 4
# Smaller bodies are read inline: a thread per file costs more than it overlaps.
INLINE_BELOW = 2 * 1024 * 1024
# A local file is pushed to disk in the background every this many bytes (see LocalSink).
SYNC_EVERY = 32 * 1024 * 1024
# Object store part size: S3's minimum, so an upload holds at most one part in memory.
PART_SIZE = 5 * 1024 * 1024
# A large download moves through this many reused buffers of this size: big reads and writes,
# few hand-overs between the threads, a fixed few MiB of memory.
PIPELINE_BUFFER = 2 * 1024 * 1024
PIPELINE_DEPTH = 4
LOCAL_PROTOCOLS = frozenset({"", "file", "local"})
# Stores where an object appears only once its (multipart) upload completes.
OBJECT_STORE_PROTOCOLS = frozenset(
    {"s3", "s3a", "s3n", "gs", "gcs", "abfs", "abfss", "az", "adl", "oss", "r2", "wasb", "wasbs"}
)

STATUS_WRITTEN = "written"
STATUS_REPLACED = "replaced"
STATUS_UNCHANGED = "unchanged"


@dataclass(frozen=True)
class WrittenFile:
    """What landed where; ``status`` is written, replaced or unchanged."""

    process_id: str | None
    file_name: str | None
    relative_path: str
    url: str
    size: int
    sha256: str
    status: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Sink:
    """Where the bytes of one file go until :meth:`commit` makes them visible at the target."""

    # The reused buffers a large download is read into for this sink (see pipeline.Pipeline).
    buffer_size = PIPELINE_BUFFER
    buffer_depth = PIPELINE_DEPTH

    def write(self, data: bytes | memoryview) -> None:
        raise NotImplementedError

    def submit(self, data: memoryview, done: Callable[[], None]) -> None:
        """Write ``data``; call ``done`` once the buffer may be reused (a sink may do it later)."""
        self.write(data)
        done()

    def restart(self) -> None:
        """Throw away what was written: the next write starts the file again."""
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Leave nothing behind; safe to call more than once and after a failed commit."""
        raise NotImplementedError


class LocalSink(Sink):
    """A hidden sibling of the target, fsynced and renamed over it: the target is always whole."""

    def __init__(self, path: str) -> None:
        directory = os.path.dirname(path)
        self._created: list[str] = []  # folders made for this file, removed again on abort
        missing = directory
        while missing and not os.path.exists(missing):
            self._created.append(missing)
            missing = os.path.dirname(missing)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self.path = path
        self.temp = os.path.join(directory, os.path.basename(_hidden_sibling(path)))
        # Unbuffered: the pipeline already hands over MiB-sized buffers, a copy would only cost.
        self._out = open(self.temp, "xb", buffering=0)  # noqa: SIM115 - closed by commit/abort
        self._unsynced = 0
        self._syncer: threading.Thread | None = None

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            view = view[self._out.write(view) :]
        self._unsynced += len(data)
        if self._unsynced >= SYNC_EVERY:
            self._unsynced = 0
            self._start_sync()

    def _start_sync(self) -> None:
        """Push the bytes written so far to disk on a side thread while the download goes on, so
        the fsync before the rename finds little left to do (the disk works alongside the network)."""
        if self._syncer is not None and self._syncer.is_alive():
            return
        self._out.flush()
        fd = self._out.fileno()
        self._syncer = threading.Thread(target=_quiet_sync, args=(fd,), name="bpm-fsync", daemon=True)
        self._syncer.start()

    def _join_sync(self) -> None:
        if self._syncer is not None:
            self._syncer.join()
            self._syncer = None

    def restart(self) -> None:
        self._join_sync()
        self._out.seek(0)
        self._out.truncate()

    def commit(self) -> None:
        self._out.flush()
        self._join_sync()
        os.fsync(self._out.fileno())
        self._out.close()
        os.replace(self.temp, self.path)

    def abort(self) -> None:
        with suppress(Exception):
            self._join_sync()
        with suppress(Exception):
            self._out.close()
        with suppress(FileNotFoundError):
            os.unlink(self.temp)
        for folder in self._created:
            with suppress(OSError):  # not empty: another file landed there meanwhile
                os.rmdir(folder)


class ObjectSink(Sink):
    """A streamed (multipart) upload: the object appears only when :meth:`commit` completes it."""

    def __init__(self, target: ObjectStoragePath) -> None:
        self.target = target
        self._out = self._open()

    def _open(self) -> Any:
        return self.target.fs.open(self.target.path, "wb", block_size=PART_SIZE)

    def write(self, data: bytes | memoryview) -> None:
        self._out.write(data)

    def restart(self) -> None:
        self._discard()
        self._out = self._open()

    def commit(self) -> None:
        self._out.close()

    def abort(self) -> None:
        with suppress(Exception):
            self._discard()

    def _discard(self) -> None:
        out = self._out
        if out.closed:
            return
        out.discard()  # aborts a started multipart upload: no part stays billed or visible
        out.closed = True  # a discarded fsspec file must not upload its buffer when collected


class RenameSink(Sink):
    """Stores with real folders but no atomic upload: a hidden sibling, moved into place."""

    def __init__(self, target: ObjectStoragePath) -> None:
        self.target = target
        self.fs = target.fs
        with suppress(FileExistsError):
            self.fs.makedirs(target.parent.path, exist_ok=True)
        self.temp = _hidden_sibling(target.path)
        self._out = self.fs.open(self.temp, "wb")

    def write(self, data: bytes | memoryview) -> None:
        self._out.write(data)

    def restart(self) -> None:
        self._out.close()
        self._out = self.fs.open(self.temp, "wb")

    def commit(self) -> None:
        self._out.close()
        self.fs.mv(self.temp, self.target.path)

    def abort(self) -> None:
        with suppress(Exception):
            self._out.close()
        with suppress(Exception):
            self.fs.rm(self.temp)


def _quiet_sync(fd: int) -> None:
    # Only an early start: the fsync in commit() is the one whose failure counts.
    sync = getattr(os, "fdatasync", os.fsync)
    with suppress(OSError):
        sync(fd)


def open_sink(target: ObjectStoragePath) -> Sink:
    protocol = target.protocol or ""
    if protocol in LOCAL_PROTOCOLS:
        return LocalSink(target.path)
    if protocol in OBJECT_STORE_PROTOCOLS:
        from airflow_bpm_provider.transfer.destination_s3 import S3PartSink, is_s3fs

        return S3PartSink(target) if is_s3fs(target.fs) else ObjectSink(target)
    return RenameSink(target)


class Download:
    """One file on its way to ``target``: fed by one or more streams (a resumed download), then
    finished (checked, compared with what is there, published) or aborted.

    ``received`` counts the bytes written so far: where a resumed request has to start.
    """

    def __init__(
        self,
        target: ObjectStoragePath,
        *,
        what: str,
        existing_sha256: Callable[[ObjectStoragePath], str] | None = None,
    ) -> None:
        self.target = target
        self.what = what
        # How to hash a same-size file already there (transfer/unchanged.py may know without reading).
        self._existing_sha256 = existing_sha256 or _sha256_of
        self.received = 0
        self._digest = hashlib.sha256()
        self._sink: Sink | None = None

    def restart(self) -> None:
        """The server sends the file from its start again: forget the partial copy."""
        if self._sink is not None and self.received:
            self._guard(self._sink.restart)
        self.received = 0
        self._digest = hashlib.sha256()

    def feed(
        self,
        chunks: Iterable[bytes],
        *,
        expected_size: int | None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        """Write a stream's chunks; raises BpmTransferError when it breaks or brings too much."""
        sink = self._sink or self._guard(lambda: open_sink(self.target))
        self._sink = sink
        source = chunks
        if expected_size is None or expected_size - self.received >= INLINE_BELOW:
            source = _ReadAhead(chunks)
        try:
            for chunk in source:
                if not chunk:
                    continue
                if expected_size is not None and self.received + len(chunk) > expected_size:
                    # Stop reading: a server sending more than it announced may never stop.
                    raise BpmTransferError(
                        f"{self.what}: received more than the announced {expected_size} bytes"
                    )
                self._digest.update(chunk)
                self._guard(lambda chunk=chunk: sink.write(chunk))
                self.received += len(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
        except BpmTransferError:
            raise
        except Exception as exc:
            reason = str(exc) if isinstance(exc, BpmError) else f"{type(exc).__name__}: {exc}"
            raise BpmTransferError(
                f"{self.what}: download broke off after {self.received} bytes: {reason}"
            ) from exc
        finally:
            close = getattr(source, "close", None)
            if close is not None and source is not chunks:
                close()
        if expected_size is not None and self.received != expected_size:
            raise BpmTransferError(
                f"{self.what}: received {self.received} bytes but the server announced {expected_size}; "
                "the download was cut short"
            )

    def pump(
        self,
        readinto: Callable[[memoryview], int],
        *,
        expected_size: int | None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        """Like :meth:`feed` for a stream read with ``readinto``: large ones read, hash and write
        at the same time (see :class:`~airflow_bpm_provider.transfer.pipeline.Pipeline`)."""
        from airflow_bpm_provider.transfer.pipeline import Overflow, Pipeline

        sink = self._sink or self._guard(lambda: open_sink(self.target))
        self._sink = sink
        limit = None if expected_size is None else expected_size - self.received
        if limit is not None and limit < INLINE_BELOW:
            self.feed(_read_all(readinto, limit + 1), expected_size=expected_size, on_bytes=on_bytes)
            return

        def write(view: memoryview, done: Callable[[], None]) -> None:
            # Counted once the sink has it: a resumed request starts after the bytes written.
            self._guard(lambda: sink.submit(view, done))
            self.received += len(view)
            if on_bytes is not None:
                on_bytes(len(view))

        pipeline = Pipeline(self._digest.update, write, size=sink.buffer_size, depth=sink.buffer_depth)
        try:
            pipeline.run(readinto, limit=limit)
        except Overflow:
            raise BpmTransferError(
                f"{self.what}: received more than the announced {expected_size} bytes"
            ) from None
        except BaseException as exc:
            if pipeline.write_failed:
                # The hash may have run ahead of what was written: the next try starts from zero.
                self._forget_sink()
            if isinstance(exc, BpmTransferError) or not isinstance(exc, Exception):
                raise
            reason = str(exc) if isinstance(exc, BpmError) else f"{type(exc).__name__}: {exc}"
            raise BpmTransferError(
                f"{self.what}: download broke off after {self.received} bytes: {reason}"
            ) from exc
        if expected_size is not None and self.received != expected_size:
            raise BpmTransferError(
                f"{self.what}: received {self.received} bytes but the server announced {expected_size}; "
                "the download was cut short"
            )

    def finish(self, *, process_id: str | None, file_name: str | None, relative_path: str) -> WrittenFile:
        """Publish the checked bytes (or keep an identical file already there)."""
        sha256 = self._digest.hexdigest()
        sink = self._sink or self._guard(lambda: open_sink(self.target))
        self._sink = sink
        try:
            existing = _existing_size(self.target)
            if existing == self.received and self._existing_sha256(self.target) == sha256:
                sink.abort()
                status = STATUS_UNCHANGED
            else:
                sink.commit()
                status = STATUS_WRITTEN if existing is None else STATUS_REPLACED
        except BaseException as exc:
            sink.abort()
            if isinstance(exc, BpmError) or not isinstance(exc, Exception):
                raise
            raise BpmTransferError(
                f"{self.what}: could not write {plain_url(self.target)}: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            self._sink = None
        return WrittenFile(
            process_id=process_id,
            file_name=file_name,
            relative_path=relative_path,
            url=plain_url(self.target),
            size=self.received,
            sha256=sha256,
            status=status,
        )

    def abort(self) -> None:
        if self._sink is not None:
            self._sink.abort()
            self._sink = None

    def _forget_sink(self) -> None:
        """The destination failed mid-file: drop what it has; a next try opens it afresh."""
        self.abort()
        self.received = 0
        self._digest = hashlib.sha256()

    def _guard(self, action: Callable[[], Any]) -> Any:
        """Run a destination-side action; its failures are transfer errors naming the target."""
        try:
            return action()
        except BpmError:
            raise
        except Exception as exc:
            raise BpmTransferError(
                f"{self.what}: could not write {plain_url(self.target)}: {type(exc).__name__}: {exc}"
            ) from exc


class _ReadAhead:
    """Iterate ``chunks`` on a thread of its own, at most ``QUEUE_DEPTH`` chunks ahead."""

    _END = object()

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_DEPTH)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, args=(chunks,), name="bpm-download", daemon=True)
        self._thread.start()

    def _pump(self, chunks: Iterable[bytes]) -> None:
        try:
            for chunk in chunks:
                if not self._put(chunk):
                    return
            self._put(self._END)
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(_Failure(exc))

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> _ReadAhead:
        return self

    def __next__(self) -> bytes:
        item = self._queue.get()
        if item is self._END:
            raise StopIteration
        if isinstance(item, _Failure):
            raise item.error
        return item

    def close(self) -> None:
        """Stop the reader; it ends at its next chunk (or when its stream is closed)."""
        self._stop.set()
        with suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        self._thread.join(timeout=0.5)


def _read_all(readinto: Callable[[memoryview], int], most: int) -> Iterator[bytes]:
    """A small stream as one or a few byte strings, never more than ``most`` bytes in all."""
    buffer = memoryview(bytearray(min(most, INLINE_BELOW)))
    while most > 0:
        filled = 0
        while filled < len(buffer) and filled < most:
            count = readinto(buffer[filled : min(len(buffer), most)])
            if not count:
                break
            filled += count
        if not filled:
            return
        most -= filled
        yield bytes(buffer[:filled])
        if filled < len(buffer):
            return


@dataclass(frozen=True)
class _Failure:
    error: BaseException


def write_file(
    chunks: Iterable[bytes],
    target: ObjectStoragePath,
    *,
    expected_size: int | None,
    process_id: str | None = None,
    file_name: str | None = None,
    relative_path: str | None = None,
) -> WrittenFile:
    """Download ``chunks`` to ``target`` atomically; raise BpmTransferError and leave nothing otherwise."""
    what = f"file {file_name!r} of process {process_id}" if file_name else str(target)
    download = Download(target, what=what)
    try:
        download.feed(chunks, expected_size=expected_size)
    except BaseException:
        download.abort()
        raise
    return download.finish(
        process_id=process_id,
        file_name=file_name,
        relative_path=relative_path if relative_path is not None else target.name,
    )


def write_bytes(target: ObjectStoragePath, body: bytes, *, what: str) -> str:
    """Publish a small body (the manifest) the same way; returns written, replaced or unchanged."""
    download = Download(target, what=what)
    try:
        download.feed([body], expected_size=len(body))
    except BaseException:
        download.abort()
        raise
    return download.finish(process_id=None, file_name=None, relative_path=target.name).status


def plain_url(target: ObjectStoragePath) -> str:
    """``s3://bucket/key`` or ``/local/path``: without the ``conn_id@`` that ``str()`` carries."""
    protocol = target.protocol or ""
    if protocol in LOCAL_PROTOCOLS:
        return target.path
    return f"{protocol}://{target.path}"


def _existing_size(target: ObjectStoragePath) -> int | None:
    """The size of the file already at ``target``, or None when there is none."""
    fs = target.fs
    try:
        info = fs.info(target.path)
    except FileNotFoundError:
        return None
    if info.get("type") == "directory":
        raise BpmTransferError(f"{target} is a directory; cannot write a file there")
    return int(info.get("size") or 0)


def _sha256_of(target: ObjectStoragePath) -> str:
    digest = hashlib.sha256()
    with target.fs.open(target.path, "rb") as existing:
        while block := existing.read(COPY_BUFFER):
            digest.update(block)
    return digest.hexdigest()


def _hidden_sibling(path: str) -> str:
    # Short and dot-prefixed: the final name may already use all 255 bytes a component may have.
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    name = f".bpm-{uuid.uuid4().hex[:16]}.part"
    return f"{parent}/{name}" if parent else name
