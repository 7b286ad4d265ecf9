"""Binding files: read with positions and checked against their protocol like a protocol is."""

from __future__ import annotations

from pathlib import Path

import pytest

from critlang.bindings import load_binding
from critlang.bindings.binding import check_binding
from critlang.check import Checked, check_source
from critlang.diagnostics import render_all

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = ROOT / "protocols" / "ctd_ild.crit"
BINDING = ROOT / "protocols" / "ctd_ild.fhir.bind.yaml"

SMALL = """\
protocol small
data
  age: quantity 'a' range 0 to 130
  sex: one of (female, male)
  hiv: boolean
  creatinine: quantity 'mg/dL' range 0 to 40
  diagnoses: set of (lupus, sclerosis)
inclusion I1 "Adult"
  met when age >= 18 'a' and not hiv and creatinine < 1.4 'mg/dL'
"""


@pytest.fixture(scope="module")
def small() -> Checked:
    checked, diagnostics = check_source(SMALL, "small.crit")
    assert checked is not None, diagnostics
    return checked


def codes_at(text: str, checked: Checked) -> list[tuple[str, int, int, str]]:
    _, diagnostics = check_binding(text, "b.bind.yaml", checked)
    return [(d.code, d.span.line, d.span.column, d.severity) for d in diagnostics]


def test_the_ctd_ild_fhir_binding_is_clean() -> None:
    checked, _ = check_source(PROTOCOL.read_text(encoding="utf-8"), str(PROTOCOL))
    assert checked is not None
    binding, diagnostics = load_binding(BINDING, checked)
    assert diagnostics == []
    assert binding is not None
    fhir = binding.sections["fhir"]
    assert fhir.elements["creatinine"].rule.describe() == "latest within 90 days"
    diagnoses = dict(fhir.elements["ctd_diagnoses"].values)
    assert diagnoses["systemic_sclerosis"].matches("icd10cm:M3481")
    assert diagnoses["rheumatoid_arthritis"].matches("snomed:69896004")
    assert not diagnoses["rheumatoid_arthritis"].matches("icd10cm:M3481")
    assert "willing_to_consent" in fhir.unbound


def test_a_clean_small_binding(small: Checked) -> None:
    text = """\
protocol: small
fhir:
  age: {patient: birthDate}
  sex: {patient: gender}
  hiv: {condition: [snomed:86406008, icd10cm:B20], absent: false}
  creatinine: {observation: loinc:2160-0, select: latest within 90 days}
  diagnoses:
    condition: {lupus: [icd10cm:M32.*], sclerosis: [icd10cm:M34*]}
"""
    binding, diagnostics = check_binding(text, "b.bind.yaml", small)
    assert diagnostics == []
    assert binding is not None
    hiv = binding.sections["fhir"].elements["hiv"]
    assert hiv.absent == "false"
    assert hiv.codes.matches("icd10cm:B20")
    lupus = dict(binding.sections["fhir"].elements["diagnoses"].values)["lupus"]
    assert lupus.matches("icd10cm:M321") and not lupus.matches("icd10cm:M34")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("protocol: small\nfhir: [\n", [("BIND001", 3, 1, "error")]),
        ("", [("BIND002", 1, 1, "error")]),
        (
            "protocol: other\nfhir:\n  age: {patient: birthDate}\n",
            [("BIND005", 1, 11, "error"), ("BIND011", 3, 3, "warning")],
        ),
        ("fhir: {}\n", [("BIND006", 1, 1, "error"), ("BIND011", 1, 7, "warning")]),
        (
            "protocol: small\nfhir: [age]\n",
            [("BIND002", 2, 7, "error"), ("BIND011", 2, 7, "warning")],
        ),
        ("protocol: small\n", [("BIND007", 1, 1, "error")]),
        ("protocol: small\nfihr: {}\n", [("BIND004", 2, 1, "error"), ("BIND007", 1, 1, "error")]),
        (
            "protocol: small\nfhir:\n  age: ~\n  agee: ~\n  sex: ~\n  hiv: ~\n  creatinine: ~\n  diagnoses: ~\n",
            [("BIND010", 4, 3, "error")],
        ),
        (
            "protocol: small\nfhir:\n  age: ~\n  age: ~\n",
            [("BIND003", 4, 3, "error"), ("BIND011", 3, 3, "warning")],
        ),
    ],
)
def test_file_level_problems(
    small: Checked, text: str, expected: list[tuple[str, int, int, str]]
) -> None:
    found = codes_at(text, small)
    for item in expected:
        assert item in found, found
    assert {c for c, *_ in found} == {c for c, *_ in expected}


