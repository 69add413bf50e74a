"""Knobs that make the emulator slow or failing, to exercise retries and error handling."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class Fault:
    path_contains: str
    status: int
    remaining: int
    retry_after: str | None = None
    method: str | None = None
    body: str = "injected failure"
    truncate_body: bool = False  # announce the full length, send half, then close


class FaultPlan:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self.latency = 0.0
        self.ranges = True  # honour ``Range: bytes=N-`` on downloads (206); off: always the whole file
        self.served_ranges: list[tuple[str, int]] = []  # (path, first byte) of every 206 sent

    def add(
        self,
        path_contains: str,
        status: int,
        *,
        times: int = 1,
        retry_after: str | None = None,
        method: str | None = None,
        body: str = "injected failure",
    ) -> None:
        with self._lock:
            self._faults.append(Fault(path_contains, status, times, retry_after, method, body))

    def truncate(self, path_contains: str, *, times: int = 1) -> None:
        """The next matching download announces its full size but stops halfway."""
        with self._lock:
            self._faults.append(Fault(path_contains, 200, times, truncate_body=True))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self.latency = 0.0
            self.ranges = True
            self.served_ranges.clear()

    def take(self, method: str, path: str, *, truncation: bool = False) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.truncate_body != truncation:
                    continue
                if fault.path_contains in path and (fault.method is None or fault.method == method):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None
