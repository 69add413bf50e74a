"""``python -m airflow_bpm_provider.testing serve|demo``: the BPM emulator, or the whole demo.

``serve`` runs the emulator in the foreground; ``demo`` runs the example DAGs with real Airflow
against it and prints what they exported.

Prints the URL and ready-to-paste ``AIRFLOW_CONN_...`` values, then serves until Ctrl+C or
SIGTERM. ``--fail PATH_SUBSTRING:STATUS:TIMES`` injects failures (STATUS ``truncate`` cuts a
download in half) so retries and error handling can be watched live.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from airflow_bpm_provider.testing.demo import DEMO_PASSWORD, DEMO_USER


@dataclass(frozen=True)
class FaultSpec:
    path_contains: str
    status: int | None  # None: truncate the download
    times: int


def parse_fault(text: str) -> FaultSpec:
    """``PATH_SUBSTRING:STATUS[:TIMES]``; STATUS is an HTTP status or ``truncate``."""
    parts = text.rsplit(":", 2)
    if len(parts) == 2:
        parts.append("1")
    if len(parts) != 3 or not parts[0]:
        raise argparse.ArgumentTypeError(f"expected PATH_SUBSTRING:STATUS:TIMES, got {text!r}")
    path, status_text, times_text = parts
    try:
        times = int(times_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"TIMES must be a whole number, got {times_text!r}") from None
    if times < 1:
        raise argparse.ArgumentTypeError(f"TIMES must be at least 1, got {times}")
    if status_text.lower() == "truncate":
        return FaultSpec(path, None, times)
    try:
        status = int(status_text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"STATUS must be an HTTP status or 'truncate', got {status_text!r}"
        ) from None
    if not 100 <= status <= 599:
        raise argparse.ArgumentTypeError(f"STATUS must be between 100 and 599, got {status}")
    return FaultSpec(path, status, times)


def _non_negative(kind: type) -> Any:
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"must not be negative, got {text!r}")
        return value

    return convert


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_bpm_provider.testing", description="An emulator of the BPM APIs."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the emulator until interrupted")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=_non_negative(int), default=8765, help="port (default 8765; 0 = any free)"
    )
    serve.add_argument("--seed", choices=("demo", "none"), default="demo", help="data to start with")
    serve.add_argument(
        "--large-file-mb",
        type=_non_negative(int),
        default=24,
        help="size of the demo's large file (default 24)",
    )
    serve.add_argument(
        "--latency", type=_non_negative(float), default=0.0, help="seconds added to every request"
    )
    serve.add_argument(
        "--fail",
        type=parse_fault,
        action="append",
        default=[],
        metavar="PATH_SUBSTRING:STATUS:TIMES",
        help="answer the next TIMES requests whose path contains PATH_SUBSTRING with STATUS "
        "(or 'truncate' a download); may be repeated",
    )
    serve.add_argument(
        "--retry-after",
        type=_non_negative(int),
        default=None,
        metavar="SECONDS",
        help="send Retry-After: SECONDS with every injected --fail status (e.g. 429 or 503)",
    )
    demo = commands.add_parser("demo", help="run the example DAGs with real Airflow against the emulator")
    demo.add_argument("--output", default=".demo/output", help="folder the DAGs export files into")
    demo.add_argument("--deferrable", action="store_true", help="wait in the triggerer (deferrable mode)")
    demo.add_argument("--dag", action="append", default=None, help="run only this DAG id (repeatable)")
    demo.add_argument(
        "--large-file-mb", type=_non_negative(int), default=24, help="size of the large demo file"
    )
    demo.add_argument(
        "--no-events",
        action="store_true",
        help="skip the event-driven part (it starts a scheduler, dag-processor, triggerer and api-server)",
    )
    return parser


def demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from airflow_bpm_provider.testing.demo_run import print_summary, run_demo

    output = Path(args.output)
    events: dict[str, Any] = {}

    def event_demo(engine: Any, env: dict[str, str]) -> None:
        from airflow_bpm_provider.testing.demo_events import run_events_demo

        events.update(run_events_demo(engine, DEMO_USER, env, output.resolve()))

    results, manifests = run_demo(
        output,
        deferrable=args.deferrable,
        dag_ids=args.dag,
        large_file_mb=args.large_file_mb,
        then=None if args.no_events or args.dag else event_demo,
    )
    print_summary(results, manifests, output.resolve())
    if events:
        from airflow_bpm_provider.testing.demo_events import print_events_summary

        print_events_summary(events)
    return 0 if all(result.ok for result in results) and events.get("ok", True) else 1


def configure(emulator: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Seed the engine and arm the faults; returns the demo summary (user and password at least)."""
    if args.seed == "demo":
        summary = emulator.seed_demo(large_file_mb=args.large_file_mb)
    else:
        emulator.engine.add_user(DEMO_USER, DEMO_PASSWORD)
        summary = {"user": DEMO_USER, "password": DEMO_PASSWORD}
    emulator.faults.latency = args.latency
    for fault in args.fail:
        if fault.status is None:
            emulator.faults.truncate(fault.path_contains, times=fault.times)
        else:
            retry_after = str(args.retry_after) if args.retry_after is not None else None
            emulator.faults.add(fault.path_contains, fault.status, times=fault.times, retry_after=retry_after)
    return summary


def connection_json(base_url: str, summary: dict[str, Any]) -> str:
    return json.dumps(
        {
            "conn_type": "questetra",
            "host": base_url,
            "login": summary["user"],
            "password": summary["password"],
        },
        ensure_ascii=False,
    )


def serve(args: argparse.Namespace) -> int:
    from airflow_bpm_provider.testing.server import Emulator

    emulator = Emulator(host=args.host, port=args.port)
    summary = configure(emulator, args)
    emulator.serve_in_background()
    stop = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stop.set())
    url = emulator.url
    print(f"BPM emulator listening on {url}", flush=True)
    print(f"Questetra API at {url}, DataSpider BPM API at {url}/userweb", flush=True)
    print(f"AIRFLOW_CONN_QUESTETRA_DEMO='{connection_json(url, summary)}'", flush=True)
    print(f"AIRFLOW_CONN_DATASPIDER_DEMO='{connection_json(url + '/userweb', summary)}'", flush=True)
    print("Press Ctrl+C to stop.", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if args.command == "demo":
        return demo(args)
    return 2  # argparse already rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
