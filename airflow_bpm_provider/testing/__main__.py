"""``python -m airflow_bpm_provider.testing serve|demo``: the BPM emulator, or the whole demo.

``serve`` runs the emulator in the foreground with every system's demo data (``--system`` to
choose), prints the URL and one ready-to-paste ``export AIRFLOW_CONN_...='...'`` line per
connection, then serves until Ctrl+C or SIGTERM. ``--fail PATH_SUBSTRING:STATUS:TIMES`` injects
failures (STATUS ``truncate`` cuts a download in half) so retries and error handling can be
watched live; ``--advance-after SECONDS`` makes each process step after a completed task take
that long, so waits (and deferrable sensors) really wait.

``demo`` runs the example DAGs with real Airflow against it, printing progress as it goes, and
then what they exported and which tasks deferred and resumed.
"""

from __future__ import annotations

import argparse
import errno
import json
import shlex
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


def _port(text: str) -> int:
    value = _non_negative(int)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is 0 to 65535, got {text!r}")
    return value


def _system_names(text: str) -> list[str]:
    """``--system a,b``: names of demo systems, checked against demo_systems.SYSTEMS."""
    from airflow_bpm_provider.testing.demo_systems import SYSTEMS, find_systems

    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    try:
        find_systems(names)
    except KeyError as unknown:
        known = ", ".join(name for system in SYSTEMS for name in system.names)
        raise argparse.ArgumentTypeError(f"unknown system {unknown.args[0]} (known: {known})") from None
    if not names:
        raise argparse.ArgumentTypeError("expected a system name")
    return names


def _add_advance_after(parser: argparse.ArgumentParser, default: float, what: str) -> None:
    parser.add_argument(
        "--advance-after",
        type=_non_negative(float),
        default=default,
        metavar="SECONDS",
        help="each process step after a completed task (its next task, or its end) happens SECONDS "
        f"later, as after an automated step, so waits are not over at their first check ({what})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_bpm_provider.testing", description="An emulator of the BPM APIs."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the emulator until interrupted")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8765, help="port (default 8765; 0 = any free)")
    serve.add_argument("--seed", choices=("demo", "none"), default="demo", help="data to start with")
    serve.add_argument(
        "--system",
        type=_system_names,
        action="append",
        default=None,
        metavar="NAME[,NAME]",
        help="seed and print connections only for these systems (repeatable; default every one): "
        "questetra (= dataspider), activiti (= flowable, wso2), yuuvis, bonita",
    )
    _add_advance_after(serve, 0.0, "default 0: at once")
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
    _add_advance_after(demo, 3.0, "default 3")
    demo.add_argument(
        "--no-events",
        action="store_true",
        help="skip the event-driven part (it starts a scheduler, dag-processor, triggerer and api-server)",
    )
    return parser


def demo(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from airflow_bpm_provider.testing.demo_run import heartbeat, print_summary, run_demo

    output = Path(args.output)
    events: dict[str, Any] = {}

    def say(line: str) -> None:
        print(line, flush=True)

    def event_demo(engine: Any, env: dict[str, str]) -> None:
        from airflow_bpm_provider.testing.demo_events import run_events_demo

        started = time.monotonic()
        say("Event-driven part: api-server, dag-processor, scheduler and triggerer, asset watcher ...")
        with heartbeat(say):
            events.update(run_events_demo(engine, DEMO_USER, env, output.resolve()))
        outcome = "ok" if events.get("ok") else "FAILED"
        say(f"Event-driven part {outcome} in {time.monotonic() - started:.1f} s")

    outcome = run_demo(
        output,
        deferrable=args.deferrable,
        advance_after=args.advance_after,
        dag_ids=args.dag,
        large_file_mb=args.large_file_mb,
        then=None if args.no_events or args.dag else event_demo,
        progress=say,
    )
    print_summary(outcome, output.resolve(), deferrable=args.deferrable)
    if events:
        from airflow_bpm_provider.testing.demo_events import print_events_summary

        print_events_summary(events)
    return 0 if all(result.ok for result in outcome.results) and events.get("ok", True) else 1


def chosen_systems(args: argparse.Namespace) -> list[Any]:
    """The demo systems ``--system`` names (every one without it), in a fixed order."""
    from airflow_bpm_provider.testing.demo_systems import SYSTEMS, find_systems

    if not args.system:
        return list(SYSTEMS)
    return find_systems(name for names in args.system for name in names)


def configure(emulator: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Seed the chosen systems and arm the knobs; returns each seeded system's summary by name.

    ``--seed none`` leaves the engine empty but for one user (``{}`` is returned). The step
    delay is set after seeding, so the seeds' own task completions take effect at once.
    """
    from airflow_bpm_provider.testing.demo_systems import seed_all

    if args.seed == "demo":
        summaries = seed_all(emulator.engine, large_file_mb=args.large_file_mb, systems=chosen_systems(args))
    else:
        emulator.engine.add_user(DEMO_USER, DEMO_PASSWORD)
        summaries = {}
    emulator.engine.advance_after = args.advance_after
    emulator.faults.latency = args.latency
    for fault in args.fail:
        if fault.status is None:
            emulator.faults.truncate(fault.path_contains, times=fault.times)
        else:
            retry_after = str(args.retry_after) if args.retry_after is not None else None
            emulator.faults.add(fault.path_contains, fault.status, times=fault.times, retry_after=retry_after)
    return summaries


def connection_line(conn_id: str, fields: dict[str, Any]) -> str:
    """``export AIRFLOW_CONN_<ID>='<JSON>'``, quoted so a shell reads the JSON back unchanged."""
    value = json.dumps(fields, ensure_ascii=False)
    return f"export AIRFLOW_CONN_{conn_id.upper()}={shlex.quote(value)}"


def connection_lines(url: str, summaries: dict[str, Any]) -> list[str]:
    """A comment naming each seeded system, then one line per connection to it."""
    from airflow_bpm_provider.testing.demo_systems import SYSTEMS

    lines = []
    for system in SYSTEMS:
        if system.name not in summaries:
            continue
        lines.append(f"# {system.name}")
        for conn_id, fields in system.connections(url, summaries[system.name]).items():
            lines.append(connection_line(conn_id, fields))
    return lines


def _listen_error(args: argparse.Namespace, error: OSError) -> str:
    where = f"{args.host}:{args.port}"
    if error.errno == errno.EADDRINUSE:
        return (
            f"error: port {args.port} on {args.host} is already in use; "
            "pick another with --port PORT, or --port 0 for any free one"
        )
    return f"error: cannot listen on {where}: {error.strerror or error}"


def serve(args: argparse.Namespace) -> int:
    from airflow_bpm_provider.testing.server import Emulator

    emulator = Emulator(host=args.host, port=args.port)
    try:
        emulator.bind()  # before seeding, so a port in use is reported at once
    except OSError as error:
        print(_listen_error(args, error), file=sys.stderr, flush=True)
        return 2
    summaries = configure(emulator, args)
    emulator.serve_in_background()
    stop = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stop.set())
    url = emulator.url
    print(f"BPM emulator listening on {url}", flush=True)
    if summaries:
        print("Connections (paste into the shell that runs Airflow):", flush=True)
        for line in connection_lines(url, summaries):
            print(line, flush=True)
    else:
        print(f"No demo data (--seed none); user {DEMO_USER}, password {DEMO_PASSWORD}", flush=True)
    if args.advance_after:
        print(
            f"Process steps after a completed task take {args.advance_after:g} s (--advance-after)",
            flush=True,
        )
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
