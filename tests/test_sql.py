"""SQL generation, schema checks, exact boundaries, and `critlang sql` / `critlang screen`."""

from __future__ import annotations

import csv
import json
import random
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot
from click.testing import CliRunner
from sqlglot import exp

import critlang
from critlang import screen, sql
from critlang.check import Checked
from critlang.cli import main
from critlang.records import Intake, read_records
from critlang.report import flat_columns
from tests.patients import ELIGIBLE
from tests.tables import arrow_table

ROOT = Path(__file__).resolve().parents[1]
CTD_PATH = ROOT / "protocols" / "ctd_ild.crit"
CTD_ILD = critlang.load(CTD_PATH)
CHECKED = CTD_ILD.checked
DIALECTS = ("duckdb", "spark", "postgres", "trino", "snowflake", "bigquery", "databricks")


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    session = screen.spark_session()
    yield session
    session.stop()


# The shared eligible patient, moved onto the boundaries these tests probe:
# FVC down exactly 10% (so I2 a holds through DLCO down 20%), GPT 60 U/L.
BOUNDARY_PATIENT: dict[str, Any] = {
    **ELIGIBLE,
    "steroid_dose": 40,
    "fvc_current": Decimal("2.7"),
    "dlco_current": 16,
    "symptom_duration": 700,
    "dyspnea_worsening": True,
    "gpt": 60,
    "creatinine": Decimal("1.1"),
}


def patient(**changes: Any) -> dict[str, Any]:
    """An eligible woman of childbearing potential; `changes` alter or (None) remove fields.

    Numbers are Decimals, as a DECIMAL column hands them over.
    """
    record = {**BOUNDARY_PATIENT, **changes}
    return {
        k: Decimal(v) if isinstance(v, int) and not isinstance(v, bool) else v
        for k, v in record.items()
        if v is not None
    }


def run_duckdb(checked: Checked, table: pa.Table) -> dict[str, dict[str, Any]]:
    connection = duckdb.connect()
    connection.register("patients", table)
    relation = connection.sql("SELECT * FROM patients")
    schema = list(zip(relation.columns, map(str, relation.types), strict=True))
    layout = sql.layout_from_schema(checked, schema, "duckdb")
    result = connection.sql(sql.to_sql(checked, "patients", "duckdb", layout))
    rows = [dict(zip(result.columns, row, strict=True)) for row in result.fetchall()]
    return {row["id"]: row for row in rows}


def run_spark(spark: Any, checked: Checked, table: pa.Table) -> dict[str, dict[str, Any]]:
    frame = spark.createDataFrame(table)
    frame.createOrReplaceTempView("patients")
    schema = [(f.name, f.dataType.simpleString()) for f in frame.schema.fields]
    layout = sql.layout_from_schema(checked, schema, "spark")
    rows = [
        r.asDict() for r in spark.sql(sql.to_sql(checked, "patients", "spark", layout)).collect()
    ]
    return {row["id"]: row for row in rows}


def criteria_of(row: Mapping[str, Any]) -> dict[str, Any]:
    return {c.id.text: row[c.id.text] for c in CHECKED.protocol.criteria}


def python_criteria(record: Mapping[str, Any]) -> dict[str, Any]:
    """The evaluator's value per criterion; None for each when the record is in error."""
    result = next(CTD_ILD.evaluate_many([record]))
    values = {c.id: c.value for c in result.criteria}
    return {c.id.text: values.get(c.id.text) for c in CHECKED.protocol.criteria}


# ---- the query -----------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_sql_command_output_parses_back(dialect: str) -> None:
    result = CliRunner().invoke(main, ["sql", str(CTD_PATH), "--dialect", dialect])
    assert result.exit_code == 0, result.output
    text = result.output.strip().removesuffix(";")
    parsed = sqlglot.parse_one(text, read=dialect)
    assert isinstance(parsed, exp.Select)
    assert parsed.sql(dialect, pretty=True) == text
    names = [select.alias_or_name for select in parsed.selects]
    assert names == sql.result_columns(CHECKED)


