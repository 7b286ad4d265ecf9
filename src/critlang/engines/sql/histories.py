"""Histories in SQL: the `Aggregate` and `Entry` nodes over the events table.

The events table holds one row per entry (docs/sql.md); `layout.EventsInput`
reads and validates it into `screen_events`. Each patient's entries are
joined to the patient's own values (a window is relative to the patient's
screening date), and every aggregate of the protocol is computed in one
pass grouped per patient, with FILTER:

- `rows` of a history: how many rows it has; none means it is not on record
  (its aggregates are unknown), a row with only `id` and `element` puts it
  on record with no entries;
- per aggregate, the entries where `where` is true (`selected`) and where it
  is unknown (`open`), and the count, sum, maximum or minimum of `of` over
  the selected ones, or for `latest`/`earliest` their latest/earliest date;
- `latest`/`earliest` take a second pass over the entries on that date: the
  smallest and largest `of` there, which must agree. When `of` is a quotient
  of entry values (`its value / its upper limit`) equal ratios may be written
  differently (1.2/0.6, 2.4/1.2), so a third pass cross-multiplies each entry
  with a candidate ratio (see `ties`).

The Kleene rules are `ir.Aggregate`'s, word for word. The aggregates'
values are columns of `screen_histories`, read like any other column from
then on; an entry error or an entry dated after the reference date becomes
the patient's record error.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import attrs
from sqlglot import exp

from critlang import ir
from critlang.check import Checked
from critlang.engines.sql import build as b
from critlang.engines.sql import exact
from critlang.engines.sql.layout import (
    ENTRY_DATE,
    EVENT_ELEMENT,
    EVENT_ERROR,
    EVENT_ID,
    EVENT_MARKER,
    EVENT_NUMBERS,
    PATIENT_KEY,
    EventsInput,
    Layout,
    SqlError,
    entry_field,
    entry_number,
)

HISTORY_ID = "history id"
HISTORY_ID_AT = "history id at"
HISTORY_ID_TIES = "history id ties"
HISTORY_ERROR = "history error"
MAX_ENTRIES_DIGITS = 6  # a sum's bounds allow a million entries per history
COUNT_DIGITS = 12

Value = exact.Ratio | exp.Expr
Evaluate = Callable[[ir.Node], Value]


def rows_column(history: str) -> str:
    return f"history {history} rows"


def aggregate_column(node: ir.Aggregate, what: str) -> str:
    return f"aggregate {node.id} {what}"


def _count(condition: exp.Expr) -> exp.Expr:
    return exp.Filter(this=exp.Count(this=exp.Star()), expression=exp.Where(this=condition))


def _filtered(function: type[exp.Func], value: exp.Expr, condition: exp.Expr) -> exp.Expr:
    return exp.Filter(this=function(this=value), expression=exp.Where(this=condition))


def _positive(column: str) -> exp.Expr:
    return exp.GT(this=b.col(column), expression=exp.Literal.number(0))


def _zero(column: str) -> exp.Expr:
    return exp.EQ(this=b.col(column), expression=exp.Literal.number(0))


class Histories:
    """The history stages of one protocol's query, and the value of each `Aggregate`."""

    def __init__(
        self, checked: Checked, program: ir.Program, layout: Layout, evaluate: Evaluate
    ) -> None:
        self.checked = checked
        self.program = program
        self.layout = layout
        self.evaluate = evaluate
        self.aggregates = [n for n in program.nodes() if isinstance(n, ir.Aggregate)]
        self.histories = sorted({n.history.name for n in self.aggregates})
        self.current: ir.Aggregate | None = None  # the aggregate whose entries are read
        for node in self.aggregates:
            inner = [x for x in (node.where, node.of) if x is not None]
            for root in inner:
                if any(
                    isinstance(n, ir.Aggregate) for n in ir.walk(root, dict(program.definitions))
                ):
                    raise SqlError(
                        f"{self.span(node)}: a history selector inside the condition of another "
                        "is not supported in SQL"
                    )

    @property
    def active(self) -> bool:
        return self.layout.events is not None and bool(self.aggregates)

    def span(self, node: ir.Aggregate) -> object:
        element = self.checked.elements.get(node.history.name)
        return element.span if element is not None else node.history.name

    # ---- entries, inside an aggregate ----

    def entry(self, node: ir.Entry) -> Value:
        if node.field == "ongoing":  # a medication or code entry without an end
            return b.is_null(b.col(entry_field("end")))
        if node.field in EVENT_NUMBERS:
            return exact.Ratio(entry_number(node.field, self.layout.events))
        return b.col(entry_field(node.field))

    def unknown(self, node: ir.Aggregate) -> Value:
        """An aggregate with no events table: the history is not on record."""
        if node.type.numeric:
            return exact.NULL
        kind = {"boolean": "BOOLEAN", "date": "DATE"}.get(node.type.kind, "VARCHAR")
        return b.cast(exp.null(), exp.DataType.build(kind))

    # ---- the stages ----

    def stages(self, patients: str) -> list[tuple[str, exp.Select]]:
        """`screen_events`, the passes over them, and `screen_histories` (patients + values)."""
        events = self.layout.events
        assert events is not None
        if (self.layout.events_key or self.layout.id_column) is None:
            raise SqlError("histories need an 'id' column in the patient table to join events")
        stages = EventsInput(self.checked, events).stages()
        first, second = self.first_pass(patients), self.second_pass(patients)
        stages.append(("screen_history_entries", first))
        if second is not None:
            stages.append(("screen_history_dates", second))
        ties = self.ties(patients)
        if ties is not None:
            stages.append(("screen_history_ties", ties))
        return stages

    def joined(self, patients: str, events: str = "screen_events") -> exp.Select:
        on = exp.EQ(this=b.col(EVENT_ID), expression=b.col(PATIENT_KEY))
        return (
            exp.select(copy=False)
            .from_(events, copy=False)
            .join(patients, on=on, join_type="inner", copy=False)
        )

    def of_history(self, node: ir.Aggregate) -> exp.Expr:
        return b.and_(
            exp.EQ(this=b.col(EVENT_ELEMENT), expression=b.text(node.history.name)),
            b.not_(b.col(EVENT_MARKER)),
        )

    def where(self, node: ir.Aggregate) -> exp.Expr | None:
        if node.where is None:
            return None
        self.current = node
        try:
            value = self.evaluate(node.where)
        finally:
            self.current = None
        assert not isinstance(value, exact.Ratio)
        return value

    def selected(self, node: ir.Aggregate) -> exp.Expr:
        where = self.where(node)
        if where is None:
            return self.of_history(node)
        # FILTER keeps the rows where its condition is true: an unknown `where` is left out.
        return b.and_(self.of_history(node), b.paren(where))

    def open_(self, node: ir.Aggregate) -> exp.Expr | None:
        if not self.may_be_unknown(node):
            return None
        where = self.where(node)
        assert where is not None
        return b.and_(self.of_history(node), b.is_null(where))

    def may_be_unknown(self, node: ir.Aggregate) -> bool:
        """Can `where` be unknown for an entry? Not when it reads only the fields every
        valid entry has (date, value, code, start), constants and exact comparisons."""
        if node.where is None:
            return False
        definitions = dict(self.program.definitions)
        for inner in ir.walk(node.where, definitions):
            match inner:
                case ir.Entry(field=field) if field in ("low", "high", "end", "dose"):
                    return True
                case ir.Element() | ir.Aggregate() | ir.Const(value=None):
                    return True
                case ir.Arith(op="/"):
                    return True
        return False

    def of(self, node: ir.Aggregate) -> Value:
        assert node.of is not None
        self.current = node
        try:
            return self.evaluate(node.of)
        finally:
            self.current = None

    def date_of(self, node: ir.Aggregate) -> exp.Expr:
        return b.col(entry_field(ENTRY_DATE[node.history.type.entry]))

    def first_pass(self, patients: str) -> exp.Select:
        columns: list[exp.Expr] = [b.alias(b.col(EVENT_ID), HISTORY_ID)]
        errors: exp.Expr = exp.Min(this=b.col(EVENT_ERROR))
        late = self.late_entries()
        if late is not None:
            errors = exp.Coalesce(this=errors, expressions=[late])
        columns.append(b.alias(errors, HISTORY_ERROR))
        for history in self.histories:
            here = exp.EQ(this=b.col(EVENT_ELEMENT), expression=b.text(history))
            columns.append(b.alias(_count(here), rows_column(history)))
        for node in self.aggregates:
            with self.exactly(node):
                columns += self.first_columns(node)
        select = self.joined(patients)
        select = select.select(*columns, copy=False)
        return select.group_by(b.col(EVENT_ID), copy=False)

    def late_entries(self) -> exp.Expr | None:
        """A message for the first entry dated after the reference date, if there is one."""
        reference = self.program.reference
        if reference is None:
            return None
        whens: list[tuple[exp.Expr, exp.Expr]] = []
        for history in self.histories:
            kind = self.checked.element_types[history]
            field = ENTRY_DATE[kind.entry]
            after = b.and_(
                exp.EQ(this=b.col(EVENT_ELEMENT), expression=b.text(history)),
                exp.GT(this=b.col(entry_field(field)), expression=b.col(f"{reference} latest")),
            )
            shown = b.cast(b.col(entry_field(field)), exp.DataType.build("VARCHAR"))
            message = exp.Concat(
                expressions=[
                    b.text(f"history '{history}', entry field '{field}' "),
                    shown,
                    b.text(f": after the reference date '{reference}'"),
                ]
            )
            whens.append((after, message))
        return exp.Min(this=b.case(whens))

    def exactly(self, node: ir.Aggregate) -> _Exactly:
        return _Exactly(self.span(node))

    def first_columns(self, node: ir.Aggregate) -> list[exp.Expr]:
        selected = self.selected(node)
        open_ = self.open_(node)
        columns: list[exp.Expr] = []
        if open_ is not None:
            columns.append(b.alias(_count(open_), aggregate_column(node, "open")))
        match node.op:
            case "exists" | "count":
                columns.append(b.alias(_count(selected), aggregate_column(node, "n")))
            case "sum" | "max" | "min":
                of = self.of(node)
                value = self.of_value(node, of)
                function = {"sum": exp.Sum, "max": exp.Max, "min": exp.Min}[node.op]
                columns.append(
                    b.alias(_filtered(function, value, selected), aggregate_column(node, "value"))
                )
                columns.append(b.alias(_count(selected.copy()), aggregate_column(node, "n")))
                columns.append(
                    b.alias(
                        _count(b.and_(selected.copy(), b.is_null(value.copy()))),
                        aggregate_column(node, "nulls"),
                    )
                )
            case "latest" | "earliest":
                function = exp.Max if node.op == "latest" else exp.Min
                columns.append(
                    b.alias(
                        _filtered(function, self.date_of(node), selected),
                        aggregate_column(node, "date"),
                    )
                )
            case _:
                raise AssertionError(f"no SQL for the aggregate {node.op}")
        return columns

    def of_value(self, node: ir.Aggregate, of: Value) -> exp.Expr:
        """The SQL of `of` for sum, max and min: a number over a constant denominator."""
        if isinstance(of, exact.Ratio):
            if of.den is not None and of.den.constant is None:
                raise SqlError(
                    f"{self.span(node)}: the {node.op} of a quotient of entry values cannot be "
                    "computed exactly in SQL"
                )
            return of.num.sql
        return of

    def second_pass(self, patients: str) -> exp.Select | None:
        dated = [n for n in self.aggregates if n.op in ("latest", "earliest")]
        if not dated:
            return None
        columns: list[exp.Expr] = [b.alias(b.col(EVENT_ID), HISTORY_ID_AT)]
        for node in dated:
            with self.exactly(node):
                at = b.and_(
                    self.selected(node),
                    exp.EQ(
                        this=self.date_of(node), expression=b.col(aggregate_column(node, "date"))
                    ),
                )
                of = self.of(node)
                parts: list[tuple[str, exp.Expr]] = []
                if isinstance(of, exact.Ratio):
                    parts.append(("value", of.num.sql))
                    if of.den is not None and of.den.constant is None:
                        parts.append(("den", of.den.sql))
                else:
                    parts.append(("value", of))
                nulls: list[exp.Expr] = []
                for what, value in parts:
                    columns.append(
                        b.alias(
                            _filtered(exp.Min, value, at.copy()),
                            aggregate_column(node, f"{what} low"),
                        )
                    )
                    columns.append(
                        b.alias(
                            _filtered(exp.Max, value.copy(), at.copy()),
                            aggregate_column(node, f"{what} high"),
                        )
                    )
                    nulls.append(b.is_null(value.copy()))
                columns.append(
                    b.alias(
                        _count(b.and_(at.copy(), b.paren(b.or_(*nulls)))),
                        aggregate_column(node, "nulls"),
                    )
                )
        # The entries are valid or their patient is in error: read them parsed, not checked
        # again, and only those of the histories read by date.
        select = self.joined(patients, "screen_events_parsed")
        on = exp.EQ(this=b.col(EVENT_ID), expression=b.col(HISTORY_ID))
        select = select.join("screen_history_entries", on=on, join_type="inner", copy=False)
        histories = sorted({n.history.name for n in dated})
        wanted = exp.In(this=b.col(EVENT_ELEMENT), expressions=[b.text(h) for h in histories])
        select = select.select(*columns, copy=False).where(wanted, copy=False)
        return select.group_by(b.col(EVENT_ID), copy=False)

    def quotients(self) -> list[ir.Aggregate]:
        """The `latest`/`earliest` whose `of` divides by an entry value."""
        found = []
        for node in self.aggregates:
            if node.op in ("latest", "earliest"):
                with self.exactly(node):
                    of = self.of(node)
                if isinstance(of, exact.Ratio) and of.den is not None and of.den.constant is None:
                    found.append(node)
        return found

    def ties(self, patients: str) -> exp.Select | None:
        """The third pass: do the ratios n/d on a `latest`/`earliest` date agree?

        Every denominator is positive. If all the ratios are one q, the entry with the
        smallest numerator has the smallest denominator (q > 0), the largest (q < 0), or
        any (q = 0): so they agree exactly when every entry's n * d_low = n_low * d, or
        every entry's n * d_high = n_low * d. This pass counts the entries where each
        fails; the value is n_low over the denominator whose count is 0.
        """
        quotients = self.quotients()
        if not quotients:
            return None
        columns: list[exp.Expr] = [b.alias(b.col(EVENT_ID), HISTORY_ID_TIES)]
        for node in quotients:
            with self.exactly(node):
                at = b.and_(
                    self.selected(node),
                    exp.EQ(
                        this=self.date_of(node), expression=b.col(aggregate_column(node, "date"))
                    ),
                )
                for end in ("low", "high"):
                    entry = self.of(node)  # n / d of each entry
                    assert isinstance(entry, exact.Ratio) and entry.den is not None
                    num, den = _narrow(entry.num), _narrow(entry.den)
                    low = _narrow(
                        attrs.evolve(entry.num, sql=b.col(aggregate_column(node, "value low")))
                    )
                    candidate = _narrow(
                        attrs.evolve(entry.den, sql=b.col(aggregate_column(node, f"den {end}")))
                    )
                    fits = b.and_(*(fit for fit, _ in (num, den, low, candidate)))
                    differs = exact.ratio_compare(
                        exact.Ratio(num[1], den[1]), "!=", exact.Ratio(low[1], candidate[1])
                    )
                    # An entry too wide to cross-multiply counts as differing: unknown.
                    unsure = b.or_(b.not_(b.paren(fits)), b.paren(differs))
                    columns.append(
                        b.alias(
                            _count(
                                b.and_(
                                    at.copy(),
                                    b.paren(exp.Coalesce(this=unsure, expressions=[exp.true()])),
                                )
                            ),
                            aggregate_column(node, f"ties {end}"),
                        )
                    )
        select = self.joined(patients, "screen_events_parsed")
        for table, key in (
            ("screen_history_entries", HISTORY_ID),
            ("screen_history_dates", HISTORY_ID_AT),
        ):
            on = exp.EQ(this=b.col(EVENT_ID), expression=b.col(key))
            select = select.join(table, on=on, join_type="inner", copy=False)
        histories = sorted({n.history.name for n in quotients})
        wanted = exp.In(this=b.col(EVENT_ELEMENT), expressions=[b.text(h) for h in histories])
        select = select.select(*columns, copy=False).where(wanted, copy=False)
        return select.group_by(b.col(EVENT_ID), copy=False)

    # ---- the values, in screen_histories ----

    def source(self, patients: str) -> exp.Select:
        """FROM patients LEFT JOIN the passes: the stage the values are computed in."""
        select = exp.select(exp.Star(), copy=False).from_(patients, copy=False)
        on = exp.EQ(this=b.col(PATIENT_KEY), expression=b.col(HISTORY_ID))
        select = select.join("screen_history_entries", on=on, join_type="left", copy=False)
        if any(n.op in ("latest", "earliest") for n in self.aggregates):
            on = exp.EQ(this=b.col(PATIENT_KEY), expression=b.col(HISTORY_ID_AT))
            select = select.join("screen_history_dates", on=on, join_type="left", copy=False)
        if self.quotients():
            on = exp.EQ(this=b.col(PATIENT_KEY), expression=b.col(HISTORY_ID_TIES))
            select = select.join("screen_history_ties", on=on, join_type="left", copy=False)
        return select

    def on_record(self, history: str) -> exp.Expr:
        """The history is on record: BOOLEAN TRUE, or NULL when it is not (missing data)."""
        return b.when(_positive(rows_column(history)), exp.true())

    def value(self, node: ir.Aggregate) -> Value:
        """The aggregate's value from the passes' columns (Kleene, as `ir.Aggregate`)."""
        ready = [_positive(rows_column(node.history.name))]
        open_ = self.may_be_unknown(node)
        if open_:
            ready.append(_zero(aggregate_column(node, "open")))
        match node.op:
            case "exists":
                found = _positive(aggregate_column(node, "n"))
                decided = b.case(
                    [
                        (found, exp.true()),
                        (_positive(aggregate_column(node, "open")), exp.null()),
                    ]
                    if open_
                    else [(found, exp.true())],
                    exp.false(),
                )
                return b.when(_positive(rows_column(node.history.name)), decided)
            case "count":
                count = exact.Dec(
                    b.col(aggregate_column(node, "n")),
                    Fraction(0),
                    Fraction(10**COUNT_DIGITS - 1),
                    0,
                )
                return exact.Ratio(self.guarded(count, ready))
            case "sum" | "max" | "min":
                ready.append(_zero(aggregate_column(node, "nulls")))
                if node.op != "sum":
                    ready.append(_positive(aggregate_column(node, "n")))
                return self.aggregated(node, ready)
            case "latest" | "earliest":
                ready.append(_zero(aggregate_column(node, "nulls")))
                return self.aggregated(node, ready)
        raise AssertionError(f"no SQL for the aggregate {node.op}")

    def guarded(self, dec: exact.Dec, ready: list[exp.Expr]) -> exact.Dec:
        sql = b.when(b.and_(*ready), b.cast(dec.sql, dec.type))
        return attrs.evolve(dec, sql=sql, nullable=True)

    def aggregated(self, node: ir.Aggregate, ready: list[exp.Expr]) -> Value:
        of = self.of(node)
        dated = node.op in ("latest", "earliest")
        column = aggregate_column(node, "value low" if dated else "value")
        den = of.den if isinstance(of, exact.Ratio) else None
        quotient = dated and den is not None and den.constant is None
        if dated and not quotient:
            ready.append(
                exp.EQ(
                    this=b.col(aggregate_column(node, "value low")),
                    expression=b.col(aggregate_column(node, "value high")),
                )
            )
        if not isinstance(of, exact.Ratio):
            return b.when(b.and_(*ready), b.col(column))
        num = of.num
        if node.op == "sum":
            total = Fraction(10**MAX_ENTRIES_DIGITS)
            low, high = min(num.low * total, Fraction(0)), max(num.high * total, Fraction(0))
            sum_ = exp.Coalesce(this=b.col(column), expressions=[exact.zero()])
            dec = exact.Dec(sum_, low, high, num.scale)
            if dec.precision > exact.MAX_PRECISION:
                raise exact.TooWide
        else:
            dec = exact.Dec(b.col(column), num.low, num.high, num.scale)
        if quotient:
            assert den is not None
            # The ratios agree when every entry has one same n and d, or with
            # n_low / d_low or n_low / d_high (see `ties`).
            same = b.and_(
                *(
                    exp.EQ(
                        this=b.col(aggregate_column(node, f"{what} low")),
                        expression=b.col(aggregate_column(node, f"{what} high")),
                    )
                    for what in ("value", "den")
                )
            )
            by_low = _zero(aggregate_column(node, "ties low"))
            by_high = _zero(aggregate_column(node, "ties high"))
            ready.append(b.paren(b.or_(same, by_low, by_high)))
            chosen = b.case(
                [(b.or_(same.copy(), by_low.copy()), b.col(aggregate_column(node, "den low")))],
                b.col(aggregate_column(node, "den high")),
            )
            den = attrs.evolve(den, sql=chosen, nullable=True)
        return exact.Ratio(self.guarded(dec, ready), den)


