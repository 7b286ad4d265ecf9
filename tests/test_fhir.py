"""Screening from FHIR R4: a real bulk export, synthetic patients against their flat records, bad data."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from critlang.bindings import load_binding
from critlang.bindings.binding import Section, check_binding
from critlang.bindings.run import FhirScreen, SourcedResult
from critlang.evaluate import Protocol, Result
from critlang.pipeline import compile_source, load
from critlang.records import read_records
from critlang.synth import Generator, Synthetic, dumps, write_fhir, write_flat

ROOT = Path(__file__).resolve().parent.parent
CTD = ROOT / "protocols" / "ctd_ild.crit"
CTD_FHIR = ROOT / "protocols" / "ctd_ild.fhir.bind.yaml"
SAMPLE = ROOT / "tests" / "data" / "fhir" / "smart-sample"
AS_OF = datetime.date(2026, 11, 29)


@pytest.fixture(scope="module")
def ctd() -> tuple[Protocol, Section]:
    protocol = load(CTD)
    binding, diagnostics = load_binding(CTD_FHIR, protocol.checked)
    assert binding is not None, diagnostics
    return protocol, binding.sections["fhir"]


def values(result: Result) -> tuple[str, list[tuple[str, str]]]:
    """A result's status and every criterion's and part's value."""
    found = []
    for criterion in result.criteria:
        found.append((criterion.id, criterion.value_word))
        found.extend((f"{criterion.id}{p.name}", p.value_word) for p in criterion.parts)
    return result.status, found


def screen_both(
    protocol: Protocol, section: Section, patients: list[Synthetic], folder: Path, **options: Any
) -> tuple[dict[str, Result], list[SourcedResult], FhirScreen]:
    write_flat(patients, folder / "flat.jsonl")
    write_fhir(patients, folder / "fhir")
    flat = {r.id: r for r in protocol.screen(read_records(folder / "flat.jsonl", protocol.checked))}
    screen = FhirScreen(protocol, section, folder / "fhir", AS_OF, **options)
    return flat, list(screen.results()), screen


# ---- a bulk export nobody here wrote -------------------------------------------------

REAL = """\
protocol real
data
  age: quantity 'a' range 0 to 130
  sex: one of (female, male)
  ever_pregnant: boolean
  statin: boolean
  contraceptives: set of (iud, pill, ring, implant)
  pharyngitis_onset: date
inclusion I1 "Adult woman"
  met when age >= 18 'a' and sex = female
exclusion E1 "On a statin"
  met when statin
"""
REAL_BINDING = """\
protocol: real
fhir:
  age: {patient: birthDate}
  sex: {patient: gender}
  ever_pregnant: {condition: [snomed:72892002], absent: false}
  statin: {medication: [rxnorm:314231], select: any within 1 year, absent: false}
  contraceptives:
    medication:
      iud: [rxnorm:1856546, rxnorm:807283]
      pill: [rxnorm:748962, rxnorm:749762, rxnorm:978950]
      ring: [rxnorm:1367439]
      implant: [rxnorm:389221]
  pharyngitis_onset: {condition: [snomed:195662009], select: latest, read: date}
"""