def test_sql_command_reads_the_named_table() -> None:
    result = CliRunner().invoke(
        main, ["sql", str(CTD_PATH), "--table", "warehouse.trial.patients", "--dialect", "spark"]
    )
    assert result.exit_code == 0, result.output
    tables = {
        t.sql("spark")
        for t in sqlglot.parse_one(result.output.rstrip(";\n"), read="spark").find_all(exp.Table)
    }
    assert "warehouse.trial.patients" in tables


def test_sql_command_rejects_an_unknown_dialect() -> None:
    result = CliRunner().invoke(main, ["sql", str(CTD_PATH), "--dialect", "cobol"])
    assert result.exit_code == 64  # a usage error (docs/cli.md)
    assert "unknown dialect 'cobol'" in result.output


def test_the_query_never_divides() -> None:
    """Declines and dose per weight are compared by cross-multiplying, never divided."""
    tree = sql.query(CHECKED)
    assert not list(tree.find_all(exp.Div))
    assert all(
        cast.to.this == exp.DType.DECIMAL
        for cast in tree.find_all(exp.Cast)
        if isinstance(cast.this, exp.Literal) and not cast.this.is_string
    )


def test_duckdb_decimal_division_would_miss_the_boundary() -> None:
    """Why: DuckDB turns DECIMAL / DECIMAL into DOUBLE, and 0.70 -> 0.63 then 'declines' over 10%."""
    naive = duckdb.sql(
        "SELECT typeof(a / b), (b - a) / b * 100 > 10 FROM "
        "(SELECT CAST(0.63 AS DECIMAL(12, 10)) AS a, CAST(0.70 AS DECIMAL(12, 10)) AS b)"
    ).fetchall()
    assert naive == [("DOUBLE", True)]
    record = BOUNDARIES["fvc-0.7-0.63"]
    rows = run_duckdb(CHECKED, arrow_table(CHECKED, [{"id": "p", **record}]))
    assert criteria_of(rows["p"]) == python_criteria(record)
    assert rows["p"]["I2"] is False


BOUNDARIES: dict[str, dict[str, Any]] = {
    # FVC falls exactly 10%: not "more than 10%", but inside the 5-10% band.
    "fvc-10-band": patient(dlco_current=Decimal("16.9")),
    "fvc-10-dlco-15": patient(dlco_current=Decimal(17)),
    "fvc-10-dlco-over-15": patient(dlco_current=Decimal("16.99")),
    "fvc-10.01": patient(fvc_current=Decimal("2.6997")),
    "fvc-0.7-0.63": patient(
        fvc_baseline=Decimal("0.7"), fvc_current=Decimal("0.63"), dlco_current=Decimal(17)
    ),
    "fvc-5": patient(fvc_current=Decimal("2.85"), dlco_current=Decimal(16)),
    "fvc-4.99": patient(fvc_current=Decimal("2.8503"), dlco_current=Decimal(16)),
    "dose-0.8": patient(treatment_duration=Decimal(12), steroid_dose=Decimal(48)),
    "dose-0.8001": patient(treatment_duration=Decimal(12), steroid_dose=Decimal("48.006")),
    "age-20": patient(age=Decimal(20)),
    "age-80.01": patient(age=Decimal("80.01")),
    "treatment-24": patient(treatment_duration=Decimal(24)),
    "symptom-1-month": patient(
        treatment_duration=Decimal(1), symptom_duration=Decimal("30.4375"), oxygen_declining=True
    ),
    "symptom-over-1-month": patient(
        treatment_duration=Decimal(1), symptom_duration=Decimal("30.4376"), oxygen_declining=True
    ),
    "got-80": patient(got=Decimal(80)),
    "got-80.01": patient(got=Decimal("80.01")),
    "got-high-myopathy": patient(got=Decimal(90), enzymes_due_to_myopathy=True),
    "got-high-myopathy-unknown": patient(got=Decimal(90), enzymes_due_to_myopathy=None),
    "creatinine-1.4": patient(creatinine=Decimal("1.4")),
    "creatinine-1.4001": patient(creatinine=Decimal("1.4001")),
    "man": patient(
        sex="male", childbearing_potential=None, pregnancy_test=None, contraception=None
    ),
    "unknown-sex": patient(sex=None, pregnancy_test=None),
    "no-diagnosis": patient(ctd_diagnoses=[]),
    "no-dlco": patient(fvc_current=Decimal("2.85"), dlco_current=None),
    "dlco-out-of-range": patient(dlco_baseline=Decimal(0), dlco_current=Decimal(1)),
    "nothing": {},
}


