"""SQL generation for a large protocol: linear in criteria and data elements.

    .venv/bin/python bench/bench_sql_generate.py [--criteria 1000] [--elements 1000]
                                                 [--write docs/benchmarks.md]

A protocol is generated with the given number of data elements (quantities
with ranges, yes/no answers, enums) and criteria (each reading three elements,
with unit conversions, `between`, `applies when` and named parts). Timed, best
of 3, in this process:

- `critlang check`'s work: parse and check the text;
- `critlang sql`'s work: parse, check, lower and generate the DuckDB query text.

The target: generating SQL takes at most 5x the time of checking. Smaller
protocols show how the time grows; the query for the largest is run once on
DuckDB over one patient, so the figure is for a query that works.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import duckdb
from sections import write_section

from critlang import sql
from critlang.check import check_source

ROOT = Path(__file__).resolve().parent.parent
TARGET = 5.0


def protocol_text(criteria: int, elements: int) -> str:
    lines = [
        "protocol generated",
        '  title "Generated for the SQL generation benchmark"',
        "",
        "data",
    ]
    for i in range(elements):
        match i % 4:
            case 0:
                lines.append(f"  q{i}: quantity 'mg/dL' range 0 to 1000")
            case 1:
                lines.append(f"  q{i}: quantity 'kPa' range 0 to 200")
            case 2:
                lines.append(f"  q{i}: boolean")
            case _:
                lines.append(f"  q{i}: one of (low, mid, high)")
    lines.append("")
    for c in range(criteria):
        base = (c * 4) % (elements - elements % 4)
        a, b, d, e = base, base + 1, base + 2, base + 3  # mg/dL, kPa, yes/no, enum
        kind, letter = ("inclusion", "I") if c % 2 == 0 else ("exclusion", "E")
        lines.append(f'{kind} {letter}{c} "Criterion {c}"')
        if c % 5 == 0:
            lines.append(f"  applies when q{d}")
        if c % 3 == 0:
            lines += [
                "  met when any of [",
                f"    a: q{a} > 1.5 'g/L',",
                f"    b applies when q{e} in (high): q{b} between 10 'mm[Hg]' and 100 'mm[Hg]'",
                "  ]",
            ]
        else:
            lines.append(
                f"  met when (q{a} <= 250 'mg/dL' or q{b} > 12.5 'kPa') and not q{d} "
                f"or q{e} in (low, mid)"
            )
        lines.append("")
    return "\n".join(lines)


def best_of(repeats: int, work: object) -> float:
    assert callable(work)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(criteria: int, elements: int, repeats: int = 3) -> tuple[float, float, str]:
    text = protocol_text(criteria, elements)

    def check() -> None:
        checked, diagnostics = check_source(text, "generated.crit")
        assert checked is not None, [d.message for d in diagnostics if d.is_error]

    def generate() -> None:
        checked, _ = check_source(text, "generated.crit")
        assert checked is not None
        query[0] = sql.to_sql(checked, "patients", "duckdb", pretty=False)

    query = [""]
    return best_of(repeats, check), best_of(repeats, generate), query[0]


def runs_on_duckdb(criteria: int, elements: int, query: str) -> None:
    text = protocol_text(criteria, elements)
    checked, _ = check_source(text, "generated.crit")
    assert checked is not None
    connection = duckdb.connect()
    columns = ["'p1' AS id"]
    for name, kind in checked.element_types.items():
        value = {"quantity": "CAST(20 AS DECIMAL(18, 6))", "boolean": "true", "enum": "'mid'"}
        columns.append(f"{value[kind.kind]} AS {name}")
    connection.sql(f"CREATE TABLE patients AS SELECT {', '.join(columns)}")
    assert len(connection.sql(query).fetchall()) == 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--criteria", type=int, default=1000)
    parser.add_argument("--elements", type=int, default=1000)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    rows = []
    for fraction in (4, 2, 1):
        criteria, elements = args.criteria // fraction, args.elements // fraction
        check, generate, query = measure(criteria, elements)
        rows.append((criteria, elements, check, generate))
        print(
            f"{criteria} criteria, {elements} elements: check {check:.2f} s, sql {generate:.2f} s"
        )
    runs_on_duckdb(args.criteria, args.elements, query)
    criteria, elements, check, generate = rows[-1]
    ratio = generate / check
    table = [
        "| criteria | data elements | `critlang check` | `critlang sql` | ratio |",
        "|---:|---:|---:|---:|---:|",
    ]
    table += [f"| {c:,} | {e:,} | {k:.2f} s | {g:.2f} s | {g / k:.2f}x |" for c, e, k, g in rows]
    body = "\n".join(
        [
            f"Measured by `bench/bench_sql_generate.py --criteria {args.criteria} --elements "
            f"{args.elements}`: a generated protocol (quantities in mg/dL and kPa met by "
            "limits in g/L and mm[Hg], yes/no answers, enums; `applies when`, named parts "
            "and `between`), best of 3 in one process, on 2 cores.",
            "",
            *table,
            "",
            f"- Generating SQL (check, lower, build and print the DuckDB query) takes {ratio:.2f}x "
            f"the time of checking the same file (target: at most {TARGET:g}x); the time grows "
            "linearly with the protocol. The largest query runs on DuckDB over one patient.",
        ]
    )
    print(body)
    if args.write:
        write_section(args.write, "## SQL generation", body)
    if ratio > TARGET:
        raise SystemExit(f"SQL generation takes {ratio:.2f}x checking (target {TARGET}x)")


if __name__ == "__main__":
    main()