def test_a_real_bulk_export_is_read_without_a_problem() -> None:
    protocol = compile_source(REAL)
    binding, diagnostics = check_binding(REAL_BINDING, "real.bind.yaml", protocol.checked)
    assert binding is not None and diagnostics == []
    screen = FhirScreen(protocol, binding.sections["fhir"], SAMPLE, AS_OF)
    results = {r.id: r for r in screen.results()}
    assert screen.source.problems == []
    # The four patients in the order of Patient.000.ndjson.
    assert list(results) == [
        json.loads(line)["id"]
        for line in (SAMPLE / "Patient.000.ndjson").read_text(encoding="utf-8").splitlines()
    ]
    assert sorted(screen.source.skipped_files) == [
        "Encounter.000.ndjson",
        "Immunization.000.ndjson",
        "Procedure.000.ndjson",
    ]
    # Read by hand from the files: born 1978-05-12, simvastatin requested 2022 and still active.
    woman = results["7bc002fa-dc52-17d6-1563-fd8901826f7d"]
    assert woman.status == "ineligible"
    assert woman.sources["age"].value == "48 a"
    assert (
        woman.sources["statin"].source == "MedicationRequest/a996b0ca-e4f0-ac1c-b947-c7dc01035ba8"
    )
    assert woman.sources["contraceptives"].value is not None
    assert woman.problems == ()
    other = results["a4a401d1-a46a-eb4a-8a38-760d5d79d6ec"]
    assert other.status == "eligible"
    assert other.sources["ever_pregnant"].value == "true"
    assert other.sources["ever_pregnant"].source is not None
    # A man who died in 1971: said, never hidden.
    dead = results["3af3708d-41f1-cd80-f3dd-ec5ac76072bf"]
    assert any("deceased" in p for p in dead.problems)


# ---- the same patients flat and as FHIR ----------------------------------------------


def test_synthetic_patients_screen_the_same_flat_and_from_fhir(
    ctd: tuple[Protocol, Section], tmp_path: Path
) -> None:
    protocol, section = ctd
    generator = Generator(protocol.checked, section, AS_OF, seed=7)
    patients = list(generator.patients(300))
    flat, results, screen = screen_both(protocol, section, patients, tmp_path)
    assert len(results) == 300
    assert {r.id for r in results} == set(flat)
    for result in results:
        assert flat[result.id].error is None
        assert values(result) == values(flat[result.id]), result.id
    statuses = {r.status for r in results}
    assert {"ineligible", "undetermined"} <= statuses
    # The decoys were read and set aside: preliminary results are reported, never used.
    assert any("status 'preliminary'" in p for r in results for p in r.problems)
    assert screen.source.skipped_files == ["Encounter.ndjson"]


def test_spilled_partitions_give_the_same_results(
    ctd: tuple[Protocol, Section], tmp_path: Path
) -> None:
    protocol, section = ctd
    patients = list(Generator(protocol.checked, section, AS_OF, seed=11).patients(120))
    flat, results, _ = screen_both(protocol, section, patients, tmp_path, partition_bytes=20_000)
    assert len(results) == 120
    for result in results:
        assert values(result) == values(flat[result.id]), result.id


def test_a_protocol_with_histories_screens_the_same_flat_and_from_fhir(tmp_path: Path) -> None:
    protocol = load(ROOT / "tests" / "data" / "fhir" / "histories.crit")
    binding, diagnostics = load_binding(
        ROOT / "tests" / "data" / "fhir" / "histories.fhir.bind.yaml", protocol.checked
    )
    assert binding is not None and diagnostics == []
    section = binding.sections["fhir"]
    patients = list(Generator(protocol.checked, section, AS_OF, seed=4).patients(200))
    assert any(p.record["creatinine"] for p in patients)
    flat, results, _ = screen_both(protocol, section, patients, tmp_path)
    for result in results:
        assert flat[result.id].error is None and result.error is None, result.problems
        assert values(result) == values(flat[result.id]), result.id
    assert {"eligible", "ineligible", "undetermined"} <= {r.status for r in results}
    # The history's entries cite their resources: the explanation names the entry used.
    reasons = " ".join(c.reason for r in results for c in r.criteria)
    assert "Observation/" in reasons


@pytest.mark.z3
def test_boundary_patients_from_analyze_screen_the_same(
    ctd: tuple[Protocol, Section], tmp_path: Path
) -> None:
    from critlang.analyze.questions import boundary_examples

    protocol, section = ctd
    witnesses = [p.witness.record for p in boundary_examples(protocol)]
    assert witnesses
    generator = Generator(protocol.checked, section, AS_OF, seed=3)
    patients = list(generator.patients(len(witnesses), witnesses))
    flat, results, _ = screen_both(protocol, section, patients, tmp_path)
    assert len(results) == len(witnesses)
    for result in results:
        assert values(result) == values(flat[result.id]), result.id


