"""1,000 processes waited on at once: one triggerer-style event loop versus sensor pokes.

Three processes, so no side measures another's work:

- the emulator (uvicorn + engine) serves the Questetra API and answers control messages from
  the coordinator over a pipe (create processes, count requests, complete all processes);
- the coordinator (this script) completes every process once the server has answered
  ``ROUNDS_BEFORE_DONE`` polls per process, and prints the table;
- one runner per mode, a fresh process each, so its peak memory is its own:
  * deferrable: ``BpmProcessStateTrigger.run()`` for all processes, concurrently, in one asyncio
    loop, as a triggerer runs them;
  * poke: ``BpmProcessStateSensor.poke()`` for every process in turn, then a pause of one
    interval, as each sensor's worker slot would do (each poke builds its own hook, reads the
    connection and opens its own HTTP session, like the real sensor).

What it does NOT measure: in Airflow, poke mode holds one worker slot per waiting sensor (a
supervisor and a task process each, typically 100+ MB of RSS and a pool slot) for the whole
wait; here all pokes share one process. The poke figures are therefore a lower bound on what
poke mode really costs; the deferrable figures are what a triggerer really pays.

Memory is the growth of the runner's peak RSS during the wait over its RSS right before it. The
peak is the wait's own: the kernel's high-water mark (``VmHWM``) is reset just before the wait by
writing 5 to ``/proc/self/clear_refs``, so imports and warm-up before it do not count. Where that
is not allowed, the lifetime peak (``ru_maxrss``) is used and the table says so (it can then
include a warm-up peak). RSS includes what C code allocates (TLS contexts, socket buffers, one
HTTP client per trigger), which ``tracemalloc`` cannot see; tracemalloc would also slow the
Python code and distort the CPU figures measured in the same run.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import resource
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

PROCESSES = int(os.environ.get("BENCH_PROCESSES", "1000"))
INTERVAL = float(os.environ.get("BENCH_INTERVAL", "1.0"))  # seconds between polls of one process
ROUNDS_BEFORE_DONE = int(os.environ.get("BENCH_ROUNDS", "3"))  # polls per process before all complete
CONN_ID = "bench_bpm"
USER = "bench@example.com"
PASSWORD = "bench-password-2718"


# ---- the emulator process -------------------------------------------------------------------


def serve(control: Connection) -> None:
    from airflow_bpm_provider.testing import Emulator
    from airflow_bpm_provider.testing.engine import TaskDef

    raise_fd_limit()
    emulator = Emulator.start()
    engine = emulator.engine
    engine.add_user(USER, PASSWORD)
    definition = engine.deploy("bench-wait", "Bench wait", tasks=[TaskDef("Review", 1, "review")])
    control.send(emulator.url)
    while True:
        command, argument = control.recv()
        if command == "start":
            control.send([str(engine.start(definition, user=USER).id) for _ in range(argument)])
        elif command == "requests":
            control.send(len(engine.requests))
        elif command == "complete":
            for task in engine.open_tasks():
                engine.complete(task, user=USER)
            control.send(None)
        elif command == "stop":
            emulator.stop()
            control.send(None)
            return


# ---- the measuring processes ----------------------------------------------------------------


def raise_fd_limit() -> None:
    # One HTTP connection per waiting trigger: 1,000 sockets need more than a default of 1,024 fds.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def status_kib(field: str) -> int:
    """A memory figure of this process from ``/proc/self/status`` (``VmRSS``, ``VmHWM``), in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> bool:
    """Start a new peak-RSS measurement (Linux ``clear_refs`` 5); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def peak_rss_kib(reset: bool) -> int:
    """The peak RSS since :func:`reset_peak_rss` succeeded, else over the process's whole life."""
    if reset:
        return status_kib("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def wait_deferrable(ids: list[str]) -> tuple[list[str], int]:
    from airflow_bpm_provider.triggers.process import BpmProcessStateTrigger

    polls = 0

    class CountingTrigger(BpmProcessStateTrigger):
        async def _poll(self, hook: Any) -> Any:
            nonlocal polls
            polls += 1
            return await super()._poll(hook)

    async def one(trigger: BpmProcessStateTrigger) -> str:
        events = trigger.run()
        try:
            event = await anext(events)
        finally:
            await events.aclose()
        return event.payload["status"]

    triggers = [CountingTrigger(CONN_ID, pid, poll_interval=INTERVAL) for pid in ids]
    return await asyncio.gather(*(one(trigger) for trigger in triggers)), polls


def wait_poking(ids: list[str]) -> tuple[list[str], int]:
    from airflow_bpm_provider.sensors.process import BpmProcessStateSensor

    sensors = [
        BpmProcessStateSensor(
            task_id=f"wait_{pid}", bpm_conn_id=CONN_ID, process_instance_id=pid, poke_interval=INTERVAL
        )
        for pid in ids
    ]
    statuses, pending, polls = [], sensors, 0
    while pending:
        waiting = []
        for sensor in pending:
            polls += 1
            if sensor.poke({}):
                statuses.append("success")
            else:
                waiting.append(sensor)
        pending = waiting
        if pending:
            time.sleep(INTERVAL)
    return statuses, polls


def measure(mode: str, url: str, ids: list[str], control: Connection) -> None:
    import logging

    raise_fd_limit()
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
        {"conn_type": "questetra", "host": url, "login": USER, "password": PASSWORD}
    )
    # Each poke logs a line, as in a worker; the logs are not what is compared here.
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    logging.disable(logging.INFO)
    # Warm up what either mode pays once per process, not per wait: imports, the TLS context.
    from airflow_bpm_provider.hooks.http import AsyncTransport, SyncTransport
    from airflow_bpm_provider.hooks.questetra import QuestetraHook  # noqa: F401
    from airflow_bpm_provider.sensors.process import BpmProcessStateSensor  # noqa: F401
    from airflow_bpm_provider.triggers.process import BpmProcessStateTrigger  # noqa: F401

    AsyncTransport(url, verify=True, timeout=(10, 60))
    SyncTransport(url, verify=True, timeout=(10, 60)).close()

    control.send("ready")
    control.recv()
    reset = reset_peak_rss()
    rss_before, cpu_before, started = status_kib("VmRSS"), time.process_time(), time.monotonic()
    statuses, polls = asyncio.run(wait_deferrable(ids)) if mode == "deferrable" else wait_poking(ids)
    wall = time.monotonic() - started
    cpu = time.process_time() - cpu_before
    growth = max(peak_rss_kib(reset) - rss_before, 0)
    control.send(
        {
            "cpu": cpu,
            "wall": wall,
            "rss_growth_kib": growth,
            "peak_of_wait": reset,
            "statuses": statuses,
            "polls": polls,
        }
    )


