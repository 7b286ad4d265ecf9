"""Histories in SQL: the events table, its per-row validation, code lists, `screen --events`."""

from __future__ import annotations

import csv
import datetime
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from sqlglot import exp

import critlang
from critlang import sql
from critlang.cli import main
from critlang.engines.sql.query import Query
from critlang.lower import lower
from critlang.records import RecordError

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL_PATH = ROOT / "tests" / "conformance" / "history_selectors.crit"
PROTOCOL = critlang.load(PROTOCOL_PATH)
CHECKED = PROTOCOL.checked
EVENT_FIELDS = ("id", "element", "date", "value", "unit", "low", "high", "code", "start", "end")
EVENT_FIELDS += ("dose", "source")
CRITERIA = [c.id for c in PROTOCOL.lowered.program.criteria]


def text_layout(events: list[dict[str, Any]]) -> sql.Layout:
    patients = [("id", "VARCHAR"), ("screening_date", "VARCHAR"), ("primary", "VARCHAR")]
    layout = sql.layout_from_schema(CHECKED, patients, "duckdb", text=True)
    table = sql.events_from_schema("events", [(f, "VARCHAR") for f in EVENT_FIELDS], "duckdb", True)
    return attrs.evolve(layout, events=table)


def run(
    patients: list[dict[str, Any]], events: list[dict[str, Any]], query: str | None = None
) -> dict[str, dict[str, Any]]:
    """Every patient's result row, by id; every field of both tables as text, as CSV gives it."""
    connection = duckdb.connect()
    names = ("id", "screening_date", "primary")
    connection.register(
        "patients",
        pa.Table.from_pylist(
            [{n: p.get(n) for n in names} for p in patients],
            pa.schema([pa.field(n, pa.string()) for n in names]),
        ),
    )
    connection.register(
        "events",
        pa.Table.from_pylist(
            [{f: e.get(f) for f in EVENT_FIELDS} for e in events],
            pa.schema([pa.field(f, pa.string()) for f in EVENT_FIELDS]),
        ),
    )
    text = query or sql.to_sql(CHECKED, "patients", "duckdb", text_layout(events))
    result = connection.sql(text)
    return {row[0]: dict(zip(result.columns, row, strict=True)) for row in result.fetchall()}


BASE_EVENTS = [
    {"element": "creatinine", "date": "2026-05-02", "value": "1.6", "unit": "mg/dL"},
    {"element": "alt", "date": "2026-05-01", "value": "40", "unit": "U/L", "high": "40"},
    {"element": "diagnoses", "date": "2020-01-01", "code": "icd10cm:J84.10"},
    {"element": "exacerbations", "date": "2025-01-01", "code": "icd10cm:J84.10"},
    {"element": "exacerbations", "date": "2025-06-01", "code": "icd10cm:J8410"},
    {
        "element": "drugs",
        "start": "2025-01-01",
        "code": "atc:L04AA06",
        "dose": "2000",
        "unit": "mg/d",
    },
]


def events_of(
    patient: str, changes: dict[int, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    rows = [{"id": patient, **row} for row in BASE_EVENTS]
    for index, change in (changes or {}).items():
        rows[index] = {**rows[index], **change}
    return rows


def patient(name: str) -> dict[str, Any]:
    return {"id": name, "screening_date": "2026-06-01", "primary": "icd10cm:J84.10"}


def test_an_eligible_patient_from_the_events_table() -> None:
    rows = run([patient("p")], events_of("p"))
    assert rows["p"]["status"] == "eligible", rows["p"]
    assert rows["p"]["error"] is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {1: {"date": "2026-05"}},
            "history 'alt', entry field 'date' 2026-05: expected a full date as YYYY-MM-DD",
        ),
        (
            {0: {"date": "2026-02-30"}},
            "history 'creatinine', entry field 'date' 2026-02-30: expected a full date",
        ),
        ({0: {"value": None}}, "history 'creatinine': an entry needs its 'value'"),
        ({0: {"value": "1,6"}}, "history 'creatinine', entry field 'value' 1,6: expected a number"),
        (
            {0: {"unit": "umol/L"}},
            "history 'creatinine', entry field 'unit' umol/L: the values must be in the "
            "declared unit 'mg/dL'",
        ),
        (
            {2: {"code": "icd10cm:84.1"}},
            "history 'diagnoses', entry field 'code' icd10cm:84.1: expected a code as system:code",
        ),
        (
            {2: {"code": "icd10:J84.10"}},
            "history 'diagnoses', entry field 'code' icd10:J84.10: expected a code",
        ),
        ({5: {"start": None}}, "history 'drugs': an entry needs its 'start'"),
        (
            {0: {"unit": None}},
            "history 'creatinine': an entry with its 'value' needs its unit ('mg/dL')",
        ),
        (
            {5: {"end": "2024-12-31"}},
            "history 'drugs', entry field 'end' 2024-12-31: the end is before the start",
        ),
        (
            {2: {"end": "2019-12-31"}},
            "history 'diagnoses', entry field 'end' 2019-12-31: the end is before the date",
        ),
        (
            {2: {"end": "2021-05"}},
            "history 'diagnoses', entry field 'end' 2021-05: expected a full date",
        ),
    ],
)
def test_a_bad_entry_is_that_patients_error_and_the_rest_go_on(
    change: dict[int, dict[str, Any]], message: str
) -> None:
    rows = run([patient("bad"), patient("good")], events_of("bad", change) + events_of("good"))
    assert rows["bad"]["status"] == "error"
    assert rows["bad"]["error"].startswith(message), rows["bad"]["error"]
    assert all(rows["bad"][c] is None for c in CRITERIA)
    assert rows["good"]["status"] == "eligible"
    assert rows["good"]["error"] is None


