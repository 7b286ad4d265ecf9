"""Screening results: status, per-criterion values, reasons in words and numbers, missing data.

The values come from the compiled evaluator's trace; this module only reads
them. Reasons follow the path that decided each value (the false part of an
`and`, the true part of an `or`), so they name the numbers that mattered.
"""

from __future__ import annotations

import datetime
import decimal
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import attrs

from critlang import syntax as s
from critlang import words
from critlang.check import Checked, conversion_words
from critlang.decimals import ARITHMETIC
from critlang.engines.python import Compiled
from critlang.explain import Explanations, Trace
from critlang.lower import Lowered
from critlang.records import Intake, RecordError, given_number, printable, records_from
from critlang.vocab import Kind, Outcome, Truth

ERROR = Outcome.ERROR.value
UNDETERMINED = Outcome.UNDETERMINED.value
INELIGIBLE = Outcome.INELIGIBLE.value
ELIGIBLE = Outcome.ELIGIBLE.value
EXCLUSION = Kind.EXCLUSION.value


# Parts and criterion results are built for every record screened, so they are
# plain slotted records (a frozen attrs __init__ costs three times as much).
@attrs.define
class Part:
    """A named sub-criterion (I2 a, b, c) and its value: what it adds to its list."""

    name: str
    title: str | None
    value: bool | None
    applicable: bool | None
    why: Callable[[Trace], str] = attrs.field(repr=False, eq=False)
    trace: Trace = attrs.field(repr=False, eq=False)

    @property
    def reason(self) -> str:
        """Why, in words and numbers; put into words only when asked for."""
        return self.why(self.trace)

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
    why: Callable[[Trace], str] = attrs.field(repr=False, eq=False)
    trace: Trace = attrs.field(repr=False, eq=False)

    @property
    def reason(self) -> str:
        """Why, in words and numbers; put into words only when asked for."""
        return self.why(self.trace)

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
    # Values given in a unit the protocol accepts or converts by a declared formula,
    # and what they were read as: one sentence each.
    readings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary: id, status, criteria (id, kind, value, reason), missing,
        and `readings` when a value was given in an accepted or converted unit."""
        out: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.error is not None:
            out["error"] = self.error
            return out
        words = _VALUE_WORDS
        criteria = []
        # One dictionary per criterion and part, written out here: this runs for every record.
        for c in self.criteria:
            said: dict[str, Any] = {
                "id": c.id,
                "kind": c.kind,
                "title": c.title,
                "value": words[c.value, c.applicable],
                "reason": c.why(c.trace),
            }
            if c.parts:
                said["parts"] = [
                    {
                        "name": p.name,
                        "title": p.title,
                        "value": words[p.value, p.applicable],
                        "reason": p.why(p.trace),
                    }
                    for p in c.parts
                ]
            criteria.append(said)
        out["criteria"] = criteria
        out["missing"] = list(self.missing)
        if self.readings:
            out["readings"] = list(self.readings)
        return out


_VALUE_WORDS = {
    (value, applicable): Truth.of(value, applicable).value
    for value in (True, False, None)
    for applicable in (True, False, None)
}


_VALUE_JSON = {key: json.dumps(word) for key, word in _VALUE_WORDS.items()}
# How json.dumps(..., ensure_ascii=False) writes a string.
_json_text: Callable[[str], str] = json.encoder.encode_basestring


def _value_word(value: bool | None, applicable: bool | None) -> str:
    return _VALUE_WORDS[value, applicable]


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
        self.record_units = _record_units(self.checked)
        # Syntax nodes are found by identity: hashing a node is a Python call.
        self.slots = {key: node.id for key, node in lowered.origin.items()}
        self.explanations = Explanations(lowered)
        self.plans = tuple(
            _Plan.of(criterion, lowered, self.explanations)
            for criterion in self.checked.protocol.criteria
        )
        self.makers = tuple(plan.maker() for plan in self.plans)
        # What `to_json` writes of each criterion whatever the record: encoded once.
        self.json_heads = tuple((plan.why, plan.head, plan.part_heads) for plan in self.plans)

    def __reduce__(self) -> tuple[Any, ...]:
        from critlang.pipeline import build  # the pipeline builds protocols; it imports this module

        return (build, (self.checked,))

    @property
    def name(self) -> str:
        return self.checked.protocol.name.text

    def status(self, record: Mapping[str, Any], as_of: datetime.date | str | None = None) -> str:
        """Only the overall status of one record: the fast path for bulk screening.

        `as_of` is the reference date (`as of` in the protocol) for a record that
        does not give it; the record's own value wins.
        """
        _, env = self.dated(as_of)(record, 1)
        with decimal.localcontext(ARITHMETIC):
            return self.compiled.status(env)

    def evaluate(
        self, record: Mapping[str, Any], as_of: datetime.date | str | None = None
    ) -> Result:
        """Screen one record; raise RecordError if it does not fit the data dictionary."""
        record_id, env = self.dated(as_of)(record, 1)
        return self.explain(record_id, env, record)

    def evaluate_many(
        self, records: Iterable[Mapping[str, Any]], as_of: datetime.date | str | None = None
    ) -> Iterator[Result]:
        """Screen records one by one; a bad record gives a Result with status 'error'."""
        return self.screen(records_from(records), self.dated(as_of) if as_of else None)

    def dated(self, as_of: datetime.date | str | None) -> Intake:
        """The intake that fills the reference date with `as_of` (ValueError if not a date)."""
        return self.intake if as_of is None else self.intake.dated(as_of)

    def screen(
        self,
        rows: Iterable[tuple[int, Mapping[str, Any] | RecordError]],
        intake: Intake | None = None,
    ) -> Iterator[Result]:
        """One result per row, in order: a row that cannot be read or screened is an `error`.

        `intake` reads each record (the protocol's own, which ignores unknown
        fields, unless another is given: another id field, strict fields).
        """
        take = self.intake if intake is None else intake
        for position, row in rows:
            if isinstance(row, RecordError):
                yield Result(row.record_id, ERROR, error=str(row))
                continue
            try:
                record_id, env = take(row, position)
            except RecordError as error:
                yield Result(error.record_id, ERROR, error=str(error))
                continue
            try:
                yield self.explain(record_id, env, row)
            except (ArithmeticError, ValueError, RecursionError) as error:
                yield failed(record_id, error)

    def explain(
        self, record_id: str, env: dict[str, Any], record: Mapping[str, Any] | None = None
    ) -> Result:
        """The full result for an environment already taken in (from `record`, if given:
        its values in accepted or converted units are then told in `readings`)."""
        with decimal.localcontext(ARITHMETIC):
            trace = self.compiled.trace(env)
        results = tuple([make(trace) for make in self.makers])
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
                    for root in plan.roots
                    for name in self.explanations.missing(root, trace, env)
                )
            )
        readings = self.readings(record, env) if record is not None and self.record_units else ()
        return Result(record_id, status, results, missing, readings=readings)

    def to_json(self, result: Result) -> str:
        """`json.dumps(result.to_dict(), ensure_ascii=False)`, the same text, written from
        pieces encoded once per protocol: only the record's own words are encoded here."""
        criteria = result.criteria
        # A subclass's to_dict says more (the FHIR screen's sources): json.dumps writes it.
        if (
            type(result) is not Result
            or result.error is not None
            or len(criteria) != len(self.plans)
        ):
            return json.dumps(result.to_dict(), ensure_ascii=False)
        text, words = _json_text, _VALUE_JSON
        written = []
        for (why, head, part_heads), c in zip(self.json_heads, criteria, strict=True):
            if c.why is not why:  # a result of another protocol
                return json.dumps(result.to_dict(), ensure_ascii=False)
            one = f'{head}{words[c.value, c.applicable]}, "reason": {text(c.why(c.trace))}'
            if c.parts:
                parts = ", ".join(
                    [
                        f'{part_head}{words[p.value, p.applicable]}, "reason": {text(p.why(p.trace))}}}'
                        for part_head, p in zip(part_heads, c.parts, strict=True)
                    ]
                )
                one += f', "parts": [{parts}]'
            written.append(one + "}")
        missing = ", ".join([text(name) for name in result.missing])
        line = (
            f'{{"id": {text(result.id)}, "status": {text(result.status)}, '
            f'"criteria": [{", ".join(written)}], "missing": [{missing}]'
        )
        if result.readings:
            line += f', "readings": [{", ".join([text(r) for r in result.readings])}]'
        return line + "}"

    def readings(self, record: Mapping[str, Any], env: Mapping[str, Any]) -> tuple[str, ...]:
        """What each value given in an accepted or converted unit was read as."""
        told = []
        for name, declared in self.record_units.items():
            given = record.get(name)
            if not isinstance(given, Mapping) or name not in env:
                continue
            found = declared.get(given.get("unit"))  # type: ignore[arg-type]
            if found is not None:
                subject, unit, how = found
                number = given_number(given["value"])
                told.append(words.reading(subject, number, given["unit"], env[name], unit, how))
        return tuple(told)


