"""Protocol tests: the example patients a protocol carries, run through its evaluator.

An `example "title" { field = value, ... } expect outcome` block is a record
written in critlang; it goes through the same record intake as any patient
record (a quantity becomes `{"value": v, "unit": u}`), then through the
compiled evaluator, and its status is compared with the expected outcome.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from critlang import syntax as s
from critlang.check import check_source
from critlang.diagnostics import Diagnostic
from critlang.evaluate import ERROR, Protocol, Result
from critlang.pipeline import build
from critlang.records import ID_FIELD, RecordError


@attrs.frozen
class ExampleOutcome:
    """One example and what the evaluator made of it."""

    example: s.Example
    result: Result

    @property
    def passed(self) -> bool:
        return self.result.status == self.example.expect.text

    @property
    def where(self) -> str:
        return str(self.example.span)


@attrs.frozen
class FileOutcome:
    """The examples of one protocol file, or the diagnostics that stopped it."""

    path: str
    source: str
    outcomes: tuple[ExampleOutcome, ...]
    diagnostics: tuple[Diagnostic, ...]

    @property
    def usable(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)


def field_value(value: s.FieldValue, declared: s.DeclaredType | None = None) -> Any:
    """An example's field value as it would appear in a JSON record (docs/records.md).

    `declared` is the element's type: with it, a number given to a date is a year
    (a partial date) and a number in a history entry is in the history's unit."""
    match value:
        case s.QuantityLit(value=number, unit=unit):
            return {"value": number, "unit": unit}
        case s.NumberLit(value=number):
            return str(number) if isinstance(declared, s.DateType) else number
        case s.DateLit(value=day):
            return day.isoformat()
        case s.PartialDateLit(text=text):
            return text
        case s.BoolLit(value=truth):
            return truth
        case s.Name(text=text):
            return text
        case s.CodeLit():
            return _code(value)
        case s.HistoryLit(entries=entries):
            history_unit = declared.unit if isinstance(declared, s.HistoryType) else None
            return [_entry(entry, history_unit) for entry in entries]
        case tuple():
            return [name.text for name in value]
    raise AssertionError(f"unhandled field value {value!r}")


def _code(value: s.CodeLit) -> str:
    return f"{value.system.text}:{value.code}"


def _entry(entry: s.EntryLit, unit: str | None) -> dict[str, Any]:
    """One history entry as a record's JSON entry: dates as text, codes as `system:code`,
    value, low, high or dose as numbers with the one `unit` of the entry."""
    out: dict[str, Any] = {}
    given = {item.name.text: item.value for item in entry.items}
    amount = given.get("value", given.get("dose"))
    if isinstance(amount, s.QuantityLit):
        unit = amount.unit
    for name, value in given.items():
        match value:
            case s.QuantityLit(value=number) | s.NumberLit(value=number):
                out[name] = number
            case s.DateLit(value=day):
                out[name] = day.isoformat()
            case s.PartialDateLit(text=text):
                out[name] = text
            case s.CodeLit():
                out[name] = _code(value)
            case s.TextLit(text=text):
                out[name] = text
    if unit is not None and any(k in out for k in ("value", "low", "high", "dose")):
        out["unit"] = unit
    return out


def example_record(example: s.Example, protocol: s.Protocol | None = None) -> dict[str, Any]:
    """The record an example describes; its title is the record id. Give the protocol
    so that numbers are read as its data dictionary says (a year, a history's unit)."""
    declared = {} if protocol is None else {e.name.text: e.type for e in protocol.elements}
    record: dict[str, Any] = {ID_FIELD: example.title}
    for field in example.fields:
        record[field.name.text] = field_value(field.value, declared.get(field.name.text))
    return record


def run_example(protocol: Protocol, example: s.Example) -> ExampleOutcome:
    """Evaluate one example; a field that does not fit the data dictionary gives status 'error'."""
    try:
        result = protocol.evaluate(example_record(example, protocol.checked.protocol))
    except RecordError as error:
        result = Result(example.title, ERROR, error=str(error))
    return ExampleOutcome(example, result)


def run_examples(protocol: Protocol) -> tuple[ExampleOutcome, ...]:
    """Evaluate every example of a compiled protocol, in source order."""
    return tuple(run_example(protocol, e) for e in protocol.checked.protocol.examples)


def run_source(text: str, path: str) -> FileOutcome:
    """Check and compile protocol text, then run its examples."""
    checked, diagnostics = check_source(text, path)
    if checked is None:
        return FileOutcome(path, text, (), tuple(diagnostics))
    outcomes = run_examples(build(checked))
    return FileOutcome(path, text, outcomes, tuple(diagnostics))


def run_file(path: Path) -> FileOutcome:
    """Run the examples of a `.crit` file."""
    return run_source(path.read_text(encoding="utf-8"), str(path))


def summary_line(outcome: ExampleOutcome) -> str:
    """`file:line:col: pass|FAIL: "title" ...` for one example."""
    title = outcome.example.title
    expected = outcome.example.expect.text
    if outcome.passed:
        return f"{outcome.where}: pass: {title!r} is {expected}"
    return f"{outcome.where}: FAIL: {title!r}: expected {expected}, got {outcome.result.status}"


def failure_details(outcome: ExampleOutcome) -> str:
    """The criterion values behind a failed example, one per line, with their reasons."""
    result = outcome.result
    if result.error is not None:
        return f"  {result.error}"
    lines: list[str] = []
    for criterion in result.criteria:
        lines.append(f"  {criterion.id} {criterion.title}: {criterion.value_word}")
        if criterion.reason:
            lines.append(f"      {criterion.reason}")
        for part in criterion.parts:
            word = "not applicable" if part.applicable is False else _word(part.value)
            lines.append(f"    {part.name} {part.title or ''}: {word}".rstrip())
    if result.missing:
        lines.append(f"  missing: {', '.join(result.missing)}")
    return "\n".join(lines)


def _word(value: bool | None) -> str:
    return {True: "true", False: "false", None: "unknown"}[value]
