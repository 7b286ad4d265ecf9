"""Every `critlang` command in the README runs on a fresh clone.

Each command line of the README's `sh` blocks runs, as written, in a copy of
the repository's protocols and example files, with `.venv/bin/critlang`
standing for this environment's critlang. A command must finish without a
traceback, with the status the README promises (2 only where a record is in
error on purpose), and write the files it names.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CRITLANG = Path(sys.executable).parent / "critlang"
# Commands that need an optional engine, by subcommand.
MARKS = {"analyze": pytest.mark.z3, "sql": pytest.mark.sql, "screen": pytest.mark.sql}


def readme_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", README, re.DOTALL)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    # a comment starts at ' #' (no command here has a '#' of its own)
    return [re.sub(r"\s+#\s.*$", "", line) for line in lines if line.startswith(".venv/bin/")]


COMMANDS = readme_commands()


def test_the_readme_has_commands_to_run() -> None:
    names = {command.split()[1] for command in COMMANDS}
    assert {"check", "eval", "render", "test", "fmt", "analyze", "sql", "screen"} <= names


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(c, marks=[MARKS[c.split()[1]]] if c.split()[1] in MARKS else [])
        for c in COMMANDS
    ],
)
def test_readme_command_runs(command: str, tmp_path: Path) -> None:
    for folder in ("protocols", "examples"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    assert command.startswith(".venv/bin/critlang ")
    line = str(CRITLANG) + command.removeprefix(".venv/bin/critlang")
    run = subprocess.run(
        ["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    # examples/patients.jsonl holds one record in error on purpose (see the README)
    expected = 2 if "examples/patients.jsonl" in command else 0
    assert run.returncode == expected, run.stderr
    assert "Traceback" not in run.stderr
    named = re.findall(r"(?:-o|--report|>)\s+(\S+)", command)
    for output in named:
        assert (tmp_path / output).stat().st_size > 0, output
    if "results.parquet" in named:
        pq = pytest.importorskip("pyarrow.parquet")
        assert pq.read_table(tmp_path / "results.parquet").num_rows == 6


@pytest.mark.sql
def test_the_shipped_parquet_holds_the_csv_rows(tmp_path: Path) -> None:
    """examples/patients.parquet is examples/make_parquet.py's output, not a stale copy."""
    pq = pytest.importorskip("pyarrow.parquet")
    for folder in ("protocols", "examples"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    (tmp_path / "examples" / "patients.parquet").unlink()
    made = subprocess.run(
        [sys.executable, "examples/make_parquet.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr
    shipped = pq.read_table(ROOT / "examples" / "patients.parquet")
    assert pq.read_table(tmp_path / "examples" / "patients.parquet").equals(shipped)
