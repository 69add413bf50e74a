"""1,000 deferred waits per connection at the default poll interval, over https, in one triggerer-style loop.

For each connection type (Questetra, Bonita, Flowable, yuuvis) two runners wait on 1,000 processes
each, one design after the other (the shared design for every system at once, then the anchors,
also at once: about five minutes in all):

- ``shared`` (this project): the real ``BpmProcessStateTrigger`` as it ships: the triggers of one
  connection share one hook (client, session) and their polls are batched;
- ``per-trigger`` (the anchor, the design before): the same trigger class, but each trigger builds
  its own hook and HTTP client (httpx's 5 s keep-alive) and polls on its own clock.

Separate processes, so no side measures another's work: one emulator per runner (uvicorn over TLS
with a self-signed certificate made here, trusted through the connection's ``verify`` CA path;
keep-alive 75 s, nginx's default) counts at the server every request, login and new connection;
one runner per (system, design) runs its 1,000 triggers concurrently in one asyncio loop, all with
the trigger's default poll interval; they arrive spread over the first interval, as tasks defer.
CPU (user + system, whole runner process, % of one core) and RSS (whole process) are measured
over ``ROUNDS`` intervals after start-up (``ANCHOR_ROUNDS`` for the anchor), one figure per
interval; the table prints medians with min-max over those intervals. Then every process is
completed and every wait must report ``success``; "finish" is the seconds and requests from
completing the processes to the last event (batched reads of the ended processes keep it to a
few requests). A runner that stops reporting (its event loop blocked) is killed and shown as
stalled: the Bonita anchor can, since each of its 1,000 logins hands Airflow's secrets masker two
new secrets and the masker recompiles one regex of all of them each time, on the event loop.

Targets (shared design, each system): CPU <= 2 % of one core, RSS <= 200 MB, at most one login
per connection, <= 10 requests per interval. Exits 1 when one is missed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import itertools
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _summary import record

WAITS = int(os.environ.get("BENCH_WAITS", "1000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))  # measured intervals of the shared design
# The anchor only gives the ratios: two intervals keep the whole benchmark near five minutes.
ANCHOR_ROUNDS = int(os.environ.get("BENCH_ANCHOR_ROUNDS", "2"))
USER = "bench@example.com"
PASSWORD = "bench-password-2718"
SERVER_KEEP_ALIVE = 75  # seconds; nginx's default keepalive_timeout

SYSTEMS: dict[str, dict[str, Any]] = {
    "questetra": {"conn_type": "questetra", "path": ""},
    "bonita": {"conn_type": "bonita", "path": "/bonita"},
    "flowable": {"conn_type": "activiti", "path": "/flowable-rest/service"},
    "yuuvis": {"conn_type": "yuuvis_bpm", "path": "", "extra": {"tenant": "demo"}},
}
if os.environ.get("BENCH_SYSTEMS"):  # a subset, for a quick look at one system
    SYSTEMS = {name: SYSTEMS[name] for name in os.environ["BENCH_SYSTEMS"].split(",")}
DESIGNS = ("shared", "per-trigger")
if os.environ.get("BENCH_DESIGNS"):  # one design, for a quick look (the ratios then need both)
    DESIGNS = tuple(d for d in DESIGNS if d in os.environ["BENCH_DESIGNS"].split(","))
ANCHORS_AT_ONCE = int(os.environ.get("BENCH_ANCHORS_AT_ONCE", "4"))
LOGIN_PATHS = ("/bonita/loginservice",)

TARGET_CPU_PERCENT = 2.0
TARGET_RSS_MB = 200.0
TARGET_LOGINS = 1
TARGET_REQUESTS_PER_INTERVAL = 10


def default_interval() -> float:
    from airflow_bpm_provider.triggers.polling import BpmPollingTrigger

    return float(inspect.signature(BpmPollingTrigger.__init__).parameters["poll_interval"].default)


def bench_interval() -> float:
    """The trigger's default; BENCH_INTERVAL shortens it for a smoke run only (then no target counts)."""
    return float(os.environ.get("BENCH_INTERVAL") or default_interval())


def system_of(path: str) -> str:
    """Which connection type a request belongs to, by its path (one engine serves all four)."""
    if path.startswith("/bonita"):
        return "bonita"
    if path.startswith("/flowable-rest"):
        return "flowable"
    if path.startswith("/bpm-engine"):
        return "yuuvis"
    return "questetra"


# ---- TLS ------------------------------------------------------------------------------------


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (RSA 2048, as most servers use): (cert, key)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


