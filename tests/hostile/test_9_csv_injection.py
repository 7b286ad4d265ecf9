"""9. A CSV cell that a spreadsheet would run as a formula is written with a leading quote."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from tests.hostile.common import cli, csv_text, patient, screen_csv

IDS = ['=HYPERLINK("http://x")', "+1+1", "-2", "@SUM(A1)", "plain"]


def test_eval_and_screen_neutralise_formulas(tmp_path: Path) -> None:
    path = tmp_path / "records.csv"
    path.write_text(csv_text([patient(i) for i in IDS]), encoding="utf-8")
    result = cli(
        "eval",
        str(Path(__file__).parents[2] / "protocols" / "ctd_ild.crit"),
        str(path),
        "--format",
        "csv",
    )
    ids = [row["id"] for row in csv.DictReader(io.StringIO(result.stdout))]
    expected = ["'" + i for i in IDS[:-1]] + ["plain"]
    assert ids == expected
    rows = screen_csv(path, tmp_path / "out.csv")
    assert [row["id"] for row in rows] == expected
    assert (tmp_path / "out.csv").read_text(encoding="utf-8") == result.stdout
