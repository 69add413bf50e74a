"""Fault campaign (``make chaos``): the start and export paths through a flaky network, every connection type.

A :class:`~airflow_bpm_provider.testing.fault_proxy.FaultProxy` sits between the hooks and the
emulator and faults ``--rate`` of the requests (resets and truncations mid-body, 5xx, 429 with a
small Retry-After, latency spikes, answers lost after the server acted). For each connection type:

- start: ``BpmStartProcessOperator`` with a business key, its failed tries run again as Airflow
  runs a task's retries (``--tries``, a fresh operator and task instance per try, one task state
  store per run); afterwards the processes this run started are counted on the emulator's engine
- start/after: the same, with no random faults, once per forced fault (reset, truncation, 500,
  lost answer) on the first, then the second request after the server started the process
- export: ``BpmDownloadProcessFilesOperator`` over the demo processes' files, into one folder per
  run, tried the same way; the folder is compared, file by file, with a fault-free export whose
  bytes were checked against the emulator's own

Bad figures (the exit code is 1 when any is above 0):

- dup starts: processes beyond one per run, not counting one per start whose answer was lost
  after the server acted (the proxy knows: it forwarded the start and dropped the answer); those
  show in "lost" and are reported, not judged
- corrupt: a file in the destination whose bytes differ from the emulator's, or any file there
  that the export does not write (a half-written temporary left visible)
- missing: a file the export should have written that is not there after the run's last try
- not Bpm: failed tries whose exception is not a ``BpmError``
- unnamed: failed tries whose message does not name the system, the connection and a URL path
  the try requested (an export's per-file errors each need a path too)
- secrets: failed or passed tries whose DEBUG log (``requests``, ``urllib3``, ``httpx`` included),
  output or exception text holds a password, Basic credential, token or session cookie

and, with ``--rate`` at most 0.10, at least 99% of the export runs (all connection types together)
must succeed in their first Airflow try.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUCCESS_PER_TRY = 0.99
TARGET_RATE = 0.10  # the success target holds at this fault rate (issue 9)
DEBUG_LOGGERS = ("", "requests", "urllib3", "httpx", "httpcore", "airflow_bpm_provider", "airflow.task")
MANIFEST = "manifest.json"
# "start/after": one run per forced fault on the first or second call after the server started it
PATHS = ("start", "start/after", "export")
PATH_TOKEN = re.compile(r"/[^\s'\"\]\[,)(]+")


# ---- what is run against each connection type -------------------------------------------------


@dataclass
class Target:
    label: str
    conn_id: str
    system: str  # what the hook calls the system (BpmHook.system)
    base: str  # the API's path under the emulator's root
    login: str
    password: str
    process: str
    variables: dict[str, Any]
    start_options: dict[str, Any]
    export_ids: list[str]
    start_path: re.Pattern[str]  # POST paths that start a process
    extra: dict[str, Any] = field(default_factory=dict)
    conn_type: str = ""

    def connection(self, root_url: str) -> dict[str, Any]:
        return {
            "conn_type": self.conn_type,
            "host": root_url + self.base,
            "login": self.login,
            "password": self.password,
            "extra": {**self.extra, "retry_delay": 0.05},
        }

    def is_start(self, method: str, path: str) -> bool:
        return method == "POST" and bool(self.start_path.search(path))


AFTER_START = (("reset", None), ("truncate", None), ("5xx", 500), ("lost", None))


def after_start_scenarios(target: Target, skips: Sequence[int] = (0, 1)) -> list[Callable[[Any], None]]:
    """One fault on the first (skip 0), then the second, request after the server started the process."""
    after = "^POST .*" + target.start_path.pattern
    return [
        lambda proxy, kind=kind, status=status, skip=skip: proxy.force(
            kind, status=status, after=after, skip=skip
        )
        for skip in skips
        for kind, status in AFTER_START
    ]


def build_targets(emu: Any) -> list[Target]:
    """Seed every demo on ``emu`` and describe each connection type's start and export."""
    from airflow_bpm_provider.testing import demo_activiti, demo_bonita, demo_yuuvis
    from airflow_bpm_provider.testing.demo_systems import seed_all

    engine = emu.engine
    summaries = seed_all(engine, large_file_mb=1)
    questetra = summaries["Questetra / DataSpider BPM"]
    bonita = summaries["Bonita"]
    yuuvis = summaries["yuuvis Momentum"]
    # Distinct passwords: the demo's (Bonita's "bpm") are too short to be searched for in a log.
    passwords = {
        questetra["user"]: "chaos-questetra-pw-4f1c",
        demo_bonita.USER: "chaos-bonita-pw-8e2a",
        demo_activiti.USER: "chaos-activiti-pw-27d9",
        demo_yuuvis.USER: "chaos-yuuvis-pw-b03e",
    }
    for login, password in passwords.items():
        engine.add_user(login, password)

    with engine.lock:
        questetra_ids = sorted(
            str(i.id)
            for i in engine.instances.values()
            if i.definition.id in (11, 12, 13) and i.files()  # the demo's Questetra apps
        )
    questetra_vars = {"Purpose": "Cloud costs", "Amount": 1234.5, "Payment method": "card"}
    start_q = re.compile(r"/API/PE/ProcessInstance/start$")
    targets = [
        Target(
            "questetra",
            "chaos_questetra",
            "Questetra",
            "",
            questetra["user"],
            passwords[questetra["user"]],
            "11",
            questetra_vars,
            {},
            questetra_ids,
            start_q,
            conn_type="questetra",
        ),
        Target(
            "dataspider /userweb",
            "chaos_dataspider",
            "Questetra",
            "/userweb",
            questetra["user"],
            passwords[questetra["user"]],
            "11",
            questetra_vars,
            {},
            questetra_ids,
            start_q,
            conn_type="questetra",
        ),
        Target(
            "bonita",
            "chaos_bonita",
            "Bonita",
            "/bonita",
            demo_bonita.USER,
            passwords[demo_bonita.USER],
            demo_bonita.EXPENSE,
            {"employee": "Walter Bates", "amount": 87.3, "itemCount": 2, "dueDate": "2024-05-01"},
            {},
            [bonita["cases"]["open"], bonita["cases"]["completed"]],
            re.compile(r"/API/bpm/(process/[^/]+/instantiation|case)$"),
            extra={"business_key_variable": demo_bonita.BUSINESS_KEY_VARIABLE},
            conn_type="bonita",
        ),
    ]
    activiti_ids = [_activiti_instance_with_files(emu, passwords[demo_activiti.USER])]
    for base in ("/bpmn", "/activiti-rest/service", "/flowable-rest/service"):
        targets.append(
            Target(
                f"activiti {base}",
                "chaos_activiti_" + base.strip("/").split("/")[0].replace("-", "_"),
                "Activiti",
                base,
                demo_activiti.USER,
                passwords[demo_activiti.USER],
                demo_activiti.PROCESS_KEY,
                {"customer": "ACME GmbH", "amount": 1250.5, "pallets": 3, "rush": False},
                {},
                activiti_ids,
                re.compile(r"/runtime/process-instances$"),
                extra={"tenant_id": demo_activiti.TENANT},
                conn_type="activiti",
            )
        )
    targets.append(
        Target(
            "yuuvis",
            "chaos_yuuvis",
            "yuuvis Momentum",
            "",
            demo_yuuvis.USER,
            passwords[demo_yuuvis.USER],
            demo_yuuvis.APPROVAL_KEY,
            {"documentId": yuuvis["document_ids"][0], "amount": 1250.5},
            {"name": "Invoice 4711"},
            [yuuvis["intake_instance_id"]],
            re.compile(r"/bpm-engine/api/processes$"),
            extra={"tenant": demo_yuuvis.TENANT},
            conn_type="yuuvis_bpm",
        )
    )
    return targets


