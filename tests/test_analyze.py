"""Protocol analysis with z3: findings, and witnesses the compiled evaluator confirms."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("z3")

from critlang import compile_source
from critlang.analyze import Finding, Report, analyze, boundary_examples
from critlang.cli import main
from critlang.evaluate import Protocol
from critlang.protocol_tests import run_example

ROOT = Path(__file__).resolve().parent.parent
CTD_ILD = ROOT / "protocols" / "ctd_ild.crit"
E2_LITERAL = ROOT / "tests" / "cases" / "analyze" / "ctd_ild_e2_literal.crit"

BANDS = """\
protocol bands

data
  fvc_baseline: quantity 'L' range 0.1 to 10
  fvc_current: quantity 'L' range 0.1 to 10
  dlco_baseline: quantity 'mL/min/mm[Hg]' range 0.5 to 80
  dlco_current: quantity 'mL/min/mm[Hg]' range 0.5 to 80

define fvc_decline = decline from fvc_baseline to fvc_current
define dlco_decline = decline from dlco_baseline to dlco_current

inclusion I1 "Progressive fibrosis"
  met when any of [
    a "Large decline": fvc_decline > 10%,
    b "Moderate decline": fvc_decline between 5% and {upper} and dlco_decline > 15%
  ]
"""


def load(path: Path) -> tuple[Protocol, str]:
    text = path.read_text(encoding="utf-8")
    return compile_source(text, str(path)), text


@pytest.fixture(scope="module")
def ctd_ild() -> tuple[Protocol, Report]:
    protocol, _ = load(CTD_ILD)
    return protocol, analyze(protocol)


@pytest.fixture(scope="module")
def e2_literal() -> tuple[Protocol, Report]:
    protocol, _ = load(E2_LITERAL)
    return protocol, analyze(protocol)


def findings(report: Report, code: str) -> list[Finding]:
    return [f for f in report.findings if f.diagnostic.code == code]


def test_literal_e2_is_reported_as_unable_to_fire(e2_literal: tuple[Protocol, Report]) -> None:
    protocol, report = e2_literal
    (finding,) = [f for f in findings(report, "CRIT104") if "E2" in f.diagnostic.message]
    diagnostic = finding.diagnostic
    assert diagnostic.severity == "warning" and not diagnostic.is_error
    assert diagnostic.message.startswith("exclusion E2 can never exclude a patient")
    assert "I1 already rules the patient out" in diagnostic.message
    assert E2_LITERAL.read_text().splitlines()[diagnostic.span.line - 1].startswith("exclusion E2 ")
    witness = finding.witness
    assert witness is not None and witness.confirmed
    assert witness.record["improved_after_6_months"] is True
    assert not 20 <= witness.record["age"] <= 80
    result = protocol.evaluate(witness.record)
    values = {c.id: c.value for c in result.criteria}
    assert (values["E2"], values["I1"], result.status) == (True, False, "ineligible")


def test_outside_a_range_is_not_a_gap(e2_literal: tuple[Protocol, Report]) -> None:
    report = e2_literal[1]
    assert findings(report, "CRIT108") == []
    assert [f for f in report.findings if f.diagnostic.message.startswith("in E2")] == []


def test_ctd_ild_has_eligible_patients(ctd_ild: tuple[Protocol, Report]) -> None:
    protocol, report = ctd_ild
    assert report.eligible is not None and report.eligible.confirmed
    assert protocol.evaluate(report.eligible.record).status == "eligible"
    assert findings(report, "CRIT101") == []
    assert report.inconclusive == ()


def test_every_witness_is_confirmed_by_the_evaluator(
    ctd_ild: tuple[Protocol, Report], e2_literal: tuple[Protocol, Report]
) -> None:
    for path, (_, report) in ((CTD_ILD, ctd_ild), (E2_LITERAL, e2_literal)):
        assert report.confirmed
        fresh = compile_source(path.read_text(encoding="utf-8"), str(path))
        for finding in report.findings:
            witness = finding.witness
            assert witness is not None, finding.diagnostic
            result = fresh.evaluate(witness.record)
            by_criterion = {c.id: c.value_word for c in result.criteria}
            for claim in witness.claims:
                assert claim.holds, (finding.diagnostic.message, claim)
                if claim.label in by_criterion:
                    assert by_criterion[claim.label] == claim.predicted
                if claim.label == "status":
                    assert result.status == claim.predicted


def test_i2_alternatives_overlap(ctd_ild: tuple[Protocol, Report]) -> None:
    protocol, report = ctd_ild
    (finding,) = [f for f in findings(report, "CRIT107") if "of I2" in f.diagnostic.message]
    assert finding.diagnostic.message == (
        "the alternatives of I2 overlap: one patient can meet a, b and c at once"
    )
    assert finding.witness is not None
    result = protocol.evaluate(finding.witness.record)
    (i2,) = [c for c in result.criteria if c.id == "I2"]
    assert [p.value for p in i2.parts] == [True, True, True]


def test_i2_treatment_bands_of_a_and_b_overlap(ctd_ild: tuple[Protocol, Report]) -> None:
    (finding,) = findings(ctd_ild[1], "CRIT109")
    message = finding.diagnostic.message
    assert message.startswith("in I2, the bands of")
    assert "(in a)" in message and "(in b)" in message
    assert finding.witness is not None and finding.witness.record["treatment_duration"] > 24


def test_i2_fvc_bands_leave_no_gap(ctd_ild: tuple[Protocol, Report]) -> None:
    report = ctd_ild[1]
    assert findings(report, "CRIT108") == []
    (finding,) = findings(report, "CRIT110")
    message = finding.diagnostic.message
    assert message.startswith("in I2 a, the bands of")
    assert "exactly 10% belongs to '5% to 10%'" in message
    witness = finding.witness
    assert witness is not None and witness.confirmed
    baseline, current = witness.record["fvc_baseline"], witness.record["fvc_current"]
    assert (baseline - current) * 100 / baseline == 10


def test_e3_b_and_i5_say_the_same_thing(ctd_ild: tuple[Protocol, Report]) -> None:
    report = ctd_ild[1]
    (sub,) = findings(report, "CRIT105")
    assert sub.diagnostic.message.startswith("sub-criterion E3 b never settles E3")
    assert "I5 is not met" in sub.diagnostic.message
    (implied,) = findings(report, "CRIT104")
    assert implied.diagnostic.message.startswith("inclusion I5 is implied by the others")


def test_a_gap_between_bands_is_reported() -> None:
    protocol = compile_source(BANDS.format(upper="9%"))
    report = analyze(protocol)
    (gap,) = findings(report, "CRIT108")
    assert "more than 9% and at most 10% is in none of them" in gap.diagnostic.message
    assert gap.witness is not None and gap.witness.confirmed
    baseline, current = gap.witness.record["fvc_baseline"], gap.witness.record["fvc_current"]
    assert 9 < (baseline - current) * 100 / baseline <= 10


def test_bands_sharing_a_bound_overlap() -> None:
    protocol = compile_source(BANDS.format(upper="10%").replace("> 10%", ">= 10%"))
    (overlap,) = findings(analyze(protocol), "CRIT109")
    assert "exactly 10% is both 'at least 10%' (in a) and '5% to 10%' (in b)" in (
        overlap.diagnostic.message
    )
    assert overlap.witness is not None and overlap.witness.confirmed


def test_contradictory_criteria_leave_no_eligible_patient() -> None:
    text = """\
