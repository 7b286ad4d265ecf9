"""A condition's end date (condition_end_date) is its history entry's end, so `during` sees
a diagnosis that began before a window and lasted into it (screen and explanation alike)."""

from __future__ import annotations

import datetime
from pathlib import Path

import duckdb

from critlang import screen_omop
from critlang.bindings.binding import check_binding
from critlang.explain_omop import OmopExplain
from critlang.pipeline import compile_source

AS_OF = datetime.date(2026, 11, 29)
PROTOCOL = """\
protocol cancer
as of screening
codes cancer "Breast cancer" snomed ("254837009")
data
  screening: date
  diagnoses: history of codes complete
exclusion E1 "Breast cancer at any time in the last 5 years"
  met when any diagnoses during 5 years where its code in cancer
"""
BINDING = """\
protocol: cancer
omop:
  screening: {person: reference_date}
  diagnoses: {condition_occurrence: [snomed:254837009]}
"""


def database(path: Path) -> str:
    with duckdb.connect(str(path)) as connection:
        connection.execute(
            "CREATE TABLE person (person_id BIGINT, gender_concept_id BIGINT, year_of_birth INTEGER,"
            " month_of_birth INTEGER, day_of_birth INTEGER, birth_datetime TIMESTAMP)"
        )
        connection.execute(
            "CREATE TABLE concept (concept_id BIGINT, concept_code VARCHAR, vocabulary_id VARCHAR,"
            " concept_name VARCHAR, domain_id VARCHAR, standard_concept VARCHAR)"
        )
        connection.execute(
            "CREATE TABLE condition_occurrence (condition_occurrence_id BIGINT, person_id BIGINT,"
            " condition_concept_id BIGINT, condition_source_concept_id BIGINT,"
            " condition_start_date DATE, condition_end_date DATE)"
        )
        connection.execute(
            "INSERT INTO concept VALUES (4112853, '254837009', 'SNOMED', 'Breast cancer',"
            " 'Condition', 'S')"
        )
        for person in (1, 2, 3):
            connection.execute(f"INSERT INTO person VALUES ({person}, 8532, 1960, 1, 1, NULL)")
        connection.execute(
            "INSERT INTO condition_occurrence VALUES"
            " (10, 1, 4112853, 0, DATE '2015-03-01', DATE '2019-05-01'),"  # over before the window
            " (20, 2, 4112853, 0, DATE '2015-03-01', DATE '2023-05-01')"  # lasted into it
        )  # person 3: no breast cancer
    return str(path)


def test_condition_end_dates_bound_a_diagnosis_in_screen_and_explanation(tmp_path: Path) -> None:
    protocol = compile_source(PROTOCOL)
    bound, diagnostics = check_binding(BINDING, "t.bind.yaml", protocol.checked)
    assert bound is not None, diagnostics
    path = database(tmp_path / "omop.duckdb")
    explain = OmopExplain(protocol, bound, path, AS_OF)
    try:
        found = {r.id: r for r in explain.results()}
    finally:
        explain.close()
    assert {p: r.status for p, r in found.items()} == {
        "1": "eligible",
        "2": "ineligible",
        "3": "eligible",
    }
    output = tmp_path / "screened.csv"
    screen_omop.run(protocol.checked, bound, path, AS_OF, output=output)
    rows = output.read_text(encoding="utf-8").splitlines()
    header = rows[0].split(",")
    statuses = {
        r.split(",")[header.index("id")]: r.split(",")[header.index("status")] for r in rows[1:]
    }
    assert statuses == {"1": "eligible", "2": "ineligible", "3": "eligible"}
