"""The checker: golden diagnostics for a corpus of broken protocols, and focused cases.

Each `tests/cases/invalid/NAME.crit` has one problem; `NAME.expected` holds what
`critlang check tests/cases/invalid/NAME.crit` prints on stdout. Rewrite the
goldens with `CRITLANG_UPDATE_GOLDEN=1 pytest tests/test_check.py`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from critlang.check import check_source
from critlang.cli import main
from critlang.diagnostics import Diagnostic, render
from critlang.parser import parse

ROOT = Path(__file__).resolve().parent.parent
INVALID = ROOT / "tests" / "cases" / "invalid"
CASES = sorted(INVALID.glob("*.crit"))
CTD_ILD = ROOT / "protocols" / "ctd_ild.crit"
UPDATE = os.environ.get("CRITLANG_UPDATE_GOLDEN") == "1"

# Cases whose one problem is worth a warning, not an error.
WARNING_CASES = {
    "unused_element",
    "unused_definition",
    "score_group_single",
    "ordinal_below_lowest",
    "during_over_measurements",
    "code_list_exception_not_in_list",
}


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def diagnose(path: Path) -> tuple[str, list[Diagnostic]]:
    """The diagnostics of a case, named by its path from the repository root."""
    text = path.read_text(encoding="utf-8")
    _, diagnostics = check_source(text, relative(path))
    return text, diagnostics


def rendered(path: Path) -> str:
    """What `critlang check` prints on stdout: each diagnostic, then a newline."""
    text, diagnostics = diagnose(path)
    return "".join(render(d, text) + "\n" for d in diagnostics)


def codes_in_source() -> set[str]:
    sources = [ROOT / "src" / "critlang" / name for name in ("parser.py", "check.py")]
    return {code for path in sources for code in re.findall(r"CRIT0\d\d", path.read_text())}


# ---- the corpus -------------------------------------------------------------


def test_corpus_is_large_and_covers_every_diagnostic_code() -> None:
    assert len(CASES) >= 30
    reported = {d.code for case in CASES for d in diagnose(case)[1]}
    assert codes_in_source() - reported == set()


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.stem)
def test_diagnostics_match_golden(case: Path) -> None:
    expected_file = case.with_suffix(".expected")
    actual = rendered(case)
    if UPDATE:
        expected_file.write_text(actual, encoding="utf-8")
    assert expected_file.exists(), (
        f"no golden; run with CRITLANG_UPDATE_GOLDEN=1 to write {expected_file}"
    )
    assert actual == expected_file.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.stem)
def test_each_case_has_one_problem(case: Path) -> None:
    _, diagnostics = diagnose(case)
    assert len({d.code for d in diagnostics}) == 1, [d.message for d in diagnostics]
    if case.stem in WARNING_CASES:
        assert not any(d.is_error for d in diagnostics)
    else:
        assert any(d.is_error for d in diagnostics)
    for diagnostic in diagnostics:
        assert diagnostic.span.file == relative(case)


def test_goldens_have_no_orphans() -> None:
    stems = {case.stem for case in CASES}
    assert {path.stem for path in INVALID.glob("*.expected")} == stems


# ---- the command line --------------------------------------------------------


def test_cli_prints_the_golden_and_exits_1_on_a_broken_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)
    case = INVALID / "undefined_name.crit"
    result = CliRunner().invoke(main, ["check", relative(case)])
    assert result.exit_code == 1
    assert result.stdout == case.with_suffix(".expected").read_text(encoding="utf-8")


def test_cli_exits_0_on_a_file_with_only_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(main, ["check", relative(INVALID / "unused_element.crit")])
    assert result.exit_code == 0
    assert "warning[CRIT010]" in result.stdout


def test_cli_exits_0_on_ctd_ild(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(main, ["check", relative(CTD_ILD)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""


# ---- focused checks ------------------------------------------------------------

KIDNEY = """
protocol kidney
data
  creatinine: quantity 'mg/dL' molar mass 113.12 'g/mol'
  urea: quantity 'mg/dL'
inclusion I1 "Kidney function"
  met when {condition}