# ---- the emulator process -------------------------------------------------------------------


def serve(control: Connection, cert: str, key: str) -> None:
    import socket
    import threading

    import uvicorn

    from airflow_bpm_provider.testing import Emulator
    from airflow_bpm_provider.testing.engine import TaskDef

    raise_fd_limit()
    hits: list[tuple[float, str, str, bool]] = []  # (time, system, path, first request on its connection)
    seen_clients: set[Any] = set()

    class CountingTlsEmulator(Emulator):
        @property
        def url(self) -> str:
            return f"https://{self.host}:{self.port}"

        def app(self) -> Any:
            inner = super().app()

            async def counting(scope: dict, receive: Any, send: Any) -> None:
                if scope["type"] == "http":
                    client = scope.get("client")
                    new = client not in seen_clients
                    seen_clients.add(client)
                    hits.append((time.time(), system_of(scope["path"]), scope["path"], new))
                await inner(scope, receive, send)

            return counting

        def serve_in_background(self, timeout: float = 15.0) -> None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            self.port = sock.getsockname()[1]
            config = uvicorn.Config(
                self.app(),
                log_level="warning",
                lifespan="off",
                access_log=False,
                ssl_certfile=cert,
                ssl_keyfile=key,
                timeout_keep_alive=SERVER_KEEP_ALIVE,
                backlog=4096,
            )
            self._server = uvicorn.Server(config)
            self._thread = threading.Thread(
                target=lambda: asyncio.run(self._server.serve(sockets=[sock])), daemon=True
            )
            self._thread.start()
            deadline = time.monotonic() + timeout
            while not self._server.started:
                if time.monotonic() > deadline or not self._thread.is_alive():
                    raise RuntimeError(f"the emulator did not start on {self.url}")
                time.sleep(0.02)

    emulator = CountingTlsEmulator.start()
    engine = emulator.engine
    engine.add_user(USER, PASSWORD)
    definitions = {
        name: engine.deploy(f"bench-{name}", f"Bench {name}", tasks=[TaskDef("Review", 1, "review")])
        for name in SYSTEMS
    }
    control.send(emulator.url)
    while True:
        command, argument = control.recv()
        if command == "start":
            system, count = argument
            control.send([str(engine.start(definitions[system], user=USER).id) for _ in range(count)])
        elif command == "counts":
            system, start, end = argument
            window = [h for h in hits if h[1] == system and start <= h[0] < end]
            control.send(
                {
                    "requests": len(window),
                    "logins": sum(1 for h in window if h[2].endswith(LOGIN_PATHS)),
                    "connections": sum(1 for h in window if h[3]),
                }
            )
        elif command == "complete":
            with engine.lock:
                for task in engine.open_tasks():
                    if task.instance.definition is definitions[argument]:
                        engine.complete(task, user=USER)
            control.send(None)
        elif command == "stop":
            emulator.stop()
            control.send(None)
            return


# ---- the measuring processes ----------------------------------------------------------------


