"""The language server end to end: `critlang lsp` in a subprocess, driven over stdio by
pytest-lsp's client as an editor would. One server serves the whole module."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

pytest_lsp = pytest.importorskip("pytest_lsp", reason="needs the test extra (pytest-lsp)")
pytest.importorskip("pygls", reason="needs the lsp extra (pygls)")

from lsprotocol import types as t  # noqa: E402
from pygls.exceptions import JsonRpcInvalidParams  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities  # noqa: E402

from critlang.check import check_source  # noqa: E402
from critlang.fmt import format_source  # noqa: E402
from critlang.render import describe  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SOURCE = str(ROOT / "src")
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([SOURCE, os.environ.get("PYTHONPATH", "")])}

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROTOCOL = """\
protocol liver
data
  alt: quantity 'U/L' label "Alanine aminotransferase" range 0 to 5000
  alt_uln: quantity 'U/L'
  grade: one of (g1, g2, g3)
  smoker: boolean
define raised = alt > 3 * alt_uln label "ALT above three times normal"
inclusion I1 "Low grade"
  met when grade in (g1, g2) and not raised
exclusion E1 "Liver or lung"
  met when any of [
    a "Liver": raised,
    b "Lung": smoker
  ]
example "fine" { alt = 20 'U/L', alt_uln = 40 'U/L', grade = g1, smoker = false } expect eligible
"""


OPEN: set[str] = set()


def uri(name: str) -> str:
    return (ROOT / "tests" / "lsp-documents" / name).as_uri()


@pytest_lsp.fixture(
    scope="module",
    config=ClientServerConfig(
        server_command=[sys.executable, "-c", "from critlang.cli import main; main()", "lsp"],
        server_env=ENV,
    ),
)
async def client(lsp_client: LanguageClient) -> AsyncIterator[None]:
    await lsp_client.initialize_session(
        t.InitializeParams(capabilities=client_capabilities("visual-studio-code"))
    )
    yield
    await lsp_client.shutdown_session()


async def opened(client: LanguageClient, name: str, text: str) -> list[t.Diagnostic]:
    """Open a document, as an editor does, and return the diagnostics published for it."""
    if name in OPEN:  # an editor closes a document before it opens it again
        client.text_document_did_close(
            t.DidCloseTextDocumentParams(t.TextDocumentIdentifier(uri(name)))
        )
        await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    OPEN.add(name)
    client.text_document_did_open(
        t.DidOpenTextDocumentParams(t.TextDocumentItem(uri(name), "critlang", 1, text))
    )
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    return list(client.diagnostics[uri(name)])


def at(name: str, line: int, character: int) -> tuple[t.TextDocumentIdentifier, t.Position]:
    return t.TextDocumentIdentifier(uri(name)), t.Position(line, character)


# ---- diagnostics ------------------------------------------------------------------


async def test_every_syntax_error_is_published_with_code_and_hint(client: LanguageClient) -> None:
    text = PROTOCOL.replace("not raised", "not raised &&").replace('b "Lung": smoker', "b: ")
    diagnostics = await opened(client, "broken.crit", text)
    assert [(d.code, d.range.start.line) for d in diagnostics] == [("CRIT001", 8), ("CRIT001", 13)]
    first = diagnostics[0]
    assert first.severity == t.DiagnosticSeverity.Error
    assert first.source == "critlang"
    assert first.message.startswith("unexpected character '&'; expected an operator")
    assert first.related_information is not None
    assert first.related_information[0].message == "help: write 'and'"


async def test_names_are_checked_in_the_items_that_parse(client: LanguageClient) -> None:
    text = PROTOCOL.replace("not raised", "not raised &&").replace("smoker\n  ]", "smokr\n  ]")
    diagnostics = await opened(client, "half-typed.crit", text)
    assert [(d.code, d.range.start.line) for d in diagnostics] == [("CRIT001", 8), ("CRIT005", 12)]
    assert diagnostics[1].message == "unknown name 'smokr'"
    # A definition being typed is still declared: its uses are not flagged.
    text = PROTOCOL.replace("alt > 3 * alt_uln", "alt > 3 *")
    diagnostics = await opened(client, "definition-typed.crit", text)
    assert [(d.code, d.range.start.line) for d in diagnostics] == [("CRIT001", 6)]


async def test_diagnostics_follow_each_change(client: LanguageClient) -> None:
    name = "typing.crit"
    diagnostics = await opened(client, name, PROTOCOL.replace("smoker\n  ]", "smokr\n  ]"))
    assert [(d.code, d.message) for d in diagnostics] == [("CRIT005", "unknown name 'smokr'")]
    client.text_document_did_change(
        t.DidChangeTextDocumentParams(
            t.VersionedTextDocumentIdentifier(version=2, uri=uri(name)),
            [t.TextDocumentContentChangeWholeDocument(text=PROTOCOL)],
        )
    )
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert list(client.diagnostics[uri(name)]) == []


# ---- hover ----------------------------------------------------------------------------


async def test_hover_on_a_data_element_shows_label_type_unit_and_range(
    client: LanguageClient,
) -> None:
    await opened(client, "hover.crit", PROTOCOL)
    document, position = at("hover.crit", 6, 17)  # 'alt' in the definition
    result = await client.text_document_hover_async(t.HoverParams(document, position))
    assert result is not None and isinstance(result.contents, t.MarkupContent)
    assert result.contents.value.split("\n\n") == [
        "**alt**: data element",
        "Label: Alanine aminotransferase",
        "Type: quantity",
        "Unit: U/L",
        "Range: 0 to 5000",
    ]
    assert result.range == t.Range(t.Position(6, 16), t.Position(6, 19))


UNITS_PROTOCOL = """\
protocol clinic
data
  systolic: quantity 'mm[Hg]'
  hba1c: quantity '%' convert 'mmol/mol' as 0.09148 * value + 2.152
  egfr: quantity 'mL/min/{1.73_m2}' accepts 'mL/min'
  neutrophils: quantity '10*9/L'
  age: duration 'a'
