"""Checked AST to SQL: one query that screens every patient in a table.

The query is built from sqlglot expression nodes, never by pasting text, and
transpiled to any dialect sqlglot writes (DuckDB, Spark, Postgres, ...). It
reads a flat table, one row per patient, described by a `Layout`; docs/sql.md
describes that table. It returns, per patient: `id`, `status`, one BOOLEAN
column per criterion (NULL when unknown), an `<id> applies` column for each
criterion with an `applies when`, `missing` and `error`.

The meaning is the compiled evaluator's (compile.py): SQL's AND, OR and NOT
are already Kleene's, and the rest is written to match it case by case.

Numbers are exact. Every number is a ratio num / den of two DECIMAL
expressions (den > 0, usually absent), so division never happens in SQL:
comparisons cross-multiply, and a decline of exactly 10% is exactly 10%. Each
expression carries interval bounds and a scale, and is cast to
DECIMAL(digits + scale, scale) after every operation, so DuckDB, Spark and
Postgres all type it alike and none rounds (Spark would silently drop digits
from a product typed wider than 38). An expression that would need more than
38 digits is refused when the SQL is generated, with its location.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator, Sequence
from fractions import Fraction

import attrs
from sqlglot import exp
from sqlglot.errors import ParseError

from critlang import syntax as s
from critlang import units
from critlang.check import Checked, Type
from critlang.records import HEADER_UNIT, ID_FIELD
from critlang.vocab import Outcome

SCALE = 10  # decimal places kept from numbers whose type does not say (DOUBLE, text)
MAX_PRECISION = 38  # the widest DECIMAL that DuckDB, Spark and Postgres share
UNBOUNDED_DIGITS = 18  # integer digits allowed for an element without a range
NA_TEXTS = ("", "NA", "NULL")  # CSV cells read as missing, as records.py reads them
TRUE_TEXTS = ("true", "yes", "1")
FALSE_TEXTS = ("false", "no", "0")

STATUS, MISSING, ERROR_COLUMN = "status", "missing", "error"
_RECORD_ERROR = "record error"  # internal names hold a space: no data element can clash


class SchemaError(ValueError):
    """A table column that does not fit the protocol's data dictionary."""


class SqlError(ValueError):
    """A protocol expression that SQL cannot compute exactly."""


class _TooWide(Exception):
    """An operation whose exact result needs more than MAX_PRECISION digits."""


# ---- the table layout ----------------------------------------------------------


@attrs.frozen
class Column:
    """Where a data element is in the table, and how its values are stored.

    `storage` is "typed" (a column of the element's own SQL type) or "text"
    (CSV cells, parsed as records.py parses them). `unit` is the unit of the
    column's numbers when it differs from the declared one ('creatinine
    [umol/L]'); `scale` is how many decimal places of them are kept.
    """

    element: str
    name: str
    storage: str = "typed"
    unit: str | None = None
    scale: int = SCALE


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
    id_column = None
    for name, type_text in schema:
        if name == ID_FIELD:
            id_column = name
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
    return Layout(tuple(columns), id_column)


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
    if kind.numeric:
        scale = _scale_of(declared)
        if scale is None:
            raise SchemaError(f"column '{name}': expected {wanted}, found {type_text}")
        return Column(element, name, "typed", unit, scale)
    is_text = declared.this in exp.DataType.TEXT_TYPES
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


def _scale_of(declared: exp.DataType) -> int | None:
    """Decimal places to keep from a numeric column type; None if it is not numeric."""
    if declared.this in exp.DataType.INTEGER_TYPES:
        return 0
    if declared.this in exp.DataType.REAL_TYPES and declared.this != exp.DType.DECIMAL:
        return SCALE
    if declared.this == exp.DType.DECIMAL:
        params = [p.this if isinstance(p, exp.DataTypeParam) else p for p in declared.expressions]
        places = int(params[1].name) if len(params) > 1 else 0
        return min(places, SCALE)
    return None


# ---- exact decimals --------------------------------------------------------------


