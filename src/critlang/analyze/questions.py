"""The questions `critlang analyze` asks, and its findings.

Every formula comes from the z3 engine (`critlang.engines.z3`) over the
lowered program; the syntax tree is only read to name criteria and parts,
find spans, and recognise bands (through `Lowered.origin`).
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import attrs
import z3

from critlang import syntax as s
from critlang.analyze import words
from critlang.analyze.bands import Band, Bands, Group, Interval, holes, seams
from critlang.analyze.witness import Inconclusive, Observation, Solver, Witness
from critlang.diagnostics import Diagnostic
from critlang.engines.z3 import Z3, Encoding, Tri, real
from critlang.evaluate import Protocol
from critlang.fmt import NO_SPAN, example_text, expression_text

# A protocol that fails these cannot be run as written: `critlang analyze` exits 1.
BLOCKING = frozenset({"CRIT101", "CRIT102", "CRIT103"})


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

    @property
    def blocking(self) -> tuple[Finding, ...]:
        """Findings that make the protocol unusable: nobody eligible, a criterion that never
        decides anything because it can never pass or never fail."""
        return tuple(f for f in self.findings if f.diagnostic.is_error)


@attrs.frozen
class Proposal:
    """A boundary example block, and the witness it was made from."""

    example: s.Example
    witness: Witness

    def text(self) -> str:
        return example_text(self.example)


def analyze(protocol: Protocol) -> Report:
    """Analyse a compiled protocol; every witness is checked against the Python engine."""
    return _Analysis(protocol).run()


def boundary_examples(protocol: Protocol) -> list[Proposal]:
    """Example blocks on and just past each bound that decides a criterion, for a patient
    who meets every other criterion; the expected outcome is what the evaluator says."""
    return _Analysis(protocol).boundaries()


class _Analysis:
    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol
        self.checked = protocol.checked
        self.origin = protocol.lowered.origin
        self.criteria = self.checked.protocol.criteria
        program = protocol.lowered.program
        self.lowered = {c.id: c for c in program.criteria}
        self.solving = Solver(protocol)
        self.encoding = self.solving.encoding
        self.passes = {c.id: self.encoding.passes(c) for c in program.criteria}
        self.bands = Bands(protocol.lowered)
        self.findings: list[Finding] = []
        self.inconclusive: list[str] = []
        # Until someone is known to be eligible, "given the other criteria" means nothing.
        self.anyone_eligible = False

    # ---- formulas of syntax nodes, from the z3 engine ----

    def value(self, node: object) -> Tri:
        """A syntax node's condition, as the z3 engine encodes the IR node holding it."""
        return self.encoding.condition(self.origin[id(node)])

    def criterion_observation(self, criterion: s.Criterion) -> Observation:
        ident = criterion.id.text
        return Observation(ident, "criterion", ident, self.encoding.criterion(self.lowered[ident]))

    def node_observation(self, label: str, node: object) -> Observation:
        return Observation(label, "node", node, self.value(node))

    def status_observation(self) -> Observation:
        return Observation("status", "status", None)

    def everyone(self) -> list[Observation]:
        return [self.status_observation(), *(self.criterion_observation(c) for c in self.criteria)]

    def satisfiable(self, constraints: list[Z3], question: str) -> bool:
        return self.solving.satisfiable(constraints, question)

    def witness(self, constraints: list[Z3], observed: list[Observation]) -> Witness | None:
        return self.solving.witness(constraints, observed)

    def add(
        self, code: str, span: s.Span, message: str, hint: str | None, witness: Witness | None
    ) -> None:
        severity = "error" if code in BLOCKING else "warning"
        self.findings.append(Finding(Diagnostic(code, severity, span, message, hint), witness))

    # ---- the questions ----

    def run(self) -> Report:
        eligible: Witness | None = None
        try:
            eligible = self.eligibility()
        except Inconclusive as open_question:
            self.inconclusive.append(f"whether anyone can be eligible ({open_question})")
        for criterion in self.criteria:
            self.ask(f"whether {criterion.id.text} decides", self.decides, criterion)
        for criterion in self.criteria:
            for node, owner in _quantified(criterion):
                self.ask(f"the alternatives of {owner}", self.alternatives, criterion, node, owner)
            for group, owner in self.bands.groups(criterion):
                self.ask(f"the bands in {owner}", self.banded, group, owner)
        findings = sorted(
            self.findings,
            key=lambda f: (f.diagnostic.span.line, f.diagnostic.span.column, f.diagnostic.code),
        )
        return Report(eligible, tuple(findings), tuple(self.inconclusive))

    def ask(self, question: str, method: Any, *args: Any) -> None:
        try:
            method(*args)
        except Inconclusive:
            self.inconclusive.append(question)

    def eligibility(self) -> Witness | None:
        """An eligible patient, or CRIT101 with the criteria that contradict each other."""
        everything = list(self.passes.values())
        witness = self.witness(everything, self.everyone())
        if witness is not None:
            self.anyone_eligible = True
            return witness
        if self.satisfiable(everything, "eligibility"):
            raise Inconclusive("eligibility")
        clash = self.solving.core([], self.passes)
        named = [c for c in self.criteria if c.id.text in clash]
        last = named[-1]
        observed = [self.status_observation(), *(self.criterion_observation(c) for c in named)]
        example = self.witness([self.passes[c.id.text] for c in named[:-1]], observed)
        together = (
            f"{last.id.text} can never be {'met' if last.kind == 'inclusion' else 'absent'}"
            if len(named) == 1
            else f"{words.both([c.id.text for c in named])} cannot all be passed together"
        )
        met = words.both([c.id.text for c in named[:-1]]) or "nothing"
        self.add(
            "CRIT101",
            self.checked.protocol.name.span,
            f"no patient can be eligible: {together}",
            f"the witness meets {met}, and then {last.id.text} fails",
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
        blockers = self.solving.core([z3.Not(passes)], others)
        named = [c for c in self.criteria if c.id.text in blockers]
        observed = [
            self.criterion_observation(criterion),
            *(self.criterion_observation(c) for c in named),
            self.status_observation(),
        ]
        witness = self.witness([z3.Not(passes)], observed)
        blocking = words.either([c.id.text for c in named])
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
        """CRIT105 and CRIT107 for the named sub-criteria of an `any of` / `all of`."""
        subs = [i for i in node.items if isinstance(i, s.SubCriterion)]
        others = {c.id.text: self.passes[c.id.text] for c in self.criteria if c is not criterion}
        if not self.anyone_eligible:
            others = {}
        for sub in subs:
            self.sole_reason(node, owner, sub, others)
        if node.quantifier == "any" and len(subs) > 1:
            self.overlaps(node, owner, subs)

    def sole_reason(
        self, node: s.Quantified, owner: str, sub: s.SubCriterion, others: dict[str, Z3]
    ) -> None:
        """CRIT105: can `sub` be the one item that settles its list (the only true item
        of an `any of`, the only false one of an `all of`) for a patient the others admit?"""
        if node.quantifier not in ("any", "all"):
            return
        settling = node.quantifier == "any"

        def settles(item: object) -> Z3:
            value = self.value(item)
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
        named = [c for c in self.criteria if c.id.text in self.solving.core(alone, others)]
        observed += [self.criterion_observation(c) for c in named]
        self.add(
            "CRIT105",
            sub.name.span,
            f"sub-criterion {name} never settles {owner} on its own for a patient the other "
            f"criteria admit: whenever it is the only item that {held}, {words.failing(named)}",
            f"it repeats {words.both([c.id.text for c in named])}; check the registered text",
            self.witness(alone, observed),
        )

    def overlaps(self, node: s.Quantified, owner: str, subs: list[s.SubCriterion]) -> None:
        """CRIT107, once per list: the groups of alternatives one patient can meet at once."""
        holds = {id(sub): self.value(sub).true for sub in subs}
        question = f"whether {owner} overlaps"
        meets = {
            (id(a), id(b))
            for a, b in itertools.combinations(subs, 2)
            if self.satisfiable([holds[id(a)], holds[id(b)]], question)
        }
        if not meets:
            return
        groups = _groups(
            subs, meets, lambda group: self.satisfiable([holds[id(sub)] for sub in group], question)
        )
        listed = "; ".join(words.both([sub.name.text for sub in group]) for group in groups)
        largest = max(groups, key=len)
        observed = [self.node_observation(f"{owner} {sub.name.text}", sub) for sub in largest]
        message = f"the alternatives of {owner} overlap: one patient can meet " + (
            f"{listed} at once" if len(groups) == 1 else f"each of these groups at once: {listed}"
        )
        self.add(
            "CRIT107",
            node.span,
            message,
            "overlapping alternatives are often intended; "
            "if they are meant to be exclusive, tighten their bounds",
            self.witness([holds[id(sub)] for sub in largest], observed),
        )

    def banded(self, group: Group, owner: str) -> None:
        """CRIT108-110: bands of one quantity across the alternatives of a disjunction."""
        for bands in group.by_subject().values():
            if len({b.alternative for b in bands}) < 2:
                continue
            self.band_findings(group, owner, bands)

    def band_findings(self, group: Group, owner: str, bands: list[Band]) -> None:
        first_band = bands[0]
        x = self.encoding.number(first_band.quantity)
        name = words.subject(self.checked, first_band.subject)
        unit = first_band.unit

        def shown(band: Band) -> str:
            text = f"'{words.interval(band.interval, unit)}'"
            return f"{text} (in {band.label})" if band.label else text

        listed = "; ".join(shown(b) for b in bands)
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
                f"in {owner}, the bands of {name} overlap: {words.interval(common, unit)} is "
                f"both {shown(first)} and {shown(second)}",
                "if the bands are meant to split the range, make one of the shared bounds strict",
                self.witness([x.known, _within(common, x.value)], observed),
            )
        for hole in holes([b.interval for b in bands]):
            if x.value.is_int() and not hole.has_whole():
                continue  # a gap between whole numbers, such as 2 < n < 3, holds no count
            clean = False
            self.add(
                "CRIT108",
                group.node.span,
                f"in {owner}, the bands of {name} ({listed}) leave a gap: "
                f"{words.interval(hole, unit)} is in none of them",
                "a patient in the gap meets none of these alternatives; check the registered bands",
                self.witness([x.known, _within(hole, x.value)], observed),
            )
        meeting = seams(bands)
        # Bands that meet are worth a note (who owns the boundary); bands that do not
        # meet and leave no gap are `x < 20 or x > 80`, "outside a range".
        if clean and meeting:
            where = "; ".join(
                f"exactly {words.quantity(point, unit)} belongs to {shown(band)}"
                for point, band in meeting
            )
            self.add(
                "CRIT110",
                group.node.span,
                f"in {owner}, the bands of {name} ({listed}) neither overlap nor leave "
                f"a gap: {where}",
                None,
                self.witness([x.known, x.value == real(meeting[0][0])], observed),
            )

    # ---- boundary examples ----

    def boundaries(self) -> list[Proposal]:
        """Example patients on and just past each constant bound that decides its criterion."""
        proposals: list[Proposal] = []
        written: set[str] = set()
        program = self.protocol.lowered.program
        for criterion in self.criteria:
            ident = criterion.id.text
            others = [self.passes[c.id.text] for c in self.criteria if c is not criterion]
            for node, owner in _owned(criterion):
                band = self.bands.band(node)
                if band is None:
                    continue
                # The criterion with this one comparison come out the other way.
                lowered = self.origin[id(node)]
                flipped = Encoding(
                    program,
                    self.solving.elements,
                    replace={lowered.id: self.encoding.condition(lowered).flipped()},
                ).passes(self.lowered[ident])
                x = self.encoding.number(band.quantity)
                condition = expression_text(band.node)
                observed = [
                    self.node_observation(condition, band.node),
                    self.criterion_observation(criterion),
                    self.status_observation(),
                ]
                for point, bound in band.interval.points(whole=x.value.is_int()):
                    decides = [x.known, x.value == real(point), self.passes[ident] != flipped]
                    try:
                        witness = self.witness([*decides, *others], observed)
                    except Inconclusive:
                        continue
                    if witness is None or not witness.confirmed or witness.json() in written:
                        continue
                    written.add(witness.json())
                    value = words.quantity_literal(point, band.unit)
                    if point != bound:
                        side = "above" if point > bound else "below"
                        value += f", just {side} {words.quantity_literal(bound, band.unit)}"
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
            elif kind.kind in ("enum", "ordinal"):
                shown = s.Name(str(value), NO_SPAN)
            elif kind.kind == "set":
                shown = tuple(s.Name(str(v), NO_SPAN) for v in value)
            else:
                shown = s.DateLit(datetime.date.fromisoformat(str(value)), NO_SPAN)
            fields.append(s.ExampleField(s.Name(name, NO_SPAN), shown, NO_SPAN))
        return tuple(fields)


