"""Solving and witnesses: patients z3 finds, written as records the Python engine confirms.

A `Solver` asks questions of the z3 engine's formulas over records in which
every data element is known and within its plausible range. A `Witness` is
a patient record in the integrator format (quantities as numbers in their
declared units), rounded where the constraints allow and shrunk to the
fields that matter, together with z3's predictions and what the Python
engine said of the same record.
"""

from __future__ import annotations

import datetime
import decimal
import json
from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import attrs
import z3

from critlang import ir
from critlang.decimals import ARITHMETIC, to_decimal
from critlang.engines.z3 import (
    Z3,
    Elements,
    Encoding,
    History,
    Status,
    Tri,
    fraction,
    real,
    truth,
)
from critlang.evaluate import Protocol, Result
from critlang.records import parse_json
from critlang.units import DIMENSIONLESS

TIMEOUT_MS = 20_000
ROUNDING_DIGITS = (0, 1, 2, 3, 4, 6)


class Inconclusive(Exception):
    """z3 gave up (timeout or a nonlinear corner): the question stays open."""


@attrs.frozen
class Observation:
    """Something z3 predicts about a witness, for the Python engine to confirm.

    `kind` is "status", "criterion" (target: its id) or "node" (target: a node
    of the syntax tree, read from the engine's trace); `formula` is its value
    as the z3 engine has it.
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
    """A patient record, and z3's predictions with what the Python engine said."""

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


def word(value: object) -> str:
    """A value as the claims show it: a status, or true / false / unknown."""
    if isinstance(value, str):
        return value
    if value is None:
        return "unknown"
    return "true" if value is True else "false" if value is False else repr(value)


