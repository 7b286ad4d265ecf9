"""The language server: critlang in an editor, over the Language Server Protocol on stdio.

Every feature reads one `Analysis` of the document, made when it is opened or
changed: the diagnostics of `check.check_source` (the same as `critlang check`),
and, for navigation, the syntax tree that error recovery could still build
(`parser.parse_recovering`) with the checker's types, so hovers and completion
keep working while the author is typing a broken line. English readings come
from `render`, layout from `fmt`: the editor shows what the documents show.

Positions: Lark counts columns in characters from 1, the protocol in UTF-16
code units from 0; the two agree on every character outside the astral planes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib import metadata
from typing import Any
from urllib.parse import unquote, urlparse

import attrs
from lsprotocol import types as t
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer

from critlang import syntax as s
from critlang import units
from critlang.check import UCUM_SPELLINGS, Checked, check, check_source, conversion_words
from critlang.diagnostics import CritError, Diagnostic, sort_key
from critlang.fmt import format_source
from critlang.parser import parse_recovering
from critlang.render import TYPE_WORDS, describe
from critlang.words import quantity

# Keywords offered by completion; phrases are offered whole.
KEYWORDS = (
    "protocol",
    "title",
    "version",
    "registry",
    "sponsor",
    "sites",
    "status",
    "summary",
    "data",
    "constant",
    "define",
    "boolean",
    "number",
    "quantity",
    "duration",
    "date",
    "label",
    "range",
    "inclusion",
    "exclusion",
    "registered",
    "plain",
    "note",
    "and",
    "or",
    "not",
    "unless",
    "between",
    "exclusive",
    "in",
    "true",
    "false",
    "example",
    "expect",
    "one of",
    "set of",
    "attestation by",
    "molar mass",
    "met when",
    "applies when",
    "includes any of",
    "includes all of",
    "any of",
    "all of",
    "at least",
    "decline from",
    "change from",
    "integer",
    "ordinal",
    "approximate",
    "score",
    "highest of",
    "points when",
    "as of",
    "within",
    "during",
    "before",
    "after",
    "years since",
    "years between",
    "months between",
    "weeks between",
    "days between",
    "codes",
    "except",
    "and descendants",
)
OUTCOMES = ("eligible", "ineligible", "undetermined")
COMMON_UNITS = ("a", "mo", "wk", "d", "h", "kg", "g", "mg/dL", "umol/L", "mmol/L", "U/L", "%")
# What rename leaves alone: ids known outside the file, and values stored in records.
FIXED = ("criterion", "part", "value")
NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")

# What a quick fix writes for a hint: a name for a typo, the UCUM code for a unit.
DID_YOU_MEAN = re.compile(r"did you mean '([^']+)'\?")
UCUM_CODE = re.compile(r"the UCUM code is '([^']+)'")


@attrs.frozen
class Symbol:
    """A declared name: a data element, constant, definition, criterion or part."""

    name: str
    kind: str  # element | constant | definition | criterion | part | value
    span: s.Span  # the name where it is declared
    node: object  # for a value, the data element it belongs to
    key: str = ""  # how uses name it: the name, `I2.a` for a part, `grade=g1` for a value

    @property
    def id(self) -> str:
        return self.key or self.name


@attrs.frozen
class Analysis:
    """What the server knows of one version of a document."""

    text: str
    diagnostics: tuple[Diagnostic, ...]
    protocol: s.Protocol | None
    checked: Checked | None
    symbols: dict[str, Symbol]
    uses: tuple[tuple[str, s.Span], ...]  # every name written where a declared one is meant


def analyse(text: str, file: str) -> Analysis:
    """Diagnostics as `critlang check` gives them, and the tree for navigation.

    While the file has syntax errors, `critlang check` checks nothing else; an
    author typing a new line always has one, so the server also checks the items
    that parse (see `_while_broken`)."""
    _, diagnostics = check_source(text, file)
    try:
        protocol, _ = parse_recovering(text, file)
    except RecursionError:  # reported by check_source as CRIT021
        protocol = None
    checked = None
    if protocol is not None:
        try:
            checked, more = check(protocol)
        except (CritError, RecursionError):
            checked, more = None, []
        if diagnostics and all(d.code in SYNTAX for d in diagnostics):
            diagnostics = sorted([*diagnostics, *_while_broken(more, text)], key=sort_key)
    symbols = _symbols(protocol) if protocol is not None else {}
    uses = tuple(_uses(protocol)) if protocol is not None else ()
    return Analysis(text, tuple(diagnostics), protocol, checked, symbols, uses)


# Codes of the parser: while any is reported, the checker has not run.
SYNTAX = ("CRIT001", "CRIT020")
# What a skipped item can cause in the rest: a name used only there looks unused.
UNUSED = ("CRIT010", "CRIT019")


def _while_broken(diagnostics: list[Diagnostic], text: str) -> list[Diagnostic]:
    """The checker's diagnostics on the items that parse, less those that a
    skipped item may have caused: a warning about an unused name, and an
    unknown name that the text declares somewhere (in an item being typed)."""
    kept = []
    for diagnostic in diagnostics:
        if diagnostic.code in UNUSED:
            continue
        unknown = re.match(r"unknown name '([a-z_][a-z0-9_]*)'", diagnostic.message)
        if unknown is not None:
            name = re.escape(unknown.group(1))
            declared = rf"(?m)^[ \t]*{name}[ \t]*:|\b(?:define|constant)[ \t]+{name}\b"
            if re.search(declared, text):
                continue
        kept.append(diagnostic)
    return kept


def _symbols(protocol: s.Protocol) -> dict[str, Symbol]:
    found: dict[str, Symbol] = {}

    def add(name: s.Name, kind: str, node: object, key: str = "") -> None:
        found.setdefault(key or name.text, Symbol(name.text, kind, name.span, node, key))

    for element in protocol.elements:
        add(element.name, "element", element)
        if isinstance(element.type, s.EnumType | s.SetType | s.OrdinalType):
            for value in element.type.values:
                add(value, "value", element, f"{element.name.text}={value.text}")
    for constant in protocol.constants:
        add(constant.name, "constant", constant)
    for definition in protocol.definitions:
        add(definition.name, "definition", definition)
    for criterion in protocol.criteria:
        add(criterion.id, "criterion", criterion)
        for part in _parts(criterion.condition):
            add(part.name, "part", part, f"{criterion.id.text}.{part.name.text}")
    return found


def _parts(expr: object) -> Iterator[s.SubCriterion]:
    for node in s.walk(expr):
        if isinstance(node, s.SubCriterion):
            yield node


def _expressions(protocol: s.Protocol) -> Iterator[object]:
    for definition in protocol.definitions:
        yield definition.expr
    for criterion in protocol.criteria:
        if criterion.applies_when is not None:
            yield criterion.applies_when
        yield criterion.condition


def _uses(protocol: s.Protocol) -> Iterator[tuple[str, s.Span]]:
    """Every name written where a declared one is meant, by the key of what it names."""
    for expr in _expressions(protocol):
        for node in s.walk(expr):
            if isinstance(node, s.Ref):
                yield node.name, node.span
            if isinstance(node, s.Member | s.Includes) and isinstance(node.subject, s.Ref):
                for value in node.values:
                    yield f"{node.subject.name}={value.text}", value.span
    for example in protocol.examples:
        for field in example.fields:
            yield field.name.text, field.name.span
            written = field.value if isinstance(field.value, tuple) else (field.value,)
            for name in written:
                if isinstance(name, s.Name):
                    yield f"{field.name.text}={name.text}", name.span


# ---- positions ------------------------------------------------------------------


def to_range(span: s.Span) -> t.Range:
    start = t.Position(max(0, span.line - 1), max(0, span.column - 1))
    end = t.Position(max(0, span.end_line - 1), max(0, span.end_column - 1))
    if (end.line, end.character) < (start.line, start.character):
        end = start
    return t.Range(start, end)


def contains(span: s.Span, position: t.Position) -> bool:
    """Whether a position is on a span, its end included (the cursor after a name)."""
    here = (position.line + 1, position.character + 1)
    return (span.line, span.column) <= here <= (span.end_line, span.end_column)


def path_of(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


# ---- the server ------------------------------------------------------------------


class CritServer(LanguageServer):
    def __init__(self) -> None:
        try:
            version = metadata.version("critlang")
        except metadata.PackageNotFoundError:
            version = "0"
        super().__init__("critlang", version)
        self.analyses: dict[str, Analysis] = {}

    def analysis(self, uri: str) -> Analysis:
        document = self.workspace.get_text_document(uri)
        known = self.analyses.get(uri)
        if known is None or known.text != document.source:
            known = analyse(document.source, path_of(uri))
            self.analyses[uri] = known
        return known

    def publish(self, uri: str) -> None:
        analysis = self.analysis(uri)
        diagnostics = [lsp_diagnostic(d, uri, analysis.text) for d in analysis.diagnostics]
        self.text_document_publish_diagnostics(
            t.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics)
        )


server = CritServer()


def lsp_diagnostic(diagnostic: Diagnostic, uri: str, text: str) -> t.Diagnostic:
    """A critlang diagnostic for the editor: code, the hint as related information,
    and the quick fix the hint describes, if it describes one, in `data`."""
    where = to_range(diagnostic.span)
    related = None
    if diagnostic.hint:
        location = t.Location(uri=uri, range=where)
        related = [
            t.DiagnosticRelatedInformation(location=location, message=f"help: {diagnostic.hint}")
        ]
    fix = quick_fix(diagnostic, text)
    return t.Diagnostic(
        range=where,
        message=diagnostic.message,
        severity=t.DiagnosticSeverity.Error
        if diagnostic.is_error
        else t.DiagnosticSeverity.Warning,
        code=diagnostic.code,
        source="critlang",
        related_information=related,
        data={"title": fix[0], "range": _range_json(fix[1]), "text": fix[2]} if fix else None,
    )


def _range_json(where: t.Range) -> dict[str, Any]:
    return {
        "start": {"line": where.start.line, "character": where.start.character},
        "end": {"line": where.end.line, "character": where.end.character},
    }


def quick_fix(diagnostic: Diagnostic, text: str) -> tuple[str, t.Range, str] | None:
    """The edit a hint asks for, as (title, range, new text)."""
    hint = diagnostic.hint or ""
    span = diagnostic.span
    if (match := DID_YOU_MEAN.search(hint)) is not None:
        return f"Change to '{match.group(1)}'", to_range(span), match.group(1)
    if (match := UCUM_CODE.search(hint)) is not None:
        written = re.search(r"'([^']*)' is not a UCUM unit code", diagnostic.message)
        line = text.split("\n")[span.line - 1] if span.line <= text.count("\n") + 1 else ""
        if written is not None:
            quoted = f"'{written.group(1)}'"
            column = line.find(quoted, max(0, span.column - 1))
            if column >= 0:
                start = t.Position(span.line - 1, column)
                end = t.Position(span.line - 1, column + len(quoted))
                code = match.group(1)
                return f"Write the UCUM code '{code}'", t.Range(start, end), f"'{code}'"
    if hint.startswith("to multiply, write '*'"):
        return "Write '*'", to_range(span), "*"
    return None


@server.feature(t.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: CritServer, params: t.DidOpenTextDocumentParams) -> None:
    ls.publish(params.text_document.uri)


@server.feature(t.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: CritServer, params: t.DidChangeTextDocumentParams) -> None:
    ls.publish(params.text_document.uri)


@server.feature(t.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: CritServer, params: t.DidCloseTextDocumentParams) -> None:
    ls.analyses.pop(params.text_document.uri, None)
    ls.text_document_publish_diagnostics(
        t.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[])
    )


# ---- what is under the cursor ----------------------------------------------------


def symbol_at(analysis: Analysis, position: t.Position) -> tuple[Symbol, s.Span] | None:
    """The declared thing whose name, or a use of it, is at a position, and that name."""
    for symbol in analysis.symbols.values():
        if contains(symbol.span, position):
            return symbol, symbol.span
    for name, span in analysis.uses:
        if contains(span, position) and name in analysis.symbols:
            return analysis.symbols[name], span
    return None


def occurrences(analysis: Analysis, symbol: Symbol, declaration: bool = True) -> list[s.Span]:
    """Where a symbol is declared and used, in source order."""
    found = [span for key, span in analysis.uses if key == symbol.id]
    if symbol.kind in ("criterion", "part"):
        found = []  # criteria and parts are not referred to by name
    if declaration:
        found.append(symbol.span)
    return sorted(found, key=lambda span: (span.line, span.column))


@server.feature(t.TEXT_DOCUMENT_HOVER)
def hover(ls: CritServer, params: t.HoverParams) -> t.Hover | None:
    analysis = ls.analysis(params.text_document.uri)
    found = symbol_at(analysis, params.position)
    if found is None:
        return None
    symbol, span = found
    text = hover_text(symbol, analysis.checked)
    return t.Hover(
        contents=t.MarkupContent(kind=t.MarkupKind.Markdown, value=text), range=to_range(span)
    )


def _escaped(text: str) -> str:
    """Author's text shown as Markdown, never interpreted as Markdown or HTML."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!<>|~&])", r"\\\1", text)