def _within(interval: Interval, x: Z3) -> Z3:
    parts = []
    if interval.low is not None:
        parts.append(x >= real(interval.low) if interval.low_closed else x > real(interval.low))
    if interval.high is not None:
        parts.append(x <= real(interval.high) if interval.high_closed else x < real(interval.high))
    return z3.And(*parts)


def _groups(
    subs: list[s.SubCriterion],
    meets: set[tuple[int, int]],
    together: Callable[[list[s.SubCriterion]], bool],
) -> list[list[s.SubCriterion]]:
    """Groups of alternatives that can all hold at once, covering every overlapping pair.

    Each group grows from its first pair not yet covered, taking every later
    alternative that still leaves the whole group satisfiable.
    """

    def meet(a: s.SubCriterion, b: s.SubCriterion) -> bool:
        return (id(a), id(b)) in meets or (id(b), id(a)) in meets

    groups: list[list[s.SubCriterion]] = []
    covered: set[tuple[int, int]] = set()
    for a, b in itertools.combinations(subs, 2):
        if not meet(a, b) or (id(a), id(b)) in covered:
            continue
        group = [a, b]
        for c in subs:
            if c in group or not all(meet(c, member) for member in group):
                continue
            if together([*group, c]):
                group.append(c)
        group.sort(key=subs.index)
        groups.append(group)
        covered |= {(id(x), id(y)) for x, y in itertools.combinations(group, 2)}
    return groups


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
