"""The reference documentation: every parameter of every operator, sensor and trigger documented,
with an example per BPM system where the value depends on the system, and `make docs` rendering
one HTML page per class."""

from __future__ import annotations

import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "docs" / "build.py"

# Values that mean something different on each system: their docs give every system an example.
PER_SYSTEM = {
    "process",
    "definition",
    "variables",
    "business_key",
    "start_options",
    "complete_options",
    "query",
    "filters",
    "layout",
    "assignee",
    "pick",
    "task_name",
    "poll_interval",
    "poke_interval",
}
SYSTEMS = {
    "Questetra": r"Questetra",
    "Bonita": r"Bonita",
    "Activiti / Flowable / WSO2 EI": r"Activiti|Flowable|WSO2",
    "yuuvis": r"yuuvis",
}


def _builder():
    spec = importlib.util.spec_from_file_location("bpm_docs_build", BUILD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _builder()
CLASSES = build.public_classes()


def parameters(cls: type) -> list[str]:
    """The constructor's named parameters, with those that ``**kwargs`` hands to a provider base."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or not klass.__module__.startswith("airflow_bpm_provider."):
            continue
        signature = inspect.signature(klass.__init__)
        names += [
            p.name
            for p in signature.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in names
        ]
        if not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
            break
    return names


def documented(cls: type) -> dict[str, str]:
    """``:param name:`` fields of the class's own docstring: name -> text (continuation included)."""
    text = inspect.cleandoc(cls.__doc__ or "")
    fields = re.finditer(r"^:param (\w+):(.*(?:\n(?:[ ]+.*|))*)", text, flags=re.M)
    return {m.group(1): m.group(2).strip() for m in fields}


def test_the_public_classes_are_found():
    names = {cls.__name__ for cls in CLASSES}
    assert {
        "BpmStartProcessOperator",
        "BpmCompleteTaskOperator",
        "BpmDownloadProcessFilesOperator",
        "BpmProcessStateSensor",
        "BpmTaskSensor",
        "BpmProcessStateTrigger",
        "BpmTaskTrigger",
        "BpmProcessEventTrigger",
    } <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_constructor_parameter_is_documented(cls):
    docs = documented(cls)
    missing = [name for name in parameters(cls) if not docs.get(name)]
    assert not missing, f"{cls.__name__} documents no :param: for {missing}"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_documented_parameters_exist(cls):
    accepted = set(parameters(cls))
    for klass in cls.__mro__:  # Airflow's own (poke_interval, timeout, durable, ...)
        if "__init__" in vars(klass) and klass is not object:
            accepted |= set(inspect.signature(klass.__init__).parameters)
    stale = sorted(set(documented(cls)) - accepted)
    assert not stale, f"{cls.__name__} documents parameters it does not take: {stale}"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_system_dependent_parameters_have_an_example_for_every_system(cls):
    for name, text in documented(cls).items():
        if name not in PER_SYSTEM:
            continue
        absent = [system for system, pattern in SYSTEMS.items() if not re.search(pattern, text)]
        assert not absent, f"{cls.__name__}({name}=...) has no example for {absent}"
        assert "``" in text, f"{cls.__name__}({name}=...) shows no value"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_templated_says_which_parameters_are_template_fields(cls):
    fields = set(getattr(cls, "template_fields", ()))
    docs = documented(cls)
    claimed = {name for name, text in docs.items() if "templated" in text}
    assert claimed == fields & set(docs), f"{cls.__name__}: template_fields {sorted(fields)}"


def test_the_checks_above_can_fail():
    class Undocumented(CLASSES[0]):
        """Nothing here.

        :param process: ``"12"`` on Questetra only
        """

        __module__ = "airflow_bpm_provider.operators.undocumented"

        def __init__(self, *, process: str, colour: str, **kwargs) -> None: ...

    assert "colour" in parameters(Undocumented) and "colour" not in documented(Undocumented)
    text = documented(Undocumented)["process"]
    assert not re.search(SYSTEMS["Bonita"], text)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """What `make docs` runs (the Makefile's recipe), into a throwaway folder."""
    recipe = re.search(r"^docs:.*\n\t(.+)$", (ROOT / "Makefile").read_text(), flags=re.M)
    assert recipe is not None, "the Makefile has no docs target"
    command = recipe.group(1).split()
    assert command[:2] == ["$(BIN)/python", "docs/build.py"], recipe.group(1)
    output = tmp_path_factory.mktemp("docs") / "html"
    done = subprocess.run(
        [sys.executable, str(BUILD), "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return output


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_make_docs_writes_one_page_per_class_with_every_parameter(site, cls):
    page = site / build.page_path(cls)
    html = page.read_text()
    assert f'<section id="{cls.__name__}">' in html
    others = [other.__name__ for other in CLASSES if other is not cls]
    assert not [name for name in others if f'<section id="{name}">' in html]
    # pdoc renders each :param: as "<strong>name</strong>": a field it could not parse shows otherwise.
    unrendered = [name for name in documented(cls) if f"<strong>{name}</strong>" not in html]
    assert not unrendered, f"{page} does not show the parameters {unrendered}"


def test_the_index_links_every_page(site):
    index = (site / "index.html").read_text()
    for cls in CLASSES:
        assert f'href="{build.page_path(cls)}"' in index, cls.__name__


def test_the_build_refuses_a_module_with_two_documented_classes(monkeypatch):
    first, second = CLASSES[0], CLASSES[1]
    twin = type(second.__name__, (second,), {"__module__": first.__module__, "__doc__": second.__doc__})
    monkeypatch.setattr(build, "public_classes", lambda: [first, twin])
    with pytest.raises(SystemExit, match="two public classes"):
        build.pages()
