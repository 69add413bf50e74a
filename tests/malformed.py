"""Malformed answers shared by the tests/hooks/test_*_malformed.py tables.

Each dialect's table names a public hook method, the request whose answer is spoiled and what the
error must say; these bodies are the shapes every JSON answer can be spoiled with.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from airflow_bpm_provider.exceptions import BpmServerError

# (label, body, what the message must say)
GENERIC = [
    ("not JSON", b"<html>please log in</html>", "the body is not JSON"),
    ("not UTF-8", b"\xff\xfe{", "the body is not JSON"),
    ("nested past the parser", b"[" * 100_000 + b"]" * 100_000, "nested deeper than 64 levels"),
    (
        "nested past the bound",
        json.dumps(json.loads("[" * 200 + "]" * 200)).encode(),
        "nested deeper than 64",
    ),
    ("a list of strings", b'["a", "b"]', ""),
    ("a string", b'"ok"', ""),
    ("a number", b"42", ""),
    ("null", b"null", ""),
]


def serve(server: HTTPServer, path: str, body: bytes | Any, method: str = "GET") -> None:
    """Answer ``method path`` with ``body`` (bytes as they are, anything else as JSON), always."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    server.expect_request(path, method=method).respond_with_data(data, content_type="application/json")


def call(action: Callable[[], Any]) -> Any:
    """Run a hook call to its end: iterate a lazy listing, await an async one."""
    result = action()
    if inspect.isawaitable(result):
        return asyncio.run(result)
    if hasattr(result, "__next__"):
        return list(result)
    return result


def assert_unexpected(
    action: Callable[[], Any], *, system: str, conn_id: str, method: str, path: str, says: str
) -> BpmServerError:
    """The call fails with a BpmServerError naming system, connection, method, path and ``says``;
    pytest.raises(BpmServerError) lets anything else (AttributeError, RecursionError) fail the test."""
    with pytest.raises(BpmServerError) as info:
        call(action)
    exc = info.value
    assert (exc.system, exc.conn_id, exc.method, exc.path) == (system, conn_id, method, path), str(exc)
    assert "unexpected answer" in str(exc), str(exc)
    assert says in str(exc), f"{says!r} not in {str(exc)!r}"
    return exc