def _reading(node: s.Expr | s.SubCriterion, checked: Checked | None) -> str | None:
    """The English reading of an expression, or None when the checker could not type it."""
    if checked is None:
        return None
    try:
        return describe(node, checked)
    except (KeyError, AttributeError, TypeError, ValueError, ArithmeticError):
        return None


def _shown(code: str) -> str:
    """' (mmHg)' after a unit code, as documents show it (units.display); '' when the same."""
    shown = units.display(code)
    return f" ({_escaped(shown)})" if shown and shown != code else ""


def hover_text(symbol: Symbol, checked: Checked | None) -> str:
    """A hover in Markdown: what the name is, and what it means in words."""
    node = symbol.node
    lines: list[str] = []
    reading: str | None = None
    if symbol.kind == "value" and isinstance(node, s.DataElement):
        lines.append(f"**{_escaped(symbol.name)}**: a value of {_escaped(node.name.text)}")
        lines.append(f"Type: {_element_type(node)}")
    elif isinstance(node, s.DataElement):
        lines.append(f"**{_escaped(node.name.text)}**: data element")
        if node.label:
            lines.append(f"Label: {_escaped(node.label)}")
        lines.append(f"Type: {_element_type(node)}")
        if isinstance(node.type, s.QuantityType | s.DurationType):
            code = node.type.unit
            lines.append(f"Unit: {_escaped(code)}{_shown(code)}")
        for ref in node.accepts:
            lines.append(f"Also accepted: {_escaped(ref.code)}{_shown(ref.code)}")
        for conversion in node.conversions:
            code = conversion.unit.code
            formula = conversion_words(conversion)
            lines.append(f"Converted: {_escaped(code)}{_shown(code)} read as {formula}")
        if node.plausible_range is not None:
            low, high = node.plausible_range
            lines.append(f"Range: {low} to {high}")
        if node.molar_mass is not None:
            lines.append(f"Molar mass: {quantity(node.molar_mass.value, node.molar_mass.unit)}")
    elif isinstance(node, s.Constant):
        lines.append(f"**{_escaped(node.name.text)}**: constant")
        if node.label:
            lines.append(f"Label: {_escaped(node.label)}")
        lines.append(f"Value: {_escaped(_literal(node.value))}")
    elif isinstance(node, s.Definition):
        lines.append(f"**{_escaped(node.name.text)}**: definition")
        if node.label:
            lines.append(f"Label: {_escaped(node.label)}")
        reading = _reading(node.expr, checked)
    elif isinstance(node, s.Criterion):
        lines.append(f"**{node.kind} {node.id.text}**: {_escaped(node.title)}")
        if node.applies_when is not None:
            applies = _reading(node.applies_when, checked)
            if applies:
                lines.append(f"Applies only when: {_escaped(applies)}")
        reading = _reading(node.condition, checked)
    elif isinstance(node, s.SubCriterion):
        title = f": {_escaped(node.title)}" if node.title else ""
        lines.append(f"**part {node.name.text}**{title}")
        reading = _reading(node, checked)
    text = "\n\n".join(lines)
    if reading:
        text += "\n\nMet when:\n\n```text\n" + reading.replace("`", "'") + "\n```"
    return text


