"""Text to syntax tree: the Lark grammar, one Transformer, and syntax errors in words."""

from __future__ import annotations

import datetime
import functools
import textwrap
from decimal import Decimal
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)
from lark.lexer import PatternStr
from lark.tree import Meta

from critlang import syntax as s
from critlang.diagnostics import CritError, Diagnostic

# What a terminal is called in an error message, for those not spelled literally.
TERMINAL_WORDS = {
    "NAME": "a name",
    "STRING": 'a quoted text ("...")',
    "UNIT": "a UCUM unit in single quotes, such as 'mg/dL'",
    "NUMBER": "a number",
    "COUNT": "a whole number",
    "DATE": "a date (YYYY-MM-DD)",
    "CRITERION_ID": "a criterion id such as I1 or E4",
    "CRITERION_KIND": "'inclusion' or 'exclusion'",
    "COMPARATOR": "a comparison (<, <=, >, >=, =, !=)",
    "ADD_OP": "'+' or '-'",
    "MUL_OP": "'*' or '/'",
    "EXCLUSIVE": "'exclusive'",
    "PERCENT": "'%'",
    "$END": "the end of the file",
}

# Common mistakes, recognised by where the parser stops (Lark's match_examples).
MISTAKES = {
    "a unit must be quoted, as in 20 'a' or 1.4 'mg/dL'": [
        'protocol p inclusion I1 "t" met when age > 20 a',
        "protocol p constant c = 40 U",
    ],
    "a criterion needs 'met when' before its condition": [
        'protocol p inclusion I1 "t" age > 1',
        'protocol p exclusion E1 "t" registered "x" age > 1',
    ],
    "a criterion needs an id such as I1 (inclusion) or E1 (exclusion) and a title": [
        'protocol p inclusion "t" met when a',
        'protocol p inclusion i1 "t" met when a',
    ],
    "an operator is missing its right-hand side": [
        'protocol p inclusion I1 "t" met when a and',
        'protocol p inclusion I1 "t" met when a or',
        'protocol p inclusion I1 "t" met when a >',
    ],
}


@functools.cache
def _lark() -> Lark:
    grammar = resources.files("critlang") / "grammar" / "critlang.lark"
    with resources.as_file(grammar) as path:
        return Lark.open(
            str(path), parser="lalr", cache=True, propagate_positions=True, maybe_placeholders=True
        )


def parse(text: str, file: str = "<string>") -> s.Protocol:
    """Parse critlang source into a syntax tree; raise CritError on a syntax error."""
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as error:
        raise CritError([syntax_diagnostic(error, text, file)], text) from None
    try:
        result: s.Protocol = AstBuilder(file).transform(tree)
    except VisitError as error:
        if isinstance(error.orig_exc, _Invalid):
            raise CritError([error.orig_exc.diagnostic], text) from None
        raise
    return result