# ---- the coordinator ------------------------------------------------------------------------


@dataclass
class Result:
    mode: str
    cpu: float
    wall: float
    rss_growth_mib: float
    peak_of_wait: bool  # False: the peak is the lifetime ru_maxrss, which may predate the wait
    requests: int
    polls: int

    @property
    def requests_per_poll(self) -> float:
        return self.requests / self.polls

    @property
    def polls_per_process(self) -> float:
        return self.polls / PROCESSES


def run_mode(mode: str, server: Connection, url: str, ctx: Any) -> Result:
    server.send(("start", PROCESSES))
    ids = server.recv()
    runner_end, here = ctx.Pipe()
    runner = ctx.Process(target=measure, args=(mode, url, ids, runner_end), name=f"bench-{mode}")
    runner.start()
    if here.recv() != "ready":
        raise RuntimeError(f"the {mode} runner did not start")
    server.send(("requests", None))
    first = server.recv()
    here.send("go")
    completed_at = None
    # Complete every process once the server answered ROUNDS_BEFORE_DONE polls per process.
    while not here.poll(0.02):
        server.send(("requests", None))
        seen = server.recv() - first
        if completed_at is None and seen >= ROUNDS_BEFORE_DONE * PROCESSES:
            server.send(("complete", None))
            server.recv()
            completed_at = seen
    outcome = here.recv()
    runner.join()
    server.send(("requests", None))
    requests = server.recv() - first
    statuses = outcome["statuses"]
    if len(statuses) != PROCESSES or set(statuses) != {"success"}:
        raise RuntimeError(f"{mode}: not every wait succeeded: {sorted(set(statuses))}, {len(statuses)}")
    return Result(
        mode=mode,
        cpu=outcome["cpu"],
        wall=outcome["wall"],
        rss_growth_mib=outcome["rss_growth_kib"] / 1024,
        peak_of_wait=outcome["peak_of_wait"],
        requests=requests,
        polls=outcome["polls"],
    )


