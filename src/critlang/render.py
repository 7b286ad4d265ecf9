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
from decimal import Decimal

import attrs
import jinja2

from critlang import syntax as s
from critlang import units
from critlang.check import Checked, conversion_words

FORMATS = {
    "md": "protocol.md.j2",
    "txt": "protocol.txt.j2",
    "html": "worksheet.html.j2",
    "plain": "plain.md.j2",
}

# UCUM codes that read better as words; every other unit is shown as its code.
UNIT_WORDS = {
    "a": ("year", "years"),
    "mo": ("month", "months"),
    "wk": ("week", "weeks"),
    "d": ("day", "days"),
    "h": ("hour", "hours"),
    "min": ("minute", "minutes"),
}
COMPARISONS = {
    ">": "more than",
    ">=": "at least",
    "<": "less than",
    "<=": "at most",
    "=": "equal to",
    "!=": "not equal to",
}
DATE_COMPARISONS = {
    ">": "after",
    ">=": "on or after",
    "<": "before",
    "<=": "on or before",
    "=": "on",
    "!=": "not on",
}
FLIPPED = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "=": "=", "!=": "!="}
ARITHMETIC = {
    "*": "\N{MULTIPLICATION SIGN}",
    "/": "\N{DIVISION SIGN}",
    "+": "+",
    "-": "\N{MINUS SIGN}",
}
PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
COUNTS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
ALL = "all of the following"
ANY = "at least one of the following"
TYPE_WORDS = {
    s.BooleanType: "yes/no",
    s.NumberType: "number",
    s.QuantityType: "quantity",
    s.DurationType: "duration",
    s.DateType: "date",
    s.EnumType: "one of",
    s.SetType: "set of",
    s.AttestationType: "attestation",
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


def quantity(value: Decimal, unit: str) -> str:
    """A number with its unit in words where sensible: '20 years', '10%', '80 U/L'."""
    number = _number(value)
    if unit == "%":
        return f"{number}%"
    if unit == "1":
        return number
    if unit in UNIT_WORDS:
        singular, plural = UNIT_WORDS[unit]
        return f"{number} {singular if value == 1 else plural}"
    return f"{number} {units.display(unit)}"


def _number(value: Decimal) -> str:
    return format(value, "f")


def _humanized(name: str) -> str:
    return name.replace("_", " ")


def _inline(label: str) -> str:
    """A label as used mid-sentence: 'Age' -> 'age', but 'FVC decline' stays."""
    if len(label) > 1 and label[0].isupper() and label[1].islower():
        return label[0].lower() + label[1:]
    return label


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


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
            case s.Unless(rule=rule, exception=exception):
                return _unless(self.reading(rule), self.reading(exception))
            case s.Not(operand=s.Ref() as operand):
                # one named fact: 'not' cannot be misread whatever its label says
                return Reading(f"not {self.phrase(operand)}")
            case s.Not(operand=operand):
                return _negated(self.reading(operand))
        return Reading(self.phrase(expr))

    def item(self, item: s.Expr | s.SubCriterion) -> Reading:
        if not isinstance(item, s.SubCriterion):
            return self.reading(item)
        head = f"{item.name.text}. {item.title}" if item.title else f"{item.name.text}."
        if item.applies_when is not None:
            head += f" (applies only when {one_line(self.reading(item.applies_when))})"
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
                return _number(value)
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
        # and/or/not used as a value, as in `(a and b) = c`
        return f"({one_line(self.reading(expr))})"

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
            bounds = f"{_number(low.value)} and {quantity(high.value, high.unit)}"
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


@attrs.frozen
class NamedView:
    """A constant or definition: its name, label, meaning and users."""

    name: str
    label: str
    meaning: str
    used_by: tuple[str, ...]


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


def render_document(checked: Checked, fmt: str) -> str:
    """The protocol as a document: md (protocol page), txt (registry style),
    html (printable screening worksheet) or plain (plain-language page)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    template = _environment().get_template(FORMATS[fmt])
    return template.render(doc=document(checked))


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
    criteria = [_criterion_view(c, checked, words, elements, uses) for c in protocol.criteria]
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
    )


def _uses(expr: object, checked: Checked) -> set[str]:
    """The data elements, constants and definitions an expression uses, through definitions."""
    names: set[str] = set()
    for node in s.walk(expr):
        if not isinstance(node, s.Ref) or node.name in names:
            continue
        if node.name in checked.definitions:
            names.add(node.name)
            names |= _uses(checked.definitions[node.name].expr, checked)
        elif node.name in checked.elements or node.name in checked.constants:
            names.add(node.name)
    return names


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
        case s.BooleanType():
            choices = ("yes", "no")
        case s.AttestationType(attesters=attesters):
            choices = tuple(f"confirmed by {a}" for a in attesters)
            allowed = "confirmed by " + " and ".join(attesters)
    if element.plausible_range is not None:
        low, high = element.plausible_range
        allowed = f"{_number(low)} to {_number(high)}"
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
        type=TYPE_WORDS[type(declared)],
        unit=unit,
        unit_words=unit_words,
        allowed=allowed,
        choices=choices,
        used_by=used_by,
    )


def _applicability(criterion: s.Criterion, words: _Words) -> str | None:
    if criterion.applies_when is None:
        return None
    condition = one_line(words.reading(criterion.applies_when))
    otherwise = (
        "it counts as met" if criterion.kind == "inclusion" else "it does not exclude anyone"
    )
    return f"Applies only when {condition}; otherwise {otherwise}."


def _criterion_view(
    criterion: s.Criterion,
    checked: Checked,
    words: _Words,
    elements: dict[str, ElementView],
    uses: dict[str, set[str]],
) -> CriterionView:
    reading = _capitalized(words.reading(criterion.condition))
    used = uses[criterion.id.text]
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
    )


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

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|])")


def _markdown(text: str) -> str:
    """Text shown verbatim in Markdown: no emphasis, links, table breaks or raw HTML."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", escaped)


def _mermaid(text: str) -> str:
    """Text inside a quoted Mermaid label."""
    for raw, code in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(raw, code)
    return text


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
    environment.filters["wrap"] = _wrapped
    return environment
