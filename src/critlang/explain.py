"""Explanations: a record's values put into the author's words.

The wording is worked out once per protocol. For every condition that a
reason may mention, `Explanations` builds a small phrase builder: a closure
that already holds the label, the unit words, the comparison's words, the
conversion factor and the trace slots it reads, so that wording one record
only reads values and fills them in. Reasons follow the path that decided a
value (the false part of an `and`, the true part of an `or`), so they name
the numbers that mattered.

Values come from the Python engine's trace, found through lowering's
`origin` (syntax node to IR node); folded constants come from the IR itself.
"""

from __future__ import annotations

import datetime
import operator
from collections.abc import Callable, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

import attrs

from critlang import codes, fmt, ir, units, words
from critlang import syntax as s
from critlang.check import Checked, score_operator
from critlang.decimals import to_decimal
from critlang.lower import Lowered, chain, code_list
from critlang.records import printable
from critlang.vocab import ENTRY_LAYOUT, EntryKind

Trace = Sequence[Any]
Getter = Callable[[Trace], Any]
Builder = Callable[[Trace], list[str]]

_YES_NO: dict[object, str] = {True: "yes", False: "no"}


class Explanations:
    """The phrase builders of one protocol, made once and used for every record."""

    def __init__(self, lowered: Lowered) -> None:
        self.checked: Checked = lowered.checked
        self.origin = lowered.origin
        self.program = lowered.program
        self.latest = lowered.latest  # the upper end of values that are ranges (partial dates)
        self.types = {id(node): kind for node, kind in self.checked.types.items()}
        self.builders: dict[int, Builder] = {}
        self.getters: dict[int, Getter] = {}
        # The Python engine's trace has one slot more: the entry each aggregate used.
        self.used_slot = lowered.program.size

    # ---- values ----

    def getter(self, node: object) -> Getter:
        """How to read a syntax node's value from a trace."""
        key = id(node)
        if key not in self.getters:
            lowered = self.origin[key]
            if isinstance(lowered, ir.Const):
                value = _engine_value(lowered.value)
                self.getters[key] = lambda _trace: value
            else:
                self.getters[key] = operator.itemgetter(lowered.id)
        return self.getters[key]

    def kids(self, node: object) -> list[Any]:
        """The operands of a node, a chain of one connective read as one list."""
        if isinstance(node, s.And | s.Or):
            return list(chain(node))
        return list(s.children(node))

    # ---- reasons ----

    def reason(self, node: object) -> Callable[[Trace], str]:
        """The reason for a condition's value, as one line."""
        build = self.build(node)
        if not isinstance(node, _MANY_PHRASES):
            # Its builder says one phrase: the line is that phrase.
            return lambda trace: build(trace)[0]

        def line(trace: Trace) -> str:
            phrases = build(trace)
            return phrases[0] if len(phrases) == 1 else "; ".join(dict.fromkeys(phrases))

        return line

    def applicable_reason(
        self, applies: s.Expr | None, condition: s.Expr
    ) -> Callable[[Trace], str]:
        """A criterion's or part's reason: its applicability when that is false, else its value."""
        because = self.reason(condition)
        if applies is None:
            return because
        applicable, why_not = self.getter(applies), self.reason(applies)
        return lambda t: "not applicable: " + why_not(t) if applicable(t) is False else because(t)

    def build(self, node: object) -> Builder:
        key = id(node)
        if key not in self.builders:
            builder = self.make(node)
            # Lists and parts are worded again for their criterion's reason: remember them.
            # (A part's builder is read once, by its list: its condition's is remembered.)
            remember = isinstance(node, s.And | s.Or | s.Quantified | s.Unless)
            self.builders[key] = _remembering(builder) if remember else builder
        return self.builders[key]

    def make(self, node: object) -> Builder:
        match node:
            case s.And() | s.Or() | s.Quantified(quantifier="all" | "any"):
                return self.deciding(node)
            case s.Unless(rule=rule, exception=exception):
                return self.unless(node, rule, exception)
            case s.Quantified() | s.Not():
                return self.every_kid(node)
            case s.SubCriterion():
                return self.part(node)
            case s.Compare(left=s.Score()) | s.Compare(right=s.Score()):
                return self.score(node)
            case s.BoolLit(value=truth):
                always = [f"always {'true' if truth else 'false'}"]
                return lambda _trace: always
            case (
                s.Compare(left=s.Selector() as selector) | s.Compare(right=s.Selector() as selector)
            ) if selector.op not in ("any", "no"):
                return self.selector_comparison(node, selector)
            case s.Selector():
                return self.selector_condition(node)
            case s.InCodes():
                return self.in_codes(node)
            case s.Compare():
                return self.comparison(node)
            case s.Between():
                return self.between(node)
            case s.Member() | s.Includes():
                return self.membership(node)
            case s.Window():
                return self.window(node)
        subject, value = self.subject(node), self.getter(node)
        said = {truth: f"{subject}: {word}" for truth, word in _YES_NO.items()}
        unknown = f"{subject}: unknown"
        return lambda t: [said.get(value(t), unknown)]

    def deciding(self, node: object) -> Builder:
        """An and/or: the operands whose value is the node's (all of them if none is)."""
        value = self.getter(node)
        operands = self.kids(node)
        kids = [(self.getter(kid), self.build(kid)) for kid in operands]

        def words(t: Trace) -> list[str]:
            decided = value(t)
            out: list[str] = []
            matched = False
            for kid_value, kid_words in kids:
                if kid_value(t) is decided:
                    matched = True
                    out += kid_words(t)
            if matched or decided is None:
                return out
            return [phrase for _, kid_words in kids for phrase in kid_words(t)]

        if any(self.is_constant(x) for x in (node, *operands)):
            return words
        # Every value in the trace (none folded to a constant): read by index, no getter.
        slot = self.origin[id(node)].id
        slotted = [
            (self.origin[id(kid)].id, kid_words)
            for (_, kid_words), kid in zip(kids, operands, strict=True)
        ]

        def read(t: Trace) -> list[str]:
            decided = t[slot]
            out: list[str] = []
            matched = False
            for kid_slot, kid_words in slotted:
                if t[kid_slot] is decided:
                    matched = True
                    out += kid_words(t)
            if matched or decided is None:
                return out
            return [phrase for _, kid_words in slotted for phrase in kid_words(t)]

        return read

    def unless(self, node: object, rule: s.Expr, exception: s.Expr) -> Builder:
        value, rule_value = self.getter(node), self.getter(rule)
        rule_words, exception_words = self.build(rule), self.build(exception)

        def words(t: Trace) -> list[str]:
            if value(t) is False and rule_value(t) is False:
                return rule_words(t)
            return rule_words(t) + exception_words(t)

        return words

    def every_kid(self, node: object) -> Builder:
        kids = [self.build(kid) for kid in self.kids(node)]
        return lambda t: [phrase for kid_words in kids for phrase in kid_words(t)]

    def part(self, node: s.SubCriterion) -> Builder:
        name = node.name.text
        condition = self.build(node.condition)
        if node.applies_when is None:
            return lambda t: [f"{name}: {p}" for p in condition(t)]
        applies, why_not = self.getter(node.applies_when), self.build(node.applies_when)

        def words(t: Trace) -> list[str]:
            if applies(t) is False:
                return [f"{name}: not applicable ({p})" for p in why_not(t)]
            return [f"{name}: {p}" for p in condition(t)]

        return words

    # ---- the words for one condition ----

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
        if isinstance(node, s.DateDifference):
            return words.date_difference(
                node.unit,
                self.subject(node.start),
                None if node.end is None else self.subject(node.end),
                self.reference_words(),
            )
        return "the computed value"

    def reference_words(self) -> str:
        """The reference date (`as of`) by its label or name."""
        as_of = self.checked.protocol.header.as_of
        if as_of is None:
            return "the reference date"
        return self.subject(s.Ref(as_of.text, as_of.span))

    def shown(self, node: object, like: object | None = None) -> Callable[[Trace], str]:
        """A node's value with its unit, e.g. '7%' or '1.6 mg/dL', or 'unknown'.

        With `like`, a quantity is shown in the unit of that other node, so a
        reason compares like with like: '0.67 mg/kg/d is not more than 0.8 mg/kg/d'.
        A constant (a limit) is put into words once, here.
        """
        show = self.shown_each(node, like)
        fixed = self.is_constant(node) and id(node) not in self.latest
        if fixed and (like is None or self.is_constant(like)):
            text = show(())  # reads no trace: its getters are constants
            return lambda _trace: text
        return show

    def is_constant(self, node: object) -> bool:
        """Whether lowering folded a node to a constant (a limit, a literal)."""
        return isinstance(self.origin[id(node)], ir.Const)

    def shown_each(self, node: object, like: object | None) -> Callable[[Trace], str]:
        """`shown`, worded for each record."""
        value = self.getter(node)
        kind = self.types[id(node)]
        # A plain number has the unit 1, which shows as nothing (not as a space).
        unit = kind.unit if kind.kind == "quantity" else units.DIMENSIONLESS
        factor: Decimal | None = None
        limit: Getter | None = None
        if like is not None:
            target = self.types[id(like)]
            if kind.kind == "quantity" and target.kind == "quantity" and target.unit != unit:
                molar_mass = kind.molar_mass or target.molar_mass
                factor = to_decimal(units.factor(unit, target.unit, molar_mass))
                unit = target.unit
            if target.numeric:
                limit = self.getter(like)
        suffix = words.unit_suffix(unit, False)
        latest_key = self.latest.get(id(node))
        latest = operator.itemgetter(latest_key.id) if latest_key is not None else None
        if latest is None and (limit is None or self.is_constant(like)):
            # The usual case, read for every record: no range, and no limit or a constant one.
            fixed = limit(()) if limit is not None else None
            bound = fixed if isinstance(fixed, Decimal) else None
            one = words.unit_suffix(unit, True)

            def plain(t: Trace) -> str:
                held = value(t)
                if held is None:
                    return "unknown"
                if isinstance(held, Decimal):
                    if factor is not None:
                        held = held * factor
                    text = str(held)
                    if text.isdigit():  # a whole number, as format_quantity writes it
                        return text + (one if text == "1" else suffix)
                    return format_quantity(held, unit, bound)
                return _shown_other(held)

            return plain

        def shown(t: Trace) -> str:
            held = value(t)
            if held is None:
                return "unknown"
            upper = latest(t) if latest is not None else None
            if upper is not None and upper != held:
                # A partial date, or a number computed from one: from its least to its most.
                return f"{_shown_other(held)} to {_shown_other(upper)}" + (
                    suffix if isinstance(held, Decimal) else ""
                )
            if isinstance(held, Decimal):
                if factor is not None:
                    held = held * factor
                bound = limit(t) if limit is not None else None
                return format_quantity(held, unit, bound if isinstance(bound, Decimal) else None)
            return _shown_other(held)

        return shown

    def comparison(self, node: s.Compare) -> Builder:
        value = self.getter(node)
        if self.types[id(node.right)].kind == "ordinal" and self.is_scale_value(node.left):
            # `ii < nyha` is worded from the scale's side: 'nyha iii is more than ii'
            node = s.Compare(words.FLIPPED[node.op], node.right, node.left, node.span)
        left, right = self.shown(node.left, like=node.right), self.shown(node.right)
        name = self.subject(node.left)
        if isinstance(node.left, s.Arithmetic):
            name = "value"
        wording = words.COMPARISONS[node.op]
        if self.types[id(node.left)].kind == "date":
            wording = words.DATE_COMPARISONS[node.op]
        if self.types[id(node.left)].kind == "enum":
            equal_wanted = node.op == "="

            def enum_words(t: Trace) -> list[str]:
                outcome = value(t)
                held = f"{name}: {left(t)}"
                if outcome is equal_wanted or outcome is None:
                    return [held]
                return [f"{held}, not {right(t)}"]

            return enum_words

        def compared(t: Trace) -> list[str]:
            outcome = value(t)
            if outcome is None:
                known = left(t)
                if known != "unknown":  # a range from a partial date that straddles the limit
                    return [f"{name} {known}: unknown whether {wording} {right(t)}"]
                return [f"{name} is unknown (the criterion asks for {wording} {right(t)})"]
            verb = "is" if outcome else "is not"
            return [f"{name} {left(t)} {verb} {wording} {right(t)}"]

        if not self.is_constant(node.right):
            return compared
        # Against a constant limit, the words after the value are the same for every record.
        limit = right(())
        tails = {True: f" is {wording} {limit}", False: f" is not {wording} {limit}"}
        unknown = [f"{name} is unknown (the criterion asks for {wording} {limit})"]
        lead = f"{name} "

        def against_limit(t: Trace) -> list[str]:
            outcome = value(t)
            if outcome is None:
                known = left(t)
                if known != "unknown":
                    return [f"{lead}{known}: unknown whether {wording} {limit}"]
                return unknown.copy()
            return [lead + left(t) + tails[outcome]]

        return against_limit

    def is_scale_value(self, node: object) -> bool:
        c = self.checked
        return isinstance(node, s.Ref) and not (
            node.name in c.elements or node.name in c.definitions or node.name in c.constants
        )

    def between(self, node: s.Between) -> Builder:
        value = self.getter(node)
        name = self.subject(node.subject)
        held = self.shown(node.subject, like=node.low)
        low, high = self.shown(node.low), self.shown(node.high)
        closed = "exclusive" if node.exclusive else "inclusive"

        fixed = (
            f"{low(())} and {high(())}"
            if self.is_constant(node.low) and self.is_constant(node.high)
            else None
        )

        def words(t: Trace) -> list[str]:
            outcome = value(t)
            bounds = fixed if fixed is not None else f"{low(t)} and {high(t)}"
            if outcome is None:
                return [f"{name} {held(t)}: unknown whether between {bounds} ({closed})"]
            verb = "is" if outcome else "is not"
            return [f"{name} {held(t)} {verb} between {bounds} ({closed})"]

        return words

    def membership(self, node: s.Member | s.Includes) -> Builder:
        value, subject_value = self.getter(node), self.getter(node.subject)
        name = self.subject(node.subject)
        held = self.shown(node.subject)
        listed = ", ".join(v.text for v in node.values)
        wanted = frozenset(v.text for v in node.values)
        member = isinstance(node, s.Member)
        quantifier = "" if isinstance(node, s.Member) else node.quantifier

        def words(t: Trace) -> list[str]:
            outcome = value(t)
            if outcome is None:
                return [f"{name}: unknown"]
            if member:
                verb = "is" if outcome else "is not"
                return [f"{name} {held(t)} {verb} one of ({listed})"]
            if quantifier == "any" and outcome:
                # Name the values that matched, not the whole list.
                matched = ", ".join(sorted(subject_value(t) & wanted))
                return [f"{name}: {matched}, one of those listed"]
            verb = "includes" if outcome else "does not include"
            return [f"{name} {held(t)} {verb} {quantifier} of ({listed})"]

        return words

    # ---- scores (issue 11) ----

    def score(self, node: s.Compare) -> Builder:
        """'score 8 of at least 9 (puffy fingers 2, Raynaud's phenomenon 3, ...)', and
        for an unknown score how far the unknown items could take it."""
        score, other = (
            (node.left, node.right) if isinstance(node.left, s.Score) else (node.right, node.left)
        )
        assert isinstance(score, s.Score)
        op = score_operator(node.op, score is node.left)
        threshold = self.checked.fold(other)
        assert threshold is not None
        wanted = f"{words.COMPARISONS[op]} {_points(threshold)}"
        value = self.getter(node)
        groups = [
            [
                (self.item_name(item), Fraction(item.points), self.getter(item.condition))
                for item in (entry.items if isinstance(entry, s.ScoreGroup) else (entry,))
            ]
            for entry in score.entries
        ]

        def said(t: Trace) -> list[str]:
            sure = possible = Fraction(0)
            counted: list[str] = []
            open_: list[str] = []
            for group in groups:
                met = [(points, name) for name, points, held in group if held(t) is True]
                maybe = [(points, name) for name, points, held in group if held(t) is None]
                best = max(met, default=(Fraction(0), ""))
                if best[1]:
                    counted.append(f"{best[1]} {_points(best[0])}")
                sure += best[0]
                higher = [(points, name) for points, name in maybe if points > best[0]]
                if higher:
                    possible += max(higher)[0] - best[0]
                    open_ += [name for _, name in higher]
            listed = ", ".join(counted) or "no item met"
            line = f"score {_points(sure)} of {wanted} ({listed})"
            if value(t) is None:
                line += f"; up to {_points(sure + possible)} with the unknown {', '.join(open_)}"
            return [line]

        return said

    def item_name(self, item: s.ScoreItem) -> str:
        if item.title:
            return item.title
        if item.name is not None:
            return item.name.text
        if isinstance(item.condition, s.Ref):
            return self.subject(item.condition)
        return "an item"

    # ---- histories and code lists ----

    def selection(self, node: s.Selector) -> _Selection:
        """What the explanations of one selector need, worked out once."""
        top = self.origin[id(node)]
        aggregate = next(n for n in ir.walk(top) if isinstance(n, ir.Aggregate))
        kind = self.checked.element_types[node.history.name]
        label = self.subject(node.history)
        said = []
        if node.where is not None:
            said.append(f"where {' '.join(fmt.expression_text(node.where).split())}")
        if node.window is not None:
            window = node.window
            span = words.calendar_duration(window.duration.amount, window.duration.unit)
            anchor = (
                self.reference_words() if window.anchor is None else self.subject(window.anchor)
            )
            word = "during" if window.overlap else "within"
            said.append(f"{word} {span} {window.direction} {anchor}")
        return _Selection(
            label=label,
            entry=kind.entry,
            unit=kind.unit,
            complete=kind.complete,
            history=self.getter(node.history),
            value=operator.itemgetter(aggregate.id),
            used=lambda t: t[self.used_slot].get(aggregate.id),
            words=" ".join(said),
        )

    def selector_condition(self, node: s.Selector) -> Builder:
        """`any H ...` / `no H ...`: the entry found, or why none is."""
        value = self.getter(node)
        sel = self.selection(node)
        asked = f" {sel.words}" if sel.words else ""

        def words(t: Trace) -> list[str]:
            entries = sel.history(t)
            if entries is None:
                return [f"{sel.label}: not on record"]
            found = sel.value(t)
            if found is True:
                return [f"{sel.label}: {sel.entry_words(sel.used(t))}, an entry{asked}"]
            if found is None:
                lacks = "an entry lacks a value"
                if sel.entry == EntryKind.CODE and not sel.complete:
                    # An open history's diagnosis without an end may have resolved off the record.
                    lacks += ", or has no end and may have resolved off the record"
                return [f"{sel.label}: unknown whether an entry{asked} ({lacks})"]
            outcome = value(t)
            if outcome is None:
                return [
                    f"{sel.label}: no entry{asked} on record, and the history may be incomplete"
                ]
            return [f"{sel.label}: no entry{asked}; the history is complete"]

        return words

    def selector_comparison(self, node: s.Compare, selector: s.Selector) -> Builder:
        """`latest H ... > x`: the value with the entry it comes from, and the limit."""
        value = self.getter(node)
        sel = self.selection(selector)
        left_side = selector is node.left
        other = self.shown(node.right if left_side else node.left)
        shown = self.shown(selector, like=node.right if left_side else None)
        op = node.op if left_side else words.FLIPPED[node.op]
        kind = self.types[id(selector)]
        wording = (words.DATE_COMPARISONS if kind.kind == "date" else words.COMPARISONS)[op]
        word = SELECTOR_NAMES[selector.op]
        asked = f" {sel.words}" if sel.words else ""
        what = f"the {word}" + ("" if selector.of is None else " value")

        def phrases(t: Trace) -> list[str]:
            outcome = value(t)
            entries = sel.history(t)
            if entries is None:
                return [f"{sel.label}: not on record (the criterion asks for {wording} {other(t)})"]
            if sel.value(t) is None:
                if selector.op == "count":
                    why = "an entry lacks a value it needs"
                elif not entries or sel.used(t) is None:
                    why = f"no entry{asked}"
                else:
                    when = sel.entry_words(sel.used(t))
                    why = f"entries on the same date disagree, or a value is missing ({when})"
                return [
                    f"{sel.label}: unknown, {why} (the criterion asks for {wording} {other(t)})"
                ]
            verb = "is" if outcome else ("is not" if outcome is False else "may not be")
            if selector.op == "count":
                counted = f"{sel.label}: {shown(t)} entries{asked}"
                if outcome is None:
                    counted += " on record, and the history may be incomplete"
                return [f"{counted}; the criterion asks for {wording} {other(t)}"]
            if selector.op == "total":
                return [f"{sel.label}: total {shown(t)}{asked}, {verb} {wording} {other(t)}"]
            entry = sel.entry_words(sel.used(t))
            lead = f"{shown(t)} from {entry}" if selector.of is not None else entry
            return [f"{sel.label} {lead}, {what}{asked}, {verb} {wording} {other(t)}"]

        return phrases

    def in_codes(self, node: s.InCodes) -> Builder:
        value, held = self.getter(node), self.getter(node.subject)
        name = self.subject(node.subject) if isinstance(node.subject, s.Ref) else "its code"
        declared = self.checked.code_lists.get(node.codes.text)
        listed = declared.label if declared is not None and declared.label else node.codes.text
        code = self.getter(node.subject)
        terminology = self.checked.terminology
        listed_codes = () if declared is None else (*declared.codes, *declared.excluded)
        # The roots the terminology does not decide: what leaves a code unknown.
        roots = [
            c
            for c in listed_codes
            if c.descendants
            and (terminology is None or not terminology.knows(_coded_in(declared, c.text)))
        ]
        why = (
            "no terminology was given"
            if terminology is None
            else f"the terminology ({terminology.source}) does not name "
            + ("it" if len(roots) == 1 else "them")
        )
        below = ", ".join(c.text for c in roots)
        excepted = (
            None
            if declared is None or not declared.excluded
            else code_list(declared, declared.excluded, node.codes.text, terminology)
        )

        def phrases(t: Trace) -> list[str]:
            outcome = value(t)
            if outcome is None and code(t) is not None and roots:
                return [
                    f"{name} {held(t)} may be in {listed}: whether it descends from "
                    f"{below} is not known ({why})"
                ]
            if outcome is None:
                return [f"{name}: unknown"]
            if outcome is False and excepted is not None and excepted.matches(str(code(t))):
                return [f"{name} {held(t)} is not in {listed}: it is one of its exceptions"]
            verb = "is" if outcome else "is not"
            return [f"{name} {held(t)} {verb} in {listed}"]

        return phrases

    def window(self, node: s.Window) -> Builder:
        """'diagnosed 2026-06-01 is within 6 months before screening date 2026-11-29'."""
        value = self.getter(node)
        name, held = self.subject(node.subject), self.shown(node.subject)
        span = words.calendar_duration(node.duration.amount, node.duration.unit)
        if node.anchor is None:
            anchor_name, anchor = self.reference_words(), self.reference_shown()
        else:
            anchor_name, anchor = self.subject(node.anchor), self.shown(node.anchor)

        def phrase(t: Trace) -> list[str]:
            outcome = value(t)
            where = f"{span} {node.direction} {anchor_name}"
            where += f" {anchor(t)}"
            if outcome is None:
                return [f"{name} {held(t)}: unknown whether within {where}"]
            verb = "is" if outcome else "is not"
            return [f"{name} {held(t)} {verb} within {where}"]

        return phrase

    def reference_shown(self) -> Callable[[Trace], str]:
        """The reference date's value as a reason shows it."""
        ends = {
            node.bound: operator.itemgetter(node.id)
            for node in self.program.nodes()
            if isinstance(node, ir.Element) and node.name == self.program.reference
        }
        first, last = ends["earliest"], ends["latest"]

        def shown(t: Trace) -> str:
            low, high = first(t), last(t)
            if low is None:
                return "unknown"
            return _shown_other(low) if low == high else f"{low} to {high}"

        return shown

    # ---- missing data ----

    def score_missing(
        self, entry: s.ScoreItem | s.ScoreGroup, trace: Trace, env: dict[str, Any]
    ) -> list[str]:
        """What an unknown score item lacks; in a group, an item outscored by a true one
        of the group cannot change the score."""
        items = entry.items if isinstance(entry, s.ScoreGroup) else (entry,)
        truths = [(item, self.getter(item.condition)(trace)) for item in items]
        return [
            name
            for item, value in truths
            if value is None
            and not any(v is True and other.points >= item.points for other, v in truths)
            for name in self.missing(item.condition, trace, env)
        ]

    def missing(self, node: object, trace: Trace, env: dict[str, Any]) -> list[str]:
        """Elements with no value under the unknown parts of `node`."""
        if self.getter(node)(trace) is not None:
            return []
        if isinstance(node, s.Score):
            return [n for entry in node.entries for n in self.score_missing(entry, trace, env)]
        if isinstance(node, s.DateDifference) and node.end is None:
            # `years since d` reads the reference date too.
            as_of = self.checked.protocol.header.as_of
            found = self.missing(node.start, trace, env)
            if as_of is not None and env.get(as_of.text) is None:
                found.append(as_of.text)
            return found
        if isinstance(node, s.Selector):
            name = node.history.name
            found = [n for child in self.kids(node)[1:] for n in self.missing(child, trace, env)]
            if env.get(name) is None:
                return [name, *found]  # and what its window or `where` reads besides
            # A window without a date ends at the reference date, which may be missing.
            as_of = self.checked.protocol.header.as_of
            window = node.window
            if window is not None and window.anchor is None and as_of is not None:
                found += [as_of.text] if env.get(as_of.text) is None else []
            # An incomplete history may lack the entry that would settle it.
            return found or ([] if self.checked.element_types[name].complete else [name])
        if isinstance(node, s.Ref):
            if node.name in self.checked.elements:
                return [node.name] if env.get(node.name) is None else []
            if node.name in self.checked.definitions:
                return self.missing(self.checked.definitions[node.name].expr, trace, env)
            return []
        kids = self.kids(node)
        unknown = [k for k in kids if self.getter(k)(trace) is None]
        found = [name for child in unknown for name in self.missing(child, trace, env)]
        if not found:
            # A comparison is unknown because an operand is: look below it.
            found = [n for child in kids for n in self.missing(child, trace, env)]
        return found