def raise_fd_limit() -> None:
    # The per-trigger design holds one connection per waiting trigger: more than 1,024 fds.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(system: str, design: str, url: str, ca: str, ids: list[str], control: Connection) -> None:
    import logging

    raise_fd_limit()
    spec = SYSTEMS[system]
    conn_id = f"bench_{system}"
    extra = {**spec.get("extra", {}), "verify": ca}
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
        {
            "conn_type": spec["conn_type"],
            "host": url + spec["path"],
            "login": USER,
            "password": PASSWORD,
            "extra": extra,
        }
    )
    if not os.environ.get("BENCH_VERBOSE"):
        os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "ERROR"
        logging.disable(logging.WARNING)  # retries are logged per request; the table reports the outcome

    from airflow_bpm_provider.hooks import http
    from airflow_bpm_provider.hooks.registry import aget_bpm_hook, hook_class
    from airflow_bpm_provider.triggers.process import BpmProcessStateTrigger

    class PerTriggerClient(BpmProcessStateTrigger):
        """The design before: every trigger its own hook and client, polling on its own clock."""

        async def run(self) -> Any:
            hook = await aget_bpm_hook(self.bpm_conn_id)
            try:
                yield await self._wait(hook)
            finally:
                await hook.aclose()

        def _next_poll_in(self) -> float:
            return self.poll_interval

    if design == "per-trigger":
        http.ASYNC_KEEPALIVE = 5.0  # httpx's default, which the transport used before
    # What both designs pay once per process, not per wait: imports, the TLS context.
    hook_class(spec["conn_type"], conn_id=conn_id)
    http.shared_ssl_context(ca)
    import lxml.etree  # noqa: F401  (Questetra's criteria; imported off the loop by the registry too)

    cls = BpmProcessStateTrigger if design == "shared" else PerTriggerClient
    interval = bench_interval()
    kwargs = {} if interval == default_interval() else {"poll_interval": interval}
    control.send("ready")
    control.recv()

    async def wait_all() -> dict[str, Any]:
        finished: list[float] = []

        async def one(trigger: Any) -> tuple[str, str]:
            events = trigger.run()
            try:
                event = await anext(events)
            finally:
                await events.aclose()
            finished.append(time.time())
            return event.payload["status"], event.payload["message"]

        async def arriving(index: int, trigger: Any) -> tuple[str, str]:
            # Tasks defer one after another, not all in the same millisecond: spread over one interval.
            await asyncio.sleep(index * interval / len(ids))
            return await one(trigger)

        started = time.time()
        waiting = [
            asyncio.ensure_future(arriving(index, cls(conn_id, pid, **kwargs)))
            for index, pid in enumerate(ids)
        ]
        # Start-up: the triggers arrive and poll once during the first interval; then ROUNDS intervals.
        await asyncio.sleep(interval + 5)
        samples = [(time.time(), cpu_seconds(), status_mb("VmRSS"))]
        for _ in range(ROUNDS if design == "shared" else ANCHOR_ROUNDS):
            await asyncio.sleep(max(samples[-1][0] + interval - time.time(), 0))
            samples.append((time.time(), cpu_seconds(), status_mb("VmRSS")))
        control.send({"samples": samples, "started": started})
        completed = control.recv()  # the coordinator completed every process at this time
        # Every trigger polls within one interval: two, and half a minute more, is plenty.
        done, pending = await asyncio.wait(waiting, timeout=2 * interval + 30)
        for task in pending:
            task.cancel()
        events = [t.result() if not t.exception() else ("exception", repr(t.exception())) for t in done]
        problems = sorted({message for status, message in events if status != "success"})
        outcome = {
            "statuses": [status for status, _ in events],
            "pending": len(pending),
            "problems": problems[:3],
            "completed_at": completed,
            "last_event_at": max(finished, default=completed),
            "peak_rss_mb": status_mb("VmHWM"),
        }
        control.send(outcome)
        # Triggers still waiting would be cancelled and closed one by one (a Bonita logout each):
        # on a stalled anchor that takes minutes and measures nothing, so the process ends here.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    asyncio.run(wait_all())


# ---- the coordinator ------------------------------------------------------------------------


def spread(values: list[float], fmt: str) -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def main() -> int:
    interval = bench_interval()
    folder = Path(tempfile.mkdtemp(prefix="bench-tls-"))
    cert, key = make_certificate(folder)
    results: dict[tuple[str, str], dict[str, Any]] = {}
    # The designs run one after the other: 1,000 per-trigger clients each opening TLS
    # connections would crowd the shared design's servers too. The shared design runs every
    # system at once; the anchor, far heavier, two systems at a time on a 2-core machine.
    names = list(SYSTEMS)
    if "shared" in DESIGNS:
        results.update(run_pairs([(system, "shared") for system in names], cert, key))
    for start in range(0, len(names) if "per-trigger" in DESIGNS else 0, ANCHORS_AT_ONCE):
        results.update(
            run_pairs(
                [(system, "per-trigger") for system in names[start : start + ANCHORS_AT_ONCE]], cert, key
            )
        )
    return report(results, interval)