def test_a_marker_row_puts_an_empty_history_on_record() -> None:
    """A row with only id and element: the complete history holds no entries, so no ILD."""
    events = [e for e in events_of("empty") if e["element"] != "diagnoses"]
    marked = [*events, {"id": "empty", "element": "diagnoses"}]
    rows = run([patient("empty"), patient("absent")], marked + events_of("absent"))
    assert rows["empty"]["I3"] is False
    assert rows["empty"]["status"] == "ineligible"
    absent = [e for e in events_of("absent") if e["element"] != "diagnoses"]
    rows = run([patient("absent")], absent)
    assert rows["absent"]["I3"] is None
    assert rows["absent"]["status"] == "undetermined"
    assert "diagnoses" in rows["absent"]["missing"]


def test_events_of_patients_not_in_the_table_are_left_out() -> None:
    rows = run([patient("p")], events_of("p") + events_of("stranger", {0: {"date": "bad"}}))
    assert set(rows) == {"p"}
    assert rows["p"]["status"] == "eligible"


def test_an_entry_after_the_reference_date_is_a_record_error() -> None:
    program = attrs.evolve(lower(CHECKED).program, reference="screening_date")
    events = events_of("late", {0: {"date": "2026-06-02"}})
    query = Query(CHECKED, program, text_layout(events)).query(exp.to_table("patients"))
    rows = run([patient("late"), patient("fine")], events + events_of("fine"), query.sql("duckdb"))
    assert rows["late"]["status"] == "error"
    assert rows["late"]["error"] == (
        "history 'creatinine', entry field 'date' 2026-06-02: after the reference date "
        "'screening_date'"
    )
    assert rows["fine"]["status"] == "eligible"


def test_code_lists_match_prefixes_without_like() -> None:
    """LIKE would read `_` and `%` in a code as wildcards: prefixes compare the code's start."""
    for dialect in ("duckdb", "postgres", "spark"):
        text = sql.to_sql(CHECKED, "patients", dialect, text_layout([]))
        assert " LIKE " not in text.upper()
        assert "'icd10cm:J84'" in text
    rows = run(
        [
            {**patient("prefix"), "primary": "icd10cm:J84"},
            {**patient("exact"), "primary": "icd10cm:J99.1"},
            {**patient("longer"), "primary": "icd10cm:J99.10"},
            {**patient("beside"), "primary": "icd10cm:J85.2"},
            {**patient("other-system"), "primary": "snomed:233703007"},
        ],
        [],
    )
    assert {name: row["I6"] for name, row in rows.items()} == {
        "prefix": True,
        "exact": True,
        "longer": False,
        "beside": False,
        "other-system": False,
    }


def test_the_events_table_schema_is_checked() -> None:
    with pytest.raises(
        sql.SchemaError, match="'dat': not a field of an entry; did you mean 'date'"
    ):
        sql.events_from_schema(
            "events", [("id", "VARCHAR"), ("element", "VARCHAR"), ("dat", "DATE")], "duckdb"
        )
    with pytest.raises(sql.SchemaError, match="needs a column 'element'"):
        sql.events_from_schema("events", [("id", "VARCHAR")], "duckdb")
    with pytest.raises(sql.SchemaError, match="'value': expected a number, found BOOLEAN"):
        sql.events_from_schema(
            "events", [("id", "VARCHAR"), ("element", "VARCHAR"), ("value", "BOOLEAN")], "duckdb"
        )
    with pytest.raises(
        sql.SchemaError,
        match="'creatinin' is not a history of the protocol; did you mean 'creatinine'",
    ):
        sql.check_event_elements(CHECKED, ["creatinine", "creatinin"])
    with pytest.raises(sql.SchemaError, match="a history's entries go in the events table"):
        sql.layout_from_schema(CHECKED, [("creatinine", "VARCHAR")], "duckdb")


def test_every_dialect_writes_the_histories_query() -> None:
    for dialect in ("duckdb", "postgres", "spark", "trino", "snowflake"):
        text = sql.to_sql(CHECKED, "patients", dialect)
        assert "screen_events" in text and "screen_history_dates" in text


# ---- critlang screen --events, against the Python engine on the same records ----


