"""Clinical units end to end: records through `compile_source(...).evaluate`.

A new author declares HbA1c, eGFR, blood pressure, IU-based titres and cell
counts; no record in a unit of another kind is ever silently misread.
"""

from __future__ import annotations

import decimal
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import critlang
from critlang.check import check, check_source
from critlang.cli import main
from critlang.fmt import format_source, without_spans
from critlang.lexer import CritLexer
from critlang.parser import parse
from critlang.records import Intake, RecordError
from critlang.render import render_document

PROTOCOL = r"""
protocol units_clinic

data
  hba1c: quantity '%' label "HbA1c (NGSP)"
  hba1c_any: quantity '%' convert 'mmol/mol' as 0.09148 * value + 2.152
  egfr: quantity 'mL/min/{1.73_m2}'
  clearance: quantity 'mL/min/{1.73_m2}' accepts 'mL/min'
  systolic: quantity 'mm[Hg]'
  anti_xa: quantity '[IU]/mL'
  titre: quantity '[arb\'U]/mL'
  aps: quantity '[GPL\'U]'
  neutrophils: quantity '10*9/L'
  weight: quantity '[lb_av]'
  temperature: quantity 'Cel'

inclusion I1 "HbA1c" met when hba1c >= 6.5%
inclusion I2 "HbA1c, any unit" met when hba1c_any >= 8%
inclusion I3 "eGFR" met when egfr >= 30 'mL/min/{1.73_m2}'
inclusion I4 "Clearance" met when clearance >= 30 'mL/min/{1.73_m2}'
inclusion I5 "Hypertension" met when systolic >= 140 'mm[Hg]'
inclusion I6 "Anti-Xa" met when anti_xa > 0.5 '[IU]/mL'
inclusion I7 "Titre" met when titre > 4 '[arb\'U]/mL'
inclusion I8 "APS" met when aps > 20 '[GPL\'U]'
inclusion I9 "Neutrophils" met when neutrophils >= 1.5 '10*9/L'
inclusion I10 "Weight" met when weight >= 453.59237 'g'
inclusion I11 "Fever-free" met when temperature < 38 'Cel'
"""
CLINIC = critlang.compile_source(PROTOCOL)
INTAKE = Intake(check(parse(PROTOCOL))[0])


def quantity(value: Any, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit}


def refused(field: str, value: dict[str, Any]) -> RecordError:
    with pytest.raises(RecordError) as caught:
        CLINIC.evaluate({"id": "r1", field: value})
    assert caught.value.field == field
    assert caught.value.record_id == "r1"
    return caught.value


def criterion(field: str, value: dict[str, Any]) -> str:
    """The reason of the one criterion about `field`."""
    result = CLINIC.evaluate({"id": "r1", field: value}).to_dict()
    known = [c["reason"] for c in result["criteria"] if c["value"] != "unknown"]
    assert len(known) == 1, known
    reason: str = known[0]
    return reason


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("hba1c", quantity(64, "mmol/mol"), "different kinds of quantity"),
        ("anti_xa", quantity(5, "%"), "does not convert"),
        ("anti_xa", quantity(5, "/mL"), "does not convert"),
        ("anti_xa", quantity(5, "[arb'U]/mL"), "does not convert"),
        ("anti_xa", quantity(5, "10*9/L"), "does not convert"),
        ("anti_xa", quantity(5, "[CFU]/L"), "does not convert"),
        ("aps", quantity(30, "[MPL'U]"), "does not convert"),
        ("egfr", quantity(90, "mL/min"), "different kinds of quantity"),
        ("neutrophils", quantity(4, "mmol/L"), "different kinds of quantity"),
        ("systolic", quantity(140, "mm/h"), "does not convert"),
        ("systolic", quantity(140, "10+3/ul"), "not a UCUM unit"),
    ],
)
def test_a_record_in_another_kind_is_refused(field: str, value: dict[str, Any], words: str) -> None:
    error = refused(field, value)
    assert words in str(error)
    assert f"field '{field}'" in str(error)


def test_hba1c_in_ifcc_units_is_read_by_the_declared_formula() -> None:
    # 0.09148 x 64 + 2.152 = 8.00672 exactly.
    assert "about 8.01% is at least 8%" in criterion("hba1c_any", quantity(64, "mmol/mol"))
    assert "is not at least 8%" in criterion("hba1c_any", quantity(Decimal("63.9"), "mmol/mol"))
    _, env = INTAKE({"hba1c_any": quantity(64, "mmol/mol")}, 1)
    assert env["hba1c_any"] == Decimal("8.00672")
    assert "7.9% is not at least 8%" in criterion("hba1c_any", quantity(Decimal("7.9"), "%"))


def test_results_tell_how_a_value_in_an_accepted_or_converted_unit_was_read() -> None:
    result = CLINIC.evaluate(
        {
            "id": "r1",
            "hba1c_any": quantity(64, "mmol/mol"),
            "clearance": quantity(30, "mL/min"),
            "systolic": quantity(Decimal("18.66508"), "kPa"),  # the same kind: no reading
            "hba1c": Decimal("7.1"),
        }
    )
    assert result.readings == (
        "hba1c_any 64 mmol/mol, read as 8.00672% by the protocol's conversion "
        "0.09148 \N{MULTIPLICATION SIGN} value + 2.152",
        "clearance 30 mL/min, read as 30 mL/min/1.73 m²: the protocol accepts mL/min",
    )
    assert result.to_dict()["readings"] == list(result.readings)
    plain = CLINIC.evaluate({"id": "r2", "hba1c_any": Decimal(8)})
    assert plain.readings == () and "readings" not in plain.to_dict()