def test_boundaries_agree_with_the_evaluator_in_duckdb() -> None:
    records = [{"id": name, **record} for name, record in BOUNDARIES.items()]
    rows = run_duckdb(CHECKED, arrow_table(CHECKED, records))
    for name, record in BOUNDARIES.items():
        expected = next(CTD_ILD.evaluate_many([record]))
        assert rows[name]["status"] == expected.status, name
        assert criteria_of(rows[name]) == python_criteria(record), name
    assert rows["fvc-10-dlco-15"]["I2"] is False
    assert rows["fvc-10-dlco-over-15"]["I2"] is True
    assert rows["fvc-10.01"]["I2"] is True
    assert rows["fvc-0.7-0.63"]["I2"] is False
    assert rows["dose-0.8"]["I2"] is False
    assert rows["dose-0.8001"]["I2"] is True
    assert rows["symptom-1-month"]["I2"] is True
    assert rows["symptom-over-1-month"]["I2"] is False
    assert rows["creatinine-1.4"]["E4"] is False
    assert rows["creatinine-1.4001"]["E4"] is True
    assert rows["man"]["I4"] is True and rows["man"]["I4 applies"] is False
    assert rows["got-high-myopathy-unknown"]["E4"] is None
    assert rows["nothing"]["missing"][0] == "age"
    assert rows["dlco-out-of-range"]["error"].startswith("column 'dlco_baseline'")


def test_double_columns_keep_decimal_boundaries() -> None:
    """A DOUBLE 2.7 is read as the decimal 2.7, as the evaluator reads a float."""
    records = [{"id": name, **record} for name, record in BOUNDARIES.items()]
    rows = run_duckdb(CHECKED, arrow_table(CHECKED, records, floats=True))
    for name, record in BOUNDARIES.items():
        floats = {k: float(v) if isinstance(v, Decimal) else v for k, v in record.items()}
        assert criteria_of(rows[name]) == python_criteria(floats), name


def test_boundaries_agree_with_the_evaluator_in_spark(spark: Any) -> None:
    records = [{"id": name, **record} for name, record in BOUNDARIES.items()]
    duck = run_duckdb(CHECKED, arrow_table(CHECKED, records))
    rows = run_spark(spark, CHECKED, arrow_table(CHECKED, records))
    for name in BOUNDARIES:
        assert rows[name] == duck[name], name


