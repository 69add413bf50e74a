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

    What a "file" is on each system: Questetra, the files of File-type data items; Bonita, the
    case documents (live and archived); Activiti / Flowable / WSO2 EI, task attachments and binary
    process variables; yuuvis, the DMS objects whose ids the ``document_variables`` hold.

    Example (seed 000's export: every file of an app's processes started since a date):

        BpmDownloadProcessFilesOperator(
            task_id="export",
            bpm_conn_id="questetra_prod",
            query={"process_model_info_id": 12, "start_date_from": "{{ params.since }}"},
            destination="s3://my-bucket/bpm-files/",
            dest_conn_id="aws_default",
            manifest_name="manifest.json",
        )

    :param bpm_conn_id: connection of a BPM connection type (``questetra``, ``bonita``,
        ``activiti``, ``yuuvis_bpm``)
    :param destination: URL or path (templated), or an ObjectStoragePath, such as
        ``s3://bucket/prefix/``, ``gs://bucket/p``, ``abfs://container/p`` or ``/data/in``. On a
        distributed Airflow a local path lands on whichever worker ran the task: use object
        storage there.
    :param dest_conn_id: connection for the destination's store (templated), e.g. ``aws_default``
        (``aws``), ``wasb_default`` (``wasb``); None for a local folder or a URL that names its
        connection (``s3://aws_conn@bucket/prefix``)
    :param process_instance_ids: one id or a list (templated), e.g. ``"183"`` (Questetra),
        ``["1001", "1002"]`` (Bonita case ids), ``"2501"`` (Activiti) or the UUIDs Flowable and
        yuuvis use; an XComArg such as ``ended_processes()`` works too. Give either this or
        ``query`` / ``filters``.
    :param query: a vendor-specific search (templated), passed to the hook's
        ``find_processes(query=...)``

        - Questetra / DataSpider: criteria as a mapping, built into criteria XML with every value
          escaped, ``{"process_model_info_id": 12, "states": ["ENDED"], "start_date_from":
          "2024-05-01", "data": [{"type": "file", "number": 3, "condition": "view"}]}`` (keys as
          the criteria elements with ``_`` for ``-``; ``data`` entries with ``condition: view``
          bring their files along with the search), or the criteria XML text itself;
        - Bonita: more ``f`` filters of the case search, passed through, ``{"team_manager_id":
          "4"}`` or a list of pairs;
        - Activiti / Flowable / WSO2 EI: the JSON body of ``POST query/historic-process-instances``,
          ``{"finished": True, "startedBy": "kermit"}`` (paging is added by the hook);
        - yuuvis: query parameters of ``GET /bpm-engine/api/processes``, passed through,
          ``{"businessKeyLike": "INV-%"}``.
    :param filters: generic ``find_processes`` filters (templated), the same words on every system
        where the API has them, e.g. ``{"definition": "expenseApproval", "states": ["COMPLETED"],
        "started_after": "2024-05-01T00:00:00Z"}``

        - Questetra: ``definition`` (app id), ``states``, ``title``, ``started_after``,
          ``started_before``;
        - Bonita: ``definition`` (name, ``name@version`` or id), ``states``, ``business_key``,
          ``started_by`` (a user id), ``page_size``;
        - Activiti / Flowable / WSO2 EI: ``definition`` (key or ``id:...``), ``business_key``,
          ``states``, ``started_after``, ``started_before``;
        - yuuvis: ``definition``, ``states``, ``business_key``, ``started_after``, ``name_like``
          and every other filter of ``GET processes`` by its Python name, ``page_size``.
    :param layout: relative path template (templated; default
        ``{process_id}_{definition_name}_({title})/{file_name}``). Placeholders, with what each
        system puts in them

        - ``{process_id}``: the instance id;
        - ``{definition}``: Questetra the app id, Bonita the process definition id, Activiti /
          Flowable / yuuvis the definition key;
        - ``{definition_name}``: the app, process or definition name (else ``{definition}``);
        - ``{title}``: the Questetra process title, the yuuvis instance name, elsewhere the
          business key;
        - ``{business_key}``: the business key (Questetra has none: empty);
        - ``{group}``: where the file sits, Questetra the data item's name, Bonita the document's
          name, Activiti the task name of an attachment (``variables`` for a binary variable),
          yuuvis the variable that holds the document id;
        - ``{file_name}``: the file's own name, made safe.

        For example ``"{definition_name}/{business_key}/{group}/{file_name}"``. An unknown
        placeholder fails when the DAG is parsed.
    :param manifest_name: also write the manifest as JSON under this name in the destination
        (templated), e.g. ``"manifest-{{ run_id | replace(':', '-') }}.json"``; written only once
        every file has landed, and removed first by the next run
    :param max_concurrency: downloads (and file listings) at once on this connection (default 16),
        each worker with its own HTTP session; a 429/Retry-After or 503 pauses all of them
    :param file_retries: how many more times a broken download is tried (default 3; resumed with a
        Range request where the server allows) before the file counts as failed; separate from the
        task's own ``retries``, which repeat the whole export
    """

    template_fields: Sequence[str] = (
        "process_instance_ids",
        "query",
        "filters",
        "destination",
        "dest_conn_id",
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
