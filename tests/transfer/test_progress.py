"""Progress lines of a long export: processes matched, files k of N, bytes and rate, every interval."""

from __future__ import annotations

import threading

from airflow_bpm_provider.transfer.progress import Progress
from airflow_bpm_provider.transfer.workers import Pacer


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str, *args: object) -> None:
        self.lines.append(message % args)


def test_a_line_at_most_every_interval_with_counts_bytes_and_rate():
    now = [0.0]
    log = Lines()
    progress = Progress(log, interval=10.0, clock=lambda: now[0])
    progress.matched(3)
    progress.planned(4, 4 * 1024 * 1024)
    for second in range(1, 26):
        now[0] = float(second)
        progress.add_bytes(128 * 1024)
        if second % 8 == 0:
            progress.file_done()
    ticks = [line for line in log.lines if "file " in line and " of " in line]
    assert ticks == [
        "export: 3 process(es) matched, file 1 of 4, 1.2 MiB of 4.0 MiB in 10 s (128.0 KiB/s)",
        "export: 3 process(es) matched, file 2 of 4, 2.5 MiB of 4.0 MiB in 20 s (128.0 KiB/s)",
    ]
    assert log.lines[:2] == [
        "export: 3 process(es) matched",
        "export: 4 file(s) to download, 4.0 MiB announced",
    ]


def test_a_stalled_transfer_still_logs_from_the_waiting_thread():
    now = [0.0]
    log = Lines()
    progress = Progress(log, interval=10.0, clock=lambda: now[0])
    progress.tick()
    now[0] = 12.0
    progress.tick()  # what the export's main thread calls while its workers wait on the network
    assert log.lines == ["export: 0 process(es) matched, file 0 of 0, 0 B in 12 s (0 B/s)"]


def test_one_workers_pause_holds_every_worker():
    now = [100.0]
    slept: list[tuple[str, float]] = []

    def sleep(seconds: float) -> None:
        slept.append((threading.current_thread().name, seconds))
        now[0] += seconds

    pacer = Pacer(sleep, clock=lambda: now[0])
    pacer.hold(5.0)  # a 429 with Retry-After: 5 seen by one worker
    other = threading.Thread(target=pacer.wait, name="other")
    now[0] = 102.0  # two seconds later another worker wants to send
    other.start()
    other.join()
    assert slept[0][1] == 5.0
    assert slept[-1] == ("other", 3.0)
    pacer.wait()  # over: nobody waits any more
    assert len(slept) == 2
