"""pytest plugin: the example patients of `.crit` files as test items.

pytest collects a `.crit` file when it is named on the command line, or when
it lies under one of the directories of the `crit_paths` ini setting (and
pytest walks there, e.g. because it is in `testpaths`). Each `example` block
becomes one item that passes when the compiled evaluator gives the expected
status. Registered through the `pytest11` entry point.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from critlang import syntax as s
    from critlang.evaluate import Protocol


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "crit_paths",
        "directories whose .crit files' example patients are collected as tests",
        type="paths",
        default=[],
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> CritFile | None:
    if file_path.suffix != ".crit":
        return None
    roots: list[Path] = parent.config.getini("crit_paths")
    if parent.session.isinitpath(file_path) or any(file_path.is_relative_to(r) for r in roots):
        return CritFile.from_parent(parent, path=file_path)
    return None


class CritFile(pytest.File):
    """A protocol file; collecting it checks and compiles it once for all its examples."""

    def collect(self) -> Iterator[CritItem]:
        # Imported here so that pytest runs that never meet a .crit file stay fast.
        from critlang.check import check_source
        from critlang.diagnostics import render_all
        from critlang.pipeline import build

        text = self.path.read_text(encoding="utf-8")
        checked, diagnostics = check_source(text, str(self.path))
        if checked is None:
            raise self.CollectError(render_all(diagnostics, text))
        protocol = build(checked)
        for example in checked.protocol.examples:
            yield CritItem.from_parent(self, name=example.title, example=example, protocol=protocol)


class ExampleFailed(Exception):
    """An example whose status is not the expected one; carries the report."""


class CritItem(pytest.Item):
    """One example patient."""

    def __init__(self, *, example: s.Example, protocol: Protocol, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.example = example
        self.protocol = protocol
        # Fixtures it uses, as pytest's own test functions have them: none. Plugins
        # read this while running every item; pytest-lsp 1.0.1 breaks an item without it.
        self.funcargs: dict[str, Any] = {}

    def runtest(self) -> None:
        from critlang.protocol_tests import failure_details, run_example, summary_line

        outcome = run_example(self.protocol, self.example)
        if not outcome.passed:
            raise ExampleFailed(summary_line(outcome) + "\n" + failure_details(outcome))

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str:
        if isinstance(excinfo.value, ExampleFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.example.span.line - 1, f"example {self.example.title!r}"