def print_table(results: list[Result]) -> None:
    deferrable, poke = results
    print(
        f"\n{PROCESSES} processes, poll interval {INTERVAL} s, all complete after "
        f"{ROUNDS_BEFORE_DONE} polls each; Questetra API of the emulator in its own process; "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}\n"
    )
    header = f"{'':34}{'deferrable':>14}{'poke':>14}{'poke / deferrable':>20}"
    print(header)
    print("-" * len(header))
    rows = [
        ("CPU seconds (measuring process)", deferrable.cpu, poke.cpu, "{:.2f}"),
        ("peak RSS growth (MiB)", deferrable.rss_growth_mib, poke.rss_growth_mib, "{:.1f}"),
        ("HTTP requests", deferrable.requests, poke.requests, "{:.0f}"),
        ("requests per poll", deferrable.requests_per_poll, poke.requests_per_poll, "{:.2f}"),
        ("polls per process", deferrable.polls_per_process, poke.polls_per_process, "{:.2f}"),
        ("CPU ms per poll", *(1000 * r.cpu / r.polls for r in results), "{:.3f}"),
        ("wall seconds", deferrable.wall, poke.wall, "{:.1f}"),
    ]
    for label, left, right, fmt in rows:
        ratio = f"{right / left:.2f}x" if left else "n/a"
        print(f"{label:34}{fmt.format(left):>14}{fmt.format(right):>14}{ratio:>20}")
    if all(r.peak_of_wait for r in results):
        memory_note = (
            "Peak RSS growth: the wait's own peak (VmHWM, reset just before the wait through "
            "/proc/self/clear_refs) minus the RSS right before the wait."
        )
    else:
        memory_note = (
            "Peak RSS growth: resetting the peak through /proc/self/clear_refs was not allowed, so "
            "the lifetime peak (ru_maxrss) minus the RSS right before the wait was used; a peak "
            "during imports or warm-up may hide part of the wait's growth."
        )
    print(f"\n{memory_note}")
    per_wait_kib = deferrable.rss_growth_mib * 1024 / PROCESSES
    print(
        f"\nDeferrable: about {per_wait_kib:.0f} KiB of triggerer memory per waiting process. Poke mode "
        f"in Airflow also holds one worker slot per sensor for the whole wait (here {PROCESSES} slots, "
        "each a supervisor and a task process); that cost is not in the poke column, which runs all "
        "pokes in one process and so is a lower bound."
    )


def main() -> int:
    ctx = mp.get_context("spawn")  # fresh interpreters: no state or memory inherited from here
    server, server_end = ctx.Pipe()
    emulator = ctx.Process(target=serve, args=(server_end,), name="bench-emulator", daemon=True)
    emulator.start()
    url = server.recv()
    try:
        results = [run_mode(mode, server, url, ctx) for mode in ("deferrable", "poke")]
    finally:
        server.send(("stop", None))
        server.recv()
        emulator.join(10)
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
