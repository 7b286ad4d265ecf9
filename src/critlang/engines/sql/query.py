"""The core IR to one sqlglot query that screens every patient in a table.

One method per IR node class, and nothing else decides what a node means:
SQL's AND, OR and NOT are already Kleene's, numbers are exact ratios
(`exact.py`), and the table is read by the stages of `layout.py`. Values
used again are computed once, in a stage of their own, and read from its
column afterwards: definitions level by level, then the parts of criteria,
then each criterion's condition and applicability, then its value.
"""

from __future__ import annotations

import contextlib
import datetime
import math
from collections.abc import Iterator
from fractions import Fraction

import attrs
from sqlglot import exp

from critlang import ir
from critlang.check import Checked
from critlang.engines.sql import build as b
from critlang.engines.sql import dates, exact
from critlang.engines.sql.histories import HISTORY_ERROR, Histories
from critlang.engines.sql.layout import RECORD_ERROR, Input, Layout, SqlError
from critlang.records import ID_FIELD
from critlang.vocab import CalendarUnit, Outcome

STATUS, MISSING, ERROR_COLUMN = "status", "missing", "error"

Value = exact.Ratio | exp.Expr

# The most calendar units between two dates of the years 1 to 9999.
DIFF_LIMITS = {
    CalendarUnit.DAY: dates.MAX_DAYS,
    CalendarUnit.WEEK: dates.MAX_DAYS // 7 + 1,
    CalendarUnit.MONTH: 10_000 * 12,
    CalendarUnit.YEAR: 10_000,
}


def applies_column(ident: str) -> str:
    """The name of a criterion's (or a part's, 'I2 a') applicability column."""
    return f"{ident} applies"


def part_column(criterion: str, part: str) -> str:
    """The name of a part's value column: 'I2 a'."""
    return f"{criterion} {part}"


def result_columns(program: ir.Program) -> list[str]:
    """The query's columns, in order."""
    columns = [ID_FIELD, STATUS]
    for criterion in program.criteria:
        columns.append(criterion.id)
        if criterion.applies is not None:
            columns.append(applies_column(criterion.id))
        for part in criterion.parts:
            columns.append(part_column(criterion.id, part.name))
            if part.applies is not None:
                columns.append(applies_column(part_column(criterion.id, part.name)))
    return [*columns, MISSING, ERROR_COLUMN]


