"""The patient table: its columns, and the stages that read and validate them.

A `Layout` says where each data element is and how it is stored; docs/sql.md
describes the table. The first three stages of the query read every column
as records.py reads a record: `screen_source` parses text and reads numbers
into exact DECIMALs (NULL when a value does not parse or cannot be kept
exactly), `screen_input` keeps the values that fit the data dictionary, and
`screen_checked` names, per row, the first column whose value did not: that
row is an error, and the others go on.

Numbers stay in the unit of their column; `Input.into_declared` gives the
exact factor into the declared unit, which the query multiplies with the
factor into the unit a criterion needs, so a column in kPa met by a limit in
mm[Hg] is multiplied by one factor, not two. A column's unit is read by the
intake's own rule (`records.unit_reading`): a unit the element accepts, a
declared `convert` formula, a temperature scale with its offset; a column in
a unit the intake refuses makes every row that gives it a value an error.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction

import attrs
from sqlglot import exp
from sqlglot.errors import ParseError

from critlang import units
from critlang.check import Checked, Type
from critlang.engines.sql import build as b
from critlang.engines.sql import dates, exact
from critlang.records import HEADER_UNIT, ID_FIELD, unit_reading

SCALE = 10  # decimal places kept from numbers whose type does not say (DOUBLE, text)
UNBOUNDED_DIGITS = 18  # integer digits allowed for an element without a range
NA_TEXTS = ("", "NA", "NULL")  # CSV cells read as missing, as records.py reads them
TRUE_TEXTS = ("true", "yes", "1")
FALSE_TEXTS = ("false", "no", "0")
RECORD_ERROR = "record error"  # internal names hold a space: no data element can clash
PATIENT_KEY = "patient key"  # what an events row's `id` is matched with


class SchemaError(ValueError):
    """A table column that does not fit the protocol's data dictionary."""


class SqlError(ValueError):
    """A protocol expression that SQL cannot compute exactly."""


@attrs.frozen
class Column:
    """Where a data element is in the table, and how its values are stored.

    `storage` is "typed" (a column of the element's own SQL type, or an exact
    number), "float" (binary floating point, kept when it is exact in `scale`
    places), "wide" (a DECIMAL with more places than `scale`, kept when the
    extra ones are zeros) or "text" (CSV cells, parsed as records.py parses
    them). `unit` is the unit of the column's numbers when it differs from
    the declared one ('creatinine [umol/L]'); `scale` is how many decimal
    places of them are kept.
    """

    element: str
    name: str
    storage: str = "typed"
    unit: str | None = None
    scale: int = SCALE
    digits: int | None = None  # integer digits of a typed DECIMAL column (events table)
    latest: str | None = None  # a typed date's last possible day, 'name latest', when given


@attrs.frozen
class Layout:
    """The columns of a patient table; elements without a column are all missing."""

    columns: tuple[Column, ...]
    id_column: str | None = ID_FIELD
    events: Events | None = None  # the histories' entries, joined to the patients by id
    events_key: str | None = None  # the column events' `id` names, when not `id_column`

    def column(self, element: str) -> Column | None:
        return next((c for c in self.columns if c.element == element), None)


def default_layout(checked: Checked, events: str = "events") -> Layout:
    """Every data element in a typed column of its own name, and an `id` column.

    A protocol with histories reads their entries from the table `events`, every
    event field in a typed column of its own name.
    """
    kinds = checked.element_types
    columns = tuple(Column(n, n) for n in checked.elements if kinds[n].kind != "history")
    if not any(kind.kind == "history" for kind in kinds.values()):
        return Layout(columns)
    fields = tuple(Column(f, f) for f in EVENT_COLUMNS)
    return Layout(columns, events=Events(events, fields))


