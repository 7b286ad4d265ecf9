"""`critlang screen` of a Parquet file in place: one pass, results in record order.

The in-place path keeps the query's rows as the results, without a join back
to the records and without sorting them: DuckDB preserves the order of a scan
through projections, CREATE TABLE AS and COPY. These tests hold it to that on
a file of many row groups, which DuckDB reads on several threads.
"""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

import critlang
from critlang import screen
from critlang.records import read_records

ROOT = Path(__file__).resolve().parents[1]
CTD = critlang.load(ROOT / "protocols" / "ctd_ild.crit")
EXAMPLES = ROOT / "examples" / "patients.parquet"
COPIES = 5000


@pytest.fixture(scope="module")
def many_row_groups(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example patients copied until there are many row groups, each id unique."""
    path = tmp_path_factory.mktemp("population") / "patients.parquet"
    source = str(EXAMPLES).replace("'", "''")
    duckdb.sql(
        f"""
        COPY (
            SELECT * REPLACE (id || '-' || copy AS id)
            FROM read_parquet('{source}'), range({COPIES}) AS copies(copy)
            ORDER BY copy, id
        ) TO '{str(path).replace("'", "''")}' (FORMAT parquet, ROW_GROUP_SIZE 1024)
        """
    )
    assert pq.ParquetFile(path).num_row_groups > 8
    return path


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_results_keep_record_order_on_many_threads(
    many_row_groups: Path, tmp_path: Path, suffix: str
) -> None:
    results = tmp_path / f"results{suffix}"
    attrition = screen.run(CTD.checked, many_row_groups, "duckdb", results)
    written = duckdb.sql("SELECT id FROM read_parquet(?)", params=[str(many_row_groups)])
    expected_ids = [row[0] for row in written.fetchall()]
    if suffix == ".parquet":
        ids = [row["id"] for row in pq.read_table(results, columns=["id"]).to_pylist()]
    else:
        ids = [row["id"] for row in csv.DictReader(results.open(encoding="utf-8"))]
    assert ids == expected_ids
    assert attrition.total == len(expected_ids)


@pytest.mark.parametrize("output", [None, "results.parquet", "results.csv"])
def test_the_attrition_counts_what_the_evaluator_counts(
    many_row_groups: Path, tmp_path: Path, output: str | None
) -> None:
    """Counted over grouped results (without an output, over the query itself; with a
    Parquet file, over the words it holds), the attrition is the evaluator's."""
    written = None if output is None else tmp_path / output
    attrition = screen.run(CTD.checked, many_row_groups, "duckdb", written)
    results = list(CTD.screen(read_records(EXAMPLES, CTD.checked)))
    statuses = {name: 0 for name in attrition.statuses}
    for result in results:
        statuses[result.status] += COPIES
    assert dict(attrition.statuses) == statuses
    for step in attrition.steps:
        words = [
            next(c.value_word for c in result.criteria if c.id == step.id) for result in results
        ]
        assert step.true == COPIES * words.count("true"), step.id
        assert step.false == COPIES * words.count("false"), step.id
        assert step.unknown == COPIES * words.count("unknown"), step.id
        assert step.not_applicable == COPIES * words.count("not applicable"), step.id
    assert {step.not_applicable for step in attrition.steps} != {0}
    # Who remains after each criterion: no inclusion so far false, no exclusion true.
    screened = [r for r in results if r.status != "error"]
    for number, step in enumerate(attrition.steps, start=1):
        remaining = sum(
            not any(
                c.value_word == ("false" if c.kind == "inclusion" else "true")
                for c in result.criteria[:number]
            )
            for result in screened
        )
        assert step.remaining == COPIES * remaining, step.id
