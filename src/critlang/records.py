"""Record intake: patient records in, evaluator environments out.

Every value is validated and converted here, once, into what the compiled
evaluator expects: Decimals in the data element's declared unit, enum values
as strings, sets as frozensets, dates as `datetime.date`. Unit factors are
exact and cached per (unit, element); the evaluator never converts.
"""

from __future__ import annotations

import csv
import datetime
import decimal
import difflib
import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any

from critlang import syntax as s
from critlang import units
from critlang.check import Checked, Type

Converter = Callable[[Any], Any]
ID_FIELD = "id"


class RecordError(ValueError):
    """A record that cannot be screened: names the record, the field and the value."""

    def __init__(self, record_id: str, field: str | None, value: Any, problem: str) -> None:
        self.record_id = record_id
        self.field = field
        self.value = value
        self.problem = problem
        where = "" if field is None else f"field '{field}', value {_show(value)}: "
        super().__init__(f"record {record_id}: {where}{problem}")


class _Invalid(ValueError):
    """A value that does not fit its data element; the caller adds record and field."""


def _show(value: Any) -> str:
    if isinstance(value, Decimal | Fraction):
        return str(value)
    return json.dumps(value, default=str)


class Intake:
    """Validates and converts records for one protocol."""

    def __init__(self, checked: Checked) -> None:
        self.names = tuple(checked.elements)
        self.converters: dict[str, Converter] = {
            name: _converter(element, checked.element_types[name])
            for name, element in checked.elements.items()
        }

    def __call__(self, record: Mapping[str, Any], position: int) -> tuple[str, dict[str, Any]]:
        """(record id, environment); raise RecordError for anything that does not fit."""
        if not isinstance(record, Mapping):
            raise RecordError(str(position), None, record, "a record must be a JSON object")
        record_id = str(record.get(ID_FIELD, position))
        env: dict[str, Any] = {}
        converters = self.converters
        for field, value in record.items():
            if value is None or field == ID_FIELD:
                continue
            convert = converters.get(field)
            if convert is None:
                raise RecordError(record_id, field, value, self.unknown_field(field))
            try:
                env[field] = convert(value)
            except _Invalid as error:
                raise RecordError(record_id, field, value, str(error)) from None
        return record_id, env

    def unknown_field(self, field: str) -> str:
        close = difflib.get_close_matches(field, self.names, n=1)
        return "unknown field" + (f"; did you mean '{close[0]}'?" if close else "")


def _converter(element: s.DataElement, kind: Type) -> Converter:
    match kind.kind:
        case "boolean":
            return _boolean
        case "number":
            return functools.partial(_checked_range, _number, element.plausible_range, "")
        case "quantity":
            convert = functools.partial(
                _quantity, kind.unit, kind.molar_mass, _record_units(element, kind.unit)
            )
            return functools.partial(_checked_range, convert, element.plausible_range, kind.unit)
        case "enum":
            return functools.partial(_enum, frozenset(kind.values))
        case "set":
            return functools.partial(_set, frozenset(kind.values))
        case "date":
            return _date
    raise AssertionError(f"no intake for {kind}")


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _Invalid("expected true or false")


# Conversions round to 28 digits, half to even, whatever decimal context the caller has set.
_CONTEXT = decimal.Context(prec=28, rounding=decimal.ROUND_HALF_EVEN)


def _decimal(value: Fraction) -> Decimal:
    return _CONTEXT.divide(Decimal(value.numerator), Decimal(value.denominator))


def _record_units(element: s.DataElement, unit: str) -> dict[str, tuple[Fraction, Fraction]]:
    """The units of another kind the element lets records use: (scale, offset) for each."""
    found = {ref.code: (units.ucum_factor(ref.code, unit), Fraction(0)) for ref in element.accepts}
    for conversion in element.conversions:
        found[conversion.unit.code] = (Fraction(conversion.scale), Fraction(conversion.offset))
    return found


def _number(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | Fraction):
        raise _Invalid("expected a number")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise _Invalid("expected a finite number")
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Fraction):
        return _decimal(value)
    # A Python float: take the shortest decimal that reads back as it (1.4, not 1.3999...).
    if value != value or value in (float("inf"), float("-inf")):
        raise _Invalid("expected a finite number")
    return Decimal(repr(value))


