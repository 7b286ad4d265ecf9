"""What `eval --fhir` reads beyond the basics: components, Medication references, gzipped files,
dateTimes with offsets, clinical status, doses and reference ranges; each on FHIR R4 JSON shaped as
servers (and Synthea) write it, with the problems bad data gives per patient."""

from __future__ import annotations

import datetime
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from critlang.bindings.binding import check_binding
from critlang.bindings.run import FhirScreen, SourcedResult
from critlang.pipeline import compile_source

AS_OF = datetime.date(2026, 11, 29)
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"


def write_export(folder: Path, resources: list[dict[str, Any]], gz: bool = False) -> Path:
    """One NDJSON file per resource type, compact JSON as bulk export servers write it."""
    folder.mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[str]] = {}
    for resource in resources:
        text = json.dumps(resource, separators=(",", ":"))
        lines.setdefault(resource["resourceType"], []).append(text)
    for kind, rows in lines.items():
        data = ("\n".join(rows) + "\n").encode()
        if gz:
            (folder / f"{kind}.ndjson.gz").write_bytes(gzip.compress(data))
        else:
            (folder / f"{kind}.ndjson").write_bytes(data)
    return folder


def screen(protocol: str, binding: str, path: Path) -> dict[str, SourcedResult]:
    checked = compile_source(protocol)
    bound, diagnostics = check_binding(binding, "test.bind.yaml", checked.checked)
    assert bound is not None, diagnostics
    run = FhirScreen(checked, bound.sections["fhir"], path, AS_OF)
    results = {r.id: r for r in run.results()}
    assert run.source.problems == [], run.source.problems
    return results


def cited(result: SourcedResult) -> dict[str, str]:
    return {name: c.words() for name, c in result.sources.items()}


def patient(pid: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "gender": "female", **extra}


def quantity(value: Any, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def coded(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


# ---- Observation.component ---------------------------------------------------------------

BP = """\
protocol bp
data
  systolic: quantity 'mm[Hg]' range 40 to 300
  diastolic: quantity 'mm[Hg]' range 20 to 200
  systolic_history: history of quantity 'mm[Hg]'
inclusion I1 "Blood pressure controlled"
  met when systolic < 140 'mm[Hg]' and diastolic < 90 'mm[Hg]'
"""
BP_BINDING = """\
protocol: bp
fhir:
  systolic: {observation: [loinc:8480-6], select: latest within 90 days}
  diastolic: {observation: [loinc:8462-4], select: latest within 90 days}
  systolic_history: {observation: [loinc:8480-6]}
"""


def bp_panel(rid: str, pid: str, when: str, systolic: Any, diastolic: Any, **extra: Any) -> Any:
    """A blood pressure panel as Synthea and US Core write it: the values in components."""
    return {
        "resourceType": "Observation", "id": rid, "status": "final",
        "category": [coded("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs")],
        "code": {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}]},
        "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": when,
        "component": [
            {"code": coded(LOINC, "8480-6"), "valueQuantity": systolic},
            {"code": coded(LOINC, "8462-4"), "valueQuantity": diastolic},
        ],
        **extra,
    }  # fmt: skip


def test_a_component_is_selected_by_its_loinc_code(tmp_path: Path) -> None:
    mmhg = "mm[Hg]"
    resources = [
        patient("a"), patient("b"), patient("c"), patient("d"),
        # a: an older panel and a newer one; the newer one's components are used
        bp_panel("a1", "a", "2026-09-01T10:00:00-05:00", quantity(150, mmhg), quantity(95, mmhg)),
        bp_panel("a2", "a", "2026-11-20T10:00:00-05:00", quantity(128, mmhg), quantity(82, mmhg)),
        # b: a systolic observed on its own (its own code) is read as before
        {"resourceType": "Observation", "id": "b1", "status": "final",
         "code": coded(LOINC, "8480-6"), "subject": {"reference": "Patient/b"},
         "effectiveDateTime": "2026-11-01", "valueQuantity": quantity(150, mmhg)},
        bp_panel("b2", "b", "2026-10-01", quantity(120, mmhg), quantity(80, mmhg)),
        # c: a component in a unit that is not UCUM: unknown, and said
        bp_panel("c1", "c", "2026-11-01", {"value": 120, "unit": "mmHg"}, quantity(80, mmhg)),
        # d: a preliminary panel: its components are not used either
        bp_panel("d1", "d", "2026-11-01", quantity(120, mmhg), quantity(80, mmhg),
                 status="preliminary"),
    ]  # fmt: skip
    results = screen(BP, BP_BINDING, write_export(tmp_path / "bp", resources))
    a, b, c, d = (results[k] for k in "abcd")
    assert a.sources["systolic"].words() == (
        "128 mmHg (Observation/a2, 2026-11-20), latest within 90 days"
    )
    assert a.sources["diastolic"].words().startswith("82 mmHg (Observation/a2,")
    assert a.status == "eligible" and a.problems == ()
    # every panel's systolic is in the history, each naming its resource
    assert a.sources["systolic_history"].value == "2 entries"
    assert b.sources["systolic"].source == "Observation/b1"
    assert b.sources["diastolic"].source == "Observation/b2"
    assert c.sources["systolic"].value is None
    assert c.sources["diastolic"].source == "Observation/c1"
    assert c.problems == (
        "Observation/c1: component loinc:8480-6's value 120 has no UCUM unit (unit 'mmHg')",
    )
    assert c.status == "undetermined"
    assert d.sources["systolic"].value is None
    assert d.problems == (
        "Observation/d1: status 'preliminary' (only amended, corrected, final are used)",
    )


