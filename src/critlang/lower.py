"""Lowering: the checked syntax tree to the core IR, where meaning is decided once.

Every rule of the language's semantics lives here, and nowhere else:

- names resolve to data elements, definitions, constants or enum values;
  numeric constant expressions fold to exact rationals;
- a quantity is converted into the unit it meets by an exact factor
  (`Scale`), so engines only ever compare numbers in one unit;
- `a unless b` is `a and not b`; `v between lo and hi` is `lo <= v and
  v <= hi` (Kleene, so a known bound that fails decides even when the other
  bound is unknown); `decline from b to c` is `(b - c) * 100 / b` and
  `change from b to c` is `(c - b) * 100 / b`, unknown for a zero baseline;
- a part whose `applies when` is false is left out of its list, whatever
  stands above the list: in `all of` it contributes `not applies or value`,
  in `any of` and `at least N of` it contributes `applies and value`, so
  `all of` nothing is true, `any of` nothing is false, and `at least N of`
  fewer than N applicable parts is false;
- a criterion that does not apply lets the patient through: an inclusion's
  value is `not applies or condition`, an exclusion's `applies and condition`;
- a date element is read as the pair of the first and last day it may be (a
  record may say `2019` or `2019-05`), and every number or date computed from
  one is a range between two values (`_Range`); `a < b` is true when it holds
  for every value of the ranges, false when for none, else unknown:
  `Or(sure, And(possible, Const(None)))`. `d within 6 months before r` is
  `r - 6 months <= d and d <= r`; `years since d` is `years between d and`
  the reference date named by `as of`.

Chains of `and`/`or` become one n-ary node, so a chain of hundreds of terms
is one node, not hundreds of nested ones.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any, TypeVar

import attrs

from critlang import codes, ir
from critlang import syntax as s
from critlang.check import BOOLEAN, DATE, Checked, Type, score_operator
from critlang.terminology import Terminology
from critlang.vocab import CalendarUnit, CodeSystem, EntryKind, Kind

N = TypeVar("N", bound=ir.Node)


@attrs.frozen
class Lowered:
    """A program and, for explanations, the IR node holding each syntax node's value.

    `origin` is keyed by `id()` of the syntax nodes of `checked.protocol`;
    chains of `and`/`or` map only their outermost node.
    """

    checked: Checked
    program: ir.Program
    origin: dict[int, ir.Node]
    # For a value that is a range (from a partial date), the node of its upper end;
    # `origin` holds the lower end.
    latest: dict[int, ir.Node] = attrs.field(factory=dict)


def lower(checked: Checked) -> Lowered:
    """Lower a checked protocol to the core IR."""
    lowering = _Lowering(checked)
    criteria = tuple(lowering.criterion(c) for c in checked.protocol.criteria)
    program = ir.Program(
        name=checked.protocol.name.text,
        elements=tuple(checked.element_types.items()),
        definitions=tuple(lowering.definitions.items()),
        criteria=criteria,
        size=lowering.next_id,
        reference=lowering.reference_name,
    )
    return Lowered(checked, program, lowering.origin, lowering.latest)


class _Lowering:
    def __init__(self, checked: Checked) -> None:
        self.checked = checked
        self.next_id = 0
        self.origin: dict[int, ir.Node] = {}
        self.elements: dict[str, ir.Element] = {}
        self.references: dict[str, ir.Definition] = {}
        self.definitions: dict[str, ir.Node] = {}  # in dependency order
        self.code_lists: dict[str, ir.CodeList] = {}
        self.latest: dict[int, ir.Node] = {}
        self.dates: dict[str, _Range] = {}  # date elements as (earliest, latest)
        self.ranges: dict[str, _Range] = {}  # definitions whose value is a range, inlined
        self.entry_histories: list[Type] = []  # the histories of the selectors being lowered
        as_of = checked.protocol.header.as_of
        self.reference_name = as_of.text if as_of is not None else None

    def make(self, cls: type[N], kind: Type, **fields: Any) -> N:
        node = cls(id=self.next_id, type=kind, **fields)
        self.next_id += 1
        return node

    def type_of(self, node: object) -> Type:
        return self.checked.types[node]

    # ---- criteria and parts ----

    def criterion(self, criterion: s.Criterion) -> ir.Criterion:
        kind = Kind(criterion.kind)
        condition = self.expr(criterion.condition)
        parts: tuple[ir.Part, ...] = ()
        if isinstance(criterion.condition, s.Quantified):
            parts = tuple(
                ir.Part(
                    name=item.name.text,
                    title=item.title,
                    applies=self.lowered(item.applies_when),
                    condition=self.origin[id(item.condition)],
                    value=self.origin[id(item)],
                )
                for item in criterion.condition.items
                if isinstance(item, s.SubCriterion)
            )
        applies = None
        value = condition
        if criterion.applies_when is not None:
            applies = self.expr(criterion.applies_when)
            value = self.applicable(applies, condition, conjunctive=kind is Kind.INCLUSION)
        self.origin[id(criterion)] = value
        return ir.Criterion(
            id=criterion.id.text,
            kind=kind,
            title=criterion.title,
            applies=applies,
            condition=condition,
            value=value,
            parts=parts,
        )

    def lowered(self, node: s.Expr | None) -> ir.Node | None:
        return None if node is None else self.origin[id(node)]

    def applicable(self, applies: ir.Node, value: ir.Node, conjunctive: bool) -> ir.Node:
        """What a conditional part adds to an `all of` (conjunctive) or `any of` list."""
        if conjunctive:
            skipped = self.make(ir.Not, BOOLEAN, operand=applies)
            return self.make(ir.Or, BOOLEAN, operands=(skipped, value))
        return self.make(ir.And, BOOLEAN, operands=(applies, value))

    def item(self, item: s.Expr | s.SubCriterion, conjunctive: bool) -> ir.Node:
        if not isinstance(item, s.SubCriterion):
            return self.expr(item)
        value = self.expr(item.condition)
        if item.applies_when is not None:
            applies = self.expr(item.applies_when)
            value = self.applicable(applies, value, conjunctive)
        self.origin[id(item)] = value
        return value

    # ---- expressions ----

    def expr(self, node: s.Expr) -> ir.Node:
        """The node of a value that is never a range: a condition, an enum, a set."""
        found = self.value(node)
        assert found.exact, "a range is only compared, never used as one value"
        return found.low

    def value(self, node: s.Expr) -> _Range:
        folded = self.checked.fold(node)
        if folded is not None:
            result = _Range.of(self.const(folded, self.type_of(node)))
        else:
            result = self.emit_value(node)
        self.origin[id(node)] = result.low
        if not result.exact:
            self.latest[id(node)] = result.high
        return result

    def const(self, value: ir.Value, kind: Type) -> ir.Node:
        return self.make(ir.Const, kind, value=value)

    def emit(self, node: s.Expr) -> ir.Node:
        kind = self.type_of(node)
        match node:
            case s.BoolLit(value=truth):
                return self.const(truth, BOOLEAN)
            case s.DateLit(value=day):
                return self.const(day, kind)
            case s.Not(operand=operand):
                return self.make(ir.Not, BOOLEAN, operand=self.expr(operand))
            case s.And() | s.Or():
                operands = tuple(self.expr(term) for term in chain(node))
                return self.make(
                    ir.And if isinstance(node, s.And) else ir.Or, BOOLEAN, operands=operands
                )
            case s.Unless(rule=rule, exception=exception):
                excepted = self.make(ir.Not, BOOLEAN, operand=self.expr(exception))
                return self.make(ir.And, BOOLEAN, operands=(self.expr(rule), excepted))
            case s.Compare(left=s.Score()) | s.Compare(right=s.Score()):
                return self.score(node)
            case s.Compare(left=left, right=right) if "ordinal" in (
                self.type_of(left).kind,
                self.type_of(right).kind,
            ):
                return self.ordinal(node)
            case s.Compare(op=op, left=left, right=right):
                compared = self.compare(op, self.value(left), self.in_unit_of(right, left))
                return self.lower_bound(node, compared)
            case s.Between():
                return self.between(node)
            case s.Member(subject=subject, values=values):
                return self.make(
                    ir.Member, BOOLEAN, operand=self.expr(subject), values=_texts(values)
                )
            case s.Includes(subject=subject, quantifier=quantifier, values=values):
                return self.make(
                    ir.Includes,
                    BOOLEAN,
                    operand=self.expr(subject),
                    every=quantifier == "all",
                    values=_texts(values),
                )
            case s.Window():
                return self.window(node)
            case s.EntryField(field=field):
                return self.make(ir.Entry, kind, field=field)
            case s.InCodes(subject=subject, codes=name):
                return self.in_codes(self.expr(subject), name.text)
            case s.Selector():
                return self.selector(node, kind)
            case s.Quantified(quantifier=quantifier, count=count, items=items):
                conjunctive = quantifier == "all"
                operands = tuple(self.item(item, conjunctive) for item in items)
                if quantifier == "at_least":
                    return self.make(ir.AtLeast, BOOLEAN, count=count or 0, operands=operands)
                return self.make(ir.And if conjunctive else ir.Or, BOOLEAN, operands=operands)
        raise AssertionError(f"cannot lower {node!r}")

    def emit_value(self, node: s.Expr) -> _Range:
        """A number or date, which may be a range; anything else as one node."""
        kind = self.type_of(node)
        match node:
            case s.Ref(name=name):
                return self.reference(name, kind)
            case s.Arithmetic(op=op, left=left, right=s.CalendarDuration() as right):
                amount = right.amount if op == "+" else -right.amount
                self.duration(right)
                return self.shift(self.value(left), amount, right.unit)
            case s.Arithmetic(op=op, left=left, right=right):
                first = self.value(left)
                second = self.in_unit_of(right, left) if op in "+-" else self.value(right)
                return self.arith(op, first, second, kind)
            case s.RelativeChange():
                return self.relative_change(node, kind)
            case s.DateDifference():
                return self.date_difference(node)
        return _Range.of(self.emit(node))

    def reference(self, name: str, kind: Type) -> _Range:
        c = self.checked
        if name == "ongoing" and name not in c.elements and name not in c.definitions:
            return _Range.of(self.ongoing())
        if name in c.elements:
            if c.element_types[name].kind == "date":
                return self.date_element(name)
            if name not in self.elements:
                self.elements[name] = self.make(ir.Element, c.element_types[name], name=name)
            return _Range.of(self.elements[name])
        if name in self.ranges:
            return self.ranges[name]
        if name in c.definitions:
            if name not in self.references:
                body = self.value(c.definitions[name].expr)
                if not body.exact:
                    # A range is two values; a definition holds one, so it is inlined.
                    self.ranges[name] = body
                    return body
                self.definitions[name] = body.low  # after the definitions it uses
                self.references[name] = self.make(ir.Definition, body.low.type, name=name)
            return _Range.of(self.references[name])
        if name in c.constants:
            literal = c.constants[name].value
            assert isinstance(literal, s.DateLit), "numeric constants are folded"
            return _Range.of(self.const(literal.value, kind))
        return _Range.of(self.const(name, kind))  # an enum value, as in `sex = female`

    # ---- histories ----

    def in_codes(self, operand: ir.Node, name: str) -> ir.Node:
        """`x in NAME`: in what the list names and in none of its exceptions.

        A root written `"CODE" and descendants` that the terminology decides
        adds its descendants as codes; one it does not decide (no terminology,
        or one that does not name the root) leaves every other code of the
        system unknown: `Or(listed, And(of the system, unknown))`.
        """
        declared = self.checked.code_lists[name]
        inside = self.membership(operand, name, declared.codes)
        if not declared.excluded:
            return inside
        outside = self.membership(operand, f"{name} except", declared.excluded)
        return self.make(
            ir.And, BOOLEAN, operands=(inside, self.make(ir.Not, BOOLEAN, operand=outside))
        )

    def membership(self, operand: ir.Node, name: str, listed: tuple[s.CodeText, ...]) -> ir.Node:
        if name not in self.code_lists:
            self.code_lists[name] = code_list(
                self.checked.code_lists[name.removesuffix(" except")],
                listed,
                name,
                self.checked.terminology,
            )
        found = self.code_lists[name]
        node = self.make(ir.InCodes, BOOLEAN, operand=operand, codes=found)
        roots = [w for w in listed if w.descendants and not w.text.endswith("*")]
        terminology = self.checked.terminology
        system = found.system
        if all(
            terminology is not None and terminology.knows(_coded(system, w.text)) for w in roots
        ):
            return node
        whole = ir.CodeList(  # named as no code list can be
            name=f"{system.value}:*",
            system=system,
            codes=frozenset(),
            prefixes=(f"{system.value}:",),
        )
        of_system = self.make(ir.InCodes, BOOLEAN, operand=operand, codes=whole)
        unknown = self.make(ir.And, BOOLEAN, operands=(of_system, self.const(None, BOOLEAN)))
        return self.make(ir.Or, BOOLEAN, operands=(node, unknown))

    def selector(self, node: s.Selector, kind: Type) -> ir.Node:
        """A selector is one `Aggregate`; an incomplete history only bounds what it says.

        `any` over an incomplete history that finds nothing is unknown (the
        entry may be missing from the record), `no` is then unknown too; counts
        are bounded in `lower_bound`.
        """
        history = self.expr(node.history)
        assert isinstance(history, ir.Element)
        self.entry_histories.append(history.type)
        try:
            conditions = [] if node.where is None else [self.expr(node.where)]
            if node.window is not None:
                conditions += self.entry_window(node.window, history.type.entry)
            of: ir.Node | None = None
            if node.of is not None:
                of = self.expr(node.of)
        finally:
            self.entry_histories.pop()
        where = None
        if len(conditions) == 1:
            where = conditions[0]
        elif conditions:
            where = self.make(ir.And, BOOLEAN, operands=tuple(conditions))
        op = AGGREGATES[node.op]
        if node.of is None and op not in ("exists", "count"):
            of = self.make(ir.Entry, kind, field="value")
        made_type = BOOLEAN if op == "exists" else kind
        found: ir.Node = self.make(
            ir.Aggregate, made_type, op=op, history=history, where=where, of=of
        )
        if op == "exists" and not history.type.complete:
            unknown = self.make(ir.Const, BOOLEAN, value=None)
            found = self.make(ir.Or, BOOLEAN, operands=(found, unknown))
        if node.op == "no":
            found = self.make(ir.Not, BOOLEAN, operand=found)
        return found

    def ongoing(self) -> ir.Node:
        """An entry without an end: a medication still taken, a diagnosis not resolved.

        A code entry of an incomplete history without an end may have resolved
        off the record: it is ongoing or unknown, never known to be ongoing
        (a medication's missing end means ongoing, complete or not)."""
        ongoing = self.make(ir.Entry, BOOLEAN, field="ongoing")
        history = self.entry_histories[-1] if self.entry_histories else None
        if history is None or history.entry != EntryKind.CODE or history.complete:
            return ongoing
        unknown = self.make(ir.Const, BOOLEAN, value=None)
        return self.make(ir.And, BOOLEAN, operands=(ongoing, unknown))

    def entry_window(self, window: s.EntryWindow, entry: str) -> list[ir.Node]:
        """`within N units before D`: dated from D - N units to D (`after D`: from D to D + N
        units); a medication when taken then: started by the end, and ongoing or ended after
        the start. D may be a partial date: the comparisons are then three-valued.

        `during N units before D`: the entry's period overlaps the window. For a
        code entry, from its date to its end: dated by the window's end, and
        dated in the window, or ongoing (see `ongoing`), or ended on or after its
        start. A medication is as with `within`, a measurement (one day) too."""
        self.duration(window.duration)
        anchor = self.reference_date() if window.anchor is None else self.value(window.anchor)
        amount, unit = window.duration.amount, window.duration.unit
        if window.direction == "before":
            low, high = self.shift(anchor, -amount, unit), anchor
        else:
            low, high = anchor, self.shift(anchor, amount, unit)

        def field(name: str) -> _Range:
            return _Range.of(self.make(ir.Entry, DATE, field=name))

        if entry == EntryKind.CODE and window.overlap:
            date = field("date")
            present = self.make(
                ir.Or,
                BOOLEAN,
                operands=(
                    self.compare("<=", low, date),
                    self.ongoing(),
                    self.compare("<=", low, field("end")),
                ),
            )
            return [self.compare("<=", date, high), present]
        if entry != EntryKind.MEDICATION:
            date = field("date")
            return [self.compare("<=", low, date), self.compare("<=", date, high)]
        started = self.compare("<=", field("start"), high)
        ongoing = self.make(ir.Entry, BOOLEAN, field="ongoing")
        not_ended = self.make(
            ir.Or, BOOLEAN, operands=(ongoing, self.compare("<=", low, field("end")))
        )
        return [started, not_ended]

    def lower_bound(self, node: s.Compare, compared: ir.Node) -> ir.Node:
        """A count of an incomplete history is a lower bound: only what it bounds is known.

        The history may hold more entries than the record shows, so with the
        count c on record and the true count n >= c: `n >= k` is true when
        c >= k, else unknown; `n < k` and `n = k` are false when c is past k,
        else unknown; `n != k` is true when c > k, else unknown. Two such counts
        compared bound nothing: unknown.
        """
        on_left, on_right = self.incomplete_count(node.left), self.incomplete_count(node.right)
        if not on_left and not on_right:
            return compared
        unknown = self.make(ir.Const, BOOLEAN, value=None)
        if on_left and on_right:
            return unknown
        assert isinstance(compared, ir.Compare), "a count is one value, never a range"
        count, other = (
            (compared.left, compared.right) if on_left else (compared.right, compared.left)
        )
        op = node.op if on_left else FLIPPED[node.op]
        if op in (">", ">="):
            return self.make(ir.Or, BOOLEAN, operands=(compared, unknown))
        if op == "!=":
            past = self.make(ir.Compare, BOOLEAN, op=">", left=count, right=other)
            return self.make(ir.Or, BOOLEAN, operands=(past, unknown))
        if op == "=":
            within = self.make(ir.Compare, BOOLEAN, op="<=", left=count, right=other)
            return self.make(ir.And, BOOLEAN, operands=(within, unknown))
        return self.make(ir.And, BOOLEAN, operands=(compared, unknown))

    def incomplete_count(self, node: s.Expr) -> bool:
        if not isinstance(node, s.Selector) or node.op != "count":
            return False
        kind = self.checked.element_types.get(node.history.name)
        return kind is not None and not kind.complete

    def in_unit_of(self, node: s.Expr, target: s.Expr) -> _Range:
        """`node`'s value in the unit of `target` (syntax nodes keep their own unit)."""
        value = self.value(node)
        if not self.type_of(node).numeric or not self.type_of(target).numeric:
            return value
        factor = self.checked.factor(node, target)
        if factor == 1:
            return value
        kind = self.type_of(target)
        return value.map(lambda end: self.scale(end, factor, kind))

    def scale(self, value: ir.Node, factor: Fraction, kind: Type) -> ir.Node:
        if isinstance(value, ir.Const):
            assert isinstance(value.value, Fraction)
            return self.const(value.value * factor, kind)
        return self.make(ir.Scale, kind, operand=value, factor=factor)

    def between(self, node: s.Between) -> ir.Node:
        op = "<" if node.exclusive else "<="
        subject = self.value(node.subject)
        low = self.in_unit_of(node.low, node.subject)
        high = self.in_unit_of(node.high, node.subject)
        above = self.compare(op, low, subject)
        below = self.compare(op, subject, high)
        return self.make(ir.And, BOOLEAN, operands=(above, below))

    def relative_change(self, node: s.RelativeChange, kind: Type) -> _Range:
        baseline = self.value(node.baseline)
        current = self.in_unit_of(node.current, node.baseline)
        low, high = (current, baseline) if node.direction == "decline" else (baseline, current)
        difference = self.arith("-", high, low, baseline.low.type)
        hundred = _Range.of(self.const(Fraction(100), kind))
        scaled = self.arith("*", difference, hundred, kind)
        return self.arith("/", scaled, baseline, kind)

    # ---- ranges: numbers and dates from partial dates --------------------------------

    def date_element(self, name: str) -> _Range:
        """A date element as the first and the last day it may be."""
        if name not in self.dates:
            kind = self.checked.element_types[name]
            earliest = self.make(ir.Element, kind, name=name, bound="earliest")
            latest = self.make(ir.Element, kind, name=name, bound="latest")
            self.dates[name] = _Range((earliest, latest))
        return self.dates[name]

    def duration(self, node: s.CalendarDuration) -> None:
        """A duration is no value of its own; explanations read its amount."""
        self.origin[id(node)] = self.const(Fraction(node.amount), self.type_of(node))

    def reference_date(self) -> _Range:
        assert self.reference_name is not None, "the checker requires 'as of'"
        return self.date_element(self.reference_name)

    def compare(self, op: str, left: _Range, right: _Range) -> ir.Node:
        """`left op right`, true when it holds for every value of both ranges, false when
        for none, else unknown."""
        if left.exact and right.exact:
            return self.make(ir.Compare, BOOLEAN, op=op, left=left.low, right=right.low)
        if op == "!=":
            return self.make(ir.Not, BOOLEAN, operand=self.compare("=", left, right))
        if op in (">", ">="):
            return self.compare("<" if op == ">" else "<=", right, left)
        if op == "=":
            sure = self.all_(
                self.every("<=", left.highs, right.lows), self.every("<=", right.highs, left.lows)
            )
            possible = self.all_(
                self.some("<=", left.lows, right.highs), self.some("<=", right.lows, left.highs)
            )
        else:
            sure = self.every(op, left.highs, right.lows)
            possible = self.some(op, left.lows, right.highs)
        unknown = self.const(None, BOOLEAN)
        maybe = self.make(ir.And, BOOLEAN, operands=(possible, unknown))
        return self.make(ir.Or, BOOLEAN, operands=(sure, maybe))

    def every(self, op: str, lefts: tuple[ir.Node, ...], rights: tuple[ir.Node, ...]) -> ir.Node:
        tests = tuple(
            self.make(ir.Compare, BOOLEAN, op=op, left=a, right=b) for a in lefts for b in rights
        )
        return tests[0] if len(tests) == 1 else self.make(ir.And, BOOLEAN, operands=tests)

    def some(self, op: str, lefts: tuple[ir.Node, ...], rights: tuple[ir.Node, ...]) -> ir.Node:
        tests = tuple(
            self.make(ir.Compare, BOOLEAN, op=op, left=a, right=b) for a in lefts for b in rights
        )
        return tests[0] if len(tests) == 1 else self.make(ir.Or, BOOLEAN, operands=tests)

    def all_(self, *operands: ir.Node) -> ir.Node:
        return self.make(ir.And, BOOLEAN, operands=operands)

    def arith(self, op: str, left: _Range, right: _Range, kind: Type) -> _Range:
        """Exact arithmetic on ranges: each end where the operation is monotone, else corners."""

        def node(a: ir.Node, b: ir.Node) -> ir.Node:
            return self.make(ir.Arith, kind, op=op, left=a, right=b)

        if left.exact and right.exact:
            return _Range.of(node(left.low, right.low))
        if op == "+" and left.ordered and right.ordered:
            return _Range((node(left.low, right.low), node(left.high, right.high)))
        if op == "-" and left.ordered and right.ordered:
            return _Range((node(left.low, right.high), node(left.high, right.low)))
        sign = _sign(right.low) if right.exact else None
        if op in "*/" and left.ordered and sign is not None:
            ends = (node(left.low, right.low), node(left.high, right.low))
            return _Range(ends if sign >= 0 else ends[::-1])
        sign = _sign(left.low) if left.exact else None
        if op == "*" and right.ordered and sign is not None:
            ends = (node(left.low, right.low), node(left.low, right.high))
            return _Range(ends if sign >= 0 else ends[::-1])
        corners = tuple(node(a, b) for a in left.corners for b in right.corners)
        return _Range(corners, ordered=False)

    def shift(self, date: _Range, amount: int, unit: str) -> _Range:
        """A date moved by calendar units: monotone, so each end moves."""
        return date.map(
            lambda end: self.make(
                ir.DateShift, DATE, operand=end, amount=amount, unit=CalendarUnit(unit)
            )
        )

    def date_difference(self, node: s.DateDifference) -> _Range:
        start = self.value(node.start)
        end = self.reference_date() if node.end is None else self.value(node.end)
        kind = self.type_of(node)
        unit = CalendarUnit(node.unit)

        def diff(a: ir.Node, b: ir.Node) -> ir.Node:
            return self.make(ir.DateDiff, kind, unit=unit, start=a, end=b)

        if start.exact and end.exact:
            return _Range.of(diff(start.low, end.low))
        # Fewest units from the latest start to the earliest end, most the other way.
        return _Range((diff(start.high, end.low), diff(start.low, end.high)))

    def window(self, node: s.Window) -> ir.Node:
        """`d within N before r` is `r - N <= d and d <= r`; `after`: `r <= d and d <= r + N`."""
        subject = self.value(node.subject)
        self.duration(node.duration)
        anchor = self.reference_date() if node.anchor is None else self.value(node.anchor)
        amount = node.duration.amount
        if node.direction == "before":
            low, high = self.shift(anchor, -amount, node.duration.unit), anchor
        else:
            low, high = anchor, self.shift(anchor, amount, node.duration.unit)
        above = self.compare("<=", low, subject)
        below = self.compare("<=", subject, high)
        return self.make(ir.And, BOOLEAN, operands=(above, below))

    # ---- ordered scales and scores (issue 11) ----

    def ordinal(self, node: s.Compare) -> ir.Node:
        """A comparison on a scale, as membership: `nyha >= iii` is `nyha in (iii, iv)`.

        Two values of one scale: `a < b` is `any x: a = x and b in (the values above x)`,
        decided as soon as it can be (false when b is the lowest value, a unknown or not).
        """
        scale = self.type_of(node.left)
        if scale.kind != "ordinal":
            scale = self.type_of(node.right)
        rank = {value: place for place, value in enumerate(scale.values)}
        test = _ORDER[node.op]
        left, right = self.expr(node.left), self.expr(node.right)
        if isinstance(right, ir.Const) or isinstance(left, ir.Const):
            if isinstance(left, ir.Const):  # `iii <= nyha`: read it from the scale's side
                left, right, test = right, left, _flipped(test)
            assert isinstance(right, ir.Const) and isinstance(right.value, str)
            fixed = rank[right.value]
            wanted = frozenset(v for v in scale.values if test(rank[v], fixed))
            if not wanted:  # `nyha < i`: no value meets it, known or not
                return self.const(False, BOOLEAN)
            return self.make(ir.Member, BOOLEAN, operand=left, values=wanted)
        terms = []
        for value in scale.values:
            above = frozenset(v for v in scale.values if test(rank[value], rank[v]))
            if not above:
                continue
            this = self.make(ir.Member, BOOLEAN, operand=left, values=frozenset({value}))
            other = self.make(ir.Member, BOOLEAN, operand=right, values=above)
            terms.append(self.make(ir.And, BOOLEAN, operands=(this, other)))
        return self.make(ir.Or, BOOLEAN, operands=tuple(terms))

    def score(self, node: s.Compare) -> ir.Node:
        """`score [...] >= t` as a weighted `AtLeast`; `<` is its negation.

        A `highest of` group becomes plain weighted terms: with its distinct
        weights w1 < w2 < ... < wn, term k weighs wk - w(k-1) and is true when
        an item of weight wk or more is, so the terms add up to the highest.
        `>` and `<=` (whole points only, as the checker ensures) are `>= t + 1`
        and `< t + 1`.
        """
        score, other = (
            (node.left, node.right) if isinstance(node.left, s.Score) else (node.right, node.left)
        )
        assert isinstance(score, s.Score)
        op = score_operator(node.op, score is node.left)
        threshold = self.checked.fold(other)
        assert threshold is not None, "the checker makes sure the threshold is known"
        self.expr(other)  # explanations show it
        operands: list[ir.Node] = []
        weights: list[Fraction] = []
        for entry in score.entries:
            if isinstance(entry, s.ScoreItem):
                operands.append(self.expr(entry.condition))
                weights.append(Fraction(entry.points))
                continue
            conditions = [
                (Fraction(item.points), self.expr(item.condition)) for item in entry.items
            ]
            below = Fraction(0)
            for level in sorted({points for points, _ in conditions}):
                reached = tuple(c for points, c in conditions if points >= level)
                term = (
                    reached[0] if len(reached) == 1 else self.make(ir.Or, BOOLEAN, operands=reached)
                )
                operands.append(term)
                weights.append(level - below)
                below = level
        if op in (">", "<="):
            threshold += 1
        count: int | Fraction = threshold.numerator if threshold.denominator == 1 else threshold
        reached_node = self.make(
            ir.AtLeast, BOOLEAN, count=count, operands=tuple(operands), weights=tuple(weights)
        )
        self.origin[id(score)] = reached_node
        if op in ("<", "<="):
            return self.make(ir.Not, BOOLEAN, operand=reached_node)
        return reached_node


@attrs.frozen
class _Range:
    """A number or date that may be any value from the least to the greatest of `corners`.

    `ordered`: `corners` is (least, greatest), or one node for an exact value.
    Only values computed from partial dates are ranges with two or more corners.
    """

    corners: tuple[ir.Node, ...]
    ordered: bool = True

    @classmethod
    def of(cls, node: ir.Node) -> _Range:
        return cls((node,))

    @property
    def exact(self) -> bool:
        return len(self.corners) == 1

    @property
    def low(self) -> ir.Node:
        return self.corners[0]

    @property
    def high(self) -> ir.Node:
        return self.corners[-1]

    @property
    def lows(self) -> tuple[ir.Node, ...]:
        """The corners one of which is the least."""
        return (self.low,) if self.ordered else self.corners

    @property
    def highs(self) -> tuple[ir.Node, ...]:
        return (self.high,) if self.ordered else self.corners

    def map(self, monotone: Callable[[ir.Node], ir.Node]) -> _Range:
        """Each corner through an increasing function."""
        if self.exact:
            return _Range.of(monotone(self.low))
        return _Range(tuple(monotone(corner) for corner in self.corners), self.ordered)


def _sign(node: ir.Node) -> int | None:
    """The sign of a constant number; None when the node is not one."""
    if isinstance(node, ir.Const) and isinstance(node.value, Fraction):
        return (node.value > 0) - (node.value < 0)
    return None


_ORDER: dict[str, Any] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def _flipped(test: Any) -> Any:
    return lambda a, b: test(b, a)


# The Aggregate op of each selector (`no` is `not exists`).
AGGREGATES = {
    "any": "exists",
    "no": "exists",
    "count": "count",
    "latest": "latest",
    "earliest": "earliest",
    "highest": "max",
    "lowest": "min",
    "total": "sum",
}
FLIPPED = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "=": "=", "!=": "!="}


