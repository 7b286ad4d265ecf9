"""`critlang screen --omop` on DuckDB against a hand-written OMOP query of the same criteria.

    .venv/bin/python bench/bench_omop.py [--persons 1000000] [--rows 50000000] [--write docs/benchmarks.md]
    .venv/bin/python bench/bench_omop.py --engines --persons 100000 --rows 2000000 [--write ...]

A synthetic OMOP CDM database (person, concept, measurement) is generated in
a DuckDB file: each person has `rows / persons` measurements over two years,
half of them serum creatinine (LOINC 2160-0) in mg/dL or umol/L, the rest
other concepts. The protocol: adult, and the latest creatinine within 90
days below 1.4 mg/dL. critlang generates the SQL from the binding (looking
codes and units up first, counting problems after); the hand-written query
does the same selection with the same rules (units converted, disagreeing
values on the latest day unknown) and also writes a status per person and
counts them. Both run in the same process on the same file; best of repeats.

With --engines, the same database is also screened from Parquet on DuckDB,
from a PostgreSQL server (Debian's binaries, started for the run, as the
tests start it) and on Spark local[2], each timed end to end.
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from pathlib import Path

import duckdb
from sections import write_section

from critlang.bindings.binding import check_binding
from critlang.pipeline import compile_source
from critlang.screen_omop import run

PROTOCOL = """\
protocol bench_omop
data
  age: quantity 'a' range 0 to 130
  creatinine: quantity 'mg/dL' range 0 to 40 molar mass 113.12 'g/mol'
inclusion I1 "Adult"
  met when age >= 18 'a'
exclusion E1 "Poor kidney function"
  met when creatinine >= 1.4 'mg/dL'
"""

BINDING = """\
protocol: bench_omop
omop:
  age:
    person: birth_date
  creatinine:
    measurement: [loinc:2160-0]
    select: latest within 90 days
"""

AS_OF = datetime.date(2019, 7, 1)

GENERATE = """
CREATE TABLE person AS
SELECT range AS person_id, CASE WHEN range % 2 = 0 THEN 8532 ELSE 8507 END AS gender_concept_id,
       1930 + range % 80 AS year_of_birth, 1 + range % 12 AS month_of_birth,
       1 + range % 28 AS day_of_birth
FROM range({persons});
CREATE TABLE concept AS SELECT * FROM (VALUES
  (3016723, 'Creatinine', 'LOINC', '2160-0'),
  (3013682, 'Urea nitrogen', 'LOINC', '3094-0'),
  (8840, 'milligram per deciliter', 'UCUM', 'mg/dL'),
  (8749, 'micromole per liter', 'UCUM', 'umol/L'))
  AS t(concept_id, concept_name, vocabulary_id, concept_code);
