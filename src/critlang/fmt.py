"""The canonical formatter: a protocol's syntax tree back to text, comments kept.

Layout is a function of the syntax tree alone: a small Wadler-style pretty
printer breaks lines at 100 columns, so formatting is idempotent and the
formatted text parses to the same tree (checked on every run, as black does).
Comments are not in the tree. A second Lark parser on the same grammar
collects them through a lexer callback, together with the positions of the
clauses they sit among; each comment is re-attached to the declaration,
criterion, clause, sub-criterion or example field that follows it, or, when
it ends a line, kept at the end of the first line of the item that starts on
that line.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Iterable
from decimal import Decimal
from importlib import resources
from typing import Any

import attrs
from lark import Lark, Token, Tree

from critlang import syntax as s
from critlang.check import FIELD_WORDS, SELECTOR_WORDS
from critlang.diagnostics import CritError, Diagnostic
from critlang.parser import parse
from critlang.words import calendar_duration

WIDTH = 100
INDENT = 2
HEADER_FIELDS = (
    "title",
    "version",
    "registry",
    "sponsor",
    "sites",
    "status",
    "summary",
    "as_of",
)

# ---- documents and their layout ------------------------------------------------


class Doc:
    """A piece of layout. `hard` is true when it always contains a line break."""

    hard = False


class Text(Doc):
    def __init__(self, text: str) -> None:
        self.text = text


class Line(Doc):
    """A space when its group fits on the line, else a line break."""

    def __init__(self, flat: str = " ") -> None:
        self.flat = flat


class Hard(Doc):
    """Always a line break; `blank` leaves an empty line before the next one."""

    hard = True

    def __init__(self, blank: bool = False) -> None:
        self.blank = blank


class Concat(Doc):
    def __init__(self, *parts: Doc) -> None:
        self.parts = parts
        self.hard = any(p.hard for p in parts)


class Nest(Doc):
    """Breaks inside are indented `by` more than the enclosing indentation."""

    def __init__(self, by: int, doc: Doc) -> None:
        self.by, self.doc, self.hard = by, doc, doc.hard


class Align(Doc):
    """Breaks inside start at the column where this document starts."""

    def __init__(self, doc: Doc) -> None:
        self.doc, self.hard = doc, doc.hard


class Anchor(Doc):
    """Breaks inside start at the indentation of the line this document starts on."""

    def __init__(self, doc: Doc) -> None:
        self.doc, self.hard = doc, doc.hard


class Group(Doc):
    """Laid out on one line when it fits, otherwise with every Line broken."""

    def __init__(self, doc: Doc) -> None:
        self.doc, self.hard = doc, doc.hard


class Fill(Doc):
    """Comma-separated words, as many on a line as fit, continued under the first."""

    def __init__(self, words: tuple[str, ...]) -> None:
        self.words = words


class Mark(Doc):
    """Where an item that comments attach to starts; always at the start of a line."""

    def __init__(self, key: object) -> None:
        self.key = key


FLAT, BREAK = True, False
Command = tuple[int, bool, Doc]


class _Printer:
    def __init__(self, width: int, leading: dict[object, list[_Comment]]) -> None:
        self.width = width
        self.leading = leading
        self.lines = [""]
        self.line_indent = 0
        self.marks: dict[object, int] = {}

    def newline(self, indent: int, blank: bool = False) -> None:
        self.lines[-1] = self.lines[-1].rstrip()
        if blank and self.lines[-1] != "":
            self.lines.append("")
        self.lines.append(" " * indent)
        self.line_indent = indent

    @property
    def column(self) -> int:
        return len(self.lines[-1])

    def run(self, doc: Doc) -> list[str]:
        stack: list[Command] = [(0, BREAK, doc)]
        while stack:
            indent, mode, d = stack.pop()
            if isinstance(d, Text):
                self.lines[-1] += d.text
            elif isinstance(d, Line):
                if mode is FLAT:
                    self.lines[-1] += d.flat
                else:
                    self.newline(indent)
            elif isinstance(d, Hard):
                self.newline(indent, d.blank)
            elif isinstance(d, Concat):
                stack.extend((indent, mode, p) for p in reversed(d.parts))
            elif isinstance(d, Nest):
                stack.append((indent + d.by, mode, d.doc))
            elif isinstance(d, Align):
                stack.append((self.column, mode, d.doc))
            elif isinstance(d, Anchor):
                stack.append((self.line_indent, mode, d.doc))
            elif isinstance(d, Group):
                flat = mode is FLAT or (
                    not d.hard and self.fits(self.width - self.column, (indent, FLAT, d.doc), stack)
                )
                stack.append((indent, FLAT if flat else BREAK, d.doc))
            elif isinstance(d, Fill):
                self.fill(d.words, mode, stack)
            elif isinstance(d, Mark):
                self.mark(d.key, indent)
        self.lines[-1] = self.lines[-1].rstrip()
        return self.lines

    def mark(self, key: object, indent: int) -> None:
        for comment in self.leading.get(key, ()):
            if comment.blank_before and len(self.lines) > 1 and self.lines[-2] != "":
                self.lines.insert(len(self.lines) - 1, "")
            self.lines[-1] += comment.text
            self.newline(indent, comment.blank_after)
        self.marks[key] = len(self.lines) - 1

    def fill(self, words: tuple[str, ...], mode: bool, stack: list[Command]) -> None:
        column = self.column
        for position, word in enumerate(words):
            last = position == len(words) - 1
            if position == 0:
                self.lines[-1] += word
                continue
            piece = ", " + word + ("" if last else ",")
            rest = stack if last else []
            if mode is FLAT or self.fits(self.width - self.column, (0, FLAT, Text(piece)), rest):
                self.lines[-1] += ", " + word
            else:
                self.lines[-1] += ","
                self.newline(column)
                self.lines[-1] += word

    def fits(self, room: int, first: Command, rest: list[Command]) -> bool:
        """Does everything up to the next line break fit in `room` columns?"""
        todo = [first]
        waiting = len(rest) - 1
        while room >= 0:
            if not todo:
                if waiting < 0:
                    return True
                todo.append(rest[waiting])
                waiting -= 1
                continue
            indent, mode, d = todo.pop()
            if isinstance(d, Text):
                room -= len(d.text)
            elif isinstance(d, Line):
                if mode is BREAK:
                    return True
                room -= len(d.flat)
            elif isinstance(d, Hard):
                return True
            elif isinstance(d, Concat):
                todo.extend((indent, mode, p) for p in reversed(d.parts))
            elif isinstance(d, Nest | Align | Anchor | Group):
                todo.append((indent, mode, d.doc))
            elif isinstance(d, Fill):
                if mode is BREAK:
                    return room >= len(d.words[0]) + 1
                room -= sum(len(w) for w in d.words) + 2 * (len(d.words) - 1)
        return False


# ---- comments and the positions they attach to -----------------------------------


@attrs.frozen
class _Comment:
    text: str
    line: int
    column: int
    standalone: bool
    blank_before: bool
    blank_after: bool


class _Collector:
    """The lexer callback: the parser is shared, the list of comments is per call."""

    def __init__(self) -> None:
        self.tokens: list[Token] = []

    def __call__(self, token: Token) -> Token:
        self.tokens.append(token)
        return token


@functools.cache
def _comment_parser() -> tuple[Lark, _Collector]:
    collector = _Collector()
    grammar = resources.files("critlang") / "grammar" / "critlang.lark"
    with resources.as_file(grammar) as path:
        lark = Lark.open(
            str(path),
            parser="lalr",
            cache=True,
            propagate_positions=True,
            maybe_placeholders=True,
            keep_all_tokens=True,
            lexer_callbacks={"COMMENT": collector},
        )
    return lark, collector


Position = tuple[int, int]


@attrs.define
class _Clauses:
    """Where the clauses of one declaration start, by clause name, in source order."""

    found: dict[str, list[Position]] = attrs.Factory(dict)

    def add(self, name: str, position: Position) -> None:
        self.found.setdefault(name, []).append(position)

    def last(self, name: str) -> Position | None:
        return self.found[name][-1] if name in self.found else None

    def all(self, name: str) -> list[Position]:
        return self.found.get(name, [])


CLAUSE_RULES = frozenset(
    {
        *HEADER_FIELDS,
        "label",
        "registered",
        "plain",
        "note",
        "applies_when",
        "approximation",
        "data_section",
    }
)
OWNER_RULES = frozenset({"protocol", "element", "constant", "definition", "criterion"})


def _scan(text: str) -> tuple[list[_Comment], dict[Position, _Clauses]]:
    """The comments of `text`, and the clause positions of each declaration by its start."""
    lark, collector = _comment_parser()
    collector.tokens = []
    tree = lark.parse(text)
    lines = text.split("\n")  # as Lark counts lines: other line breaks are not

    def blank(number: int) -> bool:
        return 1 <= number <= len(lines) and not lines[number - 1].strip()

    comments = [
        _Comment(
            str(token).rstrip(),
            token.line or 1,
            token.column or 1,
            not lines[(token.line or 1) - 1][: (token.column or 1) - 1].strip(),
            blank((token.line or 1) - 1),
            blank((token.line or 1) + 1),
        )
        for token in collector.tokens
    ]
    clauses: dict[Position, _Clauses] = {}
    for owner in tree.iter_subtrees():
        if owner.data not in OWNER_RULES:
            continue
        found = clauses.setdefault(_position(owner), _Clauses())
        for child in owner.children:
            if isinstance(child, Tree) and child.data in CLAUSE_RULES:
                found.add(str(child.data), _position(child))
            elif isinstance(child, Token) and child.type == "MET":
                found.add("met", (child.line or 1, child.column or 1))
    return comments, clauses


def _position(tree: Tree[Token]) -> Position:
    return tree.meta.line, tree.meta.column


@attrs.frozen
class _Unit:
    key: object
    position: Position
    can_trail: bool


def _attach(
    units: list[_Unit], comments: list[_Comment]
) -> tuple[dict[object, list[_Comment]], dict[object, _Comment], list[_Comment]]:
    """Leading comments per unit, trailing comments per unit, and comments after everything."""
    ordered = sorted(units, key=lambda u: u.position)
    leading: dict[object, list[_Comment]] = {}
    trailing: dict[object, _Comment] = {}
    after: list[_Comment] = []
    for comment in comments:
        here = (comment.line, comment.column)
        if not comment.standalone:
            same_line = [u for u in ordered if u.position[0] == comment.line and u.position < here]
            if same_line:
                unit = same_line[-1]
                if unit.can_trail and unit.key not in trailing:
                    trailing[unit.key] = comment
                else:
                    leading.setdefault(unit.key, []).append(comment)
                continue
        following = next((u for u in ordered if u.position > here), None)
        if following is None:
            after.append(comment)
        else:
            leading.setdefault(following.key, []).append(comment)
    return leading, trailing, after


# ---- the syntax tree as a document ------------------------------------------------


def _join(docs: Iterable[Doc], separator: Doc) -> Doc:
    parts: list[Doc] = []
    for doc in docs:
        if parts:
            parts.append(separator)
        parts.append(doc)
    return Concat(*parts)


def quote(value: str) -> str:
    """A critlang string literal that reads back as `value`."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def _long_text_ok(value: str) -> bool:
    """Can `value` be written as a triple-quoted block and read back unchanged?"""
    lines = value.split("\n")
    return (
        len(lines) > 1
        and '"""' not in value
        and value == value.strip()
        and "\r" not in value
        and all(line == line.rstrip() for line in lines)
    )


