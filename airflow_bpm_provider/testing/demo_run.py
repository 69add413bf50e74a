"""``make demo``: the example DAGs with real Airflow against the emulator, then a summary.

Progress is printed while each DAG runs, read from the log ``airflow dags test`` writes: which
DAG runs, for how long, and each task that defers and resumes. The summary counts deferrals from
the same lines Airflow writes for them ("Pausing task as DEFERRED." from the task runner, then
"[DAG TEST] Trigger completed" once the trigger, run in-process by ``dags test``, has fired), so
it says what really happened, not what was configured.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_bpm_provider.testing.dag_runner import DagRunResult, airflow_env, migrate, run_dag
from airflow_bpm_provider.testing.demo_systems import all_connections, all_dags, seed_all

Progress = Callable[[str], None]

_TASK_STARTS = re.compile(r"\[DAG TEST\] starting task_id=(\S+)")
_TASK_ENDS = re.compile(r"\[DAG TEST\] end task task_id=(\S+)")
_DEFERRED = re.compile(r"Pausing task as DEFERRED\..*?\btask_id=([\w.-]+)")
_TRIGGER_FIRED = "[DAG TEST] Trigger completed"
HEARTBEAT = 10.0  # seconds without news after which the progress says the DAG is still running


@dataclass
class Deferrals:
    """One task's deferrals in one run: how often it deferred, how often its trigger resumed it."""

    deferred: int = 0
    resumed: int = 0


@dataclass
class DagLog:
    """Reads a ``dags test`` log line by line: the running task and every task's deferrals."""

    task: str | None = None
    tasks: dict[str, Deferrals] = field(default_factory=dict)
    _waiting: str | None = None  # the deferred task whose trigger has not fired yet

    def feed(self, line: str) -> str | None:
        """Take one line; returns what happened if it is news for the progress, else None."""
        if match := _TASK_STARTS.search(line):
            self.task = match.group(1)
            return None
        if match := _DEFERRED.search(line):
            task = match.group(1)
            self.tasks.setdefault(task, Deferrals()).deferred += 1
            self._waiting = task
            return f"{task}: deferred, its trigger waits"
        if _TRIGGER_FIRED in line and self._waiting is not None:
            task, self._waiting = self._waiting, None
            self.tasks[task].resumed += 1
            return f"{task}: trigger fired, task resumes"
        if match := _TASK_ENDS.search(line):
            self.task = None
        return None

    def deferred(self) -> dict[str, Deferrals]:
        return {task: counts for task, counts in self.tasks.items() if counts.deferred}


def read_deferrals(lines: Iterable[str]) -> dict[str, Deferrals]:
    """Task id → its deferrals, from a whole ``airflow dags test`` log."""
    log = DagLog()
    for line in lines:
        log.feed(line)
    return log.deferred()


@dataclass
class DemoOutcome:
    results: list[DagRunResult]
    manifests: dict[str, list[dict[str, Any]]]  # manifest path (relative to output) → its entries
    deferrals: dict[str, dict[str, Deferrals]]  # DAG id → task id → deferrals


def run_demo(
    output: Path,
    *,
    deferrable: bool = False,
    advance_after: float = 0.0,
    dag_ids: Sequence[str] | None = None,
    large_file_mb: int = 24,
    airflow_home: Path | None = None,
    then: Callable[[Any, dict[str, str]], None] | None = None,
    progress: Progress | None = None,
) -> DemoOutcome:
    """Run the DAGs one after the other; returns their results, manifests and deferrals.

    ``advance_after`` is the emulator's step delay (Engine.advance_after), set after seeding:
    each wait that begins right after a task is completed then is not over at its first check.
    ``then(engine, env)`` runs afterwards while the emulator still serves (the event demo).
    ``progress`` gets a line whenever something happens (default: nothing is printed).
    """
    from airflow_bpm_provider.testing.server import Emulator

    say = progress or (lambda _line: None)
    output = output.resolve()
    output.mkdir(parents=True, exist_ok=True)
    home = (airflow_home or output.parent / "airflow-home").resolve()
    dags = list(dag_ids or all_dags())
    emulator = Emulator.start()
    try:
        summaries = seed_all(emulator.engine, large_file_mb=large_file_mb)
        emulator.engine.advance_after = advance_after
        env = airflow_env(
            home,
            connections=all_connections(emulator.url, summaries),
            extra={
                "AIRFLOW_VAR_BPM_DEMO_OUTPUT": str(output),
                "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "true" if deferrable else "false",
            },
        )
        mode = "deferrable" if deferrable else "poke"
        say(f"Emulator on {emulator.url}; {len(dags)} DAG(s), {mode} waits, steps after {advance_after:g} s")
        started = time.monotonic()
        say("Preparing the Airflow metadata DB (airflow db migrate) ...")
        migrate(env)
        say(f"  done in {time.monotonic() - started:.1f} s")
        results, deferrals = [], {}
        for number, dag_id in enumerate(dags, 1):
            say(f"[{number}/{len(dags)}] {dag_id} running (airflow dags test) ...")
            result, log = _run_watched(dag_id, env, home / "dag-logs", say)
            results.append(result)
            deferrals[dag_id] = log.deferred()
            waits = sum(d.deferred for d in deferrals[dag_id].values())
            news = f", {waits} deferral(s)" if waits else ""
            status = "ok" if result.ok else "FAILED"
            say(f"[{number}/{len(dags)}] {dag_id} {status} in {result.seconds:.1f} s{news}")
        if then is not None:
            then(emulator.engine, env)
    finally:
        emulator.stop()
    return DemoOutcome(results, read_manifests(output), deferrals)


