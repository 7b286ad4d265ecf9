"""render.py: the English of expressions, the four documents (golden files), the CLI and lexer.

Regenerate the golden files after an intended change with
`CRITLANG_UPDATE_GOLDEN=1 pytest tests/test_render.py`, and review the diff.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from pygments.lexers import get_lexer_by_name
from pygments.token import Error

from critlang import syntax as s
from critlang.check import Checked, check_source
from critlang.cli import main
from critlang.lexer import CritLexer
from critlang.render import (
    FORMATS,
    Reading,
    _css_string,
    _markdown,
    _mermaid,
    describe,
    document,
    render_document,
    rounded,
    text_lines,
)

ROOT = Path(__file__).resolve().parent.parent
CTD_ILD = ROOT / "protocols" / "ctd_ild.crit"
GOLDEN = Path(__file__).resolve().parent / "golden"
SUFFIXES = {"md": "md", "txt": "txt", "html": "html", "plain": "plain.md"}
TIMES = "\N{MULTIPLICATION SIGN}"
DIVIDE = "\N{DIVISION SIGN}"
MINUS = "\N{MINUS SIGN}"

DATA = """
data
  age: quantity 'a' range 0 to 130
    label "Age"
  sex: one of (female, male, other)
    label "Sex"
  diagnoses: set of (lupus, myositis, sclerosis)
    label "Diagnoses"
  fvc_baseline: quantity 'L'
    label "FVC at baseline"
  fvc_current: quantity 'L'
    label "FVC now"
  symptom_duration: duration 'mo'
    label "Time since first symptoms"
  wait: duration 'wk'
    label "Time on the waiting list"
  got: quantity 'U/L'
    label "Serum GOT (AST)"
  myopathy: boolean
    label "Raised GOT caused by myopathy"
  childbearing_potential: boolean
    label "Of childbearing potential"
  pregnant: boolean
    label "Pregnant"
  smoker: boolean
  contraception: boolean
    label "Uses effective contraception"
  egfr: quantity 'mL/min'
    label "eGFR"
  consent_date: date
    label "Date of consent"

constant uln = 40 'U/L'
  label "Upper limit of normal"

define fvc_decline = decline from fvc_baseline to fvc_current
  label "FVC decline from baseline"
define woman_of_childbearing_potential = sex = female and childbearing_potential
  label "Woman of childbearing potential"
