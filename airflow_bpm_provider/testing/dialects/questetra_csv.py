"""CSV variants of the Questetra search APIs (``listCsv`` UTF-8, ``listCsvUtf16`` tab-separated UTF-16).

The process columns are the ones Questetra's process-download tutorial shows; a File item
becomes two columns, ``<name>_FileName`` and ``<name>_ContentType``. The task columns are the
emulator's own choice (the vendor's are not documented).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from airflow_bpm_provider.testing.dialects.questetra_entries import (
    PROCESS_STATES,
    ZONE,
    QuestetraState,
    active_node_name,
    aware,
    display_text,
    stored_files,
    workitem_state,
)
from airflow_bpm_provider.testing.engine import Instance, TaskInstance

PROCESS_COLUMNS = [
    "App ID",
    "App Name",
    "Category",
    "Version",
    "Process ID",
    "Status",
    "Start User ID",
    "Start User",
    "Start Organization ID",
    "Start Organization",
    "Title",
    "Start Time",
    "End Time",
    "Token Current Position",
]
WORKITEM_COLUMNS = [
    "Process ID",
    "App Name",
    "Title",
    "Task",
    "Task Status",
    "Assigned User ID",
    "Assigned User",
    "Offer Time",
    "End Time",
]
STATUS_TEXT = {"STARTED": "Running", "ENDED": "Completed", "FAILED": "Failed"}


def _time(value: datetime | None) -> str | None:
    return aware(value).astimezone(ZONE).strftime("%Y-%m-%d %H:%M:%S") if value else None


def _data_columns(
    instances: list[Instance], numbers: list[int]
) -> tuple[list[str], Callable[[Instance], list[Any]]]:
    layout: list[tuple[int, bool]] = []  # (number, is a file item)
    header: list[str] = []
    for number in numbers:
        item = next((i.data[number] for i in instances if number in i.data), None)
        name = item.definition.name if item else f"data[{number}]"
        is_file = bool(item and item.definition.type == "FILE")
        layout.append((number, is_file))
        header.extend([f"{name}_FileName", f"{name}_ContentType"] if is_file else [name])

    def cells(instance: Instance) -> list[Any]:
        row: list[Any] = []
        for number, is_file in layout:
            item = instance.data.get(number)
            if is_file:
                files = stored_files(item) if item else []
                row.append("\n".join(f.name for f in files) if files else None)
                row.append("\n".join(f.content_type for f in files) if files else None)
            else:
                row.append(display_text(item) if item else None)
        return row

    return header, cells


def process_table(
    state: QuestetraState, instances: list[Instance], numbers: list[int] | None
) -> list[list[Any]]:
    extra, cells = _data_columns(instances, numbers or [])
    rows: list[list[Any]] = [[*PROCESS_COLUMNS, *extra]]
    for instance in instances:
        definition = instance.definition
        rows.append(
            [
                state.info_id(definition),
                definition.name,
                definition.category,
                definition.version,
                instance.id,
                STATUS_TEXT[PROCESS_STATES[instance.state]],
                state.quser_id(instance.started_by),
                state.quser_name(instance.started_by),
                None,
                None,
                instance.title,
                _time(instance.started_at),
                _time(instance.ended_at),
                active_node_name(instance),
                *cells(instance),
            ]
        )
    return rows


def workitem_table(
    state: QuestetraState, tasks: list[TaskInstance], numbers: list[int] | None
) -> list[list[Any]]:
    extra, cells = _data_columns([t.instance for t in tasks], numbers or [])
    rows: list[list[Any]] = [[*WORKITEM_COLUMNS, *extra]]
    for task in tasks:
        rows.append(
            [
                task.instance.id,
                task.instance.definition.name,
                task.instance.title,
                task.definition.name,
                workitem_state(state, task),
                state.quser_id(task.assignee) if task.assignee else None,
                state.quser_name(task.assignee) if task.assignee else None,
                _time(task.created_at),
                _time(task.ended_at),
                *cells(task.instance),
            ]
        )
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return '"' + str(value).replace('"', '""') + '"'


def render(rows: list[list[Any]], *, utf16: bool) -> bytes:
    """UTF-8 comma-separated, or (Excel's flavour) UTF-16 little-endian with BOM, tab-separated."""
    separator = "\t" if utf16 else ","
    text = "".join(separator.join(_cell(value) for value in row) + "\r\n" for row in rows)
    return b"\xff\xfe" + text.encode("utf-16-le") if utf16 else text.encode("utf-8")