def test_eval_prints_the_readings_under_the_criteria(tmp_path: Path) -> None:
    protocol = tmp_path / "clinic.crit"
    protocol.write_text(PROTOCOL, encoding="utf-8")
    records = tmp_path / "records.jsonl"
    records.write_text(
        json.dumps({"id": "r1", "hba1c_any": {"value": 64, "unit": "mmol/mol"}}) + "\n",
        encoding="utf-8",
    )
    outcome = CliRunner().invoke(main, ["eval", str(protocol), str(records)])
    assert (
        "  read: hba1c_any 64 mmol/mol, read as 8.00672% by the protocol's conversion "
        "0.09148 \N{MULTIPLICATION SIGN} value + 2.152"
    ) in outcome.output.splitlines()


def test_accepted_units_convert_by_their_ucum_factor() -> None:
    assert "30 mL/min/1.73 m² is at least 30" in criterion("clearance", quantity(30, "mL/min"))


def test_blood_pressure_in_kpa_is_exactly_mm_hg() -> None:
    # UCUM: 1 mm[Hg] = 133.322 Pa, so 18.66508 kPa is exactly 140 mm[Hg].
    assert "140 mmHg is at least 140 mmHg" in criterion(
        "systolic", quantity(Decimal("18.66508"), "kPa")
    )


def test_cell_counts_convert_within_their_kind() -> None:
    assert "4.5 \N{MULTIPLICATION SIGN}10⁹/L is at least" in criterion(
        "neutrophils", quantity(4500, "/uL")
    )
    assert "4.5 \N{MULTIPLICATION SIGN}10⁹/L" in criterion(
        "neutrophils", quantity(Decimal("4.5"), "10*3/uL")
    )


def test_prefixed_arbitrary_units_convert_to_their_own_unit() -> None:
    assert "0.6 IU/mL is more than 0.5 IU/mL" in criterion("anti_xa", quantity(600, "m[IU]/mL"))


def test_temperatures_convert_with_their_offset() -> None:
    assert "37 °C is less than 38 °C" in criterion(
        "temperature", quantity(Decimal("98.6"), "[degF]")
    )


def test_conversion_does_not_depend_on_the_callers_decimal_context() -> None:
    record = {"id": "r1", "weight": quantity(1, "[lb_av]")}
    with decimal.localcontext(decimal.Context(prec=5)):
        result = CLINIC.evaluate(record).to_dict()
    weight = next(c for c in result["criteria"] if c["id"] == "I10")
    assert weight["value"] == "true", weight["reason"]


def test_a_bad_unit_in_a_batch_is_one_error_and_the_rest_go_on() -> None:
    records = [
        {"id": "a", "systolic": quantity(1, "Oe")},
        {"id": "b", "systolic": quantity(150, "mm[Hg]")},
        {"id": "c", "systolic": quantity(1, "G")},
        {"id": "d", "systolic": quantity(1, "m/")},
    ]
    results = list(CLINIC.evaluate_many(records))
    assert [r.status == "error" for r in results] == [True, False, True, True]
    assert "record a" in (results[0].error or "")


def test_units_with_quotes_survive_the_formatter() -> None:
    formatted = format_source(PROTOCOL)
    assert "'[arb\\'U]/mL'" in formatted
    assert "convert 'mmol/mol' as 0.09148 * value + 2.152" in formatted
    assert "accepts 'mL/min'" in formatted
    assert without_spans(parse(formatted)) == without_spans(parse(PROTOCOL))
    assert format_source(formatted) == formatted


def test_documents_show_units_as_people_write_them() -> None:
    checked, _ = check(parse(PROTOCOL))
    text = render_document(checked, "md")
    assert "140 mmHg" in text
    assert "1.5 \N{MULTIPLICATION SIGN}10⁹/L" in text
    assert "mmol/mol read as 0.09148 \N{MULTIPLICATION SIGN} value + 2.152" in text
    assert "also accepted in mL/min" in text


def test_units_that_used_to_crash_check_compile_and_screen() -> None:
    source = """
protocol magnets
data
  field: quantity 'G'
  flux: quantity 'Mx'
  strength: quantity 'Oe'
inclusion I1 "Strong" met when field > 1 'T' and flux > 1 'Wb' and strength > 1 'A/m'
"""
    checked, diagnostics = check_source(source, "magnets.crit")
    assert checked is not None, diagnostics
    protocol = critlang.compile_source(source)
    results = list(
        protocol.evaluate_many(
            [
                {"id": "a", "field": quantity(20000, "G"), "flux": 1, "strength": 1},
                {"id": "b", "field": quantity(1, "Oe")},
            ]
        )
    )
    assert [r.status for r in results][1] == "error"
    assert "field 'field'" in (results[1].error or "")


@given(st.text(alphabet=st.characters(blacklist_characters="'\\\n\r"), max_size=25))
def test_any_unit_text_in_a_protocol_gives_diagnostics_not_a_traceback(code: str) -> None:
    source = (
        f"protocol p\ndata\n  x: quantity '{code}'\ninclusion I1 \"t\" met when x > 1 '{code}'\n"
    )
    checked, diagnostics = check_source(source, "p.crit")
    assert checked is not None or any(d.is_error for d in diagnostics)


def test_the_pygments_lexer_reads_a_unit_with_a_quote_as_one_token() -> None:
    from pygments.token import String

    tokens = list(CritLexer().get_tokens("titre > 4 '[arb\\'U]/mL' and x > 1 'a'\n"))
    units = [text for kind, text in tokens if kind is String.Symbol]
    assert units == ["'[arb\\'U]/mL'", "'a'"]
