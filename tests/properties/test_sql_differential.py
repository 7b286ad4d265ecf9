"""The SQL screening query against the Python engine, on random patients.

Random records, with missing values, out-of-range values and the exact
decimal boundaries of the protocols (FVC 3.0 -> 2.7 is a decline of exactly
10%), go through `Protocol.evaluate_many`, through DuckDB on every example,
and through PostgreSQL and Spark on a sample; every status, criterion and
part value, applicability and missing list must agree. Spark and PostgreSQL
get one batch of records per example, so each example is one query.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import critlang
from critlang import screen, sql
from critlang.check import Checked
from critlang.records import read_records
from tests.pg import screen_in_postgres
from tests.tables import arrow_table

ROOT = Path(__file__).resolve().parents[2]
CTD_ILD = critlang.load(ROOT / "protocols" / "ctd_ild.crit")
MIX = critlang.load(ROOT / "tests" / "cases" / "sql" / "every_construct.crit")

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SPARK_SETTINGS = settings(
    SETTINGS,
    max_examples=4,
    suppress_health_check=[*SETTINGS.suppress_health_check, HealthCheck.large_base_example],
)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    session = screen.spark_session()
    yield session
    session.stop()


# ---- records --------------------------------------------------------------------


def decimals(low: str, high: str, places: int = 2) -> st.SearchStrategy[Decimal]:
    scale = 10**places
    return st.integers(int(Decimal(low) * scale), int(Decimal(high) * scale)).map(
        lambda n: Decimal(n) / scale
    )


def pick(*values: str) -> st.SearchStrategy[Decimal]:
    return st.sampled_from([Decimal(v) for v in values])


def subsets(values: Sequence[str]) -> st.SearchStrategy[list[str]]:
    chosen = st.lists(st.sampled_from(values), unique=True, min_size=1, max_size=len(values))
    return st.integers(0, 9).flatmap(lambda n: st.just([]) if n == 9 else chosen)


def maybe(value: st.SearchStrategy[Any], absent: int) -> st.SearchStrategy[Any]:
    """The value, or missing (None) `absent` times in 20."""
    return st.integers(0, 19).flatmap(lambda n: st.none() if n >= 20 - absent else value)


def rarely(value: st.SearchStrategy[Any], usual: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`usual`, and one time in 20 `value` (an out-of-range or undeclared one)."""
    return st.integers(0, 19).flatmap(lambda n: value if n == 19 else usual)


def mostly(good: bool) -> st.SearchStrategy[bool]:
    """A yes/no answer that is usually `good`, so that some patients are eligible."""
    return st.sampled_from([good] * 9 + [not good])


ABSENT = st.sampled_from([0, 1, 2, 5])  # missing values per 20, drawn once per record


@st.composite
def declines(draw: st.DrawFn, percents: Sequence[str]) -> tuple[Decimal, Decimal]:
    """(baseline, current) with a decline that often sits exactly on a boundary."""
    baseline = draw(pick("3.0", "2.5", "4", "1.6") | decimals("0.5", "6"))
    percent = draw(st.sampled_from([Decimal(p) for p in percents]) | decimals("-5", "30"))
    return baseline, baseline * (1 - percent / 100)


EXCLUDING = ("improved_after_6_months", "pregnant", "breastfeeding", "hiv", "notifiable_infection")