protocol p
data
  age: quantity 'a' range 0 to 130
inclusion I1 "Adult" met when age >= 18 'a'
inclusion I2 "Child" met when age < 12 'a'
"""
    report = analyze(compile_source(text))
    assert report.eligible is None
    (finding,) = findings(report, "CRIT101")
    assert finding.diagnostic.message == (
        "no patient can be eligible: I1 and I2 cannot all be passed together"
    )
    assert finding.witness is not None and finding.witness.confirmed


def test_boundary_examples_run_as_protocol_tests(ctd_ild: tuple[Protocol, Report]) -> None:
    protocol = ctd_ild[0]
    proposals = boundary_examples(protocol)
    titles = [p.example.title for p in proposals]
    assert "I1: age 80 'a' (age between 20 'a' and 80 'a')" in titles
    assert "I1: age 81 'a', just above 80 'a' (age between 20 'a' and 80 'a')" in titles
    assert "I2 a: fvc_decline 10% (fvc_decline > 10%)" in titles
    for proposal in proposals:
        assert run_example(protocol, proposal.example).passed, proposal.text()
    by_title = {p.example.title: p.example.expect.text for p in proposals}
    assert by_title["I1: age 81 'a', just above 80 'a' (age between 20 'a' and 80 'a')"] == (
        "ineligible"
    )


def test_cli_renders_findings_with_witnesses() -> None:
    result = CliRunner().invoke(main, ["analyze", str(E2_LITERAL)])
    assert result.exit_code == 0, result.output
    assert "warning[CRIT104]: exclusion E2 can never exclude" in result.output
    assert "  witness: {" in result.output
    assert "the compiled evaluator confirms:" in result.output
    assert "every witness confirmed by the compiled evaluator" in result.output


def test_cli_examples_are_critlang(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["analyze", "--examples", str(CTD_ILD)])
    assert result.exit_code == 0, result.output
    assert "boundary example(s), each confirmed by the compiled evaluator" in result.stderr
    text = CTD_ILD.read_text(encoding="utf-8") + "\n" + result.stdout
    path = tmp_path / "with_boundaries.crit"
    path.write_text(text)
    tested = CliRunner().invoke(main, ["test", str(path)])
    assert tested.exit_code == 0, tested.output


LIST = """\
protocol many_routes
data
  x: number range 0 to 100
