"""Shared by the export benchmarks: the emulator in a process of its own, seeded for one run.

Not a benchmark itself (the leading underscore keeps ``bench/run.py`` from running it). The
emulator gets its own interpreter so its CPU and memory are not the client's: the client's
memory growth and throughput are measured in the benchmark's process only.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
from collections.abc import Callable
from typing import Any

PROCESS_CRITERIA = (
    "<process-instance-criteria><process-model-info-id>{model}</process-model-info-id>"
    "<data><file><data-definition-number>3</data-definition-number><view/></file></data>"
    "</process-instance-criteria>"
)


def _serve(conn: Any, layout: list[int], file_size: int, latency: float) -> None:
    from airflow_bpm_provider.testing import Emulator

    emulator = Emulator()
    summary = emulator.seed_demo(large_file_mb=0)
    engine = emulator.engine
    expense = engine.definitions[summary["models"]["expense"]]
    # Each bench process has the demo expense model's file item (3); files are generated lazily.
    bench_ids = []
    for number, count in enumerate(layout):
        instance = engine.start(expense, user=summary["user"], title=f"bench {number:03d}")
        bench_ids.append(str(instance.id))
        for index in range(count):
            engine.add_file(instance, 3, f"file-{index:02d}.bin", size=file_size)
    emulator.faults.latency = latency
    emulator.serve_in_background()
    files = [
        {"id": stored.id, "data": item.instance_data_id, "size": stored.size, "name": stored.name}
        for instance in engine.instances.values()
        if instance.definition is expense
        for item, stored in instance.files()
    ]
    conn.send(
        {
            "url": emulator.url,
            "user": summary["user"],
            "password": summary["password"],
            "model": expense.id,
            "files": files,
            "bench_ids": bench_ids,
        }
    )
    while True:
        message = conn.recv()
        if message == "stop":
            break
        if isinstance(message, tuple) and message[0] == "latency":
            emulator.faults.latency = float(message[1])
            conn.send("ok")
    emulator.stop()


class EmulatorProcess:
    """``with EmulatorProcess(layout=[5] * 40, file_size=100_000, latency=0.05) as info: ...``"""

    def __init__(self, *, layout: list[int], file_size: int, latency: float = 0.0) -> None:
        self.args = (layout, file_size, latency)
        self._conn: Any = None
        self._process: Any = None

    def __enter__(self) -> dict[str, Any]:
        context = mp.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, *self.args), daemon=True)
        self._process.start()
        return self._conn.recv()

    def set_latency(self, seconds: float) -> None:
        self._conn.send(("latency", seconds))
        self._conn.recv()

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self._process.join(timeout=20)
        if self._process.is_alive():
            self._process.kill()


def questetra_hook(info: dict[str, Any]) -> Any:
    from airflow.models.connection import Connection

    from airflow_bpm_provider.hooks.questetra import QuestetraHook

    conn = Connection(
        conn_id="bench_questetra",
        conn_type="questetra",
        host=info["url"],
        login=info["user"],
        password=info["password"],
    )
    return QuestetraHook("bench_questetra", connection=conn)


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} (min {min(values):.2f}, max {max(values):.2f})"


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def peak_growth(action: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``action``; return its result and the growth of this process's peak RSS in MiB.

    The kernel's high-water mark is reset first (``clear_refs``), so earlier peaks do not count.
    """
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass
    before = rss_kib("VmRSS")
    result = action()
    return result, max(0, rss_kib("VmHWM") - before) / 1024


def rmtree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)
