"""Registration: Airflow must see the provider, its connection types and forms in a plain install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from airflow_bpm_provider.get_provider_info import get_provider_info


def test_entry_point_is_registered():
    eps = entry_points(group="apache_airflow_provider")
    assert any(ep.value == "airflow_bpm_provider.get_provider_info:get_provider_info" for ep in eps)


def test_provider_info_matches_airflow_schema():
    import airflow
    import jsonschema

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_every_listed_module_and_hook_class_imports():
    info = get_provider_info()
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in info.get(section, []):
            for module in entry["python-modules"]:
                import_module(module)
    for conn in info["connection-types"]:
        module, _, name = conn["hook-class-name"].rpartition(".")
        hook = getattr(import_module(module), name)
        assert hook.conn_type == conn["connection-type"]
    for link in info["extra-links"]:
        module, _, name = link.rpartition(".")
        getattr(import_module(module), name)


def test_registry_and_provider_info_agree():
    from airflow_bpm_provider.hooks.registry import HOOK_CLASSES

    declared = {c["connection-type"]: c["hook-class-name"] for c in get_provider_info()["connection-types"]}
    assert declared == HOOK_CLASSES


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow_home")
    return {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "false"}


def _airflow(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_airflow_cli_shows_provider_and_hooks(airflow_env):
    out = _airflow(["providers", "get", "airflow-bpm-provider", "--output", "json"], airflow_env)
    assert "airflow-bpm-provider" in out
    hooks = json.loads(_airflow(["providers", "hooks", "--output", "json"], airflow_env))
    types = {h["connection_type"] for h in hooks}
    for conn in get_provider_info()["connection-types"]:
        assert conn["connection-type"] in types


# ---- what the connection forms say --------------------------------------------------------


def _forms() -> dict[str, dict]:
    return {c["connection-type"]: c for c in get_provider_info()["connection-types"]}


@pytest.mark.parametrize(
    ("field", "value", "attribute"),
    [
        ("retry_delay", "0.25", "retry_delay"),
        ("retry_max_delay", "7", "retry_max_delay"),
        ("max_retries", "2", "max_retries"),
        ("timeout", "12", "read_timeout"),
        ("connect_timeout", "3", "connect_timeout"),
    ],
)
def test_every_form_offers_the_retry_fields_the_hooks_read(field, value, attribute):
    from airflow.models.connection import Connection

    from airflow_bpm_provider.hooks.settings import ConnectionSettings

    for conn_type, form in _forms().items():
        assert field in form["conn-fields"], (conn_type, field)
        default = form["conn-fields"][field]["schema"]["default"]
        conn = Connection(conn_id="c", conn_type=conn_type, host="https://h", login="u", password="p")

        assert getattr(ConnectionSettings.from_connection(conn), attribute) == default, (conn_type, field)
        # The UI stores a form's extra under its own prefix: the hooks read that spelling too.
        conn.set_extra(json.dumps({f"extra__{conn_type}__{field}": value}))
        assert getattr(ConnectionSettings.from_connection(conn), attribute) == float(value)


def test_the_retry_fields_reach_the_retry_policy():
    from airflow.models.connection import Connection

    from airflow_bpm_provider.hooks.activiti import ActivitiHook

    extra = {"retry_delay": 0.5, "retry_max_delay": 4, "max_retries": 3}
    conn = Connection(
        conn_id="c", conn_type="activiti", host="https://h/bpmn", login="u", password="p", extra=extra
    )
    policy = ActivitiHook("c", connection=conn).retry_policy
    assert (policy.initial_delay, policy.max_delay, policy.max_attempts) == (0.5, 4, 3)


def test_a_host_without_scheme_is_documented_and_the_scheme_field_applied():
    from airflow.models.connection import Connection

    from airflow_bpm_provider.hooks.settings import ConnectionSettings

    for conn_type, form in _forms().items():
        scheme = form["conn-fields"]["scheme"]
        assert scheme["schema"]["default"] == "https" and "without" in scheme["description"], conn_type
        conn = Connection(
            conn_id="c", conn_type=conn_type, host="bpm.local", port=8080, login="u", password="p"
        )
        assert ConnectionSettings.from_connection(conn).base_url == "https://bpm.local:8080"
        conn.set_extra(json.dumps({f"extra__{conn_type}__scheme": "http"}))
        assert ConnectionSettings.from_connection(conn).base_url == "http://bpm.local:8080"


def test_the_port_help_names_the_test_button_bug_of_airflow_3_3_2():
    for conn_type, form in _forms().items():
        port = form["ui-field-behaviour"]["placeholders"]["port"]
        assert "Test button" in port and "3.3.2" in port, conn_type


def test_the_activiti_form_says_wso2_needs_its_tenant():
    tenant = _forms()["activiti"]["conn-fields"]["tenant_id"]["description"]
    assert "required on WSO2 EI" in tenant and "-1234" in tenant


def test_the_systems_without_a_known_ui_address_offer_ui_url():
    forms = _forms()
    for conn_type in ("activiti", "yuuvis_bpm"):
        assert "{id}" in forms[conn_type]["conn-fields"]["ui_url"]["description"]
