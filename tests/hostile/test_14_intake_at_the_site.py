"""14. Realistic data at the site: extra columns, NaN, numpy, units, CSV and Parquet alike."""

from __future__ import annotations

import csv
import io
import json
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import critlang
from tests.hostile.common import CTD, cli, csv_text, eval_csv, eval_jsonl, jsonl, patient

PROTOCOL = critlang.load(CTD)


def test_an_extra_column_is_ignored_and_reported_once(tmp_path: Path) -> None:
    path = tmp_path / "records.csv"
    path.write_text(
        csv_text([{**patient(f"p{n}"), "mrn": f"M{n}", "creatinin": "1"} for n in range(3)]),
        encoding="utf-8",
    )
    result = cli("eval", str(CTD), str(path), "--format", "jsonl")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["status"] for line in result.stdout.splitlines()] == ["eligible"] * 3
    assert result.stderr.count("'mrn' in 3 record(s)") == 1
    assert "'creatinin' in 3 record(s); did you mean 'creatinine'?" in result.stderr
    screened = cli("screen", str(CTD), str(path))
    assert screened.exit_code == 0, screened.output
    assert "'mrn' in 3 record(s)" in screened.stderr


def test_strict_fields_make_unknown_fields_errors(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_bytes(jsonl([{**patient("p1"), "creatinin": 1}, patient("p2")]))
    results = eval_jsonl(path, CTD, "--strict-fields")
    assert [r["status"] for r in results] == ["error", "eligible"]
    assert results[0]["error"] == (
        "record p1: field 'creatinin', value 1: not a data element of the protocol; "
        "did you mean 'creatinine'?"
    )


def test_id_field_names_the_identifying_column(tmp_path: Path) -> None:
    path = tmp_path / "records.csv"
    records = [
        {"mrn": f"M{n}", **{k: v for k, v in patient("x").items() if k != "id"}} for n in range(2)
    ]
    path.write_text(csv_text(records), encoding="utf-8")
    results = eval_jsonl(path, CTD, "--id-field", "mrn")
    assert [r["id"] for r in results] == ["M0", "M1"]


@pytest.mark.parametrize("spelling", ["", "NA", "n/a", "NaN", "None", "null"])
def test_empty_na_nan_and_none_cells_are_unknown(tmp_path: Path, spelling: str) -> None:
    path = tmp_path / "records.csv"
    path.write_text(csv_text([patient("p1", age=spelling)]), encoding="utf-8")
    (result,) = eval_jsonl(path)
    assert result["status"] == "undetermined"
    assert result["missing"] == ["age"]


def test_nan_and_none_from_python_are_unknown() -> None:
    for value in (float("nan"), None, Decimal("NaN")):
        result = PROTOCOL.evaluate(patient("p", age=value) | {"age": value})
        assert (result.status, result.missing) == ("undetermined", ("age",))


def test_screen_takes_value_and_unit_records(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_bytes(
        jsonl([patient("p1", creatinine={"value": 130, "unit": "umol/L"}), patient("p2")])
    )
    rows = list(csv.DictReader(io.StringIO(eval_csv(path))))
    out = tmp_path / "out.csv"
    result = cli("screen", str(CTD), str(path), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert_same_results(out.read_text(encoding="utf-8"), eval_csv(path))
    assert [r["status"] for r in rows] == ["ineligible", "eligible"]


def site_patients(count: int, seed: int) -> list[dict[str, Any]]:
    """Patients as a site exports them: floats, gaps as NaN, an mrn column, units varied."""
    generator = random.Random(seed)
    records = []
    for number in range(count):
        record: dict[str, Any] = {"id": f"s{number}", "mrn": f"M{number:05d}"}
        for name, value in patient("x").items():
            if name == "id":
                continue
            if isinstance(value, list):
                value = ";".join(value)
            elif isinstance(value, int | Decimal) and not isinstance(value, bool):
                value = float(value) * generator.choice([1, 1, 0.9, 1.1, 1.5])
            if generator.random() < 0.05:
                value = float("nan") if isinstance(value, float) else None
            record[name] = value
        records.append(record)
    return records


def test_csv_and_parquet_of_the_same_data_give_the_same_answers(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    records = site_patients(400, seed=3)
    table = pa.Table.from_pylist(records)
    pq.write_table(table, tmp_path / "site.parquet")
    (tmp_path / "site.csv").write_text(csv_text(records), encoding="utf-8")
    from_csv = eval_csv(tmp_path / "site.csv")
    from_parquet = eval_csv(tmp_path / "site.parquet")
    assert from_csv == from_parquet
    statuses = {row["status"] for row in csv.DictReader(io.StringIO(from_csv))}
    assert {"eligible", "ineligible", "undetermined"} <= statuses
    for data in ("site.csv", "site.parquet"):
        out = tmp_path / f"{data}.out.csv"
        result = cli("screen", str(CTD), str(tmp_path / data), "-o", str(out))
        assert result.exit_code in (0, 2), result.output
        assert_same_results(out.read_text(encoding="utf-8"), from_csv)


def assert_same_results(screened: str, evaluated: str) -> None:
    """Same rows and values; SQL's `missing` may name more than eval's (docs/cli.md)."""
    left = list(csv.DictReader(io.StringIO(screened)))
    right = list(csv.DictReader(io.StringIO(evaluated)))
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        assert set(b.pop("missing").split(";")) <= set(a.pop("missing").split(";"))
        assert a == b
