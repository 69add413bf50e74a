"""One file from the BPM system to its target, tried again when the download breaks.

A broken stream (cut short, reset, more or fewer bytes than announced) or a 5xx/429 that outlived
the hook's own retries is tried again, up to ``retries`` times with growing, jittered pauses. A
retry asks for the rest only (``Range: bytes=N-``) when the hook can send a range; the partial
copy is kept only when the server answers 206 with the matching ``Content-Range``, otherwise the
file starts again from zero. Only then does the file count as failed, with an error that names
the system, connection, process, file and URL path.
"""

from __future__ import annotations

import inspect
import random
import re
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_bpm_provider.exceptions import (
    BpmConnectionError,
    BpmError,
    BpmRateLimited,
    BpmServerError,
    BpmTransferError,
)
from airflow_bpm_provider.transfer.writer import Download

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_bpm_provider.hooks.base import BpmHook
    from airflow_bpm_provider.hooks.http import Reply
    from airflow_bpm_provider.models import ProcessFile
    from airflow_bpm_provider.transfer.workers import Pacer

DEFAULT_RETRIES = 3
MAX_RETRY_DELAY = 30.0
RETRYABLE = (BpmTransferError, BpmServerError, BpmRateLimited, BpmConnectionError)
RANGE_NOT_SATISFIABLE = 416
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


def announced_size(file: ProcessFile, headers: Mapping[str, str]) -> int | None:
    """The size to check a download against: the file's own size, else Content-Length.

    Content-Length counts encoded bytes; with a Content-Encoding the decoded stream is longer.
    """
    if file.size is not None:
        return int(file.size)
    encoding = (headers.get("content-encoding") or "identity").strip().lower()
    length = headers.get("content-length")
    if length is None or encoding != "identity":
        return None
    try:
        return int(length)
    except ValueError:
        return None


def resumed_size(reply: Reply, offset: int, expected: int | None) -> int | None:
    """The whole file's size when ``reply`` really continues at ``offset``; None when it does not.

    A 206 counts only with a ``Content-Range`` that starts at ``offset`` and (when known) names
    the same total: anything else could splice two versions of the file.
    """
    if reply.status != 206:
        return None
    match = _CONTENT_RANGE.match(reply.headers.get("content-range") or "")
    if match is None or int(match.group(1)) != offset or match.group(3) == "*":
        return None
    total = int(match.group(3))
    if expected is not None and total != expected:
        return None
    return total


def accepts_keyword(method: Callable[..., Any], name: str) -> bool:
    """Whether a hook method takes keyword ``name`` (a third-party hook may predate it)."""
    try:
        return name in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def supports_offset(hook: BpmHook) -> bool:
    return accepts_keyword(hook.open_file, "offset")


def url_path(url: str) -> str | None:
    """The path of a request URL, never its query (which may carry more than an id)."""
    return urlsplit(url).path or None if url else None


def describe_file(hook: BpmHook, file: ProcessFile, error: BaseException | None = None) -> str:
    """``Questetra connection 'x', process 7, file 'a.pdf' (GET /API/...)``."""
    text = f"{hook.system} connection '{hook.bpm_conn_id}', process {file.process_instance_id}"
    text += f", file {file.name!r}"
    path = getattr(error, "path", None)
    if path:
        method = getattr(error, "method", None) or "GET"
        text += f" ({method} {path})"
    return text


