"""Screening results: status, per-criterion values, reasons in words and numbers, missing data.

The values come from the compiled evaluator's trace; this module only reads
them. Reasons follow the path that decided each value (the false part of an
`and`, the true part of an `or`), so they name the numbers that mattered.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any

import attrs

from critlang import ir, render, units
from critlang import syntax as s
from critlang.check import Checked
from critlang.engines.python import ARITHMETIC, Compiled, to_decimal
from critlang.lower import Lowered
from critlang.lower import chain as _chain
from critlang.records import Intake, RecordError, records_from
from critlang.vocab import Kind, Outcome, Truth

ERROR = Outcome.ERROR
UNDETERMINED = Outcome.UNDETERMINED


# Parts and criterion results are built for every record screened, so they are
# plain slotted records (a frozen attrs __init__ costs three times as much).
@attrs.define
class Part:
    """A named sub-criterion (I2 a, b, c) and its value."""

    name: str
    title: str | None
    value: bool | None
    applicable: bool | None
    explainer: _Explainer = attrs.field(repr=False, eq=False)
    node: s.SubCriterion = attrs.field(repr=False, eq=False)

    @property
    def reason(self) -> str:
        """Why, in words and numbers; put into words only when asked for."""
        return self.explainer.part_reason(self.node)

    @property
    def value_word(self) -> str:
        return _value_word(self.value, self.applicable)


@attrs.define
class CriterionResult:
    """One criterion's value for one record; `value` is after applicability."""

    id: str
    kind: str
    title: str
    value: bool | None
    applicable: bool | None
    parts: tuple[Part, ...]
    explainer: _Explainer = attrs.field(repr=False, eq=False)
    node: s.Criterion = attrs.field(repr=False, eq=False)

    @property
    def reason(self) -> str:
        """Why, in words and numbers; put into words only when asked for."""
        return self.explainer.criterion_reason(self.node)

    @property
    def value_word(self) -> str:
        return _value_word(self.value, self.applicable)


