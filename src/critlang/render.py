"""Checked protocol to words: the one renderer of expressions, and the documents built on it.

The protocol page, the registry text, the screening worksheet, the CLI and the
evaluator's explanations all take their English from `read`/`describe` here, so
they cannot drift apart. The Jinja2 templates in `templates/` hold layout only.

An expression reads as a `Reading`: a phrase ("age between 20 and 80 years,
inclusive") or a lead-in with a list of parts ("at least one of the
following", then one part per alternative). Two operands joined by and/or stay
on one line only when neither phrase has a connective of its own, so a reading
is never ambiguous about what binds to what.
"""

from __future__ import annotations

import functools
import re
import textwrap

import attrs
import jinja2
import markupsafe

from critlang import syntax as s
from critlang import units
from critlang.check import FIELD_WORDS, SELECTOR_WORDS, Checked, conversion_words, score_operator
from critlang.words import (
    ALL,
    ANY,
    APPROXIMATE,
    ARITHMETIC,
    COMPARISONS,
    COUNTS,
    DATE_COMPARISONS,
    FLIPPED,
    NEGATED,
    PRECEDENCE,
    SCORE_GROUP,
    UNIT_WORDS,
    calendar_duration,
    date_difference,
    format_number,
    points_words,
    quantity,
    unit_suffix,
)

FORMATS = {
    "md": "protocol.md.j2",
    "txt": "protocol.txt.j2",
    "html": "worksheet.html.j2",
    "plain": "plain.md.j2",
}

TYPE_WORDS = {
    s.BooleanType: "yes/no",
    s.NumberType: "number",
    s.QuantityType: "quantity",
    s.DurationType: "duration",
    s.DateType: "date",
    s.EnumType: "one of",
    s.SetType: "set of",
    s.AttestationType: "attestation",
    s.IntegerType: "whole number",
    s.OrdinalType: "ordered scale",
    s.CodeType: "code",
    s.HistoryType: "history",
}
HISTORY_WORDS = {
    "measurement": "history of measurements",
    "code": "history of codes",
    "medication": "history of medications",
}
# A phrase with any of these cannot be joined to another by and/or without brackets.
_CONNECTIVE = re.compile(r"\b(and|or|not|unless)\b|[,:;]")


@attrs.frozen
class Reading:
    """An expression in words: a phrase, or a lead-in followed by its parts.

    `head` names a part inside a list, e.g. "a. Rapidly progressive ILD".
    """

    text: str
    parts: tuple[Reading, ...] = ()
    head: str | None = None


def read(expr: s.Expr | s.SubCriterion, checked: Checked) -> Reading:
    """The reading of an expression (or named sub-criterion), sentence-cased."""
    words = _Words(checked)
    reading = words.item(expr) if isinstance(expr, s.SubCriterion) else words.reading(expr)
    return _capitalized(reading)


def describe(expr: s.Expr | s.SubCriterion, checked: Checked) -> str:
    """An expression in precise English; a list reads as indented '- ' lines."""
    return "\n".join(text_lines(read(expr, checked)))


def text_lines(reading: Reading) -> list[str]:
    """A reading as plain-text lines, parts as nested '- ' items."""
    line = reading.text + (":" if reading.parts else "")
    lines = [f"{reading.head}: {line}" if reading.head else line]
    for part in reading.parts:
        first, *rest = text_lines(part)
        lines.append(f"- {first}")
        lines.extend(f"  {more}" for more in rest)
    return lines


def one_line(reading: Reading) -> str:
    """A reading on one line, parts after a colon, nested lists in brackets."""
    text = reading.text
    if reading.parts:
        inner = "; ".join(
            f"({one_line(part)})" if part.parts else one_line(part) for part in reading.parts
        )
        text = f"{text}: {inner}"
    return f"{reading.head}: {text}" if reading.head else text


def _humanized(name: str) -> str:
    return name.replace("_", " ")


def _inline(label: str) -> str:
    """A label as used mid-sentence: 'Age' -> 'age', but 'FVC decline' and 'eGFR' stay."""
    first = label.split(" ", 1)[0]
    if len(first) > 1 and first[0].isupper() and first[1:].isalpha() and first[1:].islower():
        return label[0].lower() + label[1:]
    return label


def _sentence(text: str) -> str:
    """Text starting a sentence: 'age ...' -> 'Age ...'; a first word with capitals of its
    own ('eGFR', 'pH', 'mRNA') keeps the author's case."""
    first = text.split(" ", 1)[0]
    if first.isalpha() and first.islower():
        return text[:1].upper() + text[1:]
    return text


def _capitalized(reading: Reading) -> Reading:
    text = reading.text if reading.head else _sentence(reading.text)
    return attrs.evolve(reading, text=text, parts=tuple(_capitalized(p) for p in reading.parts))


def _inlinable(reading: Reading) -> bool:
    return not reading.parts and not _CONNECTIVE.search(reading.text)