def _activiti_instance_with_files(emu: Any, password: str) -> str:
    """One order with a binary variable and task attachments, made through the API (no faults)."""
    from airflow.models.connection import Connection

    from airflow_bpm_provider.hooks.activiti import ActivitiHook
    from airflow_bpm_provider.testing import demo_activiti

    conn = Connection(
        conn_id="chaos_activiti_seed",
        conn_type="activiti",
        host=emu.url + demo_activiti.BASE_PATH,
        login=demo_activiti.USER,
        password=password,
        extra=json.dumps({"tenant_id": demo_activiti.TENANT}),
    )
    with ActivitiHook("chaos_activiti_seed", connection=conn) as hook:
        instance = hook.start_process(
            demo_activiti.PROCESS_KEY,
            variables={"customer": "Files GmbH", "amount": 10.0},
            business_key="files",
        )
        hook.set_variables(instance.id, {"invoice": b"%PDF-1.4 invoice " + bytes(range(256)) * 40})
        (review,) = list(hook.list_tasks(process_instance_id=instance.id))
        hook.add_attachment(review.id, "delivery-note.txt", b"3 pallets\n", content_type="text/plain")
        hook.add_attachment(
            review.id, "scan.bin", os.urandom(300_000), content_type="application/octet-stream"
        )
    return instance.id


