"""`make docs`: the HTML reference, one page per operator, sensor and trigger, from their docstrings.

pdoc renders each page (its reStructuredText mode reads the ``:param:`` fields). A page shows one
class: its docstring, constructor signature and template fields, not the helpers of its module,
so a module must hold one public operator, sensor or trigger (the build refuses two).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "templates"
DEFAULT_OUTPUT = ROOT / ".docs" / "html"
PACKAGES = {
    "airflow_bpm_provider.operators": "Operators",
    "airflow_bpm_provider.sensors": "Sensors",
    "airflow_bpm_provider.triggers": "Triggers",
}


def _modules(package: str) -> Iterator[str]:
    root = importlib.import_module(package)
    for info in pkgutil.iter_modules(root.__path__, prefix=package + "."):
        if not info.name.rsplit(".", 1)[-1].startswith("_"):
            yield info.name


def public_classes() -> list[type]:
    """Every public operator, sensor and trigger class of the provider, by module."""
    from airflow.sdk import BaseOperator
    from airflow.triggers.base import BaseTrigger

    found = []
    for package in PACKAGES:
        for name in _modules(package):
            module = importlib.import_module(name)
            found += [
                cls
                for attr, cls in vars(module).items()
                if inspect.isclass(cls)
                and cls.__module__ == name
                and not attr.startswith("_")
                and issubclass(cls, BaseOperator | BaseTrigger)
            ]
    return found


def pages() -> dict[str, type]:
    """Module name -> the class its page documents."""
    by_module: dict[str, type] = {}
    for cls in public_classes():
        if cls.__module__ in by_module:
            raise SystemExit(
                f"{cls.__module__} holds two public classes ({by_module[cls.__module__].__name__}, "
                f"{cls.__name__}); a page documents one: move one of them into its own module"
            )
        by_module[cls.__module__] = cls
    return by_module


def page_path(cls: type) -> str:
    """Where a class's page lies under the output folder (pdoc's links expect module paths)."""
    return cls.__module__.replace(".", "/") + ".html"


def build(output: Path = DEFAULT_OUTPUT) -> dict[type, Path]:
    """Write every page and an index; returns each class's page."""
    import pdoc.doc
    import pdoc.render

    documented = pages()
    # Airflow's base classes annotate attributes with names pdoc cannot resolve; not ours to fix.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pdoc\.")
    pdoc.render.configure(
        docformat="restructuredtext",
        template_directory=TEMPLATES,
        search=False,
        show_source=False,
        footer_text="airflow-bpm-provider",
    )
    pdoc.render.env.globals["page_classes"] = sorted(cls.__qualname__ for cls in documented.values())
    all_modules = {name: pdoc.doc.Module(importlib.import_module(name)) for name in documented}
    written: dict[type, Path] = {}
    for name, cls in documented.items():
        target = output / page_path(cls)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(pdoc.render.html_module(all_modules[name], all_modules), encoding="utf-8")
        written[cls] = target
    sections = {
        title: [
            (cls.__name__, page_path(cls), _summary(cls))
            for cls in documented.values()
            if cls.__module__.startswith(package + ".")
        ]
        for package, title in PACKAGES.items()
    }
    index = pdoc.render.env.get_template("index.html.jinja2").render(
        all_modules=all_modules, root_module_name=None, sections=sections
    )
    (output / "index.html").write_text(index, encoding="utf-8")
    return written


def _summary(cls: type) -> str:
    """The docstring's first paragraph as HTML (its ``code`` and :meth:`roles` rendered)."""
    from pdoc.docstrings import convert
    from pdoc.render_helpers import to_html

    first = inspect.cleandoc(cls.__doc__ or "").split("\n\n", 1)[0].replace("\n", " ")
    return to_html(convert(first, "restructuredtext", None))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="folder for the HTML pages")
    args = parser.parse_args(argv)
    written = build(args.output)
    print(f"{len(written)} pages in {args.output}: open {args.output / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