def _negated(reading: Reading) -> Reading:
    if not reading.parts:
        text = reading.text if _inlinable(reading) else f"({reading.text})"
        return Reading(f"not {text}")
    if reading.text == ANY:
        return Reading("none of the following", reading.parts)
    if reading.text == ALL:
        return Reading("not all of the following", reading.parts)
    at_least = re.fullmatch(r"at least (\w+) of the following", reading.text)
    if at_least:
        return Reading(f"fewer than {at_least.group(1)} of the following", reading.parts)
    return Reading(f"it is not the case that {reading.text}", reading.parts)


def _unless(rule: Reading, exception: Reading) -> Reading:
    if not exception.parts:
        if not rule.parts:
            return Reading(f"{rule.text}, unless {exception.text}")
        return Reading(f"unless {exception.text}, {rule.text}", rule.parts)
    if not rule.parts:
        return Reading(f"{rule.text}, unless {exception.text}", exception.parts)
    return Reading(ALL, (rule, _negated(exception)))


def _chain(expr: s.Expr, kind: type[s.And] | type[s.Or]) -> list[s.Expr]:
    """The operands of a run of the same connective: a and (b and c) -> [a, b, c]."""
    if isinstance(expr, kind):
        return [*_chain(expr.left, kind), *_chain(expr.right, kind)]
    return [expr]