def run_pairs(pairs: list[tuple[str, str]], cert: Path, key: Path) -> dict[tuple[str, str], dict[str, Any]]:
    ctx = mp.get_context("spawn")  # fresh interpreters: nothing inherited from here
    # One emulator per runner, so each counts only its runner's requests and no runner's load
    # slows another's server.
    servers: dict[tuple[str, str], Connection] = {}
    urls: dict[tuple[str, str], str] = {}
    emulators = []
    for pair in pairs:
        here, there = ctx.Pipe()
        proc = ctx.Process(
            target=serve, args=(there, str(cert), str(key)), name=f"emulator-{pair}", daemon=True
        )
        proc.start()
        emulators.append(proc)
        servers[pair], urls[pair] = here, here.recv()

    runners: dict[tuple[str, str], tuple[Any, Connection]] = {}
    for pair in pairs:
        system, design = pair
        servers[pair].send(("start", (system, WAITS)))
        ids = servers[pair].recv()
        here, there = ctx.Pipe()
        proc = ctx.Process(
            target=measure,
            args=(system, design, urls[pair], str(cert), ids, there),
            name=f"{system}-{design}",
        )
        proc.start()
        runners[pair] = (proc, here)
    for _, pipe in runners.values():
        if pipe.recv() != "ready":
            raise RuntimeError("a runner did not start")
    for _, pipe in runners.values():
        pipe.send("go")

    results: dict[tuple[str, str], dict[str, Any]] = {}
    # Runners are served as they report: one whose event loop stalls must not hold the others'
    # completion back, and one that misses its window by a minute counts as stalled.
    interval = bench_interval()
    rounds_of = {pair: ROUNDS if pair[1] == "shared" else ANCHOR_ROUNDS for pair in pairs}
    deadline = time.time() + interval + 5 + max(rounds_of.values()) * interval + 60
    waiting = {pipe: pair for pair, (_, pipe) in runners.items()}
    while waiting:
        ready = wait(list(waiting), timeout=max(deadline - time.time(), 0))
        if not ready:
            for pair in waiting.values():
                runners[pair][0].kill()
                results[pair] = stalled(f"no measuring window within {interval + 65:.0f} s of its end")
            break
        for pipe in ready:
            pair = waiting.pop(pipe)
            window = pipe.recv()
            samples = window["samples"]
            rounds = []
            for (t0, c0, _), (t1, c1, rss) in itertools.pairwise(samples):
                servers[pair].send(("counts", (pair[0], t0, t1)))
                counts = servers[pair].recv()
                rounds.append({"cpu": 100 * (c1 - c0) / (t1 - t0), "rss": rss, **counts})
            servers[pair].send(("counts", (pair[0], window["started"] - 5, samples[-1][0])))
            whole = servers[pair].recv()
            results[pair] = {"rounds": rounds, "logins": whole["logins"]}
            servers[pair].send(("complete", pair[0]))
            servers[pair].recv()
            pipe.send(time.time())
    for pair, (proc, pipe) in runners.items():
        if results[pair].get("stalled"):
            continue
        if not pipe.poll(2 * interval + 90):
            proc.kill()
            results[pair].update(stalled("no outcome after completing its processes"))
            continue
        outcome = pipe.recv()
        proc.join(30)
        if proc.is_alive():
            proc.kill()
        results[pair].update(outcome)
        # What finishing the waits cost: from completing the processes to the last event.
        servers[pair].send(("counts", (pair[0], outcome["completed_at"], outcome["last_event_at"] + 1)))
        results[pair]["finish"] = servers[pair].recv()
    for pair in pairs:
        servers[pair].send(("stop", None))
        servers[pair].recv()
    for proc in emulators:
        proc.join(10)
    return results


def stalled(why: str) -> dict[str, Any]:
    """The result of a runner that stopped reporting: nothing measured, no wait succeeded."""
    return {
        "stalled": why,
        "rounds": [],
        "logins": 0,
        "statuses": [],
        "pending": WAITS,
        "problems": [why],
        "completed_at": 0.0,
        "last_event_at": 0.0,
        "peak_rss_mb": 0.0,
        "finish": {"requests": 0},
    }