def number(value: Decimal) -> str:
    text = f"{abs(value):f}"
    return f"-{text}" if value.is_signed() else text


def unit_code(code: str) -> str:
    """A unit as written in a .crit file: in single quotes, with \\' and \\\\ escaped."""
    return "'" + code.replace("\\", "\\\\").replace("'", "\\'") + "'"


def literal(node: s.NumberLit | s.QuantityLit | s.DateLit) -> str:
    match node:
        case s.QuantityLit(value=value, unit="%"):
            return f"{number(value)}%"
        case s.QuantityLit(value=value, unit=unit):
            return f"{number(value)} {unit_code(unit)}"
        case s.NumberLit(value=value):
            return number(value)
        case s.DateLit(value=day):
            return day.isoformat()


def entry_value(node: s.EntryValue) -> str:
    """A value of an example's field or history entry, as written."""
    match node:
        case s.CodeLit(system=system, code=code):
            return f"{system.text} {quote(code)}"
        case s.PartialDateLit(text=text):
            return text
        case s.TextLit(text=text):
            return quote(text)
    return literal(node)


# Binding strength, loosest first, as in the grammar.
UNLESS, OR, AND, NOT, COMPARISON, SUM, PRODUCT, ATOM = range(1, 9)


def _open_ended(node: s.Expr) -> bool:
    """An atom that ends in an open sum (`decline from a to b`, `years between a and b`),
    which would take in an operator that follows it."""
    return isinstance(node, s.RelativeChange) or (
        isinstance(node, s.DateDifference) and node.end is not None
    )


