"""Protocol analysis with z3: who can be eligible, which criteria ever decide, and
where alternatives overlap or leave gaps.

The checked protocol is translated into z3 formulas that follow the compiled
evaluator exactly: conditions are three-valued (a pair of formulas, "is true"
and "is false"; neither means unknown), numbers are exact rationals in the unit
the checker inferred for each node (conversion factors from `units.factor`),
data elements stay within their plausible ranges, enum values are finite
choices, sets are one boolean per value, and `applies when` gives sub-criteria
the neutral value of their criterion's kind.

Scope: the questions are asked over records in which every data element has
a value, which is what matters for whether a criterion can fire. Values the
evaluator leaves unknown even then (a decline from a baseline of 0, a
division by 0) are modelled as it computes them.

Every finding comes with a witness: a patient record in the integrator format
(quantities as numbers in their declared units) together with what z3 says
the evaluator will make of it. Each witness is run through the compiled
evaluator before it is reported, and the report says whether it agreed.
"""

from __future__ import annotations

import datetime
import decimal
import itertools
import json
from collections.abc import Iterable, Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

import attrs
import z3

from critlang import syntax as s
from critlang.diagnostics import Diagnostic, render
from critlang.engines.python import ARITHMETIC, to_decimal
from critlang.evaluate import Protocol, Result
from critlang.explain import format_quantity
from critlang.fmt import NO_SPAN, example_text, expression_text, literal, without_spans
from critlang.records import parse_json
from critlang.vocab import Outcome

Z3 = Any  # z3 has no type stubs
TIMEOUT_MS = 20_000
FIRST_DAY = datetime.date(1900, 1, 1).toordinal()
LAST_DAY = datetime.date(2100, 12, 31).toordinal()
ROUNDING_DIGITS = (0, 1, 2, 3, 4, 6)


# ---- values as formulas ----------------------------------------------------------


@attrs.frozen
class Tri:
    """A three-valued condition: `true` and `false` never both hold; neither is unknown."""

    true: Z3
    false: Z3

    def flipped(self) -> Tri:
        return Tri(self.false, self.true)


@attrs.frozen
class Num:
    """A number (rational), enum choice or date (integer) and when it is known."""

    value: Z3
    known: Z3


@attrs.frozen(eq=False)
class Bits:
    """A set: one boolean per declared value."""

    members: dict[str, Z3]
    known: Z3


Value = Tri | Num | Bits
TRUE = z3.BoolVal(True)


def _real(value: Fraction | Decimal) -> Z3:
    exact = Fraction(value)
    return z3.Q(exact.numerator, exact.denominator)


def _known(value: Tri) -> Z3:
    return z3.Or(value.true, value.false)


class _Variables:
    """One z3 variable (or set of booleans) per data element, with its domain."""

    def __init__(self, protocol: Protocol) -> None:
        checked = protocol.checked
        self.values: dict[str, Value] = {}
        self.raw: dict[str, Z3] = {}
        self.domain: list[Z3] = []
        self.inside: list[Z3] = []
        self.ranges: dict[str, tuple[Decimal, Decimal]] = {}
        for name, element in checked.elements.items():
            kind = checked.element_types[name]
            if kind.kind == "boolean":
                var = z3.Bool(name)
                self.values[name] = Tri(var, z3.Not(var))
            elif kind.kind in ("number", "quantity"):
                var = z3.Real(name)
                self.values[name] = Num(var, TRUE)
                if element.plausible_range is not None:
                    low, high = element.plausible_range
                    self.ranges[name] = (low, high)
                    self.domain += [var >= _real(low), var <= _real(high)]
                    self.inside += [var > _real(low), var < _real(high)]
            elif kind.kind in ("enum", "date"):
                var = z3.Int(name)
                self.values[name] = Num(var, TRUE)
                low_, high_ = (
                    (0, len(kind.values) - 1) if kind.kind == "enum" else (FIRST_DAY, LAST_DAY)
                )
                self.domain += [var >= low_, var <= high_]
            else:
                members = {value: z3.Bool(f"{name}.{value}") for value in kind.values}
                self.values[name] = Bits(members, TRUE)
                var = None
            if var is not None:
                self.raw[name] = var
        self.kinds = {name: checked.element_types[name] for name in checked.elements}

    def reals(self) -> Iterator[tuple[str, Z3]]:
        for name, var in self.raw.items():
            if self.kinds[name].kind in ("number", "quantity"):
                yield name, var

    def record(self, model: Z3) -> dict[str, Any]:
        """The patient a model describes, in the integrator format."""
        record: dict[str, Any] = {}
        for name, kind in self.kinds.items():
            value = self.values[name]
            if isinstance(value, Bits):
                record[name] = [v for v, bit in value.members.items() if _is_true(model, bit)]
                continue
            evaluated = model.eval(self.raw[name], model_completion=True)
            if kind.kind == "boolean":
                record[name] = z3.is_true(evaluated)
            elif kind.kind == "enum":
                record[name] = kind.values[evaluated.as_long()]
            elif kind.kind == "date":
                record[name] = datetime.date.fromordinal(evaluated.as_long()).isoformat()
            else:
                record[name] = to_decimal(_fraction(evaluated))
        return record


def _is_true(model: Z3, formula: Z3) -> bool:
    return bool(z3.is_true(model.eval(formula, model_completion=True)))


def _fraction(value: Z3) -> Fraction:
    if z3.is_rational_value(value):
        return Fraction(value.numerator_as_long(), value.denominator_as_long())
    # An algebraic number (from a product of two unknowns): close enough to round.
    return Fraction(value.approx(20).as_decimal(20).rstrip("?"))


class _Encoder:
    """The checked protocol as z3 formulas, following compile.py node by node.

    `flip` names a node whose value is negated, to ask whether it decides its
    criterion. Encodings are cached per node; `seen` keeps each node's value in
    the context where the evaluator computes it (for the witnesses' claims).
    """

    def __init__(self, protocol: Protocol, variables: _Variables, flip: object = None) -> None:
        self.checked = protocol.checked
        self.variables = variables
        self.flip = flip
        self.cache: dict[tuple[int, bool], Value] = {}
        self.seen: dict[int, Value] = {}

    # ---- criteria ----

    def criterion(self, criterion: s.Criterion) -> Tri:
        neutral = criterion.kind == "inclusion"
        condition = self.condition(criterion.condition, neutral)
        if criterion.applies_when is None:
            return condition
        return _applicable(self.condition(criterion.applies_when), condition, neutral)

    def passes(self, criterion: s.Criterion) -> Z3:
        value = self.criterion(criterion)
        return value.true if criterion.kind == "inclusion" else value.false

    # ---- expressions ----

    def condition(self, node: s.Expr | s.SubCriterion, neutral: bool = True) -> Tri:
        value = (
            self.item(node, neutral)
            if isinstance(node, s.SubCriterion)
            else self.expr(node, neutral)
        )
        assert isinstance(value, Tri)
        return value

    def number(self, node: s.Expr) -> Num:
        value = self.expr(node)
        assert isinstance(value, Num)
        return value

    def expr(self, node: s.Expr, neutral: bool = True) -> Value:
        key = (id(node), neutral)
        if key not in self.cache:
            folded = self.checked.fold(node)
            value = (
                Num(_real(to_decimal(folded)), TRUE)
                if folded is not None
                else self.emit(node, neutral)
            )
            self.seen.setdefault(id(node), value)
            if node is self.flip and isinstance(value, Tri):
                value = value.flipped()
            self.cache[key] = value
        return self.cache[key]

    def emit(self, node: s.Expr, neutral: bool) -> Value:
        match node:
            case s.BoolLit(value=truth):
                return Tri(z3.BoolVal(truth), z3.BoolVal(not truth))
            case s.DateLit(value=day):
                return Num(z3.IntVal(day.toordinal()), TRUE)
            case s.Ref(name=name):
                return self.reference(node, name)
            case s.Not(operand=operand):
                return self.condition(operand).flipped()
            case s.And(left=a, right=b):
                return _junction([self.condition(a, neutral), self.condition(b, neutral)], "and")
            case s.Or(left=a, right=b):
                return _junction([self.condition(a, neutral), self.condition(b, neutral)], "or")
            case s.Unless(rule=rule, exception=exception):
                r, e = self.condition(rule), self.condition(exception)
                return Tri(z3.And(r.true, e.false), z3.Or(r.false, e.true))
            case s.Compare():
                return self.compare(node)
            case s.Between():
                return self.between(node)
            case s.Member(subject=subject, values=names):
                x = self.number(subject)
                choices = self.checked.types[subject].values
                return _guarded([x.known], z3.Or([x.value == choices.index(n.text) for n in names]))
            case s.Includes(subject=subject, quantifier=quantifier, values=names):
                bits = self.expr(subject)
                assert isinstance(bits, Bits)
                wanted = [bits.members[n.text] for n in names]
                return _guarded(
                    [bits.known], z3.Or(wanted) if quantifier == "any" else z3.And(wanted)
                )
            case s.Arithmetic():
                return self.arithmetic(node)
            case s.RelativeChange():
                return self.relative_change(node)
            case s.Quantified(quantifier="at_least", count=count, items=items):
                return self.at_least(count or 0, items, neutral)
            case s.Quantified(quantifier=quantifier, items=items):
                word = "and" if quantifier == "all" else "or"
                return _junction([self.condition(i, neutral) for i in items], word)
        raise AssertionError(f"cannot encode {node!r}")

    def item(self, item: s.SubCriterion, neutral: bool) -> Tri:
        key = (id(item), neutral)
        if key not in self.cache:
            condition = self.condition(item.condition, neutral)
            value = condition
            if item.applies_when is not None:
                value = _applicable(self.condition(item.applies_when), condition, neutral)
            self.seen.setdefault(id(item), value)
            self.cache[key] = value.flipped() if item is self.flip else value
        cached = self.cache[key]
        assert isinstance(cached, Tri)
        return cached

    def reference(self, node: s.Ref, name: str) -> Value:
        c = self.checked
        if name in c.elements:
            return self.variables.values[name]
        if name in c.definitions:
            return self.expr(c.definitions[name].expr)
        if name in c.constants:
            literal = c.constants[name].value
            assert isinstance(literal, s.DateLit), "numeric constants are folded"
            return Num(z3.IntVal(literal.value.toordinal()), TRUE)
        # An enum value, as in `sex = female`: its position among the declared values.
        return Num(z3.IntVal(c.types[node].values.index(name)), TRUE)

    def between(self, node: s.Between) -> Tri:
        x = self.number(node.subject)
        low = self.number_in_unit_of(node.low, node.subject)
        high = self.number_in_unit_of(node.high, node.subject)
        if node.exclusive:
            inside = z3.And(low.value < x.value, x.value < high.value)
        else:
            inside = z3.And(low.value <= x.value, x.value <= high.value)
        return _guarded([x.known, low.known, high.known], inside)

    def relative_change(self, node: s.RelativeChange) -> Num:
        base = self.number(node.baseline)
        now = self.number_in_unit_of(node.current, node.baseline)
        if node.direction == "decline":
            difference = base.value - now.value
        else:
            difference = now.value - base.value
        return Num(difference * 100 / base.value, z3.And(base.known, now.known, base.value != 0))

    def at_least(
        self, count: int, items: tuple[s.Expr | s.SubCriterion, ...], neutral: bool
    ) -> Tri:
        values = [self.condition(i, neutral) for i in items]
        met = z3.Sum([z3.If(v.true, 1, 0) for v in values])
        unknown = z3.Sum([z3.If(z3.Not(_known(v)), 1, 0) for v in values])
        return Tri(met >= count, met + unknown < count)

    def compare(self, node: s.Compare) -> Tri:
        left = self.expr(node.left)
        right = self.in_unit_of(node.right, node.left)
        if isinstance(left, Tri) and isinstance(right, Tri):
            same = left.true == right.true
            return _guarded([_known(left), _known(right)], same if node.op == "=" else z3.Not(same))
        assert isinstance(left, Num) and isinstance(right, Num)
        a, b = left.value, right.value
        test = {
            "<": a < b,
            "<=": a <= b,
            ">": a > b,
            ">=": a >= b,
            "=": a == b,
            "!=": a != b,
        }[node.op]
        return _guarded([left.known, right.known], test)

    def arithmetic(self, node: s.Arithmetic) -> Num:
        left = self.number(node.left)
        if node.op in "+-":
            right = self.number_in_unit_of(node.right, node.left)
            value = left.value + right.value if node.op == "+" else left.value - right.value
            return Num(value, z3.And(left.known, right.known))
        right = self.number(node.right)
        if node.op == "*":
            return Num(left.value * right.value, z3.And(left.known, right.known))
        return Num(left.value / right.value, z3.And(left.known, right.known, right.value != 0))

    # ---- numbers and units, as compile.py ----

    def number_in_unit_of(self, node: s.Expr, target: s.Expr) -> Num:
        value = self.in_unit_of(node, target)
        assert isinstance(value, Num)
        return value

    def in_unit_of(self, node: s.Expr, target: s.Expr) -> Value:
        folded = self.checked.fold(node)
        if folded is not None:
            return Num(_real(to_decimal(folded * self.checked.factor(node, target))), TRUE)
        value = self.expr(node)
        types = self.checked.types
        if not (types[node].numeric and types[target].numeric):
            return value
        assert isinstance(value, Num)
        factor = self.checked.factor(node, target)
        return value if factor == 1 else Num(value.value * _real(factor), value.known)


def _guarded(known: list[Z3], test: Z3) -> Tri:
    ready = z3.And(known)
    return Tri(z3.And(ready, test), z3.And(ready, z3.Not(test)))


def _junction(values: list[Tri], word: str) -> Tri:
    trues, falses = [v.true for v in values], [v.false for v in values]
    if word == "and":
        return Tri(z3.And(trues), z3.Or(falses))
    return Tri(z3.Or(trues), z3.And(falses))


def _applicable(applies: Tri, value: Tri, neutral: bool) -> Tri:
    """compile.py's `applicable`: the neutral value when it does not apply."""
    if neutral:
        return Tri(z3.Or(applies.false, value.true), z3.And(applies.true, value.false))
    return Tri(z3.And(applies.true, value.true), z3.Or(applies.false, value.false))


# ---- witnesses ---------------------------------------------------------------------


@attrs.frozen
class Observation:
    """Something z3 predicts about a witness, for the evaluator to confirm.

    `kind` is "status", "criterion" (target: its id) or "node" (target: a node
    of the checked tree, read from the evaluator's trace).
    """

    label: str
    kind: str
    target: object
    formula: Tri | None = None


@attrs.frozen
class Claim:
    label: str
    predicted: str
    actual: str

    @property
    def holds(self) -> bool:
        return self.predicted == self.actual


@attrs.frozen
class Witness:
    """A patient record, and z3's predictions with what the evaluator said."""

    record: dict[str, Any]
    claims: tuple[Claim, ...]

    @property
    def confirmed(self) -> bool:
        return all(c.holds for c in self.claims)

    def json(self) -> str:
        return json.dumps(self.record, default=_json_number)

    def describe(self) -> str:
        told = ", ".join(f"{c.label} {c.actual}" for c in self.claims)
        if self.confirmed:
            return f"the compiled evaluator confirms: {told}"
        wrong = "; ".join(
            f"{c.label}: z3 {c.predicted}, evaluator {c.actual}" for c in self.claims if not c.holds
        )
        return f"NOT confirmed by the compiled evaluator ({wrong})"


def _json_number(value: object) -> object:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"cannot write {value!r} as JSON")


def _word(value: object) -> str:
    """A value as the claims show it: a status, or true / false / unknown."""
    if isinstance(value, str):
        return value
    if value is None:
        return "unknown"
    return "true" if value is True else "false" if value is False else repr(value)


@attrs.frozen
class Finding:
    diagnostic: Diagnostic
    witness: Witness | None


@attrs.frozen
class Report:
    """What `analyze` found: an eligible patient (or none), findings, open questions."""

    eligible: Witness | None
    findings: tuple[Finding, ...]
    inconclusive: tuple[str, ...]

    @property
    def confirmed(self) -> bool:
        witnesses = [self.eligible, *(f.witness for f in self.findings)]
        return all(w.confirmed for w in witnesses if w is not None)


class _Inconclusive(Exception):
    """z3 gave up (timeout or a nonlinear corner): the question stays open."""


class _Analysis:
    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol
        self.checked = protocol.checked
        self.criteria = self.checked.protocol.criteria
        self.variables = _Variables(protocol)
        self.encoder = _Encoder(protocol, self.variables)
        self.passes = {c.id.text: self.encoder.passes(c) for c in self.criteria}
        self.values = {c.id.text: self.encoder.criterion(c) for c in self.criteria}
        self.findings: list[Finding] = []
        self.inconclusive: list[str] = []
        # Until someone is known to be eligible, "given the other criteria" means nothing.
        self.anyone_eligible = False

    # ---- solving ----

    def solver(self, constraints: Iterable[Z3]) -> Z3:
        solver = z3.Solver()
        solver.set("timeout", TIMEOUT_MS)
        solver.add(*self.variables.domain)
        solver.add(*constraints)
        return solver

    def satisfiable(self, constraints: Iterable[Z3], question: str) -> bool:
        verdict = self.solver(constraints).check()
        if verdict == z3.unknown:
            raise _Inconclusive(question)
        return bool(verdict == z3.sat)

    def core(self, fixed: list[Z3], tracked: dict[str, Z3]) -> list[str]:
        """A smallest set of the tracked constraints that, with `fixed`, cannot all hold."""
        needed = list(tracked)
        for name in list(needed):
            trial = [n for n in needed if n != name]
            if not self.satisfiable([*fixed, *(tracked[n] for n in trial)], "core"):
                needed = trial
        return needed

    def witness(self, constraints: list[Z3], observed: list[Observation]) -> Witness | None:
        """A patient meeting `constraints`, with round numbers, shrunk to the fields that
        matter, and checked against the evaluator for everything in `observed`."""
        solver = self.solver(constraints)
        verdict = solver.check()
        if verdict != z3.sat:
            return None
        # Values on the edge of a plausible range (a creatinine of 0) read badly: keep
        # away from the edges when the constraints allow it.
        solver.push()
        solver.add(*self.variables.inside)
        if solver.check() != z3.sat:
            solver.pop()
            if solver.check() != z3.sat:
                return None
        model = solver.model()
        for name, var in self.variables.reals():
            model = _round(solver, model, var, self.variables.ranges.get(name))
        record = parse_json(json.dumps(self.variables.record(model), default=_json_number))
        predicted = {o.label: self.predict(model, o) for o in observed}
        record = self.shrink(record, observed, predicted)
        actual = self.observe(record, observed)
        claims = tuple(Claim(o.label, predicted[o.label], actual[o.label]) for o in observed)
        return Witness(record, claims)

    def predict(self, model: Z3, observation: Observation) -> str:
        if observation.kind == "status":
            values = {c.id.text: _value(model, self.values[c.id.text]) for c in self.criteria}
            return _status(self.criteria, values)
        assert observation.formula is not None
        return _word(_value(model, observation.formula))

    def observe(self, record: dict[str, Any], observed: list[Observation]) -> dict[str, str]:
        """What the compiled evaluator says about each observation for this record."""
        result: Result = self.protocol.evaluate(record)
        _, env = self.protocol.intake(record, 1)
        with decimal.localcontext(ARITHMETIC):
            trace = self.protocol.compiled.trace(env)
        slots = self.protocol.slots
        criteria = {c.id: c.value for c in result.criteria}
        out: dict[str, str] = {}
        for o in observed:
            if o.kind == "status":
                out[o.label] = result.status
            elif o.kind == "criterion":
                out[o.label] = _word(criteria[str(o.target)])
            else:
                out[o.label] = _word(trace[slots[id(o.target)]])
        return out

    def shrink(
        self, record: dict[str, Any], observed: list[Observation], predicted: dict[str, str]
    ) -> dict[str, Any]:
        """Leave out every field the evaluator does not need to say the same things."""
        if self.observe(record, observed) != predicted:
            return record
        for name in list(record):
            trial = {k: v for k, v in record.items() if k != name}
            if self.observe(trial, observed) == predicted:
                record = trial
        return record

    # ---- observations ----

    def criterion_observation(self, criterion: s.Criterion) -> Observation:
        return Observation(
            criterion.id.text, "criterion", criterion.id.text, self.values[criterion.id.text]
        )

    def node_observation(self, label: str, node: object) -> Observation:
        return Observation(label, "node", node, self.context(node))

    def context(self, node: object) -> Tri:
        """A condition's value where the evaluator computes it, inside its criterion."""
        value = self.encoder.seen[id(node)]
        assert isinstance(value, Tri)
        return value

    def status_observation(self) -> Observation:
        return Observation("status", "status", None)

    def add(
        self, code: str, span: s.Span, message: str, hint: str | None, witness: Witness | None
    ) -> None:
        self.findings.append(Finding(Diagnostic(code, "warning", span, message, hint), witness))

    # ---- the questions ----

    def run(self) -> Report:
        eligible: Witness | None = None
        try:
            eligible = self.eligibility()
        except _Inconclusive as open_question:
            self.inconclusive.append(f"whether anyone can be eligible ({open_question})")
        for criterion in self.criteria:
            self.ask(f"whether {criterion.id.text} decides", self.decides, criterion)
        for criterion in self.criteria:
            for node, owner in _quantified(criterion):
                self.ask(f"the alternatives of {owner}", self.alternatives, criterion, node, owner)
            for group, owner in _disjunctions(criterion, self.encoder):
                self.ask(f"the bands in {owner}", self.bands, criterion, group, owner)
        findings = sorted(
            self.findings,
            key=lambda f: (f.diagnostic.span.line, f.diagnostic.span.column, f.diagnostic.code),
        )
        return Report(eligible, tuple(findings), tuple(self.inconclusive))

    def ask(self, question: str, method: Any, *args: Any) -> None:
        try:
            method(*args)
        except _Inconclusive:
            self.inconclusive.append(question)

    def everyone(self) -> list[Observation]:
        return [self.status_observation(), *(self.criterion_observation(c) for c in self.criteria)]

    def eligibility(self) -> Witness | None:
        """An eligible patient, or CRIT101 with the criteria that contradict each other."""
        everything = list(self.passes.values())
        witness = self.witness(everything, self.everyone())
        if witness is not None:
            self.anyone_eligible = True
            return witness
        if self.satisfiable(everything, "eligibility"):
            raise _Inconclusive("eligibility")
        clash = self.core([], self.passes)
        named = [c for c in self.criteria if c.id.text in clash]
        last = named[-1]
        observed = [self.status_observation(), *(self.criterion_observation(c) for c in named)]
        example = self.witness([self.passes[c.id.text] for c in named[:-1]], observed)
        together = (
            f"{last.id.text} can never be {'met' if last.kind == 'inclusion' else 'absent'}"
            if len(named) == 1
            else f"{_and([c.id.text for c in named])} cannot all be passed together"
        )
        self.add(
            "CRIT101",
            self.checked.protocol.name.span,
            f"no patient can be eligible: {together}",
            f"the witness meets {_and([c.id.text for c in named[:-1]]) or 'nothing'}, and then {last.id.text} fails",
            example,
        )
        return None

    def decides(self, criterion: s.Criterion) -> None:
        """CRIT102-104: can the criterion pass, fail, and fail while every other criterion passes?"""
        ident = criterion.id.text
        passes = self.passes[ident]
        others = {c.id.text: self.passes[c.id.text] for c in self.criteria if c is not criterion}
        what = "met" if criterion.kind == "inclusion" else "absent"
        if not self.satisfiable([passes], f"whether {ident} can pass"):
            verb = "be met" if criterion.kind == "inclusion" else "be absent: it excludes everyone"
            self.add(
                "CRIT102",
                criterion.id.span,
                f"{criterion.kind} {ident} can never {verb}",
                "its condition contradicts itself or the plausible ranges of its data",
                self.witness([], [self.criterion_observation(criterion)]),
            )
            return
        if self.anyone_eligible and self.satisfiable(
            [z3.Not(passes), *others.values()], f"whether {ident} decides"
        ):
            return
        if not self.satisfiable([z3.Not(passes)], f"whether {ident} can fail"):
            verb = "is met by every patient" if criterion.kind == "inclusion" else "can never fire"
            self.add(
                "CRIT103",
                criterion.id.span,
                f"{criterion.kind} {ident} {verb}: it is {what} whatever the record says",
                "its condition is always true (or always false) within the plausible ranges",
                self.witness([], [self.criterion_observation(criterion)]),
            )
            return
        if not self.anyone_eligible:
            return
        blockers = self.core([z3.Not(passes)], others)
        named = [c for c in self.criteria if c.id.text in blockers]
        observed = [
            self.criterion_observation(criterion),
            *(self.criterion_observation(c) for c in named),
        ]
        observed.append(self.status_observation())
        witness = self.witness([z3.Not(passes)], observed)
        blocking = _or([c.id.text for c in named])
        if criterion.kind == "exclusion":
            message = (
                f"exclusion {ident} can never exclude a patient the other criteria admit: "
                f"whenever it fires, {blocking} already rules the patient out"
            )
        else:
            message = (
                f"inclusion {ident} is implied by the others: whenever a patient fails it, "
                f"{blocking} already rules the patient out"
            )
        hint = f"{ident} never decides eligibility on its own; check the registered text"
        self.add("CRIT104", criterion.id.span, message, hint, witness)

    def alternatives(self, criterion: s.Criterion, node: s.Quantified, owner: str) -> None:
        """CRIT105-107 for the named sub-criteria of an `any of` / `all of`."""
        subs = [i for i in node.items if isinstance(i, s.SubCriterion)]
        values = {id(i): self.context(i) for i in node.items}
        others = {c.id.text: self.passes[c.id.text] for c in self.criteria if c is not criterion}
        if not self.anyone_eligible:
            others = {}
        for sub in subs:
            self.sole_reason(criterion, node, owner, sub, values, others)
        if node.quantifier == "any" and len(subs) > 1:
            self.overlaps(criterion, node, owner, subs, values)

    def sole_reason(
        self,
        criterion: s.Criterion,
        node: s.Quantified,
        owner: str,
        sub: s.SubCriterion,
        values: dict[int, Tri],
        others: dict[str, Z3],
    ) -> None:
        """CRIT105: can `sub` be the one item that settles its list (the only true item
        of an `any of`, the only false one of an `all of`) for a patient the others admit?"""
        if node.quantifier not in ("any", "all"):
            return
        settling = node.quantifier == "any"

        def settles(item: object) -> Z3:
            value = values[id(item)]
            return value.true if settling else value.false

        alone = [settles(sub), *(z3.Not(settles(i)) for i in node.items if i is not sub)]
        name = f"{owner} {sub.name.text}"
        if self.satisfiable([*alone, *others.values()], f"whether {name} decides"):
            return
        observed = [
            self.node_observation(f"{owner} {i.name.text}", i)
            for i in node.items
            if isinstance(i, s.SubCriterion)
        ]
        held = "holds" if settling else "fails"
        if not self.satisfiable(alone, f"whether {name} can decide"):
            self.add(
                "CRIT105",
                sub.name.span,
                f"sub-criterion {name} never settles {owner} on its own: "
                f"whenever it {held}, another item of the list {held} too",
                "it adds nothing to the list; check whether it says what was meant",
                self.witness([settles(sub)], observed),
            )
            return
        named = [c for c in self.criteria if c.id.text in self.core(alone, others)]
        observed += [self.criterion_observation(c) for c in named]
        self.add(
            "CRIT105",
            sub.name.span,
            f"sub-criterion {name} never settles {owner} on its own for a patient the other "
            f"criteria admit: whenever it is the only item that {held}, {_failing(named)}",
            f"it repeats {_and([c.id.text for c in named])}; check the registered text",
            self.witness(alone, observed),
        )

    def overlaps(
        self,
        criterion: s.Criterion,
        node: s.Quantified,
        owner: str,
        subs: list[s.SubCriterion],
        values: dict[int, Tri],
    ) -> None:
        pairs = [
            (a, b)
            for a, b in itertools.combinations(subs, 2)
            if self.satisfiable(
                [values[id(a)].true, values[id(b)].true], f"whether {owner} overlaps"
            )
        ]
        if not pairs:
            return
        involved = [sub for sub in subs if any(sub in pair for pair in pairs)]
        together = [values[id(sub)].true for sub in involved]
        if not self.satisfiable(together, f"whether {owner}'s alternatives all overlap"):
            involved = list(pairs[0])
            together = [values[id(sub)].true for sub in involved]
        names = [sub.name.text for sub in involved]
        observed = [self.node_observation(f"{owner} {sub.name.text}", sub) for sub in involved]
        listed = "; ".join(f"{a.name.text} and {b.name.text}" for a, b in pairs)
        self.add(
            "CRIT107",
            node.span,
            f"the alternatives of {owner} overlap ({listed}): one patient can meet {_and(names)} at once",
            "overlapping alternatives are often intended; if they are meant to be exclusive, tighten their bounds",
            self.witness(together, observed),
        )

    def bands(self, criterion: s.Criterion, group: _Group, owner: str) -> None:
        """CRIT108-110: bands of one quantity across the alternatives of a disjunction."""
        for bands in group.by_subject().values():
            if len({b.alternative for b in bands}) < 2:
                continue
            subject = bands[0].subject
            x = self.encoder.number(subject)
            name = _subject_words(self.checked, subject)
            unit = self.checked.types[subject].unit
            listed = "; ".join(b.words(unit) for b in bands)
            observed = [self.node_observation(expression_text(b.node), b.node) for b in bands]
            clean = True
            for first, second in itertools.combinations(bands, 2):
                common = first.interval.intersect(second.interval)
                if common is None or first.alternative == second.alternative:
                    continue
                clean = False
                self.add(
                    "CRIT109",
                    second.node.span,
                    f"in {owner}, the bands of {name} overlap: {common.words(unit)} is both "
                    f"{first.words(unit)} and {second.words(unit)}",
                    "if the bands are meant to split the range, make one of the shared bounds strict",
                    self.witness([x.known, common.formula(x.value)], observed),
                )
            for hole in _holes([b.interval for b in bands]):
                clean = False
                self.add(
                    "CRIT108",
                    group.node.span,
                    f"in {owner}, the bands of {name} ({listed}) leave a gap: "
                    f"{hole.words(unit)} is in none of them",
                    "a patient in the gap meets none of these alternatives; check the registered bands",
                    self.witness([x.known, hole.formula(x.value)], observed),
                )
            seams = _seams(bands)
            # Bands that meet are worth a note (who owns the boundary); bands that do not
            # meet and leave no gap are `x < 20 or x > 80`, "outside a range".
            if clean and seams:
                where = "; ".join(
                    f"exactly {format_quantity(to_decimal(point), unit)} belongs to "
                    f"{band.words(unit)}"
                    for point, band in seams
                )
                self.add(
                    "CRIT110",
                    group.node.span,
                    f"in {owner}, the bands of {name} ({listed}) neither overlap nor leave "
                    f"a gap: {where}",
                    None,
                    self.witness([x.known, x.value == _real(seams[0][0])], observed),
                )

    # ---- boundary examples ----

    def boundaries(self) -> list[Proposal]:
        """Example patients on and just past each constant bound that decides its criterion."""
        folder = _Folder(self.encoder)
        proposals: list[Proposal] = []
        written: set[str] = set()
        for criterion in self.criteria:
            others = [self.passes[c.id.text] for c in self.criteria if c is not criterion]
            for node, owner in _owned(criterion):
                band = folder.band(node, 0)
                if band is None:
                    continue
                flipped = _Encoder(self.protocol, self.variables, flip=node).passes(criterion)
                x = self.encoder.number(band.subject)
                unit = self.checked.types[band.subject].unit
                condition = expression_text(band.node)
                observed = [
                    self.node_observation(condition, band.node),
                    self.criterion_observation(criterion),
                    self.status_observation(),
                ]
                for point, bound in _boundary_points(band.interval):
                    decides = [
                        x.known,
                        x.value == _real(point),
                        self.passes[criterion.id.text] != flipped,
                    ]
                    try:
                        witness = self.witness([*decides, *others], observed)
                    except _Inconclusive:
                        continue
                    if witness is None or not witness.confirmed or witness.json() in written:
                        continue
                    written.add(witness.json())
                    value = _quantity_text(point, unit)
                    if point != bound:
                        side = "above" if point > bound else "below"
                        value += f", just {side} {_quantity_text(bound, unit)}"
                    title = f"{owner}: {expression_text(band.subject)} {value} ({condition})"
                    status = next(c.actual for c in witness.claims if c.label == "status")
                    example = s.Example(
                        title, self.fields(witness.record), s.Name(status, NO_SPAN), NO_SPAN
                    )
                    proposals.append(Proposal(example, witness))
        return proposals

    def fields(self, record: dict[str, Any]) -> tuple[s.ExampleField, ...]:
        fields: list[s.ExampleField] = []
        for name, value in record.items():
            kind = self.checked.element_types[name]
            shown: s.FieldValue
            if kind.kind == "boolean":
                shown = s.BoolLit(bool(value), NO_SPAN)
            elif kind.kind == "number":
                shown = s.NumberLit(Decimal(value), NO_SPAN)
            elif kind.kind == "quantity":
                shown = s.QuantityLit(Decimal(value), kind.unit, NO_SPAN)
            elif kind.kind == "enum":
                shown = s.Name(str(value), NO_SPAN)
            elif kind.kind == "set":
                shown = tuple(s.Name(str(v), NO_SPAN) for v in value)
            else:
                shown = s.DateLit(datetime.date.fromisoformat(str(value)), NO_SPAN)
            fields.append(s.ExampleField(s.Name(name, NO_SPAN), shown, NO_SPAN))
        return tuple(fields)


@attrs.frozen
class Proposal:
    """A boundary example block, and the witness it was made from."""

    example: s.Example
    witness: Witness

    def text(self) -> str:
        return example_text(self.example)


def _boundary_points(interval: _Interval) -> list[tuple[Fraction, Fraction]]:
    """(point, bound): each bound of an interval, and one step past it (the step of
    its last digit)."""
    points: list[tuple[Fraction, Fraction]] = []
    for bound, closed, upward in (
        (interval.low, interval.low_closed, False),
        (interval.high, interval.high_closed, True),
    ):
        if bound is None:
            continue
        exponent = to_decimal(bound).normalize().as_tuple().exponent
        step = Fraction(10) ** min(0, int(exponent))
        # One step out of the band past a closed bound, one step into it past an open one.
        past = bound + step if upward == closed else bound - step
        points += [(bound, bound), (past, bound)]
    return points


def _quantity_text(value: Fraction, unit: str) -> str:
    """A value as a critlang literal, exactly: 30.4375 'd', 10%."""
    return literal(s.QuantityLit(to_decimal(value).normalize(), unit, NO_SPAN))


def _owned(criterion: s.Criterion) -> Iterator[tuple[object, str]]:
    """Every node of a criterion, with the criterion or sub-criterion it belongs to (I2 a)."""

    def visit(node: object, owner: str) -> Iterator[tuple[object, str]]:
        yield node, owner
        for child in s.children(node):
            inner = f"{owner} {child.name.text}" if isinstance(child, s.SubCriterion) else owner
            yield from visit(child, inner)

    for root in (criterion.applies_when, criterion.condition):
        if root is not None:
            yield from visit(root, criterion.id.text)


def _value(model: Z3, formula: Tri) -> bool | None:
    if _is_true(model, formula.true):
        return True
    if _is_true(model, formula.false):
        return False
    return None


def _status(criteria: tuple[s.Criterion, ...], values: dict[str, bool | None]) -> str:
    if any(values[c.id.text] is (c.kind == "exclusion") for c in criteria):
        return Outcome.INELIGIBLE
    if all(values[c.id.text] is (c.kind == "inclusion") for c in criteria):
        return Outcome.ELIGIBLE
    return Outcome.UNDETERMINED


def _round(solver: Z3, model: Z3, var: Z3, limits: tuple[Decimal, Decimal] | None) -> Z3:
    """Fix `var` to a round number the constraints allow: near its model value if
    possible, else a round number (1, 2, 5 times a power of ten) within its range."""
    exact = _fraction(model.eval(var, model_completion=True))
    near = [round(exact, digits) for digits in ROUNDING_DIGITS]
    for candidate in [*near, *_ladder(exact, limits)]:
        if candidate == exact:
            solver.add(var == _real(exact))
            return model
        solver.push()
        solver.add(var == _real(candidate))
        if solver.check() == z3.sat:
            return solver.model()
        solver.pop()
    solver.add(var == _real(exact))
    return model


def _ladder(exact: Fraction, limits: tuple[Decimal, Decimal] | None) -> list[Fraction]:
    """Round numbers within `limits`, nearest to `exact` first."""
    if limits is None:
        return []
    low, high = Fraction(limits[0]), Fraction(limits[1])
    steps = [Fraction(m) * Fraction(10) ** e for e in range(-3, 5) for m in (1, 2, 5)]
    inside = [value for value in steps if low <= value <= high]
    return sorted(inside, key=lambda value: abs(value - exact))


