"""One hook per connection for every trigger of a triggerer process, and batched process reads.

A triggerer runs all its triggers in one event loop. Giving each trigger its own HTTP client means
a new TCP+TLS connection per poll (keep-alive has expired by the next one) and, on session-based
systems, one login per wait. Here the triggers of one connection share one hook (so one client,
one session, one login lock) for as long as at least one of them runs; the last one to leave
closes it. Process reads of all those triggers are gathered for a moment and sent as the few
requests the vendor's API allows (``_poll_processes_flow`` and ``_poll_tasks_flow`` of the hook);
whatever that cannot answer is read one by one, as before, so an unknown instance fails only its
own wait.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from airflow_bpm_provider.exceptions import BpmAuthError, BpmConnectionError, BpmRateLimited, BpmServerError

if TYPE_CHECKING:
    from airflow_bpm_provider.hooks.base import BpmHook
    from airflow_bpm_provider.models import ProcessInstance, Task

log = logging.getLogger(__name__)

# Reads go out together once none has been asked for during GATHER_QUIET seconds (at most
# GATHER_MAX after the first). Triggers poll on a shared clock (see aligned_wait), so the reads of
# one tick arrive back to back, however long a busy event loop takes to wake 1,000 triggers.
GATHER_QUIET = 0.1
GATHER_MAX = 2.0
# Reads the API cannot batch go out at most this many at a time per connection: enough to keep
# a few connections busy, few enough not to hammer the server at every tick.
MAX_CONCURRENT_READS = 16
# A batch that fails this way fails every read in it, as the single reads would have failed;
# any other error (an API that refuses the filter, 400/403/404) falls back to single reads.
BATCH_FAILS_ALL = (BpmAuthError, BpmConnectionError, BpmServerError, BpmRateLimited)


def aligned_wait(interval: float, now: float) -> float:
    """Seconds until the next multiple of ``interval`` on the loop's clock (0 < result <= interval).

    Every trigger with the same interval then polls at the same moments, which is what lets
    their reads share one request; no trigger waits longer than its interval.
    """
    wait = interval - (now % interval)
    return wait if wait > 0 else interval


class SharedConnection:
    """The hook one connection's triggers share in one event loop, and its batched reads."""

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self.users = 0
        self._hook: asyncio.Task[BpmHook] | None = None
        # (what, task name) -> process id -> the futures of the triggers waiting for that read
        self._pending: dict[tuple[str, str | None], dict[str, list[asyncio.Future[Any]]]] = {}
        self._flush: asyncio.Task[None] | None = None
        self._last_asked = 0.0  # loop time of the latest read asked for
        self._last_seen: dict[str, ProcessInstance] = {}
        self._limit = asyncio.Semaphore(MAX_CONCURRENT_READS)
        self._refused: set[str] = set()  # "process" / "tasks": the server refused that batched read
        self._tasks: set[asyncio.Task[Any]] = set()

    async def hook(self) -> BpmHook:
        """The shared hook, built once (off the event loop) however many triggers ask at once."""
        from airflow_bpm_provider.hooks.registry import aget_bpm_hook

        if self._hook is None or (self._hook.done() and self._hook.exception() is not None):
            self._hook = asyncio.ensure_future(aget_bpm_hook(self.conn_id))
        # shield: one trigger being cancelled must not cancel the build the others wait for
        return await asyncio.shield(self._hook)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._hook is not None and self._hook.done() and self._hook.exception() is None:
            await self._hook.result().aclose()
        self._hook = None

    # ---- process reads ----------------------------------------------------------------------

    async def read_process(self, instance_id: str) -> ProcessInstance:
        """The process as the hook's ``aget_process`` reads it, batched with the other triggers' reads."""
        return await self._ask(("process", None), instance_id)

    async def list_tasks(self, instance_id: str, name: str | None) -> list[Task]:
        """Open tasks of one process as ``alist_tasks`` reads them, batched like process reads."""
        return await self._ask(("tasks", name), instance_id)

    async def _ask(self, group: tuple[str, str | None], instance_id: str) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.setdefault(group, {}).setdefault(instance_id, []).append(future)
        self._last_asked = loop.time()
        if self._flush is None:
            self._flush = self._spawn(self._gather_then_read())
        return await future

    def forget(self, instance_id: str) -> None:
        """A trigger stopped waiting on ``instance_id``: no need to remember how it looked."""
        if not any(instance_id in waiting for waiting in self._pending.values()):
            self._last_seen.pop(instance_id, None)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        # The reads run in their own tasks: a trigger cancelled while its read is under way only
        # stops waiting; the read goes on for the others that asked for the same batch.
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _gather_then_read(self) -> None:
        loop = asyncio.get_running_loop()
        first = loop.time()
        while (quiet := loop.time() - self._last_asked) < GATHER_QUIET and loop.time() - first < GATHER_MAX:
            await asyncio.sleep(GATHER_QUIET - quiet)
        groups, self._pending, self._flush = self._pending, {}, None
        hook = await self.hook()
        reads = []
        for (what, name), batch in groups.items():
            waiting = {pid: futures for pid, futures in batch.items() if any(not f.done() for f in futures)}
            if waiting:
                read = (
                    self._read_processes(hook, waiting)
                    if what == "process"
                    else self._read_tasks(hook, name, waiting)
                )
                reads.append(read)
        await asyncio.gather(*reads)

    async def _read_processes(self, hook: BpmHook, waiting: dict[str, list[asyncio.Future[Any]]]) -> None:
        flow = getattr(hook, "_poll_processes_flow", None)
        if flow is not None and "process" not in self._refused and len(waiting) > 1:
            if not self._definitions():
                # Nothing read yet on this connection (a triggerer starting up): one single read
                # tells which process definition to list for the others.
                first = next(iter(waiting))
                await self._read_one(hook, first, waiting.pop(first))
            found = await self._batch(hook, "process", flow(list(waiting), self._definitions()), waiting)
            for pid, instance in found.items():
                if pid in waiting:
                    self._last_seen[pid] = instance
                    _settle(waiting.pop(pid), result=instance)
        await asyncio.gather(*(self._read_one(hook, pid, futures) for pid, futures in waiting.items()))

    async def _read_tasks(
        self, hook: BpmHook, name: str | None, waiting: dict[str, list[asyncio.Future[Any]]]
    ) -> None:
        flow = getattr(hook, "_poll_tasks_flow", None)
        seen = {pid: self._last_seen.get(pid) for pid in waiting}
        wanted = {
            pid: i.definition for pid, i in seen.items() if i is not None and i.definition and not i.ended
        }
        if flow is not None and "tasks" not in self._refused and len(wanted) > 1:
            for pid, tasks in (await self._batch(hook, "tasks", flow(wanted, name), waiting)).items():
                if pid in waiting:
                    _settle(waiting.pop(pid), result=tasks)
        await asyncio.gather(*(self._list_one(hook, pid, name, futures) for pid, futures in waiting.items()))

    async def _batch(
        self, hook: BpmHook, what: str, flow: Any, waiting: dict[str, list[asyncio.Future[Any]]]
    ) -> dict[str, Any]:
        """Run a batched read; {} (and single reads from now on) when the server refuses its form."""
        try:
            return await hook._arun(flow)
        except BATCH_FAILS_ALL as exc:  # as every single read would have failed
            for futures in waiting.values():
                _settle(futures, error=exc)
            waiting.clear()
        except Exception as exc:
            log.warning(
                "Batched %s reads on connection %s failed (%s); reading each process on its own",
                what,
                self.conn_id,
                exc,
            )
            self._refused.add(what)
        return {}

    def _definitions(self) -> list[str]:
        """Definitions the waited processes were last seen on, the most waited first."""
        counts = Counter(i.definition for i in self._last_seen.values() if i.definition and not i.ended)
        return [definition for definition, _ in counts.most_common()]

    async def _read_one(
        self, hook: BpmHook, pid: str, futures: list[asyncio.Future[ProcessInstance]]
    ) -> None:
        try:
            async with self._limit:
                instance = await hook.aget_process(pid, with_business_key=False)
        except Exception as exc:  # each waiter judges its own error, as its own poll would have
            _settle(futures, error=exc)
        else:
            self._last_seen[pid] = instance
            _settle(futures, result=instance)

    async def _list_one(
        self, hook: BpmHook, pid: str, name: str | None, futures: list[asyncio.Future[Any]]
    ) -> None:
        try:
            async with self._limit:
                tasks = await hook.alist_tasks(process_instance_id=pid, name=name)
        except Exception as exc:
            _settle(futures, error=exc)
        else:
            _settle(futures, result=tasks)


def _settle(
    futures: list[asyncio.Future[Any]], *, result: Any = None, error: BaseException | None = None
) -> None:
    for future in futures:
        if future.done():  # its trigger was cancelled meanwhile
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, SharedConnection]] = (
    weakref.WeakKeyDictionary()
)


@asynccontextmanager
async def shared_connection(conn_id: str) -> AsyncIterator[SharedConnection]:
    """Use the connection's shared hook for the duration of one trigger's run.

    The first trigger of a connection creates it, the last one to leave (finished, failed or
    cancelled) closes its client, so nothing outlives the triggers that need it.
    """
    connections = _SHARED.setdefault(asyncio.get_running_loop(), {})
    shared = connections.get(conn_id)
    if shared is None:
        shared = connections[conn_id] = SharedConnection(conn_id)
    shared.users += 1
    try:
        yield shared
    finally:
        shared.users -= 1
        if shared.users == 0:
            if connections.get(conn_id) is shared:
                del connections[conn_id]
            # shield: a cancelled trigger's cleanup must still close the client it shared
            await asyncio.shield(shared.close())