def _strength(node: s.Expr) -> int:
    match node:
        case s.Unless():
            return UNLESS
        case s.Or():
            return OR
        case s.And():
            return AND
        case s.Not():
            return NOT
        case s.Compare() | s.Between() | s.Member() | s.Includes() | s.InCodes() | s.Window():
            return COMPARISON
        case s.DateDifference(end=end) if end is not None:
            return COMPARISON  # its `and` operand runs on: bracketed before an operator
        case s.Selector(where=where, window=window) if where is not None or (
            window is not None and window.anchor is not None
        ):
            # Its `where` (or the window's date) runs on: bracketed wherever something follows.
            return UNLESS - 1
        case s.Arithmetic(op="+" | "-"):
            return SUM
        case s.Arithmetic():
            return PRODUCT
    return ATOM


class _Builder:
    """Builds the document of a protocol and records the units comments attach to."""

    def __init__(
        self,
        clauses: dict[Position, _Clauses],
        bracketed: frozenset[Extent] = frozenset(),
        commented: frozenset[int] = frozenset(),
    ) -> None:
        self.clauses = clauses
        self.bracketed = bracketed
        self.commented = commented  # the lines that hold a comment
        self.units: list[_Unit] = []

    def unit(self, key: object, position: Position | None, doc: Doc, can_trail: bool = True) -> Doc:
        if position is None:
            return doc
        self.units.append(_Unit(key, position, can_trail))
        return Concat(Mark(key), doc)

    def owner(self, span: s.Span) -> _Clauses:
        return self.clauses.get((span.line, span.column), _Clauses())

    # ---- protocol ----

    def protocol(self, protocol: s.Protocol) -> Doc:
        start = (protocol.span.line, protocol.span.column)
        clauses = self.owner(protocol.span)
        header: list[Doc] = []
        for name in HEADER_FIELDS:
            value = getattr(protocol.header, name)
            if value is None or value == ():
                continue
            doc, can_trail = self.header_field(name, value)
            header.append(Hard())
            header.append(self.unit(("header", name), clauses.last(name), doc, can_trail))
        sections: list[Doc] = [
            self.unit("protocol", start, Concat(Text(f"protocol {protocol.name.text}"))),
            Nest(INDENT, Concat(*header)),
        ]
        if protocol.code_lists:
            sections += [Hard(blank=True), _join(map(self.code_list, protocol.code_lists), Hard())]
        if protocol.elements:
            elements = [Concat(Hard(), self.element(e)) for e in protocol.elements]
            data = Concat(Text("data"), Nest(INDENT, Concat(*elements)))
            sections += [Hard(blank=True), self.unit("data", clauses.last("data_section"), data)]
        for group in (
            [self.constant(c) for c in protocol.constants],
            [self.definition(d) for d in protocol.definitions],
        ):
            if group:
                sections += [Hard(blank=True), _join(group, Hard())]
        for criterion in protocol.criteria:
            sections += [Hard(blank=True), self.criterion(criterion)]
        for example in protocol.examples:
            sections += [Hard(blank=True), self.example(example)]
        return Concat(*sections)

    def header_field(self, name: str, value: Any) -> tuple[Doc, bool]:
        if name == "sites":
            return Text("sites " + ", ".join(quote(v) for v in value)), True
        if name == "status":
            return Text(f"status {value}"), True
        if name == "as_of":
            return Text(f"as of {value.text}"), True
        return self.text_clause(name, value)

    def text_clause(self, keyword: str, value: str) -> tuple[Doc, bool]:
        """`keyword "text"`, or a triple-quoted block for text of several lines."""
        if not _long_text_ok(value):
            return Text(f"{keyword} {quote(value)}"), True
        body = [Concat(Hard(), Text(line)) for line in value.split("\n")]
        block = Concat(Text(f'{keyword} """'), Nest(INDENT, Concat(*body)), Hard(), Text('"""'))
        return block, False

    # ---- data dictionary, constants, definitions ----

    def element(self, element: s.DataElement) -> Doc:
        first = [Text(f"{element.name.text}: "), self.declared_type(element.type)]
        if element.plausible_range is not None:
            low, high = element.plausible_range
            first.append(Text(f" range {number(low)} to {number(high)}"))
        if element.molar_mass is not None:
            first.append(Text(f" molar mass {literal(element.molar_mass)}"))
        if element.accepts:
            first.append(Text(" accepts " + ", ".join(unit_code(u.code) for u in element.accepts)))
        for conversion in element.conversions:
            offset = conversion.offset
            shift = f" {'-' if offset.is_signed() else '+'} {number(abs(offset))}" if offset else ""
            first.append(
                Text(
                    f" convert {unit_code(conversion.unit.code)} as "
                    f"{number(conversion.scale)} * value{shift}"
                )
            )
        if element.complete:
            first.append(Text(" complete"))
        doc: Doc = Concat(*first)
        if element.label is not None:
            doc = Concat(doc, Nest(INDENT, self.label(element.span, element.label)))
        key = ("element", element.span)
        return self.unit(key, (element.span.line, element.span.column), doc)

    def code_list(self, code_list: s.CodeList) -> Doc:
        head = f"codes {code_list.name.text}"
        if code_list.label is not None:
            head += f" {quote(code_list.label)}"
        head += f" {code_list.system.text} ("

        span = code_list.span
        # Comments among the codes stay with them: one code a line, each its own unit.
        commented = any(span.line < n <= span.end_line for n in self.commented)
        line: Callable[[], Doc] = Hard if commented else lambda: Line("")

        def entries(listed: tuple[s.CodeText, ...]) -> Doc:
            docs = []
            for c in listed:
                doc = Text(quote(c.text) + (" and descendants" if c.descendants else ""))
                where = (c.span.line, c.span.column)
                docs.append(self.unit(("code", c.span), where, doc) if commented else doc)
            between = Concat(Text(","), Hard() if commented else Line())
            return Concat(line(), _join(docs, between))

        parts: list[Doc] = [Text(head), Nest(INDENT, entries(code_list.codes)), line(), Text(")")]
        if code_list.excluded:
            parts += [Text(" except ("), Nest(INDENT, entries(code_list.excluded))]
            parts += [line(), Text(")")]
        doc = Group(Concat(*parts))
        return self.unit(("codes", span), (span.line, span.column), doc)

    def label(self, owner: s.Span, value: str) -> Doc:
        doc, can_trail = self.text_clause("label", value)
        position = self.owner(owner).last("label")
        return Concat(Hard(), self.unit(("label", owner), position, doc, can_trail))

    def declared_type(self, declared: s.DeclaredType) -> Doc:
        match declared:
            case s.BooleanType():
                return Text("boolean")
            case s.NumberType():
                return Text("number")
            case s.QuantityType(unit=unit):
                return Text(f"quantity {unit_code(unit)}")
            case s.DurationType(unit=unit):
                return Text(f"duration {unit_code(unit)}")
            case s.DateType():
                return Text("date")
            case s.EnumType(values=values):
                return Concat(Text("one of ("), Align(Fill(_texts(values))), Text(")"))
            case s.SetType(values=values):
                return Concat(Text("set of ("), Align(Fill(_texts(values))), Text(")"))
            case s.IntegerType():
                return Text("integer")
            case s.OrdinalType(values=values):
                return Concat(Text("ordinal ("), Align(Fill(_texts(values))), Text(")"))
            case s.CodeType():
                return Text("code")
            case s.HistoryType(entry="measurement", unit=unit):
                return Text(f"history of quantity {unit_code(unit or '1')}")
            case s.HistoryType(entry="code"):
                return Text("history of codes")
            case s.HistoryType(unit=unit):
                return Text("history of medications" + (f" {unit_code(unit)}" if unit else ""))
            case s.AttestationType(attesters=attesters):
                quoted = [quote(a) for a in attesters]
                listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1])
                if len(quoted) > 1:
                    listed += " and " + quoted[-1]
                return Text(f"attestation by {listed}")

    def constant(self, constant: s.Constant) -> Doc:
        doc: Doc = Text(f"constant {constant.name.text} = {literal(constant.value)}")
        if constant.label is not None:
            doc = Concat(doc, Nest(INDENT, self.label(constant.span, constant.label)))
        span = constant.span
        return self.unit(("constant", span), (span.line, span.column), doc)

    def definition(self, definition: s.Definition) -> Doc:
        expr = Nest(INDENT, self.expr(definition.expr))
        doc: Doc = Concat(Text(f"define {definition.name.text} = "), expr)
        if definition.label is not None:
            doc = Concat(doc, Nest(INDENT, self.label(definition.span, definition.label)))
        span = definition.span
        return self.unit(("definition", span), (span.line, span.column), doc)

    # ---- criteria ----

    def criterion(self, criterion: s.Criterion) -> Doc:
        span = criterion.span
        clauses = self.owner(span)
        parts: list[Doc] = []
        texts: list[tuple[str, str | None, Position | None]] = [
            ("registered", criterion.registered, clauses.last("registered")),
            ("plain", criterion.plain, clauses.last("plain")),
        ]
        notes = clauses.all("note")
        for number_, note in enumerate(criterion.notes):
            texts.append(("note", note, notes[number_] if number_ < len(notes) else None))
        if criterion.approximate is not None:
            where = clauses.last("approximation")
            texts.append(("approximate", criterion.approximate.reason, where))
        for position_, (keyword, value, where) in enumerate(texts):
            if value is None:
                continue
            doc, can_trail = self.text_clause(keyword, value)
            key = ("clause", span, keyword, position_)
            parts += [Hard(), self.unit(key, where, doc, can_trail)]
        if criterion.applies_when is not None:
            applies = Concat(Text("applies when "), Nest(INDENT, self.expr(criterion.applies_when)))
            parts += [Hard(), self.unit(("applies", span), clauses.last("applies_when"), applies)]
        met = Concat(Text("met when "), Nest(INDENT, self.expr(criterion.condition)))
        parts += [Hard(), self.unit(("met", span), clauses.last("met"), met)]
        head = Text(f"{criterion.kind} {criterion.id.text} {quote(criterion.title)}")
        doc = Concat(head, Nest(INDENT, Concat(*parts)))
        return self.unit(("criterion", span), (span.line, span.column), doc)

    # ---- examples ----

    def example(self, example: s.Example) -> Doc:
        span = example.span
        head = f"example {quote(example.title)} {{"
        tail = f"}} expect {example.expect.text}"
        if not example.fields:
            doc: Doc = Text(head + tail)
        else:
            fields = [self.field(f) for f in example.fields]
            body = Concat(Hard(), _join(fields, Concat(Text(","), Hard())))
            doc = Concat(Text(head), Nest(INDENT, body), Hard(), Text(tail))
        return self.unit(("example", span), (span.line, span.column), doc)

    def field(self, field: s.ExampleField) -> Doc:
        value = field.value
        span = field.span
        match value:
            case s.HistoryLit(entries=()):
                shown = "[]"
            case s.HistoryLit(entries=entries):
                # One entry a line, as a record's JSON entry list is usually written.
                lines = _join((self.entry(e) for e in entries), Concat(Text(","), Hard()))
                doc: Doc = Concat(
                    Text(f"{field.name.text} = ["),
                    Nest(INDENT, Concat(Hard(), lines, Text(","))),
                    Hard(),
                    Text("]"),
                )
                return self.unit(("field", span), (span.line, span.column), doc)
            case s.BoolLit(value=truth):
                shown = "true" if truth else "false"
            case s.Name(text=text):
                shown = text
            case tuple():
                shown = "(" + ", ".join(_texts(value)) + ")"
            case _:
                shown = entry_value(value)
        doc = Text(f"{field.name.text} = {shown}")
        return self.unit(("field", span), (span.line, span.column), doc)

    def entry(self, entry: s.EntryLit) -> Doc:
        items = [Text(f"{i.name.text} = {entry_value(i.value)}") for i in entry.items]
        body = Concat(Line(""), _join(items, Concat(Text(","), Line())))
        doc = Group(Concat(Text("{"), Nest(INDENT, body), Line(""), Text("}")))
        span = entry.span
        return self.unit(("entry", span), (span.line, span.column), doc)

    # ---- expressions ----

    def operand(
        self, node: s.Expr, strength: int, closed: bool = False, negated: bool = False
    ) -> Doc:
        """`node`, in parentheses when it binds more loosely than its place needs
        (or, with `closed`, when it is a relative change), or when the author
        bracketed it to be clear: what a 'not' negates, a 'not', or a mix of
        'and' and 'or'."""
        needed = _strength(node) < strength or (closed and _open_ended(node))
        clarifying = negated or isinstance(node, s.Not) or _mixed(node)
        if not needed and not (clarifying and _extent(node.span) in self.bracketed):
            return self.expr(node)
        return Concat(Text("("), Align(self.expr(node)), Text(")"))

    def expr(self, node: s.Expr) -> Doc:
        match node:
            case s.NumberLit() | s.QuantityLit() | s.DateLit():
                return Text(literal(node))
            case s.BoolLit(value=truth):
                return Text("true" if truth else "false")
            case s.Ref(name=name):
                return Text(name)
            case s.Not(operand=operand):
                return Concat(Text("not "), self.operand(operand, NOT, negated=True))
            case s.And() | s.Or():
                return self.chain(node)
            case s.Unless(rule=rule, exception=exception):
                # Clarifying parentheses: 'and', 'or' and 'unless' never mix unbracketed.
                return Group(
                    Concat(
                        self.operand(rule, NOT),
                        Line(),
                        Text("unless "),
                        self.operand(exception, NOT),
                    )
                )
            case s.Compare(op=op, left=left, right=right):
                return Concat(self.operand(left, SUM), Text(f" {op} "), self.operand(right, SUM))
            case s.Between(subject=subject, low=low, high=high, exclusive=exclusive):
                return Concat(
                    self.operand(subject, SUM),
                    Text(" between "),
                    self.operand(low, SUM),
                    Text(" and "),
                    self.operand(high, SUM),
                    Text(" exclusive" if exclusive else ""),
                )
            case s.Member(subject=subject, values=values):
                return Concat(
                    self.operand(subject, SUM),
                    Text(" in ("),
                    Align(Fill(_texts(values))),
                    Text(")"),
                )
            case s.Includes(subject=subject, quantifier=quantifier, values=values):
                return Concat(
                    self.operand(subject, SUM),
                    Text(f" includes {quantifier} of ("),
                    Align(Fill(_texts(values))),
                    Text(")"),
                )
            case s.Arithmetic(op=op, left=left, right=right):
                # `decline from a to b` ends in an open sum that would take in what
                # follows, so it is bracketed on either side of an operator.
                additive = op in "+-"
                return Concat(
                    self.operand(left, SUM if additive else PRODUCT, closed=True),
                    Text(f" {op} "),
                    self.operand(right, PRODUCT if additive else ATOM, closed=True),
                )
            case s.RelativeChange(direction=direction, baseline=baseline, current=current):
                return Concat(
                    Text(f"{direction} from "),
                    self.operand(baseline, SUM),
                    Text(" to "),
                    self.operand(current, SUM),
                )
            case s.Quantified():
                return self.quantified(node)
            case s.Score():
                return self.score(node)
            case s.CalendarDuration(amount=amount, unit=unit):
                return Text(calendar_duration(amount, unit))
            case s.DateDifference(unit=unit, start=start, end=None):
                return Concat(Text(f"{unit}s since "), self.operand(start, ATOM))
            case s.DateDifference(unit=unit, start=start, end=end):
                assert end is not None
                return Concat(
                    Text(f"{unit}s between "),
                    self.operand(start, SUM),
                    Text(" and "),
                    self.operand(end, SUM),
                )
            case s.Window(subject=subject, duration=duration, direction=direction, anchor=anchor):
                # `within 30 days` is before the reference date; `after` is always written.
                tail: list[Doc] = []
                if anchor is not None:
                    tail = [Text(f" {direction} "), self.operand(anchor, SUM)]
                elif direction == "after":
                    tail = [Text(" after")]
                return Concat(
                    self.operand(subject, SUM),
                    Text(" within "),
                    self.expr(duration),
                    *tail,
                )
            case s.EntryField(field=field):
                return Text(f"its {FIELD_WORDS[field]}")
            case s.InCodes(subject=subject, codes=codes):
                return Concat(self.operand(subject, SUM), Text(f" in {codes.text}"))
            case s.Selector():
                return self.selector(node)
        raise AssertionError(f"cannot format {node!r}")

    # ---- scores (issue 11) ----

    def score(self, node: s.Score) -> Doc:
        """`score [...]`: one line, or one item per line (always when an item is named)."""
        entries: list[Doc] = []
        for entry in node.entries:
            if isinstance(entry, s.ScoreGroup):
                entries.append(
                    self.listed("highest of [", [self.score_item(i) for i in entry.items], False)
                )
            else:
                entries.append(self.score_item(entry))
        named = any(item.name is not None for item in node.items())
        return self.listed("score [", entries, named)

    def listed(self, opening: str, items: list[Doc], broken: bool) -> Doc:
        if broken:
            body = Concat(Hard(), _join(items, Concat(Text(","), Hard())))
            return Concat(Text(opening), Anchor(Concat(Nest(INDENT, body), Hard(), Text("]"))))
        body = Concat(Line(""), _join(items, Concat(Text(","), Line())))
        return Group(Concat(Text(opening), Anchor(Concat(Nest(INDENT, body), Line(""), Text("]")))))

    def score_item(self, item: s.ScoreItem) -> Doc:
        head: list[Doc] = []
        if item.name is not None:
            head.append(Text(item.name.text))
            if item.title is not None:
                head.append(Text(" " + quote(item.title)))
            head.append(Text(":"))
        points = "point" if item.points == 1 else "points"
        weighed = Text(f"{number(item.points)} {points} when ")
        condition = Concat(weighed, self.operand(item.condition, UNLESS))
        if not head:
            return Group(condition)
        return Group(Concat(*head, Nest(INDENT, Concat(Line(), condition))))

    def selector(self, node: s.Selector) -> Doc:
        word = SELECTOR_WORDS[node.op]
        parts: list[Doc] = [Text(f"{word} ")]
        if node.of is not None:
            parts += [Text("("), Align(self.expr(node.of)), Text(") of ")]
        parts.append(Text(node.history.name))
        # The window first: after a `where` ending in a name it would read as a date's window.
        if node.window is not None:
            window = node.window
            amount, unit = window.duration.amount, window.duration.unit
            word = "during" if window.overlap else "within"
            parts += [Line(), Text(f"{word} {amount} {unit if amount == 1 else unit + 's'}")]
            if window.anchor is not None:
                parts += [Text(f" {window.direction} "), self.operand(window.anchor, SUM)]
            elif window.direction == "after":
                parts.append(Text(" after"))
        if node.where is not None:
            parts += [Line(), Text("where "), self.operand(node.where, UNLESS)]
        return Group(Concat(parts[0], Align(Concat(*parts[1:]))))

    def chain(self, node: s.And | s.Or) -> Doc:
        """`a and b and c`: one line, or one operand per line with the operator first."""
        word = "and" if isinstance(node, s.And) else "or"
        operands: list[s.Expr] = []
        current: s.Expr = node
        while isinstance(current, type(node)):
            operands.append(current.right)
            current = current.left
        operands.append(current)
        operands.reverse()
        # Operands bind at least as 'not' does: an 'and' inside an 'or' keeps its
        # parentheses, though the grammar would not need them.
        parts: list[Doc] = [self.operand(operands[0], NOT)]
        for operand in operands[1:]:
            parts += [Line(), Text(f"{word} "), self.operand(operand, NOT)]
        return Group(Concat(*parts))

    def quantified(self, node: s.Quantified) -> Doc:
        if node.quantifier == "at_least":
            opening = f"at least {node.count} of ["
        else:
            opening = f"{node.quantifier} of ["
        items = [self.item(item) for item in node.items]
        if any(isinstance(item, s.SubCriterion) for item in node.items):
            body = Concat(Hard(), _join(items, Concat(Text(","), Hard())))
            return Concat(Text(opening), Anchor(Concat(Nest(INDENT, body), Hard(), Text("]"))))
        body = Concat(Line(""), _join(items, Concat(Text(","), Line())))
        return Group(Concat(Text(opening), Anchor(Concat(Nest(INDENT, body), Line(""), Text("]")))))

    def item(self, item: s.Expr | s.SubCriterion) -> Doc:
        if not isinstance(item, s.SubCriterion):
            return self.expr(item)
        head: list[Doc] = [Text(item.name.text)]
        if item.title is not None:
            head.append(Text(" " + quote(item.title)))
        if item.applies_when is not None:
            head += [Text(" applies when "), self.expr(item.applies_when)]
        if item.approximate is not None:
            head.append(Text(f" approximate {quote(item.approximate.reason)}"))
        doc = Group(
            Concat(*head, Text(":"), Nest(INDENT, Concat(Line(), self.expr(item.condition))))
        )
        span = item.span
        return self.unit(("sub", span), (span.line, span.column), doc)