def _run_watched(
    dag_id: str, env: dict[str, str], log_dir: Path, say: Progress
) -> tuple[DagRunResult, DagLog]:
    """``run_dag`` while a thread follows its log and reports deferrals and a heartbeat."""
    log_path = log_dir / f"{dag_id}.log"
    log_path.unlink(missing_ok=True)  # the watcher must not read an earlier run's log
    log, done = DagLog(), threading.Event()
    watcher = threading.Thread(target=_follow, args=(log_path, log, done, say), daemon=True)
    watcher.start()
    try:
        result = run_dag(dag_id, env, log_dir=log_dir)
    finally:
        done.set()
        watcher.join(timeout=10)
    return result, log


def _follow(path: Path, log: DagLog, done: threading.Event, say: Progress) -> None:
    started = last_news = time.monotonic()
    while not path.exists():
        if done.wait(0.2):
            break
    if not path.exists():
        return
    with path.open(errors="replace") as lines:
        pending = ""
        while True:
            finished = done.is_set()  # read once more after the run ended: its last lines
            chunk = lines.read()
            pending += chunk
            *complete, pending = pending.split("\n")
            for line in complete:
                news = log.feed(line)
                if news:
                    last_news = time.monotonic()
                    say(f"      {last_news - started:6.1f} s  {news}")
            if finished:
                return
            now = time.monotonic()
            if now - last_news >= HEARTBEAT:
                last_news = now
                where = f", task {log.task}" if log.task else ""
                say(f"      {now - started:6.1f} s  still running{where}")
            done.wait(0.5)


@contextmanager
def heartbeat(say: Progress, every: float = HEARTBEAT) -> Iterator[None]:
    """Say "still running" with the elapsed time every ``every`` seconds while the block runs."""
    started, done = time.monotonic(), threading.Event()

    def beat() -> None:
        while not done.wait(every):
            say(f"      {time.monotonic() - started:6.1f} s  still running")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=5)


def read_manifests(output: Path) -> dict[str, list[dict[str, Any]]]:
    """Manifest path (relative to ``output``) → its entries."""
    return {
        str(manifest.relative_to(output)): json.loads(manifest.read_text())["files"]
        for manifest in sorted(output.rglob("manifest.json"))
    }


def print_summary(outcome: DemoOutcome, output: Path, *, deferrable: bool = False) -> None:
    results, manifests = outcome.results, outcome.manifests
    print("\nDAG runs (real Airflow, `airflow dags test`, against the emulator):")
    for result in results:
        status = "ok    " if result.ok else "FAILED"
        print(f"  {status} {result.dag_id:<34} {result.seconds:6.1f} s   log: {result.log_path}")
    print_deferrals(outcome.deferrals, deferrable=deferrable)
    print(f"\nFiles exported under {output}:")
    for manifest, files in manifests.items():
        size = sum(f.get("size") or 0 for f in files)
        counts = _count(f["status"] for f in files)
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing to export"
        print(f"  {manifest}: {len(files)} files, {size / 1e6:.1f} MB ({statuses})")
        for f in files[:12]:
            print(f"      {f.get('path') or '(external) ' + str(f.get('file_name'))}")
        if len(files) > 12:
            print(f"      ... and {len(files) - 12} more")
    failed = [r for r in results if not r.ok]
    if failed:
        print("\nFailed DAG logs (last lines):")
        for result in failed:
            print(f"--- {result.dag_id} ---\n{result.tail()}")


def print_deferrals(deferrals: dict[str, dict[str, Deferrals]], *, deferrable: bool) -> None:
    tasks = [(dag, task, counts) for dag, by_task in deferrals.items() for task, counts in by_task.items()]
    if not tasks:
        why = "every wait was over at its first check" if deferrable else "waits poked on the worker"
        print(f"\nDeferred tasks: none ({why})")
        return
    deferred = sum(c.deferred for *_, c in tasks)
    resumed = sum(c.resumed for *_, c in tasks)
    print(
        f"\nDeferred tasks (from Airflow's log): {len(tasks)} task(s) deferred {deferred} time(s), "
        f"their triggers resumed them {resumed} time(s):"
    )
    # `airflow dags test` runs the triggers in its own process; a triggerer process resumes them in
    # the event part below and in tests/test_readme_quickstart.py's triggered runs.
    print("  (triggers run by `airflow dags test` in-process, as a triggerer would run them)")
    for dag, task, counts in tasks:
        lost = counts.deferred - counts.resumed
        note = f", {lost} NOT resumed" if lost else ""
        print(f"  {dag}.{task}: deferred {counts.deferred}, resumed by its trigger {counts.resumed}{note}")


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts
