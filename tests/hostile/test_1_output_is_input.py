"""1. An output that names an input is refused, and the input is left as it was."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.hostile.common import CTD, cli, csv_text, digest, jsonl, patient


@pytest.fixture
def records(tmp_path: Path) -> Path:
    path = tmp_path / "records.jsonl"
    path.write_bytes(jsonl([patient("p1"), patient("p2", age=19)]))
    return path


@pytest.mark.parametrize("spelling", ["same", "dotted", "symlink"])
def test_eval_refuses_to_write_over_its_records(records: Path, spelling: str) -> None:
    before = digest(records)
    target = {
        "same": records,
        "dotted": records.parent / "." / ".." / records.parent.name / records.name,
        "symlink": records.parent / "link.jsonl",
    }[spelling]
    if spelling == "symlink":
        os.symlink(records, target)
    result = cli("eval", str(CTD), str(records), "--format", "jsonl", "-o", str(target))
    assert result.exit_code == 73  # the output is refused
    assert "this is an input" in result.output
    assert digest(records) == before


def test_eval_refuses_to_write_over_the_protocol(records: Path, tmp_path: Path) -> None:
    protocol = tmp_path / "copy.crit"
    protocol.write_bytes(CTD.read_bytes())
    result = cli("eval", str(protocol), str(records), "-o", str(protocol))
    assert result.exit_code == 73
    assert protocol.read_bytes() == CTD.read_bytes()


def test_screen_refuses_its_data_as_results_or_report(tmp_path: Path) -> None:
    data = tmp_path / "patients.csv"
    data.write_text(csv_text([patient("p1")]), encoding="utf-8")
    before = digest(data)
    for option in ("-o", "--report"):
        result = cli("screen", str(CTD), str(data), option, str(data))
        assert result.exit_code == 73, result.output
        assert "this is an input" in result.output
        assert digest(data) == before


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_screen_never_replaces_a_folder(tmp_path: Path, engine: str) -> None:
    data = tmp_path / "patients.csv"
    data.write_text(csv_text([patient("p1")]), encoding="utf-8")
    folder = tmp_path / "results.parquet"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine", encoding="utf-8")
    result = cli("screen", str(CTD), str(data), "--engine", engine, "-o", str(folder))
    assert result.exit_code != 0
    assert (folder / "keep.txt").read_text(encoding="utf-8") == "mine"