# ---- sources cited --------------------------------------------------------------------


def test_every_value_names_its_source_and_date(
    ctd: tuple[Protocol, Section], tmp_path: Path
) -> None:
    protocol, section = ctd
    patients = list(Generator(protocol.checked, section, AS_OF, seed=5).patients(20))
    _, results, _ = screen_both(protocol, section, patients, tmp_path)
    by_id = {p.id: p for p in patients}
    for result in results:
        resources = {f"{r['resourceType']}/{r['id']}": r for r in by_id[result.id].resources}
        for name, cited in result.sources.items():
            if cited.value is None:
                assert cited.why
                continue
            if section.elements[name].type.kind == "set":
                # Each value names its own resource and date.
                for source, date in re.findall(r"\((\w+/\w+), ([0-9-]+)\)", cited.value):
                    assert date in dumps(resources[source])
                continue
            if section.elements[name].absent != "unknown" and cited.source is None:
                continue  # "no matching record; absent means false"
            assert cited.source in resources, (name, cited)
            if name == "sex":
                continue  # Patient.gender has no date
            assert cited.date is not None
            assert cited.date in dumps(resources[cited.source])


# ---- bad data -------------------------------------------------------------------------

BAD = """\
protocol bad
data
  creatinine: quantity 'mg/dL' range 0 to 40
  hiv: boolean
  diagnoses: set of (lupus, sclerosis)
inclusion I1 "Kidneys"
  met when creatinine <= 1.4 'mg/dL'
exclusion E1 "HIV"
  met when hiv
"""
BAD_BINDING = """\
protocol: bad
fhir:
  creatinine: {observation: [loinc:2160-0], select: latest within 90 days}
  hiv: {condition: [snomed:86406008], absent: false}
  diagnoses:
    condition: {lupus: [icd10cm:M32*], sclerosis: [icd10cm:M34*]}
"""


