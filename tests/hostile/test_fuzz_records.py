"""Random record files: bytes, encodings and quoting mutated; every run keeps its promises.

For every file: `eval` never shows a traceback, gives one result per record
(a JSONL record is a non-blank line), `screen` gives the same results in the
same order, and neither changes the input file.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile.common import CTD, cli, csv_text, digest, jsonl, patient

NOISE = [
    b'"',
    b",",
    b"\n",
    b"\r\n",
    b"\r",
    b"\x00",
    b"\xe9",
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"\\",
    b"\\ud800",
    b"NaN",
    b"1e999",
    b"-",
    b"=",
    b"\x1b[31m",
    b"\xe2\x80\xae",
    b" ",
    b"\t",
    b";",
    b"|",
    b"''",
    b'""',
    b"99999999999999999999999",
    "é".encode(),
    "é".encode("latin-1"),
    b"\x1c",
    b"\xc2\x85",
]


@st.composite
def records(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(min_value=1, max_value=8))
    out = []
    for number in range(count):
        changes: dict[str, Any] = {}
        if draw(st.booleans()):
            changes["age"] = draw(st.sampled_from([19, 45, 131, None, "45", 1.5]))
        if draw(st.booleans()):
            changes["sex"] = draw(st.sampled_from(["female", "male", "other", None]))
        out.append(patient(f"r{number}", **changes))
    return out


@st.composite
def mutated(draw: st.DrawFn, body: bytes) -> bytes:
    data = bytearray(body)
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        at = draw(st.integers(min_value=0, max_value=len(data)))
        kind = draw(st.sampled_from(["insert", "delete", "replace"]))
        noise = draw(st.sampled_from(NOISE))
        if kind == "insert":
            data[at:at] = noise
        elif kind == "delete":
            del data[at : at + draw(st.integers(min_value=1, max_value=5))]
        else:
            data[at : at + len(noise)] = noise
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "latin-1-text"]))
    if encoding == "latin-1-text":
        return bytes(data).decode("utf-8", "replace").encode("latin-1", "replace")
    return bytes(data)


def records_in_jsonl(data: bytes) -> int:
    """Records critlang must report for a JSONL file: its lines that are not blank."""
    count = 0
    for number, raw in enumerate(data.split(b"\n"), start=1):
        line = raw[3:] if number == 1 and raw.startswith(b"\xef\xbb\xbf") else raw
        try:
            count += bool(line.decode("utf-8").strip())
        except UnicodeDecodeError:
            count += 1
    return count


def outcome(args: list[str], path: Path) -> list[tuple[str, str]]:
    result = cli(*args)
    # 66: the file as a whole cannot be used (a broken header); never a traceback
    assert result.exit_code in (0, 2, 66), result.output
    if result.exit_code == 66:
        return []
    return [(r["id"], r["status"]) for r in csv.DictReader(io.StringIO(result.stdout))]


def screened(path: Path, tmp: Path) -> list[tuple[str, str]]:
    out = tmp / "screened.csv"
    result = cli("screen", str(CTD), str(path), "-o", str(out))
    # 66: the file as a whole cannot be used (a broken header); never a traceback
    assert result.exit_code in (0, 2, 66), result.output
    if result.exit_code == 66:
        return []
    text = out.read_text(encoding="utf-8")
    out.unlink()
    return [(r["id"], r["status"]) for r in csv.DictReader(io.StringIO(text))]


SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(st.data(), records(), st.sampled_from(["jsonl", "csv", "json"]))
def test_mutated_record_files(tmp_path: Path, data: st.DataObject, rows: Any, kind: str) -> None:
    body = {
        "jsonl": lambda: jsonl(rows),
        "csv": lambda: csv_text(rows).encode(),
        "json": lambda: json.dumps(rows, default=float).encode(),
    }[kind]()
    content = data.draw(mutated(body), label="file")
    path = tmp_path / f"records.{kind}"
    path.write_bytes(content)
    before = digest(path)
    evaluated = outcome(["eval", str(CTD), str(path), "--format", "csv"], path)
    if kind == "jsonl":
        assert len(evaluated) == records_in_jsonl(content)
    if kind == "csv" and evaluated:
        assert len(evaluated) <= records_in_jsonl(content) - 1
    assert screened(path, tmp_path) == evaluated
    assert digest(path) == before
