"""Export every file of selected processes to any ObjectStoragePath destination, as one task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_bpm_provider.transfer.workers import DEFAULT_CONCURRENCY

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, ObjectStoragePath

    from airflow_bpm_provider.hooks.base import BpmHook

# The export's own defaults (transfer.naming.DEFAULT_LAYOUT, transfer.fetch.DEFAULT_RETRIES; kept
# equal by tests/test_import_weight.py). Not imported from there: those modules bring the naming,
# download and write machinery, which a DAG file should not pay for at every parse.
DEFAULT_LAYOUT = "{process_id}_{definition_name}_({title})/{file_name}"
DEFAULT_FILE_RETRIES = 3


class BpmDownloadProcessFilesOperator(BaseOperator):
    """Download the files of process instances (by id, or found by a query) to ``destination``.

    Files land atomically, are checked against the size the server announced, keep a stable,
    safe relative path from ``layout`` and are left alone when an identical copy is already there.
    Returns the manifest (a list of dicts: process_id, file_name, path, url, size, sha256, status,
    group). When some files fail the others still land, then the task fails listing the failures.

    :param bpm_conn_id: connection of a BPM connection type
    :param destination: URL or path (``s3://bucket/prefix/``, ``/data/in``) or an ObjectStoragePath
    :param dest_conn_id: connection for the destination's store (aws, google_cloud, wasb, ...)
    :param process_instance_ids: one id or a list (templated)
    :param query: a vendor-specific search passed to the hook's ``find_processes(query=...)``
    :param filters: generic ``find_processes`` filters (templated)
    :param layout: relative path template; placeholders {process_id}, {definition},
        {definition_name}, {title}, {business_key}, {group}, {file_name}
    :param manifest_name: also write the manifest as JSON under this name in the destination
    :param max_concurrency: downloads (and file listings) at once on this connection, each worker
        with its own HTTP session; a 429/Retry-After or 503 pauses all of them
    :param file_retries: how many more times a broken download is tried (resumed with a Range
        request where the server allows) before the file counts as failed; separate from the
        task's own ``retries``, which repeat the whole export
    """

    template_fields: Sequence[str] = (
        "process_instance_ids",
        "query",
        "filters",
        "destination",
        "layout",
        "manifest_name",
    )
    template_fields_renderers = {"filters": "json", "query": "xml"}
    ui_color = "#dbe9f6"

    def __init__(
        self,
        *,
        bpm_conn_id: str,
        destination: str | ObjectStoragePath,
        dest_conn_id: str | None = None,
        process_instance_ids: Sequence[str] | str | None = None,
        query: Any = None,
        filters: Mapping[str, Any] | None = None,
        layout: str = DEFAULT_LAYOUT,
        manifest_name: str | None = None,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        file_retries: int = DEFAULT_FILE_RETRIES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if process_instance_ids is not None and (query is not None or filters):
            raise ValueError("give either process_instance_ids or query/filters, not both")
        if process_instance_ids is None and query is None and not filters:
            raise ValueError("select the processes with process_instance_ids, query or filters")
        from airflow_bpm_provider.transfer.naming import Layout

        Layout.parse(layout)  # unknown placeholders fail when the DAG is parsed, not at 3 a.m.
        if not isinstance(max_concurrency, int) or isinstance(max_concurrency, bool) or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be a whole number >= 1, got {max_concurrency!r}")
        if not isinstance(file_retries, int) or isinstance(file_retries, bool) or file_retries < 0:
            raise ValueError(f"file_retries must be a whole number >= 0, got {file_retries!r}")
        self.bpm_conn_id = bpm_conn_id
        self.destination = destination
        self.dest_conn_id = dest_conn_id
        self.process_instance_ids = process_instance_ids
        self.query = query
        self.filters = filters
        self.layout = layout
        self.manifest_name = manifest_name
        self.max_concurrency = max_concurrency
        self.file_retries = file_retries
        self._add_destination_asset()

    def get_hook(self) -> BpmHook:
        from airflow_bpm_provider.hooks.registry import get_bpm_hook

        return get_bpm_hook(self.bpm_conn_id)

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from airflow_bpm_provider.transfer.export import export_process_files

        with self.get_hook() as hook:
            manifest = export_process_files(
                hook,
                self.destination,
                dest_conn_id=self.dest_conn_id,
                process_instance_ids=self.process_instance_ids,
                query=self.query,
                filters=self.filters,
                layout=self.layout,
                manifest_name=self.manifest_name or None,
                logger=self.log,
                max_concurrency=self.max_concurrency,
                retries=self.file_retries,
            )
        counts: dict[str, int] = {}
        for entry in manifest:
            counts[entry["status"]] = counts.get(entry["status"], 0) + 1
        self.log.info("Exported %d file(s): %s", len(manifest), counts)
        self._publish(context, manifest, counts)
        return manifest

    # ---- what the export publishes: asset events and lineage -----------------------------------

    def _add_destination_asset(self) -> None:
        """Without Asset outlets of the user's own, the destination is the export's outlet Asset.

        A templated destination is only known at run time, when it is too late for Airflow to
        learn the outlet: such a DAG names its Asset in ``outlets`` itself.
        """
        from airflow.sdk import Asset

        if any(isinstance(outlet, Asset) for outlet in self.outlets):
            return
        uri = destination_uri(self.destination)
        if uri is not None:
            self.outlets = [*self.outlets, Asset(uri)]

    def _publish(self, context: Context, manifest: list[dict[str, Any]], counts: Mapping[str, int]) -> None:
        """Keep what lineage reports; put the export's figures into each outlet Asset's event."""
        from airflow.sdk import Asset

        destination = str(self.destination)
        self._lineage = {"destination": destination, "processes": _process_ids(self, manifest)}
        outlets = [outlet for outlet in self.outlets if isinstance(outlet, Asset)]
        events = context.get("outlet_events") if outlets else None
        if events is None:
            return
        manifest_name = self.manifest_name or None
        extra = {
            "bpm_conn_id": self.bpm_conn_id,
            "destination": destination,
            "files": len(manifest),
            "by_status": dict(counts),
            "bytes": sum(int(entry.get("size") or 0) for entry in manifest),
            "processes": self._lineage["processes"],
            "manifest": f"{destination.rstrip('/')}/{manifest_name}" if manifest_name else None,
        }
        for outlet in outlets:
            events[outlet].extra.update(extra)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """BPM process instances in, the destination prefix out (called only by the OpenLineage provider)."""
        from airflow_bpm_provider.lineage import export_lineage

        lineage = getattr(self, "_lineage", None)
        if lineage is None:
            return None
        return export_lineage(self.bpm_conn_id, lineage["processes"], lineage["destination"])


def destination_uri(destination: Any) -> str | None:
    """The Asset URI of a destination: its URL, ``file://`` for a local path; None while templated."""
    import os

    text = str(destination)
    if "{{" in text or "{%" in text or not text.strip():
        return None
    if "://" in text:
        return text
    return "file://" + os.path.abspath(os.path.expanduser(text))


def _process_ids(operator: BpmDownloadProcessFilesOperator, manifest: list[dict[str, Any]]) -> list[str]:
    selected = operator.process_instance_ids
    ids = [selected] if isinstance(selected, str) else list(selected or [])
    ids += [entry["process_id"] for entry in manifest if entry.get("process_id") is not None]
    return sorted({str(pid) for pid in ids})
