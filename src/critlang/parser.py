"""Text to syntax tree: the Lark grammar, one Transformer, and syntax errors in words."""

from __future__ import annotations

import datetime
import functools
import re
import textwrap
from collections.abc import Iterable
from decimal import Decimal
from importlib import resources
from typing import Any

import attrs
from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)
from lark.lexer import PatternStr
from lark.tree import Meta

from critlang import syntax as s
from critlang.diagnostics import CritError, Diagnostic, sort_key

# What a terminal is called in an error message, for those not spelled literally.
TERMINAL_WORDS = {
    "NAME": ("a name",),
    "STRING": ('a quoted text ("...")',),
    "UNIT": ("a unit in single quotes ('mg/dL')",),
    "NUMBER": ("a number",),
    "COUNT": ("a whole number",),
    "DATE": ("a date (YYYY-MM-DD)",),
    "YEAR_MONTH": ("a year and month (YYYY-MM)",),
    "CRITERION_ID": ("a criterion id such as I1 or E4",),
    "CRITERION_KIND": ("'inclusion'", "'exclusion'"),
    "COMPARATOR": ("a comparison (<, <=, >, >=, =, !=)",),
    "ADD_OP": ("'+'", "'-'"),
    "MUL_OP": ("'*'", "'/'"),
    "EXCLUSIVE": ("'exclusive'",),
    "PERCENT": ("'%'",),
    "SCORE": ("'score ['",),
    "CALENDAR_UNIT": ("a calendar unit (years, months, weeks, days)",),
    "CALENDAR_UNITS": ("'years', 'months', 'weeks' or 'days'",),
    "$END": ("the end of the file",),
}

# Terminals a parser state often expects together, said in one phrase: listing
# every way an expression can start buries the part of the message that helps.
TERMINAL_GROUPS = (
    (
        frozenset(
            {"NAME", "NUMBER", "DATE", "MINUS", "LPAR", "NOT", "TRUE", "FALSE"}
            | {"ANY", "ALL", "AT", "DECLINE", "CHANGE", "SCORE", "CALENDAR_UNITS"}
            | {"ITS", "NO", "LATEST", "EARLIEST", "HIGHEST", "LOWEST", "TOTAL", "'number'"}
            | {"ONGOING"}
        ),
        "a condition or value (a name, a number, '(', 'not', 'any of', ...)",
    ),
    (
        frozenset(
            {"AND", "OR", "UNLESS", "COMPARATOR", "BETWEEN", "IN", "INCLUDES", "ADD_OP", "MUL_OP"}
            | {"WITHIN", "WHERE"}
        ),
        "an operator ('and', 'or', '<', '+', ...)",
    ),
    (
        frozenset({"DATA", "CONSTANT", "DEFINE", "CRITERION_KIND", "EXAMPLE", "CODES"}),
        "the next section ('data', 'define', 'inclusion', 'example', ...)",
    ),
)

# Common mistakes, recognised by the parser state and the kind of token where
# the parser stops on each example (see `_mistake_key`).
MISTAKES = {
    "a unit must be quoted, as in 20 'a' or 1.4 'mg/dL'": [
        'protocol p inclusion I1 "t" met when age > 20 a',
        "protocol p constant c = 40 U",
        "protocol p constant c = 40 mg",
    ],
    "a criterion needs 'met when' before its condition": [
        'protocol p inclusion I1 "t" age > 1',
        'protocol p exclusion E1 "t" registered "x" age > 1',
        'protocol p inclusion I1 "t" inclusion I2 "u" met when a',
        'protocol p inclusion I1 "t" note "x" inclusion I2 "u" met when a',
        'protocol p inclusion I1 "t" note "x" example "e" { } expect eligible',
        'protocol p inclusion I1 "t" note "x"',
    ],
    "a criterion needs an id such as I1 (inclusion) or E1 (exclusion) and a title": [
        'protocol p inclusion "t" met when a',
        'protocol p inclusion i1 "t" met when a',
    ],
    'a criterion needs a quoted title after its id, as in inclusion I1 "Adults"': [
        "protocol p inclusion I1 met when a",
        'protocol p inclusion I1 adults "t"',
        'protocol p inclusion I1 Adults "t"',
    ],
    "compare with a single '=' ('!=' means 'is not')": [
        'protocol p inclusion I1 "t" met when a == b',
    ],
    "write a percentage after its number, as in 10%": [
        'protocol p inclusion I1 "t" met when a > %',
    ],
    "join conditions with 'and' or 'or'; separate the items of a list with ','": [
        'protocol p inclusion I1 "t" met when any of [a: b c: d]',
        "protocol p inclusion I1 \"t\" met when any of [a: b > 1 'a' c: d]",
        'protocol p inclusion I1 "t" met when any of [a: b > 1 c: d]',
    ],
    "a list of values is written in ( ), as in sex in (female, male)": [
        'protocol p inclusion I1 "t" met when a in [b]',
        'protocol p inclusion I1 "t" met when a includes any of [b]',
    ],
    "a list of conditions is written in [ ], as in any of [a, b]": [
        'protocol p inclusion I1 "t" met when any of (a, b)',
        'protocol p inclusion I1 "t" met when at least 1 of (a, b)',
    ],
}

# Characters that are not critlang, with what the author probably meant.
CHARACTER_HINTS = {
    "&": "write 'and'",
    "|": "write 'or'",
    "!": "write 'not', or '!=' for 'is not equal to'",
    ";": "critlang needs no ';': a criterion ends where the next one starts",
    "\u2264": "write '<='",
    "\u2265": "write '>='",
    "\u2260": "write '!='",
    "\u00d7": "write '*' to multiply",
}