def _digits(value: Fraction) -> int:
    """Integer digits needed to hold `value` (|value| < 10 ** digits), at least 1."""
    return max(1, len(str(abs(value.numerator) // value.denominator)))


def _places(value: Fraction) -> int | None:
    """Decimal places of `value` written out, or None if it never ends (1/3)."""
    rest, twos, fives = value.denominator, 0, 0
    while rest % 2 == 0:
        rest, twos = rest // 2, twos + 1
    while rest % 5 == 0:
        rest, fives = rest // 5, fives + 1
    return max(twos, fives) if rest == 1 else None


def _decimal_type(precision: int, scale: int) -> exp.DataType:
    return exp.DataType.build(f"DECIMAL({precision}, {scale})")


@attrs.frozen
class _Dec:
    """A DECIMAL expression with bounds on its value and its scale.

    Its SQL type is always DECIMAL(digits + scale, scale).
    """

    sql: exp.Expr
    low: Fraction
    high: Fraction
    scale: int
    nullable: bool = True

    @property
    def digits(self) -> int:
        return max(_digits(self.low), _digits(self.high))

    @property
    def precision(self) -> int:
        return self.digits + self.scale

    @property
    def type(self) -> exp.DataType:
        return _decimal_type(self.precision, self.scale)

    @property
    def constant(self) -> Fraction | None:
        return self.low if self.low == self.high and not self.nullable else None


def _literal(value: Fraction) -> _Dec:
    """A terminating decimal as a typed literal: CAST(2.7 AS DECIMAL(2, 1))."""
    places = _places(value)
    assert places is not None, "only terminating decimals are literals"
    scaled = str(abs(value.numerator * 10**places // value.denominator)).rjust(places + 1, "0")
    text = f"{scaled[:-places]}.{scaled[-places:]}" if places else scaled
    text = "-" + text if value < 0 else text
    dec = _Dec(exp.Literal.number(text), value, value, places, nullable=False)
    return attrs.evolve(dec, sql=exp.cast(dec.sql, dec.type))


def _typed(sql: exp.Expr, low: Fraction, high: Fraction, scale: int, nullable: bool) -> _Dec:
    dec = _Dec(sql, low, high, scale, nullable)
    if dec.precision > MAX_PRECISION:
        raise _TooWide
    return attrs.evolve(dec, sql=exp.cast(sql, dec.type))


def _paren(sql: exp.Expr) -> exp.Expr:
    """`sql` in parentheses unless it is atomic; sqlglot prints trees as they are built."""
    atomic = (exp.Column, exp.Literal, exp.Cast, exp.Paren, exp.Func, exp.Case, exp.Boolean)
    if isinstance(sql, atomic) and not isinstance(sql, exp.Connector):
        return sql
    return exp.Paren(this=sql)


def _mul(a: _Dec, b: _Dec) -> _Dec:
    if a.constant == 1:
        return b
    if b.constant == 1:
        return a
    # Spark types a product DECIMAL(p1 + p2 + 1, s1 + s2) and rounds if that is over 38.
    if a.precision + b.precision + 1 > MAX_PRECISION:
        raise _TooWide
    corners = [a.low * b.low, a.low * b.high, a.high * b.low, a.high * b.high]
    product = exp.Mul(this=_paren(a.sql), expression=_paren(b.sql))
    return _typed(product, min(corners), max(corners), a.scale + b.scale, a.nullable or b.nullable)


def _add(a: _Dec, b: _Dec, subtract: bool) -> _Dec:
    scale = max(a.scale, b.scale)
    if max(a.digits, b.digits) + 1 + scale > MAX_PRECISION:
        raise _TooWide
    if subtract:
        low, high = a.low - b.high, a.high - b.low
        total: exp.Expr = exp.Sub(this=_paren(a.sql), expression=_paren(b.sql))
    else:
        low, high = a.low + b.low, a.high + b.high
        total = exp.Add(this=_paren(a.sql), expression=_paren(b.sql))
    return _typed(total, low, high, scale, a.nullable or b.nullable)


def _neg(a: _Dec) -> _Dec:
    return _Dec(exp.Paren(this=exp.Neg(this=_paren(a.sql))), -a.high, -a.low, a.scale, a.nullable)


def _times(a: _Dec | None, b: _Dec | None) -> _Dec | None:
    if a is None or b is None:
        return a or b
    return _mul(a, b)


def _product(a: _Dec, b: _Dec | None) -> _Dec:
    return a if b is None else _mul(a, b)


def _zero() -> exp.Expr:
    return _literal(Fraction(0)).sql


_OPS: dict[str, type[exp.Binary]] = {
    "<": exp.LT,
    "<=": exp.LTE,
    ">": exp.GT,
    ">=": exp.GTE,
    "=": exp.EQ,
    "!=": exp.NEQ,
}


@attrs.frozen
class _Ratio:
    """An exact number num / den, den > 0; no den means 1."""

    num: _Dec
    den: _Dec | None = None

    @property
    def nullable(self) -> bool:
        return self.num.nullable or (self.den is not None and self.den.nullable)

    @property
    def constant(self) -> Fraction | None:
        num = self.num.constant
        den = Fraction(1) if self.den is None else self.den.constant
        return None if num is None or den is None else num / den


_NULL = _Ratio(_Dec(exp.cast(exp.null(), _decimal_type(1, 0)), Fraction(0), Fraction(0), 0))


def _fresh(x: _Ratio) -> _Ratio:
    """A copy of `x` whose SQL nodes are new, to use it once more in the tree."""
    den = None if x.den is None else attrs.evolve(x.den, sql=x.den.sql.copy())
    return _Ratio(attrs.evolve(x.num, sql=x.num.sql.copy()), den)


def _const(value: Fraction) -> _Ratio:
    if _places(value) is not None:
        return _Ratio(_literal(value))
    return _Ratio(_literal(Fraction(value.numerator)), _literal(Fraction(value.denominator)))


def _ratio_mul(x: _Ratio, y: _Ratio) -> _Ratio:
    return _Ratio(_mul(x.num, y.num), _times(x.den, y.den))


def _ratio_scale(x: _Ratio, factor: Fraction) -> _Ratio:
    return x if factor == 1 else _ratio_mul(x, _const(factor))


def _ratio_add(x: _Ratio, y: _Ratio, subtract: bool) -> _Ratio:
    if x.den == y.den:
        return _Ratio(_add(x.num, y.num, subtract), x.den)
    num = _add(_product(x.num, y.den), _product(y.num, x.den), subtract)
    return _Ratio(num, _times(x.den, y.den))


def _ratio_div(x: _Ratio, y: _Ratio) -> _Ratio:
    """x / y, NULL when y is 0, as the evaluator's guard; the sign moves to the numerator."""
    constant = y.constant
    if constant is not None:
        return _NULL if constant == 0 else _ratio_mul(x, _const(1 / constant))
    num = _product(x.num, y.den)
    divisor = y.num
    if divisor.low > 0:
        return _Ratio(num, _times(x.den, divisor))
    if divisor.high < 0:
        return _Ratio(_neg(num), _times(x.den, _neg(divisor)))
    nonzero = attrs.evolve(
        divisor, sql=exp.Nullif(this=divisor.sql, expression=_zero()), nullable=True
    )
    if divisor.low >= 0:
        return _Ratio(num, _times(x.den, nonzero))
    if divisor.high <= 0:
        return _Ratio(_neg(num), _times(x.den, _neg(nonzero)))
    magnitude = _Dec(
        exp.Abs(this=nonzero.sql), Fraction(0), max(-divisor.low, divisor.high), divisor.scale
    )
    flipped = _neg(num)
    signed = _Dec(
        exp.Case()
        .when(exp.LT(this=divisor.sql.copy(), expression=_zero()), flipped.sql)
        .else_(num.sql),
        min(num.low, flipped.low),
        max(num.high, flipped.high),
        num.scale,
        num.nullable or divisor.nullable,
    )
    return _Ratio(signed, _times(x.den, magnitude))


def _ratio_compare(x: _Ratio, op: str, y: _Ratio) -> exp.Expr:
    left, right = _product(x.num, y.den), _product(y.num, x.den)
    # Both engines widen the two sides to one DECIMAL type; it must not pass 38 digits.
    if max(left.digits, right.digits) + max(left.scale, right.scale) > MAX_PRECISION:
        raise _TooWide
    return _OPS[op](this=_paren(left.sql), expression=_paren(right.sql))


# ---- booleans --------------------------------------------------------------------


def _and(*terms: exp.Expr) -> exp.Expr:
    return exp.and_(*terms) if len(terms) > 1 else terms[0]


def _or(*terms: exp.Expr) -> exp.Expr:
    return exp.or_(*terms) if len(terms) > 1 else terms[0]


def _not(term: exp.Expr) -> exp.Expr:
    return exp.not_(term)


def _is_null(term: exp.Expr) -> exp.Expr:
    return exp.Is(this=_paren(term), expression=exp.null())


def _is(term: exp.Expr, truth: bool) -> exp.Expr:
    return exp.Is(this=_paren(term), expression=exp.true() if truth else exp.false())


def _applicable(applies: exp.Expr, value: exp.Expr, inclusion: bool) -> exp.Expr:
    """The compiler's `applicable`: Kleene `not applies or value`, or `applies and value`."""
    return _or(_not(applies), value) if inclusion else _and(applies, value)


def _text(value: str) -> exp.Expr:
    return exp.Literal.string(value)


def _col(name: str) -> exp.Expr:
    return exp.column(name, quoted=True)


def _alias(sql: exp.Expr, name: str) -> exp.Expr:
    return exp.alias_(sql, name, quoted=True)


def _select(columns: list[exp.Expr], source: exp.Expr | str) -> exp.Select:
    """SELECT columns FROM source; every part is built fresh, so nothing is copied."""
    return exp.select(*columns, copy=False).from_(source, copy=False)


def _lambda(body: exp.Expr) -> exp.Lambda:
    return exp.Lambda(this=body, expressions=[exp.to_identifier("x")])


def _x() -> exp.Expr:
    """The lambda's parameter; a fresh node each time, as a node has one parent."""
    return exp.column("x")


# ---- the query -----------------------------------------------------------------------


_Value = _Ratio | exp.Expr


def applies_column(criterion: s.Criterion) -> str:
    """The name of a criterion's applicability column."""
    return f"{criterion.id.text} applies"


def result_columns(checked: Checked) -> list[str]:
    """The query's columns, in order."""
    columns = [ID_FIELD, STATUS]
    for criterion in checked.protocol.criteria:
        columns.append(criterion.id.text)
        if criterion.applies_when is not None:
            columns.append(applies_column(criterion))
    return [*columns, MISSING, ERROR_COLUMN]


def query(checked: Checked, table: str = "patients", layout: Layout | None = None) -> exp.Select:
    """The screening query over `table`, as a sqlglot expression."""
    return _Generator(checked, layout or default_layout(checked)).query(exp.to_table(table))


def to_sql(
    checked: Checked,
    table: str = "patients",
    dialect: str = "duckdb",
    layout: Layout | None = None,
    pretty: bool = True,
) -> str:
    """The screening query over `table` as SQL text in `dialect`."""
    return query(checked, table, layout).sql(dialect=dialect, pretty=pretty)


class _Generator:
    def __init__(self, checked: Checked, layout: Layout) -> None:
        self.checked = checked
        self.layout = layout
        self.values: dict[str, _Value] = {}  # element and definition name -> its column(s)
        self.problems: list[tuple[str, str]] = []  # validated elements, what is wrong if not

    def query(self, table: exp.Table) -> exp.Select:
        # Stage names start with screen_ so that they do not hide a table called `input`.
        stages: list[tuple[str, exp.Select]] = [
            ("screen_source", self.source(table)),
            ("screen_input", self.input()),
            ("screen_checked", self.record_errors()),
        ]
        previous = "screen_checked"
        for number, names in enumerate(self.definition_levels(), start=1):
            name = f"screen_definitions_{number}"
            stages.append((name, self.definitions(names, previous)))
            previous = name
        stages += [
            ("screen_criteria", self.criteria(previous)),
            ("screen_verdicts", self.verdicts()),
            ("screen_outcomes", self.outcomes()),
        ]
        select = self.final()
        for name, stage in stages:
            select = select.with_(name, as_=stage, copy=False)
        return select

    @contextlib.contextmanager
    def exactly(self, span: s.Span) -> Iterator[None]:
        """Report an expression too wide for exact SQL decimals at its place in the source."""
        try:
            yield
        except _TooWide:
            raise SqlError(
                f"{span}: this needs more than {MAX_PRECISION} decimal digits to compute "
                "exactly in SQL; declare plausible ranges for its data elements"
            ) from None

    # ---- input: parse, validate and convert every column ----

    def source(self, table: exp.Table) -> exp.Select:
        columns: list[exp.Expr] = []
        if self.layout.id_column is not None:
            identity = exp.cast(_col(self.layout.id_column), exp.DataType.build("VARCHAR"))
            columns.append(_alias(identity, ID_FIELD))
        for name, element in self.checked.elements.items():
            columns += self.source_columns(name, element)
        return _select(columns, table)

    def source_columns(self, name: str, element: s.DataElement) -> list[exp.Expr]:
        kind = self.checked.element_types[name]
        column = self.layout.column(name)
        if column is None:
            return [_alias(exp.cast(exp.null(), self.null_type(name, kind)), name)]
        raw = _col(column.name)
        text = column.storage == "text"
        if text:
            trimmed = exp.Trim(this=raw)
            na = exp.In(this=exp.Upper(this=trimmed), expressions=[_text(t) for t in NA_TEXTS])
            raw = exp.Case().when(na, exp.null()).else_(trimmed)
        given = _alias(exp.not_(_is_null(raw)), f"{name} given")
        match kind.kind:
            case "number" | "quantity":
                read = self.read_number(name, element, kind, column)
                return [_alias(exp.TryCast(this=raw, to=read.type, safe=True), name), given]
            case "boolean" if text:
                lowered = exp.Lower(this=raw)
                parsed = (
                    exp.Case()
                    .when(
                        exp.In(this=lowered, expressions=[_text(t) for t in TRUE_TEXTS]), exp.true()
                    )
                    .when(
                        exp.In(this=lowered, expressions=[_text(t) for t in FALSE_TEXTS]),
                        exp.false(),
                    )
                )
                return [_alias(parsed, name), given]
            case "date" if text:
                return [
                    _alias(exp.TryCast(this=raw, to=exp.DataType.build("DATE"), safe=True), name),
                    given,
                ]
            case "set" if text:
                pieces = exp.RegexpSplit(this=raw, expression=_text("[;|]"))
                trimmed_pieces = exp.Transform(this=pieces, expression=_lambda(exp.Trim(this=_x())))
                kept = exp.ArrayFilter(
                    this=trimmed_pieces,
                    expression=_lambda(exp.NEQ(this=_x(), expression=_text(""))),
                )
                return [_alias(kept, name), given]
            case "enum" | "set":
                return [_alias(raw, name), given]
        return [_alias(raw, name)]

    def null_type(self, name: str, kind: Type) -> exp.DataType:
        if kind.numeric:
            return self.element_value(name, self.checked.elements[name], kind, None).num.type
        return exp.DataType.build(
            {"boolean": "BOOLEAN", "enum": "VARCHAR", "set": "VARCHAR[]", "date": "DATE"}[
                kind.kind
            ],
            dialect="duckdb",
        )

    def read_number(
        self, name: str, element: s.DataElement, kind: Type, column: Column | None
    ) -> _Dec:
        """The element's number as read from its column, in the column's unit."""
        scale = column.scale if column is not None else SCALE
        limits = element.plausible_range
        if limits is None:
            bound = Fraction(10**UNBOUNDED_DIGITS) - Fraction(1, 10**scale)
            low, high = -bound, bound
        else:
            into = self.into_declared(kind, column)
            low, high = Fraction(limits[0]) / into, Fraction(limits[1]) / into
        dec = _Dec(_col(name), low, high, scale)
        if dec.precision > MAX_PRECISION:
            raise SqlError(f"{element.span}: the range of '{name}' is too wide for SQL decimals")
        return dec

    def into_declared(self, kind: Type, column: Column | None) -> Fraction:
        if column is None or column.unit is None:
            return Fraction(1)
        return units.factor(column.unit, kind.unit, kind.molar_mass)

    def element_value(
        self, name: str, element: s.DataElement, kind: Type, column: Column | None
    ) -> _Ratio:
        """The element's exact value in its declared unit, from its column."""
        read = self.read_number(name, element, kind, column)
        try:
            return _ratio_scale(_Ratio(read), self.into_declared(kind, column))
        except _TooWide:
            raise SqlError(
                f"{element.span}: converting '{name}' from '{column and column.unit}' "
                f"needs more than {MAX_PRECISION} digits"
            ) from None

    def input(self) -> exp.Select:
        """Values that fit the data dictionary, in declared units; NULL for those that do not."""
        columns: list[exp.Expr] = []
        if self.layout.id_column is not None:
            columns.append(_col(ID_FIELD))
        self.problems = []
        for name, element in self.checked.elements.items():
            value, problem = self.validated(name, element)
            columns.append(_alias(value, name))
            if problem is not None:
                columns.append(_col(f"{name} given"))
                self.problems.append((name, problem))
        return _select(columns, "screen_source")

    def record_errors(self) -> exp.Select:
        """The first value that did not fit: given, yet NULL once validated."""
        failures = [(_and(_col(f"{n} given"), _is_null(_col(n))), m) for n, m in self.problems]
        error: exp.Expr = exp.cast(exp.null(), exp.DataType.build("VARCHAR"))
        if failures:
            # Nearly every record is valid: one test settles those, the rest name the field.
            valid = exp.not_(_paren(_or(*(failed for failed, _ in failures))))
            case = exp.Case().when(valid, exp.cast(exp.null(), exp.DataType.build("VARCHAR")))
            for failed, message in failures:
                case = case.when(failed, _text(message))
            error = case
        return _select([exp.Star(), _alias(error, _RECORD_ERROR)], "screen_input")

    def validated(self, name: str, element: s.DataElement) -> tuple[exp.Expr, str | None]:
        """(value or NULL, what is wrong when it is NULL though given), and its reference."""
        kind = self.checked.element_types[name]
        column = self.layout.column(name)
        held = _col(name)
        self.values[name] = held
        if column is None:
            if kind.numeric:
                self.values[name] = self.element_reference(name, element, kind, None)
            return held, None
        where = f"column '{column.name}'"
        match kind.kind:
            case "number" | "quantity":
                return self.validated_number(name, element, kind, column, where)
            case "enum":
                allowed = exp.In(this=held, expressions=[_text(v) for v in kind.values])
                values = ", ".join(kind.values)
                return (
                    exp.Case().when(allowed, held),
                    f"{where}: not a declared value; expected one of {values}",
                )
            case "set":
                allowed = exp.In(this=_x(), expressions=[_text(v) for v in kind.values])
                stray = exp.ArrayFilter(
                    this=held,
                    expression=_lambda(
                        exp.not_(exp.Coalesce(this=allowed, expressions=[exp.false()]))
                    ),
                )
                count = exp.Coalesce(
                    this=exp.ArraySize(this=stray), expressions=[exp.Literal.number(0)]
                )
                fits = exp.EQ(this=count, expression=exp.Literal.number(0))
                values = ", ".join(kind.values)
                return (
                    exp.Case().when(fits, held),
                    f"{where}: expected a list of values from {values}",
                )
        if column.storage == "text":
            word = {"boolean": "true or false", "date": "a date as YYYY-MM-DD"}[kind.kind]
            return held, f"{where}: expected {word}"
        return held, None

    def validated_number(
        self, name: str, element: s.DataElement, kind: Type, column: Column, where: str
    ) -> tuple[exp.Expr, str]:
        read = self.read_number(name, element, kind, column)
        value = self.element_value(name, element, kind, column)
        shown = "" if kind.unit == units.DIMENSIONLESS else f" {kind.unit}"
        limits = element.plausible_range
        self.values[name] = self.element_reference(name, element, kind, column)
        if limits is None:
            return value.num.sql, f"{where}: expected a number of at most {UNBOUNDED_DIGITS} digits"
        lowest, highest = _const(read.low), _const(read.high)
        inside = _and(
            _ratio_compare(lowest, "<=", _Ratio(read)), _ratio_compare(_Ratio(read), "<=", highest)
        )
        return (
            exp.Case().when(inside, value.num.sql),
            f"{where}: expected a number from {limits[0]} to {limits[1]}{shown}",
        )

    def element_reference(
        self, name: str, element: s.DataElement, kind: Type, column: Column | None
    ) -> _Ratio:
        value = self.element_value(name, element, kind, column)
        return _Ratio(attrs.evolve(value.num, sql=_col(name)), value.den)

    # ---- definitions, level by level so each is computed once ----

    def definition_levels(self) -> list[list[str]]:
        levels: dict[str, int] = {}

        def level(name: str) -> int:
            if name not in levels:
                used = self.used_definitions(self.checked.definitions[name].expr)
                levels[name] = 1 + max((level(d) for d in used), default=0)
            return levels[name]

        for criterion in self.checked.protocol.criteria:
            for root in (criterion.applies_when, criterion.condition):
                if root is not None:
                    for name in self.used_definitions(root):
                        level(name)
        ordered = [d.name.text for d in self.checked.protocol.definitions if d.name.text in levels]
        deepest = max(levels.values(), default=0)
        return [[n for n in ordered if levels[n] == depth] for depth in range(1, deepest + 1)]

    def used_definitions(self, root: object) -> list[str]:
        return list(
            dict.fromkeys(
                node.name
                for node in s.walk(root)
                if isinstance(node, s.Ref) and node.name in self.checked.definitions
            )
        )

    def definitions(self, names: list[str], previous: str) -> exp.Select:
        columns: list[exp.Expr] = [exp.Star()]
        for name in names:
            definition = self.checked.definitions[name]
            with self.exactly(definition.span):
                columns += self.definition_columns(name, definition.expr)
        return _select(columns, previous)

    def definition_columns(self, name: str, expr: s.Expr) -> list[exp.Expr]:
        if not self.checked.types[expr].numeric:
            self.values[name] = _col(name)
            return [_alias(self.scalar(expr), name)]
        ratio = self.number(expr)
        columns = [_alias(ratio.num.sql, name)]
        den = ratio.den
        if den is not None and den.constant is None:
            columns.append(_alias(den.sql, f"{name} den"))
            den = attrs.evolve(den, sql=_col(f"{name} den"))
        self.values[name] = _Ratio(attrs.evolve(ratio.num, sql=_col(name)), den)
        return columns

    # ---- criteria ----

    def criteria(self, previous: str) -> exp.Select:
        columns: list[exp.Expr] = [exp.Star()]
        for criterion in self.checked.protocol.criteria:
            inclusion = criterion.kind == "inclusion"
            parts: list[tuple[s.Expr, str, bool]] = [
                (criterion.condition, f"{criterion.id.text} condition", inclusion)
            ]
            if criterion.applies_when is not None:
                parts.append((criterion.applies_when, applies_column(criterion), True))
            for root, name, neutral in parts:
                with self.exactly(root.span):
                    columns.append(_alias(self.boolean(root, neutral), name))
        return _select(columns, previous)

    def verdicts(self) -> exp.Select:
        columns: list[exp.Expr] = [exp.Star()]
        for criterion in self.checked.protocol.criteria:
            value = _col(f"{criterion.id.text} condition")
            if criterion.applies_when is not None:
                applies = _col(applies_column(criterion))
                value = _applicable(applies, value, criterion.kind == "inclusion")
            columns.append(_alias(value, f"{criterion.id.text} value"))
        return _select(columns, "screen_criteria")

    def outcomes(self) -> exp.Select:
        excluded: list[exp.Expr] = []
        settled: list[exp.Expr] = []
        for criterion in self.checked.protocol.criteria:
            value = _col(f"{criterion.id.text} value")
            inclusion = criterion.kind == "inclusion"
            excluded.append(_is(value, not inclusion))
            settled.append(_is(value, inclusion))
        status = (
            exp.Case()
            .when(exp.not_(_is_null(_col(_RECORD_ERROR))), _text(Outcome.ERROR))
            .when(_or(*excluded) if excluded else exp.false(), _text(Outcome.INELIGIBLE))
            .when(_and(*settled) if settled else exp.true(), _text(Outcome.ELIGIBLE))
            .else_(_text(Outcome.UNDETERMINED))
        )
        return _select([exp.Star(), _alias(status, f"{STATUS} value")], "screen_verdicts")

    def final(self) -> exp.Select:
        valid = _is_null(_col(_RECORD_ERROR))
        columns: list[exp.Expr] = []
        if self.layout.id_column is not None:
            columns.append(_col(ID_FIELD))
        columns.append(_alias(_col(f"{STATUS} value"), STATUS))
        for criterion in self.checked.protocol.criteria:
            value = exp.Case().when(valid, _col(f"{criterion.id.text} value"))
            columns.append(_alias(value, criterion.id.text))
            if criterion.applies_when is not None:
                applies = exp.Case().when(valid, _col(applies_column(criterion)))
                columns.append(_alias(applies, applies_column(criterion)))
        columns.append(_alias(self.missing(), MISSING))
        columns.append(_alias(_col(_RECORD_ERROR), ERROR_COLUMN))
        return _select(columns, "screen_outcomes")

    def missing(self) -> exp.Expr:
        """Absent elements under the unknown `applies when` or condition of an unknown criterion.

        The evaluator narrows this to the elements under the unknown parts of
        each; here a whole root counts, so the list can be longer, never shorter.
        """
        reasons: dict[str, list[exp.Expr]] = {}
        for criterion in self.checked.protocol.criteria:
            unknown = _is_null(_col(f"{criterion.id.text} value"))
            parts = [(criterion.condition, f"{criterion.id.text} condition")]
            if criterion.applies_when is not None:
                parts.append((criterion.applies_when, applies_column(criterion)))
            for root, column in parts:
                for name in self.elements_under(root):
                    reasons.setdefault(name, []).append(_and(unknown, _is_null(_col(column))))
        entries = [
            exp.Case().when(_and(_is_null(_col(name)), _paren(_or(*because))), _text(name))
            for name, because in reasons.items()
        ]
        listed = exp.Array(expressions=entries or [exp.cast(exp.null(), "VARCHAR")])
        found = exp.ArrayFilter(this=listed, expression=_lambda(exp.not_(_is_null(_x()))))
        # Only undetermined patients have missing data that matters: skip the rest cheaply.
        undetermined = exp.EQ(this=_col(f"{STATUS} value"), expression=_text(Outcome.UNDETERMINED))
        none = exp.cast(
            exp.Array(expressions=[]), exp.DataType.build("VARCHAR[]", dialect="duckdb")
        )
        return exp.Case().when(undetermined, found).else_(none)

    def elements_under(self, root: object) -> list[str]:
        found: list[str] = []
        for node in s.walk(root):
            if not isinstance(node, s.Ref):
                continue
            if node.name in self.checked.elements:
                found.append(node.name)
            elif node.name in self.checked.definitions:
                found += self.elements_under(self.checked.definitions[node.name].expr)
        return list(dict.fromkeys(found))

    # ---- expressions ----

    def boolean(self, node: s.Expr | s.SubCriterion, neutral: bool = True) -> exp.Expr:
        """A condition as a three-valued SQL BOOLEAN; `neutral` as in the compiler."""
        match node:
            case s.SubCriterion(applies_when=applies, condition=condition):
                value = self.boolean(condition, neutral)
                if applies is None:
                    return value
                return _applicable(self.boolean(applies), value, neutral)
            case s.BoolLit(value=truth):
                return exp.true() if truth else exp.false()
            case s.Not(operand=operand):
                return _not(self.boolean(operand))
            case s.And(left=a, right=b):
                return _and(self.boolean(a, neutral), self.boolean(b, neutral))
            case s.Or(left=a, right=b):
                return _or(self.boolean(a, neutral), self.boolean(b, neutral))
            case s.Unless(rule=rule, exception=exception):
                return _and(self.boolean(rule), _not(self.boolean(exception)))
            case s.Compare():
                return self.compare(node)
            case s.Between():
                return self.between(node)
            case s.Member(subject=subject, values=values):
                return exp.In(
                    this=self.scalar(subject), expressions=[_text(v.text) for v in values]
                )
            case s.Includes(subject=subject, quantifier=quantifier, values=values):
                held = self.scalar(subject)
                tests = [exp.ArrayContains(this=held, expression=_text(v.text)) for v in values]
                combined = _or(*tests) if quantifier == "any" else _and(*tests)
                # Postgres reads `= ANY` of a NULL array as FALSE: keep it unknown.
                return exp.Case().when(_is_null(held), exp.null()).else_(combined)
            case s.Quantified(quantifier="at_least", count=count, items=items):
                return self.at_least(count or 0, items, neutral)
            case s.Quantified(quantifier=quantifier, items=items):
                terms = [self.boolean(item, neutral) for item in items]
                return _and(*terms) if quantifier == "all" else _or(*terms)
            case s.Ref():
                return self.scalar(node)
        raise AssertionError(f"not a condition: {node!r}")

    def at_least(
        self, count: int, items: tuple[s.Expr | s.SubCriterion, ...], neutral: bool
    ) -> exp.Expr:
        """The compiler's count: met if N are true, failed if fewer than N are not false."""
        values = [self.boolean(item, neutral) for item in items]
        one, zero = exp.Literal.number(1), exp.Literal.number(0)

        def total(counts: list[exp.Expr]) -> exp.Expr:
            result = counts[0]
            for term in counts[1:]:
                result = exp.Add(this=result, expression=term)
            return exp.Paren(this=result)

        met = total([exp.Case().when(v, one).else_(zero) for v in values])
        possible = total([exp.Case().when(_is(v, False), zero).else_(one) for v in values])
        needed = exp.Literal.number(count)
        return (
            exp.Case()
            .when(exp.GTE(this=met, expression=needed), exp.true())
            .when(exp.LT(this=possible, expression=needed), exp.false())
            .else_(exp.null())
        )

    def scalar(self, node: s.Expr) -> exp.Expr:
        """A non-numeric value: boolean, enum, set or date."""
        match node:
            case s.Ref(name=name) if name in self.values:
                value = self.values[name]
                assert not isinstance(value, _Ratio)
                return value.copy()  # a node has one parent; a name is used many times
            case s.Ref(name=name) if name in self.checked.constants:
                literal = self.checked.constants[name].value
                assert isinstance(literal, s.DateLit)
                return self.scalar(literal)
            case s.Ref(name=name):
                return _text(name)  # an enum value, as in `sex = female`
            case s.DateLit(value=day):
                return exp.cast(_text(day.isoformat()), exp.DataType.build("DATE"))
        return self.boolean(node)

    def compare(self, node: s.Compare) -> exp.Expr:
        if self.checked.types[node.left].numeric:
            left = self.number(node.left)
            right = self.in_unit_of(node.right, node.left)
            return _ratio_compare(left, node.op, right)
        left_value, right_value = self.scalar(node.left), self.scalar(node.right)
        return _OPS[node.op](this=_paren(left_value), expression=_paren(right_value))

    def between(self, node: s.Between) -> exp.Expr:
        op = "<" if node.exclusive else "<="
        if self.checked.types[node.subject].numeric:
            subject = self.number(node.subject)
            low = self.in_unit_of(node.low, node.subject)
            high = self.in_unit_of(node.high, node.subject)
            above = _ratio_compare(low, op, subject)
            below = _ratio_compare(subject, op, high)
            bounded = not (low.nullable or high.nullable)
        else:
            value = self.scalar(node.subject)
            above = _OPS[op](this=self.scalar(node.low), expression=value)
            below = _OPS[op](this=value, expression=self.scalar(node.high))
            bounded = all(isinstance(b, s.DateLit) for b in (node.low, node.high))
        both = _and(above, below)
        if bounded:
            return both
        # `a <= x <= b` is unknown when any of the three is, even if one side is false.
        unknown = _or(_is_null(above), _is_null(below))
        return exp.Case().when(unknown, exp.null()).else_(both)

    # ---- numbers ----

    def number(self, node: s.Expr) -> _Ratio:
        """A numeric expression as an exact ratio, in the unit the checker gave it."""
        folded = self.checked.fold(node)
        if folded is not None:
            return _const(folded)
        match node:
            case s.Ref(name=name):
                value = self.values[name]
                assert isinstance(value, _Ratio)
                return _fresh(value)
            case s.Arithmetic(op=op, left=a, right=b):
                left = self.number(a)
                if op in "+-":
                    return _ratio_add(left, self.in_unit_of(b, a), subtract=op == "-")
                right = self.number(b)
                return _ratio_mul(left, right) if op == "*" else _ratio_div(left, right)
            case s.RelativeChange(direction=direction, baseline=baseline, current=current):
                base = self.number(baseline)
                now = self.in_unit_of(current, baseline)
                difference = (
                    _ratio_add(base, now, subtract=True)
                    if direction == "decline"
                    else _ratio_add(now, base, subtract=True)
                )
                return _ratio_div(_ratio_mul(difference, _const(Fraction(100))), base)
        raise AssertionError(f"not a number: {node!r}")

    def in_unit_of(self, node: s.Expr, target: s.Expr) -> _Ratio:
        folded = self.checked.fold(node)
        if folded is not None:
            return _const(folded * self.checked.factor(node, target))
        return _ratio_scale(self.number(node), self.checked.factor(node, target))