def _element_type(element: s.DataElement) -> str:
    declared = element.type
    words = TYPE_WORDS[type(declared)]
    if isinstance(declared, s.EnumType | s.SetType):
        return f"{words} ({', '.join(_escaped(v.text) for v in declared.values)})"
    if isinstance(declared, s.OrdinalType):
        listed = " < ".join(_escaped(v.text) for v in declared.values)
        return f"{words} ({listed}, lowest first)"
    if isinstance(declared, s.AttestationType):
        return f"{words} by {', '.join(_escaped(a) for a in declared.attesters)}"
    return words


def _literal(value: s.Literal) -> str:
    if isinstance(value, s.QuantityLit):
        return quantity(value.value, value.unit)
    if isinstance(value, s.DateLit):
        return value.value.isoformat()
    return str(value.value)


@server.feature(t.TEXT_DOCUMENT_DEFINITION)
def definition(ls: CritServer, params: t.DefinitionParams) -> t.Location | None:
    analysis = ls.analysis(params.text_document.uri)
    found = symbol_at(analysis, params.position)
    if found is None:
        return None
    return t.Location(uri=params.text_document.uri, range=to_range(found[0].span))


@server.feature(t.TEXT_DOCUMENT_REFERENCES)
def references(ls: CritServer, params: t.ReferenceParams) -> list[t.Location]:
    analysis = ls.analysis(params.text_document.uri)
    found = symbol_at(analysis, params.position)
    if found is None:
        return []
    spans = occurrences(analysis, found[0], params.context.include_declaration)
    return [t.Location(uri=params.text_document.uri, range=to_range(span)) for span in spans]