def _failing(criteria: list[s.Criterion]) -> str:
    """'I5 is not met', 'I1 is not met or E2 fires'."""
    return _or(
        [f"{c.id.text} {'is not met' if c.kind == 'inclusion' else 'fires'}" for c in criteria]
    )


def _and(names: list[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _or(names: list[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " or " + names[-1]


def _subject_words(checked: Any, node: s.Expr) -> str:
    if isinstance(node, s.Ref):
        declared = checked.elements.get(node.name) or checked.definitions.get(node.name)
        if declared is not None and declared.label:
            return f"{declared.label} ({node.name})"
        return node.name
    return expression_text(node)


# ---- sub-criteria and bands ------------------------------------------------------------


def _quantified(criterion: s.Criterion) -> Iterator[tuple[s.Quantified, str]]:
    """Each `any of` / `all of` with named items, and what it is called (I2, I2 a, ...)."""

    def visit(node: object, owner: str) -> Iterator[tuple[s.Quantified, str]]:
        if isinstance(node, s.Quantified) and any(
            isinstance(i, s.SubCriterion) for i in node.items
        ):
            yield node, owner
        for child in s.children(node):
            inner = f"{owner} {child.name.text}" if isinstance(child, s.SubCriterion) else owner
            yield from visit(child, inner)

    yield from visit(criterion.condition, criterion.id.text)


@attrs.frozen
class _Interval:
    """A set of values of one quantity; None bounds are unbounded."""

    low: Fraction | None
    low_closed: bool
    high: Fraction | None
    high_closed: bool

    def intersect(self, other: _Interval) -> _Interval | None:
        low, low_closed = _tighter_low((self.low, self.low_closed), (other.low, other.low_closed))
        high, high_closed = _tighter_high(
            (self.high, self.high_closed), (other.high, other.high_closed)
        )
        candidate = _Interval(low, low_closed, high, high_closed)
        return None if candidate.empty else candidate

    @property
    def empty(self) -> bool:
        if self.low is None or self.high is None:
            return False
        return self.low > self.high or (
            self.low == self.high and not (self.low_closed and self.high_closed)
        )

    def formula(self, x: Z3) -> Z3:
        parts = []
        if self.low is not None:
            parts.append(x >= _real(self.low) if self.low_closed else x > _real(self.low))
        if self.high is not None:
            parts.append(x <= _real(self.high) if self.high_closed else x < _real(self.high))
        return z3.And(parts)

    def words(self, unit: str) -> str:
        def q(value: Fraction) -> str:
            return format_quantity(to_decimal(value), unit)

        low, high = self.low, self.high
        if low is not None and high is not None:
            if low == high:
                return f"exactly {q(low)}"
            if self.low_closed and self.high_closed:
                return f"{q(low)} to {q(high)}"
            left = "at least" if self.low_closed else "more than"
            right = "at most" if self.high_closed else "less than"
            return f"{left} {q(low)} and {right} {q(high)}"
        if low is not None:
            return f"{'at least' if self.low_closed else 'more than'} {q(low)}"
        if high is not None:
            return f"{'at most' if self.high_closed else 'less than'} {q(high)}"
        return "any value"


def _tighter_low(
    a: tuple[Fraction | None, bool], b: tuple[Fraction | None, bool]
) -> tuple[Fraction | None, bool]:
    if a[0] is None:
        return b
    if b[0] is None or a[0] > b[0]:
        return a
    if b[0] > a[0]:
        return b
    return a[0], a[1] and b[1]


def _tighter_high(
    a: tuple[Fraction | None, bool], b: tuple[Fraction | None, bool]
) -> tuple[Fraction | None, bool]:
    if a[0] is None:
        return b
    if b[0] is None or a[0] < b[0]:
        return a
    if b[0] < a[0]:
        return b
    return a[0], a[1] and b[1]


def _holes(intervals: list[_Interval]) -> list[_Interval]:
    """The values between bands that no band covers.

    A hole between a band open downwards and one open upwards (`x < 20 or x > 80`)
    is how "outside a range" is written, not a gap, and is not reported.
    """
    ordered = sorted(intervals, key=lambda i: (i.low is not None, i.low or 0, not i.low_closed))
    holes: list[_Interval] = []
    below = ordered[0]  # the band reaching highest so far
    for interval in ordered[1:]:
        if below.high is None:
            break
        low = interval.low
        apart = low is not None and (
            low > below.high
            or (low == below.high and not (below.high_closed or interval.low_closed))
        )
        outside_a_range = below.low is None and interval.high is None
        if apart and low is not None and not outside_a_range:
            holes.append(_Interval(below.high, not below.high_closed, low, not interval.low_closed))
        if (
            interval.high is None
            or interval.high > below.high
            or (interval.high == below.high and interval.high_closed)
        ):
            below = interval
    return holes


def _seams(bands: list[_Band]) -> list[tuple[Fraction, _Band]]:
    """Where one band ends and the next begins, and the band the boundary belongs to."""
    seams: list[tuple[Fraction, _Band]] = []
    for a, b in itertools.permutations(bands, 2):
        if a.interval.high is not None and a.interval.high == b.interval.low:
            seams.append((a.interval.high, a if a.interval.high_closed else b))
    return seams


@attrs.frozen
class _Band:
    subject: s.Expr
    interval: _Interval
    node: s.Expr
    alternative: int
    label: str  # the alternative's name (a sub-criterion's), or empty

    def words(self, unit: str) -> str:
        shown = f"'{self.interval.words(unit)}'"
        return f"{shown} (in {self.label})" if self.label else shown


@attrs.frozen
class _Group:
    """A disjunction (an `or` chain or an `any of`) and the bands of its alternatives."""

    node: s.Expr
    bands: tuple[_Band, ...]

    def by_subject(self) -> dict[object, list[_Band]]:
        found: dict[object, list[_Band]] = {}
        for band in self.bands:
            found.setdefault(without_spans(band.subject), []).append(band)
        return found


def _disjunctions(criterion: s.Criterion, encoder: _Encoder) -> Iterator[tuple[_Group, str]]:
    """Each disjunction in a criterion's condition with bands on a common quantity."""
    fold = _Folder(encoder)

    def visit(node: object, owner: str) -> Iterator[tuple[_Group, str]]:
        alternatives = _alternatives(node)
        if alternatives is not None:
            bands = tuple(
                band
                for position, (label, alternative) in enumerate(alternatives)
                for band in fold.bands(alternative, position, label)
            )
            if bands:
                yield _Group(node, bands), owner  # type: ignore[arg-type]
        # An `or` chain is one disjunction: go on from its alternatives, not its halves.
        inside = [a for _, a in alternatives or ()] if isinstance(node, s.Or) else s.children(node)
        for child in inside:
            inner = f"{owner} {child.name.text}" if isinstance(child, s.SubCriterion) else owner
            yield from visit(child, inner)

    yield from visit(criterion.condition, criterion.id.text)


def _alternatives(node: object) -> list[tuple[str, object]] | None:
    """The alternatives of a disjunction, with the names of those that are sub-criteria."""
    if isinstance(node, s.Quantified) and node.quantifier == "any":
        return [
            (i.name.text, i.condition) if isinstance(i, s.SubCriterion) else ("", i)
            for i in node.items
        ]
    if isinstance(node, s.Or):
        out: list[tuple[str, object]] = []
        current: object = node
        while isinstance(current, s.Or):
            out.append(("", current.right))
            current = current.left
        out.append(("", current))
        return out[::-1]
    return None


class _Folder:
    """Finds comparisons of a quantity with constant bounds (`x > 10%`, `x between a and b`)."""

    def __init__(self, encoder: _Encoder) -> None:
        self.encoder = encoder

    def constant(self, node: s.Expr) -> Fraction | None:
        return self.encoder.checked.fold(node)

    def in_unit(self, bound: s.Expr, subject: s.Expr) -> Fraction:
        """A constant bound in the unit of the quantity it bounds, as the evaluator holds it."""
        folded = self.encoder.checked.fold(bound)
        assert folded is not None
        return Fraction(to_decimal(folded * self.encoder.checked.factor(bound, subject)))

    def bands(self, alternative: object, position: int, label: str = "") -> list[_Band]:
        """The bands an alternative sets, its conjuncts on one quantity intersected."""
        found: dict[object, _Band] = {}
        for conjunct in _conjuncts(alternative):
            band = self.band(conjunct, position, label)
            if band is None:
                continue
            key = without_spans(band.subject)
            if key in found:
                common = found[key].interval.intersect(band.interval)
                if common is None:
                    continue
                band = attrs.evolve(found[key], interval=common)
            found[key] = band
        return list(found.values())

    def band(self, node: object, position: int, label: str = "") -> _Band | None:
        match node:
            case s.Compare(op=op, left=left, right=right) if op in ("<", "<=", ">", ">="):
                if self.constant(right) is not None and self.constant(left) is None:
                    return self.make(left, op, right, node, position, label)
                if self.constant(left) is not None and self.constant(right) is None:
                    mirrored = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[op]
                    return self.make(right, mirrored, left, node, position, label)
            case s.Between(subject=subject, low=low, high=high, exclusive=exclusive):
                bounds = (self.constant(low), self.constant(high))
                if self.constant(subject) is None and None not in bounds:
                    lo, hi = self.in_unit(low, subject), self.in_unit(high, subject)
                    interval = _Interval(lo, not exclusive, hi, not exclusive)
                    return _Band(subject, interval, node, position, label)
        return None

    def make(
        self, subject: s.Expr, op: str, bound: s.Expr, node: s.Expr, position: int, label: str
    ) -> _Band:
        value = self.in_unit(bound, subject)
        interval = {
            ">": _Interval(value, False, None, False),
            ">=": _Interval(value, True, None, False),
            "<": _Interval(None, False, value, False),
            "<=": _Interval(None, False, value, True),
        }[op]
        return _Band(subject, interval, node, position, label)


def _conjuncts(node: object) -> list[object]:
    if isinstance(node, s.And):
        return [*_conjuncts(node.left), *_conjuncts(node.right)]
    if isinstance(node, s.Quantified) and node.quantifier == "all":
        return [
            c
            for i in node.items
            for c in _conjuncts(i.condition if isinstance(i, s.SubCriterion) else i)
        ]
    return [node]


# ---- the API -------------------------------------------------------------------------


def analyze(protocol: Protocol) -> Report:
    """Analyse a compiled protocol; every witness is checked against its evaluator."""
    return _Analysis(protocol).run()


def boundary_examples(protocol: Protocol) -> list[Proposal]:
    """Example blocks on and just past each bound that decides a criterion, for a patient
    who meets every other criterion; the expected outcome is what the evaluator says."""
    return _Analysis(protocol).boundaries()


SCOPE = (
    "critlang analyze: z3 over records in which every data element is known; "
    "every witness is run through the compiled evaluator"
)


def render_report(report: Report, source: str) -> str:
    """The findings as the checker renders diagnostics, each followed by its witness."""
    lines = [SCOPE]
    if report.eligible is not None:
        lines += [
            f"an eligible patient exists: {report.eligible.json()}",
            f"  {report.eligible.describe()}",
        ]
    for finding in report.findings:
        lines.append(render(finding.diagnostic, source))
        if finding.witness is not None:
            lines += [f"  witness: {finding.witness.json()}", f"  {finding.witness.describe()}"]
    lines += [f"z3 could not settle {question}" for question in report.inconclusive]
    return "\n".join(lines)