class _Words:
    """Reads the expressions of one checked protocol, using its labels."""

    def __init__(self, checked: Checked) -> None:
        self.checked = checked

    def reading(self, expr: s.Expr) -> Reading:
        match expr:
            case s.And() | s.Or():
                return self.connected(expr)
            case s.Quantified():
                return Reading(self.quantifier(expr), tuple(self.item(i) for i in expr.items))
            case s.Compare(left=s.Score()) | s.Compare(right=s.Score()):
                return self.score(expr)
            case s.Unless(rule=rule, exception=exception):
                return _unless(self.reading(rule), self.reading(exception))
            case s.Not(operand=s.Ref() as operand):
                # one named yes/no fact, answered no: 'Uses contraception: no', never
                # 'not uses contraception'; the label is shown as its author wrote it
                return Reading(f"{self.label(operand)}: no")
            case s.Not(operand=operand):
                return _negated(self.reading(operand))
        return Reading(self.phrase(expr))

    def opposite(self, expr: s.Expr) -> Reading:
        """The reading of what makes an expression false: the answer that keeps a
        patient in when the expression excludes. 'Pregnant: no', 'Age at most 80 years'."""
        match expr:
            case s.Not(operand=s.Ref() as operand) if self.is_yes_no(operand):
                return Reading(f"{self.label(operand)}: yes")
            case s.Not(operand=operand):
                return self.reading(operand)
            case s.Ref() if self.is_yes_no(expr):
                return Reading(f"{self.label(expr)}: no")
            case s.Compare(op=op) if op in NEGATED and not self.is_yes_no(expr.left):
                return Reading(self.compare(attrs.evolve(expr, op=NEGATED[op])))
            case s.And() | s.Or():
                # De Morgan: not (a or b) is (not a) and (not b), each said positively
                flipped = "or" if isinstance(expr, s.And) else "and"
                readings = [self.opposite(e) for e in _chain(expr, type(expr))]
                if len(readings) == 2 and all(_inlinable(r) for r in readings):
                    return Reading(f"{readings[0].text} {flipped} {readings[1].text}")
                return Reading(ANY if flipped == "or" else ALL, tuple(readings))
            case s.Unless(rule=rule, exception=exception):
                # the rule does not hold, or the exception does
                return Reading(ANY, (self.opposite(rule), self.reading(exception)))
            case s.Quantified(quantifier=quantifier, count=count, items=items) if (count or 1) == 1:
                lead = ANY if quantifier == "all" else ALL
                return Reading(lead, tuple(self.opposite_item(i) for i in items))
        return _negated(self.reading(expr))

    def opposite_item(self, item: s.Expr | s.SubCriterion) -> Reading:
        if not isinstance(item, s.SubCriterion):
            return self.opposite(item)
        head = self.item(item).head
        return attrs.evolve(self.opposite(item.condition), head=head)

    def is_yes_no(self, expr: s.Expr) -> bool:
        kind = self.checked.types.get(expr)
        return kind is not None and kind.kind == "boolean"

    def formula(self, expr: s.Expr) -> str:
        """How to compute a value from the data, in words and arithmetic signs."""
        match expr:
            case s.RelativeChange(direction=direction, baseline=baseline, current=current):
                before, after = self.operand(baseline), self.operand(current)
                difference = f"{before} {ARITHMETIC['-']} {after}"
                if direction != "decline":
                    difference = f"{after} {ARITHMETIC['-']} {before}"
                return f"({difference}) {ARITHMETIC['/']} {before} {ARITHMETIC['*']} 100%"
            case s.Arithmetic():
                return self.arithmetic(expr)
        return one_line(self.reading(expr))

    def operand(self, expr: s.Expr) -> str:
        text = self.phrase(expr)
        return f"({text})" if isinstance(expr, s.Arithmetic) else text

    def item(self, item: s.Expr | s.SubCriterion) -> Reading:
        if not isinstance(item, s.SubCriterion):
            return self.reading(item)
        head = f"{item.name.text}. {item.title}" if item.title else f"{item.name.text}."
        if item.applies_when is not None:
            head += f" (applies only when {one_line(self.reading(item.applies_when))})"
        if item.approximate is not None:
            head += f" ({APPROXIMATE}: {item.approximate.reason})"
        return attrs.evolve(self.reading(item.condition), head=head)

    # ---- scores (issue 11) ----

    def score(self, expr: s.Compare) -> Reading:
        """A score as a lead-in with the threshold, then each item with its points."""
        score, other = (
            (expr.left, expr.right) if isinstance(expr.left, s.Score) else (expr.right, expr.left)
        )
        assert isinstance(score, s.Score)
        op = score_operator(expr.op, score is expr.left)
        lead = f"a total score of {COMPARISONS[op]} {self.phrase(other)} points, adding"
        entries: list[Reading] = []
        for entry in score.entries:
            if isinstance(entry, s.ScoreGroup):
                group = tuple(self.score_item(item) for item in entry.items)
                entries.append(Reading(SCORE_GROUP, group))
            else:
                entries.append(self.score_item(entry))
        return Reading(lead, tuple(entries))

    def score_item(self, item: s.ScoreItem) -> Reading:
        head = points_words(item.points)
        named = item.title or (item.name.text if item.name is not None else None)
        if named:
            head += f", {named}"
        return attrs.evolve(self.reading(item.condition), head=head)

    def connected(self, expr: s.And | s.Or) -> Reading:
        conjunction = "and" if isinstance(expr, s.And) else "or"
        readings = [self.reading(e) for e in _chain(expr, type(expr))]
        if len(readings) == 2 and all(_inlinable(r) for r in readings):
            return Reading(f"{readings[0].text} {conjunction} {readings[1].text}")
        return Reading(ALL if conjunction == "and" else ANY, tuple(readings))

    def quantifier(self, expr: s.Quantified) -> str:
        if expr.quantifier == "all":
            return ALL
        count = expr.count or 1
        if count == 1:
            return ANY
        return f"at least {COUNTS[count] if count < len(COUNTS) else count} of the following"

    def phrase(self, expr: s.Expr) -> str:
        """An expression that reads as one phrase, never a list."""
        match expr:
            case s.NumberLit(value=value):
                return format_number(value)
            case s.QuantityLit(value=value, unit=unit):
                return quantity(value, unit)
            case s.DateLit(value=date):
                return date.isoformat()
            case s.BoolLit(value=value):
                return "true" if value else "false"
            case s.Ref():
                return self.name(expr)
            case s.Compare():
                return self.compare(expr)
            case s.Between():
                return self.between(expr)
            case s.Member(subject=subject, values=values):
                names = [_humanized(v.text) for v in values]
                if len(names) == 1:
                    return f"{self.phrase(subject)} is {names[0]}"
                return f"{self.phrase(subject)} is one of: {', '.join(names)}"
            case s.Includes(subject=subject, quantifier=quantifier, values=values):
                listed = ", ".join(_humanized(v.text) for v in values)
                which = "at least one of" if quantifier == "any" else "all of"
                return f"{self.phrase(subject)} include {which}: {listed}"
            case s.Arithmetic():
                return self.arithmetic(expr)
            case s.RelativeChange(direction=direction, baseline=baseline, current=current):
                return (
                    f"the percentage {direction} from {self.phrase(baseline)} "
                    f"to {self.phrase(current)}"
                )
            case s.EntryField(field=field):
                return f"its {FIELD_WORDS[field]}"
            case s.InCodes(subject=subject, codes=codes):
                return f"{self.phrase(subject)} is in {self.code_list_name(codes.text)}"
            case s.Selector():
                return self.selector(expr)
            case s.CalendarDuration(amount=amount, unit=unit):
                return calendar_duration(amount, unit)
            case s.DateDifference(unit=unit, start=start, end=end):
                finish = None if end is None else self.phrase(end)
                return date_difference(unit, self.phrase(start), finish, self.reference())
            case s.Window(subject=subject, duration=duration, direction=direction, anchor=anchor):
                around = self.reference() if anchor is None else self.phrase(anchor)
                return f"{self.phrase(subject)} within {self.phrase(duration)} {direction} {around}"
        # and/or/not used as a value, as in `(a and b) = c`
        return f"({one_line(self.reading(expr))})"

    def reference(self) -> str:
        """The reference date (`as of`) by its label: 'the screening date'."""
        as_of = self.checked.protocol.header.as_of
        if as_of is None:
            return "the reference date"
        return self.name(s.Ref(as_of.text, as_of.span))

    def code_list_name(self, name: str) -> str:
        """A code list as documents name it: its label, and its name to find it in the table."""
        declared = self.checked.code_lists.get(name)
        label = declared.label if declared is not None and declared.label else _humanized(name)
        return f"{_inline(label)} (code list {name})"

    def selector(self, expr: s.Selector) -> str:
        """`latest creatinine within 90 days before screening` in words."""
        history = self.name(expr.history)
        word = SELECTOR_WORDS[expr.op]
        if expr.op in ("any", "no"):
            text = f"{word} {history} entry"
        elif expr.op == "count":
            text = f"the number of {history} entries"
        elif expr.of is None:
            text = f"the {word} {history}"
        elif isinstance(expr.of, s.EntryField):
            text = f"the {word} {FIELD_WORDS[expr.of.field]} of {history}"
        else:
            text = f"the {word} ({self.phrase(expr.of)}) of {history}"
        if expr.where is not None:
            text += f" where {one_line(self.reading(expr.where))}"
        if expr.window is not None:
            text += " " + self.entry_window(expr.window)
        return text

    def entry_window(self, window: s.EntryWindow) -> str:
        amount, unit = window.duration.amount, window.duration.unit
        anchor = "the reference date" if window.anchor is None else self.phrase(window.anchor)
        word = "present at some time within" if window.overlap else "within"
        return f"{word} {amount} {unit if amount == 1 else unit + 's'} {window.direction} {anchor}"

    def label(self, ref: s.Ref) -> str:
        """The name of a data element or definition as its author wrote the label."""
        checked, name = self.checked, ref.name
        if name in checked.elements:
            return checked.elements[name].label or _humanized(name)
        if name in checked.definitions:
            return checked.definitions[name].label or _humanized(name)
        return self.name(ref)

    def name(self, ref: s.Ref) -> str:
        checked, name = self.checked, ref.name
        if name in checked.elements:
            return _inline(checked.elements[name].label or _humanized(name))
        if name in checked.constants:
            return self.phrase(checked.constants[name].value)
        if name in checked.definitions:
            return _inline(checked.definitions[name].label or _humanized(name))
        return _humanized(name)  # a value of an enum, as in `sex = female`

    def is_value(self, expr: s.Expr) -> bool:
        """A literal or an enum value, as opposed to something measured."""
        if isinstance(expr, s.Ref):
            checked = self.checked
            return expr.name in checked.constants or not (
                expr.name in checked.elements or expr.name in checked.definitions
            )
        return isinstance(expr, s.NumberLit | s.QuantityLit | s.DateLit | s.BoolLit)

    def is_change(self, expr: s.Expr) -> bool:
        if isinstance(expr, s.Ref) and expr.name in self.checked.definitions:
            return self.is_change(self.checked.definitions[expr.name].expr)
        return isinstance(expr, s.RelativeChange)

    def compare(self, expr: s.Compare) -> str:
        op, left, right = expr.op, expr.left, expr.right
        if self.is_value(left) and not self.is_value(right):
            op, left, right = FLIPPED[op], right, left
        subject, value = self.phrase(left), self.phrase(right)
        if isinstance(left, s.Selector) and left.where is not None:
            subject = f"({subject})"  # what follows is not part of its `where`
        kind = self.checked.types.get(left)
        if kind is not None and kind.kind in ("enum", "boolean", "set"):
            return f"{subject} {'is' if op == '=' else 'is not'} {value}"
        if kind is not None and kind.kind == "date":
            return f"{subject} {DATE_COMPARISONS[op]} {value}"
        joiner = " of" if op not in ("=", "!=") and self.is_change(left) else ""
        return f"{subject}{joiner} {COMPARISONS[op]} {value}"

    def between(self, expr: s.Between) -> str:
        low, high = expr.low, expr.high
        if (
            isinstance(low, s.QuantityLit)
            and isinstance(high, s.QuantityLit)
            and low.unit == high.unit
            and low.unit in UNIT_WORDS
        ):
            bounds = f"{format_number(low.value)} and {quantity(high.value, high.unit)}"
        else:
            bounds = f"{self.phrase(low)} and {self.phrase(high)}"
        limits = "exclusive" if expr.exclusive else "inclusive"
        return f"{self.phrase(expr.subject)} between {bounds}, {limits}"

    def arithmetic(self, expr: s.Arithmetic) -> str:
        def side(operand: s.Expr, right: bool) -> str:
            text = self.phrase(operand)
            if isinstance(operand, s.Arithmetic):
                inner, outer = PRECEDENCE[operand.op], PRECEDENCE[expr.op]
                if inner < outer or (right and inner == outer):
                    return f"({text})"
            return text

        return f"{side(expr.left, False)} {ARITHMETIC[expr.op]} {side(expr.right, True)}"


