"""The exported ELM, run by cql-execution (the reference JavaScript CQL engine).

`run_elm(source_text, records)` is the adapter every corpus runs through: it
exports the protocol's ELM, takes the records in as critlang does (so values
reach the engine in each element's declared unit), runs them all through one
node process, and gives back each record's status and criterion values in
critlang's words.
"""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

import critlang
from critlang import ir
from critlang.check import Type
from critlang.engines import elm
from critlang.records import RecordError
from critlang.vocab import ENTRY_LAYOUT, EntryKind, Outcome, Truth

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "run_elm.js"


def unavailable() -> str | None:
    """Why cql-execution cannot run here, or None once it is installed."""
    if (HERE / "node_modules" / "cql-execution").is_dir():
        return None
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm are needed to run cql-execution (apt-get install nodejs npm)"
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, capture_output=True, text=True
    )
    if done.returncode != 0:
        return f"npm ci failed in {HERE}: {done.stderr.strip()[-500:]}"
    return None


def typed(value: Any, kind: Type) -> dict[str, Any]:
    """A value from critlang's intake as the runner's typed JSON."""
    match kind.kind:
        case "quantity":
            return {"type": "Quantity", "value": str(value), "unit": kind.unit}
        case "number":
            return {"type": "Decimal", "value": str(value)}
        case "date":
            assert isinstance(value, datetime.date)
            return {"type": "Date", "value": value.isoformat()}
        case "set":
            return {"type": "List", "value": sorted(value)}
        case "history":
            fields = ENTRY_LAYOUT[EntryKind(kind.entry)]
            return {
                "type": "History",
                "value": [
                    {f: _field(v) for f, v in zip(fields, entry, strict=True) if f != "source"}
                    for entry in value
                ],
            }
    return {"type": kind.kind, "value": value}


def _field(value: Any) -> Any:
    """An entry's field as the runner reads it: a date, a decimal (as text), a code."""
    if value is None:
        return None
    if isinstance(value, datetime.date):
        return {"date": value.isoformat()}
    if isinstance(value, str):
        return value
    return {"decimal": str(value)}


def expressions(program: ir.Program) -> list[str]:
    names: list[str] = [elm.STATUS]
    for criterion in program.criteria:
        names.append(criterion.id)
        if criterion.applies is not None:
            names.append(elm.applies_name(criterion.id))
        for part in criterion.parts:
            name = elm.part_name(criterion, part)
            names.append(name)
            if part.applies is not None:
                names.append(elm.applies_name(name))
    return names


@attrs.frozen
class Job:
    """One library, the expressions wanted and the parameters of each record."""

    library: Mapping[str, Any]
    expressions: list[str]
    records: list[dict[str, Any]]


def run_libraries(jobs: Sequence[Job]) -> list[list[dict[str, Any]]]:
    """Every wanted expression's value for each record of each job, in one node process."""
    reason = unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    payload = json.dumps([attrs.asdict(job) for job in jobs])
    done = subprocess.run(
        ["node", str(RUNNER)], cwd=HERE, input=payload, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"cql-execution failed: {done.stderr.strip()[-2000:]}")
    results: list[list[dict[str, Any]]] = json.loads(done.stdout)
    return results


def run_elm(source_text: str, records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each record's status and criterion values ("I1", "I2.a": "true", "false",
    "unknown" or "not applicable"), as cql-execution computes them from the ELM.

    A record critlang refuses (an unknown field, a value of the wrong type)
    gets status "error" and no criteria, as in critlang."""
    return run_many([(source_text, list(records))])[0]


def run_many(
    cases: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
) -> list[list[dict[str, Any]]]:
    """`run_elm` for several protocols, each with its records, in one node process."""
    prepared = [_prepare(source, records) for source, records in cases]
    jobs = [
        Job(elm.library(program), expressions(program), [p for p in given if p is not None])
        for program, given in prepared
    ]
    results = run_libraries(jobs)
    return [
        _words(program, given, values)
        for (program, given), values in zip(prepared, results, strict=True)
    ]


def _prepare(
    source: str, records: Sequence[Mapping[str, Any]]
) -> tuple[ir.Program, list[dict[str, Any] | None]]:
    from tests.conformance.engines import TERMINOLOGIES

    protocol = critlang.compile_source(source, terminology=TERMINOLOGIES.get(source))
    program = protocol.lowered.program
    kinds = dict(program.elements)
    parameters: list[dict[str, Any] | None] = []
    for position, record in enumerate(records, start=1):
        try:
            _, env = protocol.intake(record, position)
        except RecordError:
            parameters.append(None)
            continue
        parameters.append(
            {
                name: typed(value, kinds.get(name) or kinds[name.removesuffix(" latest")])
                for name, value in env.items()
            }
        )
    return program, parameters


def _words(
    program: ir.Program, parameters: list[dict[str, Any] | None], results: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    values = iter(results)
    out: list[dict[str, Any]] = []
    for given in parameters:
        if given is None:
            out.append({"status": Outcome.ERROR.value, "criteria": {}})
            continue
        value = next(values)
        criteria: dict[str, str] = {}
        for criterion in program.criteria:
            rows = [(criterion.id, criterion.applies is not None)]
            rows += [(elm.part_name(criterion, p), p.applies is not None) for p in criterion.parts]
            for name, conditional in rows:
                applies = value[elm.applies_name(name)] if conditional else True
                criteria[name] = Truth.of(value[name], applies).value
        out.append({"status": value[elm.STATUS], "criteria": criteria})
    return out
