"""Stream one download into an ``ObjectStoragePath`` so that only a complete, checked file appears.

The bytes go to a local spool file first (hashing and counting on the way, so memory stays at one
chunk), are checked against the size the server announced, and only then published: on a local
disk through a hidden sibling and ``os.replace``, on an object store with one upload (an object
becomes visible only when its upload completes). A re-run that finds an identical file leaves it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from airflow_bpm_provider.exceptions import BpmError, BpmTransferError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

COPY_BUFFER = 1024 * 1024
LOCAL_PROTOCOLS = frozenset({"", "file", "local"})
# Stores where a single put is atomic; anything else with real directories gets temp + rename.
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


@dataclass(frozen=True)
class Spool:
    path: str
    size: int
    sha256: str


@contextmanager
def spool(
    chunks: Iterable[bytes], *, expected_size: int | None, what: str, spool_dir: str | None = None
) -> Iterator[Spool]:
    """Write ``chunks`` to a local temporary file, checked against ``expected_size``; removed at exit."""
    fd, path = tempfile.mkstemp(prefix="bpm-download-", suffix=".part", dir=spool_dir)
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            try:
                for chunk in chunks:
                    if not chunk:
                        continue
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    if expected_size is not None and size > expected_size:
                        # Stop reading: a server sending more than it announced may never stop.
                        raise BpmTransferError(
                            f"{what}: received more than the announced {expected_size} bytes"
                        )
            except BpmTransferError:
                raise
            except Exception as exc:
                reason = str(exc) if isinstance(exc, BpmError) else f"{type(exc).__name__}: {exc}"
                raise BpmTransferError(f"{what}: download broke off after {size} bytes: {reason}") from exc
        if expected_size is not None and size != expected_size:
            raise BpmTransferError(
                f"{what}: received {size} bytes but the server announced {expected_size}; "
                "the download was cut short"
            )
        yield Spool(path=path, size=size, sha256=digest.hexdigest())
    finally:
        with suppress(FileNotFoundError):
            os.unlink(path)


def write_file(
    chunks: Iterable[bytes],
    target: ObjectStoragePath,
    *,
    expected_size: int | None,
    process_id: str | None = None,
    file_name: str | None = None,
    relative_path: str | None = None,
    spool_dir: str | None = None,
) -> WrittenFile:
    """Download ``chunks`` to ``target`` atomically; raise BpmTransferError and leave nothing otherwise."""
    what = f"file {file_name!r} of process {process_id}" if file_name else str(target)
    with spool(chunks, expected_size=expected_size, what=what, spool_dir=spool_dir) as spooled:
        status = publish(spooled, target, what=what)
    return WrittenFile(
        process_id=process_id,
        file_name=file_name,
        relative_path=relative_path if relative_path is not None else target.name,
        url=plain_url(target),
        size=spooled.size,
        sha256=spooled.sha256,
        status=status,
    )


def plain_url(target: ObjectStoragePath) -> str:
    """``s3://bucket/key`` or ``/local/path``: without the ``conn_id@`` that ``str()`` carries."""
    protocol = target.protocol or ""
    if protocol in LOCAL_PROTOCOLS:
        return target.path
    return f"{protocol}://{target.path}"


def publish(spooled: Spool, target: ObjectStoragePath, *, what: str) -> str:
    """Move a checked spool file to ``target``; returns written, replaced or unchanged."""
    try:
        existing_size = _existing_size(target)
        if existing_size == spooled.size and _sha256_of(target) == spooled.sha256:
            return STATUS_UNCHANGED
        protocol = target.protocol or ""
        if protocol in LOCAL_PROTOCOLS:
            _publish_local(spooled.path, target.path)
        elif protocol in OBJECT_STORE_PROTOCOLS:
            _publish_object(spooled.path, target)
        else:
            _publish_with_rename(spooled.path, target)
    except BpmError:
        raise
    except Exception as exc:
        raise BpmTransferError(f"{what}: could not write {target}: {type(exc).__name__}: {exc}") from exc
    return STATUS_WRITTEN if existing_size is None else STATUS_REPLACED


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


def _publish_local(source: str, path: str) -> None:
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    temp = os.path.join(directory, os.path.basename(_hidden_sibling(path)))
    try:
        with open(source, "rb") as src, open(temp, "xb") as dst:
            while block := src.read(COPY_BUFFER):
                dst.write(block)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(temp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def _publish_object(source: str, target: ObjectStoragePath) -> None:
    # One put: S3/GCS/Azure show an object (also a multipart one) only once it is complete.
    target.fs.put_file(source, target.path)


def _publish_with_rename(source: str, target: ObjectStoragePath) -> None:
    fs = target.fs
    parent = target.parent.path
    with suppress(FileExistsError):
        fs.makedirs(parent, exist_ok=True)
    temp = _hidden_sibling(target.path)
    try:
        fs.put_file(source, temp)
        fs.mv(temp, target.path)
    except BaseException:
        with suppress(Exception):
            fs.rm(temp)
        raise
