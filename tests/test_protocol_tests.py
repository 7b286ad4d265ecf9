"""Protocol tests: example patients run through the compiled evaluator, from the
API, the `critlang test` command and the pytest plugin."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner

from critlang import compile_source
from critlang.cli import main
from critlang.parser import parse
from critlang.protocol_tests import example_record, run_file, run_source

ROOT = Path(__file__).resolve().parent.parent
CTD_ILD = ROOT / "protocols" / "ctd_ild.crit"

SMALL = """\
protocol small

data
  age: quantity 'a' range 0 to 130
  creatinine: quantity 'mg/dL' range 0 to 40 molar mass 113.12 'g/mol'
  sex: one of (female, male)
  diagnoses: set of (ra, sle)
  consent: boolean

inclusion I1 "Adult" met when age between 20 'a' and 80 'a'
inclusion I2 "Consents" met when consent
exclusion E1 "Kidney" met when creatinine > 1.4 'mg/dL'

example "Adult who consents" {
  age = 45 'a',
  creatinine = 100 'umol/L',
  consent = true
} expect eligible

example "Creatinine 130 umol/L is above 1.4 mg/dL" {
  creatinine = 130 'umol/L'
} expect ineligible
"""
SECOND = 1 + SMALL.splitlines().index('example "Creatinine 130 umol/L is above 1.4 mg/dL" {')


def test_ctd_ild_examples_all_pass() -> None:
    outcome = run_file(CTD_ILD)
    assert outcome.usable
    assert len(outcome.outcomes) >= 10
    assert [o.example.title for o in outcome.outcomes if not o.passed] == []
    expected = {o.example.expect.text for o in outcome.outcomes}
    assert expected == {"eligible", "ineligible", "undetermined"}


def test_fields_become_a_record_in_the_integrator_format() -> None:
    text = SMALL.replace("consent = true", "consent = true,\n  sex = male,\n  diagnoses = (ra)")
    example = parse(text).examples[0]
    assert example_record(example) == {
        "id": "Adult who consents",
        "age": {"value": Decimal(45), "unit": "a"},
        "creatinine": {"value": Decimal(100), "unit": "umol/L"},
        "consent": True,
        "sex": "male",
        "diagnoses": ["ra"],
    }


def test_units_are_converted_by_the_record_intake() -> None:
    outcome = run_source(SMALL, "small.crit")
    assert [o.result.status for o in outcome.outcomes] == ["eligible", "ineligible"]
    assert all(o.passed for o in outcome.outcomes)


def test_a_failing_example_names_its_place_and_the_criterion_values() -> None:
    text = SMALL.replace("} expect ineligible", "} expect eligible")
    outcome = run_source(text, "small.crit")
    failed = [o for o in outcome.outcomes if not o.passed]
    assert len(failed) == 1
    assert failed[0].where == f"small.crit:{SECOND}:1"
    assert failed[0].result.status == "ineligible"


def test_a_field_outside_its_plausible_range_fails_the_example() -> None:
    text = SMALL.replace("age = 45 'a'", "age = 200 'a'")
    outcome = run_source(text, "small.crit")
    assert outcome.outcomes[0].result.status == "error"
    assert not outcome.outcomes[0].passed


def test_examples_agree_with_the_public_api() -> None:
    protocol = compile_source(SMALL)
    for example in protocol.checked.protocol.examples:
        assert protocol.evaluate(example_record(example)).status == example.expect.text


def test_cli_passes_on_ctd_ild() -> None:
    result = CliRunner().invoke(main, ["test", str(CTD_ILD)])
    assert result.exit_code == 0, result.output
    assert result.output.count(": pass: ") == len(run_file(CTD_ILD).outcomes)


def test_cli_fails_and_explains(tmp_path: Path) -> None:
    path = tmp_path / "small.crit"
    path.write_text(SMALL.replace("} expect ineligible", "} expect undetermined"))
    result = CliRunner().invoke(main, ["test", str(path)])
    assert result.exit_code == 1
    assert (
        f"{path}:{SECOND}:1: FAIL: 'Creatinine 130 umol/L is above 1.4 mg/dL': expected undetermined, got ineligible"
        in result.output
    )
    assert "E1 Kidney: true" in result.output
    assert "1 passed, 1 failed" in result.output


def test_cli_reports_a_protocol_with_errors(tmp_path: Path) -> None:
    path = tmp_path / "broken.crit"
    path.write_text(SMALL.replace("met when consent", "met when consnet"))
    result = CliRunner().invoke(main, ["test", str(path)])
    assert result.exit_code == 1
    assert "unknown name 'consnet'" in result.output


def test_pytest_collects_examples_from_crit_files(tmp_path: Path) -> None:
    (tmp_path / "good.crit").write_text(SMALL)
    (tmp_path / "bad.crit").write_text(SMALL.replace("} expect ineligible", "} expect eligible"))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "good.crit", "bad.crit"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "3 passed" in result.stdout and "1 failed" in result.stdout
    assert f"bad.crit:{SECOND}:1: FAIL" in result.stdout
    assert "E1 Kidney: true" in result.stdout


def test_crit_paths_setting_collects_a_directory(tmp_path: Path) -> None:
    (tmp_path / "protocols").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "protocols" / "small.crit").write_text(SMALL)
    (tmp_path / "elsewhere" / "ignored.crit").write_text(SMALL.replace("ineligible", "eligible"))
    (tmp_path / "pytest.ini").write_text("[pytest]\ncrit_paths = protocols\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "protocols/small.crit::Adult who consents PASSED" in result.stdout
    assert "ignored.crit" not in result.stdout