NARROW_DIGITS, NARROW_SCALE = 12, 6  # two such numbers multiply within 38 digits


def _narrow(dec: exact.Dec) -> tuple[exp.Expr, exact.Dec]:
    """`dec` as DECIMAL(18, 6) and the condition under which that is exact:
    |dec| < 10^12 with at most 6 decimal places (any record's value in practice)."""
    scale = min(dec.scale, NARROW_SCALE)
    bound = Fraction(10**NARROW_DIGITS)
    if dec.digits <= NARROW_DIGITS and dec.scale <= NARROW_SCALE:
        return exp.true(), dec
    fits = b.and_(
        exp.LT(this=exp.Abs(this=dec.sql.copy()), expression=exp.Literal.number(10**NARROW_DIGITS)),
        exp.EQ(
            this=dec.sql.copy(),
            expression=exp.Round(this=dec.sql.copy(), decimals=exp.Literal.number(scale)),
        ),
    )
    largest = bound - Fraction(1, 10**scale)
    narrow = exact.Dec(
        b.case([(fits.copy(), dec.sql.copy())]),
        max(dec.low, -largest),
        min(dec.high, largest),
        scale,
    )
    return fits, attrs.evolve(narrow, sql=b.cast(narrow.sql, narrow.type))


@attrs.frozen
class _Exactly:
    """Report an aggregate too wide for exact SQL decimals at its history's declaration."""

    where: object

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        if isinstance(error, exact.TooWide):
            raise SqlError(
                f"{self.where}: this history selector needs more than {exact.MAX_PRECISION} "
                "decimal digits to compute exactly in SQL"
            ) from None
