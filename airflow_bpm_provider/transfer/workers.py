"""Bounded parallel work on one BPM connection: a few threads, each with its own hook and session.

``requests.Session`` is not thread-safe, so every worker thread gets its own copy of the hook
(same connection settings and retry policy, its own HTTP session and login). A :class:`Pacer`
shared by all of them turns one worker's "slow down" (a 429 with Retry-After, a 503, a retry
pause) into a pause for every worker: the next request of each waits until it is over.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

from airflow_bpm_provider.exceptions import BpmError, BpmTransferError

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from airflow_bpm_provider.hooks.base import BpmHook
    from airflow_bpm_provider.hooks.http import Reply, Request

T = TypeVar("T")
R = TypeVar("R")

# Enough parallel requests to hide 50 ms of latency per request, few enough for any BPM server.
DEFAULT_CONCURRENCY = 16


class Pacer:
    """One pause shared by every worker of a connection."""

    def __init__(self, sleep: Callable[[float], None], clock: Callable[[], float] = time.monotonic) -> None:
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._until = 0.0

    def hold(self, seconds: float) -> None:
        """Pause every worker (this one included) for ``seconds`` from now."""
        with self._lock:
            self._until = max(self._until, self._clock() + max(0.0, seconds))
        self.wait()

    def sleep(self, seconds: float) -> None:
        """Pause only the calling worker (its own backoff), then honour any shared pause."""
        if seconds > 0:
            self._sleep(seconds)
        self.wait()

    def wait(self) -> None:
        while True:
            with self._lock:
                left = self._until - self._clock()
            if left <= 0:
                return
            self._sleep(left)

    @property
    def paused_until(self) -> float:
        return self._until


class WorkerPool:
    """Runs jobs on up to ``size`` threads, each with its own copy of ``hook``.

    With ``size`` 1 the jobs run on the caller's thread with the caller's hook, as before.
    """

    def __init__(self, hook: BpmHook, size: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.hook = hook
        self.size = size
        self.pacer = Pacer(getattr(hook, "_sleep", time.sleep), clock)
        self._local = threading.local()
        self._workers: list[BpmHook] = []
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def __enter__(self) -> WorkerPool:
        if self.size > 1 and not self._copyable():
            self.size = 1
        if self.size > 1:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="bpm-export")
        else:
            self._pace(self.hook)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        else:
            vars(self.hook).pop("_send", None)  # the caller's hook is theirs again, unpaced
        for worker in self._workers:
            try:
                worker.close()
            except BpmError as error:  # a failed logout must not hide the export's own outcome
                self.hook.log.warning("closing an export worker's session failed: %s", error)

    def worker(self) -> BpmHook:
        """This thread's hook (created on first use)."""
        if self._executor is None:
            return self.hook
        worker = getattr(self._local, "hook", None)
        if worker is None:
            worker = self._local.hook = self._copy()
        return worker

    def map(
        self,
        job: Callable[[BpmHook, T], R],
        items: Iterable[T],
        *,
        on_wait: Callable[[], None] | None = None,
        wait_interval: float = 1.0,
    ) -> list[tuple[R | None, BpmError | None]]:
        """``job(worker_hook, item)`` for every item, in order: (result, None) or (None, error)."""
        from concurrent.futures import FIRST_COMPLETED, wait

        items = list(items)
        if self._executor is None:
            out = []
            for item in items:
                out.append(self._guarded(job, item))
                if on_wait is not None:
                    on_wait()
            return out
        futures: list[Future[tuple[R | None, BpmError | None]]] = [
            self._executor.submit(self._guarded, job, item) for item in items
        ]
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=wait_interval, return_when=FIRST_COMPLETED)
            if on_wait is not None:
                on_wait()
        return [future.result() for future in futures]

    def _guarded(self, job: Callable[[BpmHook, T], R], item: T) -> tuple[R | None, BpmError | None]:
        try:
            return job(self.worker(), item), None
        except BpmError as error:
            return None, error
        except Exception as error:  # a bug must still fail one file, not the whole export silently
            return None, BpmTransferError(
                f"unexpected {type(error).__name__}: {error}",
                system=self.hook.system,
                conn_id=self.hook.bpm_conn_id,
            )

    def _copyable(self) -> bool:
        """A hook class whose constructor differs from BpmHook's cannot be copied: run serially."""
        try:
            self._local.hook = self._copy()
        except TypeError as error:
            self.hook.log.warning(
                "%s cannot be copied per worker thread (%s); downloading one file at a time",
                type(self.hook).__name__,
                error,
            )
            return False
        return True

    def _copy(self) -> BpmHook:
        hook = self.hook
        worker = type(hook)(
            hook.bpm_conn_id,
            connection=getattr(hook, "_connection", None),
            retry_policy=getattr(hook, "_retry_policy", None),
            sleep=self.pacer.hold,  # a retry pause of any worker (429, 503) pauses them all
        )
        if "settings" in vars(hook):
            worker.__dict__["settings"] = hook.settings  # parsed (and masked) once, not per thread
        self._pace(worker)
        with self._lock:
            self._workers.append(worker)
        return worker

    def _pace(self, worker: BpmHook) -> None:
        """Every request of ``worker`` first waits out a pause another worker started."""
        send: Callable[[Request], Reply] = worker._send
        pacer = self.pacer

        def paced_send(request: Request) -> Reply:
            pacer.wait()
            return send(request)

        worker._send = paced_send  # type: ignore[method-assign]
