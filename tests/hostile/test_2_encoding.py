"""2. A byte that is not UTF-8 spoils only its own record, in every format and command."""

from __future__ import annotations

from pathlib import Path

from tests.hostile.common import csv_text, eval_jsonl, jsonl, patient, screen_csv

LATIN1_E = "é".encode("latin-1")


def test_one_latin1_byte_in_jsonl_is_one_error(tmp_path: Path) -> None:
    lines = jsonl(patient(f"p{n}") for n in range(1, 201)).splitlines(keepends=True)
    lines[149] = lines[149].replace(b'"p150"', b'"p150' + LATIN1_E + b'"')
    path = tmp_path / "records.jsonl"
    path.write_bytes(b"".join(lines))
    results = eval_jsonl(path)
    assert len(results) == 200
    assert [r["status"] for r in results].count("eligible") == 199
    assert results[149]["status"] == "error"
    assert results[149]["error"] == "record 150: line 150: not valid UTF-8 (byte 0xe9 at column 13)"
    screened = screen_csv(path, tmp_path / "out.csv")
    assert [r["status"] for r in screened] == [r["status"] for r in results]


def test_one_latin1_byte_in_csv_is_one_error(tmp_path: Path) -> None:
    text = csv_text([patient(f"p{n}") for n in range(1, 201)]).encode("utf-8")
    lines = text.splitlines(keepends=True)
    lines[150] = lines[150].replace(b"female", b"f" + LATIN1_E + b"male")  # record p150
    path = tmp_path / "records.csv"
    path.write_bytes(b"".join(lines))
    results = eval_jsonl(path)
    assert len(results) == 200
    assert results[149]["status"] == "error"
    assert "line 151: not valid UTF-8 (byte 0xe9" in results[149]["error"]
    assert all(r["status"] == "eligible" for r in results[:149] + results[150:])
    screened = screen_csv(path, tmp_path / "out.csv")
    assert [r["status"] for r in screened] == [r["status"] for r in results]


def test_a_bad_byte_in_a_json_file_is_reported_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "records.json"
    path.write_bytes(b'[{"id": "a\xe9"}]')
    (result,) = eval_jsonl(path)
    assert result["status"] == "error"
    assert "not valid UTF-8" in result["error"]
