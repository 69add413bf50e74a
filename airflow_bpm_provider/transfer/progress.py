"""Progress of a long export in the task log: processes matched, files k of N, bytes and rate."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

PROGRESS_INTERVAL = 10.0


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"  # pragma: no cover - the loop always returns


class Progress:
    """Counts from every worker thread; logs at most every ``interval`` seconds, and at the end."""

    def __init__(self, logger: Any, *, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self.started = clock()
        self._last_log = self.started
        self.processes = 0
        self.files_total = 0
        self.bytes_total = 0
        self.files_done = 0
        self.bytes_done = 0

    def matched(self, processes: int) -> None:
        self.processes = processes
        self.logger.info("export: %d process(es) matched", processes)

    def planned(self, files: int, announced_bytes: int) -> None:
        self.files_total, self.bytes_total = files, announced_bytes
        size = f", {human_bytes(announced_bytes)} announced" if announced_bytes else ""
        self.logger.info("export: %d file(s) to download%s", files, size)

    def add_bytes(self, count: int) -> None:
        with self._lock:
            self.bytes_done += count
        self.tick()

    def file_done(self) -> None:
        with self._lock:
            self.files_done += 1
        self.tick()

    def tick(self) -> None:
        """Log a line when ``interval`` has passed since the last one (called often, logs rarely)."""
        now = self.clock()
        with self._lock:
            if now - self._last_log < self.interval:
                return
            self._last_log = now
        self.logger.info("export: %s", self.line(now))

    def line(self, now: float | None = None) -> str:
        now = self.clock() if now is None else now
        elapsed = max(now - self.started, 1e-9)
        rate = self.bytes_done / elapsed
        total = f" of {human_bytes(self.bytes_total)}" if self.bytes_total else ""
        return (
            f"{self.processes} process(es) matched, file {self.files_done} of {self.files_total}, "
            f"{human_bytes(self.bytes_done)}{total} in {elapsed:.0f} s ({human_bytes(rate)}/s)"
        )

    def finished(self, *, failed: int) -> None:
        outcome = f", {failed} failure(s)" if failed else ""
        self.logger.info("export finished: %s%s", self.line(), outcome)