# ---- documents -----------------------------------------------------------------


@attrs.frozen
class ElementView:
    """A data element as the documents show it."""

    name: str
    label: str
    kind: str  # boolean | number | quantity | duration | date | enum | set | attestation
    type: str
    unit: str
    unit_words: str
    allowed: str
    choices: tuple[str, ...]
    used_by: tuple[str, ...]
    attesters: tuple[str, ...] = ()


@attrs.frozen
class CodeListView:
    """A code list as the documents show it: a table of its codes."""

    name: str
    label: str
    system: str
    codes: tuple[str, ...]
    used_by: tuple[str, ...]
    excluded: tuple[str, ...] = ()  # `except (...)`
    hierarchical: bool = False  # some code is written `"CODE" and descendants`


@attrs.frozen
class ComputedView:
    """A value the coordinator works out from recorded data: a definition with its formula."""

    name: str
    label: str
    kind: str  # number | boolean
    formula: str
    unit: str  # the unit to write the result in, in words where sensible; "" for yes/no
    inputs: tuple[str, ...]  # the data elements it is computed from
    used_by: tuple[str, ...]


@attrs.frozen
class NamedView:
    """A constant or definition: its name, label, meaning and users."""

    name: str
    label: str
    meaning: str
    used_by: tuple[str, ...]


