"""When to send a request again, and how long to wait first."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from airflow_bpm_provider.hooks.http import Reply, Request, TransportError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A 500 can come after the server acted (or from a bug that repeats), so only a request that is
# safe to repeat is sent again after one; 429 is refused before processing and always retried.


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter; ``Retry-After`` wins when the server sends it.

    Only requests that are safe to repeat are re-sent after an unclear failure. A request that
    may start something is re-sent only when the server cannot have acted on it: the connection
    was refused, or the answer was 429 (rejected before processing).
    """

    max_attempts: int = 5
    initial_delay: float = 1.0
    max_delay: float = 30.0
    max_retry_after: float = 300.0

    def delay_after_error(self, request: Request, error: TransportError, attempt: int) -> float | None:
        if attempt >= self.max_attempts or not error.retryable:
            return None
        if error.sent and not request.safe_to_repeat:
            return None
        return self._backoff(attempt)

    def delay_after_reply(self, request: Request, reply: Reply, attempt: int) -> float | None:
        if reply.status not in RETRY_STATUSES or attempt >= self.max_attempts:
            return None
        if reply.status != 429 and not request.safe_to_repeat:
            return None
        # An unreadable Retry-After (garbage, negative) is ignored for the normal backoff; the hook
        # logs that it did so.
        retry_after = parse_retry_after(reply.headers.get("retry-after"))
        if retry_after is not None:
            # A wait longer than this would hold a worker slot idle: fail now, naming the time
            # (the error carries the header), and let Airflow's task retry come back later.
            return retry_after if retry_after <= self.max_retry_after else None
        return self._backoff(attempt)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.initial_delay * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    None when it is neither (negative numbers, garbage); a date in the past means "now".
    """
    if not value:
        return None
    value = value.strip()
    if len(value) > 64:
        return None
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        # Bonita's 429 documents Retry-After as an OpenAPI date-time, i.e. ISO 8601, not an HTTP date.
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except (ValueError, OverflowError):
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
