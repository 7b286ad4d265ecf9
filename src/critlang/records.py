"""Record intake: patient records in, evaluator environments out.

Every value is validated and converted here, once, into what the compiled
evaluator expects: Decimals in the data element's declared unit, enum values
as strings, sets as frozensets, dates as `datetime.date`, a coded value as
`system:code` (ICD-10-CM without its dot), and a history as a tuple of entry
tuples laid out as `vocab.ENTRY_LAYOUT` says:

    measurement  (date, value, low, high, source)
    code         (date, code, source)
    medication   (start, end, code, dose, source)

from entry objects such as `{"date": "2026-05-02", "value": 1.6, "unit":
"mg/dL", "high": 1.2, "source": "Observation/123"}` (see "codes and histories"
below and docs/records.md), or from an events file (`read_events`). Unit
factors are exact and cached per (unit, element); the evaluator never converts.

The file readers never stop on a bad record: a line that is not UTF-8, not
JSON, a ragged CSV row, an unterminated quote or an oversized field becomes a
`RecordError` for that record, and the next record is read. Only a problem
with the file as a whole (an unknown format, a CSV header naming an element
twice) raises `InputError` before any record is read.
"""

from __future__ import annotations

import calendar
import codecs
import csv
import datetime
import decimal
import difflib
import functools
import importlib
import json
import math
import numbers
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

from critlang import codes, units
from critlang import syntax as s
from critlang.check import Checked, Type
from critlang.vocab import ENTRY_LAYOUT, EntryKind

Converter = Callable[[Any], Any]
ID_FIELD = "id"

# Limits, documented in docs/cli.md.
MAX_LINE_BYTES = 16 * 2**20  # a JSONL or CSV line longer than this is an error
MAX_CELL_CHARS = 131_072  # a CSV cell longer than this is an error (the csv module's limit)
MAX_CSV_RECORD_LINES = 100  # a quoted CSV cell may span at most this many lines
MAX_INTEGER_DIGITS = 18  # digits before the point of a number whose element has no range
SHOWN_CHARS = 60  # characters of an offending value repeated in a message
MAX_UNKNOWN_FIELDS = 1000  # distinct unknown field names remembered per run

