"""The README's code must work as printed: users copy it."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_quickstart_builds_the_dag_it_describes():
    namespace: dict = {}
    exec(compile(python_blocks()[0], "README quickstart", "exec"), namespace)
    dag = namespace["start"].dag
    assert dag.dag_id == "approval"
    assert set(dag.task_ids) == {"start", "wait_for_task", "approve", "wait_for_end", "export"}
    assert dag.get_task("export").upstream_task_ids == {"wait_for_end"}
    assert dag.get_task("wait_for_end").deferrable is True


def test_the_two_commands_are_the_makefile_targets_ci_runs():
    text = README.read_text()
    assert "make demo" in text and "make test" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert [line for line in ci.splitlines() if line.startswith("make ")] == ["make test", "make e2e"]


# ---- Install, connections and the distributed deployment, as a new user follows them -----------


def section(title: str) -> str:
    """The README's text under ``## title``, up to the next ``## `` heading."""
    text = README.read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert match is not None, f"README has no section {title!r}"
    return match.group(1)


def shell_lines(text: str) -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    joined = [re.sub(r"\\\n\s*", " ", block) for block in blocks]  # continuation lines
    return [line.strip() for block in joined for line in block.splitlines() if line.strip()]


def pip_installs(text: str) -> list[str]:
    return [line.split("#")[0].strip() for line in shell_lines(text) if line.startswith("pip install")]


def optional_dependencies() -> set[str]:
    import tomllib

    project = tomllib.loads((README.parent / "pyproject.toml").read_text())["project"]
    return set(project["optional-dependencies"])


def test_install_works_without_an_index_and_names_only_real_extras():
    installs = pip_installs(README.read_text())
    assert any(re.search(r"""pip install (-c constraints.txt )?\.$""", line) for line in installs), installs
    extras = optional_dependencies()
    git_url = None
    for line in installs:
        target = shlex.split(line)[-1]
        # Not on an index yet: a local path (".", ".[s3]") or a direct git reference.
        assert target.startswith(".") or " @ git+https://" in target, f"needs an index: {line}"
        named = re.search(r"\[([^\]]+)\]", target)
        unknown = set(named.group(1).split(",")) - extras if named else set()
        assert not unknown, f"{line}: no extra {unknown} in pyproject.toml"
        if "git+" in target:
            git_url = target.split(" @ git+", 1)[1]
    assert git_url is not None, "README shows no install straight from the repository"
    from airflow_bpm_provider.get_provider_info import get_provider_info

    home = get_provider_info()["integrations"][0]["external-doc-url"]
    assert git_url.removesuffix(".git") == home, "the git URL is not the project's own address"


def test_install_migrates_the_database_before_anything_runs():
    install = shell_lines(section("Install"))
    commands = [line.split(" #")[0].strip() for line in install if line.startswith("airflow ")]
    assert commands and commands[0] == "airflow db migrate", commands
    text = README.read_text()
    assert text.index("airflow db migrate") < text.index("## Quickstart")
    # The distributed deployment migrates its shared database once, before the components start.
    distributed = shell_lines(section("Running on a distributed Airflow"))
    migrations = [line.split(" #")[0].strip() for line in distributed if "SQL_ALCHEMY_CONN" in line]
    assert any(line.endswith("airflow db migrate") for line in migrations), distributed


def test_every_extra_the_install_table_lists_exists():
    listed = set(re.findall(r"^\| `(\w+)`(?:, `(\w+)`)? \|", section("Install"), flags=re.M))
    names = {name for pair in listed for name in pair if name}
    assert names == optional_dependencies()


def connection_examples() -> dict[str, str]:
    """conn id -> the value of each ``export AIRFLOW_CONN_...='...'`` line of the connection docs."""
    text = section("Connections") + section("Running on a distributed Airflow")
    return dict(re.findall(r"^\s*export AIRFLOW_CONN_(\w+)='(.+)'$", text, flags=re.M))


