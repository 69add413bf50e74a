"""Whether the file already at a target holds what was just downloaded, without reading it back.

A re-run finds most files already there, with the same size. Hashing each one to prove it
unchanged would read the whole export back from the store. Instead the manifest keeps, next to
each file's sha256, the store's own version of the object as it was right after the export wrote
or checked it: the ETag and modification time on an object store (any rewrite changes them), and
on a local disk the device, inode, mtime and ctime (ctime is set by the kernel on every change
and cannot be set back by a user). A target whose version is still the recorded one holds the
recorded bytes; any other target (no manifest, a version that moved, a store that reports none)
is read back and hashed, as before.

What is recorded is only what this run saw itself, so the next manifest vouches for nothing the
export did not check.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

# The manifest's section: relative path -> {"sha256", "size", "version"}.
MANIFEST_KEY = "store_versions"
READ_BUFFER = 1024 * 1024
LOCAL_PROTOCOLS = frozenset({"", "file", "local"})
# Keys of fsspec's info() that change whenever an object is written: s3fs (ETag, LastModified),
# gcsfs (generation, etag, updated), adlfs (etag, last_modified).
VERSION_KEYS = ("ETag", "etag", "generation", "LastModified", "last_modified", "updated", "mtime")

log = logging.getLogger(__name__)


def store_version(target: ObjectStoragePath) -> str | None:
    """The store's marker of this exact object, or None when it reports nothing usable."""
    if (target.protocol or "") in LOCAL_PROTOCOLS:
        try:
            st = os.stat(target.path)
        except OSError:
            return None
        return f"local:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
    try:
        info = target.fs.info(target.path)
    except (OSError, ValueError):
        return None
    parts = [f"{key}={info[key]}" for key in VERSION_KEYS if info.get(key) not in (None, "")]
    # A bare mtime alone can be set back by hand; ask for a real version marker besides it.
    if not parts or all(part.startswith("mtime=") for part in parts):
        return None
    return f"size={info.get('size')};" + ";".join(parts)


def read_sha256(target: ObjectStoragePath) -> str:
    digest = hashlib.sha256()
    with target.fs.open(target.path, "rb") as existing:
        while block := existing.read(READ_BUFFER):
            digest.update(block)
    return digest.hexdigest()


class KnownDigests:
    """The sha256 of what lies under one destination, as far as the last run's manifest proves it.

    :meth:`sha256_of` is what the writer asks when a same-size file is already at a target;
    :meth:`record` notes what this run left at a target, for the next manifest.
    """

    def __init__(self, root: ObjectStoragePath, recorded: Mapping[str, Any] | None = None) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._last: dict[str, tuple[str, Mapping[str, Any]]] = {}  # target path -> (relative, entry)
        for relative, entry in (recorded or {}).items():
            if isinstance(relative, str) and _valid(entry):
                self._last[self._path(relative)] = (relative, entry)
        self._now: dict[str, dict[str, Any]] = {}
        self._checked: dict[str, str | None] = {}  # target path -> version seen by sha256_of
        self.trusted = 0  # same-size targets proven unchanged by their version
        self.read_back = 0  # same-size targets hashed by reading them

    @classmethod
    def from_manifest(cls, root: ObjectStoragePath, manifest: ObjectStoragePath) -> KnownDigests:
        """What the last run's manifest (about to be removed) recorded; nothing if it cannot say."""
        try:
            if not manifest.exists():
                return cls(root)
            body = json.loads(manifest.read_bytes())
        except (OSError, ValueError) as exc:
            log.info("the last manifest %s cannot be read (%s): same-size files are read back", manifest, exc)
            return cls(root)
        recorded = body.get(MANIFEST_KEY) if isinstance(body, dict) else None
        return cls(root, recorded if isinstance(recorded, dict) else None)

    def sha256_of(self, target: ObjectStoragePath) -> str:
        """The sha256 of the object at ``target`` now: recorded when its version proves it, else read."""
        last = self._last.get(target.path)
        # Taken before any read: a write racing the read-back leaves a version that moved.
        version = store_version(target)
        with self._lock:
            self._checked[target.path] = version
        if last is not None and version is not None and version == last[1]["version"]:
            with self._lock:
                self.trusted += 1
            return str(last[1]["sha256"])
        with self._lock:
            self.read_back += 1
        return read_sha256(target)

    def record(
        self, target: ObjectStoragePath, relative: str, sha256: str, size: int, *, status: str = ""
    ) -> None:
        """``target`` holds ``sha256`` now (this run wrote or checked it): note its version.

        An ``unchanged`` target keeps the version :meth:`sha256_of` just saw (no second look at
        the store); a written or replaced one is looked at again, after its publication.
        """
        with self._lock:
            checked = self._checked.pop(target.path, None)
        version = checked if status == "unchanged" and checked is not None else store_version(target)
        if version is None:
            return
        with self._lock:
            self._now[relative] = {"sha256": sha256, "size": size, "version": version}

    def for_manifest(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(sorted(self._now.items()))

    def _path(self, relative: str) -> str:
        return self.root.joinpath(*relative.split("/")).path


def _valid(entry: Any) -> bool:
    return (
        isinstance(entry, Mapping)
        and isinstance(entry.get("sha256"), str)
        and isinstance(entry.get("version"), str)
        and bool(entry["version"])
    )