# Words that start a new top-level item. Where only an expression may follow,
# as after a dangling 'and', the lexer reads them as names, so the parser
# stops one token later, at the criterion id or the name after them.
ITEM_KEYWORDS = frozenset(
    {"data", "constant", "define", "inclusion", "exclusion", "example", "codes"}
)

# Tokens after which an expression must follow, and what it is called.
OPERANDS = {
    "AND": "its right-hand side",
    "OR": "its right-hand side",
    "UNLESS": "its right-hand side",
    "COMPARATOR": "its right-hand side",
    "ADD_OP": "its right-hand side",
    "MUL_OP": "its right-hand side",
    "BETWEEN": "its lower bound",
    "NOT": "the condition it negates",
    "WHEN": "its condition",
    "EQUAL": "its value",
    "FROM": "its value",
    "TO": "its value",
}

# Tokens that cannot be inside brackets: a bracket still open there was never closed.
SECTION_STARTS = frozenset(
    {"$END", "DATA", "CONSTANT", "DEFINE", "CRITERION_KIND", "EXAMPLE", "CODES"}
)

# Tokens that may end a condition's context: met there, a dangling operator
# before them has no right-hand side.
CLOSERS = frozenset({"$END", "RPAR", "RSQB", "RBRACE", "COMMA"})


@functools.cache
def _lark() -> Lark:
    grammar = resources.files("critlang") / "grammar" / "critlang.lark"
    with resources.as_file(grammar) as path:
        return Lark.open(
            str(path), parser="lalr", cache=True, propagate_positions=True, maybe_placeholders=True
        )


def parse(text: str, file: str = "<string>") -> s.Protocol:
    """Parse critlang source into a syntax tree; raise CritError with every syntax error."""
    protocol, diagnostics = parse_recovering(text, file)
    if diagnostics or protocol is None:
        raise CritError(diagnostics, text)
    return protocol


def parse_recovering(
    text: str, file: str = "<string>"
) -> tuple[s.Protocol | None, list[Diagnostic]]:
    """Parse, reporting every syntax error: the first in each item.

    On an error the item it is in (a declaration, a data element, a criterion, an
    example) is blanked out, keeping every line break so positions stay, and the
    text is parsed again. The protocol is what parsed once the broken items were
    skipped (None when the header itself is broken); an editor uses it for hovers
    and completion while the author is still typing.
    """
    diagnostics: list[Diagnostic] = []
    current = text
    skipped_from = 0
    for _ in range(MAX_SYNTAX_ERRORS):
        try:
            tree = _lark().parse(current)
            protocol: s.Protocol = AstBuilder(file).transform(tree)
            return protocol, sorted(diagnostics, key=sort_key)
        except UnexpectedInput as error:
            diagnostic = syntax_diagnostic(error, current, file)
            anchor = min(_offset(current, diagnostic.span), _error_offset(error, current))
            # The parser reads left to right: an error before the last skipped item
            # was made by skipping it (a data section left empty), not by the author.
            if anchor >= skipped_from:
                diagnostics.append(diagnostic)
        except VisitError as error:
            if not isinstance(error.orig_exc, _Invalid):
                raise
            diagnostic = error.orig_exc.diagnostic
            anchor = _offset(current, diagnostic.span)
            diagnostics.append(diagnostic)
        skipped = _skip_item(current, anchor)
        if skipped is None:
            break
        current, skipped_from = skipped
    return None, sorted(diagnostics, key=sort_key)


# After this many syntax errors the rest of a file is not worth reading.
MAX_SYNTAX_ERRORS = 100

# Where an item starts: a keyword at the start of a line, and in a data section a
# line that starts with `name:`. Recovery skips from one of these to the next.
_ITEM_START = re.compile(
    r"^[ \t]*(protocol|data|constant|define|inclusion|exclusion|example|codes)\b", re.MULTILINE
)
_ELEMENT_START = re.compile(
    r"^[ \t]*(?!(?:label|range|molar|complete)\b)([a-z_][a-z0-9_]*)\b", re.MULTILINE
)
_HEADER = re.compile(r"protocol\s+[a-z_][a-z0-9_]*")
_HEADER_FIELD = re.compile(
    r"^[ \t]*(title|version|registry|sponsor|sites|status|summary)\b", re.MULTILINE
)


def _offset(text: str, span: s.Span) -> int:
    """The offset in `text` of where a span starts."""
    lines = text.split("\n")
    before = sum(len(line) + 1 for line in lines[: span.line - 1])
    return min(len(text), before + span.column - 1)


def _error_offset(error: UnexpectedInput, text: str) -> int:
    """Where the broken item is: at the unexpected token, or, when that token
    starts a new item or ends the file, in the item before it."""
    if isinstance(error, UnexpectedToken):
        token = error.token
        position = token.start_pos if token.start_pos is not None else len(text)
        if token.type in SECTION_STARTS:
            return max(0, position - 1)
        return position
    return getattr(error, "pos_in_stream", None) or 0