def test_a_component_history_keeps_its_reference_range(tmp_path: Path) -> None:
    mmhg = "mm[Hg]"
    panel = bp_panel("p1", "a", "2026-11-01", quantity(150, mmhg), quantity(95, mmhg))
    panel["component"][0]["referenceRange"] = [{"high": quantity(140, mmhg)}]
    text = """\
protocol bp_range
data
  systolic: history of quantity 'mm[Hg]'
inclusion I1 "Systolic above its range"
  met when any systolic where its value > its upper limit
"""
    results = screen(
        text,
        "protocol: bp_range\nfhir:\n  systolic: {observation: [loinc:8480-6]}\n",
        write_export(tmp_path / "e", [patient("a"), panel]),
    )
    (result,) = results.values()
    assert result.status == "eligible", result.criteria


# ---- medications named by reference --------------------------------------------------------

MEDS = """\
protocol meds
data
  statin: boolean
  statin_start: date
inclusion I1 "On a statin"
  met when statin
"""
MEDS_BINDING = """\
protocol: meds
fhir:
  statin: {medication: [rxnorm:314231, rxnorm:859419], select: any within 1 year, absent: false}
  statin_start: {medication: [rxnorm:314231, rxnorm:859419], select: earliest, read: date}
"""


def request(rid: str, pid: str, start: str, **medication: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest", "id": rid, "status": "active", "intent": "order",
        "subject": {"reference": f"Patient/{pid}"}, "authoredOn": start, **medication,
    }  # fmt: skip


def test_a_medication_reference_is_matched_through_its_medication(tmp_path: Path) -> None:
    medications = [
        {"resourceType": "Medication", "id": "simva", "code": coded(RXNORM, "314231")},
        {"resourceType": "Medication", "id": "paracetamol", "code": coded(RXNORM, "313782")},
        {"resourceType": "Medication", "id": "local", "code": coded("urn:oid:1.2.3", "X1")},
    ]
    resources = [
        *(patient(p) for p in "abcdef"),
        *medications,
        request("r1", "a", "2026-06-01", medicationReference={"reference": "Medication/simva"}),
        request("r2", "b", "2026-06-01", medicationReference={"reference": "Medication/paracetamol"}),
        # contained, as the FHIR specification's own examples do
        request("r3", "c", "2026-06-01", medicationReference={"reference": "#m"},
                contained=[{"resourceType": "Medication", "id": "m", "code": coded(RXNORM, "859419")}]),
        # a reference to a Medication the export does not hold: the statin is unknown, not no
        request("r4", "d", "2026-06-01", medicationReference={"reference": "Medication/gone"}),
        # a full URL naming a Medication of the export, and a Medication in a local code only
        request("r5", "e", "2026-06-01",
                medicationReference={"reference": "https://ehr.example.org/fhir/Medication/simva"}),
        request("r6", "f", "2026-06-01", medicationReference={"reference": "Medication/local"}),
    ]  # fmt: skip
    results = screen(MEDS, MEDS_BINDING, write_export(tmp_path / "e", resources))
    a, b, c, d, e, f = (results[k] for k in "abcdef")
    assert (
        a.sources["statin"].words() == "true (MedicationRequest/r1, 2026-06-01), any within 1 year"
    )
    assert a.status == "eligible" and a.problems == ()
    assert b.sources["statin"].value == "false" and b.problems == ()
    assert c.sources["statin"].source == "MedicationRequest/r3"
    assert d.sources["statin"].value is None and d.status == "undetermined"
    assert d.sources["statin_start"].value is None
    assert d.problems == (
        "MedicationRequest/r4: its medicationReference 'Medication/gone' names no Medication in "
        "the export",
    )
    assert e.sources["statin"].value == "true"
    # a Medication coded only in a local system is coded: not a statin, and not a problem
    assert f.sources["statin"].value == "false" and f.problems == ()


