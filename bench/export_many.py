"""P2: 200 files of 100 KB, 50 ms latency per request: the export vs seed 000's sequential loop.

The anchor is seed 000's Python script, reimplemented faithfully with ``requests``: one process
search (POST /API/OR/ProcessInstance/list with criteria naming the File item, all processes in
one page so the anchor is not penalised by paging), then for every FILE2 item of every process
one POST /API/OR/ProcessInstance/File/download per file, each with ``requests.post`` (a new
connection each, as the script does), written with ``open(..., "wb")``. The project side is
``export_process_files`` at its default settings. Both run against the same emulator (its own
process, 50 ms latency on every request), in alternating rounds; medians with min-max.

Also printed: one small download's time on a reused keep-alive connection vs a fresh one, the
emulator's old 40 ms stall (Nagle on the server socket) that penalised clients that reuse
connections.

Target: the export >= 8x faster than the loop. Exits 1 when missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _export_setup import PROCESS_CRITERIA, EmulatorProcess, questetra_hook, rmtree, summary

TARGET = 8.0


def seed_loop(info: dict, out: str) -> int:
    """Seed 000's script: search, then one download per file, one after another."""
    import requests

    auth = (info["user"], info["password"])
    criteria = PROCESS_CRITERIA.format(model=info["model"])
    search = {"criteria": criteria, "start": 0, "limit": 1000}
    r_search = requests.post(info["url"] + "/API/OR/ProcessInstance/list", data=search, auth=auth)
    r_search.raise_for_status()
    count = 0
    for process in r_search.json()["processInstances"]:
        for data in (process["data"] or {}).values():
            if data["dataType"] != "FILE2" or data["value"] is None:
                continue
            directory = "{}/{}_{}_({})".format(
                out,
                process["processInstanceId"],
                process["processModelInfoName"],
                process["processInstanceTitle"],
            )
            os.makedirs(directory, exist_ok=True)
            for file_info in data["value"]:
                params = {"id": file_info["id"], "processDataInstanceId": file_info["processDataInstanceId"]}
                r_download = requests.post(
                    info["url"] + "/API/OR/ProcessInstance/File/download", data=params, auth=auth
                )
                r_download.raise_for_status()
                with open(directory + "/" + file_info["name"], "wb") as f:
                    f.write(r_download.content)
                count += 1
    return count


def project(info: dict, out: str) -> int:
    from airflow_bpm_provider.transfer.export import export_process_files

    with questetra_hook(info) as hook:
        # The same search as the seed's: criteria naming the File item, so no request per process.
        criteria = PROCESS_CRITERIA.format(model=info["model"])
        manifest = export_process_files(hook, out, query=criteria)
    return len(manifest)


def keepalive_check(info: dict, emulator: EmulatorProcess) -> tuple[float, float]:
    """Median ms of a small download on one reused connection vs a fresh connection each."""
    import requests

    emulator.set_latency(0.0)
    small = info["files"][0]
    url = info["url"] + "/API/OR/ProcessInstance/File/download"
    params = {"id": small["id"], "processDataInstanceId": small["data"]}
    auth = (info["user"], info["password"])
    reused, fresh = [], []
    with requests.Session() as session:
        _ = session.get(url, params=params, auth=auth).content
        for _ in range(20):
            started = time.perf_counter()
            _ = session.get(url, params=params, auth=auth).content
            reused.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            _ = requests.get(url, params=params, auth=auth).content
            fresh.append((time.perf_counter() - started) * 1000)
    return statistics.median(reused), statistics.median(fresh)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--per-process", type=int, default=5)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    layout = [args.per_process] * (args.files // args.per_process)
    if args.files % args.per_process:
        layout.append(args.files % args.per_process)

    seed_times, project_times, ratios = [], [], []
    emulator = EmulatorProcess(layout=layout, file_size=args.size, latency=args.latency)
    with tempfile.TemporaryDirectory(prefix="bench-export-many-") as scratch, emulator as info:
        project(info, os.path.join(scratch, "warm-up"))  # imports and first connection, not timed
        counts = set()
        for round_number in range(args.rounds):
            sides = [("seed", seed_loop), ("project", project)]
            if round_number % 2:
                sides.reverse()
            timings = {}
            for name, run in sides:
                out = os.path.join(scratch, name)
                rmtree(out)
                started = time.perf_counter()
                counts.add((name, run(info, out)))
                timings[name] = time.perf_counter() - started
            seed_times.append(timings["seed"])
            project_times.append(timings["project"])
            ratios.append(timings["seed"] / timings["project"])
            print(
                f"round {round_number + 1}: seed loop {timings['seed']:.2f} s, "
                f"export {timings['project']:.2f} s, {ratios[-1]:.1f}x",
                flush=True,
            )
        reused, fresh = keepalive_check(info, emulator)
    print()
    print(
        f"files per side: {sorted(counts)} ({args.files} bench files of {args.size} B "
        "+ the demo's expense files)"
    )
    print(f"latency per request: {args.latency * 1000:.0f} ms; export at default settings")
    print("| work | seed-000 loop (s) | export (s) | ratio |")
    print("|---|---|---|---|")
    print(
        f"| {args.files} files x {args.size // 1000} KB | {summary(seed_times)} | {summary(project_times)} "
        f"| {summary(ratios)}x |"
    )
    print(
        f"one small download, no latency: reused keep-alive connection {reused:.1f} ms, "
        f"fresh connection {fresh:.1f} ms (a stall would show as ~40 ms on the reused one)"
    )
    met = statistics.median(ratios) >= TARGET
    print(f"target >= {TARGET:.0f}x the seed loop: {'met' if met else 'MISSED'}")
    from _summary import record

    record(
        "export_many",
        f"P2: {args.files} files x {args.size // 1000} KB, {args.latency * 1000:.0f} ms latency, "
        f">= {TARGET:.0f}x the seed-000 loop",
        f"{summary(ratios)}x (loop {summary(seed_times)} s, export {summary(project_times)} s)",
        met,
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
