"""Columns in another unit on the SQL engines, read as the intake reads a record.

A column named `hba1c [mmol/mol]` is read by the element's declared `convert`
formula, `egfr [mL/min]` by its `accepts`, `temperature [[degF]]` with the
offset of its scale; a column in a unit the intake refuses makes each row that
gives it a value an error, with the intake's own words, and the others go on.
The valid units are in the conformance corpus (tests/conformance/record_units);
these tests cover what the corpus cannot say: errors, and `critlang screen`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import critlang
from critlang.cli import main
from critlang.records import read_records
from tests.conformance import engines

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL_PATH = ROOT / "tests" / "conformance" / "record_units.crit"
SOURCE = PROTOCOL_PATH.read_text(encoding="utf-8")
PROTOCOL = critlang.compile_source(SOURCE)


def quantity(value: str, unit: str) -> dict[str, Any]:
    return {"value": Decimal(value), "unit": unit}


FINE = {"hba1c_baseline": Decimal(10), "egfr": Decimal(60), "temperature": Decimal(37)}
FINE_SKIN = {**FINE, "skin": Decimal(98)}
# Each record gives one element in a unit of its own; the SQL adapters put it in a
# column `name [unit]`, so one table per unit, as a warehouse table would have.
RECORDS: list[dict[str, Any]] = [
    {"id": "mass-for-hba1c", **FINE_SKIN, "hba1c": quantity("64", "mg")},
    {"id": "minutes-for-egfr", **FINE_SKIN, "hba1c": 9, "egfr": quantity("30", "mL/s")},
    {"id": "not-ucum", **FINE_SKIN, "hba1c": 9, "temperature": quantity("37", "furlong")},
    {"id": "ifcc-out-of-range", **FINE_SKIN, "hba1c": quantity("250", "mmol/mol")},
    {"id": "kelvin-out-of-range", **FINE, "hba1c": 9, "skin": quantity("400", "K")},
    {"id": "ifcc-fine", **FINE_SKIN, "hba1c": quantity("64", "mmol/mol")},
    {"id": "hba1c-missing", **FINE_SKIN},
    {"id": "fahrenheit-fever", **FINE_SKIN, "hba1c": 9, "temperature": quantity("100.4", "[degF]")},
]
# Worked by hand: 64 mg is a mass, not a fraction; mL/s is a flow, not a flow per
# 1.73 m2; 250 mmol/mol is 25.022 %, 400 K is 260.33 degF, both out of range;
# 64 mmol/mol is 8.00672 %; 100.4 degF is 38 Cel, a fever.
STATUSES = {
    "mass-for-hba1c": "error",
    "minutes-for-egfr": "error",
    "not-ucum": "error",
    "ifcc-out-of-range": "error",
    "kelvin-out-of-range": "error",
    "ifcc-fine": "eligible",
    "hba1c-missing": "undetermined",
    "fahrenheit-fever": "ineligible",
}
# What the intake says is wrong with the unit itself, the same on every engine.
UNIT_PROBLEMS = {
    "mass-for-hba1c": "'mg' (mass) does not convert to '%'",
    "minutes-for-egfr": "'mL/s'",
    "not-ucum": "'furlong' is not a UCUM unit",
}


def python_results() -> dict[str, Any]:
    return {result.id: result for result in PROTOCOL.evaluate_many(RECORDS)}


def check_engine(outcomes: list[engines.Outcome]) -> None:
    expected = python_results()
    assert {r.id: r.status for r in expected.values()} == STATUSES
    for record, outcome in zip(RECORDS, outcomes, strict=True):
        ident = record["id"]
        assert outcome["status"] == STATUSES[ident], (ident, outcome)
        if ident in UNIT_PROBLEMS:
            # The column is named, then the intake's own words for the unit.
            sql_problem = outcome["error"].split("]': ", 1)[1]
            assert UNIT_PROBLEMS[ident] in sql_problem
            assert sql_problem in str(expected[ident].error), ident
        if outcome["status"] != "error":
            words = {c.id: c.value_word for c in expected[ident].criteria}
            assert outcome["criteria"] == words, ident


def test_duckdb_reads_each_column_unit_as_the_intake_does() -> None:
    check_engine(engines.duckdb(SOURCE, RECORDS))


def test_postgres_reads_each_column_unit_as_the_intake_does(postgres_url: str) -> None:
    check_engine(engines.postgres(SOURCE, RECORDS, postgres_url))


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from critlang import screen

    session = screen.spark_session()
    yield session
    session.stop()


@pytest.mark.spark
def test_spark_reads_each_column_unit_as_the_intake_does(spark: Any) -> None:
    check_engine(engines.spark(SOURCE, RECORDS, spark))


# ---- end to end through `critlang screen` ---------------------------------------------

HEADER = [
    "id",
    "hba1c [mmol/mol]",
    "hba1c_baseline",
    "egfr [mL/min]",
    "temperature [[degF]]",
    "skin [Cel]",
    "weight [kg]",
]
ROWS = [
    # 64 mmol/mol = 8.00672 %; 98.6 degF = 37 Cel; 37 Cel = 98.6 degF: eligible.
    ["a", "64", "9.1", "30", "98.6", "37", ""],
    # 63.926 mmol/mol = 7.99995048 %: under 8, ineligible.
    ["b", "63.926", "9.1", "30", "98.6", "37", ""],
    # 100.4 degF = 38 Cel exactly: a fever, ineligible.
    ["c", "64", "9.1", "30", "100.4", "37", ""],
    # 34.999999 Cel = 94.9999982 degF: cold skin, ineligible.
    ["d", "64", "9.1", "30", "98.6", "34.999999", ""],
    # 250 mmol/mol = 25.022 %: outside 3 to 20, an error.
    ["e", "250", "9.1", "30", "98.6", "37", ""],
    # No HbA1c: I1 and I2 unknown, undetermined.
    ["f", "", "9.1", "30", "98.6", "37", ""],
]
SCREENED = {
    "a": "eligible",
    "b": "ineligible",
    "c": "ineligible",
    "d": "ineligible",
    "e": "error",
    "f": "undetermined",
}


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_parquet(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    """The same table typed: numbers as DECIMAL(18, 6), as a warehouse extract holds them."""
    columns: dict[str, Any] = {"id": pa.array([row[0] for row in rows])}
    for index, name in enumerate(header[1:], start=1):
        values = [Decimal(row[index]) if row[index] else None for row in rows]
        columns[name] = pa.array(values, pa.decimal128(18, 6))
    pq.write_table(pa.table(columns), path)
    return path


def screened(data: Path, out: Path) -> dict[str, dict[str, str]]:
    outcome = CliRunner().invoke(main, ["screen", str(PROTOCOL_PATH), str(data), "-o", str(out)])
    assert outcome.exit_code in (0, 2), outcome.output
    return {row["id"]: row for row in csv.DictReader(out.open(encoding="utf-8"))}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_screen_reads_accepted_converted_and_temperature_columns(
    suffix: str, tmp_path: Path
) -> None:
    """CSV goes through Python's intake; Parquet is read in place by the DuckDB query.
    Both give the hand-worked statuses, and eval's answers."""
    write = write_csv if suffix == ".csv" else write_parquet
    data = write(tmp_path / f"patients{suffix}", HEADER, ROWS)
    rows = screened(data, tmp_path / "results.csv")
    assert {ident: row["status"] for ident, row in rows.items()} == SCREENED
    assert "plausible range" in rows["e"]["error"] or "from 3 to 20" in rows["e"]["error"]
    expected = PROTOCOL.screen(read_records(data, PROTOCOL.checked))
    for result in expected:
        assert rows[result.id]["status"] == result.status
        for criterion in result.criteria:
            assert rows[result.id][criterion.id] == criterion.value_word, result.id


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_screen_makes_each_row_in_a_refused_unit_an_error_and_goes_on(
    suffix: str, tmp_path: Path
) -> None:
    header = ["id", "hba1c [mg]", "hba1c_baseline", "egfr", "temperature", "skin"]
    rows = [
        ["given", "64", "9.1", "30", "37", "98"],  # 64 mg of HbA1c: refused
        ["absent", "", "9.1", "30", "37", "98"],  # no HbA1c: undetermined, not an error
    ]
    write = write_csv if suffix == ".csv" else write_parquet
    data = write(tmp_path / f"patients{suffix}", header, rows)
    results = screened(data, tmp_path / "results.csv")
    assert results["given"]["status"] == "error"
    assert "'mg' (mass) does not convert to '%'" in results["given"]["error"]
    assert "hba1c" in results["given"]["error"]
    assert results["absent"]["status"] == "undetermined"
    assert results["absent"]["error"] == ""


