"""`make fuzz`: random protocols and records through every engine, counting disagreements.

Protocols come from the Hypothesis generators of tests/properties/test_evaluator.py
(`random_protocols`, built on `Writer`: flat values) and random_time.py
(`random_time_protocols`: dates, `as of`, windows, histories, code lists,
integers); `--generator` picks one or both (alternately, the default). Each
gets many random records, drawn with a seeded `random.Random` from the same
value pools as `element_values` there (a Hypothesis example cannot hold
hundreds of records). Every (protocol, record)
pair goes through the engines named on the command line via the adapters of
engines.py; the Python evaluator's outcome is the reference the others are
compared with, on what each reports. z3 runs only the first `--z3-records` records
of each protocol (a solver call each), and one record of every fifth protocol with
dates and histories (a solver call there takes seconds).

    python -m tests.conformance.fuzz --pairs 100000 --engines duckdb,z3,postgres

prints the number of pairs run and, per engine, the pairs compared, those that
disagreed, those whose SQL was refused as too wide for exact decimals (a
documented limit, with a location) and those on which the engine failed (an
error while running); it writes the first disagreements and failures of each
engine, with their protocol and record, to `--report` (JSON lines). Every number
and quantity gets a plausible range (see RANGE) unless `--no-ranges`.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from critlang import sql
from tests.conformance import engines
from tests.conformance.random_time import random_time_protocols, random_time_records
from tests.properties.test_evaluator import (
    ENUM,
    NUMBERS,
    SCALE,
    SET,
    UNITS,
    Element,
    RandomProtocol,
    random_protocols,
)

REFERENCE = "python-evaluate"
Z3_TIME_EVERY = 5  # z3 answers one record of every fifth protocol with dates and histories
KEPT = 20  # protocols per engine whose first disagreement goes into the report
# Numbers are drawn from -5 to 100 in some unit; in the element's unit that is at most
# 1000 times as much (g/L into mg/L). Without a range SQL allows 18 integer digits, and
# most products of three such numbers need more than 38: the generator refuses them.
NUMERIC = re.compile(r"^(  [a-z0-9_]+: (?:number|quantity '[^']*'))$", re.MULTILINE)
RANGE = " range -5000 to 100000"


def with_ranges(source: str) -> str:
    """The protocol with a plausible range on every number and quantity."""
    return NUMERIC.sub(lambda m: m.group(1) + RANGE, source)


def random_value(rng: random.Random, element: Element, unit: str | None) -> Any:
    """A value as `element_values` draws it; a quantity in `unit` when one is given."""
    if element.kind == "boolean":
        return rng.random() < 0.5
    if element.kind == "enum":
        return rng.choice(ENUM)
    if element.kind == "ordinal":
        return rng.choice(SCALE)
    if element.kind == "set":
        return rng.sample(SET, rng.randint(0, len(SET)))
    if rng.random() < 0.5:
        number = Decimal(rng.choice(NUMBERS))
    else:
        number = Decimal(rng.randint(-500, 10000)) / 100
    if element.kind in ("conc", "vol") and unit is not None:
        return {"value": number, "unit": unit}
    return number


GENERATORS = {
    "flat": random_protocols,
    "time": random_time_protocols,
    "both": lambda: st.one_of(random_protocols(), random_time_protocols()),
}


def random_records(
    rng: random.Random, generated: RandomProtocol, count: int
) -> list[dict[str, Any]]:
    """`count` records; each element is given in one unit per protocol, and is absent
    from a record with a probability drawn per protocol (0 makes fully known records)."""
    if generated.source.startswith("protocol random_time"):
        return random_time_records(rng, generated, count)
    units = {
        e.name: rng.choice([None, *UNITS[e.kind]]) if e.kind in UNITS else None
        for e in generated.elements
    }
    gaps = rng.choice([0.0, 0.1, 0.3])
    records = []
    for number in range(count):
        record: dict[str, Any] = {"id": f"r{number}"}
        for element in generated.elements:
            if rng.random() >= gaps:
                record[element.name] = random_value(rng, element, units[element.name])
        records.append(record)
    return records


class Tally:
    def __init__(self, report: Path) -> None:
        self.protocols = 0
        self.pairs = 0
        self.compared: Counter[str] = Counter()
        self.disagreements: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.report = report
        self.kept: dict[str, set[str]] = {}
        report.write_text("", encoding="utf-8")

    def disagree(self, engine: str, source: str, record: Any, expected: Any, actual: Any) -> None:
        self.disagreements[engine] += 1
        self.keep(engine, source, record, expected, actual)

    def keep(self, engine: str, source: str, record: Any, expected: Any, actual: Any) -> None:
        """Write one disagreement (or failure) to the report: the first of a protocol,
        for the first few protocols of each engine."""
        kept = self.kept.setdefault(engine, set())
        if source not in kept and len(kept) < KEPT:
            kept.add(source)
            entry = {
                "engine": engine,
                "protocol": source,
                "record": record,
                REFERENCE: expected,
                engine: actual,
            }
            with self.report.open("a", encoding="utf-8") as out:
                out.write(json.dumps(entry, default=str) + "\n")


def compare(
    tally: Tally,
    engine: str,
    source: str,
    records: Sequence[dict[str, Any]],
    reference: Sequence[engines.Outcome],
    outcomes: Sequence[engines.Outcome],
) -> None:
    level = engines.REPORTS[engine]
    for record, expected, actual in zip(records, reference, outcomes, strict=True):
        wanted = {"status": expected["status"]}
        got = {"status": actual["status"]}
        if level != engines.STATUS:
            keys = [k for k in expected["criteria"] if level == engines.PARTS or "." not in k]
            wanted["criteria"] = {k: expected["criteria"][k] for k in keys}
            got["criteria"] = {k: actual["criteria"].get(k) for k in keys}
        tally.compared[engine] += 1
        if wanted != got:
            tally.disagree(engine, source, record, wanted, got)


def run_protocol(
    tally: Tally,
    adapters: dict[str, Callable[[str, Sequence[dict[str, Any]]], list[engines.Outcome]]],
    generated: RandomProtocol,
    rng: random.Random,
    per_protocol: int,
    z3_records: int,
    ranges: bool,
) -> None:
    source = with_ranges(generated.source) if ranges else generated.source
    records = random_records(rng, generated, per_protocol)
    timed = generated.source.startswith("protocol random_time")
    reference = engines.python_evaluate(source, records)
    tally.protocols += 1
    tally.pairs += len(records)
    for engine, adapter in adapters.items():
        chosen = list(range(len(records)))
        if engine in engines.FULLY_KNOWN_ONLY:
            known = [i for i in chosen if engines.fully_known(source, records[i])]
            chosen = known[:z3_records]
            if not chosen:
                continue
        if engine == "z3":
            chosen = chosen[:z3_records]  # a solver call each
            if timed:
                # Histories make a solver call take seconds: one record of every fifth.
                chosen = chosen[:1] if tally.protocols % Z3_TIME_EVERY == 0 else []
            if not chosen:
                continue
        subset = [records[i] for i in chosen]
        try:
            outcomes = adapter(source, subset)
        except sql.SqlError:
            # Too wide for exact SQL decimals: the generator refuses, with a location.
            tally.refused[engine] += len(subset)
            continue
        except Exception as error:  # an engine that fails on a batch is a disagreement too
            tally.failed[engine] += len(subset)
            tally.keep(engine, source, subset[0], reference[chosen[0]], repr(error))
            continue
        compare(tally, engine, source, subset, [reference[i] for i in chosen], outcomes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--per-protocol", type=int, default=200)
    parser.add_argument("--z3-records", type=int, default=5)
    parser.add_argument(
        "--engines",
        # ELM is left to --engines: CQL's 8 decimal places can differ from critlang's
        # decimals on purpose (docs/export.md), which would fail the run.
        default="python-status,duckdb,z3,postgres,javascript",
        help="compared with the evaluator",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--generator",
        choices=sorted(GENERATORS),
        default="both",
        help="flat values, dates and histories, or both",
    )
    parser.add_argument(
        "--no-ranges", action="store_true", help="keep numbers without a plausible range"
    )
    parser.add_argument("--report", type=Path, default=Path("fuzz-disagreements.jsonl"))
    options = parser.parse_args(argv)

    names = [n for n in options.engines.split(",") if n]
    unknown = [n for n in names if n not in engines.REPORTS or n == REFERENCE]
    if unknown:
        parser.error(
            f"unknown engine(s): {', '.join(unknown)}; choose from {list(engines.REPORTS)}"
        )
    adapters: dict[str, Any] = {
        "python-status": engines.python_status,
        "duckdb": engines.duckdb,
        "z3": engines.z3,
        "javascript": engines.javascript,
        "elm": engines.elm,
    }
    server = session = None
    if "postgres" in names:
        from tests import pg

        bin_dir = pg.binaries()
        if bin_dir is None:
            parser.error("PostgreSQL is not installed: apt-get install postgresql")
        server = pg.Server(bin_dir)
        adapters["postgres"] = functools.partial(engines.postgres, url=server.start())
    if "spark" in names:
        from critlang import screen

        session = screen.spark_session()
        adapters["spark"] = functools.partial(engines.spark, session=session)
    adapters = {n: adapters[n] for n in names}

    tally = Tally(options.report)
    protocols = -(-options.pairs // options.per_protocol)
    rng = random.Random(options.seed)
    started = time.monotonic()

    @settings(
        max_examples=protocols,
        database=None,
        deadline=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(GENERATORS[options.generator]())
    def one(generated: RandomProtocol) -> None:
        run_protocol(
            tally,
            adapters,
            generated,
            rng,
            options.per_protocol,
            options.z3_records,
            not options.no_ranges,
        )
        if tally.protocols % 50 == 0:
            print(f"{tally.pairs} pairs...", file=sys.stderr, flush=True)

    try:
        # Hypothesis stops early once it has no new protocols to offer: go round again.
        while tally.pairs < options.pairs:
            before = tally.pairs
            one()
            if tally.pairs == before:
                break
    finally:
        if server is not None:
            server.stop()
        if session is not None:
            session.stop()

    elapsed = time.monotonic() - started
    print(
        f"{tally.pairs} (protocol, record) pairs, {tally.protocols} random protocols, {elapsed:.0f} s"
    )
    print(f"reference: {REFERENCE}")
    for engine in names:
        refused = f", {tally.refused[engine]} refused" if tally.refused[engine] else ""
        failed = f", {tally.failed[engine]} failed" if tally.failed[engine] else ""
        print(
            f"{engine}: {tally.compared[engine]} compared, "
            f"{tally.disagreements[engine]} disagreed{refused}{failed}"
        )
    total = sum(tally.disagreements.values()) + sum(tally.failed.values())
    if total:
        print(f"first disagreements of each engine: {options.report}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
