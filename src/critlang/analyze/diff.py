"""`critlang diff OLD NEW`: what changed between two versions of a protocol, and for whom.

Criteria are matched by id. A criterion present in both versions is
*changed* when z3 finds a patient for whom it takes another value (both
versions encoded by the z3 engine over one record); the change is put into
words from the text (a bound moved, a constant or definition it uses
changed), and a witness patient shows it. A criterion whose text changed but
whose value is the same for every patient is *rewritten*. Finally z3 looks
for a patient whose status differs between the versions. Every witness is
run through both versions' Python engines.

Scope: as `critlang analyze`, records in which every data element is known,
within the plausible ranges of both versions.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs
import z3

from critlang import syntax as s
from critlang.analyze.witness import Claim, Inconclusive, Solver, Witness, plausible_ranges, word
from critlang.engines.z3 import Z3, Elements, Encoding, Tri, truth
from critlang.evaluate import Protocol
from critlang.fmt import NO_SPAN, expression_text, literal, without_spans
from critlang.words import quantity as in_words

if TYPE_CHECKING:
    from critlang.shift import Shift


@attrs.frozen
class Change:
    """One difference in words, and a patient it makes a difference for (if any)."""

    text: str
    witness: Witness | None = None


@attrs.frozen
class Diff:
    changes: tuple[Change, ...]
    status: Witness | None  # a patient whose status differs; None when there is none
    inconclusive: tuple[str, ...]
    problems: tuple[str, ...]  # why z3 could not compare the versions (a data element retyped)

    @property
    def confirmed(self) -> bool:
        witnesses = [self.status, *(c.witness for c in self.changes)]
        return all(w.confirmed for w in witnesses if w is not None)

    @property
    def differs(self) -> bool:
        return self.status is not None or any(c.witness is not None for c in self.changes)


def diff(old: Protocol, new: Protocol) -> Diff:
    """Compare two versions of a protocol."""
    return _Diff(old, new).run()


def render_diff(result: Diff, old: str, new: str) -> str:
    lines = [f"critlang diff: {old} → {new} (z3 over records in which every element is known)"]
    lines += result.problems
    for change in result.changes:
        lines.append(change.text)
        if change.witness is not None:
            lines += [f"  witness: {change.witness.json()}", f"  {_described(change.witness)}"]
    if result.status is not None:
        lines += [
            f"a patient whose status differs: {result.status.json()}",
            f"  {_described(result.status)}",
        ]
    elif not result.problems and not result.inconclusive:
        lines.append("no patient's status differs between the two versions")
    lines += [f"z3 could not settle {question}" for question in result.inconclusive]
    return "\n".join(lines)


def render_diff_html(result: Diff, old: str, new: str, shift: Shift | None = None) -> str:
    """The diff as a self-contained HTML page (autoescaped: every protocol text is escaped)."""
    from critlang.pages import page  # only the page needs templates

    return page("diff.html.j2", result=result, old=old, new=new, shift=shift, described=_described)


def _described(witness: Witness) -> str:
    told = ", ".join(f"{c.label} {c.actual}" for c in witness.claims)
    if witness.confirmed:
        return f"both compiled evaluators confirm: {told}"
    wrong = "; ".join(
        f"{c.label}: z3 {c.predicted}, evaluator {c.actual}" for c in witness.claims if not c.holds
    )
    return f"NOT confirmed by the compiled evaluators ({wrong})"


class _Diff:
    def __init__(self, old: Protocol, new: Protocol) -> None:
        self.old, self.new = old, new
        self.a, self.b = old.checked, new.checked
        self.changes: list[Change] = []
        self.inconclusive: list[str] = []
        self.problems: list[str] = []
        types = dict(old.lowered.program.elements)
        for name, kind in new.lowered.program.elements:
            if name in types and types[name] != kind:
                self.problems.append(
                    f"data element {name} changed type ({types[name].describe()} → "
                    f"{kind.describe()}): the versions cannot be compared on one record"
                )
            types.setdefault(name, kind)
        self.elements = Elements(types.items())
        ranges = plausible_ranges(old)
        for name, (low, high) in plausible_ranges(new).items():
            before = ranges.get(name, (low, high))
            ranges[name] = (max(low, before[0]), min(high, before[1]))
        self.solving = Solver(old, self.elements, ranges)
        self.before = self.solving.encoding
        self.after = Encoding(new.lowered.program, self.elements)
        self.lowered = (
            {c.id: c for c in old.lowered.program.criteria},
            {c.id: c for c in new.lowered.program.criteria},
        )

    def run(self) -> Diff:
        self.dictionary()
        self.named()
        if self.problems:
            return Diff(tuple(self.changes), None, (), tuple(self.problems))
        self.criteria()
        status: Witness | None = None
        try:
            status = self.status()
        except Inconclusive:
            self.inconclusive.append("whether any patient's status differs")
        return Diff(tuple(self.changes), status, tuple(self.inconclusive), ())

    # ---- the text: data elements, constants, definitions ----

    def dictionary(self) -> None:
        old, new = self.a.elements, self.b.elements
        for name in new.keys() - old.keys():
            self.changes.append(Change(f"data element {name} added"))
        for name in old.keys() - new.keys():
            self.changes.append(Change(f"data element {name} removed"))
        for name in sorted(old.keys() & new.keys()):
            before, after = old[name].plausible_range, new[name].plausible_range
            if before != after:
                unit = self.b.element_types[name].unit
                self.changes.append(
                    Change(
                        f"data element {name}: range {_range(before, unit)} → {_range(after, unit)}"
                    )
                )

    def named(self) -> None:
        """Constants and definitions whose value or expression changed."""
        old_constants, new_constants = self.a.constants, self.b.constants
        for name in sorted(old_constants.keys() & new_constants.keys()):
            before, after = old_constants[name].value, new_constants[name].value
            if without_spans(before) != without_spans(after):
                self.changes.append(Change(f"constant {name}: {_change(before, after)}"))
        old_defs, new_defs = self.a.definitions, self.b.definitions
        for name in sorted(old_defs.keys() & new_defs.keys()):
            before_expr, after_expr = old_defs[name].expr, new_defs[name].expr
            if without_spans(before_expr) != without_spans(after_expr):
                words = _literal_changes(before_expr, after_expr, name)
                self.changes.extend(Change(w) for w in words)

    # ---- criteria ----

    def criteria(self) -> None:
        old = {c.id.text: c for c in self.a.protocol.criteria}
        new = {c.id.text: c for c in self.b.protocol.criteria}
        for ident, criterion in new.items():
            if ident not in old:
                self.changes.append(Change(f'{ident} added: {criterion.kind} "{criterion.title}"'))
        for ident, criterion in old.items():
            if ident not in new:
                self.changes.append(
                    Change(f'{ident} removed: {criterion.kind} "{criterion.title}"')
                )
        for ident in [i for i in old if i in new]:
            try:
                self.criterion(old[ident], new[ident])
            except Inconclusive:
                self.inconclusive.append(f"whether {ident} changed")

    def criterion(self, before: s.Criterion, after: s.Criterion) -> None:
        ident = before.id.text
        if before.kind != after.kind:
            self.changes.append(Change(f"{ident}: {before.kind} → {after.kind}"))
            return
        old_value = self.before.criterion(self.lowered[0][ident])
        new_value = self.after.criterion(self.lowered[1][ident])
        apart = z3.Or(old_value.true != new_value.true, old_value.false != new_value.false)
        text_changed = _text(before) != _text(after)
        if not self.solving.satisfiable([apart], f"whether {ident} changed"):
            if text_changed:
                self.changes.append(
                    Change(f"{ident}: rewritten; z3 finds no patient it judges differently")
                )
            return
        words = _criterion_changes(before, after, self.a, self.b)
        # Best, a patient the other criteria admit in both versions: then the change
        # decides the status.
        others = [
            encoding.passes(c)
            for encoding, criteria in (
                (self.before, self.lowered[0]),
                (self.after, self.lowered[1]),
            )
            for c in criteria.values()
            if c.id != ident
        ]
        values = {ident: (old_value, new_value)}
        witness = self.witness([apart, *others], values) or self.witness([apart], values)
        text = f"{ident}: " + ("; ".join(words) if words else "changed")
        self.changes.append(Change(text, witness))

    def status(self) -> Witness | None:
        before, after = self.before.status(), self.after.status()
        apart = z3.Or(before.eligible != after.eligible, before.ineligible != after.ineligible)
        if not self.solving.satisfiable([apart], "whether any status differs"):
            return None
        return self.witness([apart], {})

    # ---- witnesses, confirmed by both versions' Python engines ----

    def witness(self, constraints: list[Z3], values: dict[str, tuple[Tri, Tri]]) -> Witness | None:
        model = self.solving.model(constraints)
        if model is None:
            return None
        predicted: dict[str, str] = {}
        for ident, (old_value, new_value) in values.items():
            predicted[f"{ident} before"] = word(truth(model, old_value))
            predicted[f"{ident} after"] = word(truth(model, new_value))
        predicted["status before"] = self.before.status().of(model).value
        predicted["status after"] = self.after.status().of(model).value
        record = self.solving.record(model)
        if self.observe(record, values) == predicted:
            for name in list(record):
                trial = {k: v for k, v in record.items() if k != name}
                if self.observe(trial, values) == predicted:
                    record = trial
        actual = self.observe(record, values)
        claims = tuple(Claim(label, predicted[label], actual[label]) for label in predicted)
        return Witness(record, claims)

    def observe(self, record: dict[str, Any], values: dict[str, Any]) -> dict[str, str]:
        out: dict[str, str] = {}
        results = []
        for protocol in (self.old, self.new):
            known = protocol.checked.elements
            results.append(protocol.evaluate({k: v for k, v in record.items() if k in known}))
        for ident in values:
            for when, result in zip(("before", "after"), results, strict=True):
                (value,) = [c.value for c in result.criteria if c.id == ident]
                out[f"{ident} {when}"] = word(value)
        out["status before"] = results[0].status
        out["status after"] = results[1].status
        return out


# ---- the text of a change --------------------------------------------------------------


def _text(criterion: s.Criterion) -> object:
    return without_spans((criterion.applies_when, criterion.condition))


def _criterion_changes(before: s.Criterion, after: s.Criterion, a: Any, b: Any) -> list[str]:
    """A criterion's changes in words: bounds moved, and constants or definitions it uses."""
    words: list[str] = []
    if _text(before) != _text(after):
        pairs = [(before.applies_when, after.applies_when), (before.condition, after.condition)]
        for old_root, new_root in pairs:
            if without_spans(old_root) == without_spans(new_root):
                continue
            if old_root is None or new_root is None:
                words.append("'applies when' " + ("added" if old_root is None else "removed"))
                continue
            words += _literal_changes(old_root, new_root, None)
    for name in sorted(_names(before, a) & _names(after, b)):
        for kind, old_map, new_map in (
            ("constant", a.constants, b.constants),
            ("definition", a.definitions, b.definitions),
        ):
            if name in old_map and name in new_map:
                old_node, new_node = old_map[name], new_map[name]
                if kind == "constant" and without_spans(old_node.value) != without_spans(
                    new_node.value
                ):
                    words.append(f"constant {name} {_change(old_node.value, new_node.value)}")
                elif kind == "definition" and without_spans(old_node.expr) != without_spans(
                    new_node.expr
                ):
                    words.append(f"definition {name} changed")
    return words


