"""The export job: every file of the chosen processes into one destination, with a manifest.

Plain Python on a hook, so it runs in an operator, a ``@task`` or a script alike. One failed file
does not stop the others; the job fails at the end, naming every file that did not land.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from airflow_bpm_provider.exceptions import BpmConfigError, BpmError, BpmTransferError
from airflow_bpm_provider.transfer.naming import DEFAULT_LAYOUT, Layout, PathAllocator, safe_component
from airflow_bpm_provider.transfer.writer import Spool, plain_url, publish, write_file

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_bpm_provider.hooks.base import BpmHook
    from airflow_bpm_provider.models import ProcessFile, ProcessInstance

CHUNK_SIZE = 1024 * 1024
STATUS_EXTERNAL = "external"

log = logging.getLogger(__name__)


def as_destination(
    destination: str | os.PathLike[str] | ObjectStoragePath, dest_conn_id: str | None = None
) -> ObjectStoragePath:
    """An ``ObjectStoragePath`` for a URL or path, carrying ``dest_conn_id`` when given."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    if isinstance(destination, ObjectStoragePath):
        if dest_conn_id is None or destination.conn_id == dest_conn_id:
            return destination
        destination = str(destination)
    elif isinstance(destination, os.PathLike):
        destination = os.fspath(destination)
    if not isinstance(destination, str) or not destination.strip():
        raise BpmConfigError(f"destination must be a URL or path, got {destination!r}")
    return ObjectStoragePath(destination, conn_id=dest_conn_id)


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


def select_processes(
    hook: BpmHook,
    *,
    process_instance_ids: Iterable[str] | str | None = None,
    query: Any = None,
    filters: Mapping[str, Any] | None = None,
    on_error: Callable[[str, BpmError], None] | None = None,
) -> Iterator[ProcessInstance]:
    """The processes to export, each once, in the order the ids or the search gave them.

    With ``on_error``, an id that cannot be read is reported there and skipped instead of raising.
    """
    ids = normalise_ids(process_instance_ids)
    if ids is not None and (query is not None or filters):
        raise BpmConfigError("give either process_instance_ids or a query/filters, not both")
    if ids is None and query is None and not filters:
        raise BpmConfigError(
            "nothing selects the processes to export: give process_instance_ids, a query or filters"
        )
    if ids is not None:
        instances: Iterable[ProcessInstance] = _read_each(hook, ids, on_error)
    else:
        search = dict(filters or {})
        if query is not None:
            search["query"] = query
        instances = hook.find_processes(**search)
    seen: set[str] = set()
    for instance in instances:
        if instance.id not in seen:
            seen.add(instance.id)
            yield instance


def _read_each(
    hook: BpmHook, ids: list[str], on_error: Callable[[str, BpmError], None] | None
) -> Iterator[ProcessInstance]:
    for pid in ids:
        try:
            yield hook.get_process(pid)
        except BpmError as exc:
            if on_error is None:
                raise
            on_error(pid, exc)


def normalise_ids(ids: Iterable[Any] | str | int | None) -> list[str] | None:
    if ids is None:
        return None
    if isinstance(ids, str | int):
        ids = [ids]
    out = [str(pid).strip() for pid in ids]
    if not out or any(not pid for pid in out):
        raise BpmConfigError(f"process_instance_ids must be non-empty ids, got {ids!r}")
    return out


def layout_values(instance: ProcessInstance, file: ProcessFile) -> dict[str, Any]:
    return {
        "process_id": instance.id,
        "definition": instance.definition,
        "definition_name": instance.definition_name or instance.definition,
        # Only Questetra and yuuvis name their processes: elsewhere the business key says more than "()".
        "title": instance.title or instance.business_key,
        "business_key": instance.business_key,
        "group": file.group,
        "file_name": file.name,
    }


