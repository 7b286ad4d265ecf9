"""Screening from OMOP CDM tables: Eunomia GiBleed on DuckDB, Parquet, PostgreSQL and Spark.

The generated SQL is checked against a hand-written extraction of the same
bindings screened by the Python engine, the engines against each other, and
bad data (unmapped concepts, non-UCUM units, future dates, disagreeing values
on one day) against what must happen: counted, the value unknown, no traceback.
"""

from __future__ import annotations

import csv
import datetime
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import critlang
from critlang import screen, screen_omop
from critlang.bindings import Binding, load_binding
from critlang.bindings.binding import check_binding
from critlang.cli import main
from critlang.synth import dumps
from critlang.vocab import Truth
from tests.omop import eunomia, to_parquet, to_postgres

ROOT = Path(__file__).resolve().parent
PROTOCOL = ROOT / "data" / "omop" / "gi_bleed.crit"
BINDING = ROOT / "data" / "omop" / "gi_bleed.bind.yaml"
GI_BLEED = critlang.load(PROTOCOL)
AS_OF = datetime.date(2019, 7, 1)


def binding_for(protocol: Any, path: Path = BINDING) -> Binding:
    binding, diagnostics = load_binding(path, protocol.checked)
    assert binding is not None, diagnostics
    assert not [d for d in diagnostics if d.is_error]
    return binding


