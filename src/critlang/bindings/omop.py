"""OMOP CDM 5.4 bindings: where each data element is in the OMOP tables, and the SQL that reads it.

A binding (the `omop:` section of a binding file, read by `parse_section`)
says, for one data element, which OMOP table holds it, which records count
(by concept id, `omop:ID`, or by code through `concept`: vocabulary_id +
concept_code), and how one value is selected from a patient's records (the
latest within 90 days before the reference date, any, none, ...).

From the bindings and a protocol, `PatientTable` writes sqlglot queries that
turn the OMOP tables into critlang's patient table (one row per `person`, a
column per bound flat element, in the element's declared unit, as exact
DECIMALs) and, for histories, its events table (one row per record), which
the screening query of `engines/sql` reads as it reads any typed tables. The
same trees run on DuckDB, PostgreSQL and Spark.

Data that cannot be read faithfully never changes a result silently: a value
whose unit is not UCUM or not of the element's kind, a value that is not a
number exact in 10 places, or records on the selected day that disagree make
the selected value unknown; `problems` and `record_counts` count them, with
records dated after the reference date, element by element.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from fractions import Fraction

import attrs
import yaml
from sqlglot import exp

from critlang import units
from critlang.bindings.assemble import shift
from critlang.bindings.binding import (
    SELECT_FLAT as SELECT_NUMBER,
)
from critlang.bindings.binding import CodeSet, Context, ElementBinding, Section, SourceKind
from critlang.check import Checked, Type
from critlang.engines.sql import build as b
from critlang.engines.sql import exact
from critlang.vocab import CalendarUnit, CodeSystem

# ---- the binding of one element ----------------------------------------------------


@attrs.frozen
class Table:
    """The columns of an OMOP CDM 5.4 clinical table that a binding reads."""

    name: str
    concept: str
    source_concept: str
    date: str
    end: str | None = None  # drug_exposure: the exposure's last day
    # condition_occurrence: the condition's last day, read only as a history entry's end
    # (a binding's window reads the record's date alone).
    period_end: str | None = None
    value: str | None = None  # value_as_number, where the table has one
    value_concept: str | None = None
    unit_concept: str | None = None
    unit_source: str | None = None


TABLES = {
    t.name: t
    for t in (
        Table(
            "measurement",
            "measurement_concept_id",
            "measurement_source_concept_id",
            "measurement_date",
            value="value_as_number",
            value_concept="value_as_concept_id",
            unit_concept="unit_concept_id",
            unit_source="unit_source_value",
        ),
        Table(
            "observation",
            "observation_concept_id",
            "observation_source_concept_id",
            "observation_date",
            value="value_as_number",
            value_concept="value_as_concept_id",
            unit_concept="unit_concept_id",
            unit_source="unit_source_value",
        ),
        Table(
            "condition_occurrence",
            "condition_concept_id",
            "condition_source_concept_id",
            "condition_start_date",
            period_end="condition_end_date",
        ),
        Table(
            "drug_exposure",
            "drug_concept_id",
            "drug_source_concept_id",
            "drug_exposure_start_date",
            end="drug_exposure_end_date",
        ),
        Table(
            "procedure_occurrence",
            "procedure_concept_id",
            "procedure_source_concept_id",
            "procedure_date",
        ),
    )
}

# The section's source keys: `person` fields, or a clinical table by its codes.
SOURCES = {
    "person": SourceKind(codes=False, fields=("birth_date", "gender", "reference_date")),
    **{name: SourceKind(reads=("value", "date", "time since")) for name in TABLES},
    "drug_exposure": SourceKind(reads=("value", "date", "time since", "dose")),
}
# OMOP's standard gender concepts, read as the FHIR genders are named.
GENDERS = (("female", 8532), ("male", 8507), ("other", 8521), ("unknown", 8551))
# A critlang code system and the vocabulary_id OMOP files its concepts under.
VOCABULARIES = {
    CodeSystem.SNOMED: "SNOMED",
    CodeSystem.ICD10CM: "ICD10CM",
    CodeSystem.LOINC: "LOINC",
    CodeSystem.RXNORM: "RxNorm",
    CodeSystem.ATC: "ATC",
}
CONCEPT_SYSTEM = "omop"  # `omop:3016723`: a concept id, as the OMOP tables hold it
DURATION_UNITS = ("a", "mo", "wk", "d")
READABLE = ("boolean", "number", "quantity", "enum", "set", "date", "code", "history")


@attrs.frozen
class Window:
    """Records dated within `amount` calendar `unit`s before the reference date (inclusive)."""

    amount: int
    unit: CalendarUnit

    def start(self, reference: datetime.date) -> datetime.date:
        """The window's first day, as CQL subtracts a duration from a date (ir.DateShift)."""
        return shift(reference, -self.amount, self.unit)


@attrs.frozen
class OmopSource:
    """Where one data element is in the OMOP tables, and how its value is selected.

    `table` is `person` (with `field`: birth_date or gender) or a clinical
    table of `TABLES`, whose records count when their concept (or source
    concept) is one of `codes` (looked up in `concept` by vocabulary_id and
    concept_code, or `omop:ID` concept ids). `values` maps an element's
    values to codes: of the records themselves (a set or one-of from
    conditions) or of a measurement's `value_as_concept_id` (`map`). `read`
    is what is taken from the selected record: its `value`, its `date` or
    the `time since` it. `absent` says what no record means: "unknown" (the
    default), "false" or "empty" (the site's records are complete for it).
    """

    element: str
    table: str
    field: str | None = None
    codes: CodeSet = attrs.field(factory=CodeSet)
    select: str = "latest"
    window: Window | None = None
    values: tuple[tuple[str, CodeSet], ...] = ()
    read: str = "value"
    absent: str = "unknown"
    mapped: bool = False  # `values` are of the value concept (`map`), not of the records
    exclude: CodeSet = attrs.field(factory=CodeSet)  # records of these concepts never count


def source_of(element: ElementBinding) -> OmopSource:
    """The OMOP reading of a checked element binding."""
    window = Window(*element.rule.within) if element.rule.within is not None else None
    values = element.values
    mapped = bool(values) and bool(element.codes) and element.codes != _union(values)
    if element.source == "person" and element.field == "gender":
        values = tuple(
            (name, CodeSet(frozenset({f"{CONCEPT_SYSTEM}:{concept}"})))
            for name, concept in GENDERS
            if name in element.type.values
        )
    return OmopSource(
        element=element.name,
        table=element.source,
        field=element.field,
        codes=element.codes,
        select=element.rule.select,
        window=window,
        values=values,
        read=element.read,
        absent=element.absent,
        mapped=mapped,
        exclude=element.exclude,
    )


