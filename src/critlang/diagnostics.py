"""Diagnostics are values: collected by every stage, sorted, rendered once."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from critlang.syntax import Span


@attrs.frozen
class Diagnostic:
    code: str
    severity: str  # "error" | "warning"
    span: Span
    message: str
    hint: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


class CritError(Exception):
    """Raised by the public API when a protocol has errors; carries them all."""

    def __init__(self, diagnostics: Iterable[Diagnostic], source: str | None = None) -> None:
        self.diagnostics = tuple(diagnostics)
        self.source = source
        super().__init__(render_all(self.diagnostics, source))


def sort_key(diagnostic: Diagnostic) -> tuple[str, int, int, str]:
    span = diagnostic.span
    return (span.file, span.line, span.column, diagnostic.code)


def render(diagnostic: Diagnostic, source: str | None) -> str:
    """`file:line:col: severity[CODE]: message`, the line, carets, and the hint."""
    span = diagnostic.span
    lines = [f"{span}: {diagnostic.severity}[{diagnostic.code}]: {diagnostic.message}"]
    # Lines as the lexer counts them: splitlines() would also break at form feeds
    # and other separators that Lark treats as plain whitespace.
    source_lines = source.split("\n") if source is not None else []
    if 1 <= span.line <= len(source_lines):
        text = source_lines[span.line - 1].rstrip("\r").expandtabs(1)
        if span.end_line == span.line and span.end_column > span.column:
            width = span.end_column - span.column
        else:
            width = max(1, len(text.rstrip()) - span.column + 1)
        gutter = f"{span.line:>4} | "
        lines.append(f"{gutter}{text.rstrip()}")
        lines.append(" " * (len(gutter) + span.column - 1) + "^" * max(1, width))
    if diagnostic.hint:
        lines.append(f"help: {diagnostic.hint}")
    return "\n".join(lines)


def render_all(diagnostics: Iterable[Diagnostic], source: str | None) -> str:
    return "\n".join(render(d, source) for d in sorted(diagnostics, key=sort_key))