def export_process_files(
    hook: BpmHook,
    destination: str | os.PathLike[str] | ObjectStoragePath,
    *,
    dest_conn_id: str | None = None,
    process_instance_ids: Iterable[str] | str | None = None,
    query: Any = None,
    filters: Mapping[str, Any] | None = None,
    layout: str | Layout = DEFAULT_LAYOUT,
    manifest_name: str | None = None,
    chunk_size: int = CHUNK_SIZE,
    logger: Any = None,
) -> list[dict[str, Any]]:
    """Download every file of the selected processes under ``destination``; return the manifest.

    Each manifest entry: process_id, file_name, path (relative to the destination, None for
    external files), url, size, sha256, status (written, replaced, unchanged or external), group.
    The manifest is written as JSON (``manifest_name``) only when every file landed, so its
    presence tells a downstream reader the export is complete.
    """
    logger = logger or log
    plan = layout if isinstance(layout, Layout) else Layout.parse(layout)
    root = as_destination(destination, dest_conn_id)
    allocator = PathAllocator()
    manifest_file = safe_component(manifest_name) if manifest_name else None
    if manifest_file:
        allocator.reserve([manifest_file])
        # Its presence means "complete": an earlier run's manifest must not vouch for this one.
        stale = root / manifest_file
        if stale.exists():
            stale.unlink()

    manifest: list[dict[str, Any]] = []
    failures: list[str] = []

    def unreadable(pid: str, exc: BpmError) -> None:
        failures.append(f"process {pid}: could not be read: {exc}")

    for instance in select_processes(
        hook, process_instance_ids=process_instance_ids, query=query, filters=filters, on_error=unreadable
    ):
        try:
            files = list(hook.list_files(instance.id))
        except BpmError as exc:
            failures.append(f"process {instance.id}: could not list its files: {exc}")
            continue
        for file in files:
            if file.external_url:
                manifest.append(_external_entry(instance, file))
                continue
            parts = allocator.claim(plan.render(layout_values(instance, file)))
            relative = "/".join(parts)
            try:
                entry = _download(hook, file, root.joinpath(*parts), relative, chunk_size)
            except BpmError as exc:
                failures.append(f"process {instance.id}, file {file.name!r} -> {relative}: {exc}")
                continue
            entry["group"] = file.group
            logger.info("%s %s (%d bytes)", entry["status"], entry["url"], entry["size"])
            manifest.append(entry)

    if failures:
        logger.error(
            "export to %s: %d file(s) landed (the failures follow in the error): %s",
            plain_url(root),
            len(manifest),
            json.dumps(manifest, ensure_ascii=False),
        )
        raise BpmTransferError(
            f"export to {plain_url(root)} is incomplete: {len(failures)} failure(s), "
            f"{len(manifest)} file(s) landed",
            details=failures,
        )
    if manifest_file:
        _write_manifest(root, manifest_file, manifest, logger)
    return manifest


def _download(
    hook: BpmHook, file: ProcessFile, target: ObjectStoragePath, relative: str, chunk_size: int
) -> dict[str, Any]:
    with hook.open_file(file) as reply:
        written = write_file(
            reply.iter_bytes(chunk_size),
            target,
            expected_size=announced_size(file, reply.headers),
            process_id=file.process_instance_id,
            file_name=file.name,
            relative_path=relative,
        )
    return {
        "process_id": written.process_id,
        "file_name": written.file_name,
        "path": written.relative_path,
        "url": written.url,
        "size": written.size,
        "sha256": written.sha256,
        "status": written.status,
    }


def _external_entry(instance: ProcessInstance, file: ProcessFile) -> dict[str, Any]:
    return {
        "process_id": instance.id,
        "file_name": file.name,
        "path": None,
        "url": file.external_url,
        "size": file.size,
        "sha256": None,
        "status": STATUS_EXTERNAL,
        "group": file.group,
    }


def _write_manifest(root: ObjectStoragePath, name: str, manifest: list[dict[str, Any]], logger: Any) -> None:
    import hashlib
    import tempfile

    body = json.dumps({"files": manifest}, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
    fd, path = tempfile.mkstemp(prefix="bpm-manifest-", suffix=".json")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(body)
        target = root / name
        spooled = Spool(path=path, size=len(body), sha256=hashlib.sha256(body).hexdigest())
        status = publish(spooled, target, what=f"manifest {name!r}")
    finally:
        os.unlink(path)
    logger.info("manifest %s: %s (%d files)", plain_url(target), status, len(manifest))