def _skip_item(text: str, anchor: int) -> tuple[str, int] | None:
    """The text with the item around `anchor` blanked, and where the blank starts;
    None when nothing can be skipped."""
    items = [(m.start(1), m.group(1)) for m in _ITEM_START.finditer(text)]
    starts = [offset for offset, _ in items]
    for index, (offset, keyword) in enumerate(items):
        if keyword != "data":
            continue
        end = starts[index + 1] if index + 1 < len(starts) else len(text)
        elements = [m.start(1) for m in _ELEMENT_START.finditer(text, offset + 4, end)]
        # An element is skipped alone only while its section keeps another one.
        if len(elements) >= 2 and not offset <= anchor < elements[0]:
            starts.extend(elements)
    starts.sort()
    start = max((offset for offset in starts if offset <= anchor), default=0)
    end = min((offset for offset in starts if offset > anchor), default=len(text))
    if text.startswith("protocol", start):
        header = _HEADER.match(text, start)
        if header is None or anchor < header.end():
            return None  # without a protocol name there is nothing to go on with
        fields = [m.start(1) for m in _HEADER_FIELD.finditer(text, header.end(), anchor + 1)]
        start = fields[-1] if fields else max(anchor, header.end())
    if not text[start:end].strip():
        return None
    blank = "".join(c if c in "\r\n" else " " for c in text[start:end])
    return text[:start] + blank + text[end:], start


