"""OpenLineage datasets for the export and start operators (used only when that provider is installed).

BPM process instances are datasets in a namespace per system and base URL,
``<connection type>://<host><context root>`` (``bonita://bpm.example.com/bonita``), named
``process_instance/<id>``; a process definition is ``process_definition/<name>``. Destinations
follow OpenLineage's naming for object stores (``s3://bucket`` + key prefix) and local files
(``file`` + absolute path). Nothing here is imported unless the OpenLineage listener asks.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit


def bpm_namespace(conn_id: str) -> str:
    from airflow_bpm_provider.hooks.registry import get_bpm_hook

    hook = get_bpm_hook(conn_id)
    url = urlsplit(hook.base_url)
    return f"{hook.conn_type}://{url.netloc}{url.path.rstrip('/')}"


def destination_dataset(destination: str) -> tuple[str, str]:
    """(namespace, name) of an export destination."""
    url = urlsplit(destination)
    if url.scheme in ("", "file"):
        path = url.path if url.scheme else destination
        return "file", os.path.abspath(os.path.expanduser(path))
    return f"{url.scheme}://{url.netloc}", url.path.lstrip("/") or "/"


def _lineage(inputs: Iterable[tuple[str, str]], outputs: Iterable[tuple[str, str]]) -> Any:
    try:  # the provider first: without it, not even common-compat's OpenLineage shims are loaded
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None
    from airflow.providers.common.compat.openlineage.facet import Dataset

    return OperatorLineage(
        inputs=[Dataset(namespace=ns, name=name) for ns, name in inputs],
        outputs=[Dataset(namespace=ns, name=name) for ns, name in outputs],
    )


def export_lineage(conn_id: str, process_ids: Iterable[str], destination: str) -> Any:
    namespace = bpm_namespace(conn_id)
    inputs = [(namespace, f"process_instance/{pid}") for pid in process_ids]
    return _lineage(inputs, [destination_dataset(destination)])


def start_lineage(conn_id: str, process: str, instance_id: str | None) -> Any:
    namespace = bpm_namespace(conn_id)
    outputs = [(namespace, f"process_instance/{instance_id}")] if instance_id else []
    return _lineage([(namespace, f"process_definition/{process}")], outputs)