# ---- one table row ---------------------------------------------------------------------------------


@dataclass
class Tally:
    label: str
    path: str
    runs: int = 0
    tries: int = 0
    ok_tries: int = 0
    first_try_ok: int = 0  # runs whose first try succeeded
    failed_runs: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    dup_starts: int = 0
    lost_starts: int = 0  # extra processes explained by a start whose answer was lost (not judged)
    corrupt: int = 0
    missing: int = 0
    not_bpm: int = 0
    unnamed: int = 0
    secrets: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok_per_try(self) -> float:
        return self.ok_tries / self.tries if self.tries else 1.0

    @property
    def ok_first_try(self) -> float:
        return self.first_try_ok / self.runs if self.runs else 1.0

    def bad(self) -> int:
        return self.dup_starts + self.corrupt + self.missing + self.not_bpm + self.unnamed + self.secrets

    def example(self, kind: str, text: str, secrets: set[str] = frozenset()) -> None:
        """Keep one text of each kind to show; the table never repeats a secret it found."""
        found = self.examples.setdefault(kind, [])
        if len(found) < 1:
            for secret in sorted(secrets, key=len, reverse=True):
                text = text.replace(secret, "<SECRET>")
            found.append(" ".join(text.split())[:300])


@dataclass
class Report:
    rate: float
    seed: int
    tries: int
    rows: list[Tally]
    seconds: float
    proxy_errors: list[str] = field(default_factory=list)

    def export_first_try(self) -> tuple[int, int]:
        """Export runs, and those that succeeded in their first Airflow try, over every connection type."""
        rows = [row for row in self.rows if row.path == "export"]
        return sum(row.runs for row in rows), sum(row.first_try_ok for row in rows)

    def problems(self, success_per_try: float | None = SUCCESS_PER_TRY) -> list[str]:
        """Why the campaign fails; empty when every bad figure is 0 and exports meet the target.

        ``success_per_try=None`` leaves the export success rate out (a run too short to measure it).
        """
        out = []
        for row in self.rows:
            for name in ("dup_starts", "corrupt", "missing", "not_bpm", "unnamed", "secrets"):
                value = getattr(row, name)
                if value:
                    out.append(f"{row.label} {row.path}: {name} = {value}")
        runs, first = self.export_first_try()
        if (
            success_per_try is not None
            and runs
            and self.rate <= TARGET_RATE
            and first / runs < success_per_try
        ):
            out.append(
                f"{first} of {runs} export runs ({first / runs:.1%}) succeeded in their first try "
                f"(target {success_per_try:.0%})"
            )
        out += [
            f"the fault proxy failed (a campaign bug, not the client's): {e}" for e in self.proxy_errors[:3]
        ]
        if self.rate > 0 and not sum(sum(row.faults.values()) for row in self.rows):
            out.append("no fault was injected: the campaign measured nothing")
        return out