ALL_UNBOUND = "  age: ~\n  sex: ~\n  hiv: ~\n  diagnoses: ~\n"


@pytest.mark.parametrize(
    ("element", "code", "column"),
    [
        ("creatinine: {observation: [2160-0]}", "BIND021", 30),
        ("creatinine: {observation: [lonic:2160-0]}", "BIND022", 30),
        ("creatinine: {observation: [loinc:2160]}", "BIND023", 30),
        ("creatinine: {observation: []}", "BIND020", 29),
        ("creatinine: {observation: [loinc:2160-0], select: newest}", "BIND030", 53),
        (
            "creatinine: {observation: [loinc:2160-0], select: latest within 3 fortnights}",
            "BIND031",
            53,
        ),
        ("creatinine: {observation: [loinc:2160-0], select: any}", "BIND032", 53),
        ("creatinine: {observation: [loinc:2160-0], absent: false}", "BIND015", 53),
        ("creatinine: {observation: [loinc:2160-0], condition: [snomed:86406008]}", "BIND012", 45),
        ("creatinine: {select: latest}", "BIND013", 3),
        ("creatinine: {observaton: [loinc:2160-0]}", "BIND004", 16),
        (
            "creatinine: {observation: [loinc:2160-0], map: {true: [snomed:10828004]}}",
            "BIND017",
            51,
        ),
        ("creatinine: {patient: birthDate}", "BIND040", 3),
        ("creatinine: {condition: [snomed:86406008]}", "BIND040", 3),
        ("creatinine: {patient: birthdate}", "BIND004", 25),
    ],
)
def test_element_problems(small: Checked, element: str, code: str, column: int) -> None:
    text = f"protocol: small\nfhir:\n{ALL_UNBOUND}  {element}\n"
    found = codes_at(text, small)
    assert (code, 7, column, "error") in found, found


def test_a_set_needs_its_codes_mapped(small: Checked) -> None:
    text = "protocol: small\nfhir:\n  age: ~\n  sex: ~\n  hiv: ~\n  creatinine: ~\n  diagnoses: {condition: [icd10cm:M32]}\n"
    assert ("BIND016", 7, 3, "error") in codes_at(text, small)
    bad_value = "protocol: small\nfhir:\n  age: ~\n  sex: ~\n  hiv: ~\n  creatinine: ~\n  diagnoses: {condition: {lupsu: [icd10cm:M32]}}\n"
    _, diagnostics = check_binding(bad_value, "b.bind.yaml", small)
    assert "BIND018" in [d.code for d in diagnostics]
    assert "did you mean 'lupus'?" in render_all(diagnostics, bad_value)


def test_diagnostics_render_with_a_caret_and_a_hint(small: Checked) -> None:
    text = (
        "protocol: small\nfhir:\n"
        + ALL_UNBOUND
        + "  creatinine: {observation: [loinc:2160-0], select: newest}\n"
    )
    _, diagnostics = check_binding(text, "b.bind.yaml", small)
    shown = render_all(diagnostics, text)
    assert shown.startswith("b.bind.yaml:7:53: error[BIND030]: 'newest' is not a selection rule")
    assert "^^^^^^" in shown
    assert "help: write one of latest" in shown


def test_an_unreadable_file_is_a_diagnostic(small: Checked, tmp_path: Path) -> None:
    path = tmp_path / "bad.bind.yaml"
    path.write_bytes(b"protocol: \xff\n")
    binding, diagnostics = load_binding(path, small)
    assert binding is None
    assert [d.code for d in diagnostics] == ["BIND001"]
    binding, diagnostics = load_binding(tmp_path / "missing.bind.yaml", small)
    assert binding is None and diagnostics[0].code == "BIND001"