@attrs.frozen
class ScoreRow:
    """One item of a score: its name, points and condition; `group` when in a `highest of`."""

    item: str
    points: str
    when: str
    group: int | None


@attrs.frozen
class ScoreView:
    """A score in a criterion, as a table: 'a total of at least 9 points' and its items."""

    total: str
    rows: tuple[ScoreRow, ...]


@attrs.frozen
class CriterionView:
    kind: str
    id: str
    title: str
    registered: str | None
    plain: str | None
    notes: tuple[str, ...]
    reading: Reading
    reading_text: str
    applies: str | None
    data: tuple[ElementView, ...]
    computed: tuple[ComputedView, ...] = ()
    # the answer that keeps the patient in, for an exclusion (for an inclusion: met)
    keeps_in: Reading | None = None
    # why the encoding only approximates the criterion's text, when its author says so
    approximate: str | None = None
    scores: tuple[ScoreView, ...] = ()


@attrs.frozen
class FlowNode:
    id: str
    shape: str  # start | end | decision | step
    lines: tuple[str, ...]


@attrs.frozen
class FlowGroup:
    """A criterion drawn as a box around its named alternatives (I2 a, b, c)."""

    id: str
    lines: tuple[str, ...]
    nodes: tuple[FlowNode, ...]


@attrs.frozen
class FlowEdge:
    source: str
    target: str
    label: str | None


@attrs.frozen
class Flowchart:
    nodes: tuple[FlowNode, ...]
    groups: tuple[FlowGroup, ...]
    edges: tuple[FlowEdge, ...]


@attrs.frozen
class Document:
    """Everything a template may show, with the words already chosen."""

    name: str
    header: s.Header
    inclusions: tuple[CriterionView, ...]
    exclusions: tuple[CriterionView, ...]
    elements: tuple[ElementView, ...]
    constants: tuple[NamedView, ...]
    definitions: tuple[NamedView, ...]
    flowchart: Flowchart
    code_lists: tuple[CodeListView, ...] = ()