def report(results: dict[tuple[str, str], dict[str, Any]], interval: float) -> int:
    print(
        f"\n{WAITS} deferred waits per connection, default poll interval {interval:.0f} s, https "
        f"(self-signed RSA 2048, server keep-alive {SERVER_KEEP_ALIVE} s); {ROUNDS} intervals measured "
        f"after start-up ({ANCHOR_ROUNDS} for the anchor), median (min-max) over them; emulators in "
        "their own processes; "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}\n"
    )
    header = (
        f"{'system':10} {'design':12} {'CPU % of 1 core':>20} {'RSS MB':>8} {'peak MB':>8} "
        f"{'requests/interval':>20} {'new conns/interval':>19} {'logins':>7} {'events':>14} "
        f"{'finish s':>8} {'finish reqs':>11}"
    )
    print(header)
    print("-" * len(header))
    failures: list[str] = []
    for system in SYSTEMS:
        for design in DESIGNS:
            r = results[(system, design)]
            if r.get("stalled"):
                print(f"{system:10} {design:12} stalled: {r['stalled']}")
                if design == "shared":
                    failures.append(f"{system}: the shared design stalled: {r['stalled']}")
                    record("triggerer_scale", f"P3 {system}", f"stalled: {r['stalled']}", False)
                continue
            rounds = r["rounds"]
            cpu = [x["cpu"] for x in rounds]
            requests = [float(x["requests"]) for x in rounds]
            connections = [float(x["connections"]) for x in rounds]
            rss = max(x["rss"] for x in rounds)
            ok = r["statuses"].count("success")
            events = f"{ok}/{WAITS} success"
            if design != "shared" and ok != WAITS:
                print(f"  ({design} {system}: {r['pending']} still waiting; {r['problems']})")
            print(
                f"{system:10} {design:12} {spread(cpu, '{:.2f}'):>20} {rss:8.0f} {r['peak_rss_mb']:8.0f} "
                f"{spread(requests, '{:.0f}'):>20} {spread(connections, '{:.0f}'):>19} "
                f"{r['logins']:7d} {events:>14} {r['last_event_at'] - r['completed_at']:8.0f} "
                f"{r['finish']['requests']:11d}"
            )
            if design != "shared":
                continue
            before = len(failures)
            if statistics.median(cpu) > TARGET_CPU_PERCENT:
                failures.append(f"{system}: CPU {statistics.median(cpu):.2f} % > {TARGET_CPU_PERCENT} %")
            if rss > TARGET_RSS_MB:
                failures.append(f"{system}: RSS {rss:.0f} MB > {TARGET_RSS_MB:.0f} MB")
            if r["logins"] > TARGET_LOGINS:
                failures.append(f"{system}: {r['logins']} logins > {TARGET_LOGINS}")
            if statistics.median(requests) > TARGET_REQUESTS_PER_INTERVAL:
                failures.append(
                    f"{system}: {statistics.median(requests):.0f} requests/interval "
                    f"> {TARGET_REQUESTS_PER_INTERVAL}"
                )
            if ok != WAITS:
                failures.append(
                    f"{system}: only {ok} of {WAITS} waits succeeded ({r['pending']} still waiting); "
                    f"{r['problems']}"
                )
            record(
                "triggerer_scale",
                f"P3 {system}, {WAITS} waits at {interval:.0f} s: CPU <= {TARGET_CPU_PERCENT:.0f} %, "
                f"RSS <= {TARGET_RSS_MB:.0f} MB, <= {TARGET_LOGINS} login, "
                f"<= {TARGET_REQUESTS_PER_INTERVAL} req/interval, all succeed",
                f"CPU {spread(cpu, '{:.2f}')} %, RSS {rss:.0f} MB, {r['logins']} login(s), "
                f"{spread(requests, '{:.0f}')} req/interval, {ok}/{WAITS} success",
                len(failures) == before and interval == default_interval(),
            )
    print()
    for system in SYSTEMS if len(DESIGNS) == 2 else ():
        shared, anchor = results[(system, "shared")], results[(system, "per-trigger")]
        if shared.get("stalled") or anchor.get("stalled"):
            print(f"{system:10} per-trigger / shared: n/a (a runner stalled)")
            continue
        cpu_s = statistics.median(x["cpu"] for x in shared["rounds"])
        cpu_a = statistics.median(x["cpu"] for x in anchor["rounds"])
        req_s = statistics.median(x["requests"] for x in shared["rounds"])
        req_a = statistics.median(x["requests"] for x in anchor["rounds"])
        if anchor["statuses"].count("success") != WAITS:
            print(
                f"{system:10} per-trigger / shared: n/a (the anchor did not complete every wait; its "
                f"{anchor['logins']} logins, CPU {cpu_a:.1f} %, {req_a:.0f} requests/interval)"
            )
            continue
        print(
            f"{system:10} per-trigger / shared: CPU {cpu_a / cpu_s if cpu_s else float('inf'):.1f}x, "
            f"requests {req_a / req_s if req_s else float('inf'):.0f}x"
        )
    print()
    if interval != default_interval():
        failures.append(f"poll interval {interval} s is not the default {default_interval()} s: a smoke run")
    if failures:
        print("TARGETS MISSED:\n  " + "\n  ".join(failures))
        return 1
    print(
        f"targets met (shared design, every system): CPU <= {TARGET_CPU_PERCENT} % of one core, RSS <= "
        f"{TARGET_RSS_MB:.0f} MB, <= {TARGET_LOGINS} login per connection, <= {TARGET_REQUESTS_PER_INTERVAL} "
        "requests per interval, every wait succeeded"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