@attrs.frozen
class Result:
    """The outcome of screening one record."""

    id: str
    status: str
    criteria: tuple[CriterionResult, ...] = ()
    missing: tuple[str, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary: id, status, criteria (id, kind, value, reason), missing."""
        out: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.error is not None:
            out["error"] = self.error
            return out
        out["criteria"] = [_criterion_dict(c) for c in self.criteria]
        out["missing"] = list(self.missing)
        return out


def _criterion_dict(criterion: CriterionResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": criterion.id,
        "kind": criterion.kind,
        "title": criterion.title,
        "value": criterion.value_word,
        "reason": criterion.reason,
    }
    if criterion.parts:
        out["parts"] = [
            {"name": p.name, "title": p.title, "value": p.value_word, "reason": p.reason}
            for p in criterion.parts
        ]
    return out


def _value_word(value: bool | None, applicable: bool | None) -> str:
    return Truth.of(value, applicable).value


class Protocol:
    """A compiled protocol, ready to screen records.

    Build one with `critlang.load` or `critlang.compile_source`. It pickles
    (as its checked form, compiled again on arrival), so it can be sent to
    worker processes.
    """

    def __init__(self, lowered: Lowered, compiled: Compiled) -> None:
        self.lowered = lowered
        self.compiled = compiled
        self.checked: Checked = lowered.checked
        self.intake = Intake(self.checked)
        # Explanations find a syntax node's value by identity: hashing a node is a Python call.
        self.slots = {key: node.id for key, node in lowered.origin.items()}
        self.constants = {
            key: node.value for key, node in lowered.origin.items() if isinstance(node, ir.Const)
        }
        self.plans = tuple(_Plan.of(c, self.slots) for c in self.checked.protocol.criteria)
        self.types = {id(node): kind for node, kind in self.checked.types.items()}

    def __reduce__(self) -> tuple[Any, ...]:
        from critlang.pipeline import build  # the pipeline builds protocols; it imports this module

        return (build, (self.checked,))

    @property
    def name(self) -> str:
        return self.checked.protocol.name.text

    def status(self, record: Mapping[str, Any]) -> str:
        """Only the overall status of one record: the fast path for bulk screening."""
        _, env = self.intake(record, 1)
        with decimal.localcontext(ARITHMETIC):
            return self.compiled.status(env)

    def evaluate(self, record: Mapping[str, Any]) -> Result:
        """Screen one record; raise RecordError if it does not fit the data dictionary."""
        record_id, env = self.intake(record, 1)
        return self.explain(record_id, env)

    def evaluate_many(self, records: Iterable[Mapping[str, Any]]) -> Iterator[Result]:
        """Screen records one by one; a bad record gives a Result with status 'error'."""
        return self.screen(records_from(records))

    def screen(
        self, rows: Iterable[tuple[int, Mapping[str, Any] | RecordError]]
    ) -> Iterator[Result]:
        for position, row in rows:
            if isinstance(row, RecordError):
                yield Result(row.record_id, ERROR, error=str(row))
                continue
            try:
                record_id, env = self.intake(row, position)
            except RecordError as error:
                yield Result(error.record_id, ERROR, error=str(error))
                continue
            yield self.explain(record_id, env)

    def explain(self, record_id: str, env: dict[str, Any]) -> Result:
        """The full result for an environment already taken in."""
        with decimal.localcontext(ARITHMETIC):
            trace = self.compiled.trace(env)
        explainer = _Explainer(self, trace, env)
        results = tuple([plan.result(trace, explainer) for plan in self.plans])
        status = _status(results)
        missing: tuple[str, ...] = ()
        if status == UNDETERMINED:
            # Only unknown criteria: one already settled (I4 met because the test is
            # negative, whatever the sex) needs none of its unknown inputs.
            missing = tuple(
                dict.fromkeys(
                    name
                    for plan, result in zip(self.plans, results, strict=True)
                    if result.value is None
                    for name in explainer.missing_of(plan.node)
                )
            )
        return Result(record_id, status, results, missing)


def _status(results: tuple[CriterionResult, ...]) -> str:
    if any(r.value is (r.kind == Kind.EXCLUSION) for r in results):
        return Outcome.INELIGIBLE.value
    if all(r.value is (r.kind == Kind.INCLUSION) for r in results):
        return Outcome.ELIGIBLE.value
    return Outcome.UNDETERMINED.value


@attrs.frozen
class _Plan:
    """Where one criterion's values sit in the trace, worked out once per protocol."""

    node: s.Criterion
    value_slot: int
    applies_slot: int | None
    parts: tuple[tuple[s.SubCriterion, int, int | None], ...]

    @classmethod
    def of(cls, criterion: s.Criterion, slots: dict[int, int]) -> _Plan:
        def slot(node: object | None) -> int | None:
            return None if node is None else slots[id(node)]

        items = criterion.condition.items if isinstance(criterion.condition, s.Quantified) else ()
        parts = tuple(
            (item, slots[id(item)], slot(item.applies_when))
            for item in items
            if isinstance(item, s.SubCriterion)
        )
        return cls(criterion, slots[id(criterion)], slot(criterion.applies_when), parts)

    def result(self, trace: list[Any], explainer: _Explainer) -> CriterionResult:
        node = self.node
        parts = tuple(
            [
                Part(
                    item.name.text,
                    item.title,
                    trace[value_slot],
                    True if applies_slot is None else trace[applies_slot],
                    explainer,
                    item,
                )
                for item, value_slot, applies_slot in self.parts
            ]
        )
        applicable = True if self.applies_slot is None else trace[self.applies_slot]
        value = trace[self.value_slot]
        return CriterionResult(
            node.id.text, node.kind, node.title, value, applicable, parts, explainer, node
        )


class _Explainer:
    """Reads one record's trace and puts it into words."""

    def __init__(self, protocol: Protocol, trace: list[Any], env: dict[str, Any]) -> None:
        self.checked = protocol.checked
        self.slots = protocol.slots
        self.constants = protocol.constants
        self.types = protocol.types
        self.trace = trace
        self.env = env
        self.worded: dict[int, list[str]] = {}

    def value(self, node: object) -> Any:
        key = id(node)
        if key in self.constants:
            constant = self.constants[key]
            return to_decimal(constant) if isinstance(constant, Fraction) else constant
        return self.trace[self.slots[key]]

    def kids(self, node: object) -> list[object]:
        """The operands of a node, a chain of one connective read as one list."""
        if isinstance(node, s.And | s.Or):
            return list(_chain(node))
        return list(s.children(node))

    # ---- criteria ----

    def criterion_reason(self, criterion: s.Criterion) -> str:
        if criterion.applies_when is not None and self.value(criterion.applies_when) is False:
            return "not applicable: " + self.reason(criterion.applies_when)
        return self.reason(criterion.condition)

    def part_reason(self, item: s.SubCriterion) -> str:
        if item.applies_when is not None and self.value(item.applies_when) is False:
            return "not applicable: " + self.reason(item.applies_when)
        return self.reason(item.condition)

    # ---- reasons ----

    def reason(self, node: s.Expr | None) -> str:
        return "; ".join(dict.fromkeys(self.phrases(node))) if node is not None else ""

    def decisive(self, node: object) -> list[object]:
        """The children whose values decided this node's value."""
        value = self.value(node)
        kids = self.kids(node)
        match node:
            case s.And() | s.Or() | s.Quantified(quantifier="all" | "any"):
                target = value
            case s.Unless(rule=rule, exception=exception):
                if value is False and self.value(rule) is False:
                    return [rule]
                return [rule, exception]
            case _:
                return kids
        if value is None:
            return [k for k in kids if self.value(k) is None]
        chosen = [k for k in kids if self.value(k) is target]
        return chosen or kids

    def phrases(self, node: object) -> list[str]:
        # A criterion's reason repeats its parts' reasons: word each node once.
        key = id(node)
        if key not in self.worded:
            self.worded[key] = self.word(node)
        return self.worded[key]

    def word(self, node: object) -> list[str]:
        match node:
            case s.And() | s.Or() | s.Unless() | s.Quantified() | s.Not():
                return [p for child in self.decisive(node) for p in self.phrases(child)]
            case s.SubCriterion(name=name, applies_when=applies) if (
                applies is not None and self.value(applies) is False
            ):
                return [f"{name.text}: not applicable ({p})" for p in self.phrases(applies)]
            case s.SubCriterion(name=name, condition=condition):
                return [f"{name.text}: {p}" for p in self.phrases(condition)]
            case s.Ref():
                return [f"{self.subject(node)}: {self.yes_no(self.value(node))}"]
            case s.BoolLit(value=value):
                return [f"always {'true' if value else 'false'}"]
            case s.Compare():
                return [self.comparison(node)]
            case s.Between():
                return [self.between(node)]
            case s.Member() | s.Includes():
                return [self.membership(node)]
        return [f"{self.subject(node)}: {self.yes_no(self.value(node))}"]

    def yes_no(self, value: Any) -> str:
        return {True: "yes", False: "no", None: "unknown"}.get(value, "unknown")

    def subject(self, node: object) -> str:
        """What a value is called in a reason: its label, else its name, else 'the value'."""
        if isinstance(node, s.Ref):
            c = self.checked
            declared = c.elements.get(node.name) or c.definitions.get(node.name)
            if declared is not None and declared.label:
                return declared.label
            return node.name
        if isinstance(node, s.RelativeChange):
            return f"{node.direction} from baseline"
        return "the computed value"

    def shown(self, node: object, like: object | None = None) -> str:
        """A node's value with its unit, e.g. '7%' or '1.6 mg/dL', or 'unknown'.

        With `like`, a quantity is shown in the unit of that other node, so a
        reason compares like with like: '0.67 mg/kg/d is not more than 0.8 mg/kg/d'.
        """
        value = self.value(node)
        kind = self.types[id(node)]
        if value is None:
            return "unknown"
        if isinstance(value, Decimal):
            unit = kind.unit if kind.kind == "quantity" else ""
            target = self.types[id(like)] if like is not None else None
            if unit and target is not None and target.kind == "quantity" and target.unit != unit:
                factor = units.factor(unit, target.unit, kind.molar_mass or target.molar_mass)
                value, unit = value * to_decimal(factor), target.unit
            return format_quantity(value, unit)
        if isinstance(value, frozenset):
            return "(" + ", ".join(sorted(value)) + ")" if value else "(none)"
        if isinstance(value, datetime.date):
            return value.isoformat()
        return str(value)

    def comparison(self, node: s.Compare) -> str:
        outcome = self.value(node)
        left = self.shown(node.left, like=node.right)
        right = self.shown(node.right)
        if isinstance(node.left, s.Ref) and not self.is_literal(node.left):
            name = self.subject(node.left)
        else:
            name = self.subject(node.left) if not isinstance(node.left, s.Arithmetic) else "value"
        words = render.COMPARISONS[node.op]
        if self.types[id(node.left)].kind == "enum":
            equal = outcome is (node.op == "=")
            return f"{name}: {left}" + ("" if equal or outcome is None else f", not {right}")
        if outcome is None:
            return f"{name} is unknown (the criterion asks for {words} {right})"
        verb = "is" if outcome else "is not"
        return f"{name} {left} {verb} {words} {right}"

    def is_literal(self, node: s.Ref) -> bool:
        return not (
            node.name in self.checked.elements
            or node.name in self.checked.definitions
            or node.name in self.checked.constants
        )

    def between(self, node: s.Between) -> str:
        outcome = self.value(node)
        name = self.subject(node.subject)
        value = self.shown(node.subject, like=node.low)
        bounds = f"{self.shown(node.low)} and {self.shown(node.high)}"
        closed = "exclusive" if node.exclusive else "inclusive"
        if outcome is None:
            return f"{name} {value}: unknown whether between {bounds} ({closed})"
        verb = "is" if outcome else "is not"
        return f"{name} {value} {verb} between {bounds} ({closed})"

    def membership(self, node: s.Member | s.Includes) -> str:
        outcome = self.value(node)
        name = self.subject(node.subject)
        value = self.shown(node.subject)
        listed = ", ".join(v.text for v in node.values)
        if outcome is None:
            return f"{name}: unknown"
        if isinstance(node, s.Member):
            verb = "is" if outcome else "is not"
            return f"{name} {value} {verb} one of ({listed})"
        held = self.value(node.subject)
        if node.quantifier == "any" and outcome:
            # Name the values that matched, not the whole list.
            matched = ", ".join(sorted(held & {v.text for v in node.values}))
            return f"{name}: {matched}, one of those listed"
        verb = "includes" if outcome else "does not include"
        return f"{name} {value} {verb} {node.quantifier} of ({listed})"

    # ---- missing data ----

    def missing_of(self, criterion: s.Criterion) -> list[str]:
        roots = [criterion.applies_when, criterion.condition]
        return [name for root in roots if root is not None for name in self.missing(root)]

    def missing(self, node: object) -> list[str]:
        """Elements with no value under the unknown parts of `node`."""
        if self.value(node) is not None:
            return []
        if isinstance(node, s.Ref):
            if node.name in self.checked.elements:
                return [node.name] if self.env.get(node.name) is None else []
            if node.name in self.checked.definitions:
                return self.missing(self.checked.definitions[node.name].expr)
            return []
        unknown = [k for k in self.kids(node) if self.value(k) is None]
        found = [name for child in unknown for name in self.missing(child)]
        if not found:
            # A comparison is unknown because an operand is: look below it.
            found = [n for child in self.kids(node) for n in self.missing(child)]
        return found


def format_quantity(value: Decimal, unit: str) -> str:
    """A decimal with its unit in the renderer's words: '7%', '45 years', 'about 1.7 mg/dL'."""
    if value == value.to_integral_value():
        return render.quantity(value.quantize(Decimal(1)), unit)
    exact = value.normalize()
    if len(f"{exact:f}".partition(".")[2]) <= 3:
        return render.quantity(exact, unit)
    # A long or endless fraction (150 umol/L of creatinine in mg/dL): round for reading.
    return "about " + render.quantity(value.quantize(Decimal("0.01")).normalize(), unit)
