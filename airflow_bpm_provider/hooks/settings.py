"""Everything a hook reads from an Airflow connection, parsed and checked once."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow_bpm_provider.exceptions import BpmConfigError
from airflow_bpm_provider.hooks.bounds import (
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_RESPONSE_TIMEOUT,
    DEFAULT_STALL_TIMEOUT,
    BodyLimits,
)

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
AUTH_TYPES = ("basic", "bearer")


@dataclass(frozen=True)
class ConnectionSettings:
    conn_id: str
    conn_type: str
    base_url: str
    login: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)
    auth_type: str = "basic"
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    verify: bool | str = True
    max_retries: int = 5
    retry_delay: float = 1.0
    retry_max_delay: float = 30.0
    response_timeout: float = DEFAULT_RESPONSE_TIMEOUT
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    stall_timeout: float = DEFAULT_STALL_TIMEOUT
    ui_url: str | None = None  # a page of the BPM system's web UI, ``{id}`` for the instance id

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)

    @property
    def limits(self) -> BodyLimits:
        return BodyLimits(
            response_timeout=self.response_timeout,
            max_response_bytes=self.max_response_bytes,
            stall_timeout=self.stall_timeout,
        )

    @property
    def basic_credentials(self) -> str | None:
        """base64 of ``login:password``: as secret as the password (a server may echo the header)."""
        if self.auth_type != "basic" or self.login is None or self.password is None:
            return None
        return base64.b64encode(f"{self.login}:{self.password}".encode()).decode("ascii")

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(secret for secret in (self.password, self.basic_credentials) if secret)

    def timezone(self, default: tzinfo | None = None) -> tzinfo | None:
        """The ``timezone`` extra: the IANA zone of the server's clock, for its zone-less dates."""
        name = self.extra_value("timezone")
        if not name:
            return default
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            return ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            raise BpmConfigError(
                f"extra field 'timezone' must be an IANA time zone such as Asia/Tokyo, got {name!r}",
                conn_id=self.conn_id,
            ) from None

    def extra_value(self, name: str, default: Any = None) -> Any:
        """An extra field, stored plain (``timeout``) or UI-prefixed (``extra__questetra__timeout``)."""
        for key in (name, f"extra__{self.conn_type}__{name}"):
            value = self.extra.get(key)
            if value not in (None, ""):
                return value
        return default

    @classmethod
    def from_connection(cls, conn: Any, *, conn_id: str | None = None) -> ConnectionSettings:
        conn_id = conn_id or conn.conn_id
        extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
        probe = cls(conn_id=conn_id, conn_type=conn.conn_type or "", base_url="", extra=extra)

        def number(name: str, default: float, *, minimum: float = 0.0) -> float:
            raw = probe.extra_value(name, default)
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise BpmConfigError(
                    f"extra field '{name}' must be a number, got {raw!r}", conn_id=conn_id
                ) from None
            if value < minimum:
                raise BpmConfigError(
                    f"extra field '{name}' must be >= {minimum}, got {raw!r}", conn_id=conn_id
                )
            return value

        auth_type = str(probe.extra_value("auth_type", "basic")).strip().lower()
        if auth_type not in AUTH_TYPES:
            raise BpmConfigError(
                f"extra field 'auth_type' must be one of {', '.join(AUTH_TYPES)}, got {auth_type!r}",
                conn_id=conn_id,
            )
        if auth_type == "basic" and not conn.login:
            raise BpmConfigError("basic auth needs a login (user name or e-mail)", conn_id=conn_id)
        if not conn.password:
            what = "an API token" if auth_type == "bearer" else "a password"
            raise BpmConfigError(f"the connection has no password field: {what} is required", conn_id=conn_id)

        return cls(
            conn_id=conn_id,
            conn_type=conn.conn_type or "",
            base_url=build_base_url(conn, conn_id=conn_id, scheme=probe.extra_value("scheme")),
            login=conn.login,
            password=conn.password,
            extra=extra,
            auth_type=auth_type,
            connect_timeout=number("connect_timeout", DEFAULT_CONNECT_TIMEOUT, minimum=0.1),
            read_timeout=number("timeout", DEFAULT_READ_TIMEOUT, minimum=0.1),
            verify=parse_verify(probe.extra_value("verify", True), conn_id=conn_id),
            max_retries=int(number("max_retries", 5, minimum=1)),
            retry_delay=number("retry_delay", 1.0),
            retry_max_delay=number("retry_max_delay", 30.0),
            response_timeout=number("response_timeout", DEFAULT_RESPONSE_TIMEOUT, minimum=0.1),
            max_response_bytes=int(number("max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES, minimum=1024)),
            stall_timeout=number("stall_timeout", DEFAULT_STALL_TIMEOUT, minimum=0.1),
            ui_url=parse_ui_url(probe.extra_value("ui_url"), conn_id=conn_id),
        )


def parse_ui_url(value: Any, *, conn_id: str) -> str | None:
    """The ``ui_url`` extra: an http(s) address with ``{id}`` where the instance id goes."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    if urlsplit(text).scheme not in ("http", "https") or "{id}" not in text:
        raise BpmConfigError(
            "extra field 'ui_url' must be an http(s) address with {id} where the process instance "
            f"id goes, e.g. https://host/flowable-ui/workflow/#/processes/{{id}}; got {text!r}",
            conn_id=conn_id,
        )
    return text


def parse_verify(value: Any, *, conn_id: str) -> bool | str:
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in ("true", "1", "yes", ""):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    return text  # a CA bundle path


def build_base_url(conn: Any, *, conn_id: str, scheme: str | None = None) -> str:
    """The API root: scheme, host, port and context-root path (``/userweb``, ``/bonita``, ...).

    ``host`` may be a full URL (``https://host:8443/bonita``). Otherwise the scheme comes from the
    ``scheme`` extra (default https) and the ``schema`` field carries the context root, which is
    where an Airflow connection URI puts its path. ``schema`` of ``http``/``https`` is taken as the
    scheme, the way HttpHook users fill it in.
    """
    host = (conn.host or "").strip()
    if not host:
        raise BpmConfigError("the connection has no host", conn_id=conn_id)
    schema = (conn.schema or "").strip()
    if "@" in host.split("/")[2 if "://" in host else 0]:
        # Never echo the host here: it holds a secret.
        raise BpmConfigError(
            "the host must not carry credentials (user:password@); use the login and password fields",
            conn_id=conn_id,
        )
    if "://" in host:
        parts = urlsplit(host)
        if parts.scheme.lower() not in ("http", "https"):
            raise BpmConfigError(
                f"the host's scheme must be http or https, got {parts.scheme!r}: "
                "write https://host/... (or the host alone and the 'scheme' extra)",
                conn_id=conn_id,
            )
        netloc = parts.netloc
        if conn.port and parts.port is None:
            netloc = f"{netloc}:{conn.port}"
        path = parts.path.rstrip("/")
        if schema and schema.lower() not in ("http", "https") and not path:
            path = "/" + schema.strip("/")
        return urlunsplit((parts.scheme, netloc, path, "", ""))
    if schema.lower() in ("http", "https"):
        scheme, path = schema.lower(), ""
    else:
        path = ("/" + schema.strip("/")) if schema else ""
    scheme = (scheme or "https").lower()
    if scheme not in ("http", "https"):
        raise BpmConfigError(f"extra field 'scheme' must be http or https, got {scheme!r}", conn_id=conn_id)
    host, _, host_path = host.partition("/")
    if host_path and not path:
        path = "/" + host_path.strip("/")
    netloc = f"{host}:{conn.port}" if conn.port else host
    return f"{scheme}://{netloc}{path}"
