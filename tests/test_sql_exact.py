"""Exact numbers in SQL: long unit factors meet without overflow, nothing is rounded silently.

Each test reproduces a reported failure: DuckDB overflowing when conversion
factors of pressures meet (DLCO in mL/min/kPa against a protocol in
mL/min/mm[Hg]), and a value with more decimal places than SQL keeps being
rounded into another answer than the Python engine's.
"""

from __future__ import annotations

import csv
import itertools
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

import critlang
from critlang import screen, sql
from critlang.records import read_records
from tests.patients import ELIGIBLE
from tests.pg import screen_in_postgres

ROOT = Path(__file__).resolve().parents[1]
CTD_ILD = critlang.load(ROOT / "protocols" / "ctd_ild.crit")

PRESSURES = ["mm[Hg]", "kPa", "[psi]", "cm[H2O]", "Pa"]


def cell(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ";".join(value)
    return str(value)


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([[cell(v) for v in row] for row in rows])
    return path


def test_dlco_in_kpa_screens_as_eval_does(tmp_path: Path) -> None:
    """ctd_ild with DLCO columns in mL/min/kPa: DuckDB used to overflow a DECIMAL(18)."""
    names = list(CTD_ILD.checked.elements)
    header = ["id"] + [f"{n} [mL/min/kPa]" if n.startswith("dlco") else n for n in names]
    dlco = [("20", "19"), ("150", "127.5"), ("150", "135"), ("7.5", "")]
    rows = []
    for number, (baseline, current) in enumerate(dlco):
        record = {**ELIGIBLE, "fvc_current": Decimal("2.85"), "treatment_duration": 6}
        record.update(dlco_baseline=baseline, dlco_current=current, steroid_dose=60)
        rows.append([f"p{number}"] + [record.get(n, "") for n in names])
    data = write_csv(tmp_path / "patients.csv", header, rows)
    results = tmp_path / "results.parquet"
    screen.run(CTD_ILD.checked, data, "duckdb", results)
    relation = duckdb.sql(f"SELECT * FROM read_parquet('{results}')")
    got = {row[0]: dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()}
    expected = list(CTD_ILD.screen(read_records(data, CTD_ILD.checked)))
    assert {r.status for r in expected} >= {"eligible", "ineligible"}
    for result in expected:
        assert got[result.id]["status"] == result.status, result.id
        for criterion in result.criteria:
            assert got[result.id][criterion.id] == criterion.value_word, (result.id, criterion.id)


def pressure_protocol(declared: str, limit: str, column: str) -> critlang.Protocol:
    return critlang.compile_source(
        f"""protocol pressures
data
  x: quantity '{declared}' range 0 to 1000
  y: quantity '{limit}' range 0 to 1000
inclusion I1 "Above a limit"
  met when x > 7.5 '{limit}' and x between 0.0001 '{column}' and 20000 '{limit}'
inclusion I2 "Above another"
  met when x > y
inclusion I3 "Close to another"
  met when x - y < 3 '{column}'
""",
        "pressures.crit",
    )


PRESSURE_VALUES = [
    ("a", "12.5", "3.25"),
    ("b", "999", "0.5"),
    ("c", "0.75", "1000"),
    ("d", "", "7"),
]


@pytest.mark.parametrize(
    ("declared", "column", "limit"), list(itertools.product(PRESSURES, repeat=3))
)
def test_every_pressure_unit_triple_is_exact_on_duckdb(
    declared: str, column: str, limit: str
) -> None:
    """Columns, limits and declarations in any of five pressure units: same answers as eval."""
    protocol = pressure_protocol(declared, limit, column)
    header = [("id", "VARCHAR"), (f"x [{column}]", "VARCHAR"), ("y", "VARCHAR")]
    layout = sql.layout_from_schema(protocol.checked, header, "duckdb", text=True)
    connection = duckdb.connect()
    connection.register(
        "patients",
        pa.table({name: [row[i] for row in PRESSURE_VALUES] for i, (name, _) in enumerate(header)}),
    )
    result = connection.sql(sql.to_sql(protocol.checked, "patients", "duckdb", layout))
    rows = {row[0]: dict(zip(result.columns, row, strict=True)) for row in result.fetchall()}
    records = [
        {
            "id": ident,
            **({"x": {"value": Decimal(x), "unit": column}} if x else {}),
            "y": Decimal(y),
        }
        for ident, x, y in PRESSURE_VALUES
    ]
    for evaluated in protocol.evaluate_many(records):
        row = rows[evaluated.id]
        assert row["status"] == evaluated.status, (evaluated.id, row)
        for criterion in evaluated.criteria:
            assert row[criterion.id] is criterion.value, (evaluated.id, criterion.id)


@pytest.mark.parametrize(
    ("declared", "column", "limit"),
    [("mm[Hg]", "kPa", "[psi]"), ("kPa", "[psi]", "cm[H2O]"), ("[psi]", "Pa", "mm[Hg]")],
)
def test_pressure_units_on_postgres(
    postgres_url: str, declared: str, column: str, limit: str
) -> None:
    protocol = pressure_protocol(declared, limit, column)
    records = [
        {"id": ident, "x": Decimal(x) if x else None, "y": Decimal(y)}
        for ident, x, y in PRESSURE_VALUES
    ]
    rows = screen_in_postgres(postgres_url, protocol.checked, records)
    for evaluated in protocol.evaluate_many(records):
        assert rows[evaluated.id]["status"] == evaluated.status, evaluated.id
        for criterion in evaluated.criteria:
            assert rows[evaluated.id][criterion.id] is criterion.value


AGE = """protocol adults
data
  age: quantity 'a' range 0 to 130
  score: number
inclusion I1 "Adult"
  met when age >= 18 'a'
"""


def run_table(table: pa.Table) -> dict[str, dict[str, Any]]:
    protocol = critlang.compile_source(AGE, "adults.crit")
    connection = duckdb.connect()
    connection.register("patients", table)
    relation = connection.sql("SELECT * FROM patients")
    schema = list(zip(relation.columns, map(str, relation.types), strict=True))
    layout = sql.layout_from_schema(protocol.checked, schema, "duckdb", text=False)
    result = connection.sql(sql.to_sql(protocol.checked, "patients", "duckdb", layout))
    return {row[0]: dict(zip(result.columns, row, strict=True)) for row in result.fetchall()}


def test_more_decimal_places_than_sql_keeps_is_an_error_not_a_rounding() -> None:
    """Age 17.99999999999 (11 places) was read as 18.0000000000: eligible in SQL only."""
    protocol = critlang.compile_source(AGE, "adults.crit")
    assert protocol.evaluate({"age": Decimal("17.99999999999")}).status == "ineligible"
    ids = ["text", "double", "wide", "wide-zeros", "ten-places"]
    texts = ["17.99999999999", "18", "18", "18", "17.9999999999"]
    tables = {
        "text": pa.table({"id": ids, "age": texts}),
        "double": pa.table(
            {"id": ids, "age": [17.99999999999, 18.0, 18.5, 17.9999999999, 17.9999999999]}
        ),
        "wide": pa.table(
            {
                "id": ids,
                "age": pa.array(
                    [
                        Decimal("17.99999999999"),
                        Decimal("18"),
                        Decimal("18.00000000000000000000"),
                        Decimal("18.00000000000000000001"),
                        Decimal("17.9999999999"),
                    ],
                    pa.decimal128(38, 20),
                ),
            }
        ),
    }
    message = "column 'age': expected a number from 0 to 130 a, exactly in 10 decimal places"
    text = run_table(tables["text"])
    assert text["text"]["status"] == "error" and text["text"]["error"] == message
    assert text["ten-places"]["status"] == "ineligible"
    assert text["double"]["status"] == "eligible"
    double = run_table(tables["double"])
    assert double["text"]["status"] == "error"
    assert double["wide"]["status"] == "eligible"  # 18.5
    assert double["ten-places"]["status"] == "ineligible"
    wide = run_table(tables["wide"])
    assert wide["text"]["status"] == "error"
    assert wide["wide"]["status"] == "eligible"  # 18.00000000000000000000 is 18
    assert wide["wide-zeros"]["status"] == "error"  # 18.00000000000000000001 is not
    assert wide["ten-places"]["status"] == "ineligible"


def test_bad_text_makes_its_row_an_error_on_postgres(postgres_url: str) -> None:
    """PostgreSQL has no TRY_CAST: a bad cell must fail its row, never the query."""
    mix = critlang.load(ROOT / "tests" / "cases" / "sql" / "every_construct.crit")
    good = {"a": "2", "b": "4", "c": "120", "d": "2020-02-29", "e": "red", "g": "x; y"}
    records = [
        {"id": "good", **good},
        {"id": "number", **good, "a": "two"},
        {"id": "places", **good, "b": "4.00000000001"},
        {"id": "date", **good, "d": "2021-02-29"},
        {"id": "month", **good, "d": "2021-13-01"},
        {"id": "enum", **good, "e": "purple"},
        {"id": "set", **good, "g": "x|w"},
        {"id": "sign", **good, "a": "-"},
    ]
    rows = screen_in_postgres(postgres_url, mix.checked, records, text=True)
    assert rows["good"]["status"] != "error", rows["good"]
    expected = {
        "number": "column 'a'",
        "places": "column 'b'",
        "date": "column 'd'",
        "month": "column 'd'",
        "enum": "column 'e'",
        "set": "column 'g'",
        "sign": "column 'a'",
    }
    for ident, where in expected.items():
        assert rows[ident]["status"] == "error", rows[ident]
        assert rows[ident]["error"].startswith(where), rows[ident]


@pytest.mark.parametrize(
    ("decimal_type", "places"),
    [((4, 1), 1), ((3, 1), 1), ((9, 1), 1), ((6, 3), 3), ((18, 0), 0)],
)
def test_typed_decimal_columns_are_checked_against_their_range_as_read(
    decimal_type: tuple[int, int], places: int
) -> None:
    """A DECIMAL column of the query's own type (4, 1), a narrower one, a wider one whose
    values may not fit the range's digits, other places: read as they are, each value
    outside 0 to 130 makes its row an error in critlang's words, and the others go on."""
    precision, scale = decimal_type
    largest = Decimal(10 ** (precision - scale)) - Decimal(1).scaleb(-scale)
    values = {
        "low": Decimal(0),
        "adult": Decimal(18),
        "child": Decimal("17.9") if scale else Decimal(17),
        "high": Decimal(130) if precision - scale >= 3 else None,
        "over": Decimal("130.1") if scale and precision - scale >= 3 else None,
        "largest": largest,
        "negative": -largest,
        "missing": None,
    }
    table = pa.table(
        {"id": list(values), "age": pa.array(list(values.values()), pa.decimal128(*decimal_type))}
    )
    results = run_table(table)
    message = f"column 'age': expected a number from 0 to 130 a, exactly in {places} decimal places"
    expected = {"low": "ineligible", "adult": "eligible", "child": "ineligible"}
    expected["missing"] = "undetermined"
    for name, value in values.items():
        if name in expected:
            continue
        fits = value is None or 0 <= value <= 130
        expected[name] = ("eligible" if value is not None else "undetermined") if fits else "error"
    for name, status in expected.items():
        assert results[name]["status"] == status, name
        assert results[name]["error"] == (message if status == "error" else None), name
        if status == "error":
            assert results[name]["I1"] is None, name  # masked