inclusion I1 "One of eight routes"
  met when any of [
{items}
  ]
"""


def routes(*conditions: str) -> str:
    return LIST.format(
        items=",\n".join(f"    {'abcdefgh'[n]}: {c}" for n, c in enumerate(conditions))
    )


def test_eight_overlapping_alternatives_are_one_finding() -> None:
    protocol = compile_source(routes(*(f"x > {n}" for n in range(1, 9))))
    (finding,) = findings(analyze(protocol), "CRIT107")
    assert finding.diagnostic.message == (
        "the alternatives of I1 overlap: one patient can meet a, b, c, d, e, f, g and h at once"
    )
    witness = finding.witness
    assert witness is not None and witness.confirmed and witness.record["x"] > 8
    assert [c.label for c in witness.claims] == [f"I1 {n}" for n in "abcdefgh"]


def test_overlapping_alternatives_are_named_in_groups() -> None:
    conditions = [
        "x between 0 and 10",
        "x between 5 and 15",
        "x between 20 and 30",
        "x between 25 and 35",
        "x between 40 and 45",
        "x between 50 and 55",
        "x between 60 and 65",
        "x between 70 and 75",
    ]
    (finding,) = findings(analyze(compile_source(routes(*conditions))), "CRIT107")
    assert finding.diagnostic.message == (
        "the alternatives of I1 overlap: one patient can meet each of these groups at once: "
        "a and b; c and d"
    )
    assert finding.witness is not None and finding.witness.confirmed


def test_a_part_that_does_not_apply_is_left_out_of_its_list() -> None:
    # The IR's semantics: a part whose `applies when` is false is left out of its
    # list, so this `any of` is false for a child with x = 1; the analysis must agree.
    text = """\
protocol parts
data
  adult: boolean
  x: number range 0 to 10
inclusion I1 "Either route"
  met when any of [
    a applies when adult: x > 5,
    b: x > 8
  ]
"""
    protocol = compile_source(text)
    report = analyze(protocol)
    assert report.eligible is not None and report.eligible.confirmed
    record = report.eligible.record
    assert record["x"] > 8 or (record["adult"] and record["x"] > 5)
    assert protocol.evaluate({"adult": False, "x": 1}).status == "ineligible"
    assert report.confirmed


NEVER_FIRES = """\
protocol p
data
  age: quantity 'a' range 0 to 130
inclusion I1 "Adult" met when age >= 18 'a'
exclusion E1 "Older than possible" met when age > 150 'a'
"""

CONTRADICTION = """\
protocol p
data
  age: quantity 'a' range 0 to 130
inclusion I1 "Adult" met when age >= 18 'a'
inclusion I2 "Child" met when age < 12 'a'
"""


def test_an_exclusion_that_never_fires_blocks() -> None:
    report = analyze(compile_source(NEVER_FIRES))
    (finding,) = findings(report, "CRIT103")
    assert finding.diagnostic.message == (
        "exclusion E1 can never fire: it is absent whatever the record says"
    )
    assert finding.diagnostic.is_error
    assert report.blocking == (finding,)


@pytest.mark.parametrize("text", [NEVER_FIRES, CONTRADICTION], ids=["never-fires", "nobody"])
def test_cli_gate_fails_unless_warn_only(tmp_path: Path, text: str) -> None:
    path = tmp_path / "p.crit"
    path.write_text(text)
    gated = CliRunner().invoke(main, ["analyze", str(path)])
    assert gated.exit_code == 1, gated.output
    assert "error[CRIT10" in gated.stdout
    assert "1 blocking" in gated.stderr
    allowed = CliRunner().invoke(main, ["analyze", "--warn-only", str(path)])
    assert allowed.exit_code == 0, allowed.output
    assert allowed.stdout == gated.stdout


def test_cli_passes_a_protocol_without_blocking_findings() -> None:
    result = CliRunner().invoke(main, ["analyze", str(CTD_ILD)])
    assert result.exit_code == 0, result.output
    assert "0 blocking" in result.stderr
