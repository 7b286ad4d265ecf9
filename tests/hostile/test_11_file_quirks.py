"""11. Quirks of record files: quotes, blank lines, line numbers, duplicates, BOMs, stdin, ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.hostile.common import CTD, cli, csv_text, eval_jsonl, jsonl, patient, screen_csv

BOM = b"\xef\xbb\xbf"


def test_an_unterminated_quote_spoils_only_its_record(tmp_path: Path) -> None:
    lines = csv_text([patient(f"p{n}") for n in range(1, 51)]).splitlines(keepends=True)
    lines[2] = lines[2].replace("p2,", '"p2,', 1)
    path = tmp_path / "records.csv"
    path.write_text("".join(lines), encoding="utf-8")
    results = eval_jsonl(path)
    assert len(results) == 50
    assert results[1] == {
        "id": "3",
        "status": "error",
        "error": "record 3: line 3: a quoted cell is never closed (unterminated quote)",
    }
    assert all(r["status"] == "eligible" for r in results[2:])


def test_blank_lines_are_skipped_and_line_numbers_follow_quoted_newlines(tmp_path: Path) -> None:
    path = tmp_path / "records.csv"
    path.write_text('id,sex\n\n"multi\nline",female\n\nbad,other\n', encoding="utf-8")
    results = eval_jsonl(path)
    assert [r["id"] for r in results] == ["multi\nline", "bad"]
    assert results[1]["error"].startswith("record bad: field 'sex'")
    path.write_text('id,sex\n"multi\nline",female\nx,y,z\n', encoding="utf-8")
    assert eval_jsonl(path)[1]["error"] == "record 4: line 4: 3 cell(s) where the header has 2"


def test_a_column_given_twice_stops_before_any_result(tmp_path: Path) -> None:
    path = tmp_path / "records.csv"
    path.write_text("id,age,age [mo]\na,45,540\n", encoding="utf-8")
    result = cli("eval", str(CTD), str(path))
    assert result.exit_code == 66  # the input cannot be used
    assert "columns 'age' and 'age [mo]' both give 'age'" in result.output


@pytest.mark.parametrize("suffix", ["jsonl", "json", "csv"])
def test_a_byte_order_mark_is_skipped(tmp_path: Path, suffix: str) -> None:
    records = [patient("p1"), patient("p2")]
    body = {
        "jsonl": jsonl(records),
        "json": json.dumps(records, default=float).encode(),
        "csv": csv_text(records).encode(),
    }[suffix]
    path = tmp_path / f"records.{suffix}"
    path.write_bytes(BOM + body)
    assert [r["status"] for r in eval_jsonl(path)] == ["eligible", "eligible"]
    assert [r["status"] for r in screen_csv(path, tmp_path / "o.csv")] == ["eligible"] * 2


def test_records_from_stdin(tmp_path: Path) -> None:
    result = cli("eval", str(CTD), "-", "--format", "jsonl", stdin=jsonl([patient("s1")]))
    assert json.loads(result.stdout)["status"] == "eligible"
    text = csv_text([patient("s2")]).encode()
    result = cli("eval", str(CTD), "-", "--input-format", "csv", "--format", "csv", stdin=text)
    assert result.stdout.splitlines()[1].startswith("s2,eligible,")


def test_an_element_named_like_the_id_field_is_read(tmp_path: Path) -> None:
    protocol = tmp_path / "ids.crit"
    protocol.write_text(
        'protocol ids\n  title "Ids"\n\ndata\n  id: number\n\n'
        'inclusion I1 "Small"\n  met when id < 10\n',
        encoding="utf-8",
    )
    path = tmp_path / "records.jsonl"
    path.write_text('{"id": 3}\n{"id": 30}\n', encoding="utf-8")
    results = eval_jsonl(path, protocol)
    assert [(r["id"], r["status"]) for r in results] == [("3", "eligible"), ("30", "ineligible")]


def test_columns_that_are_not_elements_may_repeat(tmp_path: Path) -> None:
    path = tmp_path / "records.csv"
    path.write_text("id,,note,note,sex\na,x,1,2,female\n", encoding="utf-8")
    (result,) = eval_jsonl(path)
    assert result["status"] == "undetermined"


def test_a_broken_parquet_file_is_named_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "records.parquet"
    path.write_bytes(b"PAR1" + b"\x00" * 100 + b"PAR1")
    for command in ("eval", "screen"):
        result = cli(command, str(CTD), str(path))
        assert result.exit_code == 66
        assert "cannot read the Parquet file" in result.output


def test_screen_reads_stdin_too(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    records = jsonl([patient("s1"), patient("s2", age=19)])
    result = cli("screen", str(CTD), "-", "-o", str(out), stdin=records)
    assert result.exit_code == 0, result.output
    assert [line.split(",")[:2] for line in out.read_text().splitlines()[1:]] == [
        ["s1", "eligible"],
        ["s2", "ineligible"],
    ]
