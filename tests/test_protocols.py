"""Every protocol shipped in `protocols/`: checked clean, analysed clean, its example records pass.

A protocol encoded from a registry record carries the registry's text beside it
(`NAME.source.txt`, with the registry id, the address and the retrieval date);
each criterion's `registered` text must be found in it, so a criterion cannot
drift from what the registry says. Example patients whose records hold
histories live in `NAME.examples.jsonl` (one `{"title", "expect", "record"}`
per line) and run through the Python engine like the `example` blocks do.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest

import critlang
from critlang.check import check_source

ROOT = Path(__file__).resolve().parent.parent
PROTOCOLS = sorted(ROOT.glob("protocols/*.crit"))
# Protocols encoded from a ClinicalTrials.gov record: their registry text must be beside them.
REGISTERED = [p for p in PROTOCOLS if re.search(r'registry "NCT\d{8}"', p.read_text("utf-8"))]


def _examples() -> list[tuple[Path, int, dict[str, Any]]]:
    found = []
    for path in PROTOCOLS:
        examples = path.with_suffix(".examples.jsonl")
        if examples.exists():
            lines = examples.read_text("utf-8").splitlines()
            found.extend((path, n, json.loads(line)) for n, line in enumerate(lines, 1) if line)
    return found


EXAMPLES = _examples()


def _id(path: Path) -> str:
    return path.stem


@pytest.mark.parametrize("path", PROTOCOLS, ids=_id)
def test_protocol_checks_without_any_diagnostic(path: Path) -> None:
    checked, diagnostics = check_source(path.read_text("utf-8"), str(path))
    assert checked is not None
    assert [f"{d.span}: {d.code} {d.message}" for d in diagnostics] == []


@functools.cache
def _analysis(path: Path) -> Any:
    """`critlang analyze` of one protocol, once per run: z3 takes minutes on dated histories."""
    analyze = pytest.importorskip("critlang.analyze")
    return analyze.analyze(critlang.load(path))


@pytest.mark.z3
@pytest.mark.parametrize("path", PROTOCOLS, ids=_id)
def test_protocol_analysis_blocks_nothing(path: Path) -> None:
    report = _analysis(path)
    assert report.confirmed
    assert [f"{f.diagnostic.code} {f.diagnostic.message}" for f in report.blocking] == []


@pytest.mark.z3
@pytest.mark.parametrize("path", REGISTERED, ids=_id)
def test_registered_protocol_analysis_has_no_findings(path: Path) -> None:
    report = _analysis(path)
    assert report.confirmed
    assert [f"{f.diagnostic.code} {f.diagnostic.message}" for f in report.findings] == []


@pytest.mark.parametrize("path", REGISTERED, ids=_id)
def test_registered_text_is_the_registry_text(path: Path) -> None:
    source = path.with_suffix(".source.txt")
    text = source.read_text("utf-8")
    registry = re.search(r'registry "(NCT\d{8})"', path.read_text("utf-8"))
    assert registry is not None
    assert f"Registry id: {registry.group(1)}" in text
    assert f"https://clinicaltrials.gov/study/{registry.group(1)}" in text
    assert re.search(r"^Retrieved: \d{4}-\d{2}-\d{2}$", text, re.MULTILINE)
    # The registry writes Markdown: '\>' is '>'; lines are joined with single spaces.
    plain = " ".join(text.replace("\\>", ">").replace("\\<", "<").split())
    checked, _ = check_source(path.read_text("utf-8"), str(path))
    assert checked is not None
    for criterion in checked.protocol.criteria:
        assert criterion.registered is not None, criterion.id.text
        assert " ".join(criterion.registered.split()) in plain, criterion.id.text


@pytest.mark.parametrize(
    ("path", "line", "example"),
    EXAMPLES,
    ids=[f"{p.stem}:{n}" for p, n, _ in EXAMPLES],
)
def test_example_record_has_the_expected_status(
    path: Path, line: int, example: dict[str, Any]
) -> None:
    protocol = critlang.load(path)
    result = protocol.evaluate(example["record"])
    assert result.status == example["expect"], (
        f"{path.name}.examples.jsonl:{line} {example['title']}: "
        f"{json.dumps(result.to_dict(), default=str)}"
    )


def test_every_registered_protocol_has_example_records() -> None:
    assert len(REGISTERED) >= len([p for p in PROTOCOLS if p.stem != "ctd_ild"])
    for path in REGISTERED:
        assert path.with_suffix(".examples.jsonl").exists(), path.name