"""


def kidney(condition: str) -> list[Diagnostic]:
    _, diagnostics = check_source(KIDNEY.format(condition=condition), "kidney.crit")
    return diagnostics


def test_unknown_name_suggests_the_closest_declared_name() -> None:
    (diagnostic,) = kidney("creatinin > 1.4 'mg/dL' and urea < 40 'mg/dL'")
    assert (diagnostic.code, diagnostic.message) == ("CRIT005", "unknown name 'creatinin'")
    assert diagnostic.hint == "did you mean 'creatinine'?"
    assert (diagnostic.span.line, diagnostic.span.column) == (7, 12)


def test_mass_and_molar_concentrations_compare_through_a_molar_mass() -> None:
    assert kidney("creatinine > 123.8 'umol/L' and urea < 40 'mg/dL'") == []


def test_molar_concentration_is_rejected_without_a_molar_mass() -> None:
    (diagnostic,) = kidney("creatinine > 1.4 'mg/dL' and urea < 7 'mmol/L'")
    assert diagnostic.code == "CRIT007"
    assert "'mg/dL' and 'mmol/L'" in diagnostic.message
    assert diagnostic.span.column == len("  met when creatinine > 1.4 'mg/dL' and ") + 1


def test_a_definition_cycle_is_reported_once() -> None:
    source = """
protocol loop
data
  age: quantity 'a'
define a = b and age > 1 'a'
define b = c
define c = a
inclusion I1 "Loop" met when a and b
exclusion E1 "Loop again" met when not c
"""
    _, diagnostics = check_source(source, "loop.crit")
    assert [(d.code, d.message) for d in diagnostics] == [
        ("CRIT009", "definition 'a' depends on itself: a -> b -> c -> a")
    ]


def test_a_clean_protocol_is_returned_checked() -> None:
    checked, diagnostics = check_source(CTD_ILD.read_text(encoding="utf-8"), "ctd_ild.crit")
    assert diagnostics == []
    assert checked is not None
    assert checked.element_types["creatinine"].molar_mass is not None


@pytest.mark.parametrize(
    "condition",
    [
        "temperature * weight > 3 'kg'",
        "temperature > 100 '[degF]'",
        "loudness > 3 '1'",
        "score > 3 and loudness > 3 'dB'",
    ],
)
def test_unusual_units_give_diagnostics_not_tracebacks(condition: str) -> None:
    source = f"""
protocol units
data
  temperature: quantity 'Cel'
  weight: quantity 'kg'
  loudness: quantity 'dB'
  score: quantity '{{score}}'
inclusion I1 "Units" met when {condition}
"""
    _, diagnostics = check_source(source, "units.crit")
    errors = [d for d in diagnostics if d.is_error]
    if condition.startswith("score"):
        assert errors == []
    else:
        assert [d.code for d in errors] == ["CRIT007"]


def test_number_next_to_percentage_needs_a_percent_sign() -> None:
    source = """
protocol lungs
data
  fvc_baseline: quantity 'L'
  fvc_current: quantity 'L'
inclusion I1 "Decline" met when decline from fvc_baseline to fvc_current > {limit}
"""
    _, accepted = check_source(source.format(limit="10%"), "lungs.crit")
    _, rejected = check_source(source.format(limit="10"), "lungs.crit")
    assert accepted == []
    assert [(d.code, d.hint) for d in rejected] == [
        ("CRIT007", "write the unit after the number, as in 10%")
    ]


# ---- the language reference ---------------------------------------------------

LANGUAGE_DOC = ROOT / "docs" / "language.md"
DECLARATION = re.compile(r"\s*(data|constant|define|inclusion|exclusion|example|codes)\b")


def test_language_doc_lists_exactly_the_diagnostic_codes() -> None:
    table = re.findall(r"^\| (CRIT\d{3}) \|", LANGUAGE_DOC.read_text(encoding="utf-8"), re.M)
    assert sorted(table) == sorted(codes_in_source())


def doc_snippets() -> list[str]:
    return re.findall(r"```crit\n(.*?)```", LANGUAGE_DOC.read_text(encoding="utf-8"), re.S)


def as_protocol(snippet: str) -> str:
    """A snippet as a whole protocol: declarations as they are, expressions as definitions."""
    if re.search(r"^protocol ", snippet, re.M):
        return snippet
    if DECLARATION.match(snippet):
        return "protocol doc\n" + snippet
    lines = [line for line in snippet.splitlines() if line.strip()]
    return "protocol doc\n" + "".join(f"define e{n} = {line}\n" for n, line in enumerate(lines))


@pytest.mark.parametrize("snippet", doc_snippets())
def test_language_doc_snippets_parse(snippet: str) -> None:
    parse(as_protocol(snippet), "language.md")