UNBOUNDED = """
protocol unbounded
data
  temp: quantity 'Cel'
  score: quantity '%' convert '{points}' as -0.5 * value + 30
exclusion E1 "Fever" met when temp >= 38 'Cel'
inclusion I1 "Score" met when score > 5% and score + 1% < 20%
"""


def test_formulas_without_a_range_and_with_a_negative_scale_agree_with_the_intake() -> None:
    """No plausible range bounds the column, and a formula may fall as its value rises:
    the SQL still reads every value exactly as the intake does."""
    records = [
        {"id": "a", "temp": quantity("100.4", "[degF]"), "score": quantity("40", "{points}")},
        {"id": "b", "temp": quantity("100.3", "[degF]"), "score": quantity("50", "{points}")},
        {"id": "c", "temp": quantity("-40", "[degF]"), "score": quantity("49.99", "{points}")},
        {"id": "d", "temp": quantity("311.15", "K"), "score": quantity("20", "{points}")},
    ]
    protocol = critlang.compile_source(UNBOUNDED)
    expected = {
        r.id: (r.status, {c.id: c.value_word for c in r.criteria})
        for r in protocol.evaluate_many(records)
    }
    # 100.4 degF is 38 Cel; -40 degF is -40 Cel; 40 points are 10 %, 50 are 5 % (not
    # over 5), 49.99 are 5.005 %, 20 are 20 % (20 + 1 is not under 20).
    assert {ident: words for ident, (_, words) in expected.items()} == {
        "a": {"E1": "true", "I1": "true"},
        "b": {"E1": "false", "I1": "false"},
        "c": {"E1": "false", "I1": "true"},
        "d": {"E1": "true", "I1": "false"},
    }
    outcomes = engines.duckdb(UNBOUNDED, records)
    for record, outcome in zip(records, outcomes, strict=True):
        status, words = expected[record["id"]]
        assert (outcome["status"], outcome["criteria"]) == (status, words), record["id"]
