"""`critlang screen` of a Parquet population, end to end, against a hand-written DuckDB script.

    .venv/bin/python bench/bench_screen.py [--patients 1000000] [--write docs/benchmarks.md]

Whole processes on the same Parquet file: `critlang screen PROTOCOL DATA -o
results.parquet`, and two Python scripts that run a hand-written ctd_ild query
with DuckDB and write its results to Parquet:

- the criteria-only query of `bench/bench_sql.py` (criteria and status, no
  validation, no missing list), its results as they come;
- the same result file as critlang's, written by hand: the stages of
  `bench_sql.HANDWRITTEN_FULL` (validation, masking, missing list) and the flat
  result schema in words (`true`, `false`, `unknown`, `not applicable`, '' for a
  record in error). The bench checks that it equals critlang's file row for row.

Start-up, reading, screening and writing are all counted.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
from bench_sql import HANDWRITTEN, HANDWRITTEN_MISSING, HANDWRITTEN_STAGES, generate
from sections import write_section

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = ROOT / "protocols" / "ctd_ild.crit"
CRITLANG = Path(sys.executable).parent / "critlang"

SCRIPT = """
import sys
import duckdb
query = open(sys.argv[1], encoding="utf-8").read()
duckdb.sql(query).write_parquet(sys.argv[2])
"""


# The criteria in words, as a good engineer would write them for this protocol: a record in
# error has '' everywhere, a criterion that does not apply is 'not applicable'.
APPLIES = {"I4": "wocbp", "I5": "wocbp"}
CRITERIA = ("I1", "I2", "I3", "I4", "I5", "E1", "E2", "E3", "E4", "E5")


def word(criterion: str) -> str:
    value = criterion.lower()
    applies = APPLIES.get(criterion)
    not_applicable = f"WHEN NOT {applies} THEN 'not applicable' " if applies else ""
    return (
        f"CASE WHEN error IS NOT NULL THEN '' {not_applicable}WHEN {value} IS NULL THEN 'unknown' "
        f"WHEN {value} THEN 'true' ELSE 'false' END AS \"{criterion}\""
    )


HANDWRITTEN_FILE = (
    HANDWRITTEN_STAGES
    + "SELECT id, status, "
    + ", ".join(word(c) for c in CRITERIA)
    + f", {HANDWRITTEN_MISSING} AS missing, coalesce(error, '') AS error FROM s"
)


def same_file(ours: Path, theirs: Path) -> int:
    """Rows of one Parquet file that the other lacks, both ways (0: the same rows)."""
    one_way = "SELECT count(*) FROM (FROM read_parquet('{}') EXCEPT ALL FROM read_parquet('{}'))"
    return sum(
        int(duckdb.sql(one_way.format(a, b)).fetchall()[0][0])
        for a, b in ((ours, theirs), (theirs, ours))
    )


def timed(commands: list[list[str]], repeats: int) -> list[tuple[float, float]]:
    """For each command, (best wall-clock time, best CPU time: user + system of the process
    and its threads); the commands take turns, so that a burst of other work on the
    shared machine slows each of them alike.

    CPU time is the fairer measure on a machine others are using: it counts the
    work done, not the time spent waiting for a core.
    """
    best = [(float("inf"), float("inf")) for _ in commands]
    for _ in range(repeats):
        for index, command in enumerate(commands):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            seconds = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            best[index] = (min(best[index][0], seconds), min(best[index][1], cpu))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", type=Path, help="update this Markdown file's section")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        data = work / "patients.parquet"
        generate(data, args.patients)
        query = work / "query.sql"
        query.write_text(HANDWRITTEN.format(path=data), encoding="utf-8")
        full_query = work / "full.sql"
        full_query.write_text(HANDWRITTEN_FILE.format(path=data), encoding="utf-8")
        script = work / "handwritten.py"
        script.write_text(SCRIPT, encoding="utf-8")
        out, hand = work / "out.parquet", work / "hand_full.parquet"
        (baseline, baseline_cpu), (full, full_cpu), (critlang, critlang_cpu) = timed(
            [
                [sys.executable, str(script), str(query), str(work / "hand.parquet")],
                [sys.executable, str(script), str(full_query), str(hand)],
                [str(CRITLANG), "screen", str(PROTOCOL), str(data), "-o", str(out)],
            ],
            args.repeats,
        )
        differ = same_file(out, hand)
        if differ:
            raise SystemExit(
                f"the hand-written result file differs from critlang's ({differ} rows)"
            )
    ratio, cpu_ratio = critlang / full, critlang_cpu / full_cpu
    old_ratio, old_cpu_ratio = critlang / baseline, critlang_cpu / baseline_cpu
    met = "met" if cpu_ratio <= 1.5 else "not met"
    table = "\n".join(
        [
            f"Measured by `bench/bench_screen.py --patients {args.patients}`: whole processes on "
            f"the same Parquet file of {args.patients:,} generated patients (best of "
            f"{args.repeats}, taking turns; {os.cpu_count()} cores, DuckDB's default threads, load average "
            f"{os.getloadavg()[0]:.1f} at the end).",
            "",
            "| path | time | relative | CPU time | relative |",
            "|---|---:|---:|---:|---:|",
            f"| hand-written DuckDB script, the same result file (validation, missing list, words) "
            f"| {full:.2f} s | 1.00x | {full_cpu:.2f} s | 1.00x |",
            f"| `critlang screen ctd_ild.crit patients.parquet -o results.parquet` | {critlang:.2f} s"
            f" | {ratio:.2f}x | {critlang_cpu:.2f} s | {cpu_ratio:.2f}x |",
            f"| hand-written DuckDB script, criteria and status only (results to Parquet) "
            f"| {baseline:.2f} s | {baseline / full:.2f}x | {baseline_cpu:.2f} s "
            f"| {baseline_cpu / full_cpu:.2f}x |",
            "",
            f"- Against the script that writes the same result file: **{cpu_ratio:.2f}x** the CPU "
            f"time; the target (at most 1.5x a hand-written DuckDB script) is {met}. That script",
            "  runs `bench_sql.HANDWRITTEN_FULL`'s stages (every value checked against the data",
            "  dictionary, the first failure named in critlang's words, the missing list of",
            "  undetermined patients) and writes the criteria as words; its file equals critlang's",
            "  row for row. critlang also starts its pipeline (parse, check, lower, generate the",
            "  SQL), counts the attrition (the script does not) and writes through a temporary file.",
            f"- Against the script that computes the criteria and the status only: {old_cpu_ratio:.2f}x "
            f"the CPU time ({old_ratio:.2f}x the wall-clock time).",
            "- The file is read once: the query's rows go straight into the result file, in",
            "  record order, and the attrition counts the result file's words, grouped first",
            "  (see the next section for where the time goes).",
            "- The target is 1.5x; the load average says how busy the machine was: on a shared",
            "  machine the CPU-time ratio is the steadier figure.",
            "- A Parquet file is screened where it lies; CSV and JSON go through Python's intake",
            "  first and screen some thousands of records per second (docs/sql.md).",
        ]
    )
    print(table)
    if args.write is not None:
        write_section(args.write, "## `critlang screen` end to end", table)


if __name__ == "__main__":
    main()