def _quantity(
    unit: str,
    molar_mass: Fraction | None,
    declared: Mapping[str, tuple[Fraction, Fraction]],
    value: Any,
) -> Decimal:
    if not isinstance(value, Mapping):
        return _number(value)
    if set(value) != {"value", "unit"}:
        raise _Invalid('expected a number or {"value": ..., "unit": "<UCUM code>"}')
    given, code = value["value"], value["unit"]
    if not isinstance(code, str):
        raise _Invalid("the unit must be a UCUM code in a string")
    number = _number(given)
    if code == unit:
        return number
    if code in declared:
        scale, offset = declared[code]
    else:
        try:
            scale, offset = units.linear(code, unit, molar_mass)
        except units.UnitError as error:
            if not units.is_valid(code):
                usual = units.suggest(code)
                hint = f"; the UCUM code is '{usual}'" if usual else ""
                raise _Invalid(f"'{code}' is not a UCUM unit{hint}") from None
            raise _Invalid(str(error)) from None
    if abs(number.adjusted()) > 100:  # an exact product would take a very long number
        raise _Invalid("a measurement has at most 100 digits before or after the point")
    return _decimal(Fraction(number) * scale + offset)


def _checked_range(
    convert: Converter, limits: tuple[Decimal, Decimal] | None, unit: str, value: Any
) -> Decimal:
    number: Decimal = convert(value)
    if limits is not None and not limits[0] <= number <= limits[1]:
        shown = f" {unit}" if unit and unit != units.DIMENSIONLESS else ""
        # Converted values can have endless fractions (1600 mo in years): round for reading.
        readable = (
            number.quantize(Decimal("0.0001"), context=_CONTEXT).normalize(_CONTEXT)
            if number.adjusted() < 20
            else number
        )
        raise _Invalid(
            f"{readable:f}{shown} is outside the plausible range {limits[0]} to {limits[1]}{shown}"
        )
    return number


def _enum(allowed: frozenset[str], value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected one of {', '.join(sorted(allowed))}")
    if value not in allowed:
        raise _Invalid(f"not a declared value; expected one of {', '.join(sorted(allowed))}")
    return value


def _set(allowed: frozenset[str], value: Any) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise _Invalid("expected a list of values")
    for item in value:
        _enum(allowed, item)
    return frozenset(value)


def _date(value: Any) -> datetime.date:
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            pass
    raise _Invalid("expected a date as YYYY-MM-DD")


# ---- files --------------------------------------------------------------------

Row = tuple[int, Mapping[str, Any] | RecordError]
HEADER_UNIT = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*(?:\[(.+)\]|\((.+)\))\s*$")


def read_records(path: Path, checked: Checked) -> Iterator[Row]:
    """Records from .json (object or list), .jsonl or .csv, streamed where the format allows."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _jsonl(path)
    if suffix == ".csv":
        return _csv(path, checked)
    if suffix == ".json":
        return _json(path)
    raise ValueError(f"{path}: unknown record format '{suffix}' (use .json, .jsonl or .csv)")


def parse_json(text: str) -> Any:
    """JSON with exact decimals: 1.4 becomes Decimal('1.4'), never a binary float."""
    return json.loads(text, parse_float=Decimal)


def _json(path: Path) -> Iterator[Row]:
    try:
        data = parse_json(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        yield 1, RecordError("1", None, None, f"{path}: not valid JSON ({error})")
        return
    yield from enumerate(data if isinstance(data, list) else [data], start=1)


def _jsonl(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield number, parse_json(line)
            except json.JSONDecodeError as error:
                yield (
                    number,
                    RecordError(
                        str(number), None, None, f"line {number}: not valid JSON ({error.msg})"
                    ),
                )


def _csv(path: Path, checked: Checked) -> Iterator[Row]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return
        columns = [_column(title, checked) for title in header]
        for number, row in enumerate(reader, start=2):
            try:
                yield (
                    number,
                    {name: parse(cell) for (name, parse), cell in zip(columns, row, strict=True)},
                )
            except ValueError as error:
                yield number, RecordError(str(number), None, None, f"line {number}: {error}")


def _column(title: str, checked: Checked) -> tuple[str, Callable[[str], Any]]:
    """A CSV column: 'creatinine [umol/L]' names the element and the unit of its cells."""
    match = HEADER_UNIT.match(title)
    name, unit = (
        (match.group(1), match.group(2) or match.group(3)) if match else (title.strip(), None)
    )
    kind = checked.element_types.get(name)
    return name, functools.partial(_cell, kind, unit)


def _cell(kind: Type | None, unit: str | None, text: str) -> Any:
    text = text.strip()
    if text == "" or text.upper() in ("NA", "NULL"):
        return None
    match None if kind is None else kind.kind:
        case "boolean":
            lowered = text.lower()
            if lowered in ("true", "yes", "1"):
                return True
            if lowered in ("false", "no", "0"):
                return False
            return text
        case "number" | "quantity":
            try:
                number = Decimal(text)
            except InvalidOperation:
                return text
            return {"value": number, "unit": unit} if unit else number
        case "set":
            return [part.strip() for part in re.split(r"[;|]", text) if part.strip()]
    return text


def records_from(values: Iterable[Mapping[str, Any]]) -> Iterator[Row]:
    """Number in-memory records from 1, as the file readers do."""
    return enumerate(values, start=1)