# ---- capturing what a try logs -------------------------------------------------------------------


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.records.append(self.format(record))
        except Exception:  # a record that cannot format is still searched by its parts
            self.records.append(f"{record.msg!r} {record.args!r}")


@contextlib.contextmanager
def capture_debug() -> Iterator[Callable[[], str]]:
    """Everything logged at DEBUG and up, plus stdout and stderr, while the block runs."""
    handler = _Capture()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(name) for name in DEBUG_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    out, err = io.StringIO(), io.StringIO()
    structlog_config = _structlog_at_debug()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield lambda: "\n".join(handler.records) + out.getvalue() + err.getvalue()
    finally:
        if structlog_config is not None:
            import structlog

            structlog.configure(**structlog_config)
        root.removeHandler(handler)
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _structlog_at_debug() -> dict[str, Any] | None:
    """Let Airflow's structured loggers (an operator's ``self.log``) emit DEBUG; returns the old config."""
    try:
        import structlog
        from airflow.sdk._shared.logging.structlog import AirflowBoundLoggerFilteringAtDebug
    except ImportError:  # another Airflow layout: its loggers keep their level
        return None
    old = structlog.get_config()
    structlog.configure(wrapper_class=AirflowBoundLoggerFilteringAtDebug)
    return {"wrapper_class": old["wrapper_class"]}


def wire_secrets(exchanges: Sequence[Any]) -> set[str]:
    """Credentials that crossed the wire: Authorization values, cookies, token headers."""
    found: set[str] = set()
    for exchange in exchanges:
        for name, value in (*exchange.request_headers, *exchange.reply_headers):
            lower = name.lower()
            if lower in ("authorization", "proxy-authorization"):
                scheme, _, credential = value.partition(" ")
                found.add(credential.strip() or scheme)
            elif lower in ("cookie", "set-cookie"):
                pairs = value.split(";") if lower == "cookie" else value.split(";")[:1]
                for pair in pairs:
                    _, _, cookie = pair.partition("=")
                    found.add(cookie.strip().strip('"'))
            elif "token" in lower or "csrf" in lower:
                found.add(value.strip())
    return {secret for secret in found if len(secret) >= 8}


def static_secrets(target: Target) -> set[str]:
    basic = base64.b64encode(f"{target.login}:{target.password}".encode()).decode()
    from airflow_bpm_provider.testing import demo, demo_bonita

    return {target.password, basic, demo_bonita.TOKEN, demo.DEMO_TOKEN}


# ---- judging one failed try ---------------------------------------------------------------------


def names_where(exc: BaseException, target: Target, paths: set[str]) -> bool:
    """The error names the system, the connection and a path this try requested.

    An error that lists failures (an export's) names system and connection in its own line, and
    each listed failure names a path.
    """
    text = str(exc)
    details = [str(d) for d in getattr(exc, "details", None) or []]
    head = text.split("\n  - ")[0] if details else text
    if target.system.lower() not in head.lower() or target.conn_id not in head:
        return False
    return all(_names_a_path(part, target, paths) for part in details or [head])


def _names_a_path(text: str, target: Target, paths: set[str]) -> bool:
    for token in PATH_TOKEN.findall(text):
        token = token.split("?")[0].rstrip(".:;")
        if len(token) < 4:
            continue
        for path in paths:
            relative = path[len(target.base) :] if target.base and path.startswith(target.base) else path
            if token in (path, relative) or (
                len(token) > 8 and (path.endswith(token) or token.endswith(relative))
            ):
                return True
    return False


def judge_failure(
    exc: BaseException, target: Target, tally: Tally, paths: set[str], secrets: set[str]
) -> None:
    from airflow_bpm_provider.exceptions import BpmError

    if not isinstance(exc, BpmError):
        tally.not_bpm += 1
        tally.example("not Bpm", f"{type(exc).__module__}.{type(exc).__name__}: {exc}", secrets)
    if not names_where(exc, target, paths):
        tally.unnamed += 1
        tally.example("unnamed", f"{type(exc).__name__}: {exc}", secrets)