@server.feature(t.TEXT_DOCUMENT_PREPARE_RENAME)
def prepare_rename(ls: CritServer, params: t.PrepareRenameParams) -> t.Range | None:
    analysis = ls.analysis(params.text_document.uri)
    found = symbol_at(analysis, params.position)
    if found is None or found[0].kind in FIXED:
        return None
    return to_range(found[1])


@server.feature(t.TEXT_DOCUMENT_RENAME)
def rename(ls: CritServer, params: t.RenameParams) -> t.WorkspaceEdit | None:
    analysis = ls.analysis(params.text_document.uri)
    found = symbol_at(analysis, params.position)
    if found is None or found[0].kind in FIXED:
        return None
    symbol = found[0]
    if not NAME.match(params.new_name):
        raise JsonRpcInvalidParams(
            f"'{params.new_name}' is not a critlang name: lower case letters, digits and '_'"
        )
    if params.new_name in analysis.symbols and params.new_name != symbol.name:
        raise JsonRpcInvalidParams(f"'{params.new_name}' is already declared")
    edits = [t.TextEdit(to_range(span), params.new_name) for span in occurrences(analysis, symbol)]
    return t.WorkspaceEdit(changes={params.text_document.uri: edits})


@server.feature(t.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def document_symbols(ls: CritServer, params: t.DocumentSymbolParams) -> list[t.DocumentSymbol]:
    """The outline: data elements, constants, definitions, criteria with their parts, examples."""
    protocol = ls.analysis(params.text_document.uri).protocol
    if protocol is None:
        return []

    def entry(
        name: str,
        detail: str | None,
        kind: t.SymbolKind,
        span: s.Span,
        selection: s.Span,
        children: list[t.DocumentSymbol] | None = None,
    ) -> t.DocumentSymbol:
        return t.DocumentSymbol(
            name=name,
            detail=detail,
            kind=kind,
            range=to_range(span),
            selection_range=to_range(selection),
            children=children,
        )

    out = [
        entry(
            e.name.text,
            e.label or TYPE_WORDS[type(e.type)],
            t.SymbolKind.Field,
            e.span,
            e.name.span,
        )
        for e in protocol.elements
    ]
    out += [
        entry(c.name.text, c.label, t.SymbolKind.Constant, c.span, c.name.span)
        for c in protocol.constants
    ]
    out += [
        entry(d.name.text, d.label, t.SymbolKind.Function, d.span, d.name.span)
        for d in protocol.definitions
    ]
    for criterion in protocol.criteria:
        parts = [
            entry(p.name.text, p.title, t.SymbolKind.Boolean, p.span, p.name.span)
            for p in _parts(criterion.condition)
        ]
        out.append(
            entry(
                f"{criterion.kind} {criterion.id.text}",
                criterion.title,
                t.SymbolKind.Class,
                criterion.span,
                criterion.id.span,
                parts or None,
            )
        )
    out += [
        entry(f"example {x.title}", x.expect.text, t.SymbolKind.Event, x.span, x.expect.span)
        for x in protocol.examples
    ]
    return out


@server.feature(t.TEXT_DOCUMENT_FORMATTING)
def formatting(ls: CritServer, params: t.DocumentFormattingParams) -> list[t.TextEdit] | None:
    """The whole document in `critlang fmt`'s layout; nothing while it does not parse."""
    text = ls.workspace.get_text_document(params.text_document.uri).source
    try:
        formatted = format_source(text, path_of(params.text_document.uri))
    except (CritError, RecursionError):  # reported as diagnostics already
        return None
    if formatted == text:
        return []
    lines = text.split("\n")
    end = t.Position(len(lines) - 1, len(lines[-1]))
    return [t.TextEdit(t.Range(t.Position(0, 0), end), formatted)]


@server.feature(t.TEXT_DOCUMENT_CODE_ACTION)
def code_actions(ls: CritServer, params: t.CodeActionParams) -> list[t.CodeAction]:
    """Quick fixes for the diagnostics whose hint says what to write."""
    uri = params.text_document.uri
    actions = []
    for diagnostic in params.context.diagnostics:
        data = diagnostic.data
        if diagnostic.source != "critlang" or not isinstance(data, dict) or "text" not in data:
            continue
        where = data["range"]
        edit = t.TextEdit(
            t.Range(
                t.Position(where["start"]["line"], where["start"]["character"]),
                t.Position(where["end"]["line"], where["end"]["character"]),
            ),
            str(data["text"]),
        )
        actions.append(
            t.CodeAction(
                title=str(data["title"]),
                kind=t.CodeActionKind.QuickFix,
                diagnostics=[diagnostic],
                is_preferred=True,
                edit=t.WorkspaceEdit(changes={uri: [edit]}),
            )
        )
    return actions


# ---- completion -------------------------------------------------------------------

_LIST_OF_VALUES = re.compile(
    r"([a-z_][a-z0-9_]*)\s+(?:in|includes\s+(?:any|all)\s+of)\s*\(([a-z0-9_,\s]*)\Z"
)
# `grade = g` in a condition or an example; `meds = (a, b` in an example.
_FIELD_VALUE = re.compile(r"([a-z_][a-z0-9_]*)\s*!?=\s*(?:[a-z0-9_]*|\([a-z0-9_,\s]*)\Z")
# After a comparison with an ordinal element (`nyha >= `): the values of its scale.
_ON_A_SCALE = re.compile(r"([a-z_][a-z0-9_]*)\s*(?:<=|>=|<|>)\s*[a-z0-9_]*\Z")
_UNIT = re.compile(r"'([^'\s]*)\Z")
_EXPECT = re.compile(r"\bexpect\s+[a-z]*\Z")


@server.feature(t.TEXT_DOCUMENT_COMPLETION, t.CompletionOptions(trigger_characters=["'", "("]))
def completion(ls: CritServer, params: t.CompletionParams) -> t.CompletionList:
    analysis = ls.analysis(params.text_document.uri)
    lines = analysis.text.split("\n")
    line = lines[params.position.line] if params.position.line < len(lines) else ""
    before = line[: params.position.character]
    return t.CompletionList(is_incomplete=False, items=completions(analysis, before))


def completions(analysis: Analysis, before: str) -> list[t.CompletionItem]:
    """What may be written at the end of `before`, the line up to the cursor."""
    elements = {
        symbol.name: symbol.node
        for symbol in analysis.symbols.values()
        if symbol.kind == "element" and isinstance(symbol.node, s.DataElement)
    }
    if _UNIT.search(before):
        units = {
            e.type.unit
            for e in elements.values()
            if isinstance(e.type, s.QuantityType | s.DurationType)
        }
        units |= set(COMMON_UNITS) | set(UCUM_SPELLINGS.values())
        return [
            t.CompletionItem(label=unit, kind=t.CompletionItemKind.Unit, detail="UCUM unit")
            for unit in sorted(units)
        ]
    if _EXPECT.search(before):
        return [t.CompletionItem(label=o, kind=t.CompletionItemKind.EnumMember) for o in OUTCOMES]
    for pattern in (_LIST_OF_VALUES, _FIELD_VALUE, _ON_A_SCALE):
        match = pattern.search(before)
        element = elements.get(match.group(1)) if match else None
        if pattern is _ON_A_SCALE and not (element and isinstance(element.type, s.OrdinalType)):
            continue
        if element is not None and isinstance(element.type, s.EnumType | s.SetType | s.OrdinalType):
            return [
                t.CompletionItem(
                    label=v.text,
                    kind=t.CompletionItemKind.EnumMember,
                    detail=f"value of {element.name.text}",
                )
                for v in element.type.values
            ]
    items = []
    for symbol in analysis.symbols.values():
        if symbol.kind in FIXED:
            continue
        kind = {
            "element": t.CompletionItemKind.Field,
            "constant": t.CompletionItemKind.Constant,
            "definition": t.CompletionItemKind.Function,
        }[symbol.kind]
        label = getattr(symbol.node, "label", None)
        items.append(
            t.CompletionItem(
                label=symbol.name,
                kind=kind,
                detail=label or symbol.kind,
                sort_text=f"0{symbol.name}",
            )
        )
    items += [
        t.CompletionItem(label=word, kind=t.CompletionItemKind.Keyword, sort_text=f"1{word}")
        for word in KEYWORDS
    ]
    return items


def serve() -> None:
    """Serve one editor over stdin and stdout until it disconnects."""
    server.start_io()