# The conditions whose builders may say more than one phrase (or none); every other
# builder says exactly one.
_MANY_PHRASES = (s.And, s.Or, s.Quantified, s.SubCriterion, s.Unless, s.Not)


def _points(value: Fraction) -> str:
    return format(to_decimal(value).normalize(), "f")


def _remembering(builder: Builder) -> Builder:
    """The builder, answering again for the same record without wording it twice.

    A criterion's reason repeats its parts' reasons, and both are read for every
    record; the phrases of the last trace seen are kept (callers never change them).
    """
    last_trace: list[Trace | None] = [None]
    last_words: list[list[str]] = [[]]

    def remembered(trace: Trace) -> list[str]:
        if trace is not last_trace[0]:
            last_words[0] = builder(trace)
            last_trace[0] = trace
        return last_words[0]

    return remembered


def _engine_value(value: ir.Value) -> Any:
    """A constant as the Python engine holds it."""
    return to_decimal(value) if isinstance(value, Fraction) else value


def _shown_other(value: Any) -> str:
    if isinstance(value, frozenset):
        return "(" + ", ".join(sorted(value)) + ")" if value else "(none)"
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def format_quantity(value: Decimal, unit: str, limit: Decimal | None = None) -> str:
    """A decimal with its unit in words: '7%', '45 years', 'about 1.7 mg/dL'.

    A value that needs rounding to be read is rounded to two places, or to as
    many more as keep it on its own side of `limit`: 29.996 against a limit of
    30 reads 'about 29.996', never 'about 30'.
    """
    # str() is the positional text whenever it has no exponent, and cheaper than format().
    text = str(value)
    if "E" in text:
        text = f"{value:f}"
    whole, point, fraction = text.partition(".")
    if point:
        fraction = fraction.rstrip("0")
        if len(fraction) > 3:
            # A long or endless fraction (150 umol/L of creatinine in mg/dL): round for reading.
            return "about " + words.quantity(words.rounded(value, limit), unit)
        # Exact: a short fraction, as written (0.8, 13.125).
        text = f"{whole}.{fraction}" if fraction else whole
    return text + words.unit_suffix(unit, text == "1")