inclusion I1 "All" met when systolic > 1 'mm[Hg]' and hba1c > 1% and egfr > 1 'mL/min/{1.73_m2}'
  and neutrophils > 1 '10*9/L' and age > 18 'a'
"""


@pytest.mark.parametrize(
    ("line", "lines"),
    [
        (2, ["Type: quantity", "Unit: mm\\[Hg\\] (mmHg)"]),
        (
            3,
            [
                "Type: quantity",
                "Unit: %",
                "Converted: mmol/mol read as 0.09148 \N{MULTIPLICATION SIGN} value + 2.152",
            ],
        ),
        (
            4,
            [
                "Type: quantity",
                "Unit: mL/min/\\{1\\.73\\_m2\\} (mL/min/1\\.73 m²)",
                "Also accepted: mL/min",
            ],
        ),
        (5, ["Type: quantity", "Unit: 10\\*9/L (\N{MULTIPLICATION SIGN}10⁹/L)"]),
        (6, ["Type: duration", "Unit: a (years)"]),
    ],
)
async def test_hover_shows_units_by_their_display_names_and_the_accepted_units(
    client: LanguageClient, line: int, lines: list[str]
) -> None:
    """The one table of display names (units.display), as documents show units."""
    await opened(client, "units.crit", UNITS_PROTOCOL)
    document, position = at("units.crit", line, 3)
    result = await client.text_document_hover_async(t.HoverParams(document, position))
    assert result is not None and isinstance(result.contents, t.MarkupContent)
    assert result.contents.value.split("\n\n")[1:] == lines


async def test_hover_on_a_criterion_shows_its_english_reading(client: LanguageClient) -> None:
    checked, _ = check_source(PROTOCOL, "liver.crit")
    assert checked is not None
    await opened(client, "hover.crit", PROTOCOL)
    document, position = at("hover.crit", 9, 10)  # E1
    result = await client.text_document_hover_async(t.HoverParams(document, position))
    assert result is not None and isinstance(result.contents, t.MarkupContent)
    reading = describe(checked.protocol.criteria[1].condition, checked)
    assert reading.startswith("At least one of the following:")
    assert result.contents.value == (
        f"**exclusion E1**: Liver or lung\n\nMet when:\n\n```text\n{reading}\n```"
    )


async def test_hover_on_a_part_and_a_definition(client: LanguageClient) -> None:
    await opened(client, "hover.crit", PROTOCOL)
    document, position = at("hover.crit", 11, 4)  # part a
    part = await client.text_document_hover_async(t.HoverParams(document, position))
    assert part is not None and isinstance(part.contents, t.MarkupContent)
    assert part.contents.value.startswith("**part a**: Liver\n\nMet when:")
    document, position = at("hover.crit", 8, 40)  # 'raised' in I1
    used = await client.text_document_hover_async(t.HoverParams(document, position))
    assert used is not None and isinstance(used.contents, t.MarkupContent)
    assert used.contents.value.startswith(
        "**raised**: definition\n\nLabel: ALT above three times normal\n\nMet when:"
    )
    assert (
        "Alanine aminotransferase more than 3 \N{MULTIPLICATION SIGN} alt uln"
        in used.contents.value
    )


async def test_hover_still_works_while_another_line_is_broken(client: LanguageClient) -> None:
    text = PROTOCOL.replace("met when grade in (g1, g2)", "met when grade in (g1, g2) &&")
    await opened(client, "half.crit", text)
    document, position = at("half.crit", 12, 14)  # smoker, in E1
    result = await client.text_document_hover_async(t.HoverParams(document, position))
    assert result is not None and isinstance(result.contents, t.MarkupContent)
    assert result.contents.value.startswith("**smoker**: data element")


# ---- completion ------------------------------------------------------------------


async def complete(
    client: LanguageClient, name: str, text: str, line: int, character: int
) -> set[str]:
    await opened(client, name, text)
    document, position = at(name, line, character)
    result = await client.text_document_completion_async(t.CompletionParams(document, position))
    assert isinstance(result, t.CompletionList)
    return {item.label for item in result.items}


async def test_completion_offers_names_and_keywords(client: LanguageClient) -> None:
    text = PROTOCOL + 'inclusion I9 "New"\n  met when \n'
    labels = await complete(client, "complete.crit", text, 16, 11)
    assert {"alt", "alt_uln", "grade", "smoker", "raised"} <= labels
    assert {"and", "any of", "not", "between"} <= labels
    assert "I1" not in labels


async def test_completion_offers_enum_values_units_and_outcomes(client: LanguageClient) -> None:
    text = PROTOCOL + 'inclusion I9 "New"\n  met when grade in (g1, \n'
    assert await complete(client, "values.crit", text, 16, 25) == {"g1", "g2", "g3"}
    text = PROTOCOL + 'inclusion I9 "New"\n  met when grade = g1 and sm\n'
    assert {"smoker", "alt", "and"} <= await complete(client, "after.crit", text, 16, 28)
    text = PROTOCOL + 'inclusion I9 "New"\n  met when grade != \n'
    assert await complete(client, "compare.crit", text, 16, 20) == {"g1", "g2", "g3"}
    text = PROTOCOL + "define high = alt > 40 '\n"
    units = await complete(client, "units.crit", text, 15, 24)
    assert {"U/L", "mg/dL", "a", "mo"} <= units
    text = PROTOCOL + 'example "e" { grade = g2 } expect \n'
    outcomes = await complete(client, "expect.crit", text, 15, 34)
    assert outcomes == {"eligible", "ineligible", "undetermined"}


async def test_completion_offers_the_values_of_a_scale_and_score_keywords(
    client: LanguageClient,
) -> None:
    text = (
        "protocol heart\ndata\n  nyha: ordinal (i, ii, iii, iv)\n"
        'inclusion I1 "Symptomatic"\n  met when nyha >= \n'
    )
    assert await complete(client, "scale.crit", text, 4, 19) == {"i", "ii", "iii", "iv"}
    text = text.replace("nyha >= ", "")
    labels = await complete(client, "score.crit", text, 4, 11)
    assert {"score", "highest of", "points when"} <= labels


# ---- navigation -------------------------------------------------------------------


async def test_go_to_definition_finds_the_declaration(client: LanguageClient) -> None:
    await opened(client, "nav.crit", PROTOCOL)
    document, position = at("nav.crit", 12, 15)  # smoker in E1
    result = await client.text_document_definition_async(t.DefinitionParams(document, position))
    assert isinstance(result, t.Location)
    assert result.range == t.Range(t.Position(5, 2), t.Position(5, 8))


async def test_find_references_lists_every_use(client: LanguageClient) -> None:
    await opened(client, "nav.crit", PROTOCOL)
    document, position = at("nav.crit", 6, 8)  # the definition of 'raised'
    result = await client.text_document_references_async(
        t.ReferenceParams(
            context=t.ReferenceContext(include_declaration=True),
            text_document=document,
            position=position,
        )
    )
    assert result is not None
    assert [(r.range.start.line, r.range.start.character) for r in result] == [
        (6, 7),
        (8, 37),
        (11, 15),
    ]


async def test_rename_changes_declaration_uses_and_example_fields(client: LanguageClient) -> None:
    await opened(client, "nav.crit", PROTOCOL)
    document, position = at("nav.crit", 2, 3)  # 'alt' where it is declared
    edit = await client.text_document_rename_async(t.RenameParams(document, position, "alt_value"))
    assert edit is not None and edit.changes is not None
    edits = edit.changes[uri("nav.crit")]
    assert [(e.range.start.line, e.range.start.character) for e in edits] == [
        (2, 2),
        (6, 16),
        (14, 17),
    ]
    lines = PROTOCOL.split("\n")
    for text_edit in edits:
        start, end = text_edit.range.start, text_edit.range.end
        assert lines[start.line][start.character : end.character] == "alt"
        assert text_edit.new_text == "alt_value"


async def test_rename_refuses_a_name_that_is_not_critlang(client: LanguageClient) -> None:
    await opened(client, "nav.crit", PROTOCOL)
    document, position = at("nav.crit", 2, 3)
    with pytest.raises(JsonRpcInvalidParams, match="not a critlang name") as raised:
        await client.text_document_rename_async(t.RenameParams(document, position, "Alt Value"))
    assert raised.value.data is None  # no traceback for the author
    with pytest.raises(JsonRpcInvalidParams, match="'grade' is already declared"):
        await client.text_document_rename_async(t.RenameParams(document, position, "grade"))


async def test_document_symbols_outline_criteria_and_parts(client: LanguageClient) -> None:
    await opened(client, "nav.crit", PROTOCOL)
    result = await client.text_document_document_symbol_async(
        t.DocumentSymbolParams(t.TextDocumentIdentifier(uri("nav.crit")))
    )
    assert result is not None
    outline = [
        (symbol.name, [child.name for child in symbol.children or []])
        for symbol in result
        if isinstance(symbol, t.DocumentSymbol)
    ]
    assert outline == [
        ("alt", []),
        ("alt_uln", []),
        ("grade", []),
        ("smoker", []),
        ("raised", []),
        ("inclusion I1", []),
        ("exclusion E1", ["a", "b"]),
        ("example fine", []),
    ]


# ---- editing ----------------------------------------------------------------------


async def test_formatting_gives_the_fmt_layout(client: LanguageClient) -> None:
    messy = PROTOCOL.replace("  met when grade", "     met when    grade")
    await opened(client, "messy.crit", messy)
    edits = await client.text_document_formatting_async(
        t.DocumentFormattingParams(
            t.TextDocumentIdentifier(uri("messy.crit")), t.FormattingOptions(2, True)
        )
    )
    assert edits is not None and len(edits) == 1
    assert edits[0].new_text == format_source(messy, "messy.crit")
    assert edits[0].range.start == t.Position(0, 0)


async def test_code_actions_fix_a_misspelt_name_and_a_unit(client: LanguageClient) -> None:
    text = PROTOCOL.replace("smoker\n  ]", "smokr\n  ]").replace(
        "alt_uln: quantity 'U/L'", "age: quantity 'years'\n  alt_uln: quantity 'U/L'"
    )
    diagnostics = await opened(client, "fix.crit", text)
    codes = sorted(str(d.code) for d in diagnostics)
    assert codes == ["CRIT002", "CRIT005", "CRIT010"]  # CRIT010: 'age' is never used
    document = t.TextDocumentIdentifier(uri("fix.crit"))
    actions = await client.text_document_code_action_async(
        t.CodeActionParams(document, diagnostics[0].range, t.CodeActionContext(diagnostics))
    )
    assert actions is not None
    fixes = {}
    for action in actions:
        assert isinstance(action, t.CodeAction) and action.edit and action.edit.changes
        (edit,) = action.edit.changes[uri("fix.crit")]
        line = text.split("\n")[edit.range.start.line]
        fixes[action.title] = (
            line[edit.range.start.character : edit.range.end.character],
            edit.new_text,
        )
    assert fixes == {
        "Write the UCUM code 'a'": ("'years'", "'a'"),
        "Change to 'smoker'": ("smokr", "smoker"),
    }


async def test_hover_shows_the_authors_text_literally(client: LanguageClient) -> None:
    text = PROTOCOL.replace('"Alanine aminotransferase"', '"ALT <b>*raw*</b> [x](y)"')
    await opened(client, "escape.crit", text)
    document, position = at("escape.crit", 2, 3)
    result = await client.text_document_hover_async(t.HoverParams(document, position))
    assert result is not None and isinstance(result.contents, t.MarkupContent)
    assert "Label: ALT \\<b\\>\\*raw\\*\\</b\\> \\[x\\]\\(y\\)" in result.contents.value


async def test_code_action_writes_star_for_an_x_between_a_number_and_a_name(
    client: LanguageClient,
) -> None:
    text = PROTOCOL.replace("alt > 3 * alt_uln", "alt > 3 x alt_uln")
    (diagnostic,) = await opened(client, "times.crit", text)
    document = t.TextDocumentIdentifier(uri("times.crit"))
    actions = await client.text_document_code_action_async(
        t.CodeActionParams(document, diagnostic.range, t.CodeActionContext([diagnostic]))
    )
    assert actions is not None
    (action,) = actions
    assert isinstance(action, t.CodeAction) and action.edit and action.edit.changes
    (edit,) = action.edit.changes[uri("times.crit")]
    assert (action.title, edit.new_text) == ("Write '*'", "*")
    assert edit.range == t.Range(t.Position(6, 24), t.Position(6, 25))


async def test_enum_values_hover_and_lead_to_their_declaration(client: LanguageClient) -> None:
    await opened(client, "values-nav.crit", PROTOCOL)
    document, position = at("values-nav.crit", 8, 22)  # g1 in 'grade in (g1, g2)'
    hovered = await client.text_document_hover_async(t.HoverParams(document, position))
    assert hovered is not None and isinstance(hovered.contents, t.MarkupContent)
    assert hovered.contents.value == "**g1**: a value of grade\n\nType: one of (g1, g2, g3)"
    found = await client.text_document_references_async(
        t.ReferenceParams(
            context=t.ReferenceContext(include_declaration=True),
            text_document=document,
            position=position,
        )
    )
    assert found is not None
    lines = PROTOCOL.split("\n")
    assert [(r.range.start.line, r.range.start.character) for r in found] == [
        (4, lines[4].index("g1")),
        (8, lines[8].index("g1")),
        (14, lines[14].index("g1")),
    ]
    rename = await client.text_document_prepare_rename_async(
        t.PrepareRenameParams(document, position)
    )
    assert rename is None  # values are what records hold: renaming one is not a local edit