class FileFetcher:
    """Downloads one file at a time per worker with file-level retries; shared by the workers."""

    def __init__(
        self,
        *,
        chunk_size: int,
        retries: int,
        retry_delay: float,
        pacer: Pacer,
        logger: Any,
        existing_sha256: Callable[[ObjectStoragePath], str] | None = None,
    ) -> None:
        self.existing_sha256 = existing_sha256  # see transfer/unchanged.py
        self.chunk_size = chunk_size
        self.retries = retries
        self.retry_delay = retry_delay
        self.pacer = pacer
        self.logger = logger

    def fetch(
        self,
        hook: BpmHook,
        file: ProcessFile,
        target: ObjectStoragePath,
        relative: str,
        on_bytes: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Download ``file`` to ``target``; return its manifest entry or raise a BpmError."""
        what = describe_file(hook, file)
        download = Download(target, what=what, existing_sha256=self.existing_sha256)
        can_resume = supports_offset(hook)
        attempt = 0
        try:
            while True:
                attempt += 1
                offset = download.received if can_resume else 0
                try:
                    self._attempt(hook, file, download, offset, on_bytes)
                    break
                except BpmError as exc:
                    if exc.status == RANGE_NOT_SATISFIABLE:
                        can_resume = False  # the server refuses ranges for this file: start again
                    elif not isinstance(exc, RETRYABLE):
                        raise self._named(exc, hook, file, attempt) from exc
                    if attempt > self.retries:
                        raise self._named(exc, hook, file, attempt) from exc
                    delay = self._backoff(attempt)
                    self.logger.warning(
                        "%s: try %d of %d failed (%s); trying again in %.1f s%s",
                        describe_file(hook, file, exc),
                        attempt,
                        self.retries + 1,
                        exc,
                        delay,
                        f" from byte {download.received}" if can_resume and download.received else "",
                    )
                    if isinstance(exc, BpmRateLimited | BpmServerError):
                        self.pacer.hold(delay)  # the server is struggling: every worker waits
                    else:
                        self.pacer.sleep(delay)
            entry = download.finish(
                process_id=file.process_instance_id, file_name=file.name, relative_path=relative
            )
        except BaseException:
            download.abort()
            raise
        return {
            "process_id": entry.process_id,
            "file_name": entry.file_name,
            "path": entry.relative_path,
            "url": entry.url,
            "size": entry.size,
            "sha256": entry.sha256,
            "status": entry.status,
        }

    def _attempt(
        self,
        hook: BpmHook,
        file: ProcessFile,
        download: Download,
        offset: int,
        on_bytes: Callable[[int], None] | None,
    ) -> None:
        opened: AbstractContextManager[Reply] = (
            hook.open_file(file, offset=offset) if offset else hook.open_file(file)  # type: ignore[call-arg]
        )
        with opened as reply:
            path = url_path(reply.url)
            try:
                expected = announced_size(file, reply.headers)
                if offset:
                    total = resumed_size(reply, offset, file.size)
                    if total is None:
                        download.restart()  # the server sent the whole file (or another range)
                        if reply.status == 206:
                            raise BpmTransferError(
                                f"{describe_file(hook, file)}: asked for the bytes from {offset} on, "
                                f"got {reply.headers.get('content-range') or 'no Content-Range'}; "
                                "starting again from zero",
                                status=RANGE_NOT_SATISFIABLE,
                            )
                    else:
                        expected = total
                elif download.received:
                    download.restart()
                readinto = getattr(reply, "readinto", None)
                if readinto is None:  # a hook's own reply type, from before readinto
                    download.feed(
                        reply.iter_bytes(self.chunk_size), expected_size=expected, on_bytes=on_bytes
                    )
                else:
                    download.pump(readinto, expected_size=expected, on_bytes=on_bytes)
            except BpmTransferError as exc:
                if exc.path is None and path is not None:
                    raise BpmTransferError(
                        str(exc), system=hook.system, conn_id=hook.bpm_conn_id, method="GET", path=path
                    ) from exc
                raise

    def _backoff(self, attempt: int) -> float:
        ceiling = min(MAX_RETRY_DELAY, self.retry_delay * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)

    def _named(self, exc: BpmError, hook: BpmHook, file: ProcessFile, attempt: int) -> BpmError:
        """The last error, kept as its class, saying which file and after how many tries."""
        tries = f" (gave up after {attempt} tries)" if attempt > 1 else ""
        named = type(exc)(f"{describe_file(hook, file, exc)}: {exc}{tries}")
        for field in ("system", "conn_id", "method", "path", "status"):
            setattr(named, field, getattr(exc, field, None))
        named.reason = f"{exc}{tries}"  # type: ignore[attr-defined] - the export's per-file line
        return named