def _names(criterion: s.Criterion, checked: Any) -> set[str]:
    """The names a criterion uses, through the definitions it uses."""
    found: set[str] = set()
    stack: list[object] = [criterion.applies_when, criterion.condition]
    while stack:
        node = stack.pop()
        if isinstance(node, s.Ref) and node.name not in found:
            found.add(node.name)
            if node.name in checked.definitions:
                stack.append(checked.definitions[node.name].expr)
        stack.extend(s.children(node))
    return found


def _literal_changes(before: s.Expr, after: s.Expr, owner: str | None) -> list[str]:
    """Bounds that moved, when the two expressions differ only in their numbers;
    else the two expressions side by side."""
    old = list(_literals(before))
    new = list(_literals(after))
    same_shape = _shape(before) == _shape(after) and len(old) == len(new)
    prefix = f"definition {owner}: " if owner else ""
    if not same_shape:
        return [f"{prefix}{expression_text(before)} → {expression_text(after)}"]
    words: list[str] = []
    for (lit, parent), (changed, _) in zip(old, new, strict=True):
        if without_spans(lit) != without_spans(changed):
            words.append(f"{prefix}{_role(lit, parent)} {_change(lit, changed)}")
    return words


def _literals(root: object) -> Iterator[tuple[s.NumberLit | s.QuantityLit, object]]:
    def visit(node: object, parent: object) -> Iterator[tuple[s.NumberLit | s.QuantityLit, object]]:
        if isinstance(node, s.NumberLit | s.QuantityLit):
            yield node, parent
        for child in s.children(node):
            yield from visit(child, node)

    yield from visit(root, None)


