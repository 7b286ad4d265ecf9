"""`critlang screen` reads histories written in the records themselves (JSON entry lists) as
`--events` would give them: every registered trial's example patients screen on DuckDB to the
statuses and criterion values the Python engine gives, never silently unknown."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import critlang
from critlang import screen
from critlang.records import Intake
from critlang.vocab import Truth

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "protocols").glob("*.examples.jsonl"))


@pytest.mark.parametrize("examples", EXAMPLES, ids=lambda p: p.name.split(".")[0])
def test_inline_histories_screen_as_python_evaluates(examples: Path, tmp_path: Path) -> None:
    protocol = critlang.load(examples.with_name(examples.name.split(".")[0] + ".crit"))
    records = [json.loads(line)["record"] for line in examples.read_text().splitlines() if line]
    data = tmp_path / "records.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    output = tmp_path / "screened.csv"
    screen.run(protocol.checked, data, output=output, intake=Intake(protocol.checked))
    screened = {row["id"]: row for row in csv.DictReader(output.open(encoding="utf-8"))}
    assert len(screened) == len(records)
    for record in records:
        result = protocol.evaluate(record)
        row = screened[str(record["id"])]
        assert row["error"] == "", (record["id"], row["error"])
        assert row["status"] == result.status, record["id"]
        for criterion in result.criteria:
            expected = Truth.of(criterion.value, criterion.applicable).value
            assert row[criterion.id] == expected, (record["id"], criterion.id)


def test_inline_histories_are_refused_on_spark_with_the_record_named(tmp_path: Path) -> None:
    examples = ROOT / "protocols" / "t2d_metformin.examples.jsonl"
    protocol = critlang.load(ROOT / "protocols" / "t2d_metformin.crit")
    record = json.loads(examples.read_text().splitlines()[0])["record"]
    data = tmp_path / "records.jsonl"
    data.write_text(json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"histories .* are screened on DuckDB"):
        screen.run(protocol.checked, data, engine="spark", output=tmp_path / "out.csv")
