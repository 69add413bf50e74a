"""One small exception hierarchy for every BPM system.

Each error names the system, the connection id, the HTTP method and URL path and the server's own
message, so a failed task's log says what went wrong without a debugger. Credentials never enter
an error: messages are built from the path (no query string) and the server's answer, and the
answer is scrubbed of every secret the hook knows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# Server answers can be long HTML pages; a task log needs the gist, not the page.
MAX_SERVER_MESSAGE = 600


class BpmError(Exception):
    """Base class of every error this provider raises about a BPM system or its configuration."""

    def __init__(
        self,
        message: str,
        *,
        system: str | None = None,
        conn_id: str | None = None,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        server_message: str | None = None,
        details: Iterable[str] = (),
    ) -> None:
        self.system = system
        self.conn_id = conn_id
        self.method = method
        self.path = path
        self.status = status
        self.server_message = server_message
        self.details = list(details)
        super().__init__(self._compose(message))

    def _compose(self, message: str) -> str:
        where = []
        if self.system:
            where.append(self.system)
        if self.method and self.path:
            where.append(f"{self.method} {self.path}")
        if self.status is not None:
            where.append(f"HTTP {self.status}")
        if self.conn_id:
            where.append(f"connection '{self.conn_id}'")
        text = f"{message} [{', '.join(where)}]" if where else message
        if self.server_message:
            text += f": {self.server_message}"
        if self.details:
            text += "".join(f"\n  - {detail}" for detail in self.details)
        return text


class BpmConfigError(BpmError):
    """The connection or the operator arguments are wrong; retrying will not help."""


class BpmConnectionError(BpmError):
    """The server could not be reached, or stopped answering, after every allowed retry.

    ``sent`` says whether the request may have reached the server: False when no attempt sent
    it, True when one may have, None when unknown.
    """

    def __init__(self, message: str, *, sent: bool | None = None, **fields: Any) -> None:
        self.sent = sent
        super().__init__(message, **fields)


class BpmAuthError(BpmError):
    """401 or 403: the credentials were refused or the user may not do this."""


class BpmNotFound(BpmError):
    """404: the process, task, file or definition does not exist (or is invisible to this user)."""


class BpmConflict(BpmError):
    """409: the object is in a state that forbids the request (for example a task claimed by another)."""


class BpmValidationError(BpmError):
    """The server refused the input: 400/422, a contract violation, or a form saved with success=false."""


class BpmRateLimited(BpmError):
    """429 after every allowed retry."""


class BpmServerError(BpmError):
    """5xx after every allowed retry, or an answer this provider cannot understand."""


class BpmTransferError(BpmError):
    """A download broke off or did not match the size the server announced."""


def error_class_for_status(status: int) -> type[BpmError]:
    if status in (401, 403):
        return BpmAuthError
    if status == 404:
        return BpmNotFound
    if status == 409:
        return BpmConflict
    if status == 429:
        return BpmRateLimited
    if status in (400, 412, 415, 422):
        return BpmValidationError
    if status >= 500:
        return BpmServerError
    return BpmError


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every known secret in ``text`` (a server may echo a token back), also in the
    percent-encoded forms a URL gives it (a ``Location`` header echoing the login form)."""
    from urllib.parse import quote, quote_plus

    for secret in secrets:
        if secret and len(secret) >= 3:
            for form in dict.fromkeys((secret, quote(secret, safe=""), quote_plus(secret))):
                text = text.replace(form, "***")
    return text


def shorten(text: str, limit: int = MAX_SERVER_MESSAGE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