# Where an expression is in the source: line, column, end line, end column.
Extent = tuple[int, int, int, int]


def _extent(span: s.Span) -> Extent:
    return (span.line, span.column, span.end_line, span.end_column)


def _mixed(node: s.Expr) -> bool:
    """An 'and'/'or' chain with an operand of the other kind in it."""
    if not isinstance(node, s.And | s.Or):
        return False
    other = s.Or if isinstance(node, s.And) else s.And
    return any(isinstance(inner, other) for inner in s.walk(node))


def _bracketed(protocol: s.Protocol, text: str) -> frozenset[Extent]:
    """The expressions the author wrote in parentheses: '(' just before, ')' just after."""
    starts = [0]
    for line in text.split("\n"):
        starts.append(starts[-1] + len(line) + 1)

    def offset(line: int, column: int) -> int:
        return starts[line - 1] + column - 1 if 0 < line < len(starts) else -1

    roots: list[object] = [d.expr for d in protocol.definitions]
    for criterion in protocol.criteria:
        roots += [criterion.applies_when, criterion.condition]
    found = set()
    for root in roots:
        for node in s.walk(root) if root is not None else ():
            span = getattr(node, "span", None)
            if span is None or isinstance(node, s.SubCriterion):
                continue
            before = offset(span.line, span.column) - 1
            after = offset(span.end_line, span.end_column)
            while before >= 0 and text[before] in " \t\r\n":
                before -= 1
            while 0 <= after < len(text) and text[after] in " \t\r\n#":
                after = text.find("\n", after) if text[after] == "#" else after + 1
            if (
                before >= 0
                and text[before] == "("
                and 0 <= after < len(text)
                and text[after] == ")"
            ):
                found.add(_extent(span))
    return frozenset(found)