def observation(
    rid: str, patient: str, date: str, value: Any, unit: str = "mg/dL", **extra: Any
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": date,
        "valueQuantity": {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
    }
    resource.update(extra)
    return resource


def condition(
    rid: str, patient: str, code: str, system: str = "http://snomed.info/sct", **extra: Any
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": rid,
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "onsetDateTime": "2020-01-01",
    }
    resource.update(extra)
    return resource


def bad_export(folder: Path) -> None:
    folder.mkdir()
    patients = [{"resourceType": "Patient", "id": f"p{i}"} for i in range(1, 10)]
    observations = [
        observation("good", "p1", "2026-11-01", 1.0),
        # p2: entered in error, with a value that would exclude; a good older value stays
        observation("older", "p2", "2026-10-01", 1.0),
        observation("retracted", "p2", "2026-11-20", 9.0, status="entered-in-error"),
        # p3: a unit that is not UCUM
        observation("odd-unit", "p3", "2026-11-01", 1.0, unit="mg per dL"),
        # p4: a date that cannot be read; p5: a date after the reference date
        observation("bad-date", "p4", "2026-13-45", 1.0),
        observation("future", "p5", "2027-01-01", 9.0),
        observation("today", "p5", "2026-11-29", 1.0),
        # p6: two values on the latest day that disagree
        observation("a", "p6", "2026-11-02T08:00:00Z", 1.0),
        observation("b", "p6", "2026-11-02T17:00:00Z", 2.0),
        # p7: an observation without any code
        {**observation("no-code", "p7", "2026-11-01", 1.0), "code": {"text": "creatinine"}},
        # p8: another kind of unit (a molar concentration without a molar mass)
        observation("molar", "p8", "2026-11-01", 100, unit="umol/L"),
    ]
    conditions = [
        condition("hiv", "p1", "86406008"),
        condition(
            "maybe-hiv", "p2", "86406008", verificationStatus={"coding": [{"code": "provisional"}]}
        ),
        condition(
            "refuted-hiv", "p3", "86406008", verificationStatus={"coding": [{"code": "refuted"}]}
        ),
        condition("lupus", "p9", "M32.14", system="http://hl7.org/fhir/sid/icd-10-cm"),
    ]
    lines = {
        "Patient.ndjson": [json.dumps(p) for p in patients],
        "Observation.ndjson": [json.dumps(o) for o in observations] + ["{not json", ""],
        "Condition.ndjson": [json.dumps(c) for c in conditions],
        "Widget.ndjson": [
            json.dumps(
                {"resourceType": "Widget", "id": "w1", "subject": {"reference": "Patient/p9"}}
            )
        ],
    }
    for name, rows in lines.items():
        (folder / name).write_text("\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def bad_results(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, SourcedResult], FhirScreen]:
    folder = tmp_path_factory.mktemp("bad") / "export"
    bad_export(folder)
    protocol = compile_source(BAD)
    binding, diagnostics = check_binding(BAD_BINDING, "bad.bind.yaml", protocol.checked)
    assert binding is not None, diagnostics
    screen = FhirScreen(protocol, binding.sections["fhir"], folder, AS_OF)
    return {r.id: r for r in screen.results()}, screen


def test_bad_data_is_reported_per_patient_and_never_changes_a_result(
    bad_results: tuple[dict[str, SourcedResult], FhirScreen],
) -> None:
    results, screen = bad_results
    assert list(results) == [f"p{i}" for i in range(1, 10)]
    p1, p2, p3, p4, p5, p6, p7, p8, p9 = (results[f"p{i}"] for i in range(1, 10))
    assert p1.status == "ineligible" and p1.problems == ()  # HIV
    # Entered in error: reported, not used; the value before it is.
    assert p2.sources["creatinine"].source == "Observation/older"
    assert "Observation/retracted: entered in error; not used" in p2.problems
    # A provisional HIV diagnosis is unknown, never yes or no.
    assert p2.sources["hiv"].value is None and p2.status == "undetermined"
    # Not UCUM: the value is unknown, and said why.
    assert p3.sources["creatinine"].value is None
    assert any("not a UCUM code" in p or "no UCUM unit" in p for p in p3.problems)
    assert p3.sources["hiv"].value == "false"  # the refuted diagnosis is not used
    assert any("refuted" in p for p in p3.problems)
    # A date that cannot be read makes the value unknown.
    assert p4.sources["creatinine"].value is None
    assert any("cannot be read" in p for p in p4.problems)
    # After the reference date: not used, reported; today's value is.
    assert p5.sources["creatinine"].source == "Observation/today"
    assert any("after the reference date" in p for p in p5.problems)
    assert p5.status == "eligible"
    # Two values on one day: unknown and reported, not one of them.
    assert p6.sources["creatinine"].value is None
    assert any("conflicting values" in p for p in p6.problems)
    assert any("no code" in p for p in p7.problems)
    assert p8.sources["creatinine"].value is None
    assert any("umol/L" in p for p in p8.problems)
    assert p9.sources["diagnoses"].value is not None and "lupus" in p9.sources["diagnoses"].value
    assert any("unknown resource type 'Widget'" in p for p in p9.problems)
    # A line that is not JSON names its file and line.
    assert any(
        p.endswith("not JSON") or "Observation.ndjson:12: not JSON" in p
        for p in screen.source.problems
    )
    for result in (p3, p4, p6, p7, p8):
        assert result.status != "eligible"


def test_bad_data_through_the_command_line_has_no_traceback(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    bad_export(folder)
    protocol = tmp_path / "bad.crit"
    protocol.write_text(BAD, encoding="utf-8")
    binding = tmp_path / "bad.bind.yaml"
    binding.write_text(BAD_BINDING, encoding="utf-8")
    ran = critlang(
        "eval",
        str(protocol),
        "--bindings",
        str(binding),
        "--fhir",
        str(folder),
        "--as-of",
        "2026-11-29",
    )
    assert ran.returncode == 0, ran.stderr
    assert "Traceback" not in ran.stderr + ran.stdout
    assert "creatinine: 1 mg/dL (Observation/good, 2026-11-01), latest within 90 days" in ran.stdout
    assert "problem: Observation/retracted: entered in error; not used" in ran.stdout
    assert "data problems:" in ran.stderr
    assert "Observation.ndjson:12: not JSON" in ran.stderr


# ---- the command line -------------------------------------------------------------------


def critlang(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from critlang.cli import main; main()", *args],
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )


def test_eval_from_fhir_writes_sources_in_json(
    ctd: tuple[Protocol, Section], tmp_path: Path
) -> None:
    protocol, section = ctd
    patients = list(Generator(protocol.checked, section, AS_OF, seed=2).patients(5))
    write_fhir(patients, tmp_path / "fhir")
    ran = critlang(
        "eval",
        str(CTD),
        "--bindings",
        str(CTD_FHIR),
        "--fhir",
        str(tmp_path / "fhir"),
        "--as-of",
        "2026-11-29",
        "--format",
        "jsonl",
    )
    assert ran.returncode == 0, ran.stderr
    rows = [json.loads(line) for line in ran.stdout.splitlines()]
    assert [r["id"] for r in rows] == [p.id for p in patients]
    for row in rows:
        assert set(row["sources"]) == set(section.elements)
        for cited in row["sources"].values():
            assert "value" in cited or "why" in cited
    assert "5 record(s)" in ran.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fhir", "x"], "give --bindings and --fhir together"),
        (["--bindings", "x"], "give --bindings and --fhir together"),
        ([], "give a RECORDS file"),
    ],
)
def test_eval_says_what_is_missing(args: list[str], message: str) -> None:
    ran = critlang("eval", str(CTD), *args)
    assert ran.returncode == 64
    assert message in ran.stderr


def test_eval_needs_a_reference_date_for_windows(tmp_path: Path) -> None:
    (tmp_path / "fhir").mkdir()
    (tmp_path / "fhir" / "Patient.ndjson").write_text('{"resourceType":"Patient","id":"a"}\n')
    ran = critlang("eval", str(CTD), "--bindings", str(CTD_FHIR), "--fhir", str(tmp_path / "fhir"))
    assert ran.returncode == 64
    assert "--as-of" in ran.stderr


def test_eval_reports_a_bad_binding_with_its_position(tmp_path: Path) -> None:
    binding = tmp_path / "b.bind.yaml"
    binding.write_text("protocol: ctd_ild\nfhir:\n  creatinin: {observation: [loinc:2160-0]}\n")
    ran = critlang(
        "eval",
        str(CTD),
        "--bindings",
        str(binding),
        "--fhir",
        str(tmp_path),
        "--as-of",
        "2026-11-29",
    )
    assert ran.returncode == 1
    assert f"{binding}:3:3: error[BIND010]: 'creatinin' is not a data element" in ran.stderr
    assert "did you mean 'creatinine'?" in ran.stderr


def test_a_missing_folder_is_an_input_error(tmp_path: Path) -> None:
    ran = critlang(
        "eval",
        str(CTD),
        "--bindings",
        str(CTD_FHIR),
        "--fhir",
        str(tmp_path / "nowhere"),
        "--as-of",
        "2026-11-29",
    )
    assert ran.returncode == 66
    assert "no such file or folder" in ran.stderr


# ---- Bundles ---------------------------------------------------------------------------


def test_bundles_with_urn_references_read_like_a_bulk_export(
    ctd: tuple[Protocol, Section], tmp_path: Path
) -> None:
    protocol, section = ctd
    patients = list(Generator(protocol.checked, section, AS_OF, seed=9).patients(15))
    folder = tmp_path / "bundles"
    folder.mkdir()
    for patient in patients:
        entries = []
        for resource in patient.resources:
            resource = json.loads(dumps(resource))
            if "subject" in resource:
                resource["subject"] = {"reference": f"urn:uuid:{patient.id}-uuid"}
            full = (
                f"urn:uuid:{patient.id}-uuid"
                if resource["resourceType"] == "Patient"
                else f"urn:uuid:{resource['id']}"
            )
            entries.append({"fullUrl": full, "resource": resource})
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        (folder / f"{patient.id}.json").write_text(json.dumps(bundle), encoding="utf-8")
    write_flat(patients, tmp_path / "flat.jsonl")
    flat = {
        r.id: r for r in protocol.screen(read_records(tmp_path / "flat.jsonl", protocol.checked))
    }
    results = list(FhirScreen(protocol, section, folder, AS_OF).results())
    assert sorted(r.id for r in results) == sorted(flat)
    for result in results:
        assert values(result) == values(flat[result.id])


# ---- the same patients as OMOP tables ------------------------------------------------------


def test_the_generator_writes_the_same_patients_as_omop_tables(
    ctd: tuple[Protocol, Section], tmp_path: Path
) -> None:
    duckdb = pytest.importorskip("duckdb")
    from critlang.synth import OMOP_TABLES, write_omop

    protocol, section = ctd
    patients = list(Generator(protocol.checked, section, AS_OF, seed=8).patients(60))
    write_omop(patients, tmp_path / "omop.duckdb")
    with duckdb.connect(str(tmp_path / "omop.duckdb"), read_only=True) as db:
        tables = {row[0] for row in db.execute("SHOW TABLES").fetchall()}
        assert tables == set(OMOP_TABLES)
        assert db.execute("SELECT count(*) FROM person").fetchone() == (60,)
        # Creatinine: the latest measurement within 90 days is the flat record's value.
        latest = dict(
            db.execute(
                """
                SELECT p.person_source_value, arg_max(m.value_as_number, m.measurement_date)
                FROM measurement m JOIN person p USING (person_id)
                JOIN concept c ON c.concept_id = m.measurement_concept_id
                WHERE c.vocabulary_id = 'LOINC' AND c.concept_code IN ('2160-0', '38483-4')
                  AND m.measurement_date BETWEEN DATE '2026-08-31' AND DATE '2026-11-29'
                GROUP BY 1
                """
            ).fetchall()
        )
        # Diagnoses by ICD-10-CM or SNOMED code, with the concept table saying which.
        lupus = {
            row[0]
            for row in db.execute(
                """
                SELECT DISTINCT p.person_source_value FROM condition_occurrence o
                JOIN person p USING (person_id) JOIN concept c ON c.concept_id = o.condition_concept_id
                WHERE (c.vocabulary_id = 'SNOMED' AND c.concept_code = '55464009')
                   OR (c.vocabulary_id = 'ICD10CM' AND c.concept_code LIKE 'M32%')
                """
            ).fetchall()
        }
    for patient in patients:
        record = patient.record
        if "creatinine" in record:
            assert latest[patient.id] == Decimal(str(record["creatinine"])), patient.id
        else:
            assert patient.id not in latest
        has_lupus = "systemic_lupus_erythematosus" in record.get("ctd_diagnoses", [])
        assert (patient.id in lupus) == has_lupus


def test_the_synth_command_writes_three_forms_that_screen_alike(tmp_path: Path) -> None:
    out = tmp_path / "synthetic"
    ran = critlang(
        "synth", str(CTD), "--bindings", str(CTD_FHIR), "--as-of", "2026-11-29",
        "--patients", "25", "--seed", "3", "-o", str(out),
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "25 patient(s) written" in ran.stderr
    assert (out / "omop.duckdb").is_file()
    flat = critlang("eval", str(CTD), str(out / "flat.jsonl"), "--format", "csv")
    fhir = critlang(
        "eval", str(CTD), "--bindings", str(CTD_FHIR), "--fhir", str(out / "fhir"),
        "--as-of", "2026-11-29", "--format", "csv",
    )  # fmt: skip
    assert flat.returncode == fhir.returncode == 0, fhir.stderr
    assert flat.stdout == fhir.stdout
    assert len(flat.stdout.splitlines()) == 26


# ---- procedures, requests, administrations, pregnancy ------------------------------------

MEDS = """\
protocol meds
data
  biopsy: boolean
  biopsy_date: date
  prednisone: quantity 'mg/d' range 0 to 2000
  on_mmf: boolean
  pregnant: boolean
inclusion I1 "Biopsy"
  met when biopsy
"""
MEDS_BINDING = """\
protocol: meds
fhir:
  biopsy: {procedure: [snomed:432231006], absent: false}
  biopsy_date: {procedure: [snomed:432231006], select: latest, read: date}
  prednisone: {medication: [rxnorm:312617], select: latest within 30 days, read: dose}
  on_mmf: {medication: [atc:L04AA06], select: any within 30 days, absent: false}
  pregnant: {pregnancy: status, select: latest within 9 months}
"""


def test_procedures_requests_administrations_and_pregnancy_status(tmp_path: Path) -> None:
    subject = {"reference": "Patient/a"}
    resources = [
        {"resourceType": "Patient", "id": "a", "gender": "female"},
        {"resourceType": "Procedure", "id": "p1", "status": "completed", "subject": subject,
         "code": {"coding": [{"system": "http://snomed.info/sct", "code": "432231006"}]},
         "performedDateTime": "2026-01-10T09:00:00+02:00"},
        {"resourceType": "Procedure", "id": "p2", "status": "not-done", "subject": subject,
         "code": {"coding": [{"system": "http://snomed.info/sct", "code": "432231006"}]},
         "performedDateTime": "2026-06-10"},
        {"resourceType": "MedicationRequest", "id": "r1", "status": "active", "intent": "order",
         "subject": subject, "authoredOn": "2026-10-30",
         "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "312617"}]},
         "dosageInstruction": [{"timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d",
                                                       "boundsPeriod": {"start": "2026-11-01"}}},
                                "doseAndRate": [{"doseQuantity": {"value": 5, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}]}]},
        {"resourceType": "MedicationAdministration", "id": "m1", "status": "completed", "subject": subject,
         "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "L04AA06"}]},
         "effectiveDateTime": "2026-11-20T08:00:00Z"},
        {"resourceType": "Observation", "id": "o1", "status": "final", "subject": subject,
         "code": {"coding": [{"system": "http://loinc.org", "code": "82810-3"}]},
         "effectiveDateTime": "2026-11-02",
         "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "60001007"}]}},
    ]  # fmt: skip
    folder = tmp_path / "export"
    folder.mkdir()
    for resource in resources:
        with (folder / f"{resource['resourceType']}.ndjson").open("a", encoding="utf-8") as out:
            out.write(json.dumps(resource) + "\n")
    protocol = compile_source(MEDS)
    binding, diagnostics = check_binding(MEDS_BINDING, "meds.bind.yaml", protocol.checked)
    assert binding is not None and diagnostics == []
    (result,) = FhirScreen(protocol, binding.sections["fhir"], folder, AS_OF).results()
    cited = {name: c.words() for name, c in result.sources.items()}
    assert cited["biopsy"] == "true (Procedure/p1, 2026-01-10), any"
    assert cited["biopsy_date"] == "2026-01-10 (Procedure/p1, 2026-01-10), latest"
    # 5 mg twice a day from the request's bounds
    assert (
        cited["prednisone"] == "10 mg/d (MedicationRequest/r1, 2026-11-01), latest within 30 days"
    )
    assert cited["on_mmf"] == "true (MedicationAdministration/m1, 2026-11-20), any within 30 days"
    assert cited["pregnant"] == "false (Observation/o1, 2026-11-02), latest within 9 months"
    assert result.problems == ("Procedure/p2: status 'not-done' (only completed are used)",)
    assert result.status == "eligible"
