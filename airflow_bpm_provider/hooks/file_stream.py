"""A streamed download as a binary file object, for code that wants ``read()`` rather than chunks.

``shutil.copyfileobj``, ``boto3``'s ``upload_fileobj`` and ``zipfile``/``tarfile`` take a file
object; the hooks stream through :meth:`Reply.iter_bytes`. :class:`FileStream` is an
``io.RawIOBase`` over that one iterator, so both ways read the same bounded, error-mapped stream
and no vendor needs its own.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from airflow_bpm_provider.exceptions import BpmTransferError

if TYPE_CHECKING:
    from airflow_bpm_provider.hooks.http import Headers, Reply

PIECE = 64 * 1024  # what one read from the socket asks for; a caller's read(n) may span several


class FileStream(io.RawIOBase):
    """A read-only, non-seekable binary stream over a streamed :class:`Reply`.

    ``read(n)`` returns ``n`` bytes unless the file ends first: boto3 cuts a non-seekable upload
    into parts of what one ``read`` returns, and S3 refuses parts under 5 MiB but the last.
    Memory stays at the caller's ``n`` plus one piece. A body that breaks off raises
    :class:`BpmTransferError` naming system, connection, method and path (the reply's ``broken``).

    The reply's own view stays available: ``status``, ``headers``, ``url``, ``content_length`` and
    ``iter_bytes``.
    """

    def __init__(self, reply: Reply) -> None:
        super().__init__()
        self.reply = reply
        self._pieces: Iterator[bytes] | None = None
        self._pending = memoryview(b"")
        self._ended = False

    # ---- the reply's view -----------------------------------------------------------------------

    @property
    def status(self) -> int:
        return self.reply.status

    @property
    def headers(self) -> Headers:
        return self.reply.headers

    @property
    def url(self) -> str:
        return self.reply.url

    @property
    def content_length(self) -> int | None:
        return self.reply.content_length

    @property
    def stream(self) -> Any:
        return self.reply.stream

    @property
    def body(self) -> bytes:
        return self.reply.body

    def iter_bytes(self, chunk_size: int) -> Iterator[bytes]:
        """Chunks of at most ``chunk_size`` from where reading stopped (all of it if none was read).

        Pieces come straight from the reply's iterator, without the copy ``read`` makes.
        """
        self._check_open()
        while self._pending:  # what read() left, taken piece by piece: an abandoned iterator loses nothing
            chunk, self._pending = bytes(self._pending[:chunk_size]), self._pending[chunk_size:]
            yield chunk
        if self._ended:
            return
        if self._pieces is None:
            self._pieces = self.reply.iter_bytes(chunk_size)
        try:
            # Not ``yield from``: closing a half-read iterator would close the reply's, and read()
            # would lose the rest of the file.
            for piece in self._pieces:  # noqa: UP028
                yield piece
        except BpmTransferError:
            self._ended = True
            raise
        self._ended = True

    # ---- io.RawIOBase -----------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` as far as the file goes; 0 only at its end."""
        self._check_open()
        target = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(target):
            if not self._pending:
                piece = self._next_piece()
                if piece is None:
                    break
                self._pending = memoryview(piece)
            take = min(len(target) - filled, len(self._pending))
            target[filled : filled + take] = self._pending[:take]
            self._pending = self._pending[take:]
            filled += take
        return filled

    def readall(self) -> bytes:
        parts = []
        while chunk := self.read(PIECE):
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        if not self.closed:
            self.reply.close()
        super().close()

    def _next_piece(self) -> bytes | None:
        if self._ended:
            return None
        if self._pieces is None:
            self._pieces = self.reply.iter_bytes(PIECE)
        while True:
            try:
                piece = next(self._pieces)
            except StopIteration:
                self._ended = True
                return None
            except BpmTransferError:
                self._ended = True
                raise
            if piece:
                return piece

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on a closed download")