def _texts(names: Iterable[s.Name]) -> tuple[str, ...]:
    return tuple(n.text for n in names)


# ---- the API ---------------------------------------------------------------------


def format_source(text: str, file: str = "<string>") -> str:
    """The canonical form of protocol source text, comments kept.

    Raises CritError when the text does not parse, or (a bug in the formatter)
    when the formatted text would not parse to the same syntax tree.
    """
    protocol = parse(text, file)
    comments, clauses = _scan(text)
    builder = _Builder(clauses, _bracketed(protocol, text), frozenset(c.line for c in comments))
    doc = builder.protocol(protocol)
    leading, trailing, after = _attach(builder.units, comments)
    printer = _Printer(WIDTH, leading)
    lines = printer.run(doc)
    for key, comment in trailing.items():
        lines[printer.marks[key]] += "  " + comment.text
    for position, comment in enumerate(after):
        if position == 0 or comment.blank_before:
            lines.append("")
        lines.append(comment.text)
    formatted = "\n".join(lines).rstrip("\n") + "\n"
    _verify(protocol, formatted, file)
    return formatted


def diff(text: str, formatted: str, path: str) -> str:
    """What formatting changes, as a unified diff (empty when nothing changes)."""
    lines = difflib.unified_diff(
        text.splitlines(keepends=True),
        formatted.splitlines(keepends=True),
        fromfile=path,
        tofile=f"{path} (formatted)",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def expression_text(expr: s.Expr) -> str:
    """An expression in canonical form, on one line when it fits."""
    return "\n".join(_Printer(WIDTH, {}).run(_Builder({}).expr(expr)))


def example_text(example: s.Example) -> str:
    """An example block in canonical form."""
    return "\n".join(_Printer(WIDTH, {}).run(_Builder({}).example(example))) + "\n"


def _verify(protocol: s.Protocol, formatted: str, file: str) -> None:
    try:
        again = parse(formatted, file)
    except CritError as error:
        raise _formatter_bug(protocol, "the formatted text does not parse") from error
    if without_spans(again) != without_spans(protocol):
        raise _formatter_bug(protocol, "the formatted text means something else")


def _formatter_bug(protocol: s.Protocol, problem: str) -> CritError:
    message = f"{problem}; the file is left as it was (a bug in critlang fmt)"
    return CritError([Diagnostic("CRIT090", "error", protocol.span, message)])


NO_SPAN = s.Span("", 0, 0, 0, 0)


def without_spans(node: Any) -> Any:
    """The same syntax tree with every span blanked, to compare trees by meaning."""
    if isinstance(node, s.Span):
        return NO_SPAN
    if isinstance(node, tuple):
        return tuple(without_spans(item) for item in node)
    if attrs.has(type(node)):
        changes = {
            field.name: without_spans(getattr(node, field.name))
            for field in attrs.fields(type(node))
        }
        return attrs.evolve(node, **changes)
    return node