class Query:
    """The screening query for one lowered protocol and table layout."""

    def __init__(self, checked: Checked, program: ir.Program, layout: Layout) -> None:
        self.checked = checked
        self.program = program
        self.input = Input(checked, layout)
        self.layout = layout
        self.definitions = dict(program.definitions)
        self.columns: dict[int, Value] = {}  # node id -> the column(s) of an earlier stage
        self.pending: dict[int, Value] = {}  # the same for the stage being built
        self.histories = Histories(checked, program, layout, self.value)

    def query(self, table: exp.Table) -> exp.Select:
        stages = self.input.stages(table)
        if self.histories.active:
            stages = stages[:2] + self.history_stages()
        previous = stages[-1][0]
        for number, names in enumerate(self.definition_levels(), start=1):
            name = f"screen_definitions_{number}"
            stages.append((name, self.definitions_stage(names, previous)))
            previous = name
        stages += [
            ("screen_parts", self.parts(previous)),
            ("screen_criteria", self.criteria()),
            ("screen_verdicts", self.verdicts()),
            ("screen_outcomes", self.outcomes()),
        ]
        select = self.final()
        for name, stage in stages:
            select = select.with_(name, as_=stage, copy=False)
        return select

    def history_stages(self) -> list[tuple[str, exp.Select]]:
        """The events, the passes over them, the aggregates' values; then the record errors."""
        stages = self.histories.stages("screen_input")
        columns: list[exp.Expr] = []
        for history in self.histories.histories:
            columns.append(b.alias(self.histories.on_record(history), history))
        for node in self.histories.aggregates:
            with self.histories.exactly(node):
                columns += self.materialize(node, f"aggregate {node.id}")
        source = self.histories.source("screen_input")
        self.columns.update(self.pending)
        self.pending = {}
        stages.append(("screen_histories", source.select(*columns, copy=False)))
        checked = self.input.record_errors("screen_histories", b.col(HISTORY_ERROR))
        return [*stages, ("screen_checked", checked)]

    @contextlib.contextmanager
    def exactly(self, where: object) -> Iterator[None]:
        """Report an expression too wide for exact SQL decimals at its place in the source."""
        try:
            yield
        except exact.TooWide:
            raise SqlError(
                f"{where}: this needs more than {exact.MAX_PRECISION} decimal digits to "
                "compute exactly in SQL; declare plausible ranges for its data elements"
            ) from None

    def materialize(self, node: ir.Node, name: str) -> list[exp.Expr]:
        """Columns holding `node`'s value under `name`; later stages read them."""
        value = self.value(node)
        if not isinstance(value, exact.Ratio):
            self.pending[node.id] = b.col(name)
            return [b.alias(value, name)]
        columns = [b.alias(value.num.sql, name)]
        den = value.den
        if den is not None and den.constant is None:
            columns.append(b.alias(den.sql, f"{name} den"))
            den = attrs.evolve(den, sql=b.col(f"{name} den"))
        self.pending[node.id] = exact.Ratio(attrs.evolve(value.num, sql=b.col(name)), den)
        return columns

    def stage(self, columns: list[exp.Expr], previous: str) -> exp.Select:
        """SELECT *, columns FROM previous; their values are read by name from now on.

        Only from the next stage: a column cannot be read where it is defined.
        """
        self.columns.update(self.pending)
        self.pending = {}
        return b.select([exp.Star(), *columns], previous)

    # ---- definitions, level by level so each is computed once ----

    def definition_levels(self) -> list[list[str]]:
        levels: dict[str, int] = {}
        for name, body in self.program.definitions:  # in dependency order
            used = [n.name for n in ir.walk(body, {}) if isinstance(n, ir.Definition)]
            levels[name] = 1 + max((levels[d] for d in used), default=0)
        deepest = max(levels.values(), default=0)
        return [[n for n in levels if levels[n] == depth] for depth in range(1, deepest + 1)]

    def definitions_stage(self, names: list[str], previous: str) -> exp.Select:
        columns: list[exp.Expr] = []
        for name in names:
            with self.exactly(self.checked.definitions[name].span):
                columns += self.materialize(self.definitions[name], name)
        return self.stage(columns, previous)

    # ---- criteria ----

    def spans(self) -> dict[str, object]:
        return {c.id.text: c.condition.span for c in self.checked.protocol.criteria}

    def parts(self, previous: str) -> exp.Select:
        columns: list[exp.Expr] = []
        spans = self.spans()
        for criterion in self.program.criteria:
            for part in criterion.parts:
                name = part_column(criterion.id, part.name)
                with self.exactly(spans[criterion.id]):
                    columns += self.materialize(part.value, name)
                    if part.applies is not None:
                        columns += self.materialize(part.applies, applies_column(name))
        return self.stage(columns, previous)

    def criteria(self) -> exp.Select:
        columns: list[exp.Expr] = []
        spans = self.spans()
        for criterion in self.program.criteria:
            with self.exactly(spans[criterion.id]):
                columns += self.materialize(criterion.condition, f"{criterion.id} condition")
                if criterion.applies is not None:
                    columns += self.materialize(criterion.applies, applies_column(criterion.id))
        return self.stage(columns, "screen_parts")

    def verdicts(self) -> exp.Select:
        columns: list[exp.Expr] = []
        for criterion in self.program.criteria:
            columns += self.materialize(criterion.value, f"{criterion.id} value")
        return self.stage(columns, "screen_criteria")

    def outcomes(self) -> exp.Select:
        excluded: list[exp.Expr] = []
        settled: list[exp.Expr] = []
        for criterion in self.program.criteria:
            value = b.col(f"{criterion.id} value")
            neutral = criterion.kind.neutral
            excluded.append(b.is_(value, not neutral))
            settled.append(b.is_(value.copy(), neutral))
        status = exp.Case(
            ifs=[
                exp.If(this=b.not_(b.is_null(b.col(RECORD_ERROR))), true=b.text(Outcome.ERROR)),
                exp.If(this=b.or_(*excluded), true=b.text(Outcome.INELIGIBLE)),
                exp.If(this=b.and_(*settled), true=b.text(Outcome.ELIGIBLE)),
            ],
            default=b.text(Outcome.UNDETERMINED),
        )
        return b.select([exp.Star(), b.alias(status, f"{STATUS} value")], "screen_verdicts")

    def final(self) -> exp.Select:
        columns: list[exp.Expr] = []
        if self.layout.id_column is not None:
            columns.append(b.col(ID_FIELD))
        columns.append(b.alias(b.col(f"{STATUS} value"), STATUS))

        # No column can fail validation: the record error is always NULL, and masking the
        # values with it would cost a CASE a column for nothing.
        never = not self.input.problems and not self.histories.active

        def unless_error(column: str, name: str) -> None:
            if never:
                columns.append(b.alias(b.col(column), name))
                return
            valid = b.is_null(b.col(RECORD_ERROR))
            columns.append(b.alias(b.when(valid, b.col(column)), name))

        for criterion in self.program.criteria:
            unless_error(f"{criterion.id} value", criterion.id)
            if criterion.applies is not None:
                unless_error(applies_column(criterion.id), applies_column(criterion.id))
            for part in criterion.parts:
                name = part_column(criterion.id, part.name)
                unless_error(name, name)
                if part.applies is not None:
                    unless_error(applies_column(name), applies_column(name))
        columns.append(b.alias(self.missing(), MISSING))
        columns.append(b.alias(b.col(RECORD_ERROR), ERROR_COLUMN))
        return b.select(columns, "screen_outcomes")

    def missing(self) -> exp.Expr:
        """Absent elements under the unknown `applies when` or condition of an unknown criterion.

        The Python engine narrows this to the elements under the unknown nodes
        below those; here a whole root counts, so the list can be longer, never
        shorter.
        """
        reasons: dict[str, dict[str, exp.Expr]] = {}  # element -> its tests, each once
        for criterion in self.program.criteria:
            value = f"{criterion.id} value"
            roots = [(criterion.condition, f"{criterion.id} condition")]
            if criterion.applies is not None:
                roots.append((criterion.applies, applies_column(criterion.id)))
            for root, column in roots:
                if criterion.value.id == root.id:  # the value is this root's column
                    unknown = b.is_null(b.col(value))
                else:
                    unknown = b.and_(b.is_null(b.col(value)), b.is_null(b.col(column)))
                text = unknown.sql()
                for node in ir.walk(root, self.definitions):
                    if isinstance(node, ir.Element):
                        reasons.setdefault(node.name, {}).setdefault(text, unknown.copy())
        entries = [
            b.when(b.and_(self.absent(name), b.paren(b.or_(*because.values()))), b.text(name))
            for name, because in reasons.items()
        ]
        listed = exp.Array(expressions=entries or [b.cast(exp.null(), "VARCHAR")])
        found = exp.ArrayFilter(this=listed, expression=b.lambda_(b.not_(b.is_null(b.x()))))
        # Only undetermined patients have missing data that matters: skip the rest cheaply.
        undetermined = exp.EQ(
            this=b.col(f"{STATUS} value"), expression=b.text(Outcome.UNDETERMINED)
        )
        none = b.cast(exp.Array(expressions=[]), exp.DataType.build("VARCHAR[]", dialect="duckdb"))
        return b.when(undetermined, found, none)

    def absent(self, name: str) -> exp.Expr:
        """The element has no value; a history, that it is not on record."""
        if self.checked.element_types[name].kind != "history":
            return b.is_null(b.col(name))
        if self.histories.active and name in self.histories.histories:
            return b.is_null(b.col(name))
        return exp.true()

    # ---- one method per IR node ----

    def value(self, node: ir.Node) -> Value:
        """A node's value: a three-valued BOOLEAN, an exact Ratio, or an enum, set or date."""
        held = self.columns.get(node.id)
        if held is not None:
            return exact.fresh(held) if isinstance(held, exact.Ratio) else held.copy()
        match node:
            case ir.Const():
                return self.const(node)
            case ir.Element():
                return self.element(node)
            case ir.Definition():
                # Read from its stage's column(s), which hold the value of its body.
                return self.value(self.definitions[node.name])
            case ir.Not():
                return self.not_(node)
            case ir.And():
                return self.and_(node)
            case ir.Or():
                return self.or_(node)
            case ir.AtLeast():
                return self.at_least(node)
            case ir.Compare():
                return self.compare(node)
            case ir.Arith():
                return self.arith(node)
            case ir.Scale():
                return self.scale(node)
            case ir.Member():
                return self.member(node)
            case ir.Includes():
                return self.includes(node)
            case ir.InCodes():
                return self.in_codes(node)
            case ir.DateShift():
                return self.date_shift(node)
            case ir.DateDiff():
                return self.date_diff(node)
            case ir.Entry():
                return self.histories.entry(node)
            case ir.Aggregate():
                if self.histories.active:
                    return self.histories.value(node)
                return self.histories.unknown(node)
        raise AssertionError(f"the SQL engine has no rule for {node!r}")

    def boolean(self, node: ir.Node) -> exp.Expr:
        value = self.value(node)
        assert not isinstance(value, exact.Ratio)
        return value

    def number(self, node: ir.Node) -> exact.Ratio:
        value = self.value(node)
        assert isinstance(value, exact.Ratio)
        return value

    def const(self, node: ir.Const) -> Value:
        match node.value:
            case None:  # unknown, in the Kleene bounds lowering makes
                return b.cast(exp.null(), exp.DataType.build("BOOLEAN"))
            case bool(truth):
                return exp.true() if truth else exp.false()
            case Fraction() as number:
                return exact.const(number)
            case datetime.date() as day:
                return b.cast(b.text(day.isoformat()), exp.DataType.build("DATE"))
            case str(word):
                return b.text(word)
            case frozenset() as words:
                return exp.Array(expressions=[b.text(w) for w in sorted(words)])
        raise AssertionError(f"no SQL for the constant {node.value!r}")

    def element(self, node: ir.Element) -> Value:
        if node.type.numeric:
            return self.times(self.input.read(node.name), self.input.into_declared(node.name))
        return self.input.value(node.key)

    def not_(self, node: ir.Not) -> exp.Expr:
        return b.not_(b.paren(self.boolean(node.operand)))

    def and_(self, node: ir.And) -> exp.Expr:
        return b.and_(*(b.paren(self.boolean(x)) for x in node.operands))

    def or_(self, node: ir.Or) -> exp.Expr:
        return b.or_(*(b.paren(self.boolean(x)) for x in node.operands))

    def at_least(self, node: ir.AtLeast) -> exp.Expr:
        """Met if `count` are true, failed if fewer than `count` are not false."""
        values = [self.boolean(x) for x in node.operands]
        weights = [1] * len(values)
        count = node.count
        if node.weights is not None:  # a score: in whole numbers, exact in every dialect
            common = math.lcm(Fraction(count).denominator, *(w.denominator for w in node.weights))
            weights = [int(w * common) for w in node.weights]
            count = int(Fraction(count) * common)
        zero = exp.Literal.number(0)

        def total(counts: list[exp.Expr]) -> exp.Expr:
            if not counts:
                return zero.copy()
            result = counts[0]
            for term in counts[1:]:
                result = exp.Add(this=result, expression=term)
            return exp.Paren(this=result)

        pairs = list(zip(values, weights, strict=True))
        met = total([b.when(v, exp.Literal.number(w), zero.copy()) for v, w in pairs])
        possible = total(
            [b.when(b.is_(v.copy(), False), zero.copy(), exp.Literal.number(w)) for v, w in pairs]
        )
        needed = exp.Literal.number(count)
        return exp.Case(
            ifs=[
                exp.If(this=exp.GTE(this=met, expression=needed), true=exp.true()),
                exp.If(this=exp.LT(this=possible, expression=needed.copy()), true=exp.false()),
            ],
            default=exp.null(),
        )

    def compare(self, node: ir.Compare) -> exp.Expr:
        if not node.left.type.numeric:
            left, right = self.boolean(node.left), self.boolean(node.right)
            return exact.OPS[node.op](this=b.paren(left), expression=b.paren(right))
        # `x * f op y * g` is `x op y * (g / f)` for f > 0: one factor, and none at all
        # when y is a constant, however many conversions met on the way.
        (left_base, f), (right_base, g) = self.linear(node.left), self.linear(node.right)
        assert f > 0 and g > 0, "unit factors are positive"
        constant = left_base.constant
        if constant is not None:
            return exact.ratio_compare(exact.const(constant * f / g), node.op, right_base)
        return exact.ratio_compare(left_base, node.op, self.times(right_base, g / f))

    def arith(self, node: ir.Arith) -> exact.Ratio:
        base, factor = self.linear(node)
        return self.times(base, factor)

    def scale(self, node: ir.Scale) -> exact.Ratio:
        base, factor = self.linear(node)
        return self.times(base, factor)

    def times(self, x: exact.Ratio, factor: Fraction) -> exact.Ratio:
        constant = x.constant
        if constant is not None:
            return exact.const(constant * factor)
        return exact.ratio_scale(x, factor)

    def linear(self, node: ir.Node) -> tuple[exact.Ratio, Fraction]:
        """A number as (base, positive factor), their product, so conversions multiply once.

        Unit factors are gathered from the column's unit through every `Scale`,
        sum and product; a sum of terms with different factors takes the left
        term's, and the right term is converted by the one factor between them.
        """
        if node.id in self.columns:
            return self.number(node), Fraction(1)
        match node:
            case ir.Element():
                return self.input.read(node.name), self.input.into_declared(node.name)
            case ir.Scale(operand=operand, factor=factor) if factor > 0:
                base, inner = self.linear(operand)
                return base, inner * factor
            case ir.Arith(op=op, left=left, right=right):
                (x, f), (y, g) = self.linear(left), self.linear(right)
                match op:
                    case "+" | "-":
                        return exact.ratio_add(x, self.times(y, g / f), op == "-"), f
                    case "*":
                        return exact.ratio_mul(x, y), f * g
                    case _:
                        return exact.ratio_div(x, y), f / g
        return self.number(node), Fraction(1)

    def date_shift(self, node: ir.DateShift) -> exp.Expr:
        date = self.boolean(node.operand)  # a DATE: not a number
        match node.unit:
            case CalendarUnit.DAY | CalendarUnit.WEEK:
                days = node.amount * (7 if node.unit is CalendarUnit.WEEK else 1)
                return dates.shift_days(date, days)
        months = node.amount * (12 if node.unit is CalendarUnit.YEAR else 1)
        return dates.shift_months(date, months)

    def date_diff(self, node: ir.DateDiff) -> exact.Ratio:
        start, end = self.boolean(node.start), self.boolean(node.end)
        limit = Fraction(DIFF_LIMITS[node.unit])
        count = dates.between(node.unit.value, start, end)
        return exact.Ratio(exact.typed(count, -limit, limit, 0, nullable=True))

    def member(self, node: ir.Member) -> exp.Expr:
        if not node.values:  # `nyha < i`: false, unknown when the value is
            held = self.boolean(node.operand)
            return exp.Case(
                ifs=[exp.If(this=b.is_null(held), true=exp.null())], default=exp.false()
            )
        return exp.In(
            this=self.boolean(node.operand), expressions=[b.text(v) for v in sorted(node.values)]
        )

    def includes(self, node: ir.Includes) -> exp.Expr:
        held = self.boolean(node.operand)
        tests = [
            exp.ArrayContains(this=held.copy(), expression=b.text(v)) for v in sorted(node.values)
        ]
        combined = b.and_(*tests) if node.every else b.or_(*tests)
        # Postgres reads `= ANY` of a NULL array as FALSE: keep it unknown.
        return exp.Case(ifs=[exp.If(this=b.is_null(held), true=exp.null())], default=combined)

    def in_codes(self, node: ir.InCodes) -> exp.Expr:
        """Exact codes with IN, prefixes by their first characters (never LIKE: `_` is a code's)."""
        held = self.boolean(node.operand)
        tests: list[exp.Expr] = []
        codes = sorted(node.codes.codes)
        if codes:
            tests.append(exp.In(this=held.copy(), expressions=[b.text(c) for c in codes]))
        for prefix in node.codes.prefixes:
            start = exp.Substring(
                this=held.copy(),
                start=exp.Literal.number(1),
                length=exp.Literal.number(len(prefix)),
            )
            tests.append(exp.EQ(this=start, expression=b.text(prefix)))
        found = b.or_(*tests)
        return exp.Case(ifs=[exp.If(this=b.is_null(held), true=exp.null())], default=found)