def count_secrets(text: str, secrets: set[str], tally: Tally) -> None:
    leaked = sorted(secret for secret in secrets if secret in text)
    if leaked:
        tally.secrets += 1
        at = text.find(leaked[0])
        tally.example(
            "secret", f"{len(leaked)} secret(s), e.g. ...{text[max(0, at - 80) : at + 100]}", secrets
        )


# ---- the two paths ------------------------------------------------------------------------------


class Campaign:
    def __init__(self, emu: Any, proxy: Any, targets: list[Target], *, tries: int, workdir: Path) -> None:
        from airflow_bpm_provider.testing import task_tries

        self.emu, self.proxy, self.targets, self.tries, self.workdir = emu, proxy, targets, tries, workdir
        self.supervisor = task_tries.LocalSupervisor()
        self.reference: dict[str, dict[str, str]] = {}  # conn_id -> relative path -> sha256
        self.run_id = "chaos"

    def target(self, label: str) -> Target:
        return next(t for t in self.targets if t.label == label)

    def try_once(self, target: Target, tally: Tally, prepare: Callable[[int], Any], number: int) -> bool:
        """One Airflow try: True when it succeeded. Judges its failure and its logs.

        ``prepare`` builds the operator as a DAG file would (not judged: an error there is the
        campaign's own and stops it); only ``execute`` is judged.
        """
        from airflow_bpm_provider.testing import task_tries

        operator = prepare(number)
        context = task_tries.context_for(self.supervisor, operator, run_id=self.run_id, try_number=number)
        mark = self.proxy.mark()
        tally.tries += 1
        error: BaseException | None = None
        with capture_debug() as logged:
            try:
                task_tries.run_try(operator, context)
            except Exception as exc:
                error = exc
            text = logged()
        exchanges = self.proxy.exchanges_since(mark)
        tally.faults.update(self.proxy.counts(mark))
        secrets = static_secrets(target) | wire_secrets(exchanges)
        if error is not None:
            text += "".join(traceback.format_exception(error))
            judge_failure(error, target, tally, {e.path for e in exchanges}, secrets)
        count_secrets(text, secrets, tally)
        if error is None:
            tally.ok_tries += 1
        return error is None

    def start_runs(
        self,
        target: Target,
        runs: int,
        deadline: float,
        seed: int,
        *,
        operator: type | None = None,
        scenarios: Sequence[Callable[[Any], None]] = (),
        path: str = "start",
    ) -> Tally:
        """``runs`` runs at the proxy's rate, or one run per scenario (each arms a forced fault)."""
        tally = Tally(target.label, path)
        for n in range(len(scenarios) or runs):
            if time.monotonic() > deadline:
                break
            self.start_run(
                target, tally, n, seed, operator=operator, scenario=scenarios[n] if scenarios else None
            )
        return tally

    def start_run(
        self,
        target: Target,
        tally: Tally,
        n: int,
        seed: int,
        *,
        operator: type | None = None,
        scenario: Callable[[Any], None] | None = None,
    ) -> None:
        """Run ``n`` of the start path: Airflow's tries, then the processes it left on the engine."""
        from airflow.sdk import DAG

        from airflow_bpm_provider.operators.process import BpmStartProcessOperator

        operator = operator or BpmStartProcessOperator
        path = tally.path
        engine = self.emu.engine
        tally.runs += 1
        self.proxy.clear_rules()
        if scenario is not None:
            scenario(self.proxy)
        key = f"chaos-{target.conn_id}-{path}-{seed}-{n}"
        with engine.lock:
            before = set(engine.instances)
        mark = self.proxy.mark()

        def prepare(_: int) -> Any:
            with DAG(f"chaos_{path}_{target.conn_id}".replace("/", "_"), schedule=None):
                return operator(
                    task_id="start",
                    bpm_conn_id=target.conn_id,
                    process=target.process,
                    variables=target.variables,
                    business_key=key,
                    start_options=target.start_options or None,
                    retries=self.tries - 1,
                )

        self.run_id = f"chaos__{path.replace('/', '_')}__{seed}__{n}"
        for t in range(1, self.tries + 1):
            if self.try_once(target, tally, prepare, t):
                tally.first_try_ok += t == 1
                break
        else:
            tally.failed_runs += 1
        self.proxy.clear_rules()
        with engine.lock:
            started = len([i for i in engine.instances if i not in before])
        lost = sum(
            1 for e in self.proxy.exchanges_since(mark) if target.is_start(e.method, e.path) and e.answer_lost
        )
        extra = max(0, started - 1)
        explained = min(extra, lost)
        tally.lost_starts += explained
        if extra - explained:
            tally.dup_starts += extra - explained
            tally.example("dup", f"run {n}: {started} processes for key {key!r}, {lost} start answer(s) lost")

    def export_reference(self, target: Target, digests: set[str]) -> None:
        """A fault-free export straight from the emulator; each file's bytes must be the emulator's."""
        from airflow_bpm_provider.hooks.registry import get_bpm_hook
        from airflow_bpm_provider.transfer.export import export_process_files

        folder = self.workdir / f"reference-{target.conn_id}"
        with get_bpm_hook(target.conn_id + "_direct") as hook:
            manifest = export_process_files(hook, str(folder), process_instance_ids=target.export_ids)
        tree = read_tree(folder)
        wrong = sorted(path for path, digest in tree.items() if digest not in digests)
        if wrong or not tree or len(tree) != len([e for e in manifest if e["path"]]):
            raise RuntimeError(
                f"the fault-free export of {target.label} does not match the emulator: {wrong}"
            )
        self.reference[target.conn_id] = tree

    def export_runs(
        self, target: Target, runs: int, deadline: float, seed: int, *, operator: type | None = None
    ) -> Tally:
        tally = Tally(target.label, "export")
        for n in range(runs):
            if time.monotonic() > deadline:
                break
            self.export_run(target, tally, n, seed, operator=operator)
        return tally

    def export_run(
        self, target: Target, tally: Tally, n: int, seed: int, *, operator: type | None = None
    ) -> None:
        """Run ``n`` of the export path: Airflow's tries into one folder, checked after each try."""
        from airflow.sdk import DAG

        from airflow_bpm_provider.operators.files import BpmDownloadProcessFilesOperator

        operator = operator or BpmDownloadProcessFilesOperator
        expected = self.reference[target.conn_id]
        tally.runs += 1
        folder = self.workdir / f"export-{target.conn_id}-{n}"

        def prepare(_: int) -> Any:
            with DAG(f"chaos_export_{target.conn_id}", schedule=None):
                return operator(
                    task_id="export",
                    bpm_conn_id=target.conn_id,
                    process_instance_ids=target.export_ids,
                    destination=str(folder),
                    manifest_name=MANIFEST,
                    retries=self.tries - 1,
                )

        self.run_id = f"chaos__export__{seed}__{n}"
        ok = False
        for t in range(1, self.tries + 1):
            ok = self.try_once(target, tally, prepare, t)
            tally.first_try_ok += ok and t == 1
            tree = read_tree(folder) if folder.exists() else {}
            manifest = tree.pop(MANIFEST, None)
            bad = sorted(path for path, digest in tree.items() if expected.get(path) != digest)
            tally.corrupt += len(bad)
            if bad:
                tally.example("corrupt", f"run {n} try {t}: {bad[:3]}")
            if ok:
                if manifest is None:
                    tally.missing += 1
                    tally.example("missing", f"run {n}: the export succeeded without its manifest")
                break
        tree = read_tree(folder) if folder.exists() else {}
        absent = sorted(set(expected) - set(tree))
        tally.missing += len(absent)
        if absent:
            tally.example("missing", f"run {n}: {absent[:3]}")
        if not ok:
            tally.failed_runs += 1
        shutil.rmtree(folder, ignore_errors=True)


