"""Protocol tests: example patients run through the compiled evaluator, from the
API, the `critlang test` command and the pytest plugin."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import critlang
from critlang import compile_source
from critlang import syntax as s
from critlang.cli import main
from critlang.fmt import format_source
from critlang.parser import parse
from critlang.protocol_tests import example_record, failure_details, run_file, run_source
from tests.jsengine import NODE, run_node_batches, run_python

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


# ---- histories, codes and partial dates in examples ---------------------------------------

HISTORIES = """\
protocol histories
  as of screening

data
  screening: date
  born: date
  creatinine: history of quantity 'mg/dL'
  diagnoses: history of codes complete
  drugs: history of medications 'mg/d' complete
  primary: code

codes ild "Interstitial lung disease" icd10cm ("J84.*")
codes mmf "Mycophenolate" atc ("L04AA06")

inclusion I1 "Adult" met when years since born >= 18
inclusion I2 "ILD on the problem list" met when any diagnoses where its code in ild
inclusion I3 "Kidney function" met when latest creatinine within 90 days <= 1.4 'mg/dL'
exclusion E1 "Mycophenolate above 2 g/d in the last 3 months"
  met when any drugs within 3 months where its code in mmf and its dose > 2000 'mg/d'
exclusion E2 "Primary diagnosis other than ILD" met when not primary in ild

example "ILD, creatinine 12 mg/L, mycophenolate 3 g/d stopped 4 months ago" {
  screening = 2026-06-15,
  born = 1960-05,
  creatinine = [
    # the older, higher value is not the latest
    {date = 2026-04-01, value = 1.6 'mg/dL', low = 0.6 'mg/dL', high = 1.2 'mg/dL'},
    {date = 2026-06-01, value = 12 'mg/L', source = "Observation/\\"7\\""},  # 1.2 mg/dL
  ],
  diagnoses = [{date = 2019-05-02, code = icd10cm "J84.10"}],
  drugs = [{start = 2025-01-01, end = 2026-02-10, code = atc "L04AA06", dose = 3000 'mg/d'}],
  primary = icd10cm "J84.10",
} expect eligible

example "Mycophenolate 3 g/d stopped 2 months ago" {
  screening = 2026-06-15,
  drugs = [{start = 2025-01-01, end = 2026-04-15, code = atc "L04AA06", dose = 3000 'mg/d'}]
} expect ineligible

example "No diagnosis on a complete problem list" {
  diagnoses = []
} expect ineligible

