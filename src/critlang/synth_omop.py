"""The synthetic patients of `synth.py` written as OMOP CDM 5.4 tables, as a site's ETL would.

One writer, two outputs: `write_omop(patients, "x.duckdb")` writes a DuckDB
file, `write_omop(patients, folder)` a folder of Parquet tables (one
`TABLE.parquet` each), which DuckDB and Spark read as they are. Both hold the
same rows, built once by `omop_tables`.

Each patient's FHIR resources become rows: Patient → `person`, Observation →
`measurement` (its value, unit, reference range and coded value as
concepts), Condition → `condition_occurrence` (SNOMED CT as the standard
concept; ICD-10-CM, a source vocabulary, as the source concept with concept
0, unmapped), MedicationStatement/MedicationRequest → `drug_exposure`,
Procedure → `procedure_occurrence`. Every code and unit gets a row of
`concept`, and each concept is its own ancestor in `concept_ancestor` (as the
OMOP vocabulary files have it), so that bindings "with descendants" read
these tables too. A daily dose (a MedicationStatement's) is written as OMOP
holds a drug's amount: a `drug_strength` row of the drug concept with
`amount_value` 1 in the dose's unit, and per exposure a month's supply
(`days_supply` 30, `quantity` 30 times the dose).
As an ETL does, resources that FHIR screening would not use (a preliminary
result, a refuted condition) are not loaded; resource types OMOP bindings do
not read (Encounter) are left out. Person ids are 1, 2, ... in patient order,
with the patient's id as `person_source_value`.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from critlang.bindings.binding import normal_code
from critlang.bindings.fhir import EXCLUDED_VERIFICATION, USED_STATUS
from critlang.bindings.omop import GENDERS, VOCABULARIES
from critlang.vocab import CodeSystem

if TYPE_CHECKING:  # synth imports this module for its write_omop
    from critlang.synth import Synthetic

_SYSTEMS = {system.uri: system for system in CodeSystem}
_GENDER = dict(GENDERS)
_EHR = 32817  # type concept: EHR
FIRST_CONCEPT = 2_000_000_001  # OMOP's range for site-made concepts
SUPPLY_DAYS = 30

# Each table's columns as DuckDB declares them, in the order of the rows.
OMOP_TABLES = {
    "concept": "concept_id BIGINT, concept_name VARCHAR, domain_id VARCHAR, vocabulary_id VARCHAR, "
    "concept_class_id VARCHAR, standard_concept VARCHAR, concept_code VARCHAR, "
    "valid_start_date DATE, valid_end_date DATE, invalid_reason VARCHAR",
    "concept_ancestor": "ancestor_concept_id BIGINT, descendant_concept_id BIGINT, "
    "min_levels_of_separation INTEGER, max_levels_of_separation INTEGER",
    "drug_strength": "drug_concept_id BIGINT, ingredient_concept_id BIGINT, "
    "amount_value DECIMAL(18,6), amount_unit_concept_id BIGINT",
    "person": "person_id BIGINT, gender_concept_id BIGINT, year_of_birth INTEGER, "
    "month_of_birth INTEGER, day_of_birth INTEGER, birth_datetime TIMESTAMP, "
    "race_concept_id BIGINT, ethnicity_concept_id BIGINT, person_source_value VARCHAR, "
    "gender_source_value VARCHAR",
    "measurement": "measurement_id BIGINT, person_id BIGINT, measurement_concept_id BIGINT, "
    "measurement_source_concept_id BIGINT, measurement_date DATE, "
    "measurement_type_concept_id BIGINT, value_as_number DECIMAL(18,6), "
    "value_as_concept_id BIGINT, unit_concept_id BIGINT, range_low DECIMAL(18,6), "
    "range_high DECIMAL(18,6), measurement_source_value VARCHAR, unit_source_value VARCHAR",
    "condition_occurrence": "condition_occurrence_id BIGINT, person_id BIGINT, "
    "condition_concept_id BIGINT, condition_source_concept_id BIGINT, "
    "condition_start_date DATE, condition_end_date DATE, condition_type_concept_id BIGINT, "
    "condition_source_value VARCHAR",
    "drug_exposure": "drug_exposure_id BIGINT, person_id BIGINT, drug_concept_id BIGINT, "
    "drug_source_concept_id BIGINT, drug_exposure_start_date DATE, "
    "drug_exposure_end_date DATE, drug_type_concept_id BIGINT, quantity DECIMAL(18,6), "
    "days_supply INTEGER, drug_source_value VARCHAR",
    "procedure_occurrence": "procedure_occurrence_id BIGINT, person_id BIGINT, "
    "procedure_concept_id BIGINT, procedure_source_concept_id BIGINT, procedure_date DATE, "
    "procedure_type_concept_id BIGINT, procedure_source_value VARCHAR",
}
_DOMAINS = {"UCUM": "Unit"}


class _Etl:
    """The rows of the OMOP tables being built, with a concept for every code and unit met."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in OMOP_TABLES}
        self.concepts: dict[tuple[str, str], int] = {}
        self.strengths: dict[int, int] = {}  # drug concept -> its amount's unit concept

    def concept(self, vocabulary: str, code: str, domain: str) -> int:
        key = (vocabulary, code)
        if key not in self.concepts:
            concept_id = FIRST_CONCEPT + len(self.concepts)
            self.concepts[key] = concept_id
            standard = None if vocabulary == "ICD10CM" else "S"
            self.rows["concept"].append(
                (concept_id, f"{vocabulary} {code}", _DOMAINS.get(vocabulary, domain), vocabulary,
                 "Clinical", standard, code, datetime.date(1970, 1, 1),
                 datetime.date(2099, 12, 31), None)
            )  # fmt: skip
            self.rows["concept_ancestor"].append((concept_id, concept_id, 0, 0))
        return self.concepts[key]

    def coding(
        self, concept: Mapping[str, Any] | None, domain: str
    ) -> tuple[int, CodeSystem | None, str | None]:
        """The concept of a CodeableConcept's first coding of a known system (0 if none), its
        system and its code as OMOP writes it (ICD-10-CM with its dot)."""
        for coding in (concept or {}).get("coding", ()):
            system = _SYSTEMS.get(coding.get("system", ""))
            if system is not None and coding.get("code"):
                bare = normal_code(system, str(coding["code"])).partition(":")[2]
                if system == CodeSystem.ICD10CM and len(bare) > 3:
                    bare = f"{bare[:3]}.{bare[3:]}"
                return self.concept(VOCABULARIES[system], bare, domain), system, bare
        return 0, None, None

    def add(self, person_id: int, patient_id: str, resource: Mapping[str, Any]) -> None:
        kind = resource["resourceType"]
        used = USED_STATUS.get(kind)
        if used is not None and resource.get("status") not in used:
            return  # an ETL to OMOP loads results that count
        if kind == "Patient":
            self._person(person_id, patient_id, resource)
        elif kind == "Observation":
            self._measurement(person_id, resource)
        elif kind == "Condition" and _verified(resource):
            concept, system, bare = self.coding(resource.get("code"), "Condition")
            standard = system is not CodeSystem.ICD10CM
            self.rows["condition_occurrence"].append(
                (self._next("condition_occurrence"), person_id, concept if standard else 0,
                 0 if standard else concept,
                 _date(resource.get("onsetDateTime") or resource.get("recordedDate")), None,
                 _EHR, bare)
            )  # fmt: skip
        elif kind in ("MedicationStatement", "MedicationRequest"):
            self._drug(person_id, resource)
        elif kind == "Procedure":
            concept, _, bare = self.coding(resource.get("code"), "Procedure")
            self.rows["procedure_occurrence"].append(
                (self._next("procedure_occurrence"), person_id, concept, 0,
                 _date(resource.get("performedDateTime")), _EHR, bare)
            )  # fmt: skip

    def _next(self, table: str) -> int:
        return len(self.rows[table]) + 1

    def _person(self, person_id: int, patient_id: str, resource: Mapping[str, Any]) -> None:
        born = resource.get("birthDate")
        parts = [int(p) for p in born.split("-")] if born else []
        full = len(parts) == 3
        gender = resource.get("gender")
        self.rows["person"].append(
            (person_id, _GENDER.get(gender or "", 0), parts[0] if parts else None,
             parts[1] if len(parts) > 1 else None, parts[2] if full else None,
             datetime.datetime(parts[0], parts[1], parts[2]) if full else None, 0, 0, patient_id,
             gender)
        )  # fmt: skip

    def _measurement(self, person_id: int, resource: Mapping[str, Any]) -> None:
        concept, _, bare = self.coding(resource.get("code"), "Measurement")
        coded, _, _ = self.coding(resource.get("valueCodeableConcept"), "Meas Value")
        quantity = resource.get("valueQuantity") or {}
        unit = quantity.get("code")
        low = high = None
        ranges = resource.get("referenceRange")
        if ranges:
            low = (ranges[0].get("low") or {}).get("value")
            high = (ranges[0].get("high") or {}).get("value")
        self.rows["measurement"].append(
            (self._next("measurement"), person_id, concept, 0,
             _date(resource.get("effectiveDateTime")), _EHR, quantity.get("value"), coded,
             self.concept("UCUM", unit, "Unit") if unit else 0, low, high, bare,
             quantity.get("unit"))
        )  # fmt: skip

    def _drug(self, person_id: int, resource: Mapping[str, Any]) -> None:
        concept, _, bare = self.coding(resource.get("medicationCodeableConcept"), "Drug")
        period = resource.get("effectivePeriod") or {}
        quantity = days = None
        dosage = resource.get("dosage")
        if dosage and concept:
            dose = dosage[0]["doseAndRate"][0]["doseQuantity"]
            # The drug's strength is 1 of the dose's unit per unit dispensed; a month's supply
            # of the daily dose, so that amount_value x quantity / days_supply gives it back.
            unit = self.concept("UCUM", dose["code"], "Unit")
            if self.strengths.setdefault(concept, unit) == unit:
                quantity, days = Decimal(str(dose["value"])) * SUPPLY_DAYS, SUPPLY_DAYS
        self.rows["drug_exposure"].append(
            (self._next("drug_exposure"), person_id, concept, 0, _date(period.get("start")),
             _date(period.get("end")), _EHR, quantity, days, bare)
        )  # fmt: skip

    def finish(self) -> dict[str, list[tuple[Any, ...]]]:
        self.rows["drug_strength"] = [
            (drug, drug, 1, unit) for drug, unit in self.strengths.items()
        ]
        return self.rows


