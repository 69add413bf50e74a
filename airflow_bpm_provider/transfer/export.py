"""The export job: every file of the chosen processes into one destination, with a manifest.

Plain Python on a hook, so it runs in an operator, a ``@task`` or a script alike. Files download
in parallel (``max_concurrency`` per connection), each retried on its own (resumed where the
server allows) before it counts as failed. One failed file does not stop the others; the job
fails at the end, naming every file that did not land.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from airflow_bpm_provider.exceptions import BpmConfigError, BpmError, BpmTransferError
from airflow_bpm_provider.transfer.fetch import DEFAULT_RETRIES, FileFetcher, accepts_keyword, describe_file
from airflow_bpm_provider.transfer.fetch import announced_size as announced_size  # its home before
from airflow_bpm_provider.transfer.naming import DEFAULT_LAYOUT, Layout, PathAllocator, safe_component
from airflow_bpm_provider.transfer.progress import PROGRESS_INTERVAL, Progress
from airflow_bpm_provider.transfer.unchanged import MANIFEST_KEY as VERSIONS_KEY
from airflow_bpm_provider.transfer.unchanged import KnownDigests
from airflow_bpm_provider.transfer.workers import DEFAULT_CONCURRENCY, WorkerPool
from airflow_bpm_provider.transfer.writer import plain_url, write_bytes

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
        _refuse_unattached_azure(destination.protocol or "")
        if dest_conn_id is None or destination.conn_id == dest_conn_id:
            return destination
        destination = str(destination)
    elif isinstance(destination, os.PathLike):
        destination = os.fspath(destination)
    if not isinstance(destination, str) or not destination.strip():
        raise BpmConfigError(f"destination must be a URL or path, got {destination!r}")
    _refuse_unattached_azure(destination.partition("://")[0] if "://" in destination else "")
    try:
        return ObjectStoragePath(destination, conn_id=dest_conn_id)
    except ValueError as exc:  # "Unsupported filesystem": no fsspec implementation for the scheme
        raise BpmConfigError(f"destination {destination!r}: {exc}") from None


# Airflow's Azure filesystem serves abfs/abfss/adl only: an az:// or wasb:// path would get no
# credentials from dest_conn_id (or no filesystem at all) and fail after the BPM calls.
_AZURE_ALIASES = frozenset({"az", "wasb", "wasbs"})


def _refuse_unattached_azure(scheme: str) -> None:
    if scheme.lower() in _AZURE_ALIASES:
        raise BpmConfigError(
            f"destination scheme {scheme}:// is not served by Airflow's Azure filesystem: use "
            "abfs://<container>@<account>.dfs.core.windows.net/<path> (or abfss://) with dest_conn_id"
        )


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
        # A listing may leave out the business key the layout's title falls back to (Bonita).
        instances = (hook.fill_business_key(found) for found in hook.find_processes(**search))
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
    max_concurrency: int = DEFAULT_CONCURRENCY,
    retries: int = DEFAULT_RETRIES,
    retry_delay: float | None = None,
    progress_interval: float = PROGRESS_INTERVAL,
    clock: Callable[[], float] = time.monotonic,
) -> list[dict[str, Any]]:
    """Download every file of the selected processes under ``destination``; return the manifest.

    Each manifest entry: process_id, file_name, path (relative to the destination, None for
    external files), url, size, sha256, status (written, replaced, unchanged or external), group.
    The manifest is written as JSON (``manifest_name``) only when every file landed, so its
    presence tells a downstream reader the export is complete. Its ``store_versions`` let the
    next run prove same-size files unchanged without reading them back (transfer/unchanged.py).

    ``max_concurrency`` requests run at once on this connection (each worker thread has its own
    HTTP session); a server that asks to slow down (429, Retry-After, 503) pauses all of them.
    A broken download is tried ``retries`` more times, ``retry_delay`` seconds apart and growing
    (default: the connection's own retry delay), before the file counts as failed. Progress is
    logged every ``progress_interval`` seconds.
    """
    logger = logger or log
    if not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise BpmConfigError(f"max_concurrency must be a whole number >= 1, got {max_concurrency!r}")
    if not isinstance(retries, int) or retries < 0:
        raise BpmConfigError(f"retries must be a whole number >= 0, got {retries!r}")
    plan = layout if isinstance(layout, Layout) else Layout.parse(layout)
    root = as_destination(destination, dest_conn_id)
    allocator = PathAllocator()
    manifest_file = safe_component(manifest_name) if manifest_name else None
    known: KnownDigests | None = None
    if manifest_file:
        allocator.reserve([manifest_file])
        # Its presence means "complete": an earlier run's manifest must not vouch for this one.
        stale = root / manifest_file
        known = KnownDigests.from_manifest(root, stale)  # spares reading unchanged files back
        if stale.exists():
            stale.unlink()

    failures: list[str] = []
    where = f"{hook.system} connection '{hook.bpm_conn_id}'"
    progress = Progress(logger, interval=progress_interval, clock=clock)

    def unreadable(pid: str, exc: BpmError) -> None:
        failures.append(f"{where}, process {pid}: could not be read: {exc}")

    if retry_delay is None:
        retry_delay = hook.retry_policy.initial_delay
    with WorkerPool(hook, max_concurrency, clock=clock) as pool:
        fetcher = FileFetcher(
            chunk_size=chunk_size,
            retries=retries,
            retry_delay=retry_delay,
            pacer=pool.pacer,
            logger=logger,
            existing_sha256=known.sha256_of if known is not None else None,
        )
        instances = list(
            select_processes(
                hook,
                process_instance_ids=process_instance_ids,
                query=query,
                filters=filters,
                on_error=unreadable,
            )
        )
        progress.matched(len(instances))
        listings = pool.map(_files_of, instances)
        jobs: list[tuple[int, ProcessInstance, ProcessFile, list[str]]] = []
        slots: list[dict[str, Any] | None] = []
        for instance, (files, error) in zip(instances, listings, strict=True):
            if error is not None:
                failures.append(f"{where}, process {instance.id}: could not list its files: {error}")
                continue
            for file in files:
                if file.external_url:
                    slots.append(_external_entry(instance, file))
                    continue
                parts = allocator.claim(plan.render(layout_values(instance, file)))
                jobs.append((len(slots), instance, file, parts))
                slots.append(None)
        progress.planned(len(jobs), sum(int(file.size or 0) for _, _, file, _ in jobs))

        def run(worker: BpmHook, job: tuple[int, ProcessInstance, ProcessFile, list[str]]) -> dict[str, Any]:
            _, _, file, parts = job
            target = root.joinpath(*parts)
            entry = fetcher.fetch(worker, file, target, "/".join(parts), progress.add_bytes)
            if known is not None:
                known.record(target, entry["path"], entry["sha256"], entry["size"], status=entry["status"])
            entry["group"] = file.group
            progress.file_done()
            logger.info("%s %s (%d bytes)", entry["status"], entry["url"], entry["size"])
            return entry

        results = pool.map(run, jobs, on_wait=progress.tick)
        for (slot, _, file, parts), (entry, error) in zip(jobs, results, strict=True):
            if error is not None:
                progress.file_done()
                reason = getattr(error, "reason", error)
                failures.append(f"{describe_file(hook, file, error)} -> {'/'.join(parts)}: {reason}")
                continue
            slots[slot] = entry
    manifest = [entry for entry in slots if entry is not None]
    progress.finished(failed=len(failures))

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
            system=hook.system,
            conn_id=hook.bpm_conn_id,
            details=failures,
        )
    if manifest_file:
        versions = known.for_manifest() if known is not None else {}
        _write_manifest(root, manifest_file, manifest, logger, versions)
    return manifest


def _files_of(hook: BpmHook, instance: ProcessInstance) -> list[ProcessFile]:
    """The files of one process; from the search's own entry when the hook can use it (no request)."""
    if accepts_keyword(hook.list_files, "listed"):
        return list(hook.list_files(instance.id, listed=instance.raw))  # type: ignore[call-arg]
    return list(hook.list_files(instance.id))


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


def _write_manifest(
    root: ObjectStoragePath,
    name: str,
    manifest: list[dict[str, Any]],
    logger: Any,
    versions: Mapping[str, Any],
) -> None:
    document = {"files": manifest, VERSIONS_KEY: versions}
    body = json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
    target = root / name
    status = write_bytes(target, body, what=f"manifest {name!r}")
    logger.info("manifest %s: %s (%d files)", plain_url(target), status, len(manifest))
