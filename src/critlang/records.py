"""Record intake: patient records in, evaluator environments out.

Every value is validated and converted here, once, into what the compiled
evaluator expects: Decimals in the data element's declared unit, enum values
as strings, sets as frozensets, dates as `datetime.date`. Unit factors are
exact and cached per (unit, element); the evaluator never converts.

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

from critlang import syntax as s
from critlang import units
from critlang.check import Checked, Type

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
            if value is None or (type(value) not in _NEVER_MISSING and _is_missing(value)):
                continue
            try:
                env[field] = convert(value)
            except _Invalid as error:
                raise RecordError(record_id, field, value, str(error)) from None
            except (ArithmeticError, ValueError, TypeError, RecursionError) as error:
                problem = f"cannot be read ({type(error).__name__})"
                raise RecordError(record_id, field, value, problem) from None
        if self.dates:
            self.date_pairs(env)
            for field, value in latest.items():
                self.given_latest(record_id, env, field, value)
        return record_id, env

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
    return _decimal(Fraction(number) * scale + offset)


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
