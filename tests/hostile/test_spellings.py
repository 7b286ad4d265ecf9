"""The spellings of numbers, dates and booleans: one table, the same in eval and screen."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile.common import MIX, eval_jsonl, screen_csv

# (cell, accepted): the numbers, dates and booleans of docs/cli.md, and near misses.
NUMBERS = [
    ("45", True),
    ("+4.5", True),
    ("-2", True),
    (".5", True),
    ("5.", True),
    ("1e1", True),
    ("2E-1", True),
    (" 3 ", True),
    ("1_000", False),
    ("0x10", False),
    ("٤٥", False),
    ("1,5", False),
    ("Infinity", False),
    ("--1", False),
    ("1e", False),
]
DATES = [
    ("2020-06-01", True),
    ("20200601", False),
    ("2020-W01-1", False),
    ("2020-6-1", False),
    ("2020-02-30", False),
    ("\uff12\uff10\uff12\uff10-06-01", False),
]
BOOLEANS = [
    ("true", True),
    ("YES", True),
    ("0", True),
    ("False", True),
    ("y", False),
    ("t", False),
    ("on", False),
    ("2", False),
]


@pytest.mark.parametrize(
    ("column", "cells"),
    [("a", NUMBERS), ("d", DATES), ("p", BOOLEANS)],
    ids=["number", "date", "boolean"],
)
def test_spellings_agree(tmp_path: Path, column: str, cells: list[tuple[str, bool]]) -> None:
    path = tmp_path / "records.csv"
    lines = [f"id,{column}"] + [f'r{n},"{cell}"' for n, (cell, _) in enumerate(cells)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    results = eval_jsonl(path, MIX)
    assert [r["status"] != "error" for r in results] == [ok for _, ok in cells]
    screened = screen_csv(path, tmp_path / "out.csv", MIX)
    assert [r["status"] for r in screened] == [r["status"] for r in results]