def _record_units(checked: Checked) -> dict[str, dict[str, tuple[str, str, str]]]:
    """Per element, each unit it accepts or converts: (subject, declared unit, formula or '')."""
    found: dict[str, dict[str, tuple[str, str, str]]] = {}
    for name, element in checked.elements.items():
        if not (element.accepts or element.conversions):
            continue
        unit = checked.element_types[name].unit
        subject = element.label or name
        known = {ref.code: (subject, unit, "") for ref in element.accepts}
        known |= {c.unit.code: (subject, unit, conversion_words(c)) for c in element.conversions}
        found[name] = known
    return found


def failed(record_id: str, error: BaseException) -> Result:
    """The error result of a record whose evaluation or explanation raised `error`."""
    kind = "arithmetic overflow" if isinstance(error, decimal.Overflow) else type(error).__name__
    return Result(
        record_id, ERROR, error=f"record {printable(record_id)}: cannot be evaluated ({kind})"
    )


def _status(results: tuple[CriterionResult, ...]) -> str:
    settled = True
    for r in results:
        # An exclusion met or an inclusion not met (value True / False, never None).
        if r.value is (r.kind == EXCLUSION):
            return INELIGIBLE
        if r.value is None:
            settled = False
    return ELIGIBLE if settled else UNDETERMINED