def test_a_bundle_resolves_its_medication_by_full_url(tmp_path: Path) -> None:
    bundle = {
        "resourceType": "Bundle", "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:p-1", "resource": patient("p1")},
            {"fullUrl": "urn:uuid:m-1",
             "resource": {"resourceType": "Medication", "id": "m1", "code": coded(RXNORM, "314231")}},
            {"fullUrl": "urn:uuid:r-1",
             "resource": request("r1", "x", "2026-06-01",
                                 medicationReference={"reference": "urn:uuid:m-1"},
                                 subject={"reference": "urn:uuid:p-1"})},
        ],
    }  # fmt: skip
    folder = tmp_path / "bundles"
    folder.mkdir()
    (folder / "p1.json").write_text(json.dumps(bundle), encoding="utf-8")
    (result,) = screen(MEDS, MEDS_BINDING, folder).values()
    assert result.id == "p1"
    assert result.sources["statin"].source == "MedicationRequest/r1"
    assert result.status == "eligible"


# ---- gzipped exports --------------------------------------------------------------------------


def test_gzipped_ndjson_and_bundles_read_as_the_plain_files(tmp_path: Path) -> None:
    mmhg = "mm[Hg]"
    resources = [
        patient("a"), patient("b"),
        bp_panel("a1", "a", "2026-11-20", quantity(128, mmhg), quantity(82, mmhg)),
        bp_panel("b1", "b", "2026-11-20", quantity(150, mmhg), quantity(82, mmhg)),
    ]  # fmt: skip
    plain = screen(BP, BP_BINDING, write_export(tmp_path / "plain", resources))
    zipped = screen(BP, BP_BINDING, write_export(tmp_path / "gz", resources, gz=True))
    assert {k: (r.status, cited(r)) for k, r in zipped.items()} == {
        k: (r.status, cited(r)) for k, r in plain.items()
    }
    assert [r.status for r in zipped.values()] == ["eligible", "ineligible"]
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": r} for r in resources[:1] + resources[2:3]]}  # fmt: skip
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "a.json.gz").write_bytes(gzip.compress(json.dumps(bundle).encode()))
    assert cited(screen(BP, BP_BINDING, tmp_path / "b")["a"]) == cited(plain["a"])