def _date(text: str | None) -> str | None:
    return None if text is None else text[:10]


def _verified(resource: Mapping[str, Any]) -> bool:
    codings = (resource.get("verificationStatus") or {}).get("coding", ())
    return not any(c.get("code") in EXCLUDED_VERIFICATION for c in codings)


def omop_tables(patients: Iterable[Synthetic]) -> dict[str, list[tuple[Any, ...]]]:
    """The patients' resources as rows of the OMOP tables (columns as in OMOP_TABLES)."""
    etl = _Etl()
    for number, patient in enumerate(patients, start=1):
        for resource in patient.resources:
            etl.add(number, patient.id, resource)
    return etl.finish()


def write_omop(patients: Iterable[Synthetic], path: Path) -> None:
    """The patients as OMOP tables: a DuckDB file for a path ending `.duckdb`, else a folder of
    Parquet tables. The tables are made once, in DuckDB, and copied out as Parquet."""
    import duckdb

    tables = omop_tables(patients)
    parquet = path.suffix != ".duckdb"
    if parquet:
        path.mkdir(parents=True, exist_ok=True)
    else:
        path.unlink(missing_ok=True)
    with duckdb.connect(":memory:" if parquet else str(path)) as connection:
        for table, columns in OMOP_TABLES.items():
            connection.execute(f"CREATE TABLE {table} ({columns})")
            rows = tables[table]
            if rows:
                marks = ", ".join("?" for _ in rows[0])
                connection.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
            if parquet:
                target = str(path / f"{table}.parquet").replace("'", "''")
                connection.execute(f"COPY {table} TO '{target}' (FORMAT parquet)")
