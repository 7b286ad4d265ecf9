"""Running the JavaScript engine from tests: random records for a protocol, and Node.js.

The same records go to the Python engine and to the generated JavaScript, and
each side reports every criterion's and part's value word, the status and the
missing data, so that tests compare them as data.
"""

from __future__ import annotations

import datetime
import json
import random
import shutil
import subprocess
from decimal import Decimal
from fractions import Fraction
from typing import Any

import critlang
from critlang import ir
from critlang.decimals import to_decimal
from critlang.engines import javascript
from critlang.protocol_tests import example_record
from critlang.records import RecordError
from critlang.vocab import ENTRY_LAYOUT, EntryKind

NODE = shutil.which("node")

# Reads [[records of batch 0], [records of batch 1], ...] (JSON) on stdin; each batch runs
# in its own block, next to its protocol's module, and gives one result per record.
# A record as the JSON written by `_js_record` back to the engine's values; `parse` reads an
# exact number. Shared with the browser tests of the live form (tests/test_form.py).
ENV_OF = """
function envOf(record, parse) {
  const env = {};
  for (const [name, value] of Object.entries(record)) {
    if (value === null) env[name] = null;
    else if (value.number !== undefined) env[name] = parse(value.number);
    else if (value.history !== undefined) env[name] = value.history.map((e) => envOf(e, parse));
    else if (value.set !== undefined) env[name] = new Set(value.set);
    else env[name] = value;
  }
  return env;
}
"""

_RUNNER = (
    ENV_OF
    + """
function word(trace, value, applies) {
  if (applies !== null && trace[applies] === false) return "not applicable";
  const v = trace[value];
  return v === null ? "unknown" : v ? "true" : "false";
}
function runBatch(P, records) {
  return records.map((record) => {
    const env = envOf(record, critlangRuntime.parse);
    const result = P.evaluate(env);
    const criteria = {};
    for (const c of P.protocol.criteria) {
      criteria[c.id] = word(result.trace, c.value, c.applies);
      for (const p of c.parts) criteria[c.id + "." + p.name] = word(result.trace, p.value, p.applies);
    }
    return { status: result.status, criteria, missing: result.missing.slice().sort() };
  });
}
const BATCHES = JSON.parse(require("fs").readFileSync(0, "utf8"));
const RESULTS = [];
"""
)


def run_node(protocol: critlang.Protocol, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every record through the generated JavaScript, in one Node.js process."""
    return run_node_batches([(protocol, records)])[0]


def run_node_batches(
    batches: list[tuple[critlang.Protocol, list[dict[str, Any]]]],
) -> list[list[dict[str, Any]]]:
    """Several protocols, each with its records, in one Node.js process.

    Records go through the Python engine's intake first, so both engines see the
    same values in the declared units (the form takes values in those units)."""
    assert NODE is not None
    parts = [javascript.runtime(), _RUNNER]
    encoded = []
    for number, (protocol, records) in enumerate(batches):
        module = javascript.compile_program(protocol.lowered.program)
        parts.append(
            f"{{\n{module}\nRESULTS.push(runBatch(critlangProtocol, BATCHES[{number}]));\n}}"
        )
        kinds = protocol.checked.element_types
        encoded.append(
            [
                {
                    name: _js_history(kinds[name].entry, value)
                    if name in kinds and kinds[name].kind == "history" and value is not None
                    else _js_value(value)
                    for name, value in protocol.intake(record, 1)[1].items()
                }
                for record in records
            ]
        )
    parts.append("process.stdout.write(JSON.stringify(RESULTS));")
    done = subprocess.run(
        [NODE, "-e", "\n".join(parts)],
        input=json.dumps(encoded, default=str),
        capture_output=True,
        text=True,
        check=True,
    )
    results: list[list[dict[str, Any]]] = json.loads(done.stdout)
    return results


def run_python(protocol: critlang.Protocol, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for record in records:
        result = protocol.evaluate(record)
        criteria: dict[str, str] = {}
        for criterion in result.criteria:
            criteria[criterion.id] = criterion.value_word
            for part in criterion.parts:
                criteria[f"{criterion.id}.{part.name}"] = part.value_word
        out.append(
            {"status": result.status, "criteria": criteria, "missing": sorted(result.missing)}
        )
    return out


def _js_history(entry: str, entries: Any) -> dict[str, Any]:
    """A history from intake (tuples, vocab.ENTRY_LAYOUT) as entry objects for the runner."""
    fields = ENTRY_LAYOUT[EntryKind(entry)]
    return {
        "history": [
            {f: _js_value(v) for f, v in zip(fields, e, strict=True) if f != "source"}
            for e in entries
        ]
    }


def _js_value(value: Any) -> Any:
    """A value as the generated JavaScript holds it (numbers and sets tagged for the runner)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, Decimal | int):
        return {"number": format(value, "f") if isinstance(value, Decimal) else str(value)}
    if isinstance(value, frozenset | list):
        return {"set": sorted(value)}
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