def _union(values: tuple[tuple[str, CodeSet], ...]) -> CodeSet:
    found = CodeSet()
    for _, codes in values:
        found = found.union(codes)
    return found


def parse_section(node: yaml.Node, context: Context) -> Section | None:
    """The `omop:` section of a binding; problems go to `context`."""
    context.extra_systems = (CONCEPT_SYSTEM,)
    context.hierarchy = True  # concept_ancestor: `with descendants` and `exclude`
    elements, unbound = context.elements(node, "the omop section", SOURCES)
    fitting = {name: e for name, e in elements.items() if _fits(e, context)}
    return Section("omop", context.span(node), fitting, unbound)


def _fits(element: ElementBinding, context: Context) -> bool:
    """What each OMOP source can give to which kind of element."""
    kind = element.type
    problem: str | None = None
    hint: str | None = None
    table = TABLES.get(element.source)
    if element.source == "person":
        if element.field == "birth_date" and kind.kind not in ("date", "quantity"):
            problem = "person's birth date gives a date, or an age for a quantity in 'a'"
            hint = "bind birth_date to a date element or to an age in 'a'"
        elif element.field == "birth_date" and kind.kind == "quantity" and kind.unit != "a":
            problem = f"an age from person's birth date is in 'a', not '{kind.unit}'"
            hint = "declare the age as quantity 'a'"
        elif element.field == "reference_date" and kind.kind != "date":
            problem = "the reference date (--as-of) is a date"
        elif element.field == "gender" and kind.kind != "enum":
            problem = "person's gender_concept_id gives one of its values"
            hint = "declare it as one of (female, male, ...)"
        elif element.field == "gender" and not set(kind.values) <= {g for g, _ in GENDERS}:
            problem = f"gender is one of {', '.join(g for g, _ in GENDERS)}"
            hint = "name the element's values as OMOP's gender concepts are named"
    elif kind.kind not in READABLE:
        problem = f"{kind.describe()} is not read from OMOP yet"
        hint = "bind it in another source, or write '~': unknown for every patient"
    elif kind.kind == "history" and table is not None:
        problem, hint = _history_problem(kind, table)
        if problem is None and element.read == "dose" and kind.entry != "medication":
            problem = f"'read: dose' gives a medication's dose, not {kind.describe()}"
    elif element.read == "dose" and (
        kind.kind != "quantity" or element.rule.select not in SELECT_NUMBER
    ):
        problem = f"'read: dose' gives a daily dose (a quantity), not {kind.describe()}"
        hint = "declare it as a quantity such as 'mg/d', selected latest, earliest, ..."
    elif element.read == "date" and kind.kind != "date":
        problem = f"'read: date' does not give {kind.describe()}"
    elif element.read == "time since" and (
        kind.kind != "quantity" or kind.unit not in DURATION_UNITS
    ):
        problem = f"'read: time since' gives a duration, not {kind.describe()}"
        hint = f"declare it as a duration in one of {', '.join(DURATION_UNITS)}"
    elif element.read == "value" and table is not None:
        problem, hint = _value_problem(element, kind, table)
    named = _union((("", element.codes), ("", element.exclude), *element.values))
    ids = [c for c in (*sorted(named.codes), *named.prefixes) if c.startswith("omop:")]
    wrong = [c for c in ids if c in named.prefixes or not c.partition(":")[2].isdigit()]
    if problem is None and wrong:
        problem = f"'{wrong[0]}' is not a concept id"
        hint = "an OMOP concept id is a whole number, e.g. omop:3016723"
    if problem is None:
        return True
    hint = hint or "see docs/omop.md for what each OMOP table gives"
    context.error_at(element.span, "BIND041", f"'{element.name}': {problem}", hint)
    return False


def _history_problem(kind: Type, table: Table) -> tuple[str | None, str | None]:
    """What a table cannot give to a history's entries, if anything."""
    if kind.entry == "measurement" and table.value is None:
        return (
            f"{table.name} records have no value for a history of quantities",
            "bind it to measurement or observation",
        )
    if kind.entry == "medication" and table.end is None:
        return f"a history of medications is read from drug_exposure, not {table.name}", None
    return None, None


def _value_problem(
    element: ElementBinding, kind: Type, table: Table
) -> tuple[str | None, str | None]:
    mapped = bool(element.values) and element.codes != _union(element.values)
    if kind.numeric and table.value is None:
        return (
            f"{table.name} records have no value; '{element.name}' is {kind.describe()}",
            "read its date or the time since it, or bind a yes/no element",
        )
    if kind.numeric and element.rule.select not in ("latest", "earliest", "highest", "lowest"):
        return f"'{element.rule.select}' does not give {kind.describe()}", None
    if kind.kind == "boolean" and element.rule.select not in ("any", "none") and not mapped:
        return (
            f"a yes/no from {table.name} is whether a record is there: select any or none",
            "or map the codes of a measurement's value to true and false",
        )
    if kind.kind == "set" and mapped:
        return "a set is read from the codes of the records, not of their values", None
    if kind.kind == "enum" and not mapped and element.rule.select not in ("latest", "earliest"):
        return f"'{element.rule.select}' does not give {kind.describe()}", None
    if mapped and table.value_concept is None:
        return f"{table.name} records have no coded value to map", None
    return None, None


# ---- what the query needs to know about the data -----------------------------------

EXACT_PLACES = 10  # the places of the patient table's numbers: SQL's SCALE
VALUE_DIGITS = 14  # integer digits of a value read from OMOP
NARROW_DIGITS = 8  # ... when its plausible range allows: DECIMAL(18, 10), 64 bits in DuckDB
FACTOR_PLACES = 6  # a unit factor must be exact in this many places
FACTOR_DIGITS = 6
DOSE_DIGITS = 8  # integer digits of a quantity dispensed and of a drug's amount per unit


@attrs.frozen
class UnitRead:
    """How the values of one (unit_concept_id, unit_source_value) pair become the element's unit."""

    unit_concept: int | None
    unit_source: str | None
    unit: str | None  # the UCUM code read (from the concept, else the source value)
    factor: Fraction | None  # None: the unit cannot be used; `problem` says why
    problem: str | None = None


