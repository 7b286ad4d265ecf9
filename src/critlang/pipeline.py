"""The pipeline, in one place: text → parse → check → lower → engine.

The API, the CLI, the pytest plugin and the other front ends call these
functions, so every one of them sees the same protocol the same way.
"""

from __future__ import annotations

from pathlib import Path

from critlang.check import Checked, check_source
from critlang.diagnostics import CritError
from critlang.engines.python import compile_program
from critlang.evaluate import Protocol
from critlang.lower import lower
from critlang.terminology import Terminology, read_terminology


def build(checked: Checked) -> Protocol:
    """Lower a checked protocol and compile it with the Python engine."""
    lowered = lower(checked)
    return Protocol(lowered, compile_program(lowered.program))


def compile_source(
    text: str, file: str = "<string>", terminology: Terminology | str | Path | None = None
) -> Protocol:
    """Parse, check and compile protocol source text; raise CritError on errors.

    `terminology` decides `"CODE" and descendants` in code lists: a
    `Terminology` or the path of a closure file (TerminologyError if unreadable).
    """
    checked, diagnostics = check_source(text, file)
    if checked is None:
        raise CritError([d for d in diagnostics if d.is_error], text)
    if isinstance(terminology, str | Path):
        terminology = read_terminology(terminology)
    return build(checked.with_terminology(terminology))


def load(path: str | Path, terminology: Terminology | str | Path | None = None) -> Protocol:
    """Load and compile a `.crit` file (`terminology` as for `compile_source`)."""
    file = Path(path)
    return compile_source(file.read_text(encoding="utf-8"), str(path), terminology)
