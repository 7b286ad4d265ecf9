"""13. `critlang sql` takes only a table name and a tested dialect; ids are text."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile.common import CTD, cli, eval_jsonl


@pytest.mark.parametrize(
    "table", ["pat'ients", "read_csv_auto('/etc/passwd')", "a.b.c.d", "x; DROP TABLE y", ""]
)
def test_a_table_must_be_a_name(table: str) -> None:
    result = cli("sql", str(CTD), "--table", table)
    assert result.exit_code == 64  # a wrong command line
    assert "expected a table name" in result.output


def test_an_untested_dialect_is_refused() -> None:
    result = cli("sql", str(CTD), "--dialect", "sqlite")
    assert result.exit_code == 64
    assert "unknown dialect 'sqlite'" in result.output


def test_ids_are_shown_as_text(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text('{"id": 7}\n{"id": 1.0}\n{"id": true}\n{"id": 1.5}\n', encoding="utf-8")
    results = eval_jsonl(path)
    assert [r["id"] for r in results] == ["7", "1.0", "3", "4"]
    assert [r["status"] for r in results][2:] == ["error", "error"]
    assert "the id must be a string or a whole number" in results[2]["error"]