def read_unit(
    kind: Type, unit_concept: int | None, unit_source: str | None, ucum: Mapping[int, str]
) -> UnitRead:
    """The factor into the element's unit for values recorded with this unit, or why not."""
    code = ucum.get(unit_concept) if unit_concept else None
    unit = code if code is not None else (unit_source.strip() if unit_source else None)
    if kind.kind == "number":
        return UnitRead(unit_concept, unit_source, unit, Fraction(1))
    if unit is None or unit == "":
        return UnitRead(unit_concept, unit_source, None, None, "no unit")
    if not units.is_valid(unit):
        return UnitRead(unit_concept, unit_source, unit, None, f"'{unit}' is not a UCUM unit")
    if not units.compatible(unit, kind.unit, kind.molar_mass):
        return UnitRead(
            unit_concept, unit_source, unit, None, f"'{unit}' does not convert to '{kind.unit}'"
        )
    factor = units.factor(unit, kind.unit, kind.molar_mass)
    places = exact.places(factor)
    if places is None or places > FACTOR_PLACES or abs(factor) >= 10**FACTOR_DIGITS:
        return UnitRead(
            unit_concept,
            unit_source,
            unit,
            None,
            f"'{unit}' converts to '{kind.unit}' by {factor}, not exact in SQL decimals",
        )
    return UnitRead(unit_concept, unit_source, unit, factor)


@attrs.frozen
class Resolved:
    """A binding with its codes looked up: the concept ids its records (and values) carry."""

    source: OmopSource
    kind: Type
    concepts: tuple[int, ...] = ()
    values: tuple[tuple[str, tuple[int, ...]], ...] = ()  # element value -> concept ids
    units: tuple[UnitRead, ...] = ()
    storage: str = "text"  # how the table holds its values: "float", "decimal" or "text"
    coded: tuple[tuple[int, str], ...] = ()  # concept id -> `system:code`, for history entries
    # How the table holds its reference ranges (range_low, range_high), or None: it has none.
    ranges: str | None = None
    # `read: dose`: per drug concept, its amount per unit dispensed (drug_strength) in the
    # element's unit times days; how the table holds `quantity`.
    strengths: tuple[tuple[int, Fraction], ...] = ()
    quantity: str = "text"

    @property
    def history(self) -> bool:
        return self.kind.kind == "history"

    @property
    def presence(self) -> bool:
        """A yes/no that says whether a record is there (any, none)."""
        return self.source.select in ("any", "none")

    @property
    def column(self) -> str:
        """Its patient table column: a duration is given in days, converted by the query."""
        if self.source.read == "time since":
            return f"{self.source.element} [d]"
        return self.source.element


# ---- the patient table ---------------------------------------------------------------

PERSON_ID = "person_id"
FLAGS = {
    "none": "patients with no data at all",
    "unreadable": "patients whose selected value could not be read (unit, number or concept)",
    "conflict": "patients with disagreeing values on the selected day",
    "future": "records dated after the reference date, not read",
}


def flag_column(element: str, flag: str) -> str:
    """The patient table's column counting one kind of problem of an element's data."""
    return f"omop {element} {flag}"


ROW = "critlang row"
RECORD_ID = "critlang id"
RECORD_ERROR = "critlang error"


def _c(name: str, table: str | None = None) -> exp.Column:
    """An OMOP column, unquoted, so that every engine folds its case as its tables do."""
    return exp.column(name, table=table)


def _num(value: int) -> exp.Expr:
    return exp.Literal.number(value)


def _date(day: datetime.date) -> exp.Expr:
    return b.cast(b.text(day.isoformat()), exp.DataType.build("DATE"))


def _dec(precision: int, scale: int) -> exp.DataType:
    return exp.DataType.build(f"DECIMAL({precision}, {scale})")


def _in(column: exp.Expr, values: Sequence[int]) -> exp.Expr:
    if not values:
        return exp.false()
    return exp.In(this=column, expressions=[_num(v) for v in values])


def _derived(select: exp.Select, alias: str) -> exp.Expr:
    """`(select) AS alias`: every engine needs a derived table named."""
    return exp.Subquery(this=select, alias=exp.TableAlias(this=exp.to_identifier(alias)))


def _inside(value: exp.Expr, bound: Fraction) -> exp.Expr:
    """-bound < value < bound, with the bound rounded towards zero to a whole number."""
    whole = _num(int(bound))
    return b.and_(
        exp.GT(this=value, expression=exp.Neg(this=whole)),
        exp.LT(this=value.copy(), expression=whole.copy()),
    )