def _shape(node: Any) -> Any:
    """The tree without spans and with every number blanked: equal when only numbers moved."""
    if isinstance(node, s.Span):
        return NO_SPAN
    if isinstance(node, s.NumberLit | s.QuantityLit):
        return "number"
    if isinstance(node, tuple):
        return tuple(_shape(item) for item in node)
    if attrs.has(type(node)):
        return (
            type(node).__name__,
            *(_shape(getattr(node, f.name)) for f in attrs.fields(type(node))),
        )
    return node


_UPPER = {"<": True, "<=": True, ">": False, ">=": False}


def _role(lit: object, parent: object) -> str:
    """'age upper limit', 'creatinine lower limit', or 'a number'."""
    match parent:
        case s.Between(subject=subject, low=low):
            return f"{_subject(subject)} {'lower' if lit is low else 'upper'} limit"
        case s.Compare(op=op, left=left, right=right) if op in _UPPER:
            upper = _UPPER[op] if lit is right else not _UPPER[op]
            other = left if lit is right else right
            return f"{_subject(other)} {'upper' if upper else 'lower'} limit"
        case s.Compare(left=left, right=right):
            return f"{_subject(left if lit is right else right)} value"
    return "a number"


def _subject(node: object) -> str:
    if isinstance(node, s.Ref):
        return node.name
    assert isinstance(node, s.Expr)
    return expression_text(node)


def _change(before: s.Literal, after: s.Literal) -> str:
    """'80 → 75 years', '1.4 → 1.5 mg/dL', '80 years → 900 months'."""
    if (
        isinstance(before, s.QuantityLit)
        and isinstance(after, s.QuantityLit)
        and before.unit == after.unit
    ):
        return f"{_number(before.value)} → {in_words(after.value, after.unit)}"
    if isinstance(before, s.NumberLit) and isinstance(after, s.NumberLit):
        return f"{_number(before.value)} → {_number(after.value)}"
    return f"{_shown(before)} → {_shown(after)}"


def _shown(node: s.Literal) -> str:
    if isinstance(node, s.QuantityLit):
        return in_words(node.value, node.unit)
    if isinstance(node, s.NumberLit | s.DateLit):
        return literal(node)
    return str(node)


def _number(value: Decimal) -> str:
    return format(value, "f")


def _range(bounds: tuple[Decimal, Decimal] | None, unit: str) -> str:
    if bounds is None:
        return "none"
    return f"{_number(bounds[0])} to {in_words(bounds[1], unit)}"
