"""A Pygments lexer for critlang, so ```crit blocks are highlighted in the docs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import (
    Comment,
    Keyword,
    Literal,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Whitespace,
)

DECLARATIONS = ("protocol", "data", "constant", "define", "inclusion", "exclusion", "example")
FIELDS = (
    "title",
    "version",
    "registry",
    "sponsor",
    "sites",
    "status",
    "summary",
    "label",
    "range",
    "molar",
    "accepts",
    "convert",
    "as",
    "mass",
    "registered",
    "plain",
    "note",
    "met",
    "applies",
    "when",
    "expect",
    "approximate",
    "codes",
    "except",
    "complete",
)
TYPES = (
    "boolean",
    "number",
    "quantity",
    "duration",
    "date",
    "one",
    "set",
    "attestation",
    "by",
    "integer",
    "ordinal",
)
OPERATORS = (
    "and",
    "or",
    "not",
    "unless",
    "between",
    "exclusive",
    "in",
    "includes",
    "any",
    "all",
    "at",
    "least",
    "of",
    "decline",
    "change",
    "from",
    "to",
    "highest",
    "points",
    "point",
    "within",
    "before",
    "after",
    "descendants",
)


class CritLexer(RegexLexer):
    """Lexer for critlang protocol files (.crit)."""

    name = "critlang"
    aliases: ClassVar[Sequence[str]] = ("crit", "critlang")
    filenames: ClassVar[Sequence[str]] = ("*.crit",)
    mimetypes: ClassVar[Sequence[str]] = ("text/x-critlang",)

    tokens: ClassVar[dict[str, list[Any]]] = {
        "root": [
            (r"\s+", Whitespace),
            (r"#.*$", Comment.Single),
            (r'"""', String.Doc, "docstring"),
            (r'"(\\.|[^"\\\n])*"', String.Double),
            (r"'(\\['\\]|[^'\\\n])*'", String.Symbol),
            (r"\d{4}-\d{2}-\d{2}\b", Literal.Date),
            (r"\d{4}-\d{2}(?![\d-])", Literal.Date),  # a year and month, in an example
            # Calendar words are keywords only after a number or before between/since.
            (
                r"(\d+)(\s+)(years?|months?|weeks?|days?)\b",
                bygroups(Number, Whitespace, Keyword.Type),  # type: ignore[no-untyped-call]
            ),
            (r"(years|months|weeks|days)(\s+)(between|since)\b", Operator.Word),
            (r"\d+(\.\d+)?%?", Number),
            (r"\b[IE]\d+\b", Name.Label),
            (r"\bscore(?=\s*\[)", Operator.Word),  # a keyword only before '[', as in the grammar
            (r"\bduring(?=\s+-?\d)", Operator.Word),  # a keyword only before a number
            (words(DECLARATIONS, suffix=r"\b"), Keyword.Declaration),
            (words(FIELDS, suffix=r"\b"), Keyword),
            (words(TYPES, suffix=r"\b"), Keyword.Type),
            (words(OPERATORS, suffix=r"\b"), Operator.Word),
            (words(("true", "false"), suffix=r"\b"), Keyword.Constant),
            (r"<=|>=|!=|[<>=*/+\-]", Operator),
            (r"[()\[\],:{}]", Punctuation),
            (r"[a-z_][a-z0-9_]*", Name),
        ],
        "docstring": [
            (r'"""', String.Doc, "#pop"),
            (r'[^"]+', String.Doc),
            (r'"', String.Doc),
        ],
    }