# Each entry kind's fields, by the kind's name (no enum made for every entry worded).
_LAYOUTS: dict[str, tuple[str, ...]] = {kind.value: fields for kind, fields in ENTRY_LAYOUT.items()}

# How explanations name each selector's pick.
SELECTOR_NAMES = {
    "count": "number",
    "latest": "latest",
    "earliest": "earliest",
    "highest": "highest",
    "lowest": "lowest",
    "total": "total",
}


@attrs.frozen
class _Selection:
    """One selector, as its explanations read it from a trace."""

    label: str
    entry: str  # vocab.EntryKind
    unit: str
    complete: bool
    history: Getter
    value: Getter
    used: Getter
    words: str  # its where and window, as written

    def entry_words(self, entry: tuple[Any, ...] | None) -> str:
        """'1.6 mg/dL on 2026-05-02 (Observation/123)': an entry with its date and source."""
        if entry is None:
            return "an entry"
        fields = dict(zip(_LAYOUTS[self.entry], entry, strict=True))
        source = f" ({printable(fields['source'])})" if fields["source"] else ""
        if self.entry == EntryKind.MEASUREMENT:
            return f"{format_quantity(fields['value'], self.unit)} on {fields['date']}{source}"
        if self.entry == EntryKind.CODE:
            ended = "" if fields["end"] is None else f" to {fields['end']}"
            return f"{fields['code']} on {fields['date']}{ended}{source}"
        taken = "ongoing" if fields["end"] is None else f"to {fields['end']}"
        dose = "" if fields["dose"] is None else f", {format_quantity(fields['dose'], self.unit)}"
        return f"{fields['code']} from {fields['start']} {taken}{dose}{source}"


def _coded_in(declared: s.CodeList | None, written: str) -> str:
    """A code of a code list as `system:code`, as records and the terminology write it."""
    assert declared is not None
    system = codes.system_named(declared.system.text)
    assert system is not None, "a checked code list has a known system"
    return f"{system.value}:{codes.bare(system, written)}"
