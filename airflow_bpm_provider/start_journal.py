"""What a start operator's tries know about the start, kept in Airflow's task state store (AIP-103).

Two facts survive a retry or a worker that died: "a start was sent at T" (written before the start
request goes out) and "the start answered with instance X" (written the moment the answer
arrives, before any further call). A hook whose start takes several calls (Questetra: start, then
save the title) reports the id through :func:`started` between those calls; a hook that starts in
one call needs nothing, the operator writes the id as soon as ``start_process`` returns.

Without a task state store (Airflow below 3.3, or a context without one) the journal keeps
nothing and the business key is the only way a retry finds an earlier try's instance.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from airflow_bpm_provider.exceptions import BpmConnectionError, BpmError

#: The key under which the started instance's id is stored (the mixin's ``external_id_key``).
#: Renaming it breaks in-flight retries of deployed tasks.
INSTANCE_ID_KEY = "bpm_process_instance_id"
#: The key of the "start sent" mark: ``{"at": ISO time, "try": try number}``.
START_SENT_KEY = "bpm_start_sent"


@dataclass(frozen=True)
class SentMark:
    at: datetime
    try_number: int


class StartJournal:
    """The task state store of one task instance, as far as starting a process is concerned."""

    def __init__(self, store: Any | None) -> None:
        self._store = store
        self.reported: str | None = None  # the id a hook reported through started(), if any

    @classmethod
    def of(cls, context: Any) -> StartJournal:
        store = context.get("task_state_store") if hasattr(context, "get") else None
        return cls(store)

    @property
    def durable(self) -> bool:
        return self._store is not None

    def instance_id(self) -> str | None:
        if self._store is None:
            return None
        value = self._store.get(INSTANCE_ID_KEY)
        return str(value) if value not in (None, "") else None

    def sent_mark(self) -> SentMark | None:
        if self._store is None:
            return None
        value = self._store.get(START_SENT_KEY)
        if not isinstance(value, dict) or not isinstance(value.get("at"), str):
            return None
        try:
            at = datetime.fromisoformat(value["at"])
        except ValueError:
            return None
        return SentMark(at if at.tzinfo else at.replace(tzinfo=UTC), int(value.get("try") or 0))

    def mark_sent(self, try_number: int, *, now: datetime | None = None) -> datetime:
        """Record that a start is about to go out; returns the time recorded (the worker's clock)."""
        at = now or datetime.now(tz=UTC)
        if self._store is not None:
            self._store.set(START_SENT_KEY, {"at": at.isoformat(), "try": try_number})
        return at

    def record_started(self, instance_id: str) -> None:
        """The start answered: keep its id, then drop the mark it answers (in that order, so a
        crash between the two leaves both, never neither)."""
        if self._store is None:
            return
        self._store.set(INSTANCE_ID_KEY, str(instance_id))
        self._store.delete(START_SENT_KEY)

    def clear_sent(self) -> None:
        """The start provably never acted (refused, or never sent): drop its mark, so the next
        try starts at once instead of looking for (and maybe adopting) another run's instance."""
        if self._store is not None:
            self._store.delete(START_SENT_KEY)

    @contextlib.contextmanager
    def listening(self) -> Iterator[None]:
        """While a hook starts a process: :func:`started` calls land in this journal."""
        token = _current.set(self)
        try:
            yield
        finally:
            _current.reset(token)


_current: contextvars.ContextVar[StartJournal | None] = contextvars.ContextVar(
    "bpm_start_journal", default=None
)


def started(instance_id: str) -> None:
    """Called by a hook the moment a start answer names its instance, before any further call.

    A store that cannot be written must not turn a start that worked into a hook error: it is
    logged, and the operator writes the id again once ``start_process`` returns.
    """
    journal = _current.get()
    if journal is None:
        return
    journal.reported = str(instance_id)
    try:
        journal.record_started(instance_id)
    except Exception as exc:
        logging.getLogger(__name__).warning(
            "Could not keep process instance %s in the task state store yet (%s: %s); "
            "a worker that dies before the start finishes leaves only the business key to find it",
            instance_id,
            type(exc).__name__,
            exc,
        )


#: 4xx answers that do not prove the server refused the request: 408 (the server gave up
#: reading it; a proxy may send it while the backend goes on).
_NOT_A_REFUSAL = frozenset({408})


def start_never_acted(exc: BaseException) -> bool:
    """Whether a failed start provably started nothing: the server refused it with a 4xx answer
    (a 429 too: throttled, not acted on), or the request was never sent."""
    if isinstance(exc, BpmConnectionError):
        return exc.sent is False
    if isinstance(exc, BpmError) and isinstance(exc.status, int):
        return 400 <= exc.status <= 499 and exc.status not in _NOT_A_REFUSAL
    return False