def random_patients(count: int, seed: int) -> list[dict[str, Any]]:
    """Records with histories in JSON form, each history absent, empty or with a few entries."""
    rng = random.Random(seed)
    day = datetime.date(2026, 6, 1)

    def date(span: int = 400) -> str:
        return (day - datetime.timedelta(days=rng.randint(0, span))).isoformat()

    def maybe(entries: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        return None if rng.random() < 0.15 else entries

    codes = ["icd10cm:J84.10", "icd10cm:J99.1", "icd10cm:M34.81", "icd10cm:J85.2"]
    out = []
    for number in range(count):
        record: dict[str, Any] = {"id": f"p{number}"}
        if rng.random() < 0.9:
            record["screening_date"] = day.isoformat()
        if rng.random() < 0.8:
            record["primary"] = rng.choice(codes)
        record["creatinine"] = maybe(
            [
                {
                    "date": date(),
                    "value": Decimal(rng.choice(["1.2", "1.5", "1.51", "2", "3.5"])),
                    "unit": "mg/dL",
                }
                for _ in range(rng.randint(0, 3))
            ]
        )
        record["alt"] = maybe(
            [
                {
                    "date": date(60),
                    "value": Decimal(rng.choice(["40", "120", "130"])),
                    "unit": "U/L",
                }
                | ({"high": Decimal(40)} if rng.random() < 0.8 else {})
                for _ in range(rng.randint(0, 2))
            ]
        )
        record["diagnoses"] = maybe(
            [{"date": date(), "code": rng.choice(codes)} for _ in range(rng.randint(0, 2))]
        )
        record["exacerbations"] = maybe(
            [{"date": date(), "code": "icd10cm:J84.10"} for _ in range(rng.randint(0, 3))]
        )
        record["drugs"] = maybe(
            [
                {"start": date(), "code": rng.choice(["atc:L04AA06", "atc:H02AB06"])}
                | ({"end": date(30)} if rng.random() < 0.3 else {})
                | (
                    {"dose": Decimal(rng.choice(["1000", "2000"])), "unit": "mg/d"}
                    if rng.random() < 0.9
                    else {}
                )
                for _ in range(rng.randint(0, 2))
            ]
        )
        out.append({k: v for k, v in record.items() if v is not None})
    return out


def write_tables(records: list[dict[str, Any]], folder: Path) -> tuple[Path, Path]:
    patients, events = folder / "patients.csv", folder / "events.csv"
    with patients.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "screening_date", "primary"])
        for record in records:
            writer.writerow(
                [record["id"], record.get("screening_date", ""), record.get("primary", "")]
            )
    with events.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, EVENT_FIELDS)
        writer.writeheader()
        for record in records:
            for name in ("creatinine", "alt", "diagnoses", "exacerbations", "drugs"):
                if name not in record:
                    continue
                if not record[name]:
                    writer.writerow({"id": record["id"], "element": name})
                for entry in record[name]:
                    writer.writerow({"id": record["id"], "element": name, **entry})
    return patients, events


@pytest.mark.parametrize("events_format", [".csv", ".parquet"])
def test_screen_with_events_agrees_with_the_python_engine(
    tmp_path: Path, events_format: str
) -> None:
    records = random_patients(300, seed=11)
    patients, events = write_tables(records, tmp_path)
    if events_format == ".parquet":
        table = duckdb.sql(
            f"SELECT * FROM read_csv('{events}', all_varchar = true)"
        ).to_arrow_table()
        events = tmp_path / "events.parquet"
        pq.write_table(table, events)
    output = tmp_path / "results.csv"
    outcome = CliRunner().invoke(
        main,
        ["screen", str(PROTOCOL_PATH), str(patients), "--events", str(events), "-o", str(output)],
    )
    assert outcome.exit_code == 2, outcome.output  # 2: some records are in error
    with output.open(newline="") as handle:
        screened = {row["id"]: row for row in csv.DictReader(handle)}
    words = {True: "true", False: "false", None: "unknown"}
    statuses = set()
    for record in records:
        row = screened[record["id"]]
        try:
            result = PROTOCOL.evaluate(record)
        except RecordError as error:
            assert row["status"] == "error", (record, row)
            assert "the end is before the start" in str(error)
            assert "the end is before the start" in row["error"]
            statuses.add("error")
            continue
        assert row["status"] == result.status, (record, row)
        for criterion in result.criteria:
            assert row[criterion.id] == words[criterion.value], (record, criterion.id, row)
        statuses.add(result.status)
    assert statuses == {"eligible", "ineligible", "undetermined", "error"}


def test_screen_names_an_events_element_that_is_not_a_history(tmp_path: Path) -> None:
    patients, events = write_tables(random_patients(3, seed=1), tmp_path)
    with events.open("a", newline="") as handle:
        handle.write("p0,creatinin,2026-01-01,1,mg/dL,,,,,,,\n")
    outcome = CliRunner().invoke(
        main, ["screen", str(PROTOCOL_PATH), str(patients), "--events", str(events)]
    )
    assert outcome.exit_code != 0
    assert "element 'creatinin' is not a history of the protocol; did you mean 'creatinine'?" in (
        outcome.output
    )
    assert "Traceback" not in outcome.output