def known_extras(conn_type: str) -> set[str]:
    """Extras the provider reads for this connection type: the form's fields and the settings."""
    from airflow_bpm_provider.get_provider_info import CONNECTION_TYPES
    from airflow_bpm_provider.hooks.registry import HOOK_CLASSES

    form = next(t for t in CONNECTION_TYPES if t["connection-type"] == conn_type)["conn-fields"]
    package = README.parent / "airflow_bpm_provider" / "hooks"
    module = HOOK_CLASSES[conn_type].split(".")[-2]
    sources = [package / "settings.py", *package.glob(f"{module}*.py")]
    read = {
        name
        for source in sources
        for name in re.findall(r"""(?:extra_value|number)\(\s*["'](\w+)["']""", source.read_text())
    }
    return set(form) | read


def test_every_bpm_connection_type_has_an_example_and_each_example_builds_its_hook(monkeypatch):
    from airflow.models.connection import Connection

    from airflow_bpm_provider.hooks.registry import HOOK_CLASSES, get_bpm_hook

    examples = connection_examples()
    covered = set()
    for conn_id, value in examples.items():
        if value.lstrip().startswith("{"):
            spec = json.loads(value)
            conn = Connection(conn_id=conn_id.lower(), **spec)
        else:
            conn = Connection(conn_id=conn_id.lower(), uri=value)
        if conn.conn_type not in HOOK_CLASSES:
            assert conn.conn_type in ("aws", "wasb"), f"AIRFLOW_CONN_{conn_id}: unexpected {conn.conn_type}"
            continue
        unknown = set(conn.extra_dejson) - known_extras(conn.conn_type)
        assert not unknown, f"AIRFLOW_CONN_{conn_id}: {conn.conn_type} has no extra {sorted(unknown)}"
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id}", value)
        settings = get_bpm_hook(conn_id.lower()).settings  # parses and checks, sends nothing
        expected = conn.host if "://" in (conn.host or "") else None
        if expected is not None:
            assert settings.base_url == expected.rstrip("/"), conn_id
        covered.add(conn.conn_type)
    assert covered == set(HOOK_CLASSES), f"no README example for {set(HOOK_CLASSES) - covered}"


def test_a_connection_uri_example_puts_its_path_and_scheme_into_the_base_url(monkeypatch):
    from airflow_bpm_provider.hooks.registry import get_bpm_hook

    uris = {k: v for k, v in connection_examples().items() if not v.lstrip().startswith("{")}
    assert uris, "README shows no connection URI"
    for conn_id, uri in uris.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id}", uri)
        base_url = get_bpm_hook(conn_id.lower()).settings.base_url
        scheme = re.search(r"[?&]scheme=(\w+)", uri)
        parsed = re.match(r"\w+://[^@]+@([^/?]+)(/[^?]*)?", uri)
        expected_scheme = scheme.group(1) if scheme else "https"
        assert base_url == f"{expected_scheme}://{parsed.group(1)}{parsed.group(2) or ''}"


def test_the_distributed_section_says_where_a_local_destination_lands():
    text = " ".join(section("Running on a distributed Airflow").split())
    assert "whichever worker ran the" in text and "object storage" in text
    assert "`dest_conn_id` is a template field" in text


def test_a_wheel_built_from_a_clone_carries_the_license(tmp_path):
    """`pip install .` builds this wheel: it must carry the Apache-2.0 text and say so."""
    license_text = (README.parent / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    source = tmp_path / "src"  # a copy: the build leaves build/ and egg-info behind
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(README.parent / name, source / name)
    shutil.copytree(
        README.parent / "airflow_bpm_provider",
        source / "airflow_bpm_provider",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("airflow_bpm_provider-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        licenses = [name for name in names if name.endswith(".dist-info/licenses/LICENSE")]
        assert licenses, names
        assert archive.read(licenses[0]).decode() == license_text
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "License-File: LICENSE" in metadata
