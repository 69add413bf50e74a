"""Read, hash and write one large download at the same time, in a few reused buffers.

The caller's thread reads the network into a free buffer; one thread hashes it and another hands
it to the destination, both on the same bytes, and the buffer is read into again only once both
are done with it. sha256 and file writes release the GIL for big buffers, so on two cores the
three overlap instead of taking turns, and memory stays at ``depth x size`` whatever the file.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

# How long a blocked stage waits before looking whether another stage failed.
_POLL = 0.2


class Overflow(Exception):
    """The stream brought more bytes than the caller's limit."""


class _Stage:
    """One consumer thread: ``action(view, done)`` for each buffer in order; ``done()`` releases it.

    An action may call ``done`` later, from elsewhere (an upload still in flight holds its part).
    """

    def __init__(
        self,
        name: str,
        action: Callable[[memoryview, Callable[[], None]], None],
        release: Callable[[int], None],
    ) -> None:
        self.action = action
        self.release = release
        self.error: BaseException | None = None
        self.queue: queue.SimpleQueue[tuple[int, memoryview] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            index, view = item
            if self.error is not None:
                self.release(index)  # released even after a failure: the reader must never hang
                continue
            released = False

            def done(index: int = index) -> None:
                nonlocal released
                if not released:
                    released = True
                    self.release(index)

            try:
                self.action(view, done)
            except BaseException as exc:  # handed to the reading thread, which raises it
                self.error = exc
                done()


class Pipeline:
    """``Pipeline(hash_update, sink_write).run(readinto, limit)``: returns the bytes moved.

    ``readinto(view)`` returns the count of bytes it put into ``view`` (0 at the end);
    ``on_bytes(n)`` is told of every buffer once it has been read.
    """

    def __init__(
        self,
        digest: Callable[[memoryview], None],
        write: Callable[[memoryview, Callable[[], None]], None],
        *,
        size: int,
        depth: int,
    ) -> None:
        self._buffers = [memoryview(bytearray(size)) for _ in range(depth)]
        self._free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for index in range(depth):
            self._free.put(index)
        self._holders = [0] * depth
        self._lock = threading.Lock()
        self._stages = [
            _Stage("bpm-hash", lambda view, done: (digest(view), done()), self._release),
            _Stage("bpm-write", write, self._release),
        ]

    def _release(self, index: int) -> None:
        with self._lock:
            self._holders[index] -= 1
            last = self._holders[index] == 0
        if last:
            self._free.put(index)

    def run(
        self,
        readinto: Callable[[memoryview], int],
        *,
        limit: int | None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> int:
        """Move the whole stream; raises the first stage's error, or :class:`Overflow` past ``limit``."""
        moved = 0
        try:
            while True:
                index = self._take()
                buffer = self._buffers[index]
                filled = 0
                # Ask for one byte more than the limit allows: a longer stream shows without reading on.
                room = len(buffer) if limit is None else min(len(buffer), limit - moved + 1)
                while filled < room:
                    count = readinto(buffer[filled:room])
                    if not count:
                        break
                    filled += count
                if limit is not None and moved + filled > limit:
                    self._free.put(index)
                    raise Overflow
                if not filled:
                    self._free.put(index)
                    break
                self._check()
                with self._lock:
                    self._holders[index] = len(self._stages)
                for stage in self._stages:
                    stage.queue.put((index, buffer[:filled]))
                moved += filled
                if on_bytes is not None:
                    on_bytes(filled)
                if filled < room:
                    break  # the stream ended inside this buffer
        finally:
            self._drain()
        self._check()
        return moved

    def _take(self) -> int:
        while True:
            self._check()
            try:
                return self._free.get(timeout=_POLL)
            except queue.Empty:
                continue

    @property
    def write_failed(self) -> bool:
        return self._stages[1].error is not None

    def _check(self) -> None:
        for stage in self._stages:
            if stage.error is not None:
                raise stage.error

    def _drain(self) -> None:
        """Let both stages finish what they hold (a sink must not be written after we return)."""
        for stage in self._stages:
            stage.queue.put(None)
        for stage in self._stages:
            stage.thread.join()