@st.composite
def ctd_records(draw: st.DrawFn) -> dict[str, Any]:
    weight = draw(pick("40", "60", "62.5", "80") | decimals("30", "150", 1))
    dose = draw(
        st.sampled_from([weight * Decimal("0.8") + d for d in map(Decimal, ("0", "0.01", "-0.01"))])
        | decimals("0", "200", 1)
    )
    fvc = draw(declines(["5", "10", "15", "4.99", "10.01", "0"]))
    dlco = draw(declines(["10", "15", "9.99", "15.01"]))
    values: dict[str, st.SearchStrategy[Any]] = {
        "age": rarely(pick("131"), pick("19", "20", "80", "80.01", "45") | decimals("15", "90")),
        "sex": st.sampled_from(["female", "male"]),
        "ctd_diagnoses": subsets(CTD_ILD.checked.element_types["ctd_diagnoses"].values),
        "treatment_duration": pick("3", "3.01", "24", "24.01", "30") | decimals("0", "60"),
        "steroid_dose": st.just(dose),
        "body_weight": st.just(weight),
        "fvc_baseline": st.just(fvc[0]),
        "fvc_current": st.just(fvc[1]),
        "dlco_baseline": st.just(dlco[0] * 5),
        "dlco_current": st.just(dlco[1] * 5),
        "symptom_duration": pick("30.4375", "30.4376", "30", "700") | decimals("0", "400"),
        "pregnancy_test": st.sampled_from(["negative", "positive"]),
        "got": pick("80", "80.01", "79.99", "30") | decimals("0", "90"),
        "gpt": pick("80", "80.01", "30") | decimals("0", "90"),
        "creatinine": pick("1.4", "1.41", "1.39", "0.9") | decimals("0", "2"),
        "family_support_confirmed": mostly(True),
        "contraception": mostly(True),
        "willing_to_consent": mostly(True),
        **{name: mostly(False) for name in EXCLUDING},
    }
    absent = draw(ABSENT)
    record: dict[str, Any] = {}
    for name in CTD_ILD.checked.elements:
        value = draw(maybe(values.get(name, st.booleans()), absent))
        if value is not None:
            record[name] = value
    return record


DATES = st.dates(datetime.date(2019, 1, 1), datetime.date(2022, 12, 31)) | st.sampled_from(
    [datetime.date(2019, 6, 1), datetime.date(2020, 1, 1), datetime.date(2021, 12, 31)]
)


@st.composite
def mix_records(draw: st.DrawFn) -> dict[str, Any]:
    colours = st.sampled_from(["red", "green", "blue"])
    values: dict[str, st.SearchStrategy[Any]] = {
        "a": pick("0", "1", "2", "3", "4", "-2") | decimals("-10", "10"),
        "b": rarely(pick("150"), pick("2", "4", "50", "49.99", "1.4") | decimals("0", "100")),
        "c": pick("120", "120.01", "176.8", "353.6") | decimals("0", "400"),
        "w": pick("0", "1", "0.5") | decimals("0", "3"),
        "h": pick("0", "72", "168", "84") | decimals("0", "400"),
        "d": DATES,
        "e": rarely(st.just("purple"), colours),
        "f": colours,
        "g": subsets(["x", "y", "z"]),
        "base": pick("0", "2", "2.5") | decimals("0", "10"),
        "now": pick("2.2", "2.75", "0") | decimals("0", "10"),
    }
    absent = draw(ABSENT)
    record: dict[str, Any] = {}
    for name in MIX.checked.elements:
        value = draw(maybe(values.get(name, st.booleans()), absent))
        if value is not None:
            record[name] = value
    return record