class _Invalid(Exception):
    """A token the grammar accepts but whose text means nothing (2024-02-30)."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def syntax_diagnostic(error: UnexpectedInput, text: str, file: str) -> Diagnostic:
    """Translate a Lark error into a diagnostic that says what was expected, in words."""
    special = _unterminated(error, text, file) or _unfinished(error, file)
    if special is not None:
        return special
    line = max(1, getattr(error, "line", 1) or 1)
    column = max(1, getattr(error, "column", 1) or 1)
    width = 1
    if isinstance(error, UnexpectedToken) and error.token.type == "$END":
        # Lark places the end token on the last real token; the caret goes just after it.
        line, column = error.token.end_line or 1, error.token.end_column or 1
    elif isinstance(error, UnexpectedToken):
        width = len(str(error.token).split("\n")[0])
    span = s.Span(file, line, column, line, column + max(1, width))
    if isinstance(error, UnexpectedCharacters):
        position = error.pos_in_stream or 0
        character = text[position] if position < len(text) else "?"
        message = f"unexpected character {character!r}"
        # The lexer's `allowed` merges the lookaheads of several parser states; the
        # parser knows exactly which tokens it can take here.
        parser = error.interactive_parser
        accepts: set[str] = parser.accepts() if parser else set()  # type: ignore[no-untyped-call]
        expected = accepts or error.allowed or set()
        hint = _mistakes().get(_mistake_key(error, text)) or _character_hint(character)
        if (
            position > 0
            and text[position - 1] == "'"
            and (character.isalnum() or character in "_]")
        ):
            hint = "a quote inside a unit is written \\', as in '[arb\\'U]/mL'"
    elif isinstance(error, UnexpectedToken):
        if error.token.type == "$END":
            message = "the file ends too soon"
        else:
            message = f"unexpected {str(error.token)!r}"
        expected = error.accepts or error.expected
        hint = (
            _word_hint(error, text)
            or _calendar_hint(error)
            or _empty_list_hint(error, text)
            or _missing_comma_hint(error)
            or _element_colon_hint(error, text)
            or _mistakes().get(_mistake_key(error, text))
            or _unclosed(error)
        )
    else:
        message = "the file ends too soon"
        expected = set(getattr(error, "expected", ()) or ())
        hint = None
    if expected:
        message += f"; expected {_words(expected)}"
    return Diagnostic("CRIT001", "error", span, message, hint)


def _unterminated(error: UnexpectedInput, text: str, file: str) -> Diagnostic | None:
    """A quote that no token can start is a text or unit whose closing quote is missing."""
    if not isinstance(error, UnexpectedCharacters):
        return None
    position = error.pos_in_stream or 0
    quote = text[position : position + 1]
    if quote not in ('"', "'"):
        return None
    rest_of_line = text[position:].split("\n", 1)[0].rstrip()
    span = s.Span(file, error.line, error.column, error.line, error.column + len(rest_of_line))
    if quote == '"':
        message = "this text has no closing '\"'"
        hint = 'a text in "..." ends on the line where it starts; use """...""" for longer text'
    else:
        message = 'this unit has no closing "\'"'
        hint = "a unit is written in single quotes on one line, as in 'mg/dL'"
    return Diagnostic("CRIT001", "error", span, message, hint)


def _unfinished(error: UnexpectedInput, file: str) -> Diagnostic | None:
    """An operator with nothing after it: point at the operator, not at what follows."""
    if not isinstance(error, UnexpectedToken) or error.state is None:
        return None
    stack = error.state.value_stack
    follower: Token | None = None
    if error.token.type in CLOSERS and "NAME" in (error.accepts or error.expected):
        at = len(stack) - 1
    elif len(stack) >= 2 and _is_token(stack[-1], "NAME") and stack[-1] in ITEM_KEYWORDS:
        at, follower = len(stack) - 2, stack[-1]
    else:
        return None
    operator = stack[at] if at >= 0 else None
    if not isinstance(operator, Token) or operator.type not in OPERANDS:
        return None
    first = operator
    if operator.type == "WHEN" and at >= 1 and isinstance(stack[at - 1], Token):
        first = stack[at - 1]  # 'met when' or 'applies when'
    words = str(operator) if first is operator else f"{first} {operator}"
    span = s.Span(
        file, first.line or 1, first.column or 1, operator.end_line or 1, operator.end_column or 1
    )
    if follower is not None:
        hint = f"'{follower}' on line {follower.line} starts something new; finish this first"
    elif error.token.type == "$END":
        hint = "the file ends before it"
    else:
        hint = f"'{error.token}' comes right after it"
    return Diagnostic(
        "CRIT001", "error", span, f"'{words}' is missing {OPERANDS[operator.type]}", hint
    )


# Words an author may write where an operator belongs, with what critlang says instead.
# `{subject}` is the value before the word, `{rest}` the rest of its line.
OPERATOR_WORDS = {
    "x": "to multiply, write '*', as in {subject} * {rest}",
    "times": "to multiply, write '*', as in {subject} * {rest}",
    "not": "'not' goes before the condition it negates, as in not ({subject} {rest})",
    "is": "compare with '=' or '!=', or test a list with 'in (...)', as in {subject} = {rest}",
    "equals": "compare with '=', as in {subject} = {rest}",
    "contains": "test a 'set of' element with 'includes any of (...)' or 'includes all of (...)'",
    "has": "test a 'set of' element with 'includes any of (...)' or 'includes all of (...)'",
    "before": "dates compare with '<' for before, as in {subject} < {rest}",
    "after": "dates compare with '>' for after, as in {subject} > {rest}",
    **dict.fromkeys(
        ("greater", "more", "above", "over", "exceeds"),
        "compare with '>' or '>=', as in {subject} > ...",
    ),
    **dict.fromkeys(
        ("less", "fewer", "below", "under"), "compare with '<' or '<=', as in {subject} < ..."
    ),
}


def _word_hint(error: UnexpectedToken, text: str) -> str | None:
    """An English word where an operator belongs: say which operator means it."""
    word = str(error.token)
    # A word the grammar knows elsewhere (`within`) is met where the parser has
    # already reduced past `and`: `or` is then the operator it could take.
    if word not in OPERATOR_WORDS or not {"MUL_OP", "AND", "OR"} & set(error.accepts or ()):
        return None
    if word in ("x", "times") and "MUL_OP" not in (error.accepts or ()):
        return None
    stack = error.state.value_stack if error.state is not None else []
    subject = _source_of(stack[-1], text) if stack else None
    end = text.find("\n", error.token.end_pos or 0)
    rest = text[error.token.end_pos : end if end >= 0 else len(text)].split("#")[0].strip()
    return OPERATOR_WORDS[word].format(subject=subject or "...", rest=rest or "...")


def _calendar_hint(error: UnexpectedToken) -> str | None:
    """A UCUM unit of time where a window needs calendar units (`within 6 'mo'`)."""
    if error.token.type != "UNIT" or "CALENDAR_UNIT" not in (error.accepts or ()):
        return None
    word = {"'a'": "years", "'mo'": "months", "'wk'": "weeks", "'d'": "days"}.get(
        str(error.token), "months"
    )
    return (
        f"a window is measured in calendar units: write {word} "
        "(years, months, weeks or days keep the day of the month; UCUM's 'mo' is 30.4375 days)"
    )


def _empty_list_hint(error: UnexpectedToken, text: str) -> str | None:
    """`()` where a value belongs: a set is tested with 'includes', never compared to ()."""
    stack = error.state.value_stack if error.state is not None else []
    if error.token.type != "RPAR" or len(stack) < 2 or not _is_token(stack[-1], "LPAR"):
        return None
    if _is_token(stack[-2], "COMPARATOR") and len(stack) >= 3:
        subject = _source_of(stack[-3], text) or "..."
        return (
            "an empty list is not a value; to say that a 'set of' element has none of "
            f"some values, write not ({subject} includes any of (a, b))"
        )
    if _is_token(stack[-2], "IN") or _is_token(stack[-2], "OF"):
        return "list at least one value"
    return "'()' holds nothing; put a condition in the brackets or remove them"


def _missing_comma_hint(error: UnexpectedToken) -> str | None:
    """A name where a ',' could go, inside an example's braces or a list's brackets."""
    if error.token.type != "NAME" or "COMMA" not in (error.accepts or ()):
        return None
    stack = error.state.value_stack if error.state is not None else []
    for value in reversed(stack):
        if _is_token(value, "LBRACE"):
            return "separate the fields of an example with ','"
        if _is_token(value, "LSQB"):
            return "separate the items of a list with ','; join conditions with 'and' or 'or'"
    return None


def _element_colon_hint(error: UnexpectedToken, text: str) -> str | None:
    """A data element whose name and type are not separated by ':'."""
    stack = error.state.value_stack if error.state is not None else []
    if set(error.accepts or ()) != {"COLON"} or not stack or not _is_token(stack[-1], "NAME"):
        return None
    return f"a data element is written name: type, as in {stack[-1]}: {error.token} ..."


def _source_of(value: object, text: str) -> str | None:
    """The source text of a token or parse tree on the parser's stack, on one line."""
    if isinstance(value, Token):
        start, end = value.start_pos, value.end_pos
    elif isinstance(value, Tree) and not value.meta.empty:
        start, end = value.meta.start_pos, value.meta.end_pos
    else:
        return None
    if start is None or end is None:
        return None
    return " ".join(text[start:end].split())


def _unclosed(error: UnexpectedToken) -> str | None:
    """Name the bracket still open where a new section or the end of the file begins."""
    if error.token.type not in SECTION_STARTS:
        return None  # a bracket that may yet be closed further on
    closers = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}
    stack = error.state.value_stack if error.state is not None else []
    for value in reversed(stack):
        # Brackets that were closed are inside reduced trees; a bare one is still open.
        if isinstance(value, Token) and value.type in closers:
            if closers[value.type] not in (error.accepts or error.expected):
                return None
            return f"the '{value}' on line {value.line} is not closed"
    return None


def _is_token(value: object, kind: str) -> bool:
    return isinstance(value, Token) and value.type == kind


