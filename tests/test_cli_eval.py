"""`critlang eval`: records in several formats, results in several formats, exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from critlang.cli import main

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = str(ROOT / "protocols" / "ctd_ild.crit")
CRITERIA = ["I1", "I2", "I3", "I4", "I5", "E1", "E2", "E3", "E4", "E5"]

# Eligible: 45 years, systemic sclerosis, 30 months of treatment, FVC 3.0 -> 2.6 L.
ELIGIBLE_JSON = """{
  "id": "p1", "age": 45, "sex": "female", "ctd_diagnoses": ["systemic_sclerosis"],
  "treatment_duration": 30, "steroid_dose": 20, "body_weight": 60,
  "fvc_baseline": 3.0, "fvc_current": 2.6, "dlco_baseline": 20, "dlco_current": 19,
  "ct_lesions_enlarged": false, "symptom_duration": 400, "dyspnea_worsening": false,
  "oxygen_declining": false, "family_support_confirmed": true,
  "childbearing_potential": true, "pregnancy_test": "negative", "contraception": true,
  "pregnant": false, "breastfeeding": false, "willing_to_consent": true,
  "improved_after_6_months": false, "got": 30, "gpt": 30,
  "enzymes_due_to_myopathy": false, "creatinine": 0.9, "hiv": false,
  "notifiable_infection": false
}"""


def record(record_id: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ELIGIBLE_JSON)
    data.update(id=record_id, **changes)
    return {k: v for k, v in data.items() if v is not None}


ELIGIBLE = record("p1")
# Exactly 10% FVC decline (3.0 -> 2.7) is not more than 10%, and DLCO fell only 5%.
INELIGIBLE = record("p2", fvc_current=2.7)
UNDETERMINED = record("p3", age=None)
BROKEN = record("p4", sex="other")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["eval", PROTOCOL, *args])


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_json_object_text_format(tmp_path: Path) -> None:
    result = run(str(write_json(tmp_path / "one.json", ELIGIBLE)))
    assert result.exit_code == 0, result.stderr
    assert "p1: eligible" in result.stdout
    for criterion in CRITERIA:
        assert criterion in result.stdout
    # The text output ends with the run's summary; the other formats say it on stderr.
    assert result.stdout.rstrip().splitlines()[-1] == "1 record(s): 1 eligible"


def test_json_list_json_format(tmp_path: Path) -> None:
    path = write_json(tmp_path / "list.json", [ELIGIBLE, INELIGIBLE, UNDETERMINED])
    result = run(str(path), "--format", "json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert [(r["id"], r["status"]) for r in out] == [
        ("p1", "eligible"),
        ("p2", "ineligible"),
        ("p3", "undetermined"),
    ]
    assert [c["id"] for c in out[0]["criteria"]] == CRITERIA
    assert out[2]["missing"] == ["age"]
    i2 = out[1]["criteria"][1]
    assert i2["value"] == "false"
    assert "10%" in i2["reason"]
    assert "3 record(s): 1 eligible, 1 ineligible, 1 undetermined" in result.stderr


def test_empty_json_list_gives_an_empty_json_list(tmp_path: Path) -> None:
    result = run(str(write_json(tmp_path / "none.json", [])), "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []
    assert "0 record(s)" in result.stderr


def test_jsonl_in_jsonl_out_with_an_error(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    lines = [json.dumps(r) for r in (ELIGIBLE, BROKEN, INELIGIBLE)]
    path.write_text("\n".join([lines[0], "", lines[1], "{not json", lines[2]]) + "\n")
    result = run(str(path), "--format", "jsonl")
    assert result.exit_code == 2
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["id"], r["status"]) for r in out] == [
        ("p1", "eligible"),
        ("p4", "error"),
        ("4", "error"),
        ("p2", "ineligible"),
    ]
    assert "'sex'" in out[1]["error"] and "other" in out[1]["error"]
    assert "line 4" in out[2]["error"]
    assert "4 record(s): 1 eligible, 1 ineligible, 2 error" in result.stderr


def csv_cell(value: Any) -> str:
    if isinstance(value, list):
        return ";".join(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def csv_records(tmp_path: Path) -> Path:
    """c1 eligible; c2 creatinine 123.8 umol/L, above 1.4 mg/dL; c3 age empty."""
    columns = list(ELIGIBLE)
    header = ["creatinine [umol/L]" if c == "creatinine" else c for c in columns]
    rows = [
        {**ELIGIBLE, "id": "c1", "creatinine": "80"},
        {**ELIGIBLE, "id": "c2", "creatinine": "123.8"},
        {**ELIGIBLE, "id": "c3", "creatinine": "80", "age": ""},
    ]
    path = tmp_path / "records.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([csv_cell(row[c]) for c in columns] for row in rows)
    return path


def test_csv_in_csv_out(tmp_path: Path) -> None:
    result = run(str(csv_records(tmp_path)), "--format", "csv")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == ["id", "status", *CRITERIA, "missing", "error"]
    assert [(r["id"], r["status"]) for r in rows] == [
        ("c1", "eligible"),
        ("c2", "ineligible"),
        ("c3", "undetermined"),
    ]
    assert rows[1]["E4"] == "true"
    assert rows[2]["I1"] == "unknown" and rows[2]["missing"] == "age"
    assert rows[0]["missing"] == rows[0]["error"] == ""


@pytest.mark.parametrize("output_format", ["text", "json", "jsonl", "csv"])
def test_every_format_reports_errors_and_exits_2(tmp_path: Path, output_format: str) -> None:
    path = write_json(tmp_path / "mixed.json", [BROKEN, ELIGIBLE])
    result = run(str(path), "--format", output_format)
    assert result.exit_code == 2
    assert "p4" in result.stdout and "p1" in result.stdout
    assert "error" in result.stdout and "eligible" in result.stdout
    assert "2 record(s): 1 eligible, 1 error" in result.stdout + result.stderr


def test_output_file(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    path = write_json(tmp_path / "one.json", ELIGIBLE)
    result = run(str(path), "--format", "jsonl", "-o", str(target))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert json.loads(target.read_text())["status"] == "eligible"


def test_unknown_record_format_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "records.xml"
    path.write_text("<records/>")
    result = run(str(path))
    assert result.exit_code == 66
    assert "unknown record format" in result.stderr


def test_broken_protocol_exits_1_with_diagnostics(tmp_path: Path) -> None:
    protocol = tmp_path / "broken.crit"
    criterion = "exclusion E1 \"Kidney\" met when creatinin > 1.4 'mg/dL'"
    protocol.write_text(
        f"protocol broken\ndata\n  creatinine: quantity 'mg/dL'\n{criterion}\n",
        encoding="utf-8",
    )
    column = criterion.index("creatinin") + 1
    records = write_json(tmp_path / "one.json", {"creatinine": 1})
    result = CliRunner().invoke(main, ["eval", str(protocol), str(records)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"{protocol}:4:{column}: error[CRIT005]" in result.stderr
    assert "unknown name 'creatinin'" in result.stderr
    assert "did you mean 'creatinine'?" in result.stderr
    assert "^^^^^^^^^" in result.stderr


def test_text_output_of_the_example_patients_matches_golden_file() -> None:
    """One compact table per patient, each reason once, a summary line; regenerate with
    CRITLANG_UPDATE_GOLDEN=1 as the document golden files are."""
    result = run(str(ROOT / "examples" / "patients.jsonl"))
    assert result.exit_code == 2  # examples/patients.jsonl holds one bad record on purpose
    golden = ROOT / "tests" / "golden" / "eval_patients.txt"
    if os.environ.get("CRITLANG_UPDATE_GOLDEN") == "1":
        golden.write_text(result.stdout, encoding="utf-8")
    assert result.stdout == golden.read_text(encoding="utf-8")
    assert len(result.stdout.splitlines()) < 140  # 178 when each criterion repeated its parts