# ---- the table's layout ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ([("age", "BOOLEAN")], "column 'age': expected a quantity in 'a', found BOOLEAN"),
        ([("sex", "INTEGER")], "column 'sex': expected one of (female, male), found INTEGER"),
        ([("ctd_diagnoses", "VARCHAR")], "column 'ctd_diagnoses': expected a set of"),
        ([("hiv", "VARCHAR")], "column 'hiv': expected a yes/no condition, found VARCHAR"),
        ([("creatinine", "STRUCT(value DOUBLE, unit VARCHAR)")], "column 'creatinine': expected"),
        ([("sex [kg]", "VARCHAR")], "column 'sex [kg]': only a quantity has a unit"),
        (
            [("creatinin", "DOUBLE")],
            "column 'creatinin': not a data element of the protocol; did you mean 'creatinine'?",
        ),
        (
            [("age", "DOUBLE"), ("age [mo]", "DOUBLE")],
            "column 'age [mo]': 'age' is already given by 'age'",
        ),
    ],
)
def test_a_column_that_does_not_fit_is_named(schema: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(sql.SchemaError) as error:
        sql.layout_from_schema(CHECKED, schema, "duckdb")
    assert str(error.value).startswith(message)


def test_layout_reads_types_and_units() -> None:
    layout = sql.layout_from_schema(
        CHECKED,
        [
            ("id", "BIGINT"),
            ("age", "INTEGER"),
            ("creatinine (umol/L)", "DECIMAL(9,3)"),
            ("fvc_baseline", "DOUBLE"),
            ("got", "DECIMAL(38,20)"),
            ("hiv", '"NULL"'),
        ],
        "duckdb",
    )
    assert layout.id_column == "id"
    assert layout.column("age") == sql.Column("age", "age", scale=0)
    assert layout.column("creatinine") == sql.Column(
        "creatinine", "creatinine (umol/L)", unit="umol/L", scale=3, digits=6
    )
    # Doubles are kept when exact in SCALE places; wider DECIMALs when their extra places are 0.
    assert layout.column("fvc_baseline") == sql.Column(
        "fvc_baseline", "fvc_baseline", "float", scale=sql.SCALE
    )
    assert layout.column("got") == sql.Column("got", "got", "wide", scale=sql.SCALE)
    assert layout.column("hiv") is None  # a column that is always empty
    assert layout.column("sex") is None


def test_missing_columns_are_missing_values() -> None:
    table = pa.table({"id": ["a"], "age": [45], "sex": ["male"]})
    connection = duckdb.connect()
    connection.register("patients", table)
    layout = sql.layout_from_schema(
        CHECKED, [("id", "VARCHAR"), ("age", "BIGINT"), ("sex", "VARCHAR")], "duckdb"
    )
    row = connection.sql(sql.to_sql(CHECKED, "patients", "duckdb", layout)).fetchall()[0]
    result = dict(zip(sql.result_columns(CHECKED), row, strict=True))
    expected = CTD_ILD.evaluate({"age": 45, "sex": "male"})
    assert result["status"] == expected.status == "undetermined"
    assert set(expected.missing) <= set(result["missing"])
    assert "pregnancy_test" not in result["missing"]  # I4 does not apply to a man


def test_an_expression_too_wide_for_sql_decimals_is_refused() -> None:
    source = """protocol wide
data
  a: number
  b: number
  c: number
inclusion I1 "Product"
  met when a * b * c > 1
"""
    protocol = critlang.compile_source(source, "wide.crit")
    with pytest.raises(
        sql.SqlError, match=r"^wide\.crit:7:12: this needs more than 38 decimal digits"
    ):
        sql.to_sql(protocol.checked)


def test_unit_factors_that_never_end_stay_exact() -> None:
    """1 mg/dL of creatinine is 10000/113.12 umol/L: compared by cross-multiplying."""
    text = sql.to_sql(
        critlang.load(ROOT / "tests" / "cases" / "sql" / "every_construct.crit").checked
    )
    assert '"c" * CAST(707 AS DECIMAL(3, 0))' in text
    assert '"b" * CAST(62500 AS DECIMAL(5, 0))' in text


# ---- critlang screen --------------------------------------------------------------------


SMALL_CSV = """id,age,sex,ctd_diagnoses,treatment_duration,fvc_baseline,fvc_current,dlco_baseline,dlco_current,ct_lesions_enlarged,family_support_confirmed,childbearing_potential,pregnancy_test,contraception,pregnant,breastfeeding,willing_to_consent,improved_after_6_months,got,gpt,enzymes_due_to_myopathy,creatinine [umol/L],hiv,notifiable_infection,steroid_dose,body_weight,symptom_duration [h],dyspnea_worsening,oxygen_declining
p1,45,female,rheumatoid_arthritis,30,3.0,2.7,20,16,false,true,true,negative,true,false,false,true,false,30,60,false,100,false,false,40,60,730.5,true,false
p2,45,female,rheumatoid_arthritis; sjogren_syndrome,30,3.0,2.85,20,,false,true,true,negative,true,false,false,true,false,30,60,false,123.76,false,false,40,60,730.6,true,false
p3,45,male,rheumatoid_arthritis,30,3.0,2.7,20,16,no,yes,,,,no,no,yes,no,30,60,no,123.77,no,no,40,60,48,yes,no
p4,150,male,rheumatoid_arthritis,30,3.0,2.7,20,16,no,yes,,,,no,no,yes,no,30,60,no,100,no,no,40,60,48,yes,no
p5,45,other,lupus,30,3.0,2.7,20,16,maybe,yes,,,,no,no,yes,no,30,60,no,100,no,no,40,60,48,yes,no
p6,NA,,,,,,,,,,,,,,,,,,,,,,,,,,,
"""


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    path = tmp_path / "patients.csv"
    path.write_text(SMALL_CSV, encoding="utf-8")
    return path


def expected_attrition(
    results: Sequence[critlang.Result],
) -> list[tuple[str, int, int, int, int, int]]:
    """(id, true, false, unknown, not applicable, remaining) per criterion, from the evaluator."""
    screened = [r for r in results if r.status != "error"]
    out = []
    alive = list(screened)
    for index, criterion in enumerate(CHECKED.protocol.criteria):
        values = [r.criteria[index] for r in screened]
        alive = [r for r in alive if r.criteria[index].value is not (criterion.kind == "exclusion")]
        out.append(
            (
                criterion.id.text,
                sum(v.applicable is not False and v.value is True for v in values),
                sum(v.applicable is not False and v.value is False for v in values),
                sum(v.applicable is not False and v.value is None for v in values),
                sum(v.applicable is False for v in values),
                len(alive),
            )
        )
    return out


def steps(attrition: screen.Attrition) -> list[tuple[str, int, int, int, int, int]]:
    return [
        (s.id, s.true, s.false, s.unknown, s.not_applicable, s.remaining) for s in attrition.steps
    ]


def test_screen_writes_results_and_the_attrition_report(small_csv: Path, tmp_path: Path) -> None:
    results, report = tmp_path / "results.csv", tmp_path / "attrition.html"
    outcome = CliRunner().invoke(
        main, ["screen", str(CTD_PATH), str(small_csv), "-o", str(results), "--report", str(report)]
    )
    assert outcome.exit_code == 2, outcome.output  # two records are in error
    assert "6 record(s): 1 eligible, 1 ineligible, 2 undetermined, 2 error" in outcome.output
    written = results.read_text(encoding="utf-8").splitlines()
    assert written[0].split(",") == flat_columns(CHECKED)
    by_id = {line.split(",")[0]: line for line in written[1:]}
    assert by_id["p1"].startswith("p1,eligible,true,true")
    assert by_id["p2"].startswith("p2,undetermined,") and ",dlco_current," in by_id["p2"]
    assert "field 'age'" in by_id["p4"] and "plausible range 0 to 130 a" in by_id["p4"]
    assert by_id["p6"].count(";") > 20  # everything is missing
    html = report.read_text(encoding="utf-8")
    assert "Attrition of protocol <code>ctd_ild</code>" in html
    for svg in re.findall(r"<svg.*?</svg>", html, flags=re.S):
        ElementTree.fromstring(svg)  # well-formed inline SVG
    assert html.count("<rect") > 2 * len(CHECKED.protocol.criteria)
    assert "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_screen_counts_what_the_evaluator_counts(small_csv: Path, spark: Any) -> None:
    expected = list(CTD_ILD.screen(critlang.records.read_records(small_csv, CHECKED)))
    for engine in screen.ENGINES:
        attrition = screen.run(CHECKED, small_csv, engine, session=spark)
        assert attrition.total == 6
        assert attrition.statuses == {"eligible": 1, "ineligible": 1, "undetermined": 2, "error": 2}
        assert steps(attrition) == expected_attrition(expected), engine


def random_patients(count: int, seed: int) -> list[dict[str, Any]]:
    """Perturbed copies of an eligible patient: each field changed or dropped now and then."""
    generator = random.Random(seed)
    choices: dict[str, list[Any]] = {
        "age": [Decimal(19), Decimal(20), Decimal(80), Decimal(81)],
        "sex": ["male"],
        "ctd_diagnoses": [[], ["sjogren_syndrome", "polymyositis"]],
        "fvc_current": [Decimal("2.85"), Decimal("2.6997"), Decimal("3.1")],
        "dlco_current": [Decimal(17), Decimal("16.99"), Decimal(20)],
        "treatment_duration": [Decimal(24), Decimal(2)],
        "creatinine": [Decimal("1.4"), Decimal("1.41")],
        "got": [Decimal(80), Decimal("80.5")],
    }
    records = []
    for number in range(count):
        record = patient()
        for name in list(record):
            draw = generator.random()
            if draw < 0.04:
                del record[name]
            elif draw < 0.12:
                options = choices.get(
                    name, [not record[name]] if isinstance(record[name], bool) else []
                )
                if options:
                    record[name] = generator.choice(options)
        records.append({"id": f"r{number}", **record})
    return records


def test_attrition_over_parquet_and_jsonl_matches_the_evaluator(tmp_path: Path, spark: Any) -> None:
    records = random_patients(300, seed=7)
    expected = list(CTD_ILD.evaluate_many(records))
    parquet = tmp_path / "patients.parquet"
    pq.write_table(arrow_table(CHECKED, records), parquet)
    jsonl = tmp_path / "patients.jsonl"
    lines = (json.dumps(record, default=float) + "\n" for record in records)
    jsonl.write_text("".join(lines), encoding="utf-8")
    for data in (parquet, jsonl):
        for engine in screen.ENGINES:
            attrition = screen.run(CHECKED, data, engine, session=spark)
            assert attrition.screened == len(expected)
            assert steps(attrition) == expected_attrition(expected), (data.suffix, engine)
            statuses = {s: sum(r.status == s for r in expected) for s in screen.STATUSES}
            assert dict(attrition.statuses) == statuses


def test_parquet_results_keep_missing_as_a_list(tmp_path: Path) -> None:
    records = [{"id": "a", **patient(dlco_current=None, fvc_current=Decimal("2.85"))}]
    data, results = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pq.write_table(arrow_table(CHECKED, records), data)
    screen.run(CHECKED, data, "duckdb", results)
    row = pq.read_table(results).to_pylist()[0]
    assert row["status"] == "undetermined"
    assert row["missing"] == ["dlco_current"]


def test_spark_writes_results_as_one_file(tmp_path: Path, small_csv: Path, spark: Any) -> None:
    results = tmp_path / "results.parquet"
    screen.run(CHECKED, small_csv, "spark", results, session=spark)
    rows = duckdb.sql(f"SELECT id, status FROM read_parquet('{results}')").fetchall()
    assert [status for _, status in rows] == [
        "eligible",
        "undetermined",
        "ineligible",
        "error",
        "error",
        "undetermined",
    ]


def test_records_without_ids_are_numbered(tmp_path: Path) -> None:
    path = tmp_path / "patients.jsonl"
    path.write_text('{"age": 45}\n{"age": 150}\n', encoding="utf-8")
    attrition = screen.run(CHECKED, path, "duckdb", tmp_path / "out.csv")
    assert attrition.statuses["error"] == 1
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert [line.split(",")[:2] for line in lines[1:]] == [["1", "undetermined"], ["2", "error"]]


def test_screen_takes_quantities_with_units_as_eval_does(tmp_path: Path) -> None:
    path = tmp_path / "patients.jsonl"
    path.write_text(
        json.dumps(
            {"id": "a", **patient(creatinine={"value": 130, "unit": "umol/L"})}, default=float
        )
        + "\n",
        encoding="utf-8",
    )
    attrition = screen.run(CHECKED, path, "duckdb")
    assert dict(attrition.statuses) == {
        "eligible": 0,
        "ineligible": 1,
        "undetermined": 0,
        "error": 0,
    }


def test_screen_rejects_unknown_formats(tmp_path: Path) -> None:
    path = tmp_path / "patients.xlsx"
    path.write_text("", encoding="utf-8")
    outcome = CliRunner().invoke(main, ["screen", str(CTD_PATH), str(path)])
    assert outcome.exit_code == 66
    assert "unknown record format '.xlsx'" in outcome.output


MIX_PATH = ROOT / "tests" / "cases" / "sql" / "every_construct.crit"
MIX_CSV = """id,a,b,c,w,h,d,e,f,g,p,q,r,base,now
m1,2,3,120,1,72,2020-06-01,red,blue,x;y,yes,no,1,2,2.2
m2,3,,,,,2019-05-31,green,green,z|x,,,,0,1
m3,NA,50,abc,1,1,2020-13-01,red,red,,true,false,true,2.5,2.75
m4,-2,4,176.8,0.5,84,2021-12-31,blue,green,x ; y ; z,0,1,0,,
m5,1.5,2,120.01,0,168,2020-01-01,red,red,;,FALSE,True,no,2.5,2.2
m6,4,4.01,0,3,400,2019-06-01,purple,red,x,1,1,1,1,1
"""
MIX_JSON = """[{"id": 1, "a": 2, "b": 3, "d": "2020-06-01", "g": ["x", "y"], "p": true},
 {"id": 2, "a": 3.5, "e": "purple", "d": "2021-01-01"},
 {"id": 3, "a": 0, "b": 2, "c": 400, "w": 1, "h": 0, "d": "2020-01-02", "e": "blue",
  "f": "green", "g": [], "p": false, "q": false, "r": false, "base": 4, "now": 4.5}]
"""


def screened_rows(data: Path, engine: str, out: Path, spark: Any) -> dict[str, dict[str, Any]]:
    """The per-patient results that `critlang screen` writes, read back."""
    results = out / f"{engine}.parquet"
    checked = critlang.load(MIX_PATH).checked
    screen.run(checked, data, engine, results, session=spark)
    files = f"{results}/*.parquet" if results.is_dir() else str(results)
    relation = duckdb.sql(f"SELECT * FROM read_parquet('{files}')")
    rows = [dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()]
    return {str(row["id"]): row for row in rows}


@pytest.mark.parametrize(("name", "text"), [("mix.csv", MIX_CSV), ("mix.json", MIX_JSON)])
def test_text_dates_numbers_and_sets_agree_with_the_evaluator(
    name: str, text: str, tmp_path: Path, spark: Any
) -> None:
    """CSV cells and JSON strings are parsed as `critlang eval` parses them, on both engines."""
    data = tmp_path / name
    data.write_text(text, encoding="utf-8")
    protocol = critlang.load(MIX_PATH)
    expected = list(protocol.screen(critlang.records.read_records(data, protocol.checked)))
    assert {r.status for r in expected} >= {"error", "ineligible"}
    for engine in screen.ENGINES:
        rows = screened_rows(data, engine, tmp_path, spark)
        for result in expected:
            row = rows[result.id]
            assert row["status"] == result.status, (engine, result.id)
            for criterion in result.criteria:
                assert row[criterion.id] == criterion.value_word, (engine, result.id)
            assert row["missing"] == list(result.missing)


def test_a_parquet_file_is_screened_in_place_as_eval_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB reads a typed Parquet file where it lies (no record passes through Python),
    ignores columns that are not data elements, and gives eval's answers."""
    source = ROOT / "examples" / "patients.parquet"
    table = pq.read_table(source)
    data = tmp_path / "patients.parquet"
    pq.write_table(table.append_column("mrn", pa.array([f"M{n}" for n in range(len(table))])), data)
    expected = list(critlang.load(CTD_PATH).screen(read_records(data, CHECKED)))

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the Parquet file went through Python's intake")

    monkeypatch.setattr(screen, "read_records", refuse)
    results = tmp_path / "results.csv"
    intake = Intake(CHECKED)
    attrition = screen.run(CHECKED, data, "duckdb", results, intake=intake)
    rows = list(csv.DictReader(results.open(encoding="utf-8")))
    assert [(r["id"], r["status"]) for r in rows] == [(r.id, r.status) for r in expected]
    for row, result in zip(rows, expected, strict=True):
        assert [row[c.id] for c in result.criteria] == [c.value_word for c in result.criteria]
    assert attrition.total == len(expected)
    assert intake.unknown == {"mrn": len(expected)}


def test_parquet_results_written_by_duckdb_equal_the_csv_written_in_python(tmp_path: Path) -> None:
    """DuckDB writes a Parquet result file itself; the CSV writer goes row by row in Python.
    Both hold the flat result schema, value for value."""
    data = ROOT / "examples" / "patients.parquet"
    screen.run(CHECKED, data, "duckdb", tmp_path / "results.parquet")
    screen.run(CHECKED, data, "duckdb", tmp_path / "results.csv")
    table = pq.read_table(tmp_path / "results.parquet")
    assert table.schema.field("missing").type == pa.list_(pa.string())
    from_parquet = [{**row, "missing": ";".join(row["missing"])} for row in table.to_pylist()]
    from_csv = list(csv.DictReader((tmp_path / "results.csv").open(encoding="utf-8")))
    assert from_parquet == from_csv
    assert {row["status"] for row in from_csv} >= {"eligible", "ineligible"}
