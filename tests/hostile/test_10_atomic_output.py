"""10. Outputs are replaced only when complete: an interrupted run leaves the old file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from critlang.report import atomic_path
from tests.hostile.common import CTD, jsonl, patient


def test_an_error_inside_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "results.jsonl"
    target.write_text("previous\n", encoding="utf-8")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as temporary:
        temporary.write_text("half", encoding="utf-8")
        raise KeyboardInterrupt
    assert target.read_text(encoding="utf-8") == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl"]


def eval_from_stdin(target: Path) -> tuple[list[str], dict[str, str]]:
    """`critlang eval` reading records on stdin and writing JSON Lines to `target`."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    command = [sys.executable, "-c", "from critlang.cli import main; main()", "eval"]
    return [*command, str(CTD), "-", "--format", "jsonl", "-o", str(target)], env


def test_ctrl_c_while_reading_stdin_keeps_the_previous_output(tmp_path: Path) -> None:
    target = tmp_path / "results.jsonl"
    target.write_text("previous\n", encoding="utf-8")
    command, env = eval_from_stdin(target)
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert process.stdin is not None
    process.stdin.write(jsonl([patient("p1")]))
    process.stdin.flush()
    # The run has begun once its temporary output exists; then interrupt it.
    while not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
    process.send_signal(signal.SIGINT)
    process.stdin.close()
    process.wait(timeout=60)
    stderr = process.stderr.read() if process.stderr else b""
    assert process.returncode != 0
    assert b"Traceback" not in stderr
    assert target.read_text(encoding="utf-8") == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl"]


def test_a_complete_run_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "results.jsonl"
    target.write_text("previous\n", encoding="utf-8")
    command, env = eval_from_stdin(target)
    done = subprocess.run(command, input=jsonl([patient("p1")]), env=env, check=False)
    assert done.returncode == 0
    assert '"status": "eligible"' in target.read_text(encoding="utf-8")
