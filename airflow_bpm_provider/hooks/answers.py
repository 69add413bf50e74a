"""Vendor answers checked against the shape the vendor documents, at the hook boundary.

A server that answers 200 with the wrong shape (a list of strings where objects are documented,
text where a number is, ``null`` where a list is, JSON nested a thousand levels deep) must fail
as a :class:`~airflow_bpm_provider.exceptions.BpmServerError` that names the system, connection,
method, path and what was wrong, never as an ``AttributeError`` deep inside a model constructor.
Every vendor hook mixes :class:`AnswerChecks` in and calls these checks where it reads an answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow_bpm_provider.exceptions import BpmError, BpmServerError

if TYPE_CHECKING:
    from airflow_bpm_provider.hooks.http import Reply, Request

# No vendor documents an answer nested deeper than about ten levels (Bonita's business data and
# Flowable's json variables included); far below Python's recursion limit, so nothing downstream
# that recurses over an answer can hit it.
MAX_DEPTH = 64

# What converting a badly shaped value raises inside the models and helpers; a BpmError is never
# one of these, so a deliberate error passes through unchanged.
SHAPE_ERRORS = (
    AttributeError,
    KeyError,
    IndexError,
    TypeError,
    ValueError,
    LookupError,
    OverflowError,
    RecursionError,
)


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(rb"[\[\]{}]")


def json_depth(body: bytes) -> int:
    """How deep the lists/objects of a valid JSON text nest, read from its brackets outside strings.

    Scanning the text is far cheaper than walking the parsed value (a page of 1,000 entries has a
    few thousand brackets but tens of thousands of values).
    """
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub(b"", body)):
        if bracket in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def parse_json(body: bytes) -> Any:
    """``body`` as JSON; ValueError when it is not JSON or nested deeper than :data:`MAX_DEPTH`."""
    import json

    try:
        value = json.loads(body.decode("utf-8-sig") or "null")
    except RecursionError:
        raise ValueError(f"the JSON is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # UnicodeDecodeError and JSONDecodeError alike
        raise ValueError("the body is not JSON") from None
    if isinstance(value, dict | list) and json_depth(body) > MAX_DEPTH:
        raise ValueError(f"the JSON is nested deeper than {MAX_DEPTH} levels")
    return value


class AnswerChecks:
    """Shape checks shared by the vendor hooks; each failure is the hook's "unexpected answer"."""

    # Mixed in before BpmHook, whose _unexpected and _error these methods use.
    _unexpected: Any
    _error: Any

    def _json(self, request: Request, reply: Reply) -> Any:
        try:
            return parse_json(reply.body)
        except ValueError as exc:
            raise self._unexpected(request, reply, str(exc)) from None

    def _server_message(self, reply: Reply) -> str:
        # An error body too deep to parse is shown as text, not read into a RecursionError.
        try:
            parse_json(reply.body)
        except ValueError:
            return reply.text
        return super()._server_message(reply)  # type: ignore[misc]

    def _wrong(self, request: Request, reply: Reply | None, what: str) -> BpmError:
        """A BpmServerError about ``request``; without ``reply`` when the answer is already gone
        (a row checked while a lazy listing is iterated)."""
        if reply is not None:
            return self._unexpected(request, reply, what)
        return self._error(BpmServerError, f"unexpected answer: {what}", request)

    def _need_object(self, request: Request, reply: Reply | None, value: Any, what: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise self._wrong(request, reply, f"{what} must be an object, got {kind(value)}")
        return dict(value) if not isinstance(value, dict) else value

    def _need_list(self, request: Request, reply: Reply | None, value: Any, what: str) -> list[Any]:
        if not isinstance(value, list):
            raise self._wrong(request, reply, f"{what} must be a list, got {kind(value)}")
        return value

    def _need_objects(
        self, request: Request, reply: Reply | None, value: Any, what: str, *, id_key: str | None = None
    ) -> list[dict[str, Any]]:
        """A list of objects; with ``id_key`` each must carry a usable id under that key."""
        items = self._need_list(request, reply, value, what)
        for index, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise self._wrong(request, reply, f"{what}[{index}] must be an object, got {kind(item)}")
            if id_key is not None and not is_id(item.get(id_key)):
                raise self._wrong(
                    request, reply, f"{what}[{index}] has no usable '{id_key}' (got {kind(item.get(id_key))})"
                )
        return items

    def _need_id(self, request: Request, reply: Reply | None, value: Any, what: str) -> str:
        if not is_id(value):
            raise self._wrong(
                request, reply, f"{what} must be an id (text or a whole number), got {kind(value)}"
            )
        return str(value)

    def _need_count(self, request: Request, reply: Reply | None, value: Any, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self._wrong(
                request, reply, f"{what} must be a count (a whole number >= 0), got {kind(value)}"
            )
        return value

    def _optional(
        self, request: Request, reply: Reply | None, raw: Mapping[str, Any], key: str, types: Any, what: str
    ) -> None:
        """``raw[key]`` is absent, null, or of ``types`` (the documented JSON type)."""
        value = raw.get(key)
        if value is None:
            return
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
            raise self._wrong(
                request, reply, f"'{key}' of {what} must be {_type_words(types)}, got {kind(value)}"
            )

    @contextmanager
    def _reading(self, request: Request, reply: Reply | None, what: str) -> Iterator[None]:
        """Converting ``what`` out of an answer: a value the converter cannot take is a wrong shape."""
        try:
            yield
        except SHAPE_ERRORS as exc:
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise self._wrong(request, reply, f"{what} cannot be read ({detail})") from None


def is_id(value: Any) -> bool:
    """Ids travel as text or whole numbers; an empty text, a boolean, a float or a list is no id."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and value.strip() != ""


def _as_tuple(types: Any) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _type_words(types: Any) -> str:
    names = {
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "a boolean",
        dict: "an object",
        list: "a list",
    }
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in _as_tuple(types)))