def _factor_type(factor: Fraction) -> exp.DataType:
    places = exact.places(factor) or 0
    digits = max(1, len(str(abs(factor.numerator) // factor.denominator)))
    return _dec(digits + places, places)


def _number(text: exp.Expr, storage: str, digits: int, places: int) -> exp.Expr:
    """A stored number as DECIMAL(digits + places, places); NULL when it is not one exactly."""
    decimal = _dec(digits + places, places)
    if storage == "text":
        pattern = rf"^[+-]?[0-9]{{1,{digits}}}(\.[0-9]{{0,{places}}}0*)?$"
        # The text is checked before the cast: every engine then casts it alike.
        shaped = exp.RegexpLike(this=text, expression=b.text(pattern))
        return b.when(shaped, b.cast(text.copy(), decimal))
    found = b.when(_inside(text, Fraction(10**digits)), b.cast(text.copy(), decimal))
    if storage == "float":
        # Kept only when its decimal reads back as the same double: then it is the
        # double's shortest decimal, as the SQL engine reads a floating-point column.
        back = b.cast(found.copy(), exp.DataType.build("DOUBLE"))
        found = b.when(exp.EQ(this=back, expression=text.copy()), found)
    return found


def _count_if(condition: exp.Expr) -> exp.Expr:
    return exp.Sum(this=b.when(condition, _num(1), _num(0)))


class PatientTable:
    """The query from the OMOP tables to critlang's patient table, and the problem counts.

    `reference` is the reference date: windows end on it, ages are counted at
    it, and records dated after it are not read (they are counted).
    """

    def __init__(
        self, checked: Checked, resolved: Sequence[Resolved], reference: datetime.date | None
    ) -> None:
        self.checked = checked
        self.resolved = list(resolved)
        self.reference = reference
        self.count_absent = True  # count, per element with a value, the patients with no data
        self.persons: Sequence[int] | None = None  # only these persons (an explanation's)

    # ---- one element's records ----

    def match(self, item: Resolved) -> exp.Expr:
        """Is a row of the element's table one of its records: its concept or source concept
        (and its person one of `persons`, when given)."""
        table = TABLES[item.source.table]
        match = b.or_(
            _in(_c(table.concept), item.concepts), _in(_c(table.source_concept), item.concepts)
        )
        if self.persons is None:
            return match
        return b.and_(b.paren(match), self.of_persons())

    def of_persons(self) -> exp.Expr:
        assert self.persons is not None
        return _in(_c(PERSON_ID), self.persons)

    def matched(self, item: Resolved, window_only: bool = False, cite: bool = False) -> exp.Select:
        """The element's records: person `pid`, date `d` (`e`, a drug's end), and for a value
        `v` (NULL when it cannot be read, with `bad`); `cite`: with its row id (`rid`), for
        an explanation to cite."""
        table = TABLES[item.source.table]
        match = self.match(item)
        columns: list[exp.Expr] = [
            b.alias(_c(PERSON_ID), "pid"),
            b.alias(b.cast(_c(table.date), exp.DataType.build("DATE")), "d"),
        ]
        if cite:
            columns.append(b.alias(b.cast(_c(f"{table.name}_id"), "BIGINT"), "rid"))
        if table.end is not None:
            columns.append(b.alias(b.cast(_c(table.end), exp.DataType.build("DATE")), "e"))
        if window_only:
            match = b.and_(b.paren(match), self.in_window(item, raw=True))
        source, kind = item.source, item.kind
        value: exp.Expr | None = None
        bad: exp.Expr = exp.false()
        if source.read == "time since":
            assert self.reference is not None
            day = b.cast(_c(table.date), exp.DataType.build("DATE"))
            value = exp.DateDiff(this=_date(self.reference), expression=day, unit=exp.var("DAY"))
        elif source.read == "date":
            value = b.cast(_c(table.date), exp.DataType.build("DATE"))
        elif source.read == "dose":
            return self.doses(item, columns, match)
        elif kind.numeric:
            return self.numbers(item, table, columns, match)
        elif source.mapped:
            assert table.value_concept is not None
            value, bad = self.coded(item, _c(table.value_concept))
        elif item.values:
            # The value a record means, by its own concept (a set, or one of).
            whens = [
                (b.or_(_in(_c(table.concept), ids), _in(_c(table.source_concept), ids)), b.text(v))
                for v, ids in item.values
            ]
            value = b.case(whens)
        elif kind.kind == "code":
            # The record's code, `system:code`; a concept of a vocabulary critlang does not
            # name is unreadable (counted).
            value = self.code_of(item, table)
            bad = b.is_null(value.copy())
        if value is not None:
            columns += [b.alias(value, "v"), b.alias(bad, "bad")]
        return b.select(columns, exp.to_table(table.name)).where(match, copy=False)

    def numbers(
        self,
        item: Resolved,
        table: Table,
        columns: list[exp.Expr],
        match: exp.Expr,
        every: bool = False,
        ranges: bool = False,
    ) -> exp.Select:
        """The records with their values in the element's unit as exact DECIMALs (`v`), NULL
        and `bad` when a value in the window cannot be read; with `ranges`, the reference
        range (`lo`, `hi`) through the same unit, NULL when it cannot be read.

        In steps, each computing one thing once: the value's text and unit (only in
        the window: no other value is ever selected), the number the text says, the
        number in the element's unit, and whether that is exact in the table's places.
        """
        assert table.value is not None
        kept = [column.alias_or_name for column in columns]
        # (the table's column, how it stores numbers, the name of the number read)
        read = [(table.value, item.storage, "v")]
        if ranges and item.ranges is not None:
            read += [("range_low", item.ranges, "lo"), ("range_high", item.ranges, "hi")]
        names = [name for _, _, name in read]

        def carried(*more: str) -> list[exp.Expr]:
            return [b.col(name) for name in (*kept, *more)]

        def window() -> exp.Expr:
            # `every`: a history's entries, every record up to the reference date.
            return exp.true() if every else self.in_window(item, raw=True)

        def given(column: str, storage: str) -> exp.Expr:
            value: exp.Expr = _c(column)
            if storage == "text":
                value = exp.Trim(this=b.cast(value, exp.DataType.build("VARCHAR")))
            return b.when(window(), value)

        usable = [unit for unit in item.units if unit.factor is not None]
        which = b.case([(self.unit_is(unit, table), _num(i)) for i, unit in enumerate(usable)])
        first = b.select(
            [
                *columns,
                b.alias(window(), "w"),
                *(b.alias(given(column, storage), f"t{name}") for column, storage, name in read),
                b.alias(which if usable else b.cast(exp.null(), "INT"), "u"),
            ],
            exp.to_table(table.name),
        ).where(match, copy=False)
        digits = self.value_digits(item, usable)
        decimal = _dec(digits + EXACT_PLACES, EXACT_PLACES)

        def number(text: exp.Expr, storage: str) -> exp.Expr:
            return _number(text, storage, digits, EXACT_PLACES)

        second = b.select(
            [
                *carried("w", "u"),
                *(b.alias(number(b.col(f"t{n}"), storage), f"r{n}") for _, storage, n in read),
            ],
            _derived(first, "s1"),
        )

        def converted(name: str) -> exp.Expr:
            whens: list[tuple[exp.Expr, exp.Expr]] = []
            for index, unit in enumerate(usable):
                assert unit.factor is not None
                value: exp.Expr = b.col(f"r{name}")
                if unit.factor != 1:
                    # r * f, kept when it fits the value's type exactly; each branch of one
                    # type, so that values in the element's own unit stay narrow.
                    factor = b.cast(b.text(_decimal_text(unit.factor)), _factor_type(unit.factor))
                    product = exp.Mul(this=b.col(f"r{name}"), expression=factor)
                    narrow = b.cast(product.copy(), decimal.copy())
                    exact_enough = exp.EQ(this=narrow, expression=product)
                    fits = _inside(b.col(f"r{name}"), Fraction(10**digits) / abs(unit.factor))
                    value = b.when(fits, b.when(exact_enough, narrow.copy()))
                whens.append((exp.EQ(this=b.col("u"), expression=_num(index)), value))
            return b.case(whens) if whens else b.cast(exp.null(), decimal.copy())

        third = b.select(
            [*carried("w"), *(b.alias(converted(name), name) for name in names)],
            _derived(second, "s2"),
        )
        bad = b.and_(b.col("w"), b.is_null(b.col("v")))
        return b.select([*carried(*names), b.alias(bad, "bad")], _derived(third, "s3"))

    def doses(
        self, item: Resolved, columns: list[exp.Expr], match: exp.Expr, every: bool = False
    ) -> exp.Select:
        """Drug exposures with their daily dose in the element's unit (`v`): the drug's
        amount per unit (drug_strength) x `quantity` / `days_supply`, kept only when exact
        in the table's places; `bad` when a quantity is recorded but no dose can be read
        from it (no single strength of a known unit, no days' supply, not exact)."""
        kept = [column.alias_or_name for column in columns]

        def carried(*more: str) -> list[exp.Expr]:
            return [b.col(name) for name in (*kept, *more)]

        inside = exp.true() if every else self.in_window(item, raw=True)
        amount = (
            b.case(
                [
                    (
                        exp.EQ(this=_c("drug_concept_id"), expression=_num(drug)),
                        b.cast(
                            b.text(_decimal_text(per)),
                            _dec(DOSE_DIGITS + FACTOR_PLACES, FACTOR_PLACES),
                        ),
                    )
                    for drug, per in item.strengths
                ]
            )
            if item.strengths
            else b.cast(exp.null(), _dec(DOSE_DIGITS + FACTOR_PLACES, FACTOR_PLACES))
        )
        first = b.select(
            [
                *columns,
                b.alias(inside, "w"),
                b.alias(b.when(inside.copy(), _c("quantity")), "tq"),
                b.alias(_c("days_supply"), "ds"),
                b.alias(amount, "a"),
            ],
            exp.to_table("drug_exposure"),
        ).where(match, copy=False)
        quantity = _number(b.col("tq"), item.quantity, DOSE_DIGITS, FACTOR_PLACES)
        usable = b.and_(b.not_(b.is_null(b.col("a"))), exp.GT(this=b.col("ds"), expression=_num(0)))
        product = exp.Mul(this=quantity, expression=b.col("a"))
        second = b.select(
            [
                *carried("w", "tq", "ds"),
                b.alias(b.when(usable, product), "p"),
            ],
            _derived(first, "d1"),
        )
        # A dose has the integer digits of any value read (the cast cannot overflow).
        decimal = _dec(VALUE_DIGITS + EXACT_PLACES, EXACT_PLACES)
        divided = exp.Div(this=b.col("p"), expression=b.col("ds"))
        quotient = b.when(_inside(b.col("p"), Fraction(10**VALUE_DIGITS)), b.cast(divided, decimal))
        third = b.select(
            [*carried("w", "tq", "ds", "p"), b.alias(quotient, "q")], _derived(second, "d2")
        )
        back = exp.Mul(this=b.col("q"), expression=b.cast(b.col("ds"), _dec(18, 0)))
        dose = b.when(exp.EQ(this=back, expression=b.col("p")), b.col("q"))
        fourth = b.select([*carried("w", "tq"), b.alias(dose, "v")], _derived(third, "d3"))
        bad = b.and_(b.col("w"), b.not_(b.is_null(b.col("tq"))), b.is_null(b.col("v")))
        return b.select([*carried("v"), b.alias(bad, "bad")], _derived(fourth, "d4"))

    def value_digits(self, item: Resolved, usable: Sequence[UnitRead]) -> int:
        """Integer digits of the values read: NARROW_DIGITS when the element's plausible range
        says that every value that can be in range fits them in every unit found (DECIMALs
        an engine computes in 64 bits), VALUE_DIGITS otherwise."""
        element = self.checked.elements.get(item.source.element)
        limits = element.plausible_range if element is not None else None
        if limits is None or not usable:
            return VALUE_DIGITS
        largest = max(abs(Fraction(limits[0])), abs(Fraction(limits[1])))
        for unit in usable:
            assert unit.factor is not None
            largest = max(largest, largest / abs(unit.factor))
        return NARROW_DIGITS if largest < 10**NARROW_DIGITS else VALUE_DIGITS

    def unit_is(self, unit: UnitRead, table: Table) -> exp.Expr:
        assert table.unit_concept is not None and table.unit_source is not None
        concept = _c(table.unit_concept)
        if unit.unit_concept is None:
            same_concept: exp.Expr = b.is_null(concept)
        else:
            same_concept = exp.EQ(this=concept, expression=_num(unit.unit_concept))
        source = _c(table.unit_source)
        if unit.unit_source is None:
            same_source: exp.Expr = b.is_null(source)
        else:
            same_source = exp.EQ(this=source, expression=b.text(unit.unit_source))
        return b.and_(same_concept, same_source)

    def coded(self, item: Resolved, column: exp.Expr) -> tuple[exp.Expr, exp.Expr]:
        """A coded value as the element's value; NULL (and bad) when the map lacks its concept."""
        whens = [(_in(column.copy(), ids), b.text(value)) for value, ids in item.values]
        value = b.case(whens)
        return value, b.is_null(value.copy())

    # ---- one element per patient ----

    def in_window(self, item: Resolved, raw: bool = False) -> exp.Expr:
        """Is a record (d, e) within the element's window: not after the reference date, and
        (a drug exposure: ending) not before the window's start. `raw`: read from the
        table's own columns rather than the records' `d` and `e`."""
        if self.reference is None:
            return exp.true()
        table = TABLES[item.source.table]

        # The table's own date columns are compared as they are, so that an engine can
        # skip what the window excludes without reading it.
        def d() -> exp.Expr:
            return _c(table.date) if raw else b.col("d")

        def e() -> exp.Expr:
            assert table.end is not None
            return _c(table.end) if raw else b.col("e")

        upto = exp.LTE(this=d(), expression=_date(self.reference))
        window = item.source.window
        if window is None:
            return upto
        start = _date(window.start(self.reference))
        if table.end is not None:
            ends = exp.Coalesce(this=e(), expressions=[d()])
            return b.and_(upto, exp.GTE(this=ends, expression=start))
        return b.and_(upto, exp.GTE(this=d(), expression=start))

    def future(self) -> exp.Expr:
        if self.reference is None:
            return exp.false()
        return exp.GT(this=b.col("d"), expression=_date(self.reference))

    def cte(self, item: Resolved, suffix: str = "") -> str:
        """The name of one of the element's CTEs: by position, as every engine accepts it."""
        return f"omop_{self.resolved.index(item)}{suffix}"

    def selected(self, item: Resolved) -> list[tuple[str, exp.Select]]:
        """CTEs giving, per person with any record of the element: `n` (records at all),
        `hits` (records in the window) and, for a value, `v`, `conflict` and `bad` (the
        selected value could not be read)."""
        records, per = self.cte(item, "_records"), self.cte(item)
        select = item.source.select

        def n() -> exp.Expr:
            return b.alias(exp.Count(this=exp.Star()), "n")

        def hits() -> exp.Expr:
            return b.alias(_count_if(self.in_window(item)), "hits")

        def future() -> exp.Expr:
            return b.alias(_count_if(self.future()), "future")

        pid = b.col("pid")
        if item.presence or item.kind.kind == "set":
            columns = [pid, n(), hits(), future()]
            if item.kind.kind == "set":
                for index, (word, _) in enumerate(item.values):
                    has = b.and_(
                        self.in_window(item), exp.EQ(this=b.col("v"), expression=b.text(word))
                    )
                    columns.append(b.alias(_count_if(has), f"k{index}"))
            grouped = b.select(columns, records).group_by(b.col("pid"), copy=False)
            return [(records, self.matched(item)), (per, grouped)]
        # A value: read only from the records in the window (`record_counts` counts the rest).
        values = self.cte(item, "_values")
        ctes = [(values, self.matched(item, window_only=True))]

        def x(name: str) -> exp.Expr:
            return exp.column(name, "x", quoted=True)

        def h(name: str) -> exp.Expr:
            return exp.column(name, "h", quoted=True)

        if select in ("highest", "lowest"):
            extreme = exp.Max if select == "highest" else exp.Min
            unreadable = _count_if(b.col("bad"))
            # Any unreadable value in the window makes the highest (lowest) unknown.
            kept = b.when(exp.EQ(this=unreadable, expression=_num(0)), extreme(this=b.col("v")))
            grouped = b.select(
                [
                    pid,
                    b.alias(kept, "v"),
                    b.alias(_count_if(b.col("bad")), "bad"),
                    b.alias(_num(0), "conflict"),
                ],
                values,
            ).group_by(b.col("pid"), copy=False)
            return [*ctes, (per, grouped)]
        # latest / earliest: the records of the last (first) day in the window, which must agree.
        chosen = self.cte(item, "_chosen")
        last = exp.Max if select == "latest" else exp.Min
        picked = b.select([pid, b.alias(last(this=b.col("d")), "chosen")], values)
        picked = picked.group_by(b.col("pid"), copy=False)

        def low() -> exp.Expr:
            return exp.Min(this=x("v"))

        def high() -> exp.Expr:
            return exp.Max(this=x("v"))

        def conflict() -> exp.Expr:
            return exp.NEQ(this=low(), expression=high())

        def bad() -> exp.Expr:
            return exp.GT(this=_count_if(x("bad")), expression=_num(0))

        agreed = b.when(b.and_(b.not_(b.paren(bad())), b.not_(b.paren(conflict()))), low())
        joined = (
            exp.select(
                b.alias(h("pid"), "pid"),
                b.alias(agreed, "v"),
                b.alias(b.when(conflict(), _num(1), _num(0)), "conflict"),
                b.alias(b.when(bad(), _num(1), _num(0)), "bad"),
                copy=False,
            )
            .from_(exp.alias_(exp.to_table(chosen), "h", quoted=True), copy=False)
            .join(
                exp.alias_(exp.to_table(values), "x", quoted=True),
                on=b.and_(
                    exp.EQ(this=x("pid"), expression=h("pid")),
                    exp.EQ(this=x("d"), expression=h("chosen")),
                ),
                copy=False,
            )
            .group_by(h("pid"), copy=False)
        )
        return [*ctes, (chosen, picked), (per, joined)]

    @staticmethod
    def counted_per_person(item: Resolved) -> bool:
        """Are the element's records counted per person in the patient table (`n`, `future`)?
        A value's are counted by `record_counts` instead, in one pass without grouping."""
        return item.presence or item.kind.kind == "set"

    def record_counts(self, item: Resolved, patients: str) -> tuple[exp.Select, exp.Select]:
        """Two one-row queries for an element with a value: how many of the persons of the
        patient table `patients` with no record in the window have a record at all
        (`persons`), and how many records are dated after the reference date (`future`).

        Those with a record in the window are known from the patient table (its `seen`
        flag): only the others are looked for among all the records, and the records
        after the reference date are counted by a filter an engine can answer from its
        zone maps; both cost far less than counting the distinct persons of every record.
        """
        table = TABLES[item.source.table]
        row = exp.column(ROW, quoted=True)
        unseen = (
            exp.select(row, copy=False)
            .from_(exp.to_table(patients, quoted=True), copy=False)
            .where(
                exp.EQ(
                    this=exp.column(flag_column(item.source.element, "seen"), quoted=True),
                    expression=_num(0),
                ),
                copy=False,
            )
        )
        found = b.and_(
            b.paren(self.match(item)), exp.In(this=_c(PERSON_ID), query=exp.Subquery(this=unseen))
        )
        persons = b.alias(exp.Count(this=exp.Distinct(expressions=[_c(PERSON_ID)])), "persons")
        records = b.select([persons], exp.to_table(table.name)).where(found, copy=False)
        late: exp.Expr = exp.false()
        if self.reference is not None:
            late = exp.GT(this=_c(table.date), expression=_date(self.reference))
        future = b.select(
            [b.alias(exp.Count(this=exp.Star()), "future")], exp.to_table(table.name)
        ).where(b.and_(b.paren(self.match(item)), late), copy=False)
        return records, future

    def element_value(self, item: Resolved) -> exp.Expr:
        """The element's value from its per-person CTE."""
        name = self.cte(item)
        known_absent = item.source.absent in ("false", "empty")

        def hits() -> exp.Expr:
            return exp.Coalesce(this=exp.column("hits", name, quoted=True), expressions=[_num(0)])

        def some() -> exp.Expr:
            return exp.GT(this=hits(), expression=_num(0))

        if item.presence:
            found = exp.true() if item.source.select == "any" else exp.false()
            if known_absent:
                return b.when(some(), found, exp.not_(found))
            return b.when(some(), found)
        if item.kind.kind == "set":
            chosen = [
                b.when(
                    exp.GT(this=exp.column(f"k{index}", name, quoted=True), expression=_num(0)),
                    b.text(value),
                )
                for index, (value, _) in enumerate(item.values)
            ]
            listed = exp.ArrayFilter(
                this=exp.Array(expressions=chosen),
                expression=b.lambda_(b.not_(b.is_null(b.x()))),
            )
            return listed if known_absent else b.when(some(), listed)
        value = exp.column("v", name, quoted=True)
        if item.kind.kind == "boolean":
            return b.case(
                [
                    (exp.EQ(this=value, expression=b.text("true")), exp.true()),
                    (exp.EQ(this=value.copy(), expression=b.text("false")), exp.false()),
                ]
            )
        return value

    def person_value(self, item: Resolved) -> exp.Expr:
        year, month, day = (_c(f"{p}_of_birth", "person") for p in ("year", "month", "day"))
        if item.source.field == "gender":
            column = _c("gender_concept_id", "person")
            return b.case([(_in(column.copy(), ids), b.text(v)) for v, ids in item.values])
        if item.source.field == "reference_date":
            assert self.reference is not None
            return _date(self.reference)
        if item.kind.kind == "date":
            # Only a full date of birth; a partial one is unknown (and counted).
            return b.when(
                b.and_(*(b.not_(b.is_null(p.copy())) for p in (year, month, day))),
                exp.DateFromParts(year=year, month=month, day=day),
            )
        # age: complete years at the reference date; unknown when the birthday is unsure.
        assert self.reference is not None
        ref = self.reference
        years = exp.Sub(this=_num(ref.year), expression=year.copy())
        before = b.or_(
            exp.GT(this=month.copy(), expression=_num(ref.month)),
            b.and_(
                exp.EQ(this=month.copy(), expression=_num(ref.month)),
                exp.GT(this=day.copy(), expression=_num(ref.day)),
            ),
        )
        age = b.case(
            [
                (b.is_null(month.copy()), exp.null()),
                (
                    b.and_(
                        exp.EQ(this=month.copy(), expression=_num(ref.month)),
                        b.is_null(day.copy()),
                    ),
                    exp.null(),
                ),
                (b.paren(before), exp.Sub(this=years.copy(), expression=_num(1))),
            ],
            years,
        )
        return b.cast(age, _dec(18, 0))

    def query(self) -> exp.Select:
        """The patient table: row, id, error (always NULL here), a column per bound element,
        and per element the flags that `problems` counts (see `flag_column`)."""
        ctes: list[tuple[str, exp.Select]] = []
        person_id = _c(PERSON_ID, "person")
        columns: list[exp.Expr] = [
            b.alias(person_id, ROW),
            b.alias(b.cast(person_id.copy(), exp.DataType.build("VARCHAR")), RECORD_ID),
            b.alias(b.cast(exp.null(), exp.DataType.build("VARCHAR")), RECORD_ERROR),
        ]
        select = exp.select(*columns, copy=False).from_("person", copy=False)
        reference = self.checked_reference()
        if reference is not None and self.reference is not None:
            select = select.select(b.alias(_date(self.reference), reference), copy=False)
        for item in self.resolved:
            source = item.source
            if item.history:
                continue  # in the events table (`events`)
            if source.table == "person":
                value = self.person_value(item)
                flags = self.person_flags(item)
            else:
                ctes += self.selected(item)
                name = self.cte(item)
                on = exp.EQ(this=exp.column("pid", name, quoted=True), expression=person_id.copy())
                select = select.join(exp.to_table(name), on=on, join_type="left", copy=False)
                value = self.element_value(item)
                flags = self.record_flags(item)
            select = select.select(b.alias(self.typed(value, item), item.column), copy=False)
            for flag, sql in flags.items():
                select = select.select(b.alias(sql, flag_column(source.element, flag)), copy=False)
        for name, cte in ctes:
            select = select.with_(name, as_=cte, copy=False)
        if self.persons is not None:
            select = select.where(_in(person_id.copy(), self.persons), copy=False)
        return select

    def record_flags(self, item: Resolved) -> dict[str, exp.Expr]:
        name = self.cte(item)

        def zero(column: str) -> exp.Expr:
            return exp.Coalesce(this=exp.column(column, name, quoted=True), expressions=[_num(0)])

        if self.counted_per_person(item):
            return {
                "none": b.when(b.is_null(exp.column("n", name, quoted=True)), _num(1), _num(0)),
                "future": zero("future"),
            }
        seen = b.is_null(exp.column("pid", name, quoted=True))
        return {
            "unreadable": b.when(exp.GT(this=zero("bad"), expression=_num(0)), _num(1), _num(0)),
            "conflict": zero("conflict"),
            "seen": b.when(seen, _num(0), _num(1)),  # a record in the window (record_counts)
        }

    def person_flags(self, item: Resolved) -> dict[str, exp.Expr]:
        if item.source.field == "reference_date":
            return {}
        if item.source.field == "gender":
            given = _c("gender_concept_id", "person")
            value = self.person_value(item)
            unread = b.and_(b.not_(b.is_null(given.copy())), b.is_null(value))
            return {
                "none": b.when(b.is_null(given), _num(1), _num(0)),
                "unreadable": b.when(unread, _num(1), _num(0)),
            }
        year = _c("year_of_birth", "person")
        value = self.person_value(item)
        unread = b.and_(b.not_(b.is_null(year.copy())), b.is_null(value))
        return {
            "none": b.when(b.is_null(year), _num(1), _num(0)),
            "unreadable": b.when(unread, _num(1), _num(0)),
        }

    def problems(self, table: str) -> exp.Select:
        """One row: per element and flag, how many patients of `table` have it (`future`: records)."""
        columns: list[exp.Expr] = []
        for item in self.resolved:
            if item.history:
                continue
            flags = (
                self.person_flags(item)
                if item.source.table == "person"
                else self.record_flags(item)
            )
            for flag in flags:
                column = flag_column(item.source.element, flag)
                columns.append(b.alias(exp.Sum(this=b.col(column)), column))
        if not columns:
            columns = [b.alias(exp.Count(this=exp.Star()), "total")]
        return b.select(columns, exp.to_table(table, quoted=True))

    def events(self) -> exp.Expr | None:
        """The histories' entries as critlang's events table (docs/sql.md), or None.

        One row per record: `id` (the person), `element`, and by the history's
        entries `date` and `value` (in the declared unit; NULL when it cannot be
        read, which makes the patient's record an error that names it), or `code`
        (`system:code`), or `start`, `end` and `code`; `source` names the table and
        row. Records dated after the reference date are not read (they are counted).
        """
        parts: list[exp.Select] = []
        for item in self.resolved:
            if item.history:
                parts += [self.entries(item), self.present(item)]
        if not parts:
            return None
        union: exp.Expr = parts[0]
        for part in parts[1:]:
            union = exp.Union(this=union, expression=part, distinct=False)
        return union

    def code_of(self, item: Resolved, table: Table) -> exp.Expr:
        """A record's code as `system:code`: its source concept's if that is one named, else
        its concept's."""
        whens = [
            (
                b.or_(
                    exp.EQ(this=_c(table.source_concept), expression=_num(concept)),
                    exp.EQ(this=_c(table.concept), expression=_num(concept)),
                ),
                b.text(text),
            )
            for concept, text in item.coded
        ]
        return b.case(whens) if whens else b.cast(exp.null(), exp.DataType.build("VARCHAR"))

    def present(self, item: Resolved) -> exp.Select:
        """A row without fields for every person: the history is there, with the entries
        the OMOP tables hold (none, for most), so absence is read as the protocol says
        (`complete` or not), not as a history missing from the record."""
        varchar, day = exp.DataType.build("VARCHAR"), exp.DataType.build("DATE")
        columns = [
            b.alias(b.cast(_c(PERSON_ID), varchar), "id"),
            b.alias(b.text(item.source.element), "element"),
            b.alias(b.cast(exp.null(), day), "date"),
            b.alias(b.cast(exp.null(), _dec(NARROW_DIGITS + EXACT_PLACES, EXACT_PLACES)), "value"),
            b.alias(b.cast(exp.null(), varchar), "code"),
            b.alias(b.cast(exp.null(), day), "start"),
            b.alias(b.cast(exp.null(), day), "end"),
            b.alias(b.cast(exp.null(), varchar), "source"),
            *(
                b.alias(b.cast(exp.null(), _dec(NARROW_DIGITS + EXACT_PLACES, EXACT_PLACES)), n)
                for n in ("low", "high", "dose")
            ),
        ]
        select = b.select(columns, exp.to_table("person"))
        return select if self.persons is None else select.where(self.of_persons(), copy=False)

    def entries(self, item: Resolved) -> exp.Select:
        table = TABLES[item.source.table]
        source = item.source
        entry = item.kind.entry
        varchar = exp.DataType.build("VARCHAR")
        day = exp.DataType.build("DATE")
        ident = _c(f"{table.name}_id")  # measurement_id, condition_occurrence_id, ...
        named = exp.Concat(
            expressions=[b.text(f"{table.name}/"), b.cast(b.cast(ident, "BIGINT"), varchar)]
        )

        def code() -> exp.Expr:
            return self.code_of(item, table)

        date = b.cast(_c(table.date), day)
        columns: dict[str, exp.Expr] = {
            "id": b.cast(_c(PERSON_ID), varchar),
            "element": b.text(source.element),
            "date": b.cast(exp.null(), day),
            "value": b.cast(exp.null(), _dec(NARROW_DIGITS + EXACT_PLACES, EXACT_PLACES)),
            "code": b.cast(exp.null(), varchar),
            "start": b.cast(exp.null(), day),
            "end": b.cast(exp.null(), day),
            "source": named,
        }
        if entry == "measurement":
            columns["date"] = date
        elif entry == "code":
            columns["date"] = date
            columns["code"] = code()
            if table.period_end is not None:
                columns["end"] = b.cast(_c(table.period_end), day)
        else:
            assert table.end is not None
            columns["start"] = date
            columns["end"] = b.cast(_c(table.end), day)
            columns["code"] = code()
        match = self.match(item)
        if self.reference is not None:
            match = b.and_(
                b.paren(match), exp.LTE(this=date.copy(), expression=_date(self.reference))
            )
        for name in ("low", "high", "dose"):
            columns[name] = b.cast(exp.null(), _dec(NARROW_DIGITS + EXACT_PLACES, EXACT_PLACES))
        # A measurement's value and range go through the steps of `numbers`, a dose through
        # those of `doses`, with the row's other fields carried along.
        computed: dict[str, str] = {}
        if entry == "measurement":
            computed = {"value": "v"}
            if item.ranges is not None:
                computed.update(low="lo", high="hi")
        elif source.read == "dose":
            computed = {"dose": "v"}
        if not computed:
            listed = [b.alias(value, name) for name, value in columns.items()]
            return b.select(listed, exp.to_table(table.name)).where(match, copy=False)
        carried = [b.alias(value, name) for name, value in columns.items() if name not in computed]
        if entry == "measurement":
            read = self.numbers(item, table, carried, match, every=True, ranges=True)
        else:
            read = self.doses(item, carried, match, every=True)
        listed = [
            b.alias(b.col(computed[name]), name) if name in computed else b.col(name)
            for name in columns
        ]
        return b.select(listed, _derived(read, "m"))

    def dose_problems(self, item: Resolved) -> exp.Select:
        """One row: how many persons have a drug exposure, up to the reference date, whose
        recorded quantity gives no dose (`persons`)."""
        columns = [b.alias(_c(PERSON_ID), "pid")]
        match = self.match(item)
        if self.reference is not None:
            day = b.cast(_c("drug_exposure_start_date"), exp.DataType.build("DATE"))
            match = b.and_(b.paren(match), exp.LTE(this=day, expression=_date(self.reference)))
        doses = self.doses(item, columns, match, every=True)
        count = exp.Count(this=exp.Distinct(expressions=[b.col("pid")]))
        return b.select([b.alias(count, "persons")], _derived(doses, "p")).where(
            b.col("bad"), copy=False
        )

    def typed(self, value: exp.Expr, item: Resolved) -> exp.Expr:
        kind = item.kind
        if kind.kind == "set":
            return b.cast(value, exp.DataType.build("VARCHAR[]", dialect="duckdb"))
        if kind.numeric:
            return b.cast(value, _dec(38, EXACT_PLACES))
        if kind.kind == "date":
            return b.cast(value, exp.DataType.build("DATE"))
        if kind.kind in ("enum", "code"):
            return b.cast(value, exp.DataType.build("VARCHAR"))
        return value

    def checked_reference(self) -> str | None:
        from critlang.lower import lower

        name = lower(self.checked).program.reference
        if name is None or any(item.source.element == name for item in self.resolved):
            return None
        return name


def _decimal_text(value: Fraction) -> str:
    places = exact.places(value)
    assert places is not None
    scaled = value * 10**places
    assert scaled.denominator == 1
    digits = str(abs(scaled.numerator)).rjust(places + 1, "0")
    text = digits if places == 0 else f"{digits[:-places]}.{digits[-places:]}"
    return ("-" if value < 0 else "") + text