def render_document(
    checked: Checked, fmt: str, worksheet: str | None = None, form: str | None = None
) -> str:
    """The protocol as a document: md (protocol page), txt (registry style),
    html (printable screening worksheet) or plain (plain-language page).

    `worksheet` is where the protocol page links its printable worksheet, if anywhere.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    template = _environment().get_template(FORMATS[fmt])
    return template.render(doc=document(checked), worksheet=worksheet, form=form)


def document(checked: Checked) -> Document:
    """The words and structure of every document of a checked protocol."""
    words = _Words(checked)
    protocol = checked.protocol
    # inclusions first, as every document lists them, so used_by[0] is the first to show
    ordered = sorted(protocol.criteria, key=lambda c: c.kind != "inclusion")
    uses = {c.id.text: _uses_of_criterion(c, checked) for c in ordered}

    def users(name: str) -> tuple[str, ...]:
        return tuple(ident for ident, names in uses.items() if name in names)

    elements = {
        e.name.text: _element_view(e, users(e.name.text)) for e in checked.elements.values()
    }
    computed = {
        d.name.text: _computed_view(d, checked, words, users(d.name.text))
        for d in checked.definitions.values()
    }
    criteria = [
        _criterion_view(c, checked, words, elements, computed, uses) for c in protocol.criteria
    ]
    return Document(
        name=protocol.name.text,
        header=protocol.header,
        inclusions=tuple(c for c in criteria if c.kind == "inclusion"),
        exclusions=tuple(c for c in criteria if c.kind == "exclusion"),
        elements=tuple(elements.values()),
        constants=tuple(
            NamedView(c.name.text, c.label or "", words.phrase(c.value), users(c.name.text))
            for c in checked.constants.values()
        ),
        definitions=tuple(
            NamedView(
                d.name.text,
                d.label or "",
                _sentence(one_line(words.reading(d.expr))),
                users(d.name.text),
            )
            for d in checked.definitions.values()
        ),
        flowchart=_flowchart(protocol, words),
        code_lists=tuple(
            CodeListView(
                c.name.text,
                c.label or _sentence(_humanized(c.name.text)),
                c.system.text,
                _code_texts(c.codes),
                tuple(
                    ident
                    for ident, criterion in ((c.id.text, c) for c in ordered)
                    if c.name.text in _code_lists_of(criterion, checked)
                ),
                _code_texts(c.excluded),
                any(code.descendants for code in (*c.codes, *c.excluded)),
            )
            for c in protocol.code_lists
        ),
    )


def _code_texts(listed: tuple[s.CodeText, ...]) -> tuple[str, ...]:
    return tuple(c.text + (" and descendants" if c.descendants else "") for c in listed)


def _code_lists_of(criterion: s.Criterion, checked: Checked) -> set[str]:
    """The code lists a criterion tests codes against, through definitions."""
    roots: list[object] = [criterion.condition, criterion.applies_when]
    roots += [
        checked.definitions[n].expr
        for n in _uses_of_criterion(criterion, checked)
        if n in checked.definitions
    ]
    return {
        node.codes.text
        for root in roots
        if root is not None
        for node in s.walk(root)
        if isinstance(node, s.InCodes)
    }


def _uses(expr: object, checked: Checked) -> set[str]:
    """The data elements, constants and definitions an expression uses, through definitions."""
    names: set[str] = set()
    as_of = checked.protocol.header.as_of
    for node in s.walk(expr):
        if as_of is not None and _reads_reference(node):
            names.add(as_of.text)
        if not isinstance(node, s.Ref) or node.name in names:
            continue
        if node.name in checked.definitions:
            names.add(node.name)
            names |= _uses(checked.definitions[node.name].expr, checked)
        elif node.name in checked.elements or node.name in checked.constants:
            names.add(node.name)
    return names


def _reads_reference(node: object) -> bool:
    """`years since d` and a window without a date read the reference date (`as of`)."""
    return (isinstance(node, s.DateDifference) and node.end is None) or (
        isinstance(node, s.Window) and node.anchor is None
    )


def _uses_of_criterion(criterion: s.Criterion, checked: Checked) -> set[str]:
    names = _uses(criterion.condition, checked)
    if criterion.applies_when is not None:
        names |= _uses(criterion.applies_when, checked)
    return names


def _element_view(element: s.DataElement, used_by: tuple[str, ...]) -> ElementView:
    declared = element.type
    unit = unit_words = ""
    choices: tuple[str, ...] = ()
    allowed = ""
    match declared:
        case s.QuantityType(unit=code) | s.DurationType(unit=code):
            words = units.display(code)
            unit = code if words == code else f"{code} ({words})"
            unit_words = words
        case s.EnumType(values=values) | s.SetType(values=values):
            choices = tuple(_humanized(v.text) for v in values)
            allowed = ", ".join(choices)
        case s.OrdinalType(values=values):
            choices = tuple(_humanized(v.text) for v in values)
            allowed = " < ".join(choices) + " (lowest first)"
        case s.BooleanType():
            choices = ("yes", "no")
        case s.AttestationType(attesters=attesters):
            choices = ("yes", "no")
            allowed = "confirmed by " + " and ".join(attesters)
        case s.HistoryType(unit=code):
            if code is not None:
                words = units.display(code)
                unit = code if words == code else f"{code} ({words})"
                unit_words = words
            allowed = "every entry on record" if element.complete else "the entries on record"
        case s.CodeType():
            allowed = "a code, as system:code"
    if element.plausible_range is not None:
        low, high = element.plausible_range
        allowed = f"{format_number(low)} to {format_number(high)}"
    if isinstance(declared, s.IntegerType):
        allowed = f"whole numbers, {allowed}" if allowed else "whole numbers"
    if element.molar_mass is not None:
        mass = element.molar_mass
        allowed += f"; molar mass {quantity(mass.value, mass.unit)}"
    for ref in element.accepts:
        allowed += f"; also accepted in {units.display(ref.code)}"
    for conversion in element.conversions:
        allowed += f"; {units.display(conversion.unit.code)} read as {conversion_words(conversion)}"
    return ElementView(
        name=element.name.text,
        label=element.label or _sentence(_humanized(element.name.text)),
        kind=type(declared).__name__.removesuffix("Type").lower(),
        type=HISTORY_WORDS[declared.entry]
        if isinstance(declared, s.HistoryType)
        else TYPE_WORDS[type(declared)],
        unit=unit,
        unit_words=unit_words,
        allowed=allowed,
        choices=choices,
        used_by=used_by,
        attesters=declared.attesters if isinstance(declared, s.AttestationType) else (),
    )


def _applicability(criterion: s.Criterion, words: _Words) -> str | None:
    if criterion.applies_when is None:
        return None
    condition = one_line(words.reading(criterion.applies_when))
    otherwise = (
        "it counts as met" if criterion.kind == "inclusion" else "it does not exclude anyone"
    )
    return f"Applies only when {condition}; otherwise {otherwise}."


def _computed_view(
    definition: s.Definition, checked: Checked, words: _Words, used_by: tuple[str, ...]
) -> ComputedView:
    expr, name = definition.expr, definition.name.text
    kind = "boolean" if checked.types[expr].kind == "boolean" else "number"
    uses = _uses(expr, checked)
    return ComputedView(
        name=name,
        label=definition.label or _sentence(_humanized(name)),
        kind=kind,
        formula=_sentence(words.formula(expr)),
        unit="" if kind == "boolean" else _unit_words(_result_unit(name, checked)),
        inputs=tuple(e for e in checked.elements if e in uses),
        used_by=used_by,
    )


def _result_unit(name: str, checked: Checked) -> str:
    """The unit a definition is compared in (0.8 'mg/kg/d'), else the unit it is held in."""
    return _compared_unit(name, checked.definitions[name].expr, checked)


def _compared_unit(target: str | s.Expr, expr: s.Expr, checked: Checked) -> str:
    """The unit `target` (a definition's name, or an expression node) is compared in
    anywhere in the protocol, else the unit `expr` is held in."""

    def is_it(node: object) -> bool:
        if isinstance(target, str):
            return isinstance(node, s.Ref) and node.name == target
        return node is target

    for top in _expressions(checked.protocol):
        for node in s.walk(top):
            match node:
                case s.Compare(left=left, right=other) if is_it(left):
                    pass
                case s.Compare(left=other, right=right) if is_it(right):
                    pass
                case s.Between(subject=subject, low=other) if is_it(subject):
                    pass
                case _:
                    continue
            kind = checked.types.get(other)
            if kind is not None and kind.kind == "quantity":
                return kind.unit
    return checked.types[expr].unit


def _inline_computations(
    criterion: s.Criterion, checked: Checked, words: _Words
) -> tuple[ComputedView, ...]:
    """Arithmetic on recorded data written inside a criterion (a BMI, a ratio, a decline),
    outermost first; arithmetic on constants alone (2 * uln) is only read."""
    found: list[ComputedView] = []
    pending: list[object] = [criterion.condition]
    if criterion.applies_when is not None:
        pending.insert(0, criterion.applies_when)
    while pending:
        node = pending.pop(0)
        inputs = _uses(node, checked) & set(checked.elements)
        if isinstance(node, s.Arithmetic | s.RelativeChange) and inputs:
            found.append(
                ComputedView(
                    name="",
                    label=_sentence(words.phrase(node)),
                    kind="number",
                    formula=_sentence(words.formula(node)),
                    unit=_unit_words(_compared_unit(node, node, checked)),
                    inputs=tuple(e for e in checked.elements if e in inputs),
                    used_by=(criterion.id.text,),
                )
            )
            continue
        pending[0:0] = s.children(node)
    return tuple(found)


def _expressions(protocol: s.Protocol) -> list[s.Expr]:
    found: list[s.Expr] = [d.expr for d in protocol.definitions]
    for criterion in protocol.criteria:
        found.append(criterion.condition)
        if criterion.applies_when is not None:
            found.append(criterion.applies_when)
    return found


def _unit_words(code: str) -> str:
    return unit_suffix(code, False).strip()


def _criterion_view(
    criterion: s.Criterion,
    checked: Checked,
    words: _Words,
    elements: dict[str, ElementView],
    computed: dict[str, ComputedView],
    uses: dict[str, set[str]],
) -> CriterionView:
    reading = _capitalized(words.reading(criterion.condition))
    used = uses[criterion.id.text]
    keeps_in = None
    if criterion.kind == "exclusion":
        keeps_in = _capitalized(words.opposite(criterion.condition))
    return CriterionView(
        kind=criterion.kind,
        id=criterion.id.text,
        title=criterion.title,
        registered=criterion.registered,
        plain=criterion.plain,
        notes=criterion.notes,
        reading=reading,
        reading_text="\n".join(text_lines(reading)),
        applies=_applicability(criterion, words),
        data=tuple(view for name, view in elements.items() if name in used),
        computed=tuple(view for name, view in computed.items() if name in used)
        + _inline_computations(criterion, checked, words),
        keeps_in=keeps_in,
        approximate=criterion.approximate.reason if criterion.approximate else None,
        scores=_score_views(criterion, words),
    )


def _score_views(criterion: s.Criterion, words: _Words) -> tuple[ScoreView, ...]:
    """Every score of a criterion as a table of items and points."""
    views: list[ScoreView] = []
    for node in s.walk(criterion.condition):
        if not isinstance(node, s.Compare):
            continue
        score, other = (
            (node.left, node.right) if isinstance(node.left, s.Score) else (node.right, node.left)
        )
        if not isinstance(score, s.Score):
            continue
        op = score_operator(node.op, score is node.left)
        rows: list[ScoreRow] = []
        groups = 0
        for entry in score.entries:
            group = None
            if isinstance(entry, s.ScoreGroup):
                groups += 1
                group = groups
            for item in entry.items if isinstance(entry, s.ScoreGroup) else (entry,):
                named = item.title or (item.name.text if item.name is not None else "")
                when = one_line(words.reading(item.condition))
                rows.append(
                    ScoreRow(named or _sentence(when), format_number(item.points), when, group)
                )
        total = f"a total of {COMPARISONS[op]} {words.phrase(other)} points"
        views.append(ScoreView(total, tuple(rows)))
    return tuple(views)


def _alternatives(criterion: s.Criterion) -> tuple[s.SubCriterion, ...]:
    condition = criterion.condition
    if not isinstance(condition, s.Quantified):
        return ()
    return tuple(i for i in condition.items if isinstance(i, s.SubCriterion))


def _flowchart(protocol: s.Protocol, words: _Words) -> Flowchart:
    """Inclusions in order, then exclusions; each sends the record on or rules it out."""
    nodes = [FlowNode("start", "start", ("Screening record",))]
    groups: list[FlowGroup] = []
    edges: list[FlowEdge] = []
    previous, onward = "start", None
    ordered = sorted(protocol.criteria, key=lambda c: c.kind != "inclusion")
    for criterion in ordered:
        ident = f"c_{criterion.id.text}"
        lines = [f"{criterion.id.text} {criterion.title}"]
        if criterion.applies_when is not None:
            lines.append(f"only when {one_line(words.reading(criterion.applies_when))}")
        alternatives = _alternatives(criterion)
        if alternatives:
            assert isinstance(criterion.condition, s.Quantified)
            lines[0] += f": {words.quantifier(criterion.condition)}"
            inner = []
            for alternative in alternatives:
                name = alternative.name.text
                text = [f"{name}. {alternative.title}" if alternative.title else f"{name}."]
                if alternative.applies_when is not None:
                    condition = one_line(words.reading(alternative.applies_when))
                    text.append(f"only when {condition}")
                inner.append(FlowNode(f"{ident}_{name}", "step", tuple(text)))
            groups.append(FlowGroup(ident, tuple(lines), tuple(inner)))
        else:
            nodes.append(FlowNode(ident, "decision", tuple(lines)))
        edges.append(FlowEdge(previous, ident, onward))
        inclusion = criterion.kind == "inclusion"
        edges.append(FlowEdge(ident, "ineligible", "not met" if inclusion else "met"))
        onward = "met" if inclusion else "not met"
        if criterion.applies_when is not None:
            onward += " or not applicable"
        previous = ident
    edges.append(FlowEdge(previous, "eligible", onward))
    nodes += [
        FlowNode("eligible", "end", ("Eligible",)),
        FlowNode("ineligible", "end", ("Not eligible",)),
    ]
    return Flowchart(tuple(nodes), tuple(groups), tuple(edges))


# ---- templates ------------------------------------------------------------------

# Markdown's own escapes (a backslash before these is always taken as the character),
# `{` and `}` among them so that no text ends up as an attribute list `{: onclick=... }`.
_MARKDOWN_SPECIAL = frozenset("\\`*_[]|{}")
_HTML_SPECIAL = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _one_line(text: str) -> str:
    """Every run of whitespace, line breaks of any kind included, as one space."""
    return " ".join(text.split())


def _markdown(text: str) -> str:
    """Text shown verbatim in Markdown, inline: no emphasis, links, raw HTML, attribute lists.

    The text becomes one line, so nothing in it can start a block of its own (a
    heading, a fence, an admonition); where the template puts it at the start of a
    block, a leading mark such as '#', '>', '!!!' or '1.' is written as a character
    reference, which Markdown shows as the character and never reads as syntax.
    """
    text = _one_line(text)
    digits = len(text) - len(text.lstrip("0123456789"))
    # the mark that could start a block: the first character, or the '.' of '1. '
    if digits == 0:
        lead = 0
    elif re.match(r"\d+[.)](?: |$)", text):
        lead = digits
    else:
        lead = -1
    out = []
    for index, char in enumerate(text):
        if char in _HTML_SPECIAL:
            out.append(_HTML_SPECIAL[char])
        elif char in _MARKDOWN_SPECIAL:
            out.append("\\" + char)
        elif index == lead and not char.isalnum() and char not in " \"'(":
            out.append(f"&#{ord(char)};")
        else:
            out.append(char)
    return "".join(out)


def _mermaid(text: str) -> str:
    """Text inside a quoted Mermaid label: one line, with Mermaid's entity codes for
    '#' (so no '#lt;' in the text becomes a '<'), quotes, angle brackets and '&'."""
    text = _one_line(text)
    for raw, code in (("#", "#35;"), ("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(raw, code)
    return text.replace("`", "#96;")


def _css_string(text: str) -> markupsafe.Markup:
    """Text as a quoted CSS string (a page footer's `content`): every character but
    letters, digits and spaces as a CSS escape, so nothing can end the string, the
    rule or the <style> element. The space after each escape ends it, and CSS drops it."""
    escaped = "".join(
        char if char.isascii() and (char.isalnum() or char == " ") else f"\\{ord(char):06x} "
        for char in _one_line(text)
    )
    return markupsafe.Markup(f'"{escaped}"')


def _wrapped(text: str, width: int) -> str:
    """Each line wrapped to `width`; a '- ' item's continuation lines hang under its text."""
    out: list[str] = []
    for line in text.splitlines():
        item = re.match(r"(\s*(?:- )?)", line)
        hang = " " * len(item.group(1)) if item else ""
        out.extend(
            textwrap.wrap(line, width, subsequent_indent=hang, break_on_hyphens=False) or [""]
        )
    return "\n".join(out)


@functools.cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("critlang", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["md"] = _markdown
    environment.filters["mermaid"] = _mermaid
    environment.filters["css_string"] = _css_string
    environment.filters["wrap"] = _wrapped
    return environment