def layout_from_schema(
    checked: Checked, schema: Sequence[tuple[str, str]], dialect: str, text: bool = False
) -> Layout:
    """The layout of a table from its (column name, SQL type) pairs.

    `text` says every column holds text to parse, as a CSV file does. Raise
    SchemaError, naming the column, for a column that is not a data element,
    has a type that cannot hold the element's values, or an unknown unit.
    """
    columns: list[Column] = []
    given: dict[str, str] = {}
    latest: dict[str, str] = {}
    id_column = None
    for name, type_text in schema:
        if name == ID_FIELD:
            id_column = name
            continue
        date = _latest_of(checked, name)
        if date is not None:
            latest[date] = name
            continue
        match = HEADER_UNIT.match(name)
        element, unit = (
            (match.group(1), match.group(2) or match.group(3)) if match else (name, None)
        )
        kind = checked.element_types.get(element)
        if kind is None:
            close = difflib.get_close_matches(element, list(checked.elements), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise SchemaError(f"column '{name}': not a data element of the protocol{hint}")
        if element in given:
            raise SchemaError(
                f"column '{name}': '{element}' is already given by '{given[element]}'"
            )
        given[element] = name
        if unit is not None:
            _check_unit(name, unit, kind)
        column = _column(name, element, unit, kind, type_text, dialect, text)
        if column is not None:
            columns.append(column)
    for date, name in latest.items():
        found = next((c for c in columns if c.element == date and c.storage == "typed"), None)
        if found is None:
            raise SchemaError(f"column '{name}': '{date}' needs a DATE column of its own")
        columns[columns.index(found)] = attrs.evolve(found, latest=name)
    return Layout(tuple(columns), id_column)


LATEST = " latest"  # 'name latest': a date's last possible day (ir.Element.key)


def _latest_of(checked: Checked, column: str) -> str | None:
    """The date element whose last possible day the column holds, or None."""
    if not column.endswith(LATEST):
        return None
    element = column.removesuffix(LATEST)
    kind = checked.element_types.get(element)
    return element if kind is not None and kind.kind == "date" else None


def _check_unit(name: str, unit: str, kind: Type) -> None:
    # A unit the intake refuses is not a schema error: as in `critlang eval`, each row
    # that gives the column a value is an error, and the others go on (Input.readings).
    if kind.kind != "quantity":
        raise SchemaError(f"column '{name}': only a quantity has a unit, not {kind.describe()}")


def _column(
    name: str, element: str, unit: str | None, kind: Type, type_text: str, dialect: str, text: bool
) -> Column | None:
    """The Column for one table column, or None when its type says it is always empty."""
    if kind.kind == "history":
        raise SchemaError(f"column '{name}': a history's entries go in the events table")
    if text:
        return Column(element, name, "text", unit)
    if type_text.strip().strip('"').lower() in ("null", "void"):
        return None  # DuckDB and Spark type a column with no values at all as NULL / void
    try:
        declared = exp.DataType.build(type_text, dialect=dialect)
    except (ParseError, ValueError):
        raise SchemaError(f"column '{name}': unsupported type {type_text}") from None
    wanted = kind.describe()
    is_text = declared.this in exp.DataType.TEXT_TYPES
    if kind.kind == "history":
        raise SchemaError(f"column '{name}': a history's entries go in the events table")
    if kind.numeric:
        if is_text:
            return Column(element, name, "text", unit)
        number = _number_storage(declared)
        if number is None:
            raise SchemaError(f"column '{name}': expected {wanted}, found {type_text}")
        return Column(element, name, number[0], unit, number[1], _decimal_digits(declared))
    if kind.kind == "date" and is_text:
        return Column(element, name, "text")
    fits = {
        "boolean": declared.this == exp.DType.BOOLEAN,
        "enum": is_text,
        "ordinal": is_text,
        "code": is_text,
        "date": declared.this == exp.DType.DATE,
        "set": declared.this == exp.DType.ARRAY
        and all(
            isinstance(item, exp.DataType) and item.this in exp.DataType.TEXT_TYPES
            for item in declared.expressions
        ),
    }
    if not fits.get(kind.kind, False):
        raise SchemaError(f"column '{name}': expected {wanted}, found {type_text}")
    return Column(element, name)


def _decimal_digits(declared: exp.DataType) -> int | None:
    """The integer digits of a DECIMAL(p, s) type kept as it is ("typed"), else None."""
    if declared.this != exp.DType.DECIMAL:
        return None
    params = [p.this if isinstance(p, exp.DataTypeParam) else p for p in declared.expressions]
    if len(params) < 2:
        return None  # the dialect's default precision: not written, so not assumed
    places = int(params[1].name)
    return max(0, int(params[0].name) - places) if places <= SCALE else None


def _number_storage(declared: exp.DataType) -> tuple[str, int] | None:
    """(storage, decimal places kept) for a numeric column type; None if it is not numeric."""
    if declared.this in exp.DataType.INTEGER_TYPES:
        return "typed", 0
    if declared.this == exp.DType.DECIMAL:
        params = [p.this if isinstance(p, exp.DataTypeParam) else p for p in declared.expressions]
        places = int(params[1].name) if len(params) > 1 else 0
        return ("typed", places) if places <= SCALE else ("wide", SCALE)
    if declared.this in exp.DataType.REAL_TYPES:
        return "float", SCALE
    return None


# ---- the input stages --------------------------------------------------------------


def _number_pattern(digits: int, places: int) -> str:
    """A number written out with at most `digits` integer digits and `places` decimals.

    Trailing zeros beyond `places` are fine (2.50000000000 is 2.5); more
    significant decimals than that cannot be kept exactly and do not match.
    """
    decimals = rf"(\.[0-9]{{0,{places}}}0*)?" if places else r"(\.0*)?"
    return rf"^[+-]?0*[0-9]{{0,{digits}}}{decimals}$"


def _regexp(value: exp.Expr, pattern: str) -> exp.Expr:
    return exp.RegexpLike(this=value, expression=b.text(pattern))


def _within(value: exp.Expr, digits: int) -> exp.Expr:
    """|value| < 10 ** digits, so that a CAST to that many integer digits cannot fail."""
    bound = exp.Literal.number(10**digits)
    return b.and_(
        exp.GT(this=value, expression=exp.Neg(this=bound)),
        exp.LT(this=value.copy(), expression=bound.copy()),
    )


_DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _parse_date(raw: exp.Expr) -> exp.Expr:
    """YYYY-MM-DD text as a DATE, NULL unless it names a day of the calendar.

    Every engine's CAST fails (PostgreSQL) or guesses differently on other
    text, so the check is written out: month 1-12, day within the month.
    """

    def part(start: int, length: int) -> exp.Expr:
        piece = exp.Substring(
            this=raw.copy(), start=exp.Literal.number(start), length=exp.Literal.number(length)
        )
        return b.cast(piece, exp.DataType.build("INT"))

    def divisible(by: int) -> exp.Expr:
        return exp.EQ(
            this=exp.Mod(this=part(1, 4), expression=exp.Literal.number(by)),
            expression=exp.Literal.number(0),
        )

    leap = b.and_(divisible(4), b.or_(b.not_(divisible(100)), divisible(400)))
    month, day = part(6, 2), part(9, 2)
    short = exp.In(this=month, expressions=[exp.Literal.number(m) for m in (4, 6, 9, 11)])
    february = exp.EQ(this=part(6, 2), expression=exp.Literal.number(2))
    length = b.case(
        [
            (short, exp.Literal.number(30)),
            (february, b.when(leap, exp.Literal.number(29), exp.Literal.number(28))),
        ],
        exp.Literal.number(31),
    )
    valid = b.and_(
        exp.Between(this=part(6, 2), low=exp.Literal.number(1), high=exp.Literal.number(12)),
        exp.Between(this=day, low=exp.Literal.number(1), high=length),
    )
    # The regular expression first: the parts are only read from text of the right shape.
    shaped = _regexp(raw.copy(), _DATE_PATTERN)
    checked = b.when(shaped, b.when(valid, exp.true(), exp.false()))
    return b.when(checked, b.cast(raw.copy(), exp.DataType.build("DATE")))


def _parse_partial_date(raw: exp.Expr) -> tuple[exp.Expr, exp.Expr]:
    """A date as text, `2019-05-02`, `2019-05` or `2019`, as its first and last possible
    day (the same for a full date); both NULL unless it names a day, month or year of
    the calendar, as records.py reads it."""
    full = _parse_date(raw)

    def number(start: int, length: int) -> exp.Expr:
        piece = exp.Substring(
            this=raw.copy(), start=exp.Literal.number(start), length=exp.Literal.number(length)
        )
        return b.cast(piece, exp.DataType.build("INT"))

    def make(year: exp.Expr, month: exp.Expr, day: exp.Expr) -> exp.Expr:
        return exp.Anonymous(this="MAKE_DATE", expressions=[year, month, day])

    def one(value: int) -> exp.Expr:
        return exp.Literal.number(value)

    year, month = number(1, 4), number(6, 2)
    real_year = exp.GTE(this=year, expression=one(1))
    real_month = b.and_(real_year.copy(), exp.Between(this=month, low=one(1), high=one(12)))
    # Each shape is tested before its parts are read, so no CAST sees other text.
    shapes = (_regexp(raw.copy(), r"^[0-9]{4}$"), _regexp(raw.copy(), r"^[0-9]{4}-[0-9]{2}$"))

    def read(day_of_year: exp.Expr, day_of_month: exp.Expr, month_of_year: int) -> exp.Expr:
        by_year = b.when(real_year.copy(), make(year.copy(), one(month_of_year), day_of_year))
        by_month = b.when(real_month.copy(), make(year.copy(), month.copy(), day_of_month))
        return b.case([(shapes[0].copy(), by_year), (shapes[1].copy(), by_month)], full.copy())

    last = dates.month_length(year.copy(), month.copy())
    return read(one(1), one(1), 1), read(one(31), last, 12)


class Input:
    """The input stages for one protocol and layout, and each element's value after them."""

    def __init__(self, checked: Checked, layout: Layout) -> None:
        self.checked = checked
        self.layout = layout
        self.columns = {column.element: column for column in layout.columns}
        self.problems: list[tuple[str, str]] = []  # validated elements, what is wrong if not
        # Each column in another unit: (scale, offset) into the declared unit, or why not.
        self.readings: dict[str, tuple[Fraction, Fraction] | str] = {
            column.element: unit_reading(
                checked.elements[column.element], checked.element_types[column.element], column.unit
            )
            for column in layout.columns
            if column.unit is not None
        }
        self.reads = {
            name: self.read_number(name, kind, self.columns.get(name))
            for name, kind in checked.element_types.items()
            if kind.numeric
        }
        # Typed columns whose plausible range is tested as they are read (`parse_number`).
        self.ranged = {name for name in self.reads if self.range_on_read(name)}

    def stages(self, table: exp.Table) -> list[tuple[str, exp.Select]]:
        # Stage names start with screen_ so that they do not hide a table called `input`.
        return [
            ("screen_source", self.source(table)),
            ("screen_input", self.input()),
            ("screen_checked", self.record_errors()),
        ]

    # ---- what the query reads ----

    def read(self, name: str) -> exact.Ratio:
        """A numeric element's exact value in its column's unit (see `into_declared`).

        A column read by a formula with an offset (a temperature scale, a declared
        `convert`) is read in the declared unit already, and `into_declared` is 1.
        """
        value = exact.Ratio(attrs.evolve(self.reads[name], sql=b.col(name)))
        if not self.affine(name):
            return value
        scale, offset = self.conversion(name)
        return exact.ratio_add(exact.ratio_scale(value, scale), exact.const(offset), False)

    def conversion(self, name: str) -> tuple[Fraction, Fraction]:
        """(scale, offset) from the column's unit into the declared one; (1, 0) if none."""
        reading = self.readings.get(name)
        return reading if isinstance(reading, tuple) else (Fraction(1), Fraction(0))

    def affine(self, name: str) -> bool:
        """Is the column read by more than a positive factor?"""
        scale, offset = self.conversion(name)
        return offset != 0 or scale < 0

    def refused(self, name: str) -> str | None:
        """What is wrong with the unit of the element's column, as the intake says it."""
        reading = self.readings.get(name)
        return reading if isinstance(reading, str) else None

    def value(self, name: str) -> exp.Expr:
        """A non-numeric element's value."""
        return b.col(name)

    # ---- numbers ----

    def read_number(self, name: str, kind: Type, column: Column | None) -> exact.Dec:
        """The element's number as read from its column, in the column's unit."""
        element = self.checked.elements[name]
        scale = column.scale if column is not None else SCALE
        limits = element.plausible_range
        if limits is None:
            bound = Fraction(10**UNBOUNDED_DIGITS) - Fraction(1, 10**scale)
            low, high = -bound, bound
        else:
            # The range in the column's unit: the values that convert into it.
            times, offset = self.conversion(name)
            low, high = sorted((Fraction(limit) - offset) / times for limit in limits)
        dec = exact.Dec(b.col(name), low, high, scale)
        if dec.precision > exact.MAX_PRECISION:
            raise SqlError(f"{element.span}: the range of '{name}' is too wide for SQL decimals")
        return attrs.evolve(dec, width=dec.precision)  # the input stages give it this type

    def into_declared(self, name: str, column: Column | None = None) -> Fraction:
        column = column or self.columns.get(name)
        if column is None or column.unit is None or self.affine(name):
            return Fraction(1)
        return self.conversion(name)[0]

    def range_on_read(self, name: str) -> bool:
        """Can the plausible range be tested on the typed column as it is read?

        Then the value is compared with the two limits before anything else and
        cast only once inside them, where the cast cannot fail: one test instead
        of a guard for the cast and a range test after it. The limits must be
        written out as decimals in the column's unit (no cross-multiplication).
        """
        column = self.columns.get(name)
        kind = self.checked.element_types[name]
        read = self.reads[name]
        return (
            column is not None
            and column.storage == "typed"
            and not kind.integer
            and self.refused(name) is None
            and self.checked.elements[name].plausible_range is not None
            and exact.places(read.low) is not None
            and exact.places(read.high) is not None
        )

    def in_range(self, name: str, value: exp.Expr) -> exp.Expr:
        """low <= value <= high, the element's plausible range in its column's unit."""
        read = self.reads[name]
        number = exact.Ratio(attrs.evolve(read, sql=value))
        return b.and_(
            exact.ratio_compare(exact.const(read.low), "<=", number),
            exact.ratio_compare(exact.fresh(number), "<=", exact.const(read.high)),
        )

    def parse_number(self, name: str, raw: exp.Expr, column: Column) -> exp.Expr:
        """The column's number as an exact DECIMAL, NULL if it is not one or not exact."""
        read = self.reads[name]
        typed = read.type
        if column.storage == "typed":
            same = column.digits == read.digits and column.scale == read.scale
            # A DECIMAL column of the very type the query computes with needs no CAST.
            value = raw.copy() if same else b.cast(raw.copy(), typed)
            if name in self.ranged:
                return b.when(self.in_range(name, raw), value)
            if column.digits is not None and column.digits <= read.digits:
                return value  # every value of the column fits: the CAST cannot fail
        if column.storage == "wide":
            raw = b.cast(raw, exp.DataType.build("VARCHAR"))
        if column.storage in ("text", "wide"):
            pattern = _number_pattern(read.digits, read.scale)
            shaped = b.and_(_regexp(raw, pattern), _regexp(raw.copy(), "[0-9]"))
            return b.when(shaped, b.cast(raw.copy(), typed))
        inside = _within(raw, read.digits)
        value = b.when(inside, b.cast(raw.copy(), typed))
        if column.storage == "float":
            # Kept only when its decimal reads back as the same double: then it is the
            # double's shortest decimal, the one the Python engine takes.
            back = b.cast(value.copy(), exp.DataType.build("DOUBLE"))
            return b.when(exp.EQ(this=back, expression=raw.copy()), value)
        return value

    # ---- the stages ----

    def source(self, table: exp.Table) -> exp.Select:
        columns: list[exp.Expr] = []
        if self.layout.id_column is not None:
            identity = b.cast(b.col(self.layout.id_column), exp.DataType.build("VARCHAR"))
            columns.append(b.alias(identity, ID_FIELD))
        key = self.layout.events_key or self.layout.id_column
        if self.layout.events is not None and key is not None:
            columns.append(b.alias(b.cast(b.col(key), exp.DataType.build("VARCHAR")), PATIENT_KEY))
        for name in self.elements():
            columns += self.source_columns(name)
        return b.select(columns, table)

    def elements(self) -> list[str]:
        """The elements read from the patient table: all but histories (in the events table)."""
        return [n for n in self.checked.elements if self.checked.element_types[n].kind != "history"]

    def source_columns(self, name: str) -> list[exp.Expr]:
        kind = self.checked.element_types[name]
        column = self.columns.get(name)
        if column is None:
            absent = [b.alias(b.cast(exp.null(), self.null_type(name, kind)), name)]
            if kind.kind == "date":  # a date is read as its first and last day (ir.Element.key)
                absent.append(b.alias(b.cast(exp.null(), "DATE"), f"{name} latest"))
            return absent
        raw = b.col(column.name)
        text = column.storage == "text"
        if text:
            trimmed = exp.Trim(this=raw)
            na = exp.In(this=exp.Upper(this=trimmed), expressions=[b.text(t) for t in NA_TEXTS])
            raw = b.when(na, exp.null(), trimmed.copy())
        given = b.alias(b.not_(b.is_null(raw.copy())), f"{name} given")
        match kind.kind:
            case "number" | "quantity" if self.refused(name) is not None:
                return [b.alias(b.cast(exp.null(), self.reads[name].type), name), given]
            case "number" | "quantity":
                return [b.alias(self.parse_number(name, raw, column), name), given]
            case "boolean" if text:
                lowered = exp.Lower(this=raw)
                yes = exp.In(this=lowered, expressions=[b.text(t) for t in TRUE_TEXTS])
                no = exp.In(this=lowered.copy(), expressions=[b.text(t) for t in FALSE_TEXTS])
                parsed = b.case([(yes, exp.true()), (no, exp.false())])
                return [b.alias(parsed, name), given]
            case "date" if text:
                earliest, latest = _parse_partial_date(raw)
                return [b.alias(earliest, name), b.alias(latest, f"{name} latest"), given]
            case "date":
                last = b.col(column.latest) if column.latest is not None else raw.copy()
                return [b.alias(raw, name), b.alias(last, f"{name} latest")]
            case "set" if text:
                pieces = exp.RegexpSplit(this=raw, expression=b.text(r"\s*[;|]\s*"))
                kept = exp.ArrayFilter(
                    this=pieces,
                    expression=b.lambda_(exp.NEQ(this=b.x(), expression=b.text(""))),
                )
                return [b.alias(kept, name), given]
            case "enum" | "ordinal" | "set" | "code":
                return [b.alias(raw, name), given]
        return [b.alias(raw, name)]

    def null_type(self, name: str, kind: Type) -> exp.DataType:
        if kind.numeric:
            return self.reads[name].type
        return exp.DataType.build(
            {
                "boolean": "BOOLEAN",
                "enum": "VARCHAR",
                "ordinal": "VARCHAR",
                "code": "VARCHAR",
                "set": "VARCHAR[]",
                "date": "DATE",
            }[kind.kind],
            dialect="duckdb",
        )

    def input(self) -> exp.Select:
        """Values that fit the data dictionary; NULL for those that do not."""
        columns: list[exp.Expr] = []
        if self.layout.id_column is not None:
            columns.append(b.col(ID_FIELD))
        if self.layout.events is not None and (self.layout.events_key or self.layout.id_column):
            columns.append(b.col(PATIENT_KEY))
        self.problems = []
        for name in self.elements():
            value, problem = self.validated(name)
            columns.append(b.alias(value, name))
            if self.checked.element_types[name].kind == "date":
                columns.append(b.col(f"{name} latest"))
            if problem is not None:
                columns.append(b.col(f"{name} given"))
                self.problems.append((name, problem))
        return b.select(columns, "screen_source")

    def record_errors(
        self, source: str = "screen_input", more: exp.Expr | None = None
    ) -> exp.Select:
        """The first value that did not fit: given, yet NULL once validated.

        `more` is a further error column read when every value fits (an entry's).
        """
        failures = [(b.and_(b.col(f"{n} given"), b.is_null(b.col(n))), m) for n, m in self.problems]
        error: exp.Expr = b.cast(exp.null(), exp.DataType.build("VARCHAR"))
        if failures:
            # Nearly every record is valid: one test settles those, the rest name the field.
            # The CASE is built in one go: `Case.when` copies the CASE it extends.
            valid = b.not_(b.paren(b.or_(*(failed for failed, _ in failures))))
            whens: list[tuple[exp.Expr, exp.Expr]] = [(valid, b.cast(exp.null(), "VARCHAR"))]
            whens += [(failed.copy(), b.text(message)) for failed, message in failures]
            error = b.case(whens)
        if more is not None:
            error = exp.Coalesce(this=error, expressions=[more])
        return b.select([exp.Star(), b.alias(error, RECORD_ERROR)], source)

    def validated(self, name: str) -> tuple[exp.Expr, str | None]:
        """(value or NULL, what is wrong when it is NULL though given)."""
        kind = self.checked.element_types[name]
        column = self.columns.get(name)
        held = b.col(name)
        if column is None:
            return held, None
        where = f"column '{column.name}'"
        match kind.kind:
            case "number" | "quantity":
                return self.validated_number(name, kind, column, where)
            case "enum":
                allowed = exp.In(this=held, expressions=[b.text(v) for v in kind.values])
                values = ", ".join(kind.values)
                return (
                    b.when(allowed, held.copy()),
                    f"{where}: not a declared value; expected one of {values}",
                )
            case "ordinal":
                allowed = exp.In(this=held, expressions=[b.text(v) for v in kind.values])
                values = ", ".join(kind.values)
                return (
                    b.when(allowed, held.copy()),
                    f"{where}: expected a value of the scale, lowest first: {values}",
                )
            case "set":
                allowed = exp.In(this=b.x(), expressions=[b.text(v) for v in kind.values])
                stray = exp.ArrayFilter(
                    this=held,
                    expression=b.lambda_(
                        b.not_(exp.Coalesce(this=allowed, expressions=[exp.false()]))
                    ),
                )
                count = exp.Coalesce(
                    this=exp.ArraySize(this=stray), expressions=[exp.Literal.number(0)]
                )
                fits = exp.EQ(this=count, expression=exp.Literal.number(0))
                values = ", ".join(kind.values)
                return (
                    b.when(fits, b.col(name)),
                    f"{where}: expected a list of values from {values}",
                )
            case "code":
                systems = ", ".join(CODE_PATTERNS)
                return normalized_code(held), f"{where}: expected a code as system:code ({systems})"
        if column.storage == "text":
            word = {
                "boolean": "true or false",
                "date": "a date as YYYY-MM-DD, or a year and month (YYYY-MM) or year (YYYY)",
            }[kind.kind]
            return held, f"{where}: expected {word}"
        return held, None

    def validated_whole(
        self, name: str, limits: tuple[Decimal, Decimal] | None, where: str
    ) -> tuple[exp.Expr, str]:
        """An `integer` element: a whole number (FLOOR leaves it as it is), within its range."""
        held = b.col(name)
        tests: list[exp.Expr] = [exp.EQ(this=held, expression=exp.Floor(this=held.copy()))]
        words = "a whole number"
        if limits is None:
            words += f" of at most {UNBOUNDED_DIGITS} digits"
        else:
            read = self.reads[name]
            value = exact.Ratio(attrs.evolve(read, sql=held.copy()))
            tests.append(exact.ratio_compare(exact.const(read.low), "<=", value))
            tests.append(exact.ratio_compare(exact.fresh(value), "<=", exact.const(read.high)))
            words += f" from {limits[0]} to {limits[1]}"
        return b.when(b.and_(*tests), b.col(name)), f"{where}: expected {words}"

    def validated_number(
        self, name: str, kind: Type, column: Column, where: str
    ) -> tuple[exp.Expr, str]:
        read = self.reads[name]
        refused = self.refused(name)
        if refused is not None:
            return b.col(name), f"{where}: {refused}"
        shown = "" if kind.unit == units.DIMENSIONLESS else f" {kind.unit}"
        limits = self.checked.elements[name].plausible_range
        exactly = f"exactly in {read.scale} decimal places"
        if kind.integer:
            return self.validated_whole(name, limits, where)
        if limits is None:
            return (
                b.col(name),
                f"{where}: expected a number of at most {UNBOUNDED_DIGITS} digits, {exactly}",
            )
        message = f"{where}: expected a number from {limits[0]} to {limits[1]}{shown}, {exactly}"
        if name in self.ranged:
            return b.col(name), message  # tested as it was read
        return b.when(self.in_range(name, b.col(name)), b.col(name)), message


# ---- the events table: histories, one row per entry ----------------------------------

EVENT_ID = "entry id"  # internal names of the events stage hold a space, as RECORD_ERROR
EVENT_ELEMENT = "entry element"
EVENT_ERROR = "entry error"
EVENT_MARKER = "entry marker"
EVENT_COLUMNS: tuple[str, ...] = (
    *("id", "element", "date", "value", "unit", "low", "high", "code"),
    *("start", "end", "dose", "source"),
)
EVENT_NUMBERS = ("value", "low", "high", "dose")
EVENT_DATES = ("date", "start", "end")
EVENT_DIGITS = UNBOUNDED_DIGITS  # integer digits of an entry's numbers
# Where each kind of entry keeps its date, and the fields it must have.
ENTRY_DATE = {"measurement": "date", "code": "date", "medication": "start"}
ENTRY_REQUIRED = {
    "measurement": ("date", "value"),
    "code": ("date", "code"),
    "medication": ("start", "code"),
}
# A coded value is `system:code`; the code's shape per system (ICD-10-CM with or without its dot).
CODE_PATTERNS = {
    "snomed": r"[0-9]{6,18}",
    "icd10cm": r"[A-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?",
    "loinc": r"[0-9]{1,7}-[0-9]",
    "rxnorm": r"[0-9]{1,9}",
    "atc": r"[A-Z]([0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?)?",
}


def entry_field(name: str) -> str:
    """The events stage's column for an entry field: 'entry value'."""
    return f"entry {name}"


@attrs.frozen
class Events:
    """The events table (docs/sql.md): where it is and how each of its columns is stored.

    `columns` maps an event field (`EVENT_COLUMNS`) to its Column (`element`
    holds the field's name); an absent field is empty in every row.
    """

    table: str
    columns: tuple[Column, ...]

    def column(self, field: str) -> Column | None:
        return next((c for c in self.columns if c.element == field), None)


def events_from_schema(
    table: str, schema: Sequence[tuple[str, str]], dialect: str, text: bool = False
) -> Events:
    """The layout of an events table from its (column name, SQL type) pairs.

    Raise SchemaError, naming the column, for a column that is not an event
    field, for a type that cannot hold the field, or when `id` or `element` is
    missing.
    """
    columns: list[Column] = []
    for name, type_text in schema:
        if name not in EVENT_COLUMNS:
            close = difflib.get_close_matches(name, list(EVENT_COLUMNS), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise SchemaError(f"events column '{name}': not a field of an entry{hint}")
        column = _event_column(name, type_text, dialect, text)
        if column is not None:
            columns.append(column)
    given = {c.element for c in columns}
    for needed in ("id", "element"):
        if needed not in given:
            raise SchemaError(f"the events table needs a column '{needed}'")
    return Events(table, tuple(columns))


def check_event_elements(checked: Checked, elements: Sequence[str]) -> None:
    """Raise SchemaError for an events table naming an element that is not a history."""
    histories = [n for n, t in checked.element_types.items() if t.kind == "history"]
    for element in elements:
        if element not in histories:
            close = difflib.get_close_matches(element, histories, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise SchemaError(
                f"events table: element '{element}' is not a history of the protocol{hint}"
            )


def _event_column(name: str, type_text: str, dialect: str, text: bool) -> Column | None:
    if text:
        return Column(name, name, "text")
    if type_text.strip().strip('"').lower() in ("null", "void"):
        return None
    try:
        declared = exp.DataType.build(type_text, dialect=dialect)
    except (ParseError, ValueError):
        raise SchemaError(f"events column '{name}': unsupported type {type_text}") from None
    is_text = declared.this in exp.DataType.TEXT_TYPES
    if name in EVENT_NUMBERS:
        if is_text:
            return Column(name, name, "text")
        number = _number_storage(declared)
        if number is None:
            raise SchemaError(f"events column '{name}': expected a number, found {type_text}")
        digits = None
        if declared.this == exp.DType.DECIMAL and number[0] == "typed":
            params = [
                p.this if isinstance(p, exp.DataTypeParam) else p for p in declared.expressions
            ]
            precision = int(params[0].name) if params else 18
            digits = max(1, precision - number[1])
        return Column(name, name, number[0], scale=number[1], digits=digits)
    if name in EVENT_DATES:
        if is_text:
            return Column(name, name, "text")
        if declared.this not in (exp.DType.DATE, exp.DType.TIMESTAMP, exp.DType.DATETIME):
            raise SchemaError(f"events column '{name}': expected a date, found {type_text}")
        return Column(name, name)
    if name == "id" or is_text:
        return Column(name, name)
    raise SchemaError(f"events column '{name}': expected text, found {type_text}")


def parse_decimal(raw: exp.Expr, storage: str, dec: exact.Dec) -> exp.Expr:
    """`raw` as the exact DECIMAL of `dec`'s type; NULL if it is not one or not exact."""
    typed = dec.type
    if storage == "wide":
        raw = b.cast(raw, exp.DataType.build("VARCHAR"))
    if storage in ("text", "wide"):
        pattern = _number_pattern(dec.digits, dec.scale)
        shaped = b.and_(_regexp(raw, pattern), _regexp(raw.copy(), "[0-9]"))
        return b.when(shaped, b.cast(raw.copy(), typed))
    inside = _within(raw, dec.digits)
    value = b.when(inside, b.cast(raw.copy(), typed))
    if storage == "float":
        back = b.cast(value.copy(), exp.DataType.build("DOUBLE"))
        return b.when(exp.EQ(this=back, expression=raw.copy()), value)
    return value


def entry_number(field: str, events: Events | None = None) -> exact.Dec:
    """An entry's number as the events stage holds it (no plausible range: any 18 digits).

    A typed DECIMAL(p, s) column keeps its own type, so that DuckDB computes
    in 64 bits when p <= 18; every other column is read into DECIMAL(28, 10).
    """
    column = None if events is None else events.column(field)
    digits, scale = EVENT_DIGITS, SCALE
    if column is not None and column.storage == "typed" and column.digits is not None:
        digits, scale = column.digits, column.scale
    bound = Fraction(10**digits) - Fraction(1, 10**scale)
    return exact.Dec(b.col(entry_field(field)), -bound, bound, scale)


def code_pattern() -> str:
    """A coded value `system:code` of any system critlang knows."""
    systems = "|".join(f"{system}:{pattern}" for system, pattern in CODE_PATTERNS.items())
    return f"^({systems})$"


def normalized_code(raw: exp.Expr) -> exp.Expr:
    """A valid `system:code` with an ICD-10-CM code's dot removed; NULL when not valid."""
    valid = _regexp(raw, code_pattern())
    icd = exp.EQ(
        this=exp.Substring(
            this=raw.copy(), start=exp.Literal.number(1), length=exp.Literal.number(8)
        ),
        expression=b.text("icd10cm:"),
    )
    undotted = exp.Anonymous(this="REPLACE", expressions=[raw.copy(), b.text("."), b.text("")])
    return b.when(valid, b.when(icd, undotted, raw.copy()))


class EventsInput:
    """The stages that read and validate the events table: one row per entry.

    `screen_events_raw` reads each field (text trimmed, `NA` missing) of the
    rows of the protocol's histories, `screen_events_parsed` parses them
    ('entry date', 'entry value', ..., and 'entry marker': a row that gives
    only its id and element puts the history on record with no entries), and
    `screen_events` adds 'entry error', what is wrong with the row (NULL when
    it fits). Rows of elements that are not histories of the protocol are
    left out.
    """

    def __init__(self, checked: Checked, events: Events) -> None:
        self.checked = checked
        self.events = events
        self.histories = {
            name: kind for name, kind in checked.element_types.items() if kind.kind == "history"
        }

    def source(self, field: str) -> exp.Expr:
        """A field as read from the events table; NULL when missing."""
        column = self.events.column(field)
        if column is None:
            return exp.null()
        raw = b.col(column.name)
        if column.storage == "text":
            trimmed = exp.Trim(this=b.cast(raw, exp.DataType.build("VARCHAR")))
            na = exp.In(this=exp.Upper(this=trimmed), expressions=[b.text(t) for t in NA_TEXTS])
            return b.when(na, exp.null(), trimmed.copy())
        return raw

    def raw(self, field: str) -> exp.Expr:
        """A field as the raw stage holds it, for the later stages."""
        if self.events.column(field) is None:
            return exp.null()
        return b.col(f"raw {field}")

    def parsed(self, field: str) -> exp.Expr:
        column = self.events.column(field)
        raw = self.raw(field)
        if column is None:
            kind = "DATE" if field in EVENT_DATES else "VARCHAR"
            if field in EVENT_NUMBERS:
                return b.cast(exp.null(), entry_number(field, self.events).type)
            return b.cast(exp.null(), exp.DataType.build(kind))
        if field in EVENT_NUMBERS:
            return parse_decimal(raw, column.storage, entry_number(field, self.events))
        if field in EVENT_DATES:
            if column.storage == "text":
                return _parse_date(raw)
            return b.cast(raw, exp.DataType.build("DATE"))
        if field == "code":
            return normalized_code(raw)
        return b.cast(raw, exp.DataType.build("VARCHAR"))

    def stages(self) -> list[tuple[str, exp.Select]]:
        """Read, parse, then validate the events of the protocol's histories."""
        read = [
            b.alias(self.source(c.element), f"raw {c.element}")
            for c in self.events.columns
            if c.element not in ("id", "element")
        ]
        read.insert(0, b.alias(b.cast(self.source("id"), exp.DataType.build("VARCHAR")), EVENT_ID))
        read.insert(1, b.alias(self.source("element"), EVENT_ELEMENT))
        names = [b.text(n) for n in sorted(self.histories)] or [b.text("")]
        wanted = exp.In(this=self.source("element"), expressions=names)
        raw = b.select(read, exp.to_table(self.events.table)).where(wanted, copy=False)
        parsed: list[exp.Expr] = [exp.Star()]
        for field in EVENT_COLUMNS[2:]:
            if field != "unit":
                parsed.append(b.alias(self.parsed(field), entry_field(field)))
        entry_fields = [f for f in EVENT_COLUMNS[2:] if f not in ("unit", "source")]
        marker = b.and_(*(b.is_null(self.raw(f)) for f in entry_fields))
        parsed.append(b.alias(marker, EVENT_MARKER))
        checked = [exp.Star(), b.alias(self.error(), EVENT_ERROR)]
        return [
            ("screen_events_raw", raw),
            ("screen_events_parsed", b.select(parsed, "screen_events_raw")),
            ("screen_events", b.select(checked, "screen_events_parsed")),
        ]

    def error(self) -> exp.Expr:
        """The first field of the row that does not fit its history, as a message.

        Each row is tested against its own history's rules only, and nearly
        every row fits: one test settles those, the rest name the field.
        """
        none = b.cast(exp.null(), exp.DataType.build("VARCHAR"))
        per_history: list[tuple[exp.Expr, exp.Expr]] = []
        for name, kind in sorted(self.histories.items()):
            whens = self.problems(name, kind)
            if not whens:
                continue
            fits = b.not_(b.paren(b.or_(*(problem.copy() for problem, _ in whens))))
            here = exp.EQ(this=b.col(EVENT_ELEMENT), expression=b.text(name))
            per_history.append((here, b.case([(fits, none.copy()), *whens])))
        if not per_history:
            return none
        return b.when(b.not_(b.col(EVENT_MARKER)), b.case(per_history))

    def problems(self, name: str, kind: Type) -> list[tuple[exp.Expr, exp.Expr]]:
        out: list[tuple[exp.Expr, exp.Expr]] = []

        def message(field: str, what: str) -> exp.Expr:
            shown = b.cast(self.raw(field), exp.DataType.build("VARCHAR"))
            return exp.Concat(
                expressions=[
                    b.text(f"history '{name}', entry field '{field}' "),
                    shown,
                    b.text(f": {what}"),
                ]
            )

        def given(field: str) -> exp.Expr:
            return b.not_(b.is_null(self.raw(field)))

        for field in ENTRY_REQUIRED.get(kind.entry, ()):
            out.append(
                (
                    b.is_null(self.raw(field)),
                    b.text(f"history '{name}': an entry needs its '{field}'"),
                )
            )
        fields = {
            "measurement": ("date", "value", "low", "high"),
            "code": ("date", "code", "end"),
            "medication": ("start", "end", "code", "dose"),
        }.get(kind.entry, ())
        for field in fields:
            if self.events.column(field) is None:
                continue
            bad = b.and_(given(field), b.is_null(b.col(entry_field(field))))
            if field in EVENT_DATES:
                what = "expected a full date as YYYY-MM-DD"
            elif field == "code":
                what = "expected a code as system:code (" + ", ".join(CODE_PATTERNS) + ")"
            else:
                what = (
                    f"expected a number of at most {EVENT_DIGITS} digits, "
                    f"exactly in {SCALE} decimal places"
                )
            out.append((bad, message(field, what)))
        if kind.entry in ("medication", "code"):
            first = ENTRY_DATE[kind.entry]
            before = exp.LT(this=b.col(entry_field("end")), expression=b.col(entry_field(first)))
            what = f"the end is before the {'start' if first == 'start' else 'date'}"
            out.append((b.is_(before, True), message("end", what)))
        if self.events.column("unit") is not None and kind.unit != "1":
            number = {"measurement": "value", "medication": "dose"}.get(kind.entry)
            if number is not None:
                unit = self.raw("unit")
                missing = b.and_(given(number), b.is_null(unit))
                out.append(
                    (
                        missing,
                        b.text(
                            f"history '{name}': an entry with its '{number}' needs its unit "
                            f"('{kind.unit}')"
                        ),
                    )
                )
                other = b.and_(
                    given("unit"), exp.NEQ(this=unit.copy(), expression=b.text(kind.unit))
                )
                what = f"the values must be in the declared unit '{kind.unit}'"
                out.append((other, message("unit", what)))
        return out
