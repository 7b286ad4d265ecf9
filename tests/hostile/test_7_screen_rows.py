"""7. `screen` gives every malformed row its own error and goes on."""

from __future__ import annotations

from pathlib import Path

from tests.hostile.common import csv_text, eval_jsonl, patient, screen_csv


def test_rows_beyond_any_sample_are_screened_one_by_one(tmp_path: Path) -> None:
    lines = csv_text([patient(f"p{n}") for n in range(1, 5001)]).encode().splitlines(True)
    lines[4500] = b"ragged,row\n"
    lines[4700] = lines[4700].replace(b"female", b"f\xe9male")
    path = tmp_path / "records.csv"
    path.write_bytes(b"".join(lines))
    rows = screen_csv(path, tmp_path / "out.csv")
    assert len(rows) == 5000
    errors = {r["id"]: r["error"] for r in rows if r["status"] == "error"}
    assert set(errors) == {"4501", "4701"}
    assert "2 cell(s) where the header has" in errors["4501"]
    assert "not valid UTF-8" in errors["4701"]


def test_json_strings_in_numbers_and_duplicate_keys(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text(
        '{"id": "a", "age": "45"}\n{"id": "b", "age": 45, "age": 50}\n{"id": "c", "age": 45}\n',
        encoding="utf-8",
    )
    rows = screen_csv(path, tmp_path / "out.csv")
    assert [r["status"] for r in rows] == ["error", "error", "undetermined"]
    assert "expected a number" in rows[0]["error"]
    assert "the key 'age' is given twice" in rows[1]["error"]
    assert [r["status"] for r in eval_jsonl(path)] == [r["status"] for r in rows]