def test_a_corrupt_gzip_file_is_reported_and_the_rest_is_read(tmp_path: Path) -> None:
    folder = write_export(tmp_path / "e", [patient("a")], gz=True)
    good = gzip.compress(b'{"resourceType":"Observation","id":"x"}\n' * 50)
    (folder / "Observation.ndjson.gz").write_bytes(good[: len(good) // 2])  # cut short
    checked = compile_source(BP)
    bound, _ = check_binding(BP_BINDING, "b.yaml", checked.checked)
    assert bound is not None
    run = FhirScreen(checked, bound.sections["fhir"], folder, AS_OF)
    (result,) = run.results()
    assert result.id == "a" and result.status == "undetermined"
    assert len(run.source.problems) == 1
    assert "Observation.ndjson.gz: cannot be read" in run.source.problems[0]


# ---- dates with offsets ---------------------------------------------------------------------

CREAT = """\
protocol creat
data
  creatinine: quantity 'mg/dL' range 0 to 40
inclusion I1 "Kidneys"
  met when creatinine <= 1.4 'mg/dL'
"""
CREAT_BINDING = """\
protocol: creat
fhir:
  creatinine: {observation: [loinc:2160-0], select: latest within 90 days}
"""


def creatinine(rid: str, pid: str, value: Any, **when: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation", "id": rid, "status": "final",
        "code": coded(LOINC, "2160-0"), "subject": {"reference": f"Patient/{pid}"},
        "valueQuantity": quantity(value, "mg/dL"), **when,
    }  # fmt: skip


def test_an_entry_counts_on_the_local_day_written(tmp_path: Path) -> None:
    resources = [
        *(patient(p) for p in "abcdef"),
        # a: the evening of the reference date in Chicago (the next day in UTC): used
        creatinine("a1", "a", 1.0, effectiveDateTime="2026-11-29T23:30:00-05:00"),
        # b: the next morning in Tokyo (the reference date in UTC): after it, not used
        creatinine("b1", "b", 9.0, effectiveDateTime="2026-11-30T01:00:00+09:00"),
        creatinine("b2", "b", 1.0, effectiveDateTime="2026-11-01"),
        # c: latest by the day written, though earlier as an instant
        creatinine("c1", "c", 9.0, effectiveDateTime="2026-11-02T23:00:00-05:00"),
        creatinine("c2", "c", 1.0, effectiveDateTime="2026-11-03T01:00:00+02:00"),
        # d: an instant
        creatinine("d1", "d", 1.0, effectiveInstant="2026-11-10T08:15:27.123+01:00"),
        # e, f: a time or an offset that cannot be: unknown, and said
        creatinine("e1", "e", 1.0, effectiveDateTime="2026-11-10T25:00:00Z"),
        creatinine("f1", "f", 1.0, effectiveDateTime="2026-11-10T10:00:00+15:00"),
    ]
    results = screen(CREAT, CREAT_BINDING, write_export(tmp_path / "e", resources))
    assert results["a"].sources["creatinine"].words() == (
        "1 mg/dL (Observation/a1, 2026-11-29), latest within 90 days"
    )
    assert results["b"].sources["creatinine"].source == "Observation/b2"
    assert results["b"].problems == (
        "Observation/b1 is dated 2026-11-30, after the reference date 2026-11-29; not used",
    )
    assert results["c"].sources["creatinine"].source == "Observation/c2"
    assert results["d"].sources["creatinine"].date == "2026-11-10"
    for pid in "ef":
        assert results[pid].sources["creatinine"].value is None
        assert any("cannot be read" in p for p in results[pid].problems)
    assert [results[p].status for p in "abcdef"] == [
        "eligible", "eligible", "eligible", "eligible", "undetermined", "undetermined",
    ]  # fmt: skip


# ---- clinical and verification status ---------------------------------------------------------

ACTIVE = """\
protocol active
data
  asthma_now: boolean
  asthma_ever: boolean
exclusion E1 "Active asthma"
  met when asthma_now
"""
ACTIVE_BINDING = """\
protocol: active
fhir:
  asthma_now: {condition: [snomed:195967001], clinical: active, absent: false}
  asthma_ever: {condition: [snomed:195967001], absent: false}
"""


def asthma(rid: str, pid: str, clinical: str | None, **extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Condition", "id": rid,
        "verificationStatus": coded(
            "http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed"),
        "code": coded(SNOMED, "195967001"), "subject": {"reference": f"Patient/{pid}"},
        "onsetDateTime": "2015-03-01T10:00:00-05:00",
    }  # fmt: skip
    if clinical is not None:
        resource["clinicalStatus"] = coded(
            "http://terminology.hl7.org/CodeSystem/condition-clinical", clinical
        )
    resource.update(extra)
    return resource


def test_clinical_status_and_abatement_decide_an_active_condition(tmp_path: Path) -> None:
    resources = [
        *(patient(p) for p in "abcdefgh"),
        asthma("a1", "a", "active"),
        asthma("b1", "b", "resolved", abatementDateTime="2020-05-01T00:00:00-04:00"),
        # resolved after the reference date: it was active on that date
        asthma("c1", "c", "resolved", abatementDateTime="2026-12-15"),
        asthma("d1", "d", "remission"),
        asthma("e1", "e", None),  # no clinical status: not said, so unknown
        asthma("f1", "f", "relapse"),
        asthma("g1", "g", "resolved", abatementDateTime="2020-13-01"),
        # refuted: never used, whatever its clinical status
        asthma("h1", "h", "active", verificationStatus=coded(
            "http://terminology.hl7.org/CodeSystem/condition-ver-status", "refuted")),
    ]  # fmt: skip
    results = screen(ACTIVE, ACTIVE_BINDING, write_export(tmp_path / "e", resources))
    now = {p: results[p].sources["asthma_now"].value for p in "abcdefgh"}
    assert now == {
        "a": "true", "b": "false", "c": "true", "d": "false",
        "e": None, "f": "true", "g": None, "h": "false",
    }  # fmt: skip
    # Without `clinical: active`, a diagnosis once made is on record.
    ever = {p: results[p].sources["asthma_ever"].value for p in "abcdefgh"}
    assert ever == dict.fromkeys("abcdefg", "true") | {"h": "false"}
    assert any("abatement date '2020-13-01' cannot be read" in p for p in results["g"].problems)
    assert results["e"].problems == ()
    assert any("refuted" in p for p in results["h"].problems)
    assert [results[p].status for p in "abcdefgh"] == [
        "ineligible", "eligible", "ineligible", "eligible",
        "undetermined", "ineligible", "undetermined", "eligible",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{condition: [snomed:195967001], clinical: current}", "unknown key 'current'"),
        ("{observation: [loinc:2160-0], clinical: active}", "'clinical' does not apply"),
    ],
)
def test_clinical_is_checked_in_the_binding(line: str, message: str) -> None:
    checked = compile_source(ACTIVE)
    text = f"protocol: active\nfhir:\n  asthma_now: {line}\n  asthma_ever: ~\n"
    binding, diagnostics = check_binding(text, "a.bind.yaml", checked.checked)
    assert binding is None
    assert [d.code for d in diagnostics] == ["BIND004"]
    assert message in diagnostics[0].message
    assert (diagnostics[0].span.line, diagnostics[0].span.file) == (3, "a.bind.yaml")


# ---- doses and reference ranges ---------------------------------------------------------------

DOSE = """\
protocol dose
data
  prednisone: quantity 'mg/d' range 0 to 2000
  creatinine: history of quantity 'mg/dL'
inclusion I1 "Low dose"
  met when prednisone <= 10 'mg/d'
"""
DOSE_BINDING = """\
protocol: dose
fhir:
  prednisone: {medication: [rxnorm:312617], select: latest within 30 days, read: dose}
  creatinine: {observation: [loinc:2160-0]}
"""


def statement(rid: str, pid: str, dose: dict[str, Any], **timing: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationStatement", "id": rid, "status": "active",
        "medicationCodeableConcept": coded(RXNORM, "312617"),
        "subject": {"reference": f"Patient/{pid}"}, "effectivePeriod": {"start": "2026-11-10"},
        "dosage": [{"timing": {"repeat": timing}, "doseAndRate": [{"doseQuantity": dose}]}],
    }  # fmt: skip


def test_doses_and_reference_ranges_are_read_with_their_units_checked(tmp_path: Path) -> None:
    ranged = creatinine("c1", "a", 1.0, effectiveDateTime="2026-11-01")
    ranged["referenceRange"] = [{"low": quantity(0.006, "g/L"), "high": quantity(1.2, "mg/dL")}]
    foreign = creatinine("c2", "b", 1.0, effectiveDateTime="2026-11-01")
    foreign["referenceRange"] = [{"high": quantity(110, "umol/L")}]
    resources = [
        patient("a"), patient("b"), patient("c"),
        statement("s1", "a", quantity(5, "mg"), frequency=2, period=1, periodUnit="d"),
        ranged,
        # b: a dose in a unit that is not UCUM: the dose is unknown, and said
        statement("s2", "b", {"value": 1, "unit": "tablet"}, frequency=1, period=1, periodUnit="d"),
        foreign,
        # c: a dose in grams a week converts exactly
        statement("s3", "c", quantity(0.035, "g"), frequency=1, period=1, periodUnit="wk"),
    ]  # fmt: skip
    results = screen(DOSE, DOSE_BINDING, write_export(tmp_path / "e", resources))
    a, b, c = results["a"], results["b"], results["c"]
    assert a.sources["prednisone"].words() == (
        "10 mg/d (MedicationStatement/s1, 2026-11-10), latest within 30 days"
    )
    assert a.status == "eligible" and a.problems == ()
    assert b.sources["prednisone"].value is None
    assert any("no UCUM unit (unit 'tablet')" in p for p in b.problems)
    # A range in another kind of unit (molar, no molar mass) is left out and said; the value stays.
    assert b.sources["creatinine"].value == "1 entry"
    assert (
        "Observation/c2: the reference range's high is in 'umol/L', which does not convert "
        "exactly to the value's 'mg/dL'; the range is not used"
    ) in b.problems
    assert c.sources["prednisone"].value == "5 mg/d"


def test_a_range_in_another_unit_of_the_kind_converts_into_the_history(tmp_path: Path) -> None:
    text = """\
protocol ranged
data
  creatinine: history of quantity 'mg/dL' complete
inclusion I1 "Creatinine below its lower limit"
  met when any creatinine where its value < its lower limit
"""
    low = creatinine("c1", "a", 0.5, effectiveDateTime="2026-11-01")
    low["referenceRange"] = [{"low": quantity(0.006, "g/L"), "high": quantity(1.2, "mg/dL")}]
    inside = creatinine("c2", "b", 0.7, effectiveDateTime="2026-11-01")
    inside["referenceRange"] = low["referenceRange"]
    results = screen(
        text,
        "protocol: ranged\nfhir:\n  creatinine: {observation: [loinc:2160-0]}\n",
        write_export(tmp_path / "e", [patient("a"), patient("b"), low, inside]),
    )
    # 0.006 g/L is 0.6 mg/dL: 0.5 is below it, 0.7 is not
    assert results["a"].status == "eligible"
    assert results["b"].status == "ineligible"


# ---- the Synthea sample, read with all of the above ----------------------------------------

SAMPLE = Path(__file__).resolve().parent / "data" / "fhir" / "smart-sample"
SAMPLE_PROTOCOL = """\
protocol sample
data
  age: quantity 'a' range 0 to 130
  prediabetes_now: boolean
  pregnant_now: boolean
  ever_pregnant: boolean
  iud_inserted: date
  acetaminophen: boolean
inclusion I1 "Adult"
  met when age >= 18 'a'
exclusion E1 "Pregnant"
  met when pregnant_now
"""
SAMPLE_BINDING = """\
protocol: sample
fhir:
  age: {patient: birthDate}
  prediabetes_now: {condition: [snomed:15777000], clinical: active, absent: false}
  pregnant_now: {condition: [snomed:72892002], clinical: active, absent: false}
  ever_pregnant: {condition: [snomed:72892002], absent: false}
  iud_inserted: {procedure: [snomed:65200003], select: latest, read: date}
  acetaminophen: {medication: [rxnorm:313782], absent: false}
"""
WOMAN = "7bc002fa-dc52-17d6-1563-fd8901826f7d"
MOTHER = "a4a401d1-a46a-eb4a-8a38-760d5d79d6ec"


def by_reference(folder: Path) -> Path:
    """The sample with every MedicationRequest naming a Medication resource instead of its code."""
    folder.mkdir()
    medications: dict[str, dict[str, Any]] = {}
    requests = []
    for line in (SAMPLE / "MedicationRequest.000.ndjson").read_text(encoding="utf-8").splitlines():
        resource = json.loads(line)
        concept = resource.pop("medicationCodeableConcept")
        mid = f"med-{concept['coding'][0]['code']}"
        medications[mid] = {"resourceType": "Medication", "id": mid, "code": concept}
        resource["medicationReference"] = {"reference": f"Medication/{mid}"}
        requests.append(json.dumps(resource))
    (folder / "MedicationRequest.000.ndjson").write_text(
        "\n".join(requests) + "\n", encoding="utf-8"
    )
    (folder / "Medication.000.ndjson").write_text(
        "\n".join(json.dumps(m) for m in medications.values()) + "\n", encoding="utf-8"
    )
    for file in SAMPLE.glob("*.ndjson"):
        if not file.name.startswith("MedicationRequest"):
            (folder / file.name).write_bytes(file.read_bytes())
    return folder


def test_the_synthea_sample_reads_cleanly_plain_gzipped_and_by_reference(tmp_path: Path) -> None:
    plain = screen(SAMPLE_PROTOCOL, SAMPLE_BINDING, SAMPLE)
    assert all(r.problems == () or "deceased" in r.problems[0] for r in plain.values())
    woman, mother = plain[WOMAN], plain[MOTHER]
    # Read by hand from the files: her prediabetes is active; the three pregnancies resolved.
    assert woman.sources["prediabetes_now"].value == "true"
    assert woman.sources["iud_inserted"].value is not None
    assert mother.sources["ever_pregnant"].value == "true"
    assert mother.sources["pregnant_now"].value == "false"
    assert mother.sources["acetaminophen"].value == "true"
    assert mother.status == "eligible"
    gz = tmp_path / "gz"
    gz.mkdir()
    for file in SAMPLE.glob("*.ndjson"):
        (gz / f"{file.name}.gz").write_bytes(gzip.compress(file.read_bytes()))
    referenced = by_reference(tmp_path / "ref")
    for other in (screen(SAMPLE_PROTOCOL, SAMPLE_BINDING, gz),
                  screen(SAMPLE_PROTOCOL, SAMPLE_BINDING, referenced)):  # fmt: skip
        assert list(other) == list(plain)
        for pid, result in other.items():
            assert (result.status, cited(result), result.problems) == (
                plain[pid].status, cited(plain[pid]), plain[pid].problems,
            )  # fmt: skip


def test_icd10cm_codes_are_found_with_or_without_their_dot(tmp_path: Path) -> None:
    text = """\
protocol icd
data
  sclerosis: boolean
  lupus: boolean
inclusion I1 "Sclerosis"
  met when sclerosis
"""
    binding = """\
protocol: icd
fhir:
  sclerosis: {condition: [icd10cm:M34.81], absent: false}
  lupus: {condition: [icd10cm:M32.1*], absent: false}
"""
    icd = "http://hl7.org/fhir/sid/icd-10-cm"
    resources = [
        patient("dotted"), patient("bare"),
        {"resourceType": "Condition", "id": "c1", "code": coded(icd, "M34.81"),
         "subject": {"reference": "Patient/dotted"}, "onsetDateTime": "2020-01-01"},
        {"resourceType": "Condition", "id": "c2", "code": coded(icd, "M3481"),
         "subject": {"reference": "Patient/bare"}, "onsetDateTime": "2020-01-01"},
        {"resourceType": "Condition", "id": "c3", "code": coded(icd, "M3214"),
         "subject": {"reference": "Patient/bare"}, "onsetDateTime": "2020-01-01"},
    ]  # fmt: skip
    results = screen(text, binding, write_export(tmp_path / "e", resources))
    assert results["dotted"].sources["sclerosis"].source == "Condition/c1"
    assert results["bare"].sources["sclerosis"].source == "Condition/c2"
    assert results["bare"].sources["lupus"].source == "Condition/c3"
    assert results["dotted"].sources["lupus"].value == "false"


def test_clinical_active_needs_a_reference_date_on_the_command_line(tmp_path: Path) -> None:
    from tests.test_fhir import critlang

    (tmp_path / "active.crit").write_text(ACTIVE, encoding="utf-8")
    (tmp_path / "active.bind.yaml").write_text(ACTIVE_BINDING, encoding="utf-8")
    folder = write_export(tmp_path / "e", [patient("a"), asthma("a1", "a", "active")])
    args = ["eval", str(tmp_path / "active.crit"), "--bindings", str(tmp_path / "active.bind.yaml"),
            "--fhir", str(folder)]  # fmt: skip
    ran = critlang(*args)
    assert ran.returncode == 64 and "--as-of" in ran.stderr
    ran = critlang(*args, "--as-of", "2026-11-29", "--format", "jsonl")
    assert ran.returncode == 0, ran.stderr
    (row,) = [json.loads(line) for line in ran.stdout.splitlines()]
    assert row["status"] == "ineligible"
    assert row["sources"]["asthma_now"]["source"] == "Condition/a1"


ADMINISTERED = """\
protocol administered
data
  meds: history of medications 'mg/d' complete
  creatinine: history of quantity 'mg/dL' complete
inclusion I1 "High dose"
  met when any meds where its dose > 10 'mg/d'
inclusion I2 "Creatinine on record"
  met when any creatinine
"""
ADMINISTERED_BINDING = """\
protocol: administered
fhir:
  meds: {medication: [rxnorm:312617]}
  creatinine: {observation: [loinc:2160-0]}
"""


def test_history_entries_that_do_not_fit_are_reported_never_an_error(tmp_path: Path) -> None:
    given = {
        "resourceType": "MedicationAdministration", "id": "m1", "status": "completed",
        "subject": {"reference": "Patient/a"}, "medicationCodeableConcept": coded(RXNORM, "312617"),
        "effectiveDateTime": "2026-11-20T08:00:00Z", "dosage": {"dose": quantity(40, "mg")},
    }  # fmt: skip
    daily = statement("s1", "b", quantity(20, "mg"), frequency=1, period=1, periodUnit="d")
    molar = creatinine("c1", "b", 100, effectiveDateTime="2026-11-01")
    molar["valueQuantity"] = quantity(100, "umol/L")
    coded_value = creatinine("c2", "c", 1, effectiveDateTime="2026-11-01")
    del coded_value["valueQuantity"]
    coded_value["valueCodeableConcept"] = coded(SNOMED, "281300000")
    resources = [patient("a"), patient("b"), patient("c"), given, daily, molar, coded_value,
                 creatinine("c3", "a", 1.0, effectiveDateTime="2026-11-01")]  # fmt: skip
    results = screen(ADMINISTERED, ADMINISTERED_BINDING, write_export(tmp_path / "e", resources))
    a, b, c = results["a"], results["b"], results["c"]
    # A dose given once (mg) is not a daily dose: left out and said; the entry stays.
    assert a.error is None and a.sources["meds"].value == "1 entry"
    assert a.problems == (
        "MedicationAdministration/m1: its dose is left out: 'mg' (mass) does not convert to "
        "'mg/d' (mass/time)",
    )
    assert a.status == "undetermined"
    # A daily dose converts; a molar creatinine without a molar mass makes the history unknown.
    assert b.error is None and b.sources["meds"].value == "1 entry"
    assert b.sources["creatinine"].value is None
    assert any("Observation/c1 could not be used" in p and "umol/L" in p for p in b.problems)
    assert b.status == "undetermined"
    # A coded value where a quantity is wanted: unknown, reported, never a crash.
    assert c.error is None and c.sources["creatinine"].value is None
    assert c.problems == ("Observation/c2 could not be used: its value is not a number",)


DIAGNOSES = """\
protocol diagnoses
as of screening
codes asthma "Asthma" snomed ("195967001")
data
  screening: date
  diagnoses: history of codes complete
exclusion E1 "Asthma"
  met when any diagnoses where its code in asthma
"""
DIAGNOSES_BINDING = """\
protocol: diagnoses
fhir:
  diagnoses: {condition: [snomed:195967001]}
"""


def test_a_provisional_diagnosis_makes_its_history_unknown_never_a_yes_or_a_no(
    tmp_path: Path,
) -> None:
    provisional = coded("http://terminology.hl7.org/CodeSystem/condition-ver-status", "provisional")
    resources = [
        patient("a"), patient("b"), patient("c"),
        asthma("a1", "a", "active"),
        asthma("b1", "b", "active", verificationStatus=provisional),
        # a confirmed diagnosis beside a provisional one: the history is still unknown (documented:
        # a history cannot hold doubt, so certainty from the confirmed entry is given up)
        asthma("c1", "c", "active"), asthma("c2", "c", "active", verificationStatus=provisional),
    ]  # fmt: skip
    results = screen(DIAGNOSES, DIAGNOSES_BINDING, write_export(tmp_path / "e", resources))
    assert results["a"].status == "ineligible"
    # Read as confirmed, b would be excluded; left out of a complete history, b would be
    # eligible. Neither is known.
    assert results["b"].status == "undetermined"
    assert results["b"].sources["diagnoses"].value is None
    assert "only uncertain" in (results["b"].sources["diagnoses"].why or "")
    assert results["c"].sources["diagnoses"].value is None


CANCER = """\
protocol cancer
as of screening
codes asthma "Asthma" snomed ("195967001")
data
  screening: date
  diagnoses: history of codes complete
exclusion E1 "Asthma at any time in the last 5 years"
  met when any diagnoses during 5 years where its code in asthma
"""


def test_an_abatement_date_ends_a_diagnosis_and_an_undated_resolution_is_unknown(
    tmp_path: Path,
) -> None:
    resources = [
        *(patient(p) for p in "abcd"),
        # onset 2015: resolved in 2020, before the 5 years; in 2023, inside them
        asthma("a1", "a", "resolved", abatementDateTime="2020-05-01T00:00:00-04:00"),
        asthma("b1", "b", "resolved", abatementDateTime="2023-05-01"),
        asthma("c1", "c", "active"),  # still present
        asthma("d1", "d", "resolved"),  # resolved, but when?
    ]  # fmt: skip
    binding = DIAGNOSES_BINDING.replace("protocol: diagnoses", "protocol: cancer")
    binding += "  screening: {reference: date}\n"
    checked = compile_source(CANCER)
    bound, diagnostics = check_binding(binding, "test.bind.yaml", checked.checked)
    assert bound is not None, diagnostics
    run = FhirScreen(
        checked, bound.sections["fhir"], write_export(tmp_path / "e", resources), AS_OF
    )
    results = {r.id: r for r in run.results()}
    assert [results[p].status for p in "abcd"] == [
        "eligible", "ineligible", "ineligible", "undetermined",
    ]  # fmt: skip
    assert "resolved with no abatement date" in (results["d"].sources["diagnoses"].why or "")
