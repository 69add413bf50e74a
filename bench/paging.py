"""P5 paging: list 50,000 processes at default settings and count the requests it takes.

Every system's emulator is seeded directly through its engine (no HTTP), then its hook lists
every process with ``find_processes()`` at the connection's default page size: the largest page
the vendor's API allows (Questetra 1000, documented; Bonita, Activiti/Flowable and yuuvis
document no maximum, their hooks default to 1000). Printed per system: processes listed, requests
sent, and for Questetra the listing's peak RSS growth after 10,000 and after 50,000 processes (flat:
the listing is a generator holding one page). Exits non-zero when Questetra needs more than 50
requests, the listing misses a process, or memory grows with the listing.

Each emulator runs in its own process (seeded there, straight into its engine), so the client's
RSS and CPU are the hook's alone; the emulator's CPU is printed beside them. Wall-clock seconds
depend on the machine's load; the request counts and the client's CPU do not.

Anchors, side by side with each count: ceil(N / page size), the fewest requests the page size
allows, and for Questetra the requests of seed 000's own loop (``limit=10``).
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from airflow.models.connection import Connection

from airflow_bpm_provider.hooks.registry import hook_class
from airflow_bpm_provider.testing import Emulator

N = int(os.environ.get("BENCH_PAGING_N", 50_000))
SMALL = 10_000
QUESTETRA_TARGET = 50  # requests for 50,000 processes (issue 10, P5)
SEED_LIMIT = 10  # the page size of seed 000's export loop, the anchor
# RSS the listing may still gain after its first 10,000 processes: 40,000 more rows kept would be
# well over 50 MiB of ProcessInstance and raw dicts; a flat listing adds next to nothing.
FLAT_LIMIT = 8 * 2**20


def _hook(fields: dict[str, Any]) -> Any:
    """A hook at default settings (only the demo connection's fields), fresh: no state carried over."""
    fields = dict(fields)
    extra = fields.pop("extra", None)
    connection = Connection(conn_id="bench", extra=extra if extra is None else dict(extra), **fields)
    return hook_class(fields["conn_type"], conn_id="bench")("bench", connection=connection)


def _questetra(emu: Emulator) -> tuple[dict[str, Any], str]:
    summary = emu.seed_demo(large_file_mb=0)
    fields = {
        "conn_type": "questetra",
        "host": emu.url,
        "login": summary["user"],
        "password": summary["password"],
    }
    return fields, summary["user"]


def _bonita(emu: Emulator) -> tuple[dict[str, Any], str]:
    from airflow_bpm_provider.testing.demo_bonita import bonita_demo_connection, seed_bonita_demo

    seed_bonita_demo(emu.engine)
    fields = bonita_demo_connection(emu.url)
    return fields, fields["login"]


def _activiti(emu: Emulator) -> tuple[dict[str, Any], str]:
    from airflow_bpm_provider.testing.demo_activiti import activiti_demo_connections, seed_activiti_demo

    seed_activiti_demo(emu.engine)
    fields = next(iter(activiti_demo_connections(emu.url).values()))
    return fields, fields["login"]


def _yuuvis(emu: Emulator) -> tuple[dict[str, Any], str]:
    from airflow_bpm_provider.testing.demo_yuuvis import seed_yuuvis_demo, yuuvis_demo_connection

    seed_yuuvis_demo(emu.engine)
    fields = yuuvis_demo_connection(emu.url)
    return fields, fields["login"]


SYSTEMS: dict[str, Callable[[Emulator], tuple[dict[str, Any], str]]] = {
    "Questetra": _questetra,
    "Bonita": _bonita,
    "Activiti": _activiti,
    "yuuvis": _yuuvis,
}


def _seed(emu: Emulator, user: str, count: int) -> None:
    """``count`` more running processes of the demo's first enabled definition, started by ``user``."""
    engine = emu.engine
    definition = min((d for d in engine.definitions.values() if d.enabled), key=lambda d: d.id)
    for i in range(count):
        engine.start(definition, user=user, title=f"bench {i}", business_key=f"bench-{i}")


def serve(name: str, count: int) -> None:
    """The server side, in its own process: its allocations and CPU stay out of the measurement."""
    emu = Emulator.start()
    try:
        fields, user = SYSTEMS[name](emu)
        before = len(emu.engine.instances)
        _seed(emu, user, count - before)  # straight into the engine, not through HTTP: N in all
        total = len(emu.engine.instances)
        print(json.dumps({"fields": fields, "expected": total, "seeded": total - before}), flush=True)
        sys.stdin.read()  # serve until the measuring process closes our stdin
    finally:
        emu.stop()


def _max_rss() -> int:
    """This process's resident high-water mark in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _listing(hook: Any) -> dict[str, Any]:
    """One full find_processes() at default settings: rows, requests, and RSS growth after the
    first SMALL rows and at the end (a flat listing grows no further after its first page)."""
    sent = 0
    send = hook._send

    def counting(request: Any) -> Any:
        nonlocal sent
        if request.authenticate:  # a login is no page
            sent += 1
        return send(request)

    hook._send = counting
    base = _max_rss()
    listed, at_small = 0, 0
    started, cpu = time.monotonic(), time.process_time()
    for _ in hook.find_processes():  # lazily: nothing is kept
        listed += 1
        if listed == SMALL:
            at_small = _max_rss() - base
    return {
        "listed": listed,
        "requests": sent,
        "growth_small": at_small,
        "growth": _max_rss() - base,
        "seconds": time.monotonic() - started,
        "cpu": time.process_time() - cpu,
        "page_size": hook.page_size,
    }


def start_server(name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--serve", name, str(N)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def run(name: str, server: subprocess.Popen[str]) -> dict[str, Any]:
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line:
            raise RuntimeError(f"the {name} emulator did not start")
        seeded = json.loads(line)
        row = {"system": name, "expected": seeded["expected"], "seeded": seeded["seeded"]}
        row.update(_listing(_hook(seeded["fields"])))
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=60)
    # The emulator's CPU (start-up, seeding, serving), once its process has been waited for.
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    row["server_cpu"] = sum(getattr(cpu_after, f) - getattr(cpu_before, f) for f in ("ru_utime", "ru_stime"))
    return row


def main() -> int:
    # Every emulator starts and seeds at once, each in its own process; the listings then run one
    # after another, so no listing shares the CPU with another system's.
    servers = {name: start_server(name) for name in SYSTEMS}
    rows = []
    for name, server in servers.items():
        began = time.monotonic()
        rows.append(run(name, server))
        print(f"  {name}: seeded and listed in {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
    print(
        f"{'system':<10} {'listed':>8} {'of':>8} {'requests':>9} {'anchor ceil(N/page)':>20} {'seconds':>8} "
        f"{'client CPU s':>12} {'emulator CPU s':>15}"
    )
    failed = False
    for row in rows:
        anchor = math.ceil(row["expected"] / row["page_size"])
        print(
            f"{row['system']:<10} {row['listed']:>8} {row['expected']:>8} {row['requests']:>9} "
            f"{anchor:>20} {row['seconds']:>8.1f} {row['cpu']:>12.1f} {row['server_cpu']:>15.1f}"
        )
        if row["listed"] < row["seeded"]:
            print(f"FAIL {row['system']}: listed {row['listed']}, seeded {row['seeded']}")
            failed = True
    for row in rows:
        print(
            f"{row['system']}: {row['requests'] * 50_000 / row['expected']:.0f} requests per 50,000 processes"
        )
    q = rows[0]
    seed_loop = math.ceil(q["expected"] / SEED_LIMIT)
    print(
        f"Questetra: {q['requests']} requests vs {seed_loop:,} for seed 000's loop (limit={SEED_LIMIT}): "
        f"{seed_loop / max(q['requests'], 1):.0f}x fewer"
    )
    later = q["growth"] - q["growth_small"]
    print(
        f"Questetra listing, peak RSS growth: {q['growth_small'] / 2**20:.1f} MiB after the first "
        f"{SMALL:,} processes, {q['growth'] / 2**20:.1f} MiB after all {q['listed']:,} "
        f"(+{later / 2**20:.1f} MiB for the last {q['listed'] - SMALL:,}: flat when ~0)"
    )
    if q["requests"] * 50_000 / q["expected"] > QUESTETRA_TARGET:
        print(
            f"FAIL Questetra: {q['requests']} requests for {q['expected']} processes, "
            f"more than {QUESTETRA_TARGET} per 50,000"
        )
        failed = True
    if later > FLAT_LIMIT:
        print("FAIL Questetra: the listing's memory grows with the number of processes")
        failed = True
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _summary import record

    record(
        "paging",
        f"P5: Questetra 50,000 processes in <= {QUESTETRA_TARGET} requests, flat memory, none missed",
        f"{q['requests'] * 50_000 / q['expected']:.0f} requests per 50,000; +{later / 2**20:.1f} MiB "
        f"after the first {SMALL:,}; "
        + ", ".join(f"{r['system']} {r['requests'] * 50_000 / r['expected']:.0f}" for r in rows[1:]),
        not failed,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(main())
