"""Record intake: what a record may hold, and what is said when it does not fit."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import critlang
from critlang import RecordError
from critlang.records import read_records
from tests.patients import ELIGIBLE

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = critlang.load(ROOT / "protocols" / "ctd_ild.crit")


def good(record_id: str, **changes: Any) -> dict[str, Any]:
    return {"id": record_id, **ELIGIBLE, **changes}


BAD_VALUES = [
    # (id, field, value, words the message must contain)
    ("number_as_text", "age", "forty", ["expected a number"]),
    ("boolean_as_number", "age", True, ["expected a number"]),
    ("text_for_boolean", "hiv", "yes", ["expected true or false"]),
    ("not_a_finite_number", "age", float("inf"), ["finite"]),
    ("unknown_ucum_unit", "creatinine", {"value": 1, "unit": "furlong"}, ["'furlong'", "UCUM"]),
    ("incompatible_unit", "creatinine", {"value": 1, "unit": "kg"}, ["'kg'", "'mg/dL'"]),
    ("duration_in_litres", "treatment_duration", {"value": 2, "unit": "L"}, ["'L'", "'mo'"]),
    ("quantity_without_unit", "age", {"value": 50}, ["unit"]),
    ("age_131_years", "age", 131, ["plausible range", "0 to 130"]),
    ("age_1600_months", "age", {"value": 1600, "unit": "mo"}, ["plausible range"]),
    ("negative_weight", "body_weight", -5, ["plausible range", "1 to 400"]),
    ("undeclared_enum_value", "sex", "other", ["not a declared value", "female", "male"]),
    ("undeclared_set_value", "ctd_diagnoses", ["lupus"], ["not a declared value"]),
    ("set_given_as_string", "ctd_diagnoses", "sjogren_syndrome", ["expected a list"]),
]


@pytest.mark.parametrize(
    ("record_id", "field", "value", "words"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES]
)
def test_bad_value_names_record_field_and_value(
    record_id: str, field: str, value: Any, words: list[str]
) -> None:
    with pytest.raises(RecordError) as raised:
        PROTOCOL.evaluate(good(record_id, **{field: value}))
    error = raised.value
    assert (error.record_id, error.field, error.value) == (record_id, field, value)
    message = str(error)
    assert message.startswith(f"record {record_id}: field '{field}'")
    for word in words:
        assert word in message
    if isinstance(value, str):
        assert f'"{value}"' in message
    elif isinstance(value, int) and not isinstance(value, bool):
        assert str(value) in message


def test_status_fast_path_rejects_bad_records_too() -> None:
    with pytest.raises(RecordError):
        PROTOCOL.status(good("x", sex="other"))


def test_record_without_id_is_named_by_position() -> None:
    record = dict(ELIGIBLE, hiv="no")
    with pytest.raises(RecordError) as raised:
        PROTOCOL.evaluate(record)
    assert raised.value.record_id == "1"
    results = list(PROTOCOL.evaluate_many([dict(ELIGIBLE), dict(ELIGIBLE), record]))
    assert [r.id for r in results] == ["1", "2", "3"]
    assert [r.status for r in results] == ["eligible", "eligible", "error"]


def test_null_means_unknown() -> None:
    result = PROTOCOL.evaluate(good("n", age=None))
    assert result.status == "undetermined"
    assert result.missing == ("age",)


def test_evaluate_many_reports_the_bad_record_and_goes_on() -> None:
    records: list[Any] = [
        good("first"),
        good("second", creatinine={"value": 1, "unit": "kg"}),
        "not a record",
        good("fourth", hiv=True),
    ]
    results = list(PROTOCOL.evaluate_many(records))
    assert [r.status for r in results] == ["eligible", "error", "error", "ineligible"]
    assert [r.id for r in results] == ["first", "second", "3", "fourth"]
    second = results[1]
    assert second.error is not None
    assert "second" in second.error and "creatinine" in second.error and "kg" in second.error
    assert second.criteria == ()
    assert second.to_dict() == {"id": "second", "status": "error", "error": second.error}
    assert results[2].error is not None and "object" in results[2].error


def test_units_convert_exactly_at_intake() -> None:
    # 1.4 mg/dL of creatinine (113.12 g/mol) is 14000 / 113.12 = 123.762... umol/L.
    below = PROTOCOL.evaluate(good("b", creatinine={"value": Decimal("123.76"), "unit": "umol/L"}))
    above = PROTOCOL.evaluate(good("a", creatinine={"value": Decimal("123.77"), "unit": "umol/L"}))
    assert (below.status, above.status) == ("eligible", "ineligible")
    # 2 a is 24 mo exactly, and I2 a asks for more than 24 mo.
    two_years = PROTOCOL.evaluate(good("y", treatment_duration={"value": 2, "unit": "a"}))
    assert two_years.status == "ineligible"


# ---- CSV ------------------------------------------------------------------------

CSV_COLUMNS = [
    "id",
    "age",
    "sex",
    "ctd_diagnoses",
    "treatment_duration (a)",
    "steroid_dose",
    "body_weight",
    "fvc_baseline",
    "fvc_current",
    "dlco_baseline",
    "dlco_current",
    "ct_lesions_enlarged",
    "symptom_duration",
    "dyspnea_worsening",
    "oxygen_declining",
    "family_support_confirmed",
    "childbearing_potential",
    "pregnancy_test",
    "contraception",
    "pregnant",
    "breastfeeding",
    "willing_to_consent",
    "improved_after_6_months",
    "got",
    "gpt",
    "enzymes_due_to_myopathy",
    "creatinine [umol/L]",
    "hiv",
    "notifiable_infection",
]
CSV_ROW = {
    "id": "c1",
    "age": "45",
    "sex": "female",
    "ctd_diagnoses": "polymyositis; sjogren_syndrome",
    "treatment_duration (a)": "2.5",  # 30 mo
    "steroid_dose": "20",
    "body_weight": "60",
    "fvc_baseline": "3.0",
    "fvc_current": "2.6",
    "dlco_baseline": "20",
    "dlco_current": "19",
    "ct_lesions_enlarged": "no",
    "symptom_duration": "400",
    "dyspnea_worsening": "no",
    "oxygen_declining": "NO",
    "family_support_confirmed": "yes",
    "childbearing_potential": "Yes",
    "pregnancy_test": "negative",
    "contraception": "true",
    "pregnant": "false",
    "breastfeeding": "0",
    "willing_to_consent": "1",
    "improved_after_6_months": "no",
    "got": "30",
    "gpt": "30",
    "enzymes_due_to_myopathy": "no",
    "creatinine [umol/L]": "80",
    "hiv": "no",
    "notifiable_infection": "no",
}


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    lines = [",".join(CSV_COLUMNS)]
    lines += [",".join(f'"{row[column]}"' for column in CSV_COLUMNS) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def screen_csv(path: Path) -> list[critlang.Result]:
    return list(PROTOCOL.screen(read_records(path, PROTOCOL.checked)))


def test_csv_units_in_header_booleans_sets_and_empty_cells(tmp_path: Path) -> None:
    rows = [
        CSV_ROW,
        # 123.8 umol/L is above 1.4 mg/dL (123.76 umol/L)
        {**CSV_ROW, "id": "c2", "creatinine [umol/L]": "123.8"},
        {**CSV_ROW, "id": "c3", "creatinine [umol/L]": "123.76"},
        # An empty cell is unknown, not zero and not false.
        {**CSV_ROW, "id": "c4", "age": "", "hiv": " "},
        {**CSV_ROW, "id": "c5", "ctd_diagnoses": ""},
        {**CSV_ROW, "id": "c6", "treatment_duration (a)": "2"},  # 24 mo: not more
        {**CSV_ROW, "id": "c7", "hiv": "YES"},
        {**CSV_ROW, "id": "c8", "age": "NA"},
    ]
    results = screen_csv(write_csv(tmp_path / "patients.csv", rows))
    assert [(r.id, r.status) for r in results] == [
        ("c1", "eligible"),
        ("c2", "ineligible"),
        ("c3", "eligible"),
        ("c4", "undetermined"),
        ("c5", "undetermined"),
        ("c6", "ineligible"),
        ("c7", "ineligible"),
        ("c8", "undetermined"),
    ]
    assert set(results[3].missing) == {"age", "hiv"}
    assert results[4].missing == ("ctd_diagnoses",)
    assert results[7].missing == ("age",)


def test_csv_set_with_one_value_and_pipe_separator(tmp_path: Path) -> None:
    rows = [
        {**CSV_ROW, "id": "one", "ctd_diagnoses": "dermatomyositis"},
        {**CSV_ROW, "id": "pipe", "ctd_diagnoses": "dermatomyositis|polymyositis"},
    ]
    results = screen_csv(write_csv(tmp_path / "sets.csv", rows))
    assert [r.status for r in results] == ["eligible", "eligible"]


def test_csv_bad_cells_are_errors_and_the_rest_go_on(tmp_path: Path) -> None:
    rows = [
        {**CSV_ROW, "id": "bad_bool", "hiv": "maybe"},
        {**CSV_ROW, "id": "bad_number", "age": "forty"},
        {**CSV_ROW, "id": "bad_set", "ctd_diagnoses": "lupus;polymyositis"},
        {**CSV_ROW, "id": "fine"},
    ]
    results = screen_csv(write_csv(tmp_path / "bad.csv", rows))
    assert [(r.id, r.status) for r in results] == [
        ("bad_bool", "error"),
        ("bad_number", "error"),
        ("bad_set", "error"),
        ("fine", "eligible"),
    ]
    errors = [r.error or "" for r in results[:3]]
    assert "'hiv'" in errors[0] and "maybe" in errors[0]
    assert "'age'" in errors[1] and "forty" in errors[1]
    assert "'ctd_diagnoses'" in errors[2] and "lupus" in errors[2]


def test_csv_unknown_column_is_ignored_and_a_ragged_row_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("id,age,creatinin\nr1,45,1.0\nr2,45\n", encoding="utf-8")
    results = screen_csv(path)
    assert [r.status for r in results] == ["undetermined", "error"]
    assert results[1].error == "record 3: line 3: 2 cell(s) where the header has 3"


def test_csv_numbers_stay_exact(tmp_path: Path) -> None:
    # 2.85 read as a binary float would give a decline just under 5%.
    row = {**CSV_ROW, "fvc_current": "2.85", "dlco_current": "16.8"}
    (result,) = screen_csv(write_csv(tmp_path / "exact.csv", [row]))
    i2 = result.criteria[1]
    (part_a,) = [p for p in i2.parts if p.name == "a"]
    assert part_a.value is True


def test_unknown_record_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown record format"):
        read_records(tmp_path / "records.xml", PROTOCOL.checked)