def read_tree(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder`` (hidden ones included)."""
    out = {}
    for dirpath, _, names in os.walk(folder):
        for name in names:
            path = Path(dirpath, name)
            out[path.relative_to(folder).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def emulator_digests(engine: Any) -> set[str]:
    with engine.lock:
        stored = [entry[2] for entry in engine.files.values()]
        stored += [a.file for task in engine.tasks.values() for a in task.attachments if a.file is not None]
    return {hashlib.sha256(s.read()).hexdigest() for s in stored}


# ---- the campaign -------------------------------------------------------------------------------


@contextlib.contextmanager
def open_campaign(
    *, seed: int, tries: int = 3, only: Sequence[str] = (), references: bool = True
) -> Iterator[Campaign]:
    """The emulator, seeded, behind a proxy (rate 0 until set), with connections and references ready."""
    from airflow_bpm_provider.testing import task_tries
    from airflow_bpm_provider.testing.fault_proxy import FaultProxy
    from airflow_bpm_provider.testing.server import Emulator

    env_before = dict(os.environ)
    previous = None
    workdir = Path(tempfile.mkdtemp(prefix="bpm-chaos-"))
    emu = Emulator.start()
    proxy = FaultProxy.start(emu.url, rate=0.0, seed=seed)
    try:
        with capture_debug():  # seeding logs nothing worth judging
            targets = [t for t in build_targets(emu) if not only or any(o in t.label for o in only)]
        for target in targets:
            os.environ[f"AIRFLOW_CONN_{target.conn_id.upper()}"] = json.dumps(target.connection(proxy.url))
            direct = target.connection(emu.url)
            os.environ[f"AIRFLOW_CONN_{target.conn_id.upper()}_DIRECT"] = json.dumps(direct)
        campaign = Campaign(emu, proxy, targets, tries=tries, workdir=workdir)
        previous = task_tries.install(campaign.supervisor)
        if references:
            digests = emulator_digests(emu.engine)
            with capture_debug():  # the fault-free reference is not judged: keep its log out of the table
                for target in targets:
                    campaign.export_reference(target, digests)
        yield campaign
    finally:
        proxy.rate = 0.0
        if previous is not None:
            task_tries.restore(previous)
        proxy.stop()
        emu.stop()
        os.environ.clear()
        os.environ.update(env_before)
        shutil.rmtree(workdir, ignore_errors=True)


def run_campaign(
    *,
    runs: int,
    rate: float,
    seed: int,
    tries: int = 3,
    seconds: float = 240.0,
    only: Sequence[str] = (),
    paths: Sequence[str] = PATHS,
    after_skips: Sequence[int] = (0, 1),
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Every (connection type, path) cell; no new round of runs starts after ``seconds``."""
    started = time.monotonic()
    with open_campaign(seed=seed, tries=tries, only=only, references="export" in paths) as campaign:
        proxy = campaign.proxy
        proxy.rate = rate
        deadline = started + seconds
        # Forced faults first, alone (each run shows what one fault there does), all of them.
        rows = {(t.label, p): Tally(t.label, p) for t in campaign.targets for p in PATHS if p in paths}
        if "start/after" in paths:
            proxy.rate = 0.0
            for target in campaign.targets:
                tally = rows[(target.label, "start/after")]
                for n, scenario in enumerate(after_start_scenarios(target, after_skips)):
                    campaign.start_run(target, tally, n, seed, scenario=scenario)
                report_progress(progress, tally)
            proxy.rate = rate
        # Then run n of every cell before run n + 1 of any, so a time limit cuts every cell alike.
        random_paths = [p for p in ("start", "export") if p in paths]
        for n in range(runs):
            if n and time.monotonic() > deadline:  # one round at least, however slow the machine
                break
            for target in campaign.targets:
                for path in random_paths:
                    run = campaign.start_run if path == "start" else campaign.export_run
                    run(target, rows[(target.label, path)], n, seed)
            if progress and (n + 1) % 5 == 0:
                progress(f"{n + 1} of {runs} runs done, {time.monotonic() - started:.0f} s")
        errors = list(proxy.errors)
    return Report(rate, seed, tries, list(rows.values()), time.monotonic() - started, errors)


def report_progress(progress: Callable[[str], None] | None, tally: Tally) -> None:
    if progress:
        progress(f"{tally.label:<32} {tally.path:<11} {tally.runs} runs, {sum(tally.faults.values())} faults")


COLUMNS = (
    ("connection type", 32),
    ("path", 11),
    ("runs", 5),
    ("tries", 5),
    ("faults", 6),
    ("ok/try", 7),
    ("1st try", 7),
    ("failed runs", 11),
    ("dup starts", 10),
    ("lost", 4),
    ("corrupt", 7),
    ("missing", 7),
    ("not Bpm", 7),
    ("unnamed", 7),
    ("secrets", 7),
)


def format_report(report: Report) -> str:
    lines = [
        f"Fault campaign: {report.rate:.0%} of requests faulted, seed {report.seed}, up to {report.tries} "
        f"Airflow tries per run, {report.seconds:.0f} s",
        "",
        "  ".join(
            f"{name:>{width}}" if i > 1 else f"{name:<{width}}" for i, (name, width) in enumerate(COLUMNS)
        ),
    ]
    for row in report.rows:
        values = [
            row.label,
            row.path,
            row.runs,
            row.tries,
            sum(row.faults.values()),
            f"{row.ok_per_try:.1%}",
            f"{row.ok_first_try:.1%}",
            row.failed_runs,
            row.dup_starts if row.path != "export" else "-",
            row.lost_starts if row.path != "export" else "-",
            row.corrupt if row.path == "export" else "-",
            row.missing if row.path == "export" else "-",
            row.not_bpm,
            row.unnamed,
            row.secrets,
        ]
        lines.append(
            "  ".join(
                f"{value:<{width}}" if i < 2 else f"{value!s:>{width}}"
                for i, (value, (_, width)) in enumerate(zip(values, COLUMNS, strict=True))
            )
        )
    kinds: Counter[str] = Counter()
    for row in report.rows:
        kinds.update(row.faults)
    lines += ["", "faults injected: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))]
    runs, first = report.export_first_try()
    if runs:
        lines.append(f"export runs that succeeded in their first try: {first} of {runs} ({first / runs:.1%})")
    lines.append(
        "lost = extra processes after a start whose answer the proxy dropped after the server acted "
        "(reported, not judged)"
    )
    examples = [
        (row, kind, text) for row in report.rows for kind, texts in row.examples.items() for text in texts
    ]
    if examples:
        lines += ["", "examples:"]
        lines += [f"  [{row.label} {row.path}] {kind}: {text}" for row, kind, text in examples]
    problems = report.problems()
    lines += ["", "FAILED: " + "; ".join(problems) if problems else "OK: every bad figure is 0"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per connection type and path (default 20)")
    parser.add_argument(
        "--rate", type=float, default=TARGET_RATE, help="share of requests faulted (default 0.10)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the fault sequence (default 1)")
    parser.add_argument("--tries", type=int, default=3, help="Airflow tries per run (retries + 1, default 3)")
    parser.add_argument(
        "--time", type=float, default=300.0, help="no new round of runs after this many seconds (default 300)"
    )
    parser.add_argument(
        "--only", action="append", default=[], help="connection types whose label contains this"
    )
    parser.add_argument("--path", action="append", choices=PATHS, default=None, help="default: all")
    args = parser.parse_args(argv)
    report = run_campaign(
        runs=args.runs,
        rate=args.rate,
        seed=args.seed,
        tries=args.tries,
        seconds=args.time,
        only=args.only,
        paths=args.path or PATHS,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(format_report(report), flush=True)
    problems = report.problems()
    runs, first = report.export_first_try()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _summary import record

    record(
        "chaos",
        f"fault campaign at rate {args.rate}: no bad figure, >= {SUCCESS_PER_TRY:.0%} export runs first try",
        f"{len(problems)} problem(s); exports first try {first}/{runs}",
        not problems,
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