example "Born in 2008: 17 or 18 on the screening date" {
  screening = 2026-06-15,
  born = 2008,
  creatinine = [{date = 2026-06-01, value = 1}],
  diagnoses = [{date = 2019-05-02, code = icd10cm "J84.10"}],
  drugs = [],
  primary = icd10cm "J84.10"
} expect undetermined
"""


def test_histories_codes_and_partial_dates_become_a_record_in_the_record_format() -> None:
    protocol = parse(HISTORIES)
    first, _, empty, partial = protocol.examples
    assert example_record(first, protocol) == {
        "id": "ILD, creatinine 12 mg/L, mycophenolate 3 g/d stopped 4 months ago",
        "screening": "2026-06-15",
        "born": "1960-05",
        "creatinine": [
            {
                "date": "2026-04-01",
                "value": Decimal("1.6"),
                "low": Decimal("0.6"),
                "high": Decimal("1.2"),
                "unit": "mg/dL",
            },
            {
                "date": "2026-06-01",
                "value": Decimal(12),
                "source": 'Observation/"7"',
                "unit": "mg/L",
            },
        ],
        "diagnoses": [{"date": "2019-05-02", "code": "icd10cm:J84.10"}],
        "drugs": [
            {
                "start": "2025-01-01",
                "end": "2026-02-10",
                "code": "atc:L04AA06",
                "dose": Decimal(3000),
                "unit": "mg/d",
            }
        ],
        "primary": "icd10cm:J84.10",
    }
    assert example_record(empty, protocol)["diagnoses"] == []
    # A year alone is a number to the parser; the data dictionary makes it a date, and a
    # bare value is in the history's unit.
    record = example_record(partial, protocol)
    assert record["born"] == "2008"
    assert record["creatinine"] == [{"date": "2026-06-01", "value": Decimal(1), "unit": "mg/dL"}]


def test_history_examples_pass_and_a_failure_cites_the_entry() -> None:
    outcome = run_source(HISTORIES, "histories.crit")
    assert outcome.usable, outcome.diagnostics
    assert [(o.result.status, o.passed) for o in outcome.outcomes] == [
        ("eligible", True),
        ("ineligible", True),
        ("ineligible", True),
        ("undetermined", True),
    ]
    wrong = HISTORIES.replace("end = 2026-04-15", "end = 2026-03-01")
    failed = [o for o in run_source(wrong, "histories.crit").outcomes if not o.passed]
    assert [o.example.title for o in failed] == ["Mycophenolate 3 g/d stopped 2 months ago"]
    assert failed[0].result.status == "undetermined"
    details = failure_details(failed[0])
    assert "E1 Mycophenolate above 2 g/d in the last 3 months: false" in details


def test_a_partial_birth_date_that_straddles_the_limit_is_unknown() -> None:
    outcome = run_source(HISTORIES, "histories.crit")
    partial = outcome.outcomes[3]
    (adult,) = [c for c in partial.result.criteria if c.id == "I1"]
    assert adult.value_word == "unknown"
    assert partial.result.missing == ()
    # The same patient born in January 2008 is 18 on 2026-06-15: eligible.
    known = run_source(HISTORIES.replace("born = 2008,", "born = 2008-01,"), "h.crit")
    assert known.outcomes[3].result.status == "eligible"


def test_history_examples_agree_on_every_engine() -> None:
    """The example patients of every protocol in protocols/, histories included, give the
    Python engine's answers in the generated JavaScript (the ELM engine: tests/cql)."""
    if NODE is None:
        pytest.skip("Node.js is not installed")
    batches = []
    for path in [*sorted((ROOT / "protocols").glob("*.crit")), None]:
        protocol = compile_source(HISTORIES) if path is None else critlang.load(path)
        examples = protocol.checked.protocol.examples
        records = [example_record(e, protocol.checked.protocol) for e in examples]
        batches.append((protocol, records))
    for (protocol, records), got in zip(batches, run_node_batches(batches), strict=True):
        assert got == run_python(protocol, records), protocol.name


@pytest.mark.parametrize("path", sorted((ROOT / "protocols").glob("*.crit")), ids=lambda p: p.stem)
def test_cli_passes_on_every_shipped_protocol(path: Path) -> None:
    result = CliRunner().invoke(main, ["test", str(path)])
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.output


def test_the_registered_trials_test_patients_with_histories() -> None:
    for name in ("ipf_pirfenidone", "t2d_metformin", "ra_csdmard", "ssc_ild"):
        examples = parse((ROOT / "protocols" / f"{name}.crit").read_text("utf-8")).examples
        with_history = [
            e for e in examples if any(isinstance(f.value, s.HistoryLit) for f in e.fields)
        ]
        assert len(with_history) >= 6, name
        assert {e.expect.text for e in with_history} >= {"eligible", "ineligible"}, name


def test_history_examples_format_canonically_and_keep_their_comments() -> None:
    formatted = format_source(HISTORIES)
    assert format_source(formatted) == formatted
    assert "    # the older, higher value is not the latest\n" in formatted
    assert 'source = "Observation/\\"7\\""},  # 1.2 mg/dL\n' in formatted
    assert '  diagnoses = [\n    {date = 2019-05-02, code = icd10cm "J84.10"},\n  ],\n' in formatted
    assert "  diagnoses = [],\n" not in formatted and "  diagnoses = []\n" in formatted
    assert [_fields(e) for e in parse(formatted).examples] == [
        _fields(e) for e in parse(HISTORIES).examples
    ]


def _fields(example: s.Example) -> dict[str, Any]:
    return example_record(example, parse(HISTORIES))


def test_pytest_runs_history_examples(tmp_path: Path) -> None:
    (tmp_path / "histories.crit").write_text(HISTORIES)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "histories.crit"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
    assert "histories.crit::Mycophenolate 3 g/d stopped 2 months ago PASSED" in result.stdout