def _coded(system: CodeSystem, written: str) -> str:
    return f"{system.value}:{codes.bare(system, written)}"


def code_list(
    declared: s.CodeList,
    listed: tuple[s.CodeText, ...],
    name: str,
    terminology: Terminology | None = None,
) -> ir.CodeList:
    """Codes as the IR holds them: `system:code`, prefixes without '*'.

    A root's descendants are added when `terminology` (check.Checked's) names the root.
    """
    system = CodeSystem(declared.system.text)
    exact: set[str] = set()
    prefixes: list[str] = []
    for written in listed:
        if written.text.endswith("*"):
            start = codes.bare(system, written.text[:-1].removesuffix("."))
            prefixes.append(f"{system.value}:{start}")
            continue
        code = _coded(system, written.text)
        exact.add(code)
        if written.descendants and terminology is not None and terminology.knows(code):
            exact |= terminology.descendants(code)
    return ir.CodeList(
        name=name,
        system=system,
        codes=frozenset(exact),
        prefixes=tuple(dict.fromkeys(prefixes)),
    )


def chain(node: s.And | s.Or) -> list[s.Expr]:
    """The terms of a chain of one connective, left to right, without recursion."""
    terms: list[s.Expr] = []
    stack: list[s.Expr] = [node]
    while stack:
        term = stack.pop()
        if type(term) is type(node):
            assert isinstance(term, s.And | s.Or)
            stack += [term.right, term.left]
        else:
            terms.append(term)
    return terms


def _texts(names: tuple[s.Name, ...]) -> frozenset[str]:
    return frozenset(name.text for name in names)
