"""3. One bad value is one record in error; every later record still gets its result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.hostile.common import MIX, eval_jsonl, patient, screen_csv

BAD = [
    ("huge_whole_number", b'{"id": "x", "a": 10000000000000000000000000000}', "at most 18 digits"),
    ("huge_exponent", b'{"id": "x", "a": 1e400}', "ordinary size"),
    ("digits_4301", b'{"id": "x", "a": ' + b"9" * 4301 + b"}", "ordinary size"),
    ("lone_surrogate_id", b'{"id": "\\ud800", "a": 1}', "not valid Unicode"),
    ("markup_id", b'{"id": "[/]", "a": "text"}', "expected a number"),
    ("infinity", b'{"id": "x", "a": Infinity}', "not valid JSON"),
    ("list_id", b'{"id": [1, 2], "a": 1}', "the id must be a string or a whole number"),
]


@pytest.mark.parametrize(("line", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_value_is_its_records_error(tmp_path: Path, line: bytes, words: str) -> None:
    path = tmp_path / "records.jsonl"
    path.write_bytes(b'{"id": "before", "a": 1}\n' + line + b'\n{"id": "after", "a": 3}\n')
    results = eval_jsonl(path, MIX)
    assert results[0]["status"] != "error"
    assert results[1]["status"] == "error"
    assert words in results[1]["error"]
    assert len(results[1]["error"]) < 300
    assert results[2]["id"] == "after" and results[2]["status"] != "error"
    screened = screen_csv(path, tmp_path / "out.csv", MIX)
    assert [r["status"] for r in screened] == [r["status"] for r in results]


def test_a_csv_cell_over_128_kib_is_its_records_error(tmp_path: Path) -> None:
    path = tmp_path / "records.csv"
    huge = "x" * 200_000
    path.write_text(f"id,sex\nbefore,female\nbig,{huge}\nafter,male\n", encoding="utf-8")
    results = eval_jsonl(path)
    assert [r["id"] for r in results] == ["before", "3", "after"]
    assert results[1]["error"] == "record 3: line 3: a cell is longer than 131072 characters"


def test_evaluate_many_takes_numpy_scalars() -> None:
    numpy = pytest.importorskip("numpy")
    import critlang
    from tests.hostile.common import CTD

    protocol = critlang.load(CTD)
    record = patient(
        "np",
        age=numpy.int64(45),
        body_weight=numpy.float32(60.5),
        fvc_baseline=numpy.float64(3.0),
        hiv=numpy.bool_(False),
        ctd_diagnoses=numpy.array(["rheumatoid_arthritis"]),
        symptom_duration=float("nan"),
    )
    result = protocol.evaluate(record)
    assert result.status == "eligible", json.dumps(result.to_dict(), default=str)
