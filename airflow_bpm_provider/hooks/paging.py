"""A bound on every paged listing, so a server that never stops sending full pages cannot keep a hook busy.

Each dialect pages its own way (offsets, page numbers, ``hasMoreItems``); all of them feed the ids of
each page to one :class:`PageGuard` and raise the hook's "unexpected answer" error with the text it
returns. Only the previous page's ids are kept, so memory stays flat however long the listing is.
"""

from __future__ import annotations

from collections.abc import Iterable

# Far beyond any real export (50,000 processes are 50 pages of 1,000), far below "forever".
DEFAULT_MAX_PAGES = 10_000


class PageGuard:
    """Says what is wrong when a page repeats the one before it or the listing passes ``max_pages``."""

    def __init__(self, *, max_pages: int = DEFAULT_MAX_PAGES) -> None:
        if max_pages < 1:
            raise ValueError(f"max_pages must be >= 1, got {max_pages}")
        self.max_pages = max_pages
        self.pages = 0
        self._previous: frozenset[str] = frozenset()

    def problem(self, ids: Iterable[object]) -> str | None:
        """Record one page by the ids of its items; a message when paging must stop, else None."""
        self.pages += 1
        current = frozenset(str(item) for item in ids)
        if self.pages > self.max_pages:
            return f"more than {self.max_pages} pages: the server does not stop paging"
        if current and current <= self._previous:
            return f"page {self.pages} repeats the items of page {self.pages - 1}: the server ignores paging"
        self._previous = current
        return None
