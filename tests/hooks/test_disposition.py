"""File name and size from download headers (RFC 6266 / RFC 5987)."""

from __future__ import annotations

import pytest

from airflow_bpm_provider.hooks.disposition import (
    content_length,
    file_name_from_disposition,
    file_name_from_headers,
    file_name_from_reply,
)
from airflow_bpm_provider.hooks.http import Headers, Reply


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('attachment; filename="a b.pdf"', "a b.pdf"),
        ("attachment; filename=plain.txt", "plain.txt"),
        ("attachment; filename*=UTF-8''%E8%AB%8B%E6%B1%82%E6%9B%B8.pdf", "請求書.pdf"),
        ("attachment; filename=\"fallback.pdf\"; filename*=UTF-8''%C3%9Cbersicht.pdf", "Übersicht.pdf"),
        ("attachment; filename*=UTF-8''%C3%9C.pdf; filename=\"U.pdf\"", "Ü.pdf"),
        ("attachment; filename*=iso-8859-1'de'%DC.txt", "Ü.txt"),
        ('attachment; filename="semi;colon.txt"', "semi;colon.txt"),
        ('attachment; filename="quote\\"d.txt"', 'quote"d.txt'),
        ('attachment; FILENAME="upper.txt"', "upper.txt"),
        ('attachment; filename*=broken; filename="ok.txt"', "ok.txt"),
        ("attachment; filename*=UTF-8''%FF%FE.txt; filename=\"ok.txt\"", "ok.txt"),
        ("inline", None),
        ("", None),
        (None, None),
    ],
)
def test_file_name_from_disposition(value, expected):
    assert file_name_from_disposition(value) == expected


def test_from_reply_and_headers():
    reply = Reply(
        200, Headers({"Content-Disposition": 'attachment; filename="r.pdf"', "Content-Length": "42"})
    )
    assert file_name_from_reply(reply) == "r.pdf"
    assert file_name_from_headers({"Content-Disposition": 'attachment; filename="h.pdf"'}) == "h.pdf"
    assert content_length(reply) == 42


@pytest.mark.parametrize("value", [None, "", "abc", "-1"])
def test_content_length_absent_or_bad(value):
    headers = Headers({} if value is None else {"Content-Length": value})
    assert content_length(Reply(200, headers)) is None
