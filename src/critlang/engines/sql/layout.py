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
mm[Hg] is multiplied by one factor, not two.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from fractions import Fraction

import attrs
from sqlglot import exp
from sqlglot.errors import ParseError

from critlang import units
from critlang.check import Checked, Type
from critlang.engines.sql import build as b
from critlang.engines.sql import dates, exact
from critlang.records import HEADER_UNIT, ID_FIELD

SCALE = 10  # decimal places kept from numbers whose type does not say (DOUBLE, text)
UNBOUNDED_DIGITS = 18  # integer digits allowed for an element without a range
NA_TEXTS = ("", "NA", "NULL")  # CSV cells read as missing, as records.py reads them
TRUE_TEXTS = ("true", "yes", "1")
FALSE_TEXTS = ("false", "no", "0")
RECORD_ERROR = "record error"  # internal names hold a space: no data element can clash


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
    latest: str | None = None  # a typed date's last possible day, 'name latest', when given


@attrs.frozen
class Layout:
    """The columns of a patient table; elements without a column are all missing."""

    columns: tuple[Column, ...]
    id_column: str | None = ID_FIELD

    def column(self, element: str) -> Column | None:
        return next((c for c in self.columns if c.element == element), None)


def default_layout(checked: Checked) -> Layout:
    """Every data element in a typed column of its own name, and an `id` column."""
    return Layout(tuple(Column(name, name) for name in checked.elements))


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
    if kind.kind != "quantity":
        raise SchemaError(f"column '{name}': only a quantity has a unit, not {kind.describe()}")
    if not units.is_valid(unit):
        raise SchemaError(f"column '{name}': '{unit}' is not a UCUM unit")
    if not units.compatible(unit, kind.unit, kind.molar_mass):
        raise SchemaError(f"column '{name}': '{unit}' does not convert to '{kind.unit}'")


def _column(
    name: str, element: str, unit: str | None, kind: Type, type_text: str, dialect: str, text: bool
) -> Column | None:
    """The Column for one table column, or None when its type says it is always empty."""
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
    if kind.numeric:
        if is_text:
            return Column(element, name, "text", unit)
        number = _number_storage(declared)
        if number is None:
            raise SchemaError(f"column '{name}': expected {wanted}, found {type_text}")
        return Column(element, name, number[0], unit, number[1])
    if kind.kind == "date" and is_text:
        return Column(element, name, "text")
    fits = {
        "boolean": declared.this == exp.DType.BOOLEAN,
        "enum": is_text,
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
        self.reads = {
            name: self.read_number(name, kind, self.columns.get(name))
            for name, kind in checked.element_types.items()
            if kind.numeric
        }

    def stages(self, table: exp.Table) -> list[tuple[str, exp.Select]]:
        # Stage names start with screen_ so that they do not hide a table called `input`.
        return [
            ("screen_source", self.source(table)),
            ("screen_input", self.input()),
            ("screen_checked", self.record_errors()),
        ]

    # ---- what the query reads ----

    def read(self, name: str) -> exact.Ratio:
        """A numeric element's exact value in its column's unit (see `into_declared`)."""
        return exact.Ratio(attrs.evolve(self.reads[name], sql=b.col(name)))

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
            into = self.into_declared(name, column)
            low, high = Fraction(limits[0]) / into, Fraction(limits[1]) / into
        dec = exact.Dec(b.col(name), low, high, scale)
        if dec.precision > exact.MAX_PRECISION:
            raise SqlError(f"{element.span}: the range of '{name}' is too wide for SQL decimals")
        return dec

    def into_declared(self, name: str, column: Column | None = None) -> Fraction:
        column = column or self.columns.get(name)
        if column is None or column.unit is None:
            return Fraction(1)
        kind = self.checked.element_types[name]
        return units.factor(column.unit, kind.unit, kind.molar_mass)

    def parse_number(self, name: str, raw: exp.Expr, column: Column) -> exp.Expr:
        """The column's number as an exact DECIMAL, NULL if it is not one or not exact."""
        read = self.reads[name]
        typed = read.type
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
        for name in self.checked.elements:
            columns += self.source_columns(name)
        return b.select(columns, table)

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
            case "enum" | "set":
                return [b.alias(raw, name), given]
        return [b.alias(raw, name)]

    def null_type(self, name: str, kind: Type) -> exp.DataType:
        if kind.numeric:
            return self.reads[name].type
        return exp.DataType.build(
            {"boolean": "BOOLEAN", "enum": "VARCHAR", "set": "VARCHAR[]", "date": "DATE"}[
                kind.kind
            ],
            dialect="duckdb",
        )

    def input(self) -> exp.Select:
        """Values that fit the data dictionary; NULL for those that do not."""
        columns: list[exp.Expr] = []
        if self.layout.id_column is not None:
            columns.append(b.col(ID_FIELD))
        self.problems = []
        for name in self.checked.elements:
            value, problem = self.validated(name)
            columns.append(b.alias(value, name))
            if self.checked.element_types[name].kind == "date":
                columns.append(b.col(f"{name} latest"))
            if problem is not None:
                columns.append(b.col(f"{name} given"))
                self.problems.append((name, problem))
        return b.select(columns, "screen_source")

    def record_errors(self) -> exp.Select:
        """The first value that did not fit: given, yet NULL once validated."""
        failures = [(b.and_(b.col(f"{n} given"), b.is_null(b.col(n))), m) for n, m in self.problems]
        error: exp.Expr = b.cast(exp.null(), exp.DataType.build("VARCHAR"))
        if failures:
            # Nearly every record is valid: one test settles those, the rest name the field.
            # The CASE is built in one go: `Case.when` copies the CASE it extends.
            valid = b.not_(b.paren(b.or_(*(failed for failed, _ in failures))))
            whens: list[tuple[exp.Expr, exp.Expr]] = [(valid, b.cast(exp.null(), "VARCHAR"))]
            whens += [(failed.copy(), b.text(message)) for failed, message in failures]
            error = b.case(whens)
        return b.select([exp.Star(), b.alias(error, RECORD_ERROR)], "screen_input")

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
        if column.storage == "text":
            word = {
                "boolean": "true or false",
                "date": "a date as YYYY-MM-DD, or a year and month (YYYY-MM) or year (YYYY)",
            }[kind.kind]
            return held, f"{where}: expected {word}"
        return held, None

    def validated_number(
        self, name: str, kind: Type, column: Column, where: str
    ) -> tuple[exp.Expr, str]:
        read = self.reads[name]
        shown = "" if kind.unit == units.DIMENSIONLESS else f" {kind.unit}"
        limits = self.checked.elements[name].plausible_range
        exactly = f"exactly in {read.scale} decimal places"
        if limits is None:
            return (
                b.col(name),
                f"{where}: expected a number of at most {UNBOUNDED_DIGITS} digits, {exactly}",
            )
        value = exact.Ratio(attrs.evolve(read, sql=b.col(name)))
        inside = b.and_(
            exact.ratio_compare(exact.const(read.low), "<=", value),
            exact.ratio_compare(exact.fresh(value), "<=", exact.const(read.high)),
        )
        return (
            b.when(inside, b.col(name)),
            f"{where}: expected a number from {limits[0]} to {limits[1]}{shown}, {exactly}",
        )