def results(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return {row["id"]: row for row in csv.DictReader(handle)}


def screened(database: str, tmp_path: Path, name: str, **options: Any) -> Any:
    output = tmp_path / f"{name}.csv"
    done = screen_omop.run(
        GI_BLEED.checked, binding_for(GI_BLEED), database, AS_OF, output=output, **options
    )
    return done, results(output)


# ---- the hand-written extraction: the bindings' meaning, written out once by hand ---------

NSAIDS = "('140587', '3355', '310965', '849574')"
HAND_WRITTEN = f"""
WITH nsaid AS (
  SELECT concept_id FROM concept WHERE vocabulary_id = 'RxNorm' AND concept_code IN {NSAIDS}
  UNION SELECT 1115008
),
drugs AS (
  SELECT person_id, drug_exposure_start_date AS s, drug_exposure_end_date AS e
  FROM drug_exposure
  WHERE drug_concept_id IN (SELECT concept_id FROM nsaid)
     OR drug_source_concept_id IN (SELECT concept_id FROM nsaid)
),
bleed AS (SELECT concept_id FROM concept WHERE vocabulary_id = 'SNOMED' AND concept_code = '74474003'),
ulcer AS (SELECT concept_id FROM concept WHERE vocabulary_id = 'SNOMED' AND concept_code = '13200003'),
spiro AS (SELECT concept_id FROM concept WHERE vocabulary_id = 'SNOMED' AND concept_code = '127783003')
SELECT
  p.person_id,
  2019 - p.year_of_birth
    - CASE WHEN p.month_of_birth > 7 OR (p.month_of_birth = 7 AND p.day_of_birth > 1)
      THEN 1 ELSE 0 END AS age,
  CASE p.gender_concept_id WHEN 8532 THEN 'female' WHEN 8507 THEN 'male' END AS sex,
  EXISTS (SELECT 1 FROM drugs d WHERE d.person_id = p.person_id AND d.s <= DATE '2019-07-01'
          AND COALESCE(d.e, d.s) >= DATE '2018-07-01') AS nsaid_last_year,
  (SELECT DATE '2019-07-01' - MIN(d.s) FROM drugs d
    WHERE d.person_id = p.person_id AND d.s <= DATE '2019-07-01') AS nsaid_days,
  EXISTS (SELECT 1 FROM condition_occurrence c WHERE c.person_id = p.person_id
          AND (c.condition_concept_id IN (SELECT * FROM bleed)
               OR c.condition_source_concept_id IN (SELECT * FROM bleed))
          AND c.condition_start_date BETWEEN DATE '2017-07-01' AND DATE '2019-07-01')
    AS gi_bleed_recent,
  CASE WHEN EXISTS (SELECT 1 FROM condition_occurrence c WHERE c.person_id = p.person_id
          AND (c.condition_concept_id IN (SELECT * FROM ulcer)
               OR c.condition_source_concept_id IN (SELECT * FROM ulcer))
          AND c.condition_start_date <= DATE '2019-07-01') THEN TRUE END AS peptic_ulcer,
  EXISTS (SELECT 1 FROM measurement m WHERE m.person_id = p.person_id
          AND (m.measurement_concept_id IN (SELECT * FROM spiro)
               OR m.measurement_source_concept_id IN (SELECT * FROM spiro))
          AND m.measurement_date BETWEEN DATE '2014-07-01' AND DATE '2019-07-01')
    AS spirometry_recent
FROM person p
"""


def hand_written_records(database: Path) -> list[dict[str, Any]]:
    import duckdb

    with duckdb.connect(str(database), read_only=True) as connection:
        cursor = connection.execute(HAND_WRITTEN)
        names = [str(d[0]).lower() for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    records = []
    for row in rows:
        record: dict[str, Any] = {"id": str(row.pop("person_id"))}
        days = row.pop("nsaid_days")
        record["time_on_nsaids"] = None if days is None else {"value": days, "unit": "d"}
        record["age"] = Decimal(row.pop("age"))
        record.update({k: v for k, v in row.items() if v is not None})
        records.append(record)
    return records


def test_eunomia_on_duckdb_agrees_with_a_hand_written_extraction(tmp_path: Path) -> None:
    database = eunomia()
    done, rows = screened(str(database), tmp_path, "duckdb")
    assert done.attrition.total == 2694 == len(rows)
    expected = {r.id: r for r in GI_BLEED.evaluate_many(hand_written_records(database))}
    assert set(expected) == set(rows)
    statuses = {row["status"] for row in rows.values()}
    assert {"eligible", "ineligible", "undetermined"} <= statuses  # the screen discriminates
    for person, result in expected.items():
        row = rows[person]
        assert row["status"] == result.status, (person, row, result.status)
        for criterion in result.criteria:
            word = Truth.of(criterion.value, criterion.applicable).value
            assert row[criterion.id] == word, (person, criterion.id)
    # How many patients had no data at all, element by element.
    no_data = dict(done.no_data)
    assert no_data["age"] == 0 and no_data["sex"] == 0
    with_bleed = sum(1 for r in hand_written_records(database) if r.get("gi_bleed_recent"))
    assert done.attrition.steps[2].true == with_bleed
    assert 0 < no_data["gi_bleed_recent"] < 2694


def test_eunomia_is_screened_alike_from_parquet_and_in_postgres(
    tmp_path: Path, postgres_url: str
) -> None:
    database = eunomia()
    _, from_file = screened(str(database), tmp_path, "file")
    parquet = to_parquet(database, tmp_path / "omop")
    done, from_parquet = screened(str(parquet), tmp_path, "parquet")
    to_postgres(database, postgres_url)
    in_postgres, from_postgres = screened(postgres_url, tmp_path, "postgres")
    assert from_parquet == from_file
    assert from_postgres == from_file
    assert in_postgres.no_data == done.no_data
    assert in_postgres.attrition == done.attrition


def test_eunomia_is_screened_alike_on_spark(tmp_path: Path, spark: Any) -> None:
    database = eunomia()
    _, from_file = screened(str(database), tmp_path, "file")
    parquet = to_parquet(database, tmp_path / "omop")
    on_spark, from_spark = screened(str(parquet), tmp_path, "spark", engine="spark", session=spark)
    assert from_spark == from_file
    assert on_spark.attrition.total == 2694
    _, histories = screened_histories(str(database), tmp_path, "file")
    _, histories_on_spark = screened_histories(
        str(parquet), tmp_path, "spark", engine="spark", session=spark
    )
    assert histories_on_spark == histories


# ---- histories: every OMOP record an entry of the events table --------------------------

HISTORY = critlang.load(ROOT / "data" / "omop" / "gi_bleed_history.crit")
HISTORY_BINDING = ROOT / "data" / "omop" / "gi_bleed_history.bind.yaml"


def screened_histories(database: str, tmp_path: Path, name: str, **options: Any) -> Any:
    output = tmp_path / f"{name}-histories.csv"
    binding = binding_for(HISTORY, HISTORY_BINDING)
    done = screen_omop.run(HISTORY.checked, binding, database, AS_OF, output=output, **options)
    return done, results(output)


def test_histories_from_eunomia_agree_with_the_flat_bindings(
    tmp_path: Path, postgres_url: str
) -> None:
    """The same questions asked through histories and through flat selection rules agree."""
    database = eunomia()
    done, rows = screened_histories(str(database), tmp_path, "duckdb")
    _, flat = screened(str(database), tmp_path, "flat")
    assert done.attrition.errors == 0 and len(rows) == 2694
    for person, row in rows.items():
        assert row["E1"] == flat[person]["E1"], person  # bleed within 2 years
        assert row["I2"] == flat[person]["I3"], person  # spirometry within 5 years
    import duckdb

    with duckdb.connect(str(database), read_only=True) as connection:
        users = {
            str(person)
            for (person,) in connection.execute(
                "SELECT DISTINCT person_id FROM drug_exposure JOIN concept "
                "ON concept_id = drug_concept_id WHERE vocabulary_id = 'RxNorm' "
                "AND concept_code IN ('140587', '3355', '310965', '849574') "
                "AND drug_exposure_start_date <= DATE '2019-07-01' "
                "AND COALESCE(drug_exposure_end_date, drug_exposure_start_date) "
                ">= DATE '2018-07-01'"
            ).fetchall()
        }
    assert {p for p, row in rows.items() if row["I1"] == "true"} == users
    with duckdb.connect(str(database), read_only=True) as connection:
        latest = dict(
            connection.execute(
                "SELECT CAST(person_id AS VARCHAR), "
                "CASE WHEN min(condition_concept_id) = max(condition_concept_id) "
                "THEN max(condition_concept_id) END FROM condition_occurrence c "
                "WHERE condition_concept_id IN (192671, 4027663) AND condition_start_date = "
                "(SELECT max(condition_start_date) FROM condition_occurrence d "
                "WHERE d.person_id = c.person_id AND d.condition_concept_id IN (192671, 4027663)"
                " AND d.condition_start_date <= DATE '2019-07-01') GROUP BY person_id"
            ).fetchall()
        )
    expected = {
        p: "unknown" if latest.get(p) is None else str(latest[p] == 192671).lower() for p in rows
    }
    assert {p: row["E2"] for p, row in rows.items()} == expected
    assert dict(done.no_data)["drugs"] == 0
    to_postgres(database, postgres_url)
    in_postgres, from_postgres = screened_histories(postgres_url, tmp_path, "postgres")
    assert from_postgres == rows
    assert in_postgres.no_data == done.no_data


@pytest.fixture(scope="module")
def spark() -> Any:
    session = screen.spark_session()
    yield session
    session.stop()


# ---- bad data ------------------------------------------------------------------------

CREATININE = """\
protocol kidneys
data
  creatinine: quantity 'mg/dL' range 0 to 40 molar mass 113.12 'g/mol'
  sex: one of (female, male)
inclusion I1 "Creatinine below 1.4 mg/dL"
  met when creatinine < 1.4 'mg/dL'
"""

CREATININE_BINDING = """\
protocol: kidneys
omop:
  creatinine:
    measurement: [loinc:2160-0]
    select: latest within 90 days
  sex:
    person: gender
"""

# person, value, unit concept, unit source value, date, measurement concept
MEASUREMENTS: list[tuple[int, float | None, int, str | None, str, int]] = [
    (1, 1.2, 8840, None, "2019-06-01", 3016723),  # mg/dL
    (2, 106.1, 8749, None, "2019-06-01", 3016723),  # umol/L: 1.2002032 mg/dL
    (3, 0.8, 8840, None, "2019-05-01", 3016723),  # an older, readable value ...
    (3, 1.9, 0, "mg per dl", "2019-06-01", 3016723),  # ... but the latest is not UCUM
    (4, 1.0, 8840, None, "2019-06-01", 3016723),  # two values on the latest day
    (4, 1.5, 8840, None, "2019-06-01", 3016723),
    (5, 0.9, 8840, None, "2019-06-01", 3016723),
    (5, 3.0, 8840, None, "2019-08-01", 3016723),  # after the reference date
    (6, 1.1, 8840, None, "2019-06-01", 0),  # concept 0: not mapped
    (7, None, 8840, None, "2019-06-01", 3016723),  # no value
    (8, 1.0, 8840, None, "2019-01-01", 3016723),  # outside the 90 days
    (9, 0.0000000000012, 8840, None, "2019-06-01", 3016723),  # not exact in 10 places
]


def bad_database(path: Path) -> Path:
    import duckdb

    with duckdb.connect(str(path)) as connection:
        connection.execute(
            "CREATE TABLE person (person_id BIGINT, gender_concept_id BIGINT, "
            "year_of_birth INTEGER, month_of_birth INTEGER, day_of_birth INTEGER)"
        )
        genders = [8532, 8507, 0, 8532, 8507, 8532, 8507, None, 8532, 8532]
        connection.executemany(
            "INSERT INTO person VALUES (?, ?, 1970, 1, 1)",
            [(i, g) for i, g in enumerate(genders, start=1)],
        )
        connection.execute(
            "CREATE TABLE concept (concept_id BIGINT, concept_name VARCHAR, "
            "vocabulary_id VARCHAR, concept_code VARCHAR)"
        )
        connection.executemany(
            "INSERT INTO concept VALUES (?, ?, ?, ?)",
            [
                (3016723, "Creatinine", "LOINC", "2160-0"),
                (8840, "milligram per deciliter", "UCUM", "mg/dL"),
                (8749, "micromole per liter", "UCUM", "umol/L"),
            ],
        )
        connection.execute(
            "CREATE TABLE measurement (measurement_id BIGINT, person_id BIGINT, "
            "measurement_concept_id BIGINT, measurement_source_concept_id BIGINT, "
            "measurement_date DATE, value_as_number DOUBLE, value_as_concept_id BIGINT, "
            "unit_concept_id BIGINT, unit_source_value VARCHAR)"
        )
        connection.executemany(
            "INSERT INTO measurement VALUES (?, ?, ?, 0, ?, ?, NULL, ?, ?)",
            [
                (n, person, concept, day, value, unit, source)
                for n, (person, value, unit, source, day, concept) in enumerate(MEASUREMENTS)
            ],
        )
    return path


def test_bad_data_is_counted_and_never_changes_a_result_silently(tmp_path: Path) -> None:
    protocol = critlang.compile_source(CREATININE, "kidneys.crit")
    binding, diagnostics = check_binding(CREATININE_BINDING, "k.bind.yaml", protocol.checked)
    assert binding is not None, diagnostics
    database = bad_database(tmp_path / "bad.duckdb")
    output = tmp_path / "out.csv"
    done = screen_omop.run(protocol.checked, binding, str(database), AS_OF, output=output)
    rows = results(output)
    values = {person: row["I1"] for person, row in rows.items()}
    assert values == {
        "1": "true",
        "2": "true",
        "3": "unknown",  # the latest is unreadable: the older value is not used instead
        "4": "unknown",  # 1.0 and 1.5 on the same day
        "5": "true",  # 0.9; the value dated after the reference date is not read
        "6": "unknown",  # its only record is unmapped
        "7": "unknown",  # no value
        "8": "unknown",  # nothing within 90 days
        "9": "unknown",  # 1.2e-12 is not exact in 10 decimal places
        "10": "unknown",  # no record at all
    }
    assert all(row["status"] != "eligible" for p, row in rows.items() if values[p] != "true")
    problems = {(p.element, p.kind): p for p in done.problems}
    assert problems[("creatinine", "unit")].count == 1
    assert "'mg per dl' is not a UCUM unit" in problems[("creatinine", "unit")].detail
    assert problems[("creatinine", "conflict")].count == 1
    assert problems[("creatinine", "unreadable")].count == 3  # persons 3, 7 and 9
    assert problems[("creatinine", "future")].count == 1
    assert problems[("measurement", "unmapped")].count == 1
    assert problems[("sex", "unreadable")].count == 1  # gender concept 0
    assert dict(done.no_data) == {"creatinine": 2, "sex": 1}  # persons 6 and 10; person 8
    text = done.text()
    assert "1 record(s) with concept 0 (not mapped)" in text
    assert "creatinine: 1 patients with disagreeing values on the selected day" in text


def test_a_missing_code_and_a_missing_table_are_reported(tmp_path: Path) -> None:
    protocol = critlang.compile_source(CREATININE, "kidneys.crit")
    text = CREATININE_BINDING.replace("loinc:2160-0", "loinc:2160-0, loinc:38483-4")
    binding, _ = check_binding(text, "k.bind.yaml", protocol.checked)
    assert binding is not None
    database = bad_database(tmp_path / "bad.duckdb")
    done = screen_omop.run(protocol.checked, binding, str(database), AS_OF)
    assert "creatinine: loinc:38483-4 is not in the concept table" in done.text()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="has no table"):
        screen_omop.run(protocol.checked, binding, str(empty), AS_OF)


# ---- the binding's OMOP section, checked like a protocol -------------------------------


def test_omop_section_diagnostics_name_line_and_column() -> None:
    protocol = critlang.compile_source(CREATININE, "kidneys.crit")
    text = """\
protocol: kidneys
omop:
  creatinine:
    condition_occurrence: [snomed:709044004]
  sex:
    person: gender_concept
"""
    binding, diagnostics = check_binding(text, "k.bind.yaml", protocol.checked)
    assert binding is None
    found = [(d.code, d.span.line, d.span.column) for d in diagnostics]
    assert ("BIND041", 3, 3) in found  # a condition has no value to give a quantity
    assert ("BIND004", 6, 13) in found  # person has no such field
    concept = "protocol: kidneys\nomop:\n  creatinine:\n    measurement: [omop:abc]\n"
    binding, diagnostics = check_binding(concept, "k.bind.yaml", protocol.checked)
    assert binding is None
    assert [(d.code, d.span.line) for d in diagnostics if d.is_error] == [("BIND041", 3)]


def test_cli_screens_omop_and_reports_without_a_traceback(tmp_path: Path) -> None:
    database = eunomia()
    runner = CliRunner()
    output = tmp_path / "out.csv"
    arguments = ["screen", str(PROTOCOL), "--omop", str(database), "--bindings", str(BINDING)]
    done = runner.invoke(main, [*arguments, "--as-of", "2019-07-01", "-o", str(output)])
    assert done.exit_code == 0, done.output
    assert "no data at all, by element:" in done.output
    assert len(results(output)) == 2694
    # Parquet results are written by DuckDB itself, in the same flat schema.
    parquet = tmp_path / "out.parquet"
    written = runner.invoke(main, [*arguments, "--as-of", "2019-07-01", "-o", str(parquet)])
    assert written.exit_code == 0, written.output
    import duckdb

    rows = duckdb.sql(f"SELECT id, status FROM '{parquet}'").fetchall()
    assert dict(rows) == {person: row["status"] for person, row in results(output).items()}
    # Without a reference date, the windows cannot be placed.
    undated = runner.invoke(main, arguments)
    assert undated.exit_code != 0 and "--as-of" in undated.output
    elsewhere = [*arguments[:3], str(tmp_path / "none.duckdb"), *arguments[4:]]
    missing = runner.invoke(main, [*elsewhere, "--as-of", "2019-07-01"])
    assert missing.exit_code != 0 and "no such OMOP database" in missing.output
    assert "Traceback" not in undated.output + missing.output


# ---- the CTD-ILD binding a site copies: every kind of element it reads -------------------

CTD_ILD = critlang.load(ROOT.parent / "protocols" / "ctd_ild.crit")
CTD_ILD_BINDING = ROOT.parent / "protocols" / "ctd_ild.omop.bind.yaml"


def ctd_ild_database(path: Path) -> Path:
    import duckdb

    with duckdb.connect(str(path)) as connection:
        connection.execute(
            "CREATE TABLE person AS SELECT * FROM (VALUES (1, 8532, 1975, 3, 2), "
            "(2, 8507, 1950, 12, 31)) AS t(person_id, gender_concept_id, year_of_birth, "
            "month_of_birth, day_of_birth)"
        )
        connection.execute(
            "CREATE TABLE concept AS SELECT * FROM (VALUES "
            "(10, 'LOINC', '19870-5'), (11, 'LOINC', '2106-3'), (12, 'SNOMED', '260385009'), "
            "(13, 'ICD10CM', 'M34.81'), (14, 'SNOMED', '69896004'), (15, 'RxNorm', '68149'), "
            "(8519, 'UCUM', 'L'), (16, 'SNOMED', '10828004'), (8576, 'UCUM', 'mg'), "
            "(17, 'RxNorm', '310325'), (18, 'RxNorm', '8640'), (19, 'RxNorm', '312617'), "
            "(20, 'RxNorm', '312615')) "
            "AS t(concept_id, vocabulary_id, concept_code)"
        )
        connection.execute(
            "CREATE TABLE measurement AS SELECT * FROM (VALUES "
            "(1, 10, 0, DATE '2024-01-10', 3.0, 0, 8519, NULL),"
            "(1, 10, 0, DATE '2026-10-01', 2.55, 0, 8519, NULL),"
            "(1, 11, 0, DATE '2026-11-20', NULL, 12, 0, NULL),"
            "(2, 11, 0, DATE '2026-11-20', NULL, 99, 0, NULL)) "
            "AS t(person_id, measurement_concept_id, measurement_source_concept_id, "
            "measurement_date, value_as_number, value_as_concept_id, unit_concept_id, "
            "unit_source_value)"
        )
        connection.execute(
            "CREATE TABLE condition_occurrence AS SELECT * FROM (VALUES "
            "(1, 14, 0, DATE '2020-05-01'), (1, 0, 13, DATE '2021-05-01')) "
            "AS t(person_id, condition_concept_id, condition_source_concept_id, "
            "condition_start_date)"
        )
        connection.execute(
            "CREATE TABLE drug_exposure AS SELECT * FROM (VALUES "
            "(1, 1, 17, 0, DATE '2024-05-29', NULL, NULL, NULL),"
            "(2, 1, 19, 0, DATE '2026-11-20', NULL, 60, 30),"  # prednisone 5 MG: 10 mg/d
            "(3, 2, 20, 0, DATE '2026-11-21', NULL, 7, 3),"  # 2.5 MG: 5.8333... mg/d
            "(4, 2, 19, 0, DATE '2026-10-01', NULL, 30, 30)) "
            "AS t(drug_exposure_id, person_id, drug_concept_id, drug_source_concept_id, "
            "drug_exposure_start_date, drug_exposure_end_date, quantity, days_supply)"
        )
        # RxNorm's hierarchy: mycophenolate mofetil (15) above its 500 MG tablet (17),
        # prednisone (18) above its 5 MG (19) and 2.5 MG (20) tablets.
        connection.execute(
            "CREATE TABLE concept_ancestor AS SELECT * FROM (VALUES "
            "(15, 15), (15, 17), (18, 18), (18, 19), (18, 20), (18, 21)) "
            "AS t(ancestor_concept_id, descendant_concept_id)"
        )
        connection.execute(
            "CREATE TABLE drug_strength AS SELECT * FROM (VALUES "
            "(17, 15, 500.0, 8576), (19, 18, 5.0, 8576), (20, 18, 2.5, 8576), "
            "(21, 18, 5.0, 8576), (21, 99, 50.0, 8576)) "  # a combination: refused
            "AS t(drug_concept_id, ingredient_concept_id, amount_value, amount_unit_concept_id)"
        )
    return path


def test_the_ctd_ild_binding_reads_every_kind_of_element(tmp_path: Path) -> None:
    from critlang.bindings.omop import PatientTable, source_of
    from critlang.screen_omop import DuckDBBackend, resolve

    binding = binding_for(CTD_ILD, CTD_ILD_BINDING)
    sources = [source_of(e) for e in binding.sections["omop"].elements.values()]
    backend = DuckDBBackend(ctd_ild_database(tmp_path / "ctd.duckdb"))
    try:
        resolved, problems = resolve(CTD_ILD.checked, sources, backend)
        table = PatientTable(CTD_ILD.checked, resolved, datetime.date(2026, 11, 29))
        cursor = backend.connection.execute(backend.text(table.query()))
        names = [d[0] for d in cursor.description]
        rows = {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}
    finally:
        backend.close()
    woman, man = rows[1], rows[2]
    assert woman["age"] == 51 and man["age"] == 75
    assert (woman["sex"], man["sex"]) == ("female", "male")
    # A set from condition codes: a source ICD-10-CM code (M34.81) and a SNOMED concept.
    assert sorted(woman["ctd_diagnoses"]) == ["rheumatoid_arthritis", "systemic_sclerosis"]
    assert man["ctd_diagnoses"] == []  # absent: empty
    assert woman["fvc_baseline"] == Decimal("3.0") and woman["fvc_current"] == Decimal("2.55")
    assert woman["pregnancy_test"] == "negative"
    assert man["pregnancy_test"] is None and man["omop pregnancy_test unreadable"] == 1
    assert woman["treatment_duration [d]"] == 914  # 2024-05-29 to 2026-11-29, a descendant
    # 5 mg x 60 / 30 days; 2.5 mg x 7 / 3 days is not exact: unknown and counted.
    assert woman["steroid_dose"] == Decimal("10")
    assert man["steroid_dose"] is None and man["omop steroid_dose unreadable"] == 1
    refused = [p.text() for p in problems if p.kind == "strength"]
    assert refused == [
        "steroid_dose: drug concept 21: 2 strengths (one per ingredient); its doses are not read"
    ]
    assert man["hiv"] is False and woman["hiv"] is False


# ---- the synthetic patients of synth.py: flat records and OMOP tables -------------------

SYNTHETIC_BINDING = ROOT / "data" / "omop" / "ctd_ild.synthetic.bind.yaml"
SYNTHETIC_AS_OF = datetime.date(2026, 11, 29)


def flat_and_omop(patients: list[Any], folder: Path, **options: Any) -> Any:
    """Each patient's flat result (without what OMOP does not bind) and its OMOP row."""
    from critlang.synth_omop import write_omop

    write_omop(patients, folder / "omop")
    binding = binding_for(CTD_ILD, SYNTHETIC_BINDING)
    unbound = set(binding.sections["omop"].unbound)
    records = [
        {k: v for k, v in json.loads(dumps(p.record)).items() if k not in unbound} for p in patients
    ]
    flat = {r.id: r for r in CTD_ILD.evaluate_many(records)}
    output = folder / "omop.csv"
    done = screen_omop.run(
        CTD_ILD.checked, binding, str(folder / "omop"), SYNTHETIC_AS_OF, output=output, **options
    )
    by_person = {str(n): p.id for n, p in enumerate(patients, start=1)}
    rows = {by_person[person]: row for person, row in results(output).items()}
    return flat, rows, done


def same(flat: Any, row: dict[str, str]) -> None:
    assert row["status"] == flat.status, (flat.id, row)
    for criterion in flat.criteria:
        word = Truth.of(criterion.value, criterion.applicable).value
        assert row[criterion.id] == word, (flat.id, criterion.id, row)


def ctd_section() -> Any:
    from critlang.bindings import load_binding as load

    binding, _ = load(ROOT.parent / "protocols" / "ctd_ild.fhir.bind.yaml", CTD_ILD.checked)
    assert binding is not None
    return binding.sections["fhir"]


def test_synthetic_patients_screen_the_same_flat_and_from_omop(tmp_path: Path) -> None:
    from critlang.synth import Generator

    generator = Generator(CTD_ILD.checked, ctd_section(), SYNTHETIC_AS_OF, seed=7)
    patients = list(generator.patients(300))
    flat, rows, done = flat_and_omop(patients, tmp_path)
    assert set(rows) == set(flat) and len(rows) == 300
    for person, result in flat.items():
        same(result, rows[person])
    assert {r.status for r in flat.values()} >= {"ineligible", "undetermined"}
    # ICD-10-CM conditions arrive as source concepts, unmapped: counted, and still read.
    problems = {(p.element, p.kind): p.count for p in done.problems}
    assert problems[("condition_occurrence", "unmapped")] > 0


@pytest.mark.z3
def test_boundary_patients_from_analyze_screen_the_same_from_omop(tmp_path: Path) -> None:
    from critlang.analyze.questions import boundary_examples
    from critlang.synth import Generator

    witnesses = [p.witness.record for p in boundary_examples(CTD_ILD)]
    assert witnesses
    generator = Generator(CTD_ILD.checked, ctd_section(), SYNTHETIC_AS_OF, seed=3)
    patients = list(generator.patients(len(witnesses), witnesses))
    flat, rows, _ = flat_and_omop(patients, tmp_path)
    for person, result in flat.items():
        same(result, rows[person])


HISTORIES = critlang.load(ROOT / "data" / "fhir" / "histories.crit")


def test_histories_with_ranges_and_doses_screen_the_same_flat_and_from_omop(
    tmp_path: Path,
) -> None:
    """Reference ranges (`its upper limit`) from range_low/range_high and daily doses
    (`its dose`) from drug_strength x quantity / days_supply, on the synthetic patients."""
    from critlang.synth import Generator
    from critlang.synth_omop import write_omop

    fhir = binding_for(HISTORIES, ROOT / "data" / "fhir" / "histories.fhir.bind.yaml")
    omop = binding_for(HISTORIES, ROOT / "data" / "omop" / "histories.omop.bind.yaml")
    generator = Generator(HISTORIES.checked, fhir.sections["fhir"], SYNTHETIC_AS_OF, seed=4)
    patients = list(generator.patients(200))
    write_omop(patients, tmp_path / "omop")
    records = [json.loads(dumps(p.record)) for p in patients]
    flat = {r.id: r for r in HISTORIES.evaluate_many(records)}
    output = tmp_path / "omop.csv"
    done = screen_omop.run(
        HISTORIES.checked, omop, str(tmp_path / "omop"), SYNTHETIC_AS_OF, output=output
    )
    by_person = {str(n): p.id for n, p in enumerate(patients, start=1)}
    rows = {by_person[person]: row for person, row in results(output).items()}
    for person, result in flat.items():
        assert result.error is None
        same(result, rows[person])
    # The criteria that need the range and the dose are decided for many patients.
    for criterion in ("E1", "E2"):
        assert sum(r[criterion] in ("true", "false") for r in rows.values()) > 40
    assert done.attrition.total == 200
