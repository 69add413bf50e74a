"""The connection type picks the hook; anything else is a clear configuration error."""

from __future__ import annotations

import asyncio
import json

import pytest

from airflow_bpm_provider.exceptions import BpmConfigError
from airflow_bpm_provider.hooks.registry import HOOK_CLASSES, aget_bpm_hook, get_bpm_hook


@pytest.fixture
def http_connection(monkeypatch):
    fields = {"conn_type": "http", "host": "https://example.com", "login": "u", "password": "p"}
    monkeypatch.setenv("AIRFLOW_CONN_NOT_A_BPM", json.dumps(fields))


def test_an_unknown_connection_type_names_the_type_the_connection_and_the_valid_types(http_connection):
    with pytest.raises(BpmConfigError) as info:
        get_bpm_hook("not_a_bpm")
    message = str(info.value)
    assert "'http' is not a BPM connection type" in message and "not_a_bpm" in message
    assert all(conn_type in message for conn_type in HOOK_CLASSES)


def test_the_async_lookup_says_the_same(http_connection):
    with pytest.raises(BpmConfigError, match="'http' is not a BPM connection type"):
        asyncio.run(aget_bpm_hook("not_a_bpm"))


@pytest.mark.parametrize("conn_type", sorted(HOOK_CLASSES))
def test_each_connection_type_gets_its_hook(monkeypatch, conn_type):
    fields = {"conn_type": conn_type, "host": "https://example.com", "login": "u", "password": "p"}
    monkeypatch.setenv("AIRFLOW_CONN_SOME_BPM", json.dumps(fields))
    hook = get_bpm_hook("some_bpm")
    assert type(hook).__module__ + "." + type(hook).__qualname__ == HOOK_CLASSES[conn_type]
    assert hook.bpm_conn_id == "some_bpm"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, {"pw-0123456789", "dTpwdy0wMTIzNDU2Nzg5"}),  # the password and base64("u:pw-0123456789")
        ({"auth_type": "bearer"}, {"pw-0123456789"}),
    ],
)
def test_every_secret_is_registered_with_airflows_masker(monkeypatch, extra, expected):
    import airflow.providers.common.compat.sdk as compat

    masked: list[str] = []
    monkeypatch.setattr(compat, "mask_secret", masked.append, raising=False)
    fields = {
        "conn_type": "questetra",
        "host": "https://q.example.com",
        "login": "u",
        "password": "pw-0123456789",
    }
    monkeypatch.setenv("AIRFLOW_CONN_MASKED", json.dumps({**fields, "extra": extra}))
    get_bpm_hook("masked").settings  # noqa: B018 - reading the settings registers the secrets
    assert set(masked) == expected