# The spellings every reader and both engines share (docs/cli.md).
NA_TEXTS = frozenset({"", "NA", "N/A", "NAN", "NULL", "NONE"})  # compared upper-cased
TRUE_TEXTS = frozenset({"true", "yes", "1"})  # compared lower-cased
FALSE_TEXTS = frozenset({"false", "no", "0"})
NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
PARTIAL_DATE = re.compile(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?")
SET_SEPARATOR = re.compile(r"[;|]")
FORMATS = ("jsonl", "json", "csv", "parquet")

# Characters never shown as they are: C0 and C1 controls, line and paragraph
# separators, bidirectional overrides, and lone surrogates (not valid Unicode).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class RecordError(ValueError):
    """A record that cannot be screened: names the record, the field and the value."""

    def __init__(self, record_id: str, field: str | None, value: Any, problem: str) -> None:
        self.record_id = record_id
        self.field = field
        self.value = value
        self.problem = problem
        where = "" if field is None else f"field '{printable(field)}', value {_show(value)}: "
        super().__init__(f"record {printable(record_id)}: {where}{printable(problem)}")


class InputError(ValueError):
    """A record file that cannot be read at all (format, header)."""


class _Invalid(ValueError):
    """A value that does not fit its data element; the caller adds record and field."""


def printable(text: str) -> str:
    """`text` with control characters, bidi overrides and lone surrogates escaped as \\uXXXX."""
    if text.isascii() and text.isprintable():
        return text
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def shorten(text: str, limit: int = SHOWN_CHARS) -> str:
    """At most `limit` characters of `text`, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def _show(value: Any) -> str:
    if isinstance(value, Decimal | Fraction):
        text = str(value)
    elif isinstance(value, float | int) and not isinstance(value, bool):
        text = repr(float(value)) if isinstance(value, float) else str(int(value))
    else:
        try:
            text = json.dumps(value, default=str)
        except (ValueError, TypeError, RecursionError):
            text = "<a value that cannot be shown>"
    return printable(shorten(text))


_NEVER_MISSING = frozenset({str, bool, int, list, dict, tuple})


def _is_missing(value: Any) -> bool:
    """None, NaN (float, Decimal, numpy) and pandas' NA and NaT are unknown."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, Decimal):
        return value.is_nan()
    if type(value).__name__ in ("NAType", "NaTType"):
        return True
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        try:
            return math.isnan(float(value))
        except (TypeError, ValueError, OverflowError):
            return False
    return False


class Intake:
    """Validates and converts records for one protocol.

    Fields that are not data elements are ignored and counted in `unknown`
    (with `strict_fields`, they make the record an error). `id_field` names
    the field that identifies a record; records without it are numbered.
    """

    def __init__(
        self,
        checked: Checked,
        id_field: str = ID_FIELD,
        strict_fields: bool = False,
        as_of: datetime.date | None = None,
    ) -> None:
        self.names = tuple(checked.elements)
        self.converters: dict[str, Converter] = {
            name: _converter(element, checked.element_types[name])
            for name, element in checked.elements.items()
        }
        self.dates = frozenset(
            name for name, kind in checked.element_types.items() if kind.kind == "date"
        )
        # Each history with the field its entries are dated by (a medication's start).
        self.histories = tuple(
            (name, ENTRY_LAYOUT[EntryKind(kind.entry)][0])
            for name, kind in checked.element_types.items()
            if kind.kind == "history"
        )
        self.id_field = id_field
        self.strict_fields = strict_fields
        self.unknown: dict[str, int] = {}
        # The reference date (`as of`) for records that do not give it; never the wall clock.
        as_of_name = checked.protocol.header.as_of
        self.reference = as_of_name.text if as_of_name is not None else None
        self.as_of = as_of

    def __call__(self, record: Mapping[str, Any], position: int) -> tuple[str, dict[str, Any]]:
        """(record id, environment); raise RecordError for anything that does not fit."""
        if not isinstance(record, Mapping):
            raise RecordError(
                str(position), None, record, "a record must be an object of fields and values"
            )
        record_id = self.record_id(record, position)
        env: dict[str, Any] = {}
        converters = self.converters
        latest: dict[str, Any] = {}
        for field, value in record.items():
            convert = converters.get(field)
            if convert is None:
                if self.dates and self.latest_of(field) is not None:
                    latest[field] = value  # a date's last possible day, as screen's tables hold it
                elif field != self.id_field:
                    self.unknown_field(record_id, field, value)
                continue
            if value is None:
                continue
            given = type(value)
            if given is Decimal:
                if value.is_nan():  # what _is_missing says of a Decimal, without its tests
                    continue
            elif given not in _NEVER_MISSING and _is_missing(value):
                continue
            try:
                env[field] = convert(value)
            except _EntryInvalid as error:
                where = (
                    f"{field}[{error.index}].{error.key}"
                    if error.key
                    else f"{field}[{error.index}]"
                )
                raise RecordError(record_id, where, error.value, str(error)) from None
            except _Invalid as error:
                raise RecordError(record_id, field, value, str(error)) from None
            except (ArithmeticError, ValueError, TypeError, RecursionError) as error:
                problem = f"cannot be read ({type(error).__name__})"
                raise RecordError(record_id, field, value, problem) from None
        if self.dates:
            self.date_pairs(env)
            for field, value in latest.items():
                self.given_latest(record_id, env, field, value)
        if self.histories and self.reference is not None:
            self.no_future_entries(record_id, env)
        return record_id, env

    def no_future_entries(self, record_id: str, env: dict[str, Any]) -> None:
        """An entry dated (a medication started) after the reference date is a record error:
        a history says what happened, so it cannot be ahead of the day it is read on."""
        assert self.reference is not None
        reference = env.get(f"{self.reference} latest")
        if reference is None:
            return
        for name, key in self.histories:
            for index, entry in enumerate(env.get(name) or ()):
                if entry[0] > reference:
                    raise RecordError(
                        record_id,
                        f"{name}[{index}].{key}",
                        entry[0].isoformat(),
                        f"the entry is after the reference date {reference} ({self.reference})",
                    )

    def latest_of(self, field: Any) -> str | None:
        """The date element whose last possible day a field ('name latest') gives."""
        if not isinstance(field, str) or not field.endswith(" latest"):
            return None
        name = field.removesuffix(" latest")
        return name if name in self.dates else None

    def given_latest(self, record_id: str, env: dict[str, Any], field: str, value: Any) -> None:
        name = self.latest_of(field)
        if name is None or name not in env or value is None or _is_missing(value):
            return
        try:
            last = _date(value)[1]
        except _Invalid as error:
            raise RecordError(record_id, field, value, str(error)) from None
        if last < env[name]:
            raise RecordError(record_id, field, value, f"before the first day of '{name}'")
        env[field] = last

    def date_pairs(self, env: dict[str, Any]) -> None:
        """Each date as its first day under its name and its last under 'name latest'
        (ir.Element.key); the reference date from `as_of` when the record lacks it."""
        if self.reference is not None and self.as_of is not None and self.reference not in env:
            env[self.reference] = (self.as_of, self.as_of)
        for name in self.dates:
            pair = env.get(name)
            if pair is not None:
                env[name], env[f"{name} latest"] = pair

    def dated(self, as_of: datetime.date | str | None) -> Intake:
        """This intake with another reference date for records that lack one."""
        copy = Intake.__new__(Intake)
        copy.__dict__.update(self.__dict__)
        copy.unknown = {}
        copy.as_of = reference_date(as_of)
        return copy

    def record_id(self, record: Mapping[str, Any], position: int) -> str:
        """The record's id as text: a string or a whole number; else its position."""
        value = record.get(self.id_field)
        if _is_missing(value):
            return str(position)
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise RecordError(
                    str(position), self.id_field, value, "the id is not valid Unicode text"
                )
            if not value.strip():
                raise RecordError(str(position), self.id_field, value, "the id is empty")
            return value
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return str(int(value))
        if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
            return f"{value:f}"
        raise RecordError(
            str(position), self.id_field, value, "the id must be a string or a whole number"
        )

    def unknown_field(self, record_id: str, field: Any, value: Any) -> None:
        name = field if isinstance(field, str) else repr(field)
        if self.strict_fields:
            raise RecordError(record_id, name, value, self.describe_unknown(name))
        if name in self.unknown:
            self.unknown[name] += 1
        elif len(self.unknown) < MAX_UNKNOWN_FIELDS:
            self.unknown[name] = 1

    def describe_unknown(self, field: str) -> str:
        close = difflib.get_close_matches(field, self.names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"not a data element of the protocol{hint}"

    def unknown_report(self) -> list[str]:
        """One line per ignored field name: how many records had it, and a suggestion."""
        lines = []
        for name, count in sorted(self.unknown.items()):
            close = difflib.get_close_matches(name, self.names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            lines.append(f"'{printable(shorten(name))}' in {count} record(s){hint}")
        return lines


def _converter(element: s.DataElement, kind: Type) -> Converter:
    match kind.kind:
        case "boolean":
            return _boolean
        case "number" if kind.integer:
            return _decimal_first(
                functools.partial(_checked_range, _whole, element.plausible_range, ""),
                element.plausible_range,
                whole=True,
            )
        case "number":
            return _decimal_first(
                functools.partial(_checked_range, _number, element.plausible_range, ""),
                element.plausible_range,
            )
        case "ordinal":
            return functools.partial(_scale_value, kind.values)
        case "quantity":
            convert = functools.partial(
                _quantity, kind.unit, kind.molar_mass, _record_units(element, kind.unit)
            )
            return _decimal_first(
                functools.partial(_checked_range, convert, element.plausible_range, kind.unit),
                element.plausible_range,
            )
        case "enum":
            return functools.partial(_enum, frozenset(kind.values))
        case "set":
            return functools.partial(_set, frozenset(kind.values))
        case "date":
            return _date
        case "code":
            return _code
        case "history":
            return _history_converter(element, kind)
    raise AssertionError(f"no intake for {kind}")


def _decimal_first(
    convert: Converter, limits: tuple[Decimal, Decimal] | None, whole: bool = False
) -> Converter:
    """`convert`, with a short way for what JSON intake gives: a Decimal that is finite,
    of ordinary size, within the element's range (whole if it must be) is the value
    itself; anything else, a mistake included, goes through `convert` and its messages."""
    low, high = limits if limits is not None else (None, None)

    def read(value: Any) -> Any:
        if (
            type(value) is Decimal
            and value.is_finite()
            and (not value or -100 <= value.adjusted() <= 100)
            and (
                value.adjusted() < MAX_INTEGER_DIGITS if low is None else low <= value <= high  # type: ignore[operator]
            )
            and (not whole or value == value.to_integral_value())
        ):
            return value
        return convert(value)

    return read


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if _numpy_bool(value):
        return bool(value)
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


def given_number(value: Any) -> Decimal:
    """A record's number as the intake reads it (a float as its shortest decimal)."""
    return _number(value)


def _numpy_bool(value: Any) -> bool:
    kind = type(value)
    return kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_")


def _number(value: Any) -> Decimal:
    if isinstance(value, bool) or _numpy_bool(value):
        raise _Invalid("expected a number")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        # The shortest decimal that reads back as this float (1.4, not 1.3999...);
        # float.__repr__ also for numpy's float64, whose own repr names its type.
        if math.isinf(value):
            raise _Invalid("expected a finite number")
        number = Decimal(float.__repr__(value))
    elif isinstance(value, Fraction):
        number = _decimal(value)
    elif isinstance(value, numbers.Integral):  # numpy and other integer types
        number = Decimal(int(value))
    elif isinstance(value, numbers.Real):  # numpy's float32 and the like: their shortest text
        text = str(value)
        number = Decimal(text) if NUMBER_TEXT.fullmatch(text) else Decimal(repr(float(value)))
    else:
        raise _Invalid("expected a number")
    if not number.is_finite():
        raise _Invalid("expected a finite number")
    # Exponents this far out overflow any arithmetic; no measurement needs them.
    if number and not -100 <= number.adjusted() <= 100:
        raise _Invalid("expected a number of ordinary size")
    return number


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
    scale, offset = _reading(unit, molar_mass, declared, code)
    return _decimal(Fraction(number) * scale + offset)


def _reading(
    unit: str,
    molar_mass: Fraction | None,
    declared: Mapping[str, tuple[Fraction, Fraction]],
    code: str,
) -> tuple[Fraction, Fraction]:
    """(scale, offset) reading a number in `code` as scale x number + offset in `unit`."""
    if code in declared:
        return declared[code]
    try:
        return units.linear(code, unit, molar_mass)
    except units.UnitError as error:
        if not units.is_valid(code):
            usual = units.suggest(code)
            hint = f"; the UCUM code is '{usual}'" if usual else ""
            raise _Invalid(f"'{code}' is not a UCUM unit{hint}") from None
        raise _Invalid(str(error)) from None


def unit_reading(element: s.DataElement, kind: Type, code: str) -> tuple[Fraction, Fraction] | str:
    """How the intake reads a number of `element` given in `code`: (scale, offset), exact,
    with value = scale x number + offset in the declared unit; or, for a unit it refuses,
    what it says is wrong. The SQL engine reads a column in `code` by the same rule.
    """
    if code == kind.unit:
        return Fraction(1), Fraction(0)
    try:
        return _reading(kind.unit, kind.molar_mass, _record_units(element, kind.unit), code)
    except _Invalid as error:
        return str(error)


def _checked_range(
    convert: Converter, limits: tuple[Decimal, Decimal] | None, unit: str, value: Any
) -> Decimal:
    number: Decimal = convert(value)
    shown = f" {unit}" if unit and unit != units.DIMENSIONLESS else ""
    if limits is None:
        # The same bound as SQL's for an element without a range (sql.UNBOUNDED_DIGITS).
        if number and number.adjusted() >= MAX_INTEGER_DIGITS:
            raise _Invalid(
                f"expected a number of at most {MAX_INTEGER_DIGITS} digits before the point"
            )
        return number
    if not limits[0] <= number <= limits[1]:
        # Converted values can have endless fractions (1600 mo in years): round for reading.
        readable = (
            number.quantize(Decimal("0.0001"), context=_CONTEXT).normalize(_CONTEXT)
            if number.adjusted() < 20
            else number
        )
        raise _Invalid(
            f"{shorten(f'{readable:f}')}{shown} is outside the plausible range "
            f"{limits[0]} to {limits[1]}{shown}"
        )
    return number


def _enum(allowed: frozenset[str], value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected one of {', '.join(sorted(allowed))}")
    if value not in allowed:
        raise _Invalid(f"not a declared value; expected one of {', '.join(sorted(allowed))}")
    return str(value)


def _whole(value: Any) -> Decimal:
    """An `integer` element's value: a number with nothing after the point."""
    number = _number(value)
    if number != number.to_integral_value():
        raise _Invalid("expected a whole number")
    return number


def _scale_value(scale: tuple[str, ...], value: Any) -> str:
    """An `ordinal` element's value: the name of a value of its scale."""
    if not isinstance(value, str) or value not in scale:
        raise _Invalid(f"expected a value of the scale, lowest first: {', '.join(scale)}")
    return value


def _set(allowed: frozenset[str], value: Any) -> frozenset[str]:
    if hasattr(value, "tolist") and not isinstance(value, str):  # a numpy array
        value = value.tolist()
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise _Invalid("expected a list of values")
    for item in value:
        _enum(allowed, item)
    return frozenset(str(item) for item in value)


def _date(value: Any) -> tuple[datetime.date, datetime.date]:
    """A date as (first day, last day): the same day twice unless it is partial."""
    if isinstance(value, datetime.datetime):  # pandas' Timestamp too
        return value.date(), value.date()
    if isinstance(value, datetime.date):
        return value, value
    if isinstance(value, str):
        found = partial_date(value.strip())
        if found is not None:
            return found
        if PARTIAL_DATE.fullmatch(value.strip()):
            raise _Invalid("not a date of the calendar (a month is 01 to 12, a day one it has)")
    raise _Invalid("expected a date as YYYY-MM-DD, or a year and month (YYYY-MM) or year (YYYY)")


def partial_date(text: str) -> tuple[datetime.date, datetime.date] | None:
    """`2019-05-02`, `2019-05` or `2019` as its first and last possible day; None if it
    names no day of the calendar (`2019-13`, `2019-02-30`)."""
    match = PARTIAL_DATE.fullmatch(text)
    if match is None:
        return None
    year, month, day = (int(part) if part else None for part in match.groups())
    assert year is not None
    try:
        if month is None:
            return datetime.date(year, 1, 1), datetime.date(year, 12, 31)
        if day is None:
            last = calendar.monthrange(year, month)[1]
            return datetime.date(year, month, 1), datetime.date(year, month, last)
        return datetime.date(year, month, day), datetime.date(year, month, day)
    except (ValueError, calendar.IllegalMonthError):
        return None


def reference_date(value: datetime.date | str | None) -> datetime.date | None:
    """An `--as-of` / `as_of=` date: a full calendar date (YYYY-MM-DD); ValueError if not."""
    if value is None:
        return None
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value
    if isinstance(value, str) and DATE_TEXT.fullmatch(value.strip()):
        try:
            return datetime.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"the reference date must be a day as YYYY-MM-DD, not {_show(value)}")


# ---- codes and histories ----------------------------------------------------------
#
# A coded element's value is `system:code` (codes.coded_value). A history is a
# list of entries, each an object (JSON/JSONL, or gathered from an events file):
#
#   measurement  {"date": "2026-05-02", "value": 1.6, "unit": "mg/dL",
#                 "low": 0.6, "high": 1.2, "source": "Observation/123"}
#   code         {"date": "2019-05-02", "code": "icd10cm:M34.81", "end": "2020-01-10",
#                 "source": "Condition/9"}
#                (or "system": "icd10cm", "code": "M34.81"; the system may be its FHIR URI;
#                `end`, when the condition resolved, is optional)
#   medication   {"start": "2025-01-01", "end": null, "code": "atc:L04AA06",
#                 "dose": 2000, "unit": "mg/d", "source": "MedicationStatement/4"}
#
# Intake turns a history into a tuple of entry tuples laid out as
# vocab.ENTRY_LAYOUT says, every engine's Python representation:
#
#   measurement  (date, value, low, high, source)
#   code         (date, code, end, source)
#   medication   (start, end, code, dose, source)
#
# dates are `datetime.date` (full dates only), value/low/high/dose Decimals in
# the history's declared unit (converted exactly; another kind is refused),
# codes `system:code` strings, `end` None while ongoing (or, for a code entry,
# when no end is on record), `source` a string or
# None; low, high and dose may be None. Entries keep the record's order.

ENTRY_KEYS = {
    "measurement": frozenset({"date", "value", "unit", "low", "high", "source"}),
    "code": frozenset({"date", "code", "system", "end", "source"}),
    "medication": frozenset({"start", "end", "code", "system", "dose", "unit", "source"}),
}


class _EntryInvalid(_Invalid):
    """A history entry that does not fit: which entry (from 0), which key, what value."""

    def __init__(self, index: int, key: str | None, value: Any, problem: str) -> None:
        super().__init__(problem)
        self.index = index
        self.key = key
        self.value = value


def _code(value: Any) -> str:
    if isinstance(value, Mapping) and set(value) == {"system", "code"}:
        system, code = value["system"], value["code"]
        if not isinstance(system, str) or not isinstance(code, str):
            raise _Invalid("a code and its system are text")
        return _coded(code, system)
    if not isinstance(value, str):
        raise _Invalid('expected a code as text, "system:code" (icd10cm:M34.81)')
    return _coded(value, None)


def _coded(value: str, system: str | None) -> str:
    try:
        return codes.coded_value(value, system)
    except ValueError as error:
        raise _Invalid(str(error)) from None


def _history_converter(element: s.DataElement, kind: Type) -> Converter:
    unit = None if kind.unit == units.DIMENSIONLESS and kind.entry != "measurement" else kind.unit
    quantity = None
    if unit is not None:
        convert = functools.partial(_quantity, unit, kind.molar_mass, _record_units(element, unit))
        quantity = functools.partial(_checked_range, convert, None, unit)
    return functools.partial(_history, kind.entry, unit, quantity)


def _history(
    entry: str, unit: str | None, quantity: Converter | None, value: Any
) -> tuple[tuple[Any, ...], ...]:
    if hasattr(value, "tolist") and not isinstance(value, str):  # a numpy array
        value = value.tolist()
    if isinstance(value, str | Mapping) or not isinstance(value, list | tuple):
        raise _Invalid("a history is a list of entries, each an object")
    read = _ENTRY_READERS[entry]
    return tuple([read(index, item, unit, quantity) for index, item in enumerate(value)])


def _entry_fields(index: int, item: Any, entry: str) -> Mapping[str, Any]:
    if not isinstance(item, Mapping):
        raise _EntryInvalid(index, None, item, "an entry is an object of fields")
    for key in item:
        if key not in ENTRY_KEYS[entry]:
            known = ", ".join(sorted(ENTRY_KEYS[entry]))
            raise _EntryInvalid(
                index, str(key), item[key], f"not a field of a {entry} entry (they are: {known})"
            )
    return item


def _given(item: Mapping[str, Any], key: str) -> Any:
    value = item.get(key)
    return None if value is None or _is_missing(value) else value


def _entry_date(index: int, item: Mapping[str, Any], key: str, required: bool = True) -> Any:
    value = _given(item, key)
    if value is None:
        if required:
            raise _EntryInvalid(index, key, None, f"the entry has no {key}")
        return None
    try:
        first, last = _date(value)
    except _Invalid:
        first, last = None, datetime.date.min
    if first is None or first != last:
        raise _EntryInvalid(
            index, key, value, "expected a full date as YYYY-MM-DD (an entry needs the day)"
        )
    return first


def _entry_quantity(
    index: int,
    item: Mapping[str, Any],
    key: str,
    unit: str | None,
    quantity: Converter | None,
) -> Decimal | None:
    value = _given(item, key)
    if value is None:
        return None
    given_unit = _given(item, "unit")
    if quantity is None or unit is None:
        raise _EntryInvalid(index, key, value, "the history declares no unit for it")
    if given_unit is None:
        if unit != units.DIMENSIONLESS:
            raise _EntryInvalid(index, "unit", None, f"the entry gives no unit (expected '{unit}')")
        given_unit = unit
    try:
        number: Decimal = quantity({"value": value, "unit": given_unit})
        return number
    except _Invalid as error:
        raise _EntryInvalid(index, key, value, str(error)) from None
    except (ArithmeticError, ValueError, TypeError) as error:
        raise _EntryInvalid(index, key, value, f"cannot be read ({type(error).__name__})") from None


def _entry_code(index: int, item: Mapping[str, Any]) -> str:
    code = _given(item, "code")
    if code is None:
        raise _EntryInvalid(index, "code", None, "the entry has no code")
    system = _given(item, "system")
    if not isinstance(code, str) or not (system is None or isinstance(system, str)):
        raise _EntryInvalid(index, "code", code, "a code and its system are text")
    try:
        return codes.coded_value(code, system)
    except ValueError as error:
        raise _EntryInvalid(index, "code", code, str(error)) from None


def _entry_source(index: int, item: Mapping[str, Any]) -> str | None:
    source = _given(item, "source")
    if source is not None and not isinstance(source, str):
        raise _EntryInvalid(index, "source", source, "a source is text, as in Observation/123")
    return source


def _measurement_entry(
    index: int, raw: Any, unit: str | None, quantity: Converter | None
) -> tuple[Any, ...]:
    item = _entry_fields(index, raw, "measurement")
    day = _entry_date(index, item, "date")
    value = _entry_quantity(index, item, "value", unit, quantity)
    if value is None:
        raise _EntryInvalid(index, "value", None, "the entry has no value")
    low = _entry_quantity(index, item, "low", unit, quantity)
    high = _entry_quantity(index, item, "high", unit, quantity)
    return (day, value, low, high, _entry_source(index, item))


def _code_entry(
    index: int, raw: Any, unit: str | None, quantity: Converter | None
) -> tuple[Any, ...]:
    item = _entry_fields(index, raw, "code")
    day = _entry_date(index, item, "date")
    end = _entry_date(index, item, "end", required=False)
    if end is not None and end < day:
        raise _EntryInvalid(
            index, "end", _given(item, "end"), f"the end is before the date ({day})"
        )
    return (day, _entry_code(index, item), end, _entry_source(index, item))


def _medication_entry(
    index: int, raw: Any, unit: str | None, quantity: Converter | None
) -> tuple[Any, ...]:
    item = _entry_fields(index, raw, "medication")
    start = _entry_date(index, item, "start")
    end = _entry_date(index, item, "end", required=False)
    if end is not None and end < start:
        raise _EntryInvalid(
            index, "end", _given(item, "end"), f"the end is before the start ({start})"
        )
    code = _entry_code(index, item)
    dose = _entry_quantity(index, item, "dose", unit, quantity)
    return (start, end, code, dose, _entry_source(index, item))


_ENTRY_READERS: dict[str, Callable[[int, Any, str | None, Converter | None], tuple[Any, ...]]] = {
    "measurement": _measurement_entry,
    "code": _code_entry,
    "medication": _medication_entry,
}


# ---- files --------------------------------------------------------------------

Row = tuple[int, Mapping[str, Any] | RecordError]
HEADER_UNIT = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*(?:\[(.+)\]|\((.+)\))\s*$")
STDIN = "-"


def record_format(source: Path | str, given: str | None = None) -> str:
    """The record format of `source`: `given`, else its suffix; JSON Lines for stdin."""
    if given is not None:
        if given not in FORMATS:
            raise InputError(f"unknown record format '{given}' (use {', '.join(FORMATS)})")
        return given
    if str(source) == STDIN:
        return "jsonl"
    suffix = Path(source).suffix.lower().lstrip(".")
    if suffix == "ndjson":
        return "jsonl"
    if suffix not in FORMATS:
        raise InputError(
            f"{source}: unknown record format '.{suffix}' (use .json, .jsonl, .csv or .parquet)"
        )
    return suffix


def read_records(
    source: Path | str,
    checked: Checked,
    fmt: str | None = None,
    stream: IO[bytes] | None = None,
) -> Iterator[Row]:
    """Records from .json (object or list), .jsonl, .csv or .parquet, streamed where possible.

    `source` "-" reads standard input (or `stream`). Raise InputError when the
    file as a whole cannot be read; every problem with one record is a
    RecordError in its place, and reading goes on.
    """
    kind = record_format(source, fmt)
    if kind == "parquet":
        if str(source) == STDIN:
            raise InputError("Parquet records cannot come from standard input")
        return _parquet(Path(source), checked)
    handle = stream if stream is not None else _open(source)
    if kind == "jsonl":
        return _closing(handle, _jsonl(handle))
    if kind == "json":
        return _closing(handle, _json(handle))
    try:
        rows = _csv(handle, checked, str(source))
    except InputError:
        _close(handle)
        raise
    return _closing(handle, rows)


def _open(source: Path | str) -> IO[bytes]:
    if str(source) == STDIN:
        return sys.stdin.buffer
    try:
        return Path(source).open("rb")
    except OSError as error:
        raise InputError(f"{source}: cannot read the file ({error.strerror or error})") from None


def _closing(handle: IO[bytes], rows: Iterator[Row]) -> Iterator[Row]:
    try:
        yield from rows
    finally:
        _close(handle)


def _close(handle: IO[bytes]) -> None:
    if handle is not sys.stdin.buffer:
        handle.close()


def parse_json(text: str) -> Any:
    """JSON with exact decimals: 1.4 becomes Decimal('1.4'), never a binary float.

    Integers become Decimals too (no limit on their digits), a key given twice
    is refused, and NaN is read as unknown.
    """
    if isinstance(text, str) and not text.startswith("\ufeff"):
        return _DECODER.decode(text)  # json.loads without a new decoder for every line
    return json.loads(
        text,
        parse_float=Decimal,
        parse_int=Decimal,
        parse_constant=_json_constant,
        object_pairs_hook=_json_object,
    )


class _DuplicateKey(ValueError):
    pass


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(f"the key '{printable(shorten(key))}' is given twice")
            seen.add(key)
    return record


def _json_constant(name: str) -> Any:
    if name == "NaN":
        return None
    raise ValueError(f"{name} is not a number a record can hold")


_DECODER = json.JSONDecoder(
    parse_float=Decimal,
    parse_int=Decimal,
    parse_constant=_json_constant,
    object_pairs_hook=_json_object,
)


def _json_problem(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"not valid JSON ({error.msg} at column {error.colno})"
    if isinstance(error, RecursionError):
        return "not valid JSON (nested too deeply)"
    if isinstance(error, _DuplicateKey):
        return str(error)
    return f"not valid JSON ({printable(shorten(str(error), 100))})"


def _lines(handle: IO[bytes]) -> Iterator[tuple[int, str | _Bad]]:
    """Physical lines, each decoded alone: a bad byte spoils only its own line."""
    number = 0
    while True:
        raw = handle.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while (rest := handle.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
            yield number, _Bad(f"longer than {MAX_LINE_BYTES} bytes")
            continue
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as error:
            column = len(raw[: error.start].decode("utf-8", "replace")) + 1
            yield (
                number,
                _Bad(f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at column {column})"),
            )


class _Bad:
    """A physical line that could not be read, and why."""

    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _line_error(number: int, problem: str) -> RecordError:
    return RecordError(str(number), None, None, f"line {number}: {problem}")


def _jsonl(handle: IO[bytes]) -> Iterator[Row]:
    for number, line in _lines(handle):
        if isinstance(line, _Bad):
            yield number, _line_error(number, line.problem)
            continue
        if not line.strip():
            continue
        try:
            yield number, parse_json(line)
        except (ValueError, RecursionError) as error:
            yield number, _line_error(number, _json_problem(error))


def _json(handle: IO[bytes]) -> Iterator[Row]:
    data = handle.read()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        problem = f"line {line}: not valid UTF-8 (byte 0x{data[error.start]:02x})"
        yield 1, RecordError("1", None, None, problem)
        return
    try:
        parsed = parse_json(text)
    except (ValueError, RecursionError) as error:
        where = f"line {error.lineno}: " if isinstance(error, json.JSONDecodeError) else ""
        yield 1, RecordError("1", None, None, where + _json_problem(error))
        return
    yield from enumerate(parsed if isinstance(parsed, list) else [parsed], start=1)


# ---- CSV --------------------------------------------------------------------------


def _csv(handle: IO[bytes], checked: Checked, name: str) -> Iterator[Row]:
    lines = _Pushback(_lines(handle))
    header = _csv_header(lines, name)
    if header is None:
        return iter(())
    columns = _columns(header, checked, name)
    return _csv_rows(lines, columns)


class _Pushback:
    """Physical lines with lines put back, so a bad record's following lines are reread."""

    def __init__(self, lines: Iterator[tuple[int, str | _Bad]]) -> None:
        self.lines = lines
        self.back: list[tuple[int, str | _Bad]] = []

    def next(self) -> tuple[int, str | _Bad] | None:
        if self.back:
            return self.back.pop()
        return next(self.lines, None)

    def put_back(self, lines: list[tuple[int, str | _Bad]]) -> None:
        self.back.extend(reversed(lines))


def _csv_header(lines: _Pushback, name: str) -> list[str] | None:
    while (item := lines.next()) is not None:
        number, line = item
        if isinstance(line, _Bad):
            raise InputError(f"{name}: line {number}, the header, is {line.problem}")
        if not line.strip():
            continue
        cells, problem, _ = _csv_record(number, line, lines)
        if cells is None:
            raise InputError(f"{name}: line {number}, the header: {problem}")
        return cells
    return None


def _csv_record(
    number: int, line: str, lines: _Pushback
) -> tuple[list[str] | None, str, list[tuple[int, str | _Bad]]]:
    """(cells or None, what is wrong, the further physical lines the record took)."""
    taken: list[tuple[int, str | _Bad]] = []
    text = line
    while True:
        try:
            return next(csv.reader([text], strict=True)), "", taken
        except csv.Error as error:
            message = str(error)
            if "field larger than field limit" in message:
                return None, f"a cell is longer than {MAX_CELL_CHARS} characters", taken
            if "unexpected end of data" not in message:
                return None, f"not a well-formed CSV row ({message})", taken
        # A quoted cell runs on to the next line: legal, within limits.
        item = lines.next() if len(taken) < MAX_CSV_RECORD_LINES else None
        if item is None or isinstance(item[1], _Bad):
            if item is not None:
                taken.append(item)
            return None, "a quoted cell is never closed (unterminated quote)", taken
        taken.append(item)
        text += item[1]


def _csv_rows(
    lines: _Pushback, columns: list[tuple[str, Callable[[str], Any]] | None]
) -> Iterator[Row]:
    width = len(columns)
    while (item := lines.next()) is not None:
        number, line = item
        if isinstance(line, _Bad):
            yield number, _line_error(number, line.problem)
            continue
        if not line.strip():
            continue
        cells, problem, taken = _csv_record(number, line, lines)
        if cells is not None and len(cells) != width:
            problem = f"{len(cells)} cell(s) where the header has {width}"
            if taken:
                problem += " (an unterminated quote?)"
            cells = None
        if cells is None:
            # Read the lines a broken record swallowed again as records of their own.
            lines.put_back(taken)
            yield number, _line_error(number, problem)
            continue
        record: dict[str, Any] = {}
        for column, cell in zip(columns, cells, strict=True):
            if column is not None:
                record[column[0]] = column[1](cell)
        yield number, record


def _columns(
    header: list[str], checked: Checked, name: str
) -> list[tuple[str, Callable[[str], Any]] | None]:
    """Each CSV column's field and cell reader; refuse an element given by two columns."""
    columns: list[tuple[str, Callable[[str], Any]] | None] = []
    given: dict[str, str] = {}
    for title in header:
        field, unit = split_header(title)
        kind = checked.element_types.get(field)
        if field in given and (kind is not None or field == ID_FIELD):
            raise InputError(
                f"{name}: columns '{printable(shorten(given[field]))}' and "
                f"'{printable(shorten(title))}' both give '{printable(shorten(field))}'"
            )
        given[field] = title
        columns.append((field, functools.partial(_cell, kind, unit)))
    return columns


def split_header(title: str) -> tuple[str, str | None]:
    """'creatinine [umol/L]' names the element and the unit of its cells."""
    match = HEADER_UNIT.match(title)
    if match:
        return match.group(1), match.group(2) or match.group(3)
    return title.strip(), None


def _cell(kind: Type | None, unit: str | None, text: str) -> Any:
    """A CSV cell (or a text cell of Parquet) as the value it spells."""
    text = text.strip()
    if text.upper() in NA_TEXTS:
        return None
    match None if kind is None else kind.kind:
        case "boolean":
            lowered = text.lower()
            if lowered in TRUE_TEXTS:
                return True
            if lowered in FALSE_TEXTS:
                return False
            return text
        case "number" | "quantity":
            if not NUMBER_TEXT.fullmatch(text):
                return text
            number = Decimal(text)
            return {"value": number, "unit": unit} if unit else number
        case "set":
            return [part.strip() for part in SET_SEPARATOR.split(text) if part.strip()]
    return text


# ---- Parquet -------------------------------------------------------------------------


def _parquet(path: Path, checked: Checked) -> Iterator[Row]:
    try:
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise InputError("reading Parquet needs pyarrow: pip install 'critlang[sql]'") from None
    try:
        table = pq.ParquetFile(path)
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: cannot read the Parquet file ({error})") from None
    header = list(table.schema_arrow.names)
    columns = _columns(header, checked, str(path))
    return _parquet_rows(table, header, columns)


def _parquet_rows(
    table: Any, header: list[str], columns: list[tuple[str, Callable[[str], Any]] | None]
) -> Iterator[Row]:
    position = 0
    units_of = [split_header(title)[1] for title in header]
    batches = table.iter_batches(batch_size=4096)
    while True:
        try:
            batch = next(batches, None)
        except (OSError, ValueError) as error:
            raise InputError(
                f"after record {position}: cannot read the Parquet file ({error})"
            ) from None
        if batch is None:
            return
        for row in batch.to_pylist():
            position += 1
            record: dict[str, Any] = {}
            for title, column, unit in zip(header, columns, units_of, strict=True):
                if column is None:
                    continue
                value = row[title]
                if isinstance(value, str):
                    value = column[1](value)  # text in Parquet is read as CSV cells are
                elif unit is not None and not _is_missing(value):
                    value = {"value": value, "unit": unit}
                record[column[0]] = value
            yield position, record


def records_from(values: Iterable[Mapping[str, Any]]) -> Iterator[Row]:
    """Number in-memory records from 1, as the file readers do."""
    return enumerate(values, start=1)


# ---- events files: histories as one row per entry -----------------------------------
#
# `critlang eval RECORDS --events EVENTS` reads the histories from a long file
# (.csv or .parquet) with the columns
#
#   id, element, date, value, unit, low, high, code, start, end, dose, source
#
# one row per entry, unused cells empty: `id` names the record, `element` the
# history. Each row becomes the entry object of the JSON format (docs/records.md)
# and is checked when the file is read, so a bad row is reported with its line
# and its record is an error, while the other records go on. Rows naming an
# element that is not a history of the protocol are counted and left out. A
# record then has every history of the protocol, with no entries when the file
# has none for it. The file is held in memory, grouped by record id.

EVENT_COLUMNS = (
    "id",
    "element",
    "date",
    "value",
    "unit",
    "low",
    "high",
    "code",
    "start",
    "end",
    "dose",
    "source",
)
_EVENT_TEXT = frozenset({"id", "element", "unit", "code", "source", "date", "start", "end"})


class Events:
    """The entries of an events file, by record id and history, checked as they were read."""

    def __init__(self, histories: tuple[str, ...]) -> None:
        self.histories = histories
        self.entries: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self.errors: dict[str, RecordError] = {}  # the first bad row of each record
        self.ignored: dict[str, int] = {}  # rows of elements that are not histories
        self.bad_lines: list[str] = []  # rows that could not be read at all (no record known)

    def merged(self, record: Mapping[str, Any], record_id: str) -> Mapping[str, Any]:
        """The record with its histories from the file; raise the record's first bad row."""
        if record_id in self.errors:
            raise self.errors[record_id]
        found = self.entries.get(record_id, {})
        merged = dict(record)
        for name in self.histories:
            if merged.get(name) is not None:
                raise RecordError(
                    record_id,
                    name,
                    None,
                    "the history is given both in the record and in the events file; give it once",
                )
            merged[name] = found.get(name, [])
        return merged


def read_events(source: Path | str, checked: Checked) -> Events:
    """An events file (.csv or .parquet), every row checked; InputError if it cannot be read."""
    kinds = {name: kind for name, kind in checked.element_types.items() if kind.kind == "history"}
    if not kinds:
        raise InputError(f"{source}: the protocol has no history to read events for")
    events = Events(tuple(kinds))
    checkers = {
        name: _history_converter(checked.elements[name], kind) for name, kind in kinds.items()
    }
    kind = record_format(source)
    if kind not in ("csv", "parquet"):
        raise InputError(f"{source}: an events file is .csv or .parquet, not .{kind}")
    rows = _event_rows_parquet(Path(source)) if kind == "parquet" else _event_rows_csv(source)
    for line, row in rows:
        if isinstance(row, RecordError):
            events.bad_lines.append(row.problem)
            continue
        _add_event(events, checkers, line, row, str(source))
    return events


def _add_event(
    events: Events,
    checkers: Mapping[str, Converter],
    line: int,
    row: Mapping[str, Any],
    source: str,
) -> None:
    record_id, element = row.get("id"), row.get("element")
    if record_id is None or element is None:
        missing = "id" if record_id is None else "element"
        error = RecordError(
            str(record_id or f"line {line}"), missing, None, f"{source} line {line}: no {missing}"
        )
        events.errors.setdefault(error.record_id, error)
        return
    record_id, element = str(record_id), str(element)
    if element not in checkers:
        if len(events.ignored) < MAX_UNKNOWN_FIELDS or element in events.ignored:
            events.ignored[element] = events.ignored.get(element, 0) + 1
        return
    entry = {key: value for key, value in row.items() if key not in ("id", "element")}
    entry = {key: value for key, value in entry.items() if value is not None}
    try:
        checkers[element]([entry])
    except _EntryInvalid as error:
        field = f"{element} ({source} line {line})" + (f".{error.key}" if error.key else "")
        problem = RecordError(record_id, field, error.value, str(error))
        events.errors.setdefault(record_id, problem)
        return
    except (_Invalid, ArithmeticError, ValueError, TypeError) as error:
        problem = RecordError(record_id, f"{element} ({source} line {line})", None, str(error))
        events.errors.setdefault(record_id, problem)
        return
    events.entries.setdefault(record_id, {}).setdefault(element, []).append(entry)


def _event_value(column: str, value: Any) -> Any:
    """A cell of an events file as the entry object holds it: text, or an exact number."""
    if value is None or _is_missing(value):
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.upper() in NA_TEXTS:
            return None
        if column not in _EVENT_TEXT and NUMBER_TEXT.fullmatch(text):
            return Decimal(text)
        return text
    if column in ("id",) and isinstance(value, numbers.Integral):
        return str(int(value))
    return value


def _event_rows_csv(source: Path | str) -> Iterator[tuple[int, Mapping[str, Any] | RecordError]]:
    handle = _open(source)
    try:
        lines = _Pushback(_lines(handle))
        header = _csv_header(lines, str(source))
        if header is None:
            return
        columns = [title.strip() for title in header]
        _check_event_columns(columns, str(source))
        readers: list[tuple[str, Callable[[str], Any]] | None] = [
            (c, functools.partial(_event_value, c)) for c in columns
        ]
        for number, row in _csv_rows(lines, readers):
            if isinstance(row, RecordError):
                yield number, RecordError(row.record_id, None, None, f"{source}: {row.problem}")
            else:
                yield number, row
    finally:
        _close(handle)


def _event_rows_parquet(path: Path) -> Iterator[tuple[int, Mapping[str, Any] | RecordError]]:
    try:
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise InputError("reading Parquet needs pyarrow: pip install 'critlang[sql]'") from None
    try:
        table = pq.ParquetFile(path)
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: cannot read the Parquet file ({error})") from None
    columns = list(table.schema_arrow.names)
    _check_event_columns(columns, str(path))
    position = 0
    for batch in table.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            position += 1
            yield position, {column: _event_value(column, row[column]) for column in columns}


def _check_event_columns(columns: list[str], source: str) -> None:
    unknown = [c for c in columns if c not in EVENT_COLUMNS]
    if unknown:
        raise InputError(
            f"{source}: '{printable(shorten(unknown[0]))}' is not a column of an events file "
            f"(they are: {', '.join(EVENT_COLUMNS)})"
        )
    for needed in ("id", "element"):
        if needed not in columns:
            raise InputError(f"{source}: an events file needs the column '{needed}'")
    if len(set(columns)) != len(columns):
        raise InputError(f"{source}: a column is named twice")


def with_events(rows: Iterable[Row], events: Events, intake: Intake) -> Iterator[Row]:
    """Records with their histories from an events file, for `Protocol.screen`."""
    for position, row in rows:
        if isinstance(row, RecordError) or not isinstance(row, Mapping):
            yield position, row
            continue
        try:
            record_id = intake.record_id(row, position)
            yield position, events.merged(row, record_id)
        except RecordError as error:
            yield position, error