CREATE TABLE measurement AS
SELECT range AS measurement_id, range % {persons} AS person_id,
       CASE WHEN (range // {persons}) % 2 = 0 THEN 3016723 ELSE 3013682 END
         AS measurement_concept_id,
       0 AS measurement_source_concept_id,
       DATE '2019-07-01' - CAST((range * 7919) % 730 AS INTEGER) AS measurement_date,
       CASE WHEN range % 10 = 0 THEN round(40.0 + (range % 1500) / 10.0, 1)
            ELSE round(0.4 + (range % 150) / 100.0, 2) END AS value_as_number,
       0 AS value_as_concept_id,
       CASE WHEN range % 10 = 0 THEN 8749 ELSE 8840 END AS unit_concept_id,
       CAST(NULL AS VARCHAR) AS unit_source_value
FROM range({rows});
"""

HANDWRITTEN = """
CREATE OR REPLACE TABLE hand AS
WITH m AS (
  SELECT person_id, measurement_date AS d,
         CASE unit_concept_id WHEN 8840 THEN CAST(value_as_number AS DECIMAL(18, 6))
              WHEN 8749 THEN CAST(value_as_number AS DECIMAL(18, 6)) * 0.011312 END AS v
  FROM measurement
  WHERE measurement_concept_id = 3016723
    AND measurement_date BETWEEN DATE '2019-04-02' AND DATE '2019-07-01'
),
latest AS (SELECT person_id, max(d) AS d FROM m GROUP BY person_id),
creatinine AS (
  SELECT m.person_id,
         CASE WHEN count(v) = count(*) AND min(v) = max(v) THEN min(v) END AS v
  FROM m JOIN latest USING (person_id, d) GROUP BY m.person_id
),
scored AS (
  SELECT p.person_id,
         2019 - year_of_birth - CASE WHEN month_of_birth > 7
              OR (month_of_birth = 7 AND day_of_birth > 1) THEN 1 ELSE 0 END >= 18 AS adult,
         c.v >= 1.4 AS poor_kidneys
  FROM person p LEFT JOIN creatinine c USING (person_id)
)
SELECT person_id, adult, poor_kidneys,
       CASE WHEN adult IS FALSE OR poor_kidneys IS TRUE THEN 'ineligible'
            WHEN adult AND poor_kidneys IS FALSE THEN 'eligible'
            ELSE 'undetermined' END AS status
FROM scored;
SELECT status, count(*) FROM hand GROUP BY status ORDER BY status;
"""


def generate(path: Path, persons: int, rows: int) -> None:
    with duckdb.connect(str(path)) as connection:
        connection.execute(GENERATE.format(persons=persons, rows=rows))


def timed_handwritten(path: Path, repeats: int) -> tuple[float, dict[str, int]]:
    best, counts = float("inf"), {}
    for _ in range(repeats):
        started = time.perf_counter()
        with duckdb.connect() as connection:
            connection.execute(f"ATTACH '{path}' AS omop (READ_ONLY); USE omop.main;")
            connection.execute("ATTACH ':memory:' AS work; USE omop.main;")
            query = HANDWRITTEN.replace("CREATE OR REPLACE TABLE hand", "CREATE TABLE work.hand")
            query = query.replace("FROM hand GROUP", "FROM work.hand GROUP")
            counts = {str(s): int(n) for s, n in connection.execute(query).fetchall()}
        best = min(best, time.perf_counter() - started)
    return best, counts


def timed_critlang(
    path: Path, repeats: int, count_absent: bool = True
) -> tuple[float, dict[str, int]]:
    protocol = compile_source(PROTOCOL, "bench_omop.crit")
    binding, diagnostics = check_binding(BINDING, "bench_omop.bind.yaml", protocol.checked)
    assert binding is not None, diagnostics
    best, counts = float("inf"), {}
    for _ in range(repeats):
        started = time.perf_counter()
        done = run(protocol.checked, binding, str(path), AS_OF, count_absent=count_absent)
        best = min(best, time.perf_counter() - started)
        counts = {str(s): n for s, n in done.attrition.statuses.items() if n}
    return best, counts


def timed_engines(path: Path, folder: Path) -> dict[str, float]:
    """screen --omop on DuckDB from Parquet, on PostgreSQL and on Spark: seconds, one run each."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import psycopg

    from critlang.screen import spark_session
    from tests import pg

    protocol = compile_source(PROTOCOL, "bench_omop.crit")
    binding, _ = check_binding(BINDING, "bench_omop.bind.yaml", protocol.checked)
    assert binding is not None
    parquet = folder / "parquet"
    parquet.mkdir()
    with duckdb.connect(str(path), read_only=True) as connection:
        for table in ("person", "concept", "measurement"):
            connection.execute(f"COPY {table} TO '{parquet / table}.parquet' (FORMAT parquet)")
    times: dict[str, float] = {}
    statuses: list[dict[str, int]] = []

    def timed(name: str, database: str, **options: object) -> None:
        started = time.perf_counter()
        done = run(protocol.checked, binding, database, AS_OF, **options)  # type: ignore[arg-type]
        times[name] = time.perf_counter() - started
        statuses.append(dict(done.attrition.statuses))

    timed("DuckDB, Parquet tables", str(parquet))
    bin_dir = pg.binaries()
    if bin_dir is not None:
        server = pg.Server(bin_dir)
        try:
            url = server.start()
            with psycopg.connect(url, autocommit=True) as connection:
                types = "person_id BIGINT, gender_concept_id BIGINT, year_of_birth BIGINT, "
                types += "month_of_birth BIGINT, day_of_birth BIGINT"
                connection.execute(f"CREATE TABLE person ({types})")
                connection.execute(
                    "CREATE TABLE concept (concept_id BIGINT, concept_name TEXT, "
                    "vocabulary_id TEXT, concept_code TEXT)"
                )
                connection.execute(
                    "CREATE TABLE measurement (measurement_id BIGINT, person_id BIGINT, "
                    "measurement_concept_id BIGINT, measurement_source_concept_id BIGINT, "
                    "measurement_date DATE, value_as_number DOUBLE PRECISION, "
                    "value_as_concept_id BIGINT, unit_concept_id BIGINT, unit_source_value TEXT)"
                )
                with duckdb.connect(str(path), read_only=True) as source:
                    for table in ("person", "concept", "measurement"):
                        rows = source.execute(f"SELECT * FROM {table}").fetchall()
                        with connection.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                            for row in rows:
                                copy.write_row(row)
                connection.execute("ANALYZE")
            timed("PostgreSQL", url)
        finally:
            server.stop()
    session = spark_session()
    try:
        timed("Spark local[2], Parquet tables", str(parquet), engine="spark", session=session)
    finally:
        session.stop()
    assert all(s == statuses[0] for s in statuses), statuses
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", type=Path, help="update this Markdown file's section")
    parser.add_argument("--engines", action="store_true", help="also PostgreSQL and Spark")
    args = parser.parse_args()
    if args.engines:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "omop.duckdb"
            generate(path, args.persons, args.rows)
            hand, _ = timed_handwritten(path, 1)
            times = timed_engines(path, Path(folder))
        body = (
            f"`bench/bench_omop.py --engines --persons {args.persons} --rows {args.rows}`: "
            "the same screening, end to end (codes and units looked up, patient table, "
            "screening query, attrition, problem counts), one run each, same statuses:\n\n"
            "| engine | seconds |\n| --- | ---: |\n"
            f"| hand-written query on DuckDB (the file) | {hand:.2f} |\n"
            + "".join(f"| {name} | {seconds:.2f} |\n" for name, seconds in times.items())
        )
        print(body)
        if args.write is not None:
            write_section(args.write, "## Screening from OMOP on PostgreSQL and Spark", body)
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "omop.duckdb"
        started = time.perf_counter()
        generate(path, args.persons, args.rows)
        made = time.perf_counter() - started
        # Interleaved, so that a busy spell of the machine slows every side alike.
        hand = ours = lean = float("inf")
        for _ in range(args.repeats):
            seconds, hand_counts = timed_handwritten(path, 1)
            hand = min(hand, seconds)
            seconds, our_counts = timed_critlang(path, 1)
            ours = min(ours, seconds)
            seconds, lean_counts = timed_critlang(path, 1, count_absent=False)
            lean = min(lean, seconds)
    assert hand_counts == our_counts == lean_counts, (hand_counts, our_counts, lean_counts)
    body = (
        f"`bench/bench_omop.py --persons {args.persons} --rows {args.rows}`: a synthetic OMOP "
        f"database of {args.persons:,} persons and {args.rows:,} measurement rows (half of them "
        f"creatinine, a tenth of those in umol/L), made in {made:.1f} s. Screening it for "
        '"adult, and the latest creatinine within 90 days below 1.4 mg/dL" on DuckDB, best of '
        f"{args.repeats} (the sides interleaved), in one process on the same file:\n\n"
        "| | seconds (ratio) |\n| --- | ---: |\n"
        f"| hand-written OMOP query (status per person, counts) | {hand:.2f} |\n"
        "| `critlang screen --omop` without the count of patients with no data at all "
        f"(`count_absent=False`) | {lean:.2f} ({lean / hand:.2f}x) |\n"
        "| `critlang screen --omop`: codes and units looked up, patient table, screening "
        f"query, attrition, every problem count | {ours:.2f} ({ours / hand:.2f}x) |\n\n"
        "The patients with no creatinine at all are counted from the patient table (those "
        "with a record in the window) and one look among the records of the others; "
        "the hand-written query does not count them.\n\n"
        f"Both found {', '.join(f'{n:,} {s}' for s, n in sorted(our_counts.items()))}."
    )
    print(body)
    if args.write is not None:
        write_section(args.write, "## Screening from OMOP (DuckDB)", body)


if __name__ == "__main__":
    main()
