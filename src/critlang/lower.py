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
  value is `not applies or condition`, an exclusion's `applies and condition`.

Chains of `and`/`or` become one n-ary node, so a chain of hundreds of terms
is one node, not hundreds of nested ones.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, TypeVar

import attrs

from critlang import codes, ir
from critlang import syntax as s
from critlang.check import BOOLEAN, DATE, Checked, Type
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
    )
    return Lowered(checked, program, lowering.origin)


class _Lowering:
    def __init__(self, checked: Checked) -> None:
        self.checked = checked
        self.next_id = 0
        self.origin: dict[int, ir.Node] = {}
        self.elements: dict[str, ir.Element] = {}
        self.references: dict[str, ir.Definition] = {}
        self.definitions: dict[str, ir.Node] = {}  # in dependency order
        self.code_lists: dict[str, ir.CodeList] = {}

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
        folded = self.checked.fold(node)
        result = self.const(folded, self.type_of(node)) if folded is not None else self.emit(node)
        self.origin[id(node)] = result
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
            case s.Ref(name=name):
                return self.reference(name, kind)
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
            case s.Compare(op=op, left=left, right=right):
                low = self.expr(left)
                compared = self.make(
                    ir.Compare, BOOLEAN, op=op, left=low, right=self.in_unit_of(right, left)
                )
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
            case s.Arithmetic(op=op, left=left, right=right):
                first = self.expr(left)
                second = self.in_unit_of(right, left) if op in "+-" else self.expr(right)
                return self.make(ir.Arith, kind, op=op, left=first, right=second)
            case s.RelativeChange():
                return self.relative_change(node, kind)
            case s.EntryField(field=field):
                return self.make(ir.Entry, kind, field=field)
            case s.InCodes(subject=subject, codes=name):
                return self.make(
                    ir.InCodes, BOOLEAN, operand=self.expr(subject), codes=self.code_list(name.text)
                )
            case s.Selector():
                return self.selector(node, kind)
            case s.Quantified(quantifier=quantifier, count=count, items=items):
                conjunctive = quantifier == "all"
                operands = tuple(self.item(item, conjunctive) for item in items)
                if quantifier == "at_least":
                    return self.make(ir.AtLeast, BOOLEAN, count=count or 0, operands=operands)
                return self.make(ir.And if conjunctive else ir.Or, BOOLEAN, operands=operands)
        raise AssertionError(f"cannot lower {node!r}")

    def reference(self, name: str, kind: Type) -> ir.Node:
        c = self.checked
        if name == "ongoing" and name not in c.elements and name not in c.definitions:
            return self.make(ir.Entry, BOOLEAN, field="ongoing")
        if name in c.elements:
            if name not in self.elements:
                self.elements[name] = self.make(ir.Element, c.element_types[name], name=name)
            return self.elements[name]
        if name in c.definitions:
            if name not in self.references:
                body = self.expr(c.definitions[name].expr)
                self.definitions[name] = body  # after the definitions it uses
                self.references[name] = self.make(ir.Definition, body.type, name=name)
            return self.references[name]
        if name in c.constants:
            literal = c.constants[name].value
            assert isinstance(literal, s.DateLit), "numeric constants are folded"
            return self.const(literal.value, kind)
        return self.const(name, kind)  # an enum value, as in `sex = female`

    # ---- histories ----

    def code_list(self, name: str) -> ir.CodeList:
        if name not in self.code_lists:
            self.code_lists[name] = code_list(self.checked.code_lists[name])
        return self.code_lists[name]

    def selector(self, node: s.Selector, kind: Type) -> ir.Node:
        """A selector is one `Aggregate`; an incomplete history only bounds what it says.

        `any` over an incomplete history that finds nothing is unknown (the
        entry may be missing from the record), `no` is then unknown too; counts
        are bounded in `lower_bound`.
        """
        history = self.expr(node.history)
        assert isinstance(history, ir.Element)
        conditions = [] if node.where is None else [self.expr(node.where)]
        if node.window is not None:
            conditions += self.window(node.window, history.type.entry)
        where = None
        if len(conditions) == 1:
            where = conditions[0]
        elif conditions:
            where = self.make(ir.And, BOOLEAN, operands=tuple(conditions))
        op = AGGREGATES[node.op]
        of: ir.Node | None = None
        if node.of is not None:
            of = self.expr(node.of)
        elif op not in ("exists", "count"):
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

    def window(self, window: s.Window, entry: str) -> list[ir.Node]:
        """`within N units before D`: dated from D - N units to D; a medication taken then."""
        assert window.end is not None, "the checker requires the window's date"
        end = self.expr(window.end)
        start = self.make(
            ir.DateShift,
            end.type,
            operand=end,
            amount=-window.amount,
            unit=CalendarUnit(window.unit),
        )

        def field(name: str, kind: Type) -> ir.Node:
            return self.make(ir.Entry, kind, field=name)

        def at_most(a: ir.Node, b: ir.Node) -> ir.Node:
            return self.make(ir.Compare, BOOLEAN, op="<=", left=a, right=b)

        if entry != EntryKind.MEDICATION:
            return [at_most(start, field("date", DATE)), at_most(field("date", DATE), end)]
        started = at_most(field("start", DATE), end)
        not_ended = self.make(
            ir.Or,
            BOOLEAN,
            operands=(field("ongoing", BOOLEAN), at_most(start, field("end", DATE))),
        )
        return [started, not_ended]

    def lower_bound(self, node: s.Compare, compared: ir.Compare) -> ir.Node:
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

    def in_unit_of(self, node: s.Expr, target: s.Expr) -> ir.Node:
        """`node`'s value in the unit of `target` (syntax nodes keep their own unit)."""
        value = self.expr(node)
        if not self.type_of(node).numeric or not self.type_of(target).numeric:
            return value
        factor = self.checked.factor(node, target)
        if factor == 1:
            return value
        kind = self.type_of(target)
        if isinstance(value, ir.Const):
            assert isinstance(value.value, Fraction)
            return self.const(value.value * factor, kind)
        return self.make(ir.Scale, kind, operand=value, factor=factor)

    def between(self, node: s.Between) -> ir.Node:
        op = "<" if node.exclusive else "<="
        subject = self.expr(node.subject)
        low = self.in_unit_of(node.low, node.subject)
        high = self.in_unit_of(node.high, node.subject)
        above = self.make(ir.Compare, BOOLEAN, op=op, left=low, right=subject)
        below = self.make(ir.Compare, BOOLEAN, op=op, left=subject, right=high)
        return self.make(ir.And, BOOLEAN, operands=(above, below))

    def relative_change(self, node: s.RelativeChange, kind: Type) -> ir.Node:
        baseline = self.expr(node.baseline)
        current = self.in_unit_of(node.current, node.baseline)
        low, high = (current, baseline) if node.direction == "decline" else (baseline, current)
        difference = self.make(ir.Arith, baseline.type, op="-", left=high, right=low)
        hundred = self.const(Fraction(100), kind)
        scaled = self.make(ir.Arith, kind, op="*", left=difference, right=hundred)
        return self.make(ir.Arith, kind, op="/", left=scaled, right=baseline)


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


def code_list(declared: s.CodeList) -> ir.CodeList:
    """A checked code list as the IR holds it: `system:code`, prefixes without '*'."""
    system = CodeSystem(declared.system.text)
    exact: set[str] = set()
    prefixes: list[str] = []
    for written in declared.codes:
        if written.text.endswith("*"):
            start = codes.bare(system, written.text[:-1].removesuffix("."))
            prefixes.append(f"{system.value}:{start}")
        else:
            exact.add(f"{system.value}:{codes.bare(system, written.text)}")
    return ir.CodeList(
        name=declared.name.text,
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