@functools.cache
def _mistakes() -> dict[tuple[object, str], str]:
    """Where the parser stops on each example in MISTAKES, mapped to its hint."""
    found: dict[tuple[object, str], str] = {}
    for hint, examples in MISTAKES.items():
        for example in examples:
            try:
                _lark().parse(example)
            except UnexpectedInput as error:
                found.setdefault(_mistake_key(error, example), hint)
    return found


def _mistake_key(error: UnexpectedInput, text: str) -> tuple[object, str]:
    """The parser state and what was found there. Unlike Lark's match_examples,
    the depth of the stack is ignored, so an example matches anywhere in a file."""
    state = error.state.position if error.state is not None else None
    if isinstance(error, UnexpectedToken):
        return state, error.token.type
    position = getattr(error, "pos_in_stream", None) or 0
    character = text[position : position + 1]
    return state, "letter" if character.isalpha() else character


def _character_hint(character: str) -> str | None:
    if character in CHARACTER_HINTS:
        return CHARACTER_HINTS[character]
    if character.isalpha() and character.isupper():
        return "names are written in lower case; only criterion ids (I1, E2) use capitals"
    return None


def _words(terminals: set[str]) -> str:
    # Lark names the keyword "number" anonymously (NUMBER is the numeral): by its text here.
    remaining = {"'number'" if _terminal_words(t) == ("'number'",) else t for t in terminals}
    names: set[str] = set()
    for group, word in TERMINAL_GROUPS:
        if len(group & remaining) >= 3:
            names.add(word)
            remaining -= group
    for terminal in remaining:
        names.update(_terminal_words(terminal))
    ordered = sorted(names)
    if len(ordered) > 10:
        ordered = [*ordered[:10], "..."]
    return ordered[0] if len(ordered) == 1 else ", ".join(ordered[:-1]) + " or " + ordered[-1]


def _terminal_words(name: str) -> tuple[str, ...]:
    if name in TERMINAL_WORDS:
        return TERMINAL_WORDS[name]
    try:
        pattern = _lark().get_terminal(name).pattern
    except KeyError:
        return (name,)
    return (f"'{pattern.value}'",) if isinstance(pattern, PatternStr) else (name,)


@attrs.frozen
class _Option:
    """A keyword and its value inside a header, data element or criterion."""

    key: str
    value: Any
    span: s.Span


def _unit(token: Token) -> str:
    """The UCUM code in a UNIT token: quotes off, \\' and \\\\ decoded ('[arb\\'U]')."""
    return re.sub(r"\\(.)", r"\1", str(token)[1:-1])


def _unique(options: Iterable[_Option], repeatable: str = "") -> dict[str, Any]:
    """The options by keyword. One given twice is an error: the first would be lost."""
    found: dict[str, _Option] = {}
    for option in options:
        first = found.get(option.key)
        if first is not None and option.key != repeatable:
            message = f"'{option.key}' is given twice"
            hint = f"the first is at line {first.span.line}; keep one"
            start = option.span  # the caret goes under the keyword, not the whole value
            keyword = attrs.evolve(
                start, end_line=start.line, end_column=start.column + len(option.key.split()[0])
            )
            raise _Invalid(Diagnostic("CRIT020", "error", keyword, message, hint))
        found[option.key] = option
    return {key: option.value for key, option in found.items()}


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


# `its WORD [limit]` -> the entry field it reads.
ENTRY_FIELDS = {
    ("value", False): "value",
    ("date", False): "date",
    ("code", False): "code",
    ("dose", False): "dose",
    ("start", False): "start",
    ("end", False): "end",
    ("upper", True): "high",
    ("lower", True): "low",
}
ENTRY_FIELD_WORDS = ("value", "date", "code", "dose", "start", "end", "upper limit", "lower limit")
_Selection = tuple[s.EntryWindow | None, s.Expr | None]  # a selector's window and where


def _calendar_unit(token: Token) -> str:
    """The vocab.CalendarUnit value of a calendar word: `months` -> `month`."""
    return str(token).removesuffix("s")


ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)


