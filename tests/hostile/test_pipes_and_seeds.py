"""What held and must keep holding: quiet exits on a closed pipe, output the same for every hash seed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.hostile.common import CTD, jsonl, patient

SRC = str(Path(__file__).parents[2] / "src")


def critlang(*args: str) -> list[str]:
    return [sys.executable, "-c", "from critlang.cli import main; main()", *args]


def environment(seed: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC, "PYTHONHASHSEED": seed}


def test_a_closed_pipe_ends_the_run_quietly(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_bytes(jsonl(patient(f"p{n}") for n in range(3000)))
    command = critlang("eval", str(CTD), str(path), "--format", "jsonl")
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment("0")
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().startswith(b'{"id": "p0"')
    process.stdout.close()
    process.wait(timeout=120)
    assert process.returncode == 1
    assert process.stderr.read() == b""


def test_output_is_the_same_for_every_hash_seed(tmp_path: Path) -> None:
    records = [
        {**patient(f"p{n}"), "ctd_diagnoses": ["sjogren_syndrome", "polymyositis"], f"x{n}": 1}
        for n in range(20)
    ]
    path = tmp_path / "records.jsonl"
    path.write_bytes(jsonl(records))
    outputs = set()
    for seed in ("1", "2", "3"):
        done = subprocess.run(
            critlang("eval", str(CTD), str(path), "--format", "jsonl"),
            capture_output=True,
            env=environment(seed),
            check=False,
        )
        outputs.add((done.stdout, done.stderr))
    assert len(outputs) == 1