@attrs.frozen
class _Plan:
    """Where one criterion's values sit in the trace and how it reads, worked out once."""

    node: s.Criterion
    value_slot: int
    applies_slot: int | None
    why: Callable[[Trace], str]
    parts: tuple[tuple[s.SubCriterion, int, int | None, Callable[[Trace], str]], ...]

    @property
    def head(self) -> str:
        """The JSON of its `to_dict()` up to the value: the same for every record."""
        node = self.node
        fixed = {"id": node.id.text, "kind": node.kind, "title": node.title}
        return json.dumps(fixed, ensure_ascii=False)[:-1] + ', "value": '

    @property
    def part_heads(self) -> tuple[str, ...]:
        return tuple(
            json.dumps({"name": item.name.text, "title": item.title}, ensure_ascii=False)[:-1]
            + ', "value": '
            for item, *_ in self.parts
        )

    @property
    def roots(self) -> tuple[s.Expr, ...]:
        applies = self.node.applies_when
        return (self.node.condition,) if applies is None else (applies, self.node.condition)

    @classmethod
    def of(cls, criterion: s.Criterion, lowered: Lowered, words: Explanations) -> _Plan:
        def slot(node: object | None) -> int | None:
            return None if node is None else lowered.origin[id(node)].id

        items = criterion.condition.items if isinstance(criterion.condition, s.Quantified) else ()
        parts = tuple(
            (
                item,
                lowered.origin[id(item)].id,
                slot(item.applies_when),
                words.applicable_reason(item.applies_when, item.condition),
            )
            for item in items
            if isinstance(item, s.SubCriterion)
        )
        why = words.applicable_reason(criterion.applies_when, criterion.condition)
        return cls(
            criterion, lowered.origin[id(criterion)].id, slot(criterion.applies_when), why, parts
        )

    def maker(self) -> Callable[[Trace], CriterionResult]:
        """`result`, with everything that is the same for every record looked up once."""
        node = self.node
        id_, kind, title, why = node.id.text, node.kind, node.title, self.why
        value_slot, applies_slot = self.value_slot, self.applies_slot
        specs = tuple((item.name.text, item.title, v, a, w) for item, v, a, w in self.parts)
        if not specs and applies_slot is None:
            return lambda t: CriterionResult(id_, kind, title, t[value_slot], True, (), why, t)

        def result(t: Trace) -> CriterionResult:
            parts = tuple(
                [
                    Part(name, heading, t[v], True if a is None else t[a], reason, t)
                    for name, heading, v, a, reason in specs
                ]
            )
            applicable = True if applies_slot is None else t[applies_slot]
            return CriterionResult(id_, kind, title, t[value_slot], applicable, parts, why, t)

        return result

    def result(self, trace: Trace) -> CriterionResult:
        node = self.node
        parts = tuple(
            [
                Part(
                    item.name.text,
                    item.title,
                    trace[value_slot],
                    True if applies_slot is None else trace[applies_slot],
                    why,
                    trace,
                )
                for item, value_slot, applies_slot, why in self.parts
            ]
        )
        applicable = True if self.applies_slot is None else trace[self.applies_slot]
        return CriterionResult(
            node.id.text,
            node.kind,
            node.title,
            trace[self.value_slot],
            applicable,
            parts,
            self.why,
            trace,
        )