def _string(token: Token, file: str) -> str:
    raw = str(token)
    if raw.startswith('"""'):
        return textwrap.dedent(raw[3:-3]).strip()

    def unescape(match: re.Match[str]) -> str:
        code = match.group(1)
        if code in ESCAPES:
            return ESCAPES[code]
        if len(code) == 5:
            return chr(int(code[1:], 16))
        message = f"this text has an unknown escape '\\{code}'"
        hint = 'write a backslash as \\\\; escapes are \\" \\\\ \\n \\t \\uXXXX'
        raise _Invalid(Diagnostic("CRIT001", "error", _token_span(file, token), message, hint))

    return _ESCAPE.sub(unescape, raw[1:-1])


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
        header: list[_Option] = []
        elements: list[s.DataElement] = []
        kinds: dict[type, list[Any]] = {
            s.Constant: [],
            s.Definition: [],
            s.Criterion: [],
            s.Example: [],
            s.CodeList: [],
        }
        for part in parts:
            if isinstance(part, _Option):
                header.append(part)
            elif isinstance(part, list):
                elements.extend(part)
            else:
                kinds[type(part)].append(part)
        return s.Protocol(
            name=self._name(name),
            header=s.Header(**_unique(header)),
            elements=tuple(elements),
            constants=tuple(kinds[s.Constant]),
            definitions=tuple(kinds[s.Definition]),
            criteria=tuple(kinds[s.Criterion]),
            examples=tuple(kinds[s.Example]),
            span=_span(self.file, meta),
            code_lists=tuple(kinds[s.CodeList]),
        )

    def title(self, meta: Meta, value: Token) -> _Option:
        return _Option("title", _string(value, self.file), _span(self.file, meta))

    def version(self, meta: Meta, value: Token) -> _Option:
        return _Option("version", _string(value, self.file), _span(self.file, meta))

    def registry(self, meta: Meta, value: Token) -> _Option:
        return _Option("registry", _string(value, self.file), _span(self.file, meta))

    def sponsor(self, meta: Meta, value: Token) -> _Option:
        return _Option("sponsor", _string(value, self.file), _span(self.file, meta))

    def sites(self, meta: Meta, values: tuple[str, ...]) -> _Option:
        return _Option("sites", values, _span(self.file, meta))

    def status(self, meta: Meta, value: Token) -> _Option:
        return _Option("status", str(value), _span(self.file, meta))

    def summary(self, meta: Meta, value: Token) -> _Option:
        return _Option("summary", _string(value, self.file), _span(self.file, meta))

    def as_of(self, meta: Meta, name: Token) -> _Option:
        return _Option("as_of", self._name(name), _span(self.file, meta))

    def string_list(self, meta: Meta, *values: Token) -> tuple[str, ...]:
        return tuple(_string(v, self.file) for v in values)

    # ---- data dictionary ----

    def data_section(self, meta: Meta, *elements: s.DataElement) -> list[s.DataElement]:
        return list(elements)

    def element(
        self, meta: Meta, name: Token, type_: s.DeclaredType, *options: _Option
    ) -> s.DataElement:
        conversions = tuple(o.value for o in options if o.key == "convert")
        found = _unique(o for o in options if o.key != "convert")
        complete = bool(found.get("complete"))
        return s.DataElement(
            name=self._name(name),
            type=type_,
            label=found.get("label"),
            plausible_range=found.get("range"),
            molar_mass=found.get("molar mass"),
            span=_span(self.file, meta),
            accepts=found.get("accepts", ()),
            conversions=conversions,
            complete=complete,
        )

    def boolean_type(self, meta: Meta) -> s.BooleanType:
        return s.BooleanType(_span(self.file, meta))

    def number_type(self, meta: Meta) -> s.NumberType:
        return s.NumberType(_span(self.file, meta))

    def quantity_type(self, meta: Meta, unit: Token) -> s.QuantityType:
        return s.QuantityType(_unit(unit), _token_span(self.file, unit))

    def duration_type(self, meta: Meta, unit: Token) -> s.DurationType:
        return s.DurationType(_unit(unit), _token_span(self.file, unit))

    def date_type(self, meta: Meta) -> s.DateType:
        return s.DateType(_span(self.file, meta))

    def enum_type(self, meta: Meta, names: tuple[s.Name, ...]) -> s.EnumType:
        return s.EnumType(names, _span(self.file, meta))

    def set_type(self, meta: Meta, names: tuple[s.Name, ...]) -> s.SetType:
        return s.SetType(names, _span(self.file, meta))

    def attestation_type(self, meta: Meta, attesters: tuple[str, ...]) -> s.AttestationType:
        return s.AttestationType(attesters, _span(self.file, meta))

    def integer_type(self, meta: Meta) -> s.IntegerType:
        return s.IntegerType(_span(self.file, meta))

    def ordinal_type(self, meta: Meta, names: tuple[s.Name, ...]) -> s.OrdinalType:
        return s.OrdinalType(names, _span(self.file, meta))

    def code_type(self, meta: Meta) -> s.CodeType:
        return s.CodeType(_span(self.file, meta))

    def measurement_history_type(self, meta: Meta, unit: Token) -> s.HistoryType:
        return s.HistoryType("measurement", _unit(unit), _span(self.file, meta))

    def code_history_type(self, meta: Meta) -> s.HistoryType:
        return s.HistoryType("code", None, _span(self.file, meta))

    def medication_history_type(self, meta: Meta, unit: Token | None) -> s.HistoryType:
        return s.HistoryType(
            "medication", None if unit is None else _unit(unit), _span(self.file, meta)
        )

    def complete(self, meta: Meta) -> _Option:
        return _Option("complete", True, _span(self.file, meta))

    def code_list(self, meta: Meta, name: Token, *rest: Any) -> s.CodeList:
        label: str | None = None
        if isinstance(rest[0], Token) and rest[0].type == "STRING":
            label, rest = _string(rest[0], self.file), rest[1:]
        system, listed, _, excluded = rest
        return s.CodeList(
            self._name(name),
            label,
            self._name(system),
            listed,
            _span(self.file, meta),
            excluded or (),
        )

    def code_entries(self, meta: Meta, *entries: s.CodeText) -> tuple[s.CodeText, ...]:
        return entries

    def code_entry(self, meta: Meta, code: Token) -> s.CodeText:
        return s.CodeText(_string(code, self.file), _token_span(self.file, code))

    def code_descendants(self, meta: Meta, code: Token) -> s.CodeText:
        return s.CodeText(_string(code, self.file), _token_span(self.file, code), descendants=True)

    def attester_list(self, meta: Meta, *values: Token) -> tuple[str, ...]:
        return tuple(_string(v, self.file) for v in values)

    def name_list(self, meta: Meta, *names: Token) -> tuple[s.Name, ...]:
        return tuple(self._name(n) for n in names)

    def label(self, meta: Meta, value: Token) -> _Option:
        return _Option("label", _string(value, self.file), _span(self.file, meta))

    def plausible_range(self, meta: Meta, low: Decimal, high: Decimal) -> _Option:
        return _Option("range", (low, high), _span(self.file, meta))

    def molar_mass(self, meta: Meta, mass: s.QuantityLit) -> _Option:
        return _Option("molar mass", mass, _span(self.file, meta))

    def accepts(self, meta: Meta, *codes: Token) -> _Option:
        found = tuple(s.UnitRef(_unit(code), _token_span(self.file, code)) for code in codes)
        return _Option("accepts", found, _span(self.file, meta))

    def conversion(
        self,
        meta: Meta,
        unit: Token,
        scale: Decimal,
        times: Token,
        sign: Token | None = None,
        offset: Token | None = None,
    ) -> _Option:
        if str(times) != "*":
            message = "a conversion multiplies the value: write 0.09148 * value + 2.152"
            span = _token_span(self.file, times)
            raise _Invalid(Diagnostic("CRIT001", "error", span, message))
        shift = Decimal(0) if offset is None else Decimal(str(offset))
        if sign is not None and str(sign) == "-":
            shift = -shift
        span = _span(self.file, meta)
        unit_ref = s.UnitRef(_unit(unit), _token_span(self.file, unit))
        return _Option("convert", s.UnitConversion(unit_ref, scale, shift, span), span)

    # ---- constants, definitions, criteria ----

    def constant(
        self, meta: Meta, name: Token, value: s.Literal, label: _Option | None = None
    ) -> s.Constant:
        return s.Constant(
            self._name(name), value, label.value if label else None, _span(self.file, meta)
        )

    def definition(
        self, meta: Meta, name: Token, expr: s.Expr, label: _Option | None = None
    ) -> s.Definition:
        return s.Definition(
            self._name(name), expr, label.value if label else None, _span(self.file, meta)
        )

    def criterion(
        self, meta: Meta, kind: Token, id_: Token, title: Token, *rest: Any
    ) -> s.Criterion:
        *options, condition = rest
        notes = tuple(option.value for option in options if option.key == "note")
        found = _unique(options, repeatable="note")
        return s.Criterion(
            kind=str(kind),
            id=self._name(id_),
            title=_string(title, self.file),
            registered=found.get("registered"),
            plain=found.get("plain"),
            notes=notes,
            applies_when=found.get("applies when"),
            condition=condition,
            span=_span(self.file, meta),
            approximate=found.get("approximate"),
        )

    def registered(self, meta: Meta, value: Token) -> _Option:
        return _Option("registered", _string(value, self.file), _span(self.file, meta))

    def plain(self, meta: Meta, value: Token) -> _Option:
        return _Option("plain", _string(value, self.file), _span(self.file, meta))

    def note(self, meta: Meta, value: Token) -> _Option:
        return _Option("note", _string(value, self.file), _span(self.file, meta))

    def applies_when(self, meta: Meta, expr: s.Expr) -> _Option:
        return _Option("applies when", expr, _span(self.file, meta))

    # ---- examples ----

    def example(self, meta: Meta, title: Token, *rest: Any) -> s.Example:
        *fields, expect = rest
        return s.Example(
            _string(title, self.file),
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

    def code_value(self, meta: Meta, system: Token, code: Token) -> s.CodeLit:
        return s.CodeLit(self._name(system), _string(code, self.file), _span(self.file, meta))

    def partial_date(self, meta: Meta, token: Token) -> s.PartialDateLit:
        return s.PartialDateLit(str(token), _token_span(self.file, token))

    def history_value(self, meta: Meta, *entries: s.EntryLit | None) -> s.HistoryLit:
        return s.HistoryLit(tuple(e for e in entries if e is not None), _span(self.file, meta))

    def history_entry(self, meta: Meta, *items: s.EntryItem | None) -> s.EntryLit:
        return s.EntryLit(tuple(i for i in items if i is not None), _span(self.file, meta))

    def entry_item(self, meta: Meta, name: Token, value: s.EntryValue) -> s.EntryItem:
        return s.EntryItem(self._name(name), value, _span(self.file, meta))

    def text_value(self, meta: Meta, text: Token) -> s.TextLit:
        return s.TextLit(_string(text, self.file), _span(self.file, meta))

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

    def ongoing(self, meta: Meta) -> s.Ref:
        # A condition of its own, not a value: `where ongoing within 2 weeks` keeps the
        # window for the selector (a value there would take it as a date's window).
        return s.Ref("ongoing", _span(self.file, meta))

    def in_codes(self, meta: Meta, subject: s.Expr, name: Token) -> s.InCodes:
        return s.InCodes(subject, self._name(name), _span(self.file, meta))

    def entry_field(self, meta: Meta, name: Token, limit: Token | None) -> s.EntryField:
        field = ENTRY_FIELDS.get((str(name), limit is not None))
        span = _span(self.file, meta)
        if field is None:
            message = f"'its {name}{' limit' if limit else ''}' is not a field of an entry"
            hint = "the fields are: " + ", ".join(f"its {words}" for words in ENTRY_FIELD_WORDS)
            raise _Invalid(Diagnostic("CRIT001", "error", span, message, hint))
        return s.EntryField(field, span)

    def any_selector(self, meta: Meta, name: Token, selection: _Selection) -> s.Selector:
        return self._selector(meta, "any", name, None, selection)

    def no_selector(self, meta: Meta, name: Token, selection: _Selection) -> s.Selector:
        return self._selector(meta, "no", name, None, selection)

    def count_selector(self, meta: Meta, name: Token, selection: _Selection) -> s.Selector:
        return self._selector(meta, "count", name, None, selection)

    def value_selector(
        self, meta: Meta, word: str, name: Token, selection: _Selection
    ) -> s.Selector:
        return self._selector(meta, word, name, None, selection)

    def value_selector_of(
        self, meta: Meta, word: str, of: s.Expr, name: Token, selection: _Selection
    ) -> s.Selector:
        return self._selector(meta, word, name, of, selection)

    def selector_word(self, meta: Meta, token: Token) -> str:
        return str(token)

    def _selector(
        self, meta: Meta, op: str, name: Token, of: s.Expr | None, selection: _Selection
    ) -> s.Selector:
        history = s.Ref(str(name), _token_span(self.file, name))
        window, where = selection
        return s.Selector(op, history, of, where, window, _span(self.file, meta))

    def selection(
        self, meta: Meta, first: s.EntryWindow | None, where: s.Expr | None
    ) -> _Selection:
        return first, where

    def selection_after(self, meta: Meta, where: s.Expr, last: s.EntryWindow) -> _Selection:
        return last, where

    def entry_window(
        self,
        meta: Meta,
        duration: s.CalendarDuration,
        anchor: tuple[str, s.Expr | None] | None,
    ) -> s.EntryWindow:
        direction, reference = anchor if anchor is not None else ("before", None)
        return s.EntryWindow(duration, direction, reference, _span(self.file, meta))

    def entry_during(
        self,
        meta: Meta,
        _during: Token,
        duration: s.CalendarDuration,
        anchor: tuple[str, s.Expr | None] | None,
    ) -> s.EntryWindow:
        direction, reference = anchor if anchor is not None else ("before", None)
        return s.EntryWindow(duration, direction, reference, _span(self.file, meta), overlap=True)

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
        title = next((_string(r, self.file) for r in rest[:-1] if isinstance(r, Token)), None)
        options = {r.key: r.value for r in rest[:-1] if isinstance(r, _Option)}
        return s.SubCriterion(
            self._name(name),
            title,
            options.get("applies when"),
            condition,
            _span(self.file, meta),
            approximate=options.get("approximate"),
        )

    def approximation(self, meta: Meta, reason: Token) -> _Option:
        span = _span(self.file, meta)
        return _Option("approximate", s.Approximation(_string(reason, self.file), span), span)

    # ---- scores ----

    def score(self, meta: Meta, keyword: Token, entries: tuple[Any, ...]) -> s.Score:
        return s.Score(entries, _span(self.file, meta))

    def score_items(self, meta: Meta, *entries: Any) -> tuple[Any, ...]:
        return entries

    def score_group(self, meta: Meta, *items: s.ScoreItem) -> s.ScoreGroup:
        return s.ScoreGroup(items, _span(self.file, meta))

    def score_item(self, meta: Meta, *rest: Any) -> s.ScoreItem:
        *head, points, condition = rest
        name = next((self._name(r) for r in head if r.type == "NAME"), None)
        title = next((_string(r, self.file) for r in head if r.type == "STRING"), None)
        return s.ScoreItem(name, title, Decimal(str(points)), condition, _span(self.file, meta))

    def applicability(self, meta: Meta, expr: s.Expr) -> _Option:
        return _Option("applies when", expr, _span(self.file, meta))

    # ---- dates and calendar durations ----

    def duration(self, meta: Meta, amount: Decimal, unit: Token) -> s.CalendarDuration:
        span = _span(self.file, meta)
        if amount != amount.to_integral_value():
            message = f"a calendar duration is a whole number of {_calendar_unit(unit)}s"
            hint = "write 6 months or 26 weeks; for a fraction of a unit use a UCUM duration"
            raise _Invalid(Diagnostic("CRIT001", "error", span, message, hint))
        return s.CalendarDuration(int(amount), _calendar_unit(unit), span)

    def date_diff(self, meta: Meta, unit: Token, start: s.Expr, end: s.Expr) -> s.DateDifference:
        return s.DateDifference(_calendar_unit(unit), start, end, _span(self.file, meta))

    def date_since(self, meta: Meta, unit: Token, start: s.Expr) -> s.DateDifference:
        return s.DateDifference(_calendar_unit(unit), start, None, _span(self.file, meta))

    def window(
        self,
        meta: Meta,
        subject: s.Expr,
        duration: s.CalendarDuration,
        anchor: tuple[str, s.Expr | None] | None,
    ) -> s.Window:
        direction, reference = anchor if anchor is not None else ("before", None)
        return s.Window(subject, duration, direction, reference, _span(self.file, meta))

    def window_before(self, meta: Meta, anchor: s.Expr | None = None) -> tuple[str, s.Expr | None]:
        return "before", anchor

    def window_after(self, meta: Meta, anchor: s.Expr | None = None) -> tuple[str, s.Expr | None]:
        return "after", anchor

    # ---- literals ----

    def number(self, meta: Meta, value: Decimal) -> s.NumberLit:
        return s.NumberLit(value, _span(self.file, meta))

    def quantity(self, meta: Meta, value: Decimal, unit: Token) -> s.QuantityLit:
        code = "%" if unit.type == "PERCENT" else _unit(unit)
        return s.QuantityLit(value, code, _span(self.file, meta))

    def date(self, meta: Meta, token: Token) -> s.DateLit:
        span = _token_span(self.file, token)
        try:
            return s.DateLit(datetime.date.fromisoformat(str(token)), span)
        except ValueError:
            message = f"'{token}' is not a calendar date"
            hint = "write a day that exists, as YYYY-MM-DD"
            raise _Invalid(Diagnostic("CRIT001", "error", span, message, hint)) from None

    def signed_number(self, meta: Meta, token: Token) -> Decimal:
        return Decimal(str(token))

    def negative(self, meta: Meta, token: Token) -> Decimal:
        return -Decimal(str(token))