# ---- random records ------------------------------------------------------------------------


def random_records(protocol: critlang.Protocol, count: int, seed: int) -> list[dict[str, Any]]:
    """Records that reach the protocol's boundaries: its own numbers, just beside them, and
    values far off, with a share of every element unknown."""
    rng = random.Random(seed)
    program = protocol.lowered.program
    numbers = sorted(
        {
            to_decimal(node.value)
            for node in program.nodes()
            if isinstance(node, ir.Const) and isinstance(node.value, Fraction)
        }
    )
    days = [
        n.value
        for n in program.nodes()
        if isinstance(n, ir.Const) and isinstance(n.value, datetime.date)
    ]
    elements = protocol.checked.elements
    # The protocol's own example patients, in declared units, are the starting points of
    # most records: a few of their fields changed or left out reach every outcome.
    bases = [_base(protocol, e) for e in protocol.checked.protocol.examples]
    records = []
    for number in range(count):
        record: dict[str, Any] = {"id": f"r{number}"}
        if bases and rng.random() < 0.7:
            # A date is given whole: its last possible day would outlive a changed first day.
            record |= {
                k: v
                for k, v in rng.choice(bases).items()
                if v is not None and not k.endswith(" latest")
            }
            changed = rng.sample(
                [name for name, _ in program.elements], k=min(3, len(program.elements))
            )
        else:
            changed = [name for name, _ in program.elements]
        for name, kind in program.elements:
            if name not in changed:
                continue
            record.pop(name, None)
            if rng.random() < 0.2 or kind.kind in ("history", "code"):
                continue  # unknown; histories and codes are not drawn (the form has no field)
            element = elements[name]
            record[name] = _random_value(rng, kind, element.plausible_range, numbers, days)
        try:
            protocol.intake(record, 1)
        except RecordError:
            # An example's entries after a reference date drawn earlier: the histories
            # are left out (unknown) rather than the record made an error.
            kinds = protocol.checked.element_types
            record = {
                k: v for k, v in record.items() if k not in kinds or kinds[k].kind != "history"
            }
        records.append(record)
    return records


def _base(protocol: critlang.Protocol, example: Any) -> dict[str, Any]:
    """An example patient as a record: flat values in declared units (through intake),
    histories and codes as the example gives them (entry lists, `system:code`)."""
    record = example_record(example, protocol.checked.protocol)
    kinds = protocol.checked.element_types
    return {
        name: record[name]
        if name in kinds and kinds[name].kind in ("history", "code")
        else _plain(value)
        for name, value in protocol.intake(record, 1)[1].items()
    }


def _plain(value: Any) -> Any:
    """A value as a record states it: sets as lists, dates as ISO text."""
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def _random_value(
    rng: random.Random,
    kind: Any,
    limits: tuple[Decimal, Decimal] | None,
    numbers: list[Decimal],
    days: list[datetime.date],
) -> Any:
    if kind.kind == "boolean":
        return rng.choice([True, False])
    if kind.kind in ("enum", "ordinal"):
        return rng.choice(kind.values)
    if kind.kind == "set":
        return sorted(v for v in kind.values if rng.random() < 0.3)
    if kind.kind == "date":
        base = rng.choice(days) if days and rng.random() < 0.7 else datetime.date(2020, 1, 1)
        return (
            base + datetime.timedelta(days=rng.choice([-1, 0, 1, rng.randint(-900, 900)]))
        ).isoformat()
    low, high = limits if limits is not None else (Decimal(-1000), Decimal(1000))
    for _ in range(20):
        if numbers and rng.random() < 0.6:
            base = rng.choice(numbers)
            value = base + rng.choice(
                [Decimal(0), Decimal("0.001"), Decimal("-0.001"), Decimal(1), Decimal(-1)]
            )
        else:
            value = Decimal(rng.randint(int(low) * 100, int(high) * 100)) / 100
        if kind.integer:
            value = value.to_integral_value()
        if low <= value <= high:
            return value
    return low
