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
