"""Checked AST to an executable evaluator: generated Python, three-valued.

The code generated here is the one semantics of critlang; the explanations,
the SQL generator and the tests' reference interpreter must agree with it.

Values: True / False / None (unknown) for conditions; `Decimal` for numbers,
held in the unit the checker inferred for the node; `str` for enum values,
`frozenset` for sets, `datetime.date` for dates. Every unit conversion factor
is computed here, once; the generated code only multiplies by a constant.

Only the checked AST reaches the generator: names become Python identifiers
from a fixed alphabet (`[a-z_][a-z0-9_]*` in the grammar), every literal is
passed to the generated code as a constant in its namespace, and no text an
author wrote is ever spliced in as code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

import attrs

from critlang import syntax as s
from critlang.check import Checked, Type

ELIGIBLE, INELIGIBLE, UNDETERMINED = "eligible", "ineligible", "undetermined"

COMPARE_OPS = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "=": "==", "!=": "!="}


def to_decimal(value: Fraction) -> Decimal:
    """A fraction as the nearest 28-digit decimal (exact whenever it terminates)."""
    return Decimal(value.numerator) / Decimal(value.denominator)


@attrs.frozen
class Compiled:
    """An executable protocol: the status function and the tracing function.

    `status(env)` returns the overall status, short-circuiting `and`/`or` and
    stopping at the first criterion that decides ineligibility. `trace(env)`
    evaluates every node, with the same values, and returns them all, indexed
    by `node_index`.
    """

    checked: Checked
    status: Callable[[dict[str, Any]], str]
    trace: Callable[[dict[str, Any]], list[Any]]
    node_index: dict[object, int]
    source: str


def compile_protocol(checked: Checked) -> Compiled:
    """Generate and compile the evaluator for a checked protocol."""
    generator = _Generator(checked)
    source = generator.module()
    namespace: dict[str, Any] = dict(generator.constants)
    code = compile(source, f"<critlang {checked.protocol.name.text}>", "exec")
    exec(code, namespace)  # generated from the checked AST only; see the module docstring
    return Compiled(
        checked=checked,
        status=namespace["status"],
        trace=namespace["trace"],
        node_index=generator.index,
        source=source,
    )


class _Generator:
    def __init__(self, checked: Checked) -> None:
        self.checked = checked
        self.constants: dict[str, Any] = {}
        self.index: dict[object, int] = {}
        self.counter = 0
        self.tracing = False
        self.emitted: set[str] = set()

    # ---- module ----

    def module(self) -> str:
        self.index_nodes()
        lines: list[str] = []
        for tracing in (False, True):
            self.tracing = tracing
            self.emitted = set()
            lines += self.function()
        return "\n".join(lines) + "\n"

    def index_nodes(self) -> None:
        """Number every node whose value an explanation may need."""
        protocol = self.checked.protocol
        roots: list[object] = [d.expr for d in protocol.definitions]
        for criterion in protocol.criteria:
            roots.append(criterion)
            if criterion.applies_when is not None:
                roots.append(criterion.applies_when)
            roots.append(criterion.condition)
        for root in roots:
            for node in s.walk(root):
                self.index.setdefault(node, len(self.index))

    def function(self) -> list[str]:
        name = "trace" if self.tracing else "status"
        body: list[str] = ["get = env.get"]
        if self.tracing:
            body.append(f"trace = [None] * {len(self.index)}")
        inclusions: list[str] = []
        exclusions: list[str] = []
        for criterion in self.checked.protocol.criteria:
            body += self.prelude(criterion)
            value = self.record(criterion, self.criterion(criterion, body), body)
            (inclusions if criterion.kind == "inclusion" else exclusions).append(value)
            decisive = "False" if criterion.kind == "inclusion" else "True"
            if not self.tracing:
                body.append(f"if {value} is {decisive}: return {INELIGIBLE!r}")
        if self.tracing:
            body.append("return trace")
        else:
            settled = [f"{v} is True" for v in inclusions] + [f"{v} is False" for v in exclusions]
            body.append(f"if {' and '.join(settled) or 'True'}: return {ELIGIBLE!r}")
            body.append(f"return {UNDETERMINED!r}")
        return [f"def {name}(env):", *("    " + line for line in body), ""]

    # ---- values needed before a criterion: data elements and definitions ----

    def prelude(self, root: object) -> list[str]:
        lines: list[str] = []
        for name in self.references(root):
            if name in self.emitted:
                continue
            self.emitted.add(name)
            if name in self.checked.definitions:
                definition = self.checked.definitions[name]
                lines += self.prelude(definition.expr)
                value = self.expr(definition.expr, lines)
                lines.append(f"d_{name} = {value}")
            elif name in self.checked.elements:
                lines.append(f"v_{name} = get({name!r})")
        return lines

    def references(self, root: object) -> Iterator[str]:
        for node in s.walk(root):
            if isinstance(node, s.Ref) and self.is_symbol(node.name):
                yield node.name
        if isinstance(root, s.Criterion):
            for part in (root.applies_when, root.condition):
                if part is not None:
                    yield from self.references(part)

    def is_symbol(self, name: str) -> bool:
        c = self.checked
        return name in c.elements or name in c.constants or name in c.definitions

    # ---- criteria and sub-criteria ----

    def criterion(self, criterion: s.Criterion, out: list[str]) -> str:
        neutral = "True" if criterion.kind == "inclusion" else "False"
        condition = self.expr(criterion.condition, out, neutral)
        if criterion.applies_when is None:
            return condition
        applies = self.expr(criterion.applies_when, out)
        return self.applicable(applies, condition, neutral, out)

    def applicable(self, applies: str, value: str, neutral: str, out: list[str]) -> str:
        """Kleene `not applies or value` for inclusions, `applies and value` for exclusions."""
        result = self.temp()
        out.append(
            f"{result} = {neutral} if {applies} is False or {value} is {neutral} "
            f"else (None if {applies} is None or {value} is None else {value})"
        )
        return result

    # ---- expressions ----

    def temp(self) -> str:
        self.counter += 1
        return f"t{self.counter}"

    def const(self, value: Any) -> str:
        name = f"k{len(self.constants)}"
        self.constants[name] = value
        return name

    def record(self, node: object, value: str, out: list[str]) -> str:
        if self.tracing and node in self.index:
            out.append(f"trace[{self.index[node]}] = {value}")
        return value

    def type_of(self, node: object) -> Type:
        return self.checked.types[node]

    def expr(self, node: s.Expr, out: list[str], neutral: str = "True") -> str:
        """Emit statements computing `node` into `out`; return the name holding its value."""
        folded = self.checked.fold(node)
        if folded is not None:
            return self.record(node, self.const(to_decimal(folded)), out)
        value = self.emit(node, out, neutral)
        return self.record(node, value, out)

    def emit(self, node: s.Expr, out: list[str], neutral: str) -> str:
        match node:
            case s.BoolLit(value=truth):
                return repr(truth)
            case s.DateLit(value=day):
                return self.const(day)
            case s.Ref(name=name):
                return self.reference(node, name)
            case s.Not(operand=operand):
                # `neutral` (the criterion's kind) reaches sub-criteria however deeply
                # they are nested: under `not` and `unless` as under `and`/`or`.
                negated = self.expr(operand, out, neutral)
                result = self.temp()
                out.append(f"{result} = None if {negated} is None else not {negated}")
                return result
            case s.And(left=a, right=b):
                return self.junction([a, b], "and", out, neutral)
            case s.Or(left=a, right=b):
                return self.junction([a, b], "or", out, neutral)
            case s.Unless(rule=rule, exception=exception):
                return self.unless(rule, exception, out, neutral)
            case s.Compare():
                return self.compare(node, out, neutral)
            case s.Between():
                return self.between(node, out)
            case s.Member(subject=subject, values=values):
                held = self.expr(subject, out)
                allowed = self.const(frozenset(v.text for v in values))
                return self.guarded([held], f"{held} in {allowed}", out)
            case s.Includes(subject=subject, quantifier=quantifier, values=values):
                held = self.expr(subject, out)
                wanted = self.const(frozenset(v.text for v in values))
                test = (
                    f"not {held}.isdisjoint({wanted})"
                    if quantifier == "any"
                    else f"{wanted} <= {held}"
                )
                return self.guarded([held], test, out)
            case s.Arithmetic():
                return self.arithmetic(node, out)
            case s.RelativeChange():
                return self.relative_change(node, out)
            case s.Quantified(quantifier="at_least", count=count, items=items):
                return self.at_least(count or 0, items, out, neutral)
            case s.Quantified(quantifier=quantifier, items=items):
                return self.junction(
                    list(items), "and" if quantifier == "all" else "or", out, neutral
                )
        raise AssertionError(f"cannot compile {node!r}")

    def reference(self, node: s.Ref, name: str) -> str:
        c = self.checked
        if name in c.elements:
            return f"v_{name}"
        if name in c.definitions:
            return f"d_{name}"
        if name in c.constants:
            literal = c.constants[name].value
            if isinstance(literal, s.DateLit):
                return self.const(literal.value)
            raise AssertionError("numeric constants are folded")
        return self.const(name)  # an enum value, as in `sex = female`

    def item(self, item: s.Expr | s.SubCriterion, out: list[str], neutral: str) -> str:
        if not isinstance(item, s.SubCriterion):
            return self.expr(item, out, neutral)
        condition = self.expr(item.condition, out, neutral)
        if item.applies_when is None:
            return self.record(item, condition, out)
        applies = self.expr(item.applies_when, out)
        return self.record(item, self.applicable(applies, condition, neutral, out), out)

    def junction(self, items: list[Any], word: str, out: list[str], neutral: str) -> str:
        """Kleene and/or over items, short-circuiting on the deciding value."""
        decisive = "False" if word == "and" else "True"
        other = "True" if word == "and" else "False"
        result, unknown = self.temp(), self.temp()
        out += [f"{result} = {other}", f"{unknown} = False"]

        def emit_from(position: int, block: list[str]) -> None:
            value = self.item(items[position], block, neutral)
            block.append(f"if {value} is {decisive}: {result} = {decisive}")
            if position == len(items) - 1:
                block.append(f"elif {value} is None: {unknown} = True")
                return
            inner = [f"if {value} is None: {unknown} = True"]
            emit_from(position + 1, inner)
            block += ["else:", *_indent(inner)]

        if self.tracing:
            # Explanations need the value of every alternative, so no short cut here.
            for item in items:
                value = self.item(item, out, neutral)
                out.append(f"if {value} is {decisive}: {result} = {decisive}")
                out.append(f"elif {value} is None: {unknown} = True")
        else:
            emit_from(0, out)
        out.append(f"if {unknown} and {result} is {other}: {result} = None")
        return result

    def unless(self, rule: s.Expr, exception: s.Expr, out: list[str], neutral: str) -> str:
        value = self.expr(rule, out, neutral)
        result = self.temp()
        inner: list[str] = []
        other = self.expr(exception, inner, neutral)
        inner.append(
            f"{result} = False if {value} is False or {other} is True else "
            f"(None if {value} is None or {other} is None else True)"
        )
        if self.tracing:
            out += inner
        else:
            out += [f"if {value} is False: {result} = False", "else:", *_indent(inner)]
        return result

    def at_least(
        self, count: int, items: tuple[s.Expr | s.SubCriterion, ...], out: list[str], neutral: str
    ) -> str:
        values = [self.item(item, out, neutral) for item in items]
        met, unknown, result = self.temp(), self.temp(), self.temp()
        out.append(f"{met} = [{', '.join(values)}].count(True)")
        out.append(f"{unknown} = [{', '.join(values)}].count(None)")
        out.append(
            f"{result} = True if {met} >= {count} else "
            f"(False if {met} + {unknown} < {count} else None)"
        )
        return result

    def guarded(self, values: list[str], test: str, out: list[str], zero: str = "") -> str:
        """`test`, or None when any of `values` is unknown or the divisor `zero` is 0."""
        result = self.temp()
        checks = [f"{v} is None" for v in values if v not in self.constants]
        unknown = " or ".join([*checks, *([f"{zero} == 0"] if zero else [])]) or "False"
        out.append(f"{result} = None if {unknown} else ({test})")
        return result

    # ---- numbers and units ----

    def in_unit_of(
        self, node: s.Expr, target: s.Expr, out: list[str], neutral: str = "True"
    ) -> str:
        """The value of `node` expressed in the unit of `target`."""
        folded = self.checked.fold(node)
        if folded is not None:
            # Traced in its own unit, like every other node; used in the target's.
            self.record(node, self.const(to_decimal(folded)), out)
            return self.const(to_decimal(folded * self.checked.factor(node, target)))
        value = self.expr(node, out, neutral)
        if not self.type_of(node).numeric or not self.type_of(target).numeric:
            return value
        factor = self.checked.factor(node, target)
        if factor == 1:
            return value
        scaled = self.temp()
        numerator, denominator = (
            self.const(Decimal(factor.numerator)),
            self.const(Decimal(factor.denominator)),
        )
        out.append(f"{scaled} = None if {value} is None else {value} * {numerator} / {denominator}")
        return scaled

    def compare(self, node: s.Compare, out: list[str], neutral: str) -> str:
        # Booleans compare with `=`/`!=`, so sub-criteria may sit under a comparison too.
        left = self.expr(node.left, out, neutral)
        right = self.in_unit_of(node.right, node.left, out, neutral)
        return self.guarded([left, right], f"{left} {COMPARE_OPS[node.op]} {right}", out)

    def between(self, node: s.Between, out: list[str]) -> str:
        subject = self.expr(node.subject, out)
        low = self.in_unit_of(node.low, node.subject, out)
        high = self.in_unit_of(node.high, node.subject, out)
        op = "<" if node.exclusive else "<="
        return self.guarded([subject, low, high], f"{low} {op} {subject} {op} {high}", out)

    def arithmetic(self, node: s.Arithmetic, out: list[str]) -> str:
        left = self.expr(node.left, out)
        if node.op in "+-":
            right = self.in_unit_of(node.right, node.left, out)
            return self.guarded([left, right], f"{left} {node.op} {right}", out)
        right = self.expr(node.right, out)
        if node.op == "*":
            return self.guarded([left, right], f"{left} * {right}", out)
        return self.guarded([left, right], f"{left} / {right}", out, zero=right)

    def relative_change(self, node: s.RelativeChange, out: list[str]) -> str:
        baseline = self.expr(node.baseline, out)
        current = self.in_unit_of(node.current, node.baseline, out)
        hundred = self.const(Decimal(100))
        difference = (
            f"({baseline} - {current})"
            if node.direction == "decline"
            else f"({current} - {baseline})"
        )
        test = f"{difference} * {hundred} / {baseline}"
        return self.guarded([baseline, current], test, out, zero=baseline)


def _indent(lines: list[str]) -> list[str]:
    return ["    " + line for line in lines]
