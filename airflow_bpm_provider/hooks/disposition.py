"""The file name and size a download announces in its headers (Content-Disposition, Content-Length).

The name is the server's choice: callers that build paths from it must still keep it inside their
destination folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import unquote

from airflow_bpm_provider.hooks.http import Reply

# One parameter of a Content-Disposition header: name=token or name="quoted string".
_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def file_name_from_disposition(value: str | None) -> str | None:
    """The file name of a Content-Disposition value; RFC 5987 ``filename*`` wins over ``filename``."""
    if not value:
        return None
    params: dict[str, str] = {}
    for name, raw in _PARAM.findall(";" + value.split(";", 1)[1] if ";" in value else ""):
        raw = raw.strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params.setdefault(name.lower(), raw)
    extended = params.get("filename*")
    if extended:
        decoded = _decode_extended(extended)
        if decoded:
            return decoded
    return params.get("filename") or None


def _decode_extended(value: str) -> str | None:
    """``charset'language'percent-encoded`` (RFC 5987); None when it cannot be decoded."""
    parts = value.split("'", 2)
    if len(parts) != 3:
        return None
    charset = parts[0] or "utf-8"
    try:
        return unquote(parts[2], encoding=charset, errors="strict") or None
    except (LookupError, UnicodeDecodeError):
        return None


def file_name_from_headers(headers: Mapping[str, str]) -> str | None:
    value = headers.get("content-disposition") or headers.get("Content-Disposition")
    return file_name_from_disposition(value)


def file_name_from_reply(reply: Reply) -> str | None:
    """The file name a download reply announces, if any."""
    return file_name_from_disposition(reply.headers.get("content-disposition"))


def content_length(reply: Reply) -> int | None:
    """The size a reply announces; None when absent or not a number (chunked answers)."""
    value = reply.headers.get("content-length")
    try:
        size = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return size if size >= 0 else None