class Solver:
    """Questions about one protocol, asked of the z3 engine and answered with witnesses."""

    def __init__(
        self,
        protocol: Protocol,
        elements: Elements | None = None,
        ranges: dict[str, tuple[Fraction, Fraction]] | None = None,
    ) -> None:
        """`elements` and `ranges` default to the protocol's own; `critlang diff` passes
        the elements of two versions of a protocol, so both are encoded over one record."""
        self.protocol = protocol
        program = protocol.lowered.program
        self.elements = elements or Elements(program.elements)
        self.encoding = Encoding(program, self.elements)
        self.status: Status = self.encoding.status()
        self.ranges = plausible_ranges(protocol) if ranges is None else ranges
        self.domain = self.elements.domain(self.ranges, program)
        # Values on the edge of a plausible range (a creatinine of 0) read badly.
        self.inside = [
            z3.And(self.elements.raw[name] > real(low), self.elements.raw[name] < real(high))
            for name, (low, high) in self.ranges.items()
            if name in self.elements.raw
        ]

    def solver(self, constraints: Iterable[Z3]) -> Z3:
        solver = z3.Solver()
        solver.set("timeout", TIMEOUT_MS)
        solver.add(*self.domain)
        solver.add(*constraints)
        return solver

    def satisfiable(self, constraints: Iterable[Z3], question: str) -> bool:
        verdict = self.solver(constraints).check()
        if verdict == z3.unknown:
            raise Inconclusive(question)
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
        matter, and checked against the Python engine for everything in `observed`."""
        model = self.model(constraints)
        if model is None:
            return None
        record = self.record(model)
        predicted = {o.label: self.predict(model, o) for o in observed}
        record = self.shrink(record, observed, predicted)
        actual = self.observe(record, observed)
        claims = tuple(Claim(o.label, predicted[o.label], actual[o.label]) for o in observed)
        return Witness(record, claims)

    def model(self, constraints: list[Z3]) -> Z3 | None:
        """A model of `constraints`, away from the edges of the ranges and with round numbers
        where the constraints allow."""
        solver = self.solver(constraints)
        if solver.check() != z3.sat:
            return None
        solver.push()
        solver.add(*self.inside)
        if solver.check() != z3.sat:
            solver.pop()
            if solver.check() != z3.sat:
                return None
        model = solver.model()
        for name in self.numbers():
            model = self.round(solver, model, name)
        for var, limits in self.entry_numbers():
            model = self.round_var(solver, model, var, limits)
        return model

    def entry_numbers(self) -> list[tuple[Z3, tuple[Fraction, Fraction] | None]]:
        """The numbers of every history entry (value, limits, dose), to round as well."""
        out: list[tuple[Z3, tuple[Fraction, Fraction] | None]] = []
        for name, held in self.elements.values.items():
            if isinstance(held, History):
                for slot in held.slots:
                    for number in slot.values():
                        if z3.is_real(number.value):
                            out.append((number.value, self.ranges.get(name)))
        return out

    def numbers(self) -> list[str]:
        return [name for name, kind in self.elements.types.items() if kind.numeric]

    def round(self, solver: Z3, model: Z3, name: str) -> Z3:
        """Fix a number to a round value the constraints allow: near its model value if
        possible, else a round number (1, 2, 5 times a power of ten) within its range."""
        return self.round_var(solver, model, self.elements.raw[name], self.ranges.get(name))

    def round_var(
        self, solver: Z3, model: Z3, var: Z3, limits: tuple[Fraction, Fraction] | None
    ) -> Z3:
        exact = fraction(model.eval(var, model_completion=True))
        near = [round(exact, digits) for digits in ROUNDING_DIGITS]
        for candidate in [*near, *_ladder(exact, limits)]:
            if candidate == exact:
                break
            solver.push()
            solver.add(var == real(candidate))
            if solver.check() == z3.sat:
                return solver.model()
            solver.pop()
        solver.add(var == real(exact))
        return model

    def record(self, model: Z3) -> dict[str, Any]:
        """The patient a model describes, in the integrator format."""
        record = {
            name: _integrator(value, self.elements.types[name].values)
            for name, value in self.elements.read(model).items()
        }
        for name, kind in self.elements.types.items():
            if kind.kind == "history" and kind.unit != DIMENSIONLESS and record.get(name):
                # Each number of an entry is in the history's declared unit.
                for entry in record[name]:
                    if "value" in entry or "dose" in entry:
                        entry["unit"] = kind.unit
        parsed: dict[str, Any] = parse_json(json.dumps(record, default=_json_number))
        return parsed

    def predict(self, model: Z3, observation: Observation) -> str:
        if observation.kind == "status":
            return self.status.of(model).value
        assert observation.formula is not None
        return word(truth(model, observation.formula))

    def observe(self, record: dict[str, Any], observed: list[Observation]) -> dict[str, str]:
        """What the Python engine says about each observation for this record."""
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
                out[o.label] = word(criteria[str(o.target)])
            else:
                out[o.label] = word(trace[slots[id(o.target)]])
        return out

    def shrink(
        self, record: dict[str, Any], observed: list[Observation], predicted: dict[str, str]
    ) -> dict[str, Any]:
        """Leave out every field the Python engine does not need to say the same things."""
        if self.observe(record, observed) != predicted:
            return record
        for name in list(record):
            trial = {k: v for k, v in record.items() if k != name}
            if self.observe(trial, observed) == predicted:
                record = trial
        return record


def plausible_ranges(protocol: Protocol) -> dict[str, tuple[Fraction, Fraction]]:
    """The plausible range of each numeric data element that declares one."""
    return {
        name: (Fraction(e.plausible_range[0]), Fraction(e.plausible_range[1]))
        for name, e in protocol.checked.elements.items()
        if e.plausible_range is not None
    }


def _integrator(value: ir.Value | None, declared: tuple[str, ...]) -> Any:
    """An element's value as an integrator writes it in a record."""
    if isinstance(value, Fraction):
        return to_decimal(value)
    if isinstance(value, frozenset):
        return [v for v in declared if v in value]
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, list):  # a history: its entries, each a dict of its fields
        return [{k: _integrator(v, ()) for k, v in entry.items()} for entry in value]
    return value


def _ladder(exact: Fraction, limits: tuple[Fraction, Fraction] | None) -> list[Fraction]:
    """Round numbers within `limits`, nearest to `exact` first."""
    if limits is None:
        return []
    low, high = limits
    steps = [Fraction(m) * Fraction(10) ** e for e in range(-3, 5) for m in (1, 2, 5)]
    inside = [value for value in steps if low <= value <= high]
    return sorted(inside, key=lambda value: abs(value - exact))