def numbered(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": f"r{i:03d}", **record} for i, record in enumerate(records)]


# ---- running it ---------------------------------------------------------------------


_QUERIES: dict[tuple[int, tuple[tuple[str, str], ...], str, bool], str] = {}


def screening_query(
    checked: Checked, schema: Sequence[tuple[str, str]], dialect: str, text: bool = False
) -> str:
    """The query for a table schema; examples share a schema, so it is built once."""
    key = (id(checked), tuple(schema), dialect, text)
    if key not in _QUERIES:
        layout = sql.layout_from_schema(checked, schema, dialect, text)
        _QUERIES[key] = sql.to_sql(checked, "patients", dialect, layout)
    return _QUERIES[key]


def duckdb_results(checked: Checked, table: pa.Table) -> list[dict[str, Any]]:
    connection = duckdb.connect()
    connection.register("patients", table)
    relation = connection.sql("SELECT * FROM patients")
    schema = list(zip(relation.columns, map(str, relation.types), strict=True))
    result = connection.sql(screening_query(checked, schema, "duckdb"))
    return [dict(zip(result.columns, row, strict=True)) for row in result.fetchall()]


def spark_results(spark: Any, checked: Checked, table: pa.Table) -> list[dict[str, Any]]:
    frame = spark.createDataFrame(table)
    frame.createOrReplaceTempView("patients")
    schema = [(f.name, f.dataType.simpleString()) for f in frame.schema.fields]
    return [row.asDict() for row in spark.sql(screening_query(checked, schema, "spark")).collect()]


def assert_agree(
    protocol: critlang.Protocol,
    results: Sequence[critlang.Result],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """Each SQL row says what the evaluator says about the same record."""
    by_id = {str(row["id"]): row for row in rows}
    assert len(by_id) == len(results)
    for result in results:
        row = by_id[result.id]
        assert row["status"] == result.status, (result.id, row, result.to_dict())
        if result.status == "error":
            assert row["error"]
            continue
        assert row["error"] is None
        for criterion in result.criteria:
            assert row[criterion.id] is criterion.value, (result.id, criterion.id, row)
            applies = f"{criterion.id} applies"
            if applies in row:
                assert row[applies] is criterion.applicable, (result.id, applies, row)
            for part in criterion.parts:
                column = sql.part_column(criterion.id, part.name)
                assert row[column] is part.value, (result.id, column, row)
                if f"{column} applies" in row:
                    assert row[f"{column} applies"] is part.applicable, (result.id, column)
        missing = list(row["missing"])
        if result.status == "undetermined":
            assert set(result.missing) <= set(missing), (result.id, missing, result.missing)
        else:
            assert missing == []


def check_duckdb(protocol: critlang.Protocol, records: list[dict[str, Any]]) -> None:
    records = numbered(records)
    rows = duckdb_results(protocol.checked, arrow_table(protocol.checked, records))
    assert_agree(protocol, list(protocol.evaluate_many(records)), rows)


# ---- DuckDB -----------------------------------------------------------------------


@SETTINGS
@given(st.lists(ctd_records(), min_size=1, max_size=25))
def test_duckdb_agrees_with_the_evaluator_on_ctd_ild(records: list[dict[str, Any]]) -> None:
    check_duckdb(CTD_ILD, records)


@SETTINGS
@given(st.lists(mix_records(), min_size=1, max_size=25))
def test_duckdb_agrees_with_the_evaluator_on_every_construct(
    records: list[dict[str, Any]],
) -> None:
    check_duckdb(MIX, records)


@settings(SETTINGS, max_examples=30)
@given(st.lists(ctd_records(), min_size=1, max_size=25))
def test_double_columns_agree_with_the_evaluator(records: list[dict[str, Any]]) -> None:
    """DOUBLE columns are read as their shortest decimal, as the Python engine reads floats."""
    records = numbered(records)
    table = arrow_table(CTD_ILD.checked, records, floats=True)
    floats = [
        {k: float(v) if isinstance(v, Decimal) else v for k, v in record.items()}
        for record in records
    ]
    rows = duckdb_results(CTD_ILD.checked, table)
    assert_agree(CTD_ILD, list(CTD_ILD.evaluate_many(floats)), rows)


# ---- CSV text, with units in the column names ------------------------------------------

UNITS = {"creatinine": "umol/L", "symptom_duration": "h", "body_weight": "g"}


def csv_cell(value: Any, style: int) -> str:
    if isinstance(value, bool):
        return [("false", "true"), ("no", "yes"), ("0", "1"), ("FALSE", "True")][style][value]
    if isinstance(value, list):
        return [";", " ; ", "|", ";"][style].join(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


@st.composite
def csv_documents(draw: st.DrawFn) -> str:
    """ctd_ild records as CSV text, some numbers in other units, some cells NA."""
    records = numbered(draw(st.lists(ctd_records(), min_size=1, max_size=20)))
    converted = {
        "creatinine": pick("123.76", "123.77", "80", "140") | decimals("0", "3000", 1),
        "symptom_duration": pick("730.5", "730.4", "730.6", "24") | decimals("0", "2000", 1),
        "body_weight": pick("60000", "62500") | decimals("30000", "150000", 0),
    }
    names = list(CTD_ILD.checked.elements)
    header = ["id"] + [f"{n} [{UNITS[n]}]" if n in UNITS else n for n in names]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for record in records:
        style = draw(st.integers(0, 3))
        row = [record["id"]]
        for name in names:
            value = record.get(name)
            if name in converted and value is not None:
                value = draw(converted[name])
            missing = draw(st.sampled_from(["", "", "NA", "NULL", " "]))
            row.append(missing if value is None else csv_cell(value, style))
        writer.writerow(row)
    return out.getvalue()


@settings(SETTINGS, max_examples=60)
@given(csv_documents())
def test_csv_text_agrees_with_the_evaluator(tmp_path_factory: Any, document: str) -> None:
    path = tmp_path_factory.mktemp("csv") / "patients.csv"
    path.write_text(document, encoding="utf-8")
    connection = duckdb.connect()
    relation = connection.read_csv(str(path), header=True, all_varchar=True)
    schema = list(zip(relation.columns, map(str, relation.types), strict=True))
    relation.create_view("patients")
    result = connection.sql(screening_query(CTD_ILD.checked, schema, "duckdb", text=True))
    rows = [dict(zip(result.columns, row, strict=True)) for row in result.fetchall()]
    expected = list(CTD_ILD.screen(read_records(path, CTD_ILD.checked)))
    # The evaluator names CSV records by their id column, as SQL does.
    assert_agree(CTD_ILD, expected, rows)


# ---- Spark: one batch of records per example, one query per batch ----------------------


@SPARK_SETTINGS
@given(st.lists(ctd_records(), min_size=50, max_size=50))
def test_spark_agrees_with_the_evaluator_on_ctd_ild(
    spark: Any, records: list[dict[str, Any]]
) -> None:
    records = numbered(records)
    rows = spark_results(spark, CTD_ILD.checked, arrow_table(CTD_ILD.checked, records))
    assert_agree(CTD_ILD, list(CTD_ILD.evaluate_many(records)), rows)


@SPARK_SETTINGS
@given(st.lists(mix_records(), min_size=50, max_size=50))
def test_spark_agrees_with_the_evaluator_on_every_construct(
    spark: Any, records: list[dict[str, Any]]
) -> None:
    records = numbered(records)
    rows = spark_results(spark, MIX.checked, arrow_table(MIX.checked, records))
    assert_agree(MIX, list(MIX.evaluate_many(records)), rows)


# ---- PostgreSQL: a sample of batches, one query per batch ------------------------------

POSTGRES_SETTINGS = settings(SETTINGS, max_examples=8)


@POSTGRES_SETTINGS
@given(st.lists(ctd_records(), min_size=1, max_size=40))
def test_postgres_agrees_with_the_evaluator_on_ctd_ild(
    postgres_url: str, records: list[dict[str, Any]]
) -> None:
    records = numbered(records)
    rows = screen_in_postgres(postgres_url, CTD_ILD.checked, records)
    assert_agree(CTD_ILD, list(CTD_ILD.evaluate_many(records)), list(rows.values()))


@POSTGRES_SETTINGS
@given(st.lists(mix_records(), min_size=1, max_size=40))
def test_postgres_agrees_with_the_evaluator_on_every_construct(
    postgres_url: str, records: list[dict[str, Any]]
) -> None:
    records = numbered(records)
    rows = screen_in_postgres(postgres_url, MIX.checked, records)
    assert_agree(MIX, list(MIX.evaluate_many(records)), list(rows.values()))
