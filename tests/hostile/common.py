"""Helpers for the hostile-input suite: run the CLI, check what every run must hold."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from critlang.cli import main
from tests.patients import ELIGIBLE

ROOT = Path(__file__).resolve().parents[2]
CTD = ROOT / "protocols" / "ctd_ild.crit"
MIX = ROOT / "tests" / "cases" / "sql" / "every_construct.crit"


def patient(record_id: str, **changes: Any) -> dict[str, Any]:
    """The shared eligible patient with an id; None removes a field."""
    record = {"id": record_id, **ELIGIBLE, **changes}
    return {k: v for k, v in record.items() if v is not None}


def jsonl(records: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r, default=float).encode() + b"\n" for r in records)


def cli(*args: str, stdin: bytes | None = None) -> Result:
    """Run critlang; a traceback (any exception but SystemExit) fails the test."""
    result = CliRunner().invoke(main, list(args), input=stdin)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"critlang raised {result.exception!r}") from result.exception
    assert "Traceback" not in result.output
    return result


def eval_jsonl(records_file: Path, protocol: Path = CTD, *more: str) -> list[dict[str, Any]]:
    """`critlang eval --format jsonl`, results parsed."""
    result = cli("eval", str(protocol), str(records_file), "--format", "jsonl", *more)
    assert result.exit_code in (0, 2), result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def screen_csv(data: Path, out: Path, protocol: Path = CTD, *more: str) -> list[dict[str, str]]:
    """`critlang screen -o out.csv`, the rows read back."""
    result = cli("screen", str(protocol), str(data), "-o", str(out), *more)
    assert result.exit_code in (0, 2), result.output
    return list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))


def eval_csv(data: Path, protocol: Path = CTD, *more: str) -> str:
    result = cli("eval", str(protocol), str(data), "--format", "csv", *more)
    assert result.exit_code in (0, 2), result.output
    return result.stdout


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def csv_text(records: list[dict[str, Any]]) -> str:
    """Records as CSV: a column per field of the first record, sets joined by ';'."""
    columns = list(records[0])

    def cell(value: Any) -> str:
        if isinstance(value, list):
            return ";".join(value)
        if isinstance(value, bool):
            return "yes" if value else "no"
        return "" if value is None else str(value)

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow([cell(record.get(c)) for c in columns])
    return buffer.getvalue()
