"""Shared rules of the hooks' batched process reads (``_poll_processes_flow``), used by triggers.

A batched read gets the ids of the processes many triggers wait on, and the process definitions
they were seen on (most waited first), and returns those it could read in a few requests. It may
leave any out: the caller reads those one by one, so the vendor's own "not found" still reaches
the one wait concerned.

Where the API reads by id (Activiti/Flowable), ids go in chunks. Where it can only list (Questetra,
Bonita, yuuvis), the running instances of each definition are listed, then its ended ones, the
latest first (Questetra by end time, Bonita's archive, yuuvis's completed processes newest first):
processes that ended since the last poll are there, so a tick in which many waits end costs a
few requests, not one per wait. A waited process in neither list (gone, or on another
definition) is read on its own. All listings of one batch together never cost more requests
than reading the processes one by one would.

Task waits work the same way (``_poll_tasks_flow``): no API filters tasks by a list of process
ids, so the open tasks of each waited definition are listed; a process whose definition was
listed to the end gets its tasks, possibly none.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from airflow_bpm_provider.models import Task

T = TypeVar("T")

# Ids per query: far below the 1,000 items of a SQL IN list some databases allow (Oracle).
IDS_PER_QUERY = 500
# Items per page of a listing of running instances (Questetra's documented maximum is 1,000).
LISTING_PAGE = 1000


def chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def worth_another_page(pages_read: int, still_missing: int) -> bool:
    """True while listing one more page costs less than reading the missing ones one by one."""
    return still_missing > 0 and pages_read < still_missing


def by_definition(wanted: Mapping[str, str]) -> dict[str, set[str]]:
    """Waited process ids (id -> the definition last seen) grouped by definition, most waited first."""
    groups: dict[str, set[str]] = {}
    for pid, definition in wanted.items():
        groups.setdefault(definition, set()).add(pid)
    return dict(sorted(groups.items(), key=lambda item: -len(item[1])))


def tasks_of(ids: Iterable[str], tasks: Iterable[Task], name: str | None) -> dict[str, list[Task]]:
    """The open tasks (named ``name``, if given) of each of ``ids``: [] for one that has none."""
    found: dict[str, list[Task]] = {pid: [] for pid in ids}
    for task in tasks:
        if task.process_instance_id in found and (name is None or task.name == name):
            found[task.process_instance_id].append(task)
    return found