"""


def checked_with(*criteria: str) -> Checked:
    text = "protocol t\n" + DATA + "\n".join(criteria)
    checked, diagnostics = check_source(text, "t.crit")
    assert checked is not None, [d.message for d in diagnostics]
    return checked


def reading(condition: str) -> str:
    checked = checked_with(f'inclusion I1 "t" met when {condition}')
    return describe(checked.protocol.criteria[0].condition, checked)


@pytest.mark.parametrize(
    ("condition", "english"),
    [
        ("age > 18 'a'", "Age more than 18 years"),
        ("age >= 18 'a'", "Age at least 18 years"),
        ("age < 80 'a'", "Age less than 80 years"),
        ("age <= 80 'a'", "Age at most 80 years"),
        ("18 'a' <= age", "Age at least 18 years"),
        ("age between 20 'a' and 80 'a'", "Age between 20 and 80 years, inclusive"),
        ("age between 20 'a' and 80 'a' exclusive", "Age between 20 and 80 years, exclusive"),
        ("symptom_duration <= 1 'mo'", "Time since first symptoms at most 1 month"),
        ("wait > 6 'wk'", "Time on the waiting list more than 6 weeks"),
        ("fvc_decline > 10%", "FVC decline from baseline of more than 10%"),
        (
            "fvc_decline between 5% and 10%",
            "FVC decline from baseline between 5% and 10%, inclusive",
        ),
        (
            "decline from fvc_baseline to fvc_current >= 5%",
            "The percentage decline from FVC at baseline to FVC now of at least 5%",
        ),
        ("got > 2 * uln", f"Serum GOT (AST) more than 2 {TIMES} 40 U/L"),
        ("got > 2 * (uln + 5 'U/L')", f"Serum GOT (AST) more than 2 {TIMES} (40 U/L + 5 U/L)"),
        ("sex = female", "Sex is female"),
        ("sex != female", "Sex is not female"),
        ("sex in (female, other)", "Sex is one of: female, other"),
        (
            "diagnoses includes any of (lupus, myositis)",
            "Diagnoses include at least one of: lupus, myositis",
        ),
        (
            "diagnoses includes all of (lupus, myositis)",
            "Diagnoses include all of: lupus, myositis",
        ),
        ("consent_date >= 2024-01-01", "Date of consent on or after 2024-01-01"),
        ("pregnant", "Pregnant"),
        ("not pregnant", "Pregnant: no"),
        ("not contraception", "Uses effective contraception: no"),
        (
            "pregnant and not contraception",
            "All of the following:\n- Pregnant\n- Uses effective contraception: no",
        ),
        ("egfr >= 60 'mL/min'", "eGFR at least 60 mL/min"),
        ("pregnant or egfr < 30 'mL/min'", "Pregnant or eGFR less than 30 mL/min"),
        ("smoker", "Smoker"),
        ("woman_of_childbearing_potential", "Woman of childbearing potential"),
        ("pregnant or smoker", "Pregnant or smoker"),
        (
            "got > 2 * uln unless myopathy",
            f"Serum GOT (AST) more than 2 {TIMES} 40 U/L, unless raised GOT caused by myopathy",
        ),
    ],
)
def test_english_of_an_expression(condition: str, english: str) -> None:
    assert reading(condition) == english


def test_at_least_n_of_a_list() -> None:
    assert reading("at least 2 of [pregnant, smoker, age > 60 'a']") == (
        "At least two of the following:\n- Pregnant\n- Smoker\n- Age more than 60 years"
    )


def test_and_of_phrases_with_connectives_becomes_a_list() -> None:
    assert reading("age between 20 'a' and 80 'a' and (pregnant or smoker)") == (
        "All of the following:\n- Age between 20 and 80 years, inclusive\n- Pregnant or smoker"
    )


def test_negated_list_reads_as_none_of() -> None:
    assert reading("not (pregnant or smoker or myopathy)") == (
        "None of the following:\n- Pregnant\n- Smoker\n- Raised GOT caused by myopathy"
    )


def test_unless_with_a_list_puts_the_exception_first() -> None:
    assert reading("(pregnant or smoker or got > uln) unless myopathy") == (
        "Unless raised GOT caused by myopathy, at least one of the following:\n"
        "- Pregnant\n- Smoker\n- Serum GOT (AST) more than 40 U/L"
    )


def test_named_alternatives_and_their_applicability() -> None:
    assert reading(
        "any of [a \"Old\": age > 60 'a', "
        'b "Pregnant" applies when woman_of_childbearing_potential: pregnant]'
    ) == (
        "At least one of the following:\n"
        "- a. Old: age more than 60 years\n"
        "- b. Pregnant (applies only when woman of childbearing potential): pregnant"
    )


def test_applies_when_on_inclusion_and_exclusion() -> None:
    checked = checked_with(
        'inclusion I1 "Test" applies when woman_of_childbearing_potential met when not pregnant',
        'exclusion E1 "Pregnant" applies when woman_of_childbearing_potential met when pregnant',
    )
    doc = document(checked)
    assert doc.inclusions[0].applies == (
        "Applies only when woman of childbearing potential; otherwise it counts as met."
    )
    assert doc.exclusions[0].applies == (
        "Applies only when woman of childbearing potential; otherwise it does not exclude anyone."
    )


def test_describe_a_sub_criterion() -> None:
    checked = checked_with('inclusion I1 "t" met when any of [a "Old": age > 60 \'a\', b: smoker]')
    condition = checked.protocol.criteria[0].condition
    assert isinstance(condition, s.Quantified)
    alternative = condition.items[0]
    assert isinstance(alternative, s.SubCriterion)
    assert describe(alternative, checked) == "a. Old: age more than 60 years"


def test_data_dictionary_knows_who_uses_what() -> None:
    checked = checked_with(
        'inclusion I1 "t" applies when woman_of_childbearing_potential met when not pregnant',
        'exclusion E1 "t" met when got > 2 * uln',
    )
    doc = document(checked)
    used = {e.name: e.used_by for e in doc.elements}
    assert used["sex"] == used["childbearing_potential"] == used["pregnant"] == ("I1",)
    assert used["got"] == ("E1",)
    assert used["age"] == ()
    assert {c.name: c.used_by for c in doc.constants} == {"uln": ("E1",)}
    assert next(e for e in doc.elements if e.name == "age").unit == "a (years)"


def ctd_ild() -> Checked:
    checked, diagnostics = check_source(CTD_ILD.read_text(encoding="utf-8"), str(CTD_ILD))
    assert checked is not None, diagnostics
    return checked


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_ctd_ild_document_matches_golden_file(fmt: str) -> None:
    rendered = render_document(ctd_ild(), fmt)
    golden = GOLDEN / f"ctd_ild.{SUFFIXES[fmt]}"
    if os.environ.get("CRITLANG_UPDATE_GOLDEN") == "1":
        golden.write_text(rendered, encoding="utf-8")
    assert rendered == golden.read_text(encoding="utf-8")


def test_ctd_ild_page_has_every_criterion_beside_its_registered_text() -> None:
    checked = ctd_ild()
    page = render_document(checked, "md")
    for criterion in checked.protocol.criteria:
        assert f"### {criterion.id.text} " in page
        assert criterion.registered is not None
        assert criterion.registered.replace("_", "\\_") in page
    assert "```mermaid\nflowchart TD\n" in page
    assert 'c_I2_a("a. Refractory or progressive fibrotic ILD")' in page
    assert "| `creatinine` |" in page or 'id="data-creatinine"' in page


UNSAFE = (
    "protocol t\ndata\n  x: quantity 'mg/dL'\n    label \"Creatinine <script>\"\n"
    'inclusion I1 "Low & <b>safe</b>"\n'
    '  registered "Creatinine < 1.4 & GFR > 60 <b>bold</b>"\n'
    "  met when x < 1.4 'mg/dL'\n"
)


def test_html_worksheet_escapes_protocol_text() -> None:
    checked, _ = check_source(UNSAFE, "t.crit")
    assert checked is not None
    html = render_document(checked, "html")
    assert "Creatinine &lt; 1.4 &amp; GFR &gt; 60 &lt;b&gt;bold&lt;/b&gt;" in html
    assert "Low &amp; &lt;b&gt;safe&lt;/b&gt;" in html
    assert "<b>" not in html and "<script>" not in html


def test_markdown_page_shows_protocol_text_verbatim() -> None:
    checked, _ = check_source(UNSAFE, "t.crit")
    assert checked is not None
    page = render_document(checked, "md")
    assert "> Creatinine &lt; 1.4 &amp; GFR &gt; 60 &lt;b&gt;bold&lt;/b&gt;" in page
    assert "<b>" not in page


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        render_document(ctd_ild(), "pdf")


def test_cli_render_to_stdout_and_file(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["render", str(CTD_ILD), "--format", "txt"])
    assert result.exit_code == 0, result.output
    assert result.output == (GOLDEN / "ctd_ild.txt").read_text(encoding="utf-8")
    out = tmp_path / "worksheet.html"
    result = runner.invoke(main, ["render", str(CTD_ILD), "--format", "html", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == (GOLDEN / "ctd_ild.html").read_text(encoding="utf-8")


def test_cli_render_of_a_protocol_with_errors_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.crit"
    bad.write_text('protocol p\ninclusion I1 "t" met when agee > 1\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["render", str(bad)])
    assert result.exit_code == 1
    assert "error[CRIT005]: unknown name 'agee'" in result.output


def test_pygments_finds_the_lexer_and_it_lexes_ctd_ild_cleanly() -> None:
    lexer = get_lexer_by_name("crit")
    assert isinstance(lexer, CritLexer)
    tokens = list(lexer.get_tokens(CTD_ILD.read_text(encoding="utf-8")))
    assert not [value for token, value in tokens if token is Error]
    kinds = {value: token for token, value in tokens}
    assert str(kinds["inclusion"]) == "Token.Keyword.Declaration"
    assert str(kinds["'mo'"]) == "Token.Literal.String.Symbol"


@pytest.mark.parametrize(
    ("text", "markdown"),
    [
        ('Adults.\n{: onclick="alert(1)" }', 'Adults. \\{: onclick="alert(1)" \\}'),
        ('!!! note "x"', '&#33;!! note "x"'),
        ("# heading", "&#35; heading"),
        ("> quote", "&gt; quote"),
        ("- item", "&#45; item"),
        ("1. first", "1&#46; first"),
        ("1.4 mg/dL", "1.4 mg/dL"),
        ("~~~\ncode", "&#126;~~ code"),
        ("[x](javascript:alert(1))", "\\[x\\](javascript:alert(1))"),
        ("a  b\u2028c\rd", "a b c d"),
        ("T{{ 7*7 }}T", "T\\{\\{ 7\\*7 \\}\\}T"),
    ],
)
def test_markdown_escape_keeps_text_inline_and_inert(text: str, markdown: str) -> None:
    assert _markdown(text) == markdown


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ('a"] --> b["c', "a#quot;] --#gt; b[#quot;c"),
        (
            'x\n```\nclick n href "javascript:x"',
            "x #96;#96;#96; click n href #quot;javascript:x#quot;",
        ),
        ("#lt;img#gt;", "#35;lt;img#35;gt;"),
    ],
)
def test_mermaid_label_is_one_line_with_entity_codes(text: str, label: str) -> None:
    assert _mermaid(text) == label


def test_hostile_page_through_markdown_has_no_live_markup() -> None:
    """The protocol page as the site's Markdown extensions read it (the browser test
    in test_site.py does the same through a real mkdocs build)."""
    markdown = pytest.importorskip("markdown")
    text = (Path(__file__).parent / "cases" / "hostile.crit").read_text(encoding="utf-8")
    checked, diagnostics = check_source(text, "hostile.crit")
    assert checked is not None, diagnostics
    for fmt in ("md", "plain"):
        html = markdown.markdown(
            render_document(checked, fmt),
            extensions=["attr_list", "md_in_html", "admonition", "tables", "toc"],
        )
        assert re.search(r"<[^>]*\son\w+\s*=", html) is None, html
        assert "<script" not in html
        assert re.search(r"(href|src)\s*=\s*[\"']?\s*javascript:", html) is None
        assert "pwned" in html  # shown, as text


# ---- the screening worksheet -----------------------------------------------------------


def test_worksheet_gives_each_exclusion_the_answer_that_keeps_the_patient_in() -> None:
    doc = document(ctd_ild())
    keeps = {c.id: describe_reading(c.keeps_in) for c in doc.exclusions}
    assert keeps["E1"] == (
        "Willing to sign the informed consent form after a detailed explanation: yes"
    )
    assert keeps["E2"].endswith("steroids and immunosuppressants: no")
    assert keeps["E4"] == (
        "All of the following:\n"
        "- a. Abnormal liver function: at least one of the following:\n"
        f"  - Serum GOT (AST) at most 2 {TIMES} 40 U/L and serum GPT (ALT) at most 2 {TIMES} 40 U/L\n"
        "  - Raised GOT/GPT caused by inflammatory myopathy\n"
        "- b. Poor kidney function: serum creatinine at most 1.4 mg/dL"
    )
    assert keeps["E5"] == (
        "All of the following:\n- HIV infection or AIDS: no\n"
        "- Notifiable infectious disease (Ministry of Health announcements): no"
    )
    assert all(c.keeps_in is None for c in doc.inclusions)


def describe_reading(reading: Reading | None) -> str:
    assert reading is not None
    return "\n".join(text_lines(reading))


def test_worksheet_has_a_row_with_the_formula_for_each_computed_value() -> None:
    doc = document(ctd_ild())
    i2 = next(c for c in doc.inclusions if c.id == "I2")
    rows = {v.name: v for v in i2.computed}
    assert list(rows) == ["fvc_decline", "dlco_decline", "steroid_dose_per_weight"]
    fvc = rows["fvc_decline"]
    assert fvc.formula == (
        "(forced vital capacity at baseline \N{MINUS SIGN} forced vital capacity now) "
        "\N{DIVISION SIGN} forced vital capacity at baseline \N{MULTIPLICATION SIGN} 100%"
    )
    assert (fvc.unit, fvc.inputs) == ("%", ("fvc_baseline", "fvc_current"))
    dose = rows["steroid_dose_per_weight"]
    assert (
        dose.formula == "Daily steroid dose (prednisolone equivalent) \N{DIVISION SIGN} body weight"
    )
    assert dose.unit == "mg/kg/d"  # the unit the criterion compares it in
    i4 = next(c for c in doc.inclusions if c.id == "I4")
    (woman,) = i4.computed
    assert (woman.kind, woman.formula) == ("boolean", "Sex is female and of childbearing potential")
    html = render_document(ctd_ild(), "html")
    assert "worked out under I4" in html  # I5 and E3 point to I4's row


def test_worksheet_records_source_date_subject_and_sign_off() -> None:
    html = render_document(ctd_ild(), "html")
    for heading in ("Subject ID", "Screening number", "Source document", "Date of value"):
        assert f"<th>{heading}</th>" in html
    assert "<th>Investigator (name)</th>" in html and "<th>Signature</th>" in html
    assert 'content: "Page " counter(page) " of " counter(pages)' in html
    assert "Protocol ctd\\00005f ild\\00002c  version 1\\00002e 0\\00002e 0" in html


def test_worksheet_asks_yes_or_no_for_an_attestation() -> None:
    doc = document(ctd_ild())
    consent = next(e for e in doc.elements if e.name == "willing_to_consent")
    assert consent.choices == ("yes", "no")
    assert consent.attesters == ("the treating physician",)
    html = render_document(ctd_ild(), "html")
    assert "confirmed by the treating physician:" in html


def test_css_string_cannot_leave_its_string() -> None:
    assert _css_string('1.0"; } body { display: none } </style>') == (
        '"1\\00002e 0\\000022 \\00003b  \\00007d  body \\00007b  display\\00003a  none '
        '\\00007d  \\00003c \\00002f style\\00003e "'
    )


@pytest.mark.parametrize(
    ("value", "limit", "shown"),
    [
        ("29.996", "30", "29.996"),
        ("30.004", "30", "30.004"),
        ("29.5", "30", "29.5"),
        ("16.129032", "10", "16.13"),
        ("0.99999", "1", "0.99999"),
        ("30", "30", "30"),
        ("6.6666666", None, "6.67"),
    ],
)
def test_rounded_never_crosses_the_limit(value: str, limit: str | None, shown: str) -> None:
    bound = None if limit is None else Decimal(limit)
    assert format(rounded(Decimal(value), bound), "f") == shown


@given(
    st.decimals(min_value=-(10**6), max_value=10**6, places=8, allow_nan=False),
    st.decimals(min_value=-(10**6), max_value=10**6, places=3, allow_nan=False),
)
def test_rounded_value_sits_on_the_same_side_of_its_limit(value: Decimal, limit: Decimal) -> None:
    shown = rounded(value, limit)
    assert (shown > limit, shown == limit, shown < limit) == (
        value > limit,
        value == limit,
        value < limit,
    )


def test_arithmetic_on_data_written_inside_a_criterion_gets_a_row_too() -> None:
    checked = checked_with(
        "data\n  weight: quantity 'kg'\n    label \"Body weight\"\n"
        "  height: quantity 'm'\n    label \"Height\"\n"
        "inclusion I1 \"Obese\" met when weight / (height * height) >= 30 'kg/m2'"
        " and got <= 2 * uln"
        " and decline from fvc_baseline to fvc_current >= 5%"
    )
    (criterion,) = document(checked).inclusions
    rows = [(v.label, v.formula, v.unit, v.inputs) for v in criterion.computed]
    assert rows == [
        (
            f"Body weight {DIVIDE} (height {TIMES} height)",
            f"Body weight {DIVIDE} (height {TIMES} height)",
            "kg/m2",
            ("weight", "height"),
        ),
        (
            "The percentage decline from FVC at baseline to FVC now",
            f"(FVC at baseline {MINUS} FVC now) {DIVIDE} FVC at baseline {TIMES} 100%",
            "%",
            ("fvc_baseline", "fvc_current"),
        ),
    ]  # 2 * uln is constants only: read, not computed