class _Invalid(Exception):
    """A token the grammar accepts but whose text means nothing (2024-02-30)."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def syntax_diagnostic(error: UnexpectedInput, text: str, file: str) -> Diagnostic:
    """Translate a Lark error into a diagnostic that says what was expected, in words."""
    line = max(1, getattr(error, "line", 1) or 1)
    column = max(1, getattr(error, "column", 1) or 1)
    if isinstance(error, UnexpectedEOF) or (
        isinstance(error, UnexpectedToken) and error.token.type == "$END"
    ):
        line, column = _end_position(text)
    width = len(str(error.token)) if isinstance(error, UnexpectedToken) else 1
    span = s.Span(file, line, column, line, column + max(1, width))
    hint = error.match_examples(_lark().parse, MISTAKES, use_accepts=True)
    if isinstance(error, UnexpectedCharacters):
        position = error.pos_in_stream or 0
        found = repr(text[position]) if position < len(text) else "?"
        message = f"unexpected character {found}"
        expected = error.allowed or set()
    elif isinstance(error, UnexpectedToken):
        found = "the end of the file" if error.token.type == "$END" else repr(str(error.token))
        message = f"unexpected {found}"
        expected = error.accepts or error.expected
    else:
        message = "unexpected end of the file"
        expected = set(getattr(error, "expected", ()) or ())
    if expected:
        message += f"; expected {_words(expected)}"
    return Diagnostic("CRIT001", "error", span, message, hint)


def _end_position(text: str) -> tuple[int, int]:
    lines = text.rstrip().splitlines() or [""]
    return len(lines), len(lines[-1]) + 1


def _words(terminals: set[str]) -> str:
    names = sorted({_terminal_word(t) for t in terminals})
    if len(names) > 8:
        names = [*names[:8], "..."]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _terminal_word(name: str) -> str:
    if name in TERMINAL_WORDS:
        return TERMINAL_WORDS[name]
    try:
        pattern = _lark().get_terminal(name).pattern
    except KeyError:
        return name
    return f"'{pattern.value}'" if isinstance(pattern, PatternStr) else name


def _span(file: str, meta: Meta) -> s.Span:
    return s.Span(file, meta.line, meta.column, meta.end_line, meta.end_column)


def _token_span(file: str, token: Token) -> s.Span:
    return s.Span(
        file,
        token.line or 1,
        token.column or 1,
        token.end_line or 1,
        token.end_column or 1,
    )


def _string(token: Token) -> str:
    raw = str(token)
    if raw.startswith('"""'):
        return textwrap.dedent(raw[3:-3]).strip()
    return raw[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")


@v_args(inline=True, meta=True)
class AstBuilder(Transformer[Token, Any]):
    """Builds the attrs syntax tree from Lark's parse tree, one method per rule."""

    def __init__(self, file: str) -> None:
        super().__init__()
        self.file = file

    def _name(self, token: Token) -> s.Name:
        return s.Name(str(token), _token_span(self.file, token))

    # ---- protocol and header ----

    def start(self, meta: Meta, protocol: s.Protocol) -> s.Protocol:
        return protocol

    def protocol(self, meta: Meta, name: Token, *parts: Any) -> s.Protocol:
        header: dict[str, Any] = {}
        elements: list[s.DataElement] = []
        kinds: dict[type, list[Any]] = {
            s.Constant: [],
            s.Definition: [],
            s.Criterion: [],
            s.Example: [],
        }
        for part in parts:
            if isinstance(part, tuple) and part and isinstance(part[0], str):
                header[part[0]] = part[1]
            elif isinstance(part, list):
                elements.extend(part)
            else:
                kinds[type(part)].append(part)
        return s.Protocol(
            name=self._name(name),
            header=s.Header(**header),
            elements=tuple(elements),
            constants=tuple(kinds[s.Constant]),
            definitions=tuple(kinds[s.Definition]),
            criteria=tuple(kinds[s.Criterion]),
            examples=tuple(kinds[s.Example]),
            span=_span(self.file, meta),
        )

    def title(self, meta: Meta, value: Token) -> tuple[str, str]:
        return ("title", _string(value))

    def version(self, meta: Meta, value: Token) -> tuple[str, str]:
        return ("version", _string(value))

    def registry(self, meta: Meta, value: Token) -> tuple[str, str]:
        return ("registry", _string(value))

    def sponsor(self, meta: Meta, value: Token) -> tuple[str, str]:
        return ("sponsor", _string(value))

    def sites(self, meta: Meta, values: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
        return ("sites", values)

    def status(self, meta: Meta, value: Token) -> tuple[str, str]:
        return ("status", str(value))

    def summary(self, meta: Meta, value: Token) -> tuple[str, str]:
        return ("summary", _string(value))

    def string_list(self, meta: Meta, *values: Token) -> tuple[str, ...]:
        return tuple(_string(v) for v in values)

    # ---- data dictionary ----

    def data_section(self, meta: Meta, *elements: s.DataElement) -> list[s.DataElement]:
        return list(elements)

    def element(
        self, meta: Meta, name: Token, type_: s.DeclaredType, *options: tuple[str, Any]
    ) -> s.DataElement:
        found = dict(options)
        return s.DataElement(
            name=self._name(name),
            type=type_,
            label=found.get("label"),
            plausible_range=found.get("range"),
            molar_mass=found.get("molar_mass"),
            span=_span(self.file, meta),
        )

    def boolean_type(self, meta: Meta) -> s.BooleanType:
        return s.BooleanType(_span(self.file, meta))

    def number_type(self, meta: Meta) -> s.NumberType:
        return s.NumberType(_span(self.file, meta))

    def quantity_type(self, meta: Meta, unit: Token) -> s.QuantityType:
        return s.QuantityType(str(unit)[1:-1], _token_span(self.file, unit))

    def duration_type(self, meta: Meta, unit: Token) -> s.DurationType:
        return s.DurationType(str(unit)[1:-1], _token_span(self.file, unit))

    def date_type(self, meta: Meta) -> s.DateType:
        return s.DateType(_span(self.file, meta))

    def enum_type(self, meta: Meta, names: tuple[s.Name, ...]) -> s.EnumType:
        return s.EnumType(names, _span(self.file, meta))

    def set_type(self, meta: Meta, names: tuple[s.Name, ...]) -> s.SetType:
        return s.SetType(names, _span(self.file, meta))

    def attestation_type(self, meta: Meta, attesters: tuple[str, ...]) -> s.AttestationType:
        return s.AttestationType(attesters, _span(self.file, meta))

    def attester_list(self, meta: Meta, *values: Token) -> tuple[str, ...]:
        return tuple(_string(v) for v in values)

    def name_list(self, meta: Meta, *names: Token) -> tuple[s.Name, ...]:
        return tuple(self._name(n) for n in names)

    def label(self, meta: Meta, value: Token) -> tuple[str, str]:
        return ("label", _string(value))

    def plausible_range(
        self, meta: Meta, low: Decimal, high: Decimal
    ) -> tuple[str, tuple[Decimal, Decimal]]:
        return ("range", (low, high))

    def molar_mass(self, meta: Meta, mass: s.QuantityLit) -> tuple[str, s.QuantityLit]:
        return ("molar_mass", mass)

    # ---- constants, definitions, criteria ----

    def constant(
        self, meta: Meta, name: Token, value: s.Literal, label: tuple[str, str] | None = None
    ) -> s.Constant:
        return s.Constant(
            self._name(name), value, label[1] if label else None, _span(self.file, meta)
        )

    def definition(
        self, meta: Meta, name: Token, expr: s.Expr, label: tuple[str, str] | None = None
    ) -> s.Definition:
        return s.Definition(
            self._name(name), expr, label[1] if label else None, _span(self.file, meta)
        )

    def criterion(
        self, meta: Meta, kind: Token, id_: Token, title: Token, *rest: Any
    ) -> s.Criterion:
        *options, condition = rest
        notes = tuple(value for key, value in options if key == "note")
        found = dict(options)
        return s.Criterion(
            kind=str(kind),
            id=self._name(id_),
            title=_string(title),
            registered=found.get("registered"),
            plain=found.get("plain"),
            notes=notes,
            applies_when=found.get("applies_when"),
            condition=condition,
            span=_span(self.file, meta),
        )

    def registered(self, meta: Meta, value: Token) -> tuple[str, str]:
        return ("registered", _string(value))

    def plain(self, meta: Meta, value: Token) -> tuple[str, str]:
        return ("plain", _string(value))

    def note(self, meta: Meta, value: Token) -> tuple[str, str]:
        return ("note", _string(value))

    def applies_when(self, meta: Meta, expr: s.Expr) -> tuple[str, s.Expr]:
        return ("applies_when", expr)

    # ---- examples ----

    def example(self, meta: Meta, title: Token, *rest: Any) -> s.Example:
        *fields, expect = rest
        return s.Example(
            _string(title),
            tuple(f for f in fields if f is not None),
            self._name(expect),
            _span(self.file, meta),
        )

    def field(self, meta: Meta, name: Token, value: s.FieldValue) -> s.ExampleField:
        return s.ExampleField(self._name(name), value, _span(self.file, meta))

    def enum_value(self, meta: Meta, name: Token) -> s.Name:
        return self._name(name)

    def set_value(self, meta: Meta, *names: Token | None) -> tuple[s.Name, ...]:
        return tuple(self._name(n) for n in names if n is not None)

    # ---- expressions ----

    def unless(self, meta: Meta, rule: s.Expr, exception: s.Expr) -> s.Unless:
        return s.Unless(rule, exception, _span(self.file, meta))

    def or_(self, meta: Meta, left: s.Expr, right: s.Expr) -> s.Or:
        return s.Or(left, right, _span(self.file, meta))

    def and_(self, meta: Meta, left: s.Expr, right: s.Expr) -> s.And:
        return s.And(left, right, _span(self.file, meta))

    def not_(self, meta: Meta, operand: s.Expr) -> s.Not:
        return s.Not(operand, _span(self.file, meta))

    def compare(self, meta: Meta, left: s.Expr, op: Token, right: s.Expr) -> s.Compare:
        return s.Compare(str(op), left, right, _span(self.file, meta))

    def between(
        self, meta: Meta, subject: s.Expr, low: s.Expr, high: s.Expr, *exclusive: Token
    ) -> s.Between:
        return s.Between(subject, low, high, bool(exclusive), _span(self.file, meta))

    def member(self, meta: Meta, subject: s.Expr, names: tuple[s.Name, ...]) -> s.Member:
        return s.Member(subject, names, _span(self.file, meta))

    def includes_any(self, meta: Meta, subject: s.Expr, names: tuple[s.Name, ...]) -> s.Includes:
        return s.Includes(subject, "any", names, _span(self.file, meta))

    def includes_all(self, meta: Meta, subject: s.Expr, names: tuple[s.Name, ...]) -> s.Includes:
        return s.Includes(subject, "all", names, _span(self.file, meta))

    def arithmetic(self, meta: Meta, left: s.Expr, op: Token, right: s.Expr) -> s.Arithmetic:
        return s.Arithmetic(str(op), left, right, _span(self.file, meta))

    def reference(self, meta: Meta, name: Token) -> s.Ref:
        return s.Ref(str(name), _token_span(self.file, name))

    def true(self, meta: Meta) -> s.BoolLit:
        return s.BoolLit(True, _span(self.file, meta))

    def false(self, meta: Meta) -> s.BoolLit:
        return s.BoolLit(False, _span(self.file, meta))

    def decline(self, meta: Meta, baseline: s.Expr, current: s.Expr) -> s.RelativeChange:
        return s.RelativeChange("decline", baseline, current, _span(self.file, meta))

    def change(self, meta: Meta, baseline: s.Expr, current: s.Expr) -> s.RelativeChange:
        return s.RelativeChange("change", baseline, current, _span(self.file, meta))

    def any_of(self, meta: Meta, items: tuple[Any, ...]) -> s.Quantified:
        return s.Quantified("any", None, items, _span(self.file, meta))

    def all_of(self, meta: Meta, items: tuple[Any, ...]) -> s.Quantified:
        return s.Quantified("all", None, items, _span(self.file, meta))

    def at_least(self, meta: Meta, count: Token, items: tuple[Any, ...]) -> s.Quantified:
        return s.Quantified("at_least", int(count), items, _span(self.file, meta))

    def items(self, meta: Meta, *entries: Any) -> tuple[Any, ...]:
        return entries

    def sub_criterion(self, meta: Meta, name: Token, *rest: Any) -> s.SubCriterion:
        condition = rest[-1]
        title = next((_string(r) for r in rest[:-1] if isinstance(r, Token)), None)
        applies = next((r[1] for r in rest[:-1] if isinstance(r, tuple)), None)
        return s.SubCriterion(self._name(name), title, applies, condition, _span(self.file, meta))

    def applicability(self, meta: Meta, expr: s.Expr) -> tuple[str, s.Expr]:
        return ("applies_when", expr)

    # ---- literals ----

    def number(self, meta: Meta, value: Decimal) -> s.NumberLit:
        return s.NumberLit(value, _span(self.file, meta))

    def quantity(self, meta: Meta, value: Decimal, unit: Token) -> s.QuantityLit:
        code = "%" if unit.type == "PERCENT" else str(unit)[1:-1]
        return s.QuantityLit(value, code, _span(self.file, meta))

    def date(self, meta: Meta, token: Token) -> s.DateLit:
        span = _token_span(self.file, token)
        try:
            return s.DateLit(datetime.date.fromisoformat(str(token)), span)
        except ValueError:
            message = f"'{token}' is not a calendar date"
            raise _Invalid(
                Diagnostic("CRIT001", "error", span, message, "write YYYY-MM-DD")
            ) from None

    def signed_number(self, meta: Meta, token: Token) -> Decimal:
        return Decimal(str(token))

    def negative(self, meta: Meta, token: Token) -> Decimal:
        return -Decimal(str(token))
