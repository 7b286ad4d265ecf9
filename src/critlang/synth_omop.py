"""The synthetic patients of `synth.py` written as OMOP CDM 5.4 tables, as a site's ETL would.

Each patient's FHIR resources become rows: Patient → `person`, Observation →
`measurement` (its value, unit and coded value as concepts), Condition →
`condition_occurrence` (SNOMED CT as the standard concept, ICD-10-CM as the
source concept, unmapped), MedicationStatement → `drug_exposure`, Procedure →
`procedure_occurrence`. Every code and unit gets a row of `concept`. As an ETL
does, resources that FHIR screening would not use (a preliminary result, a
refuted condition) are not loaded; resource types OMOP bindings do not read
(Encounter) are left out. The tables are Parquet files in one folder, which
DuckDB and Spark read as they are; person ids are 1, 2, ... in patient order,
with the patient's id as `person_source_value`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from critlang.bindings.fhir import EXCLUDED_VERIFICATION, USED_STATUS
from critlang.bindings.omop import GENDERS, VOCABULARIES
from critlang.synth import Synthetic
from critlang.vocab import CodeSystem

_SYSTEMS = {system.uri: system for system in CodeSystem}
_GENDER = dict(GENDERS)
FIRST_CONCEPT = 2_000_000_001  # concept ids of the codes met, in order


class _Concepts:
    """The `concept` table being built: one id per (vocabulary, code)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], int] = {}

    def id(self, vocabulary: str, code: str) -> int:
        key = (vocabulary, code)
        if key not in self.rows:
            self.rows[key] = FIRST_CONCEPT + len(self.rows)
        return self.rows[key]

    def coding(self, concept: dict[str, Any] | None) -> tuple[int, CodeSystem | None]:
        """The concept of a CodeableConcept's first coding of a known system (0 if none)."""
        for coding in (concept or {}).get("coding", ()):
            system = _SYSTEMS.get(coding.get("system", ""))
            if system is not None and coding.get("code"):
                return self.id(VOCABULARIES[system], str(coding["code"])), system
        return 0, None


def _date(text: str | None) -> str | None:
    return None if text is None else text[:10]


def _number(value: Any) -> float | None:
    return None if value is None else float(Decimal(str(value)))


def _status(resource: dict[str, Any]) -> bool:
    used = USED_STATUS.get(resource["resourceType"])
    return used is None or resource.get("status") in used


def _verified(resource: dict[str, Any]) -> bool:
    codings = (resource.get("verificationStatus") or {}).get("coding", ())
    return not any(c.get("code") in EXCLUDED_VERIFICATION for c in codings)


def omop_tables(patients: Iterable[Synthetic]) -> dict[str, list[dict[str, Any]]]:
    """The patients' resources as rows of OMOP tables, by table name."""
    concepts = _Concepts()
    tables: dict[str, list[dict[str, Any]]] = {
        "person": [],
        "measurement": [],
        "condition_occurrence": [],
        "drug_exposure": [],
        "procedure_occurrence": [],
    }
    for number, patient in enumerate(patients, start=1):
        for resource in patient.resources:
            if not _status(resource):
                continue
            kind = resource["resourceType"]
            row_id = len(tables["measurement"]) + len(tables["condition_occurrence"]) + 1
            if kind == "Patient":
                born = resource.get("birthDate")
                parts = [int(p) for p in born.split("-")] if born else []
                tables["person"].append(
                    {
                        "person_id": number,
                        "gender_concept_id": _GENDER.get(resource.get("gender", ""), 0),
                        "year_of_birth": parts[0] if parts else None,
                        "month_of_birth": parts[1] if len(parts) > 1 else None,
                        "day_of_birth": parts[2] if len(parts) > 2 else None,
                        "person_source_value": patient.id,
                    }
                )
            elif kind == "Observation":
                concept, _ = concepts.coding(resource.get("code"))
                quantity = resource.get("valueQuantity") or {}
                unit = quantity.get("code")
                coded, _ = concepts.coding(resource.get("valueCodeableConcept"))
                tables["measurement"].append(
                    {
                        "measurement_id": row_id,
                        "person_id": number,
                        "measurement_concept_id": concept,
                        "measurement_source_concept_id": 0,
                        "measurement_date": _date(resource.get("effectiveDateTime")),
                        "value_as_number": _number(quantity.get("value")),
                        "value_as_concept_id": coded,
                        "unit_concept_id": concepts.id("UCUM", unit) if unit else 0,
                        "unit_source_value": quantity.get("unit"),
                    }
                )
            elif kind == "Condition" and _verified(resource):
                concept, system = concepts.coding(resource.get("code"))
                standard = system is not CodeSystem.ICD10CM  # ICD-10-CM is a source vocabulary
                tables["condition_occurrence"].append(
                    {
                        "condition_occurrence_id": row_id,
                        "person_id": number,
                        "condition_concept_id": concept if standard else 0,
                        "condition_source_concept_id": 0 if standard else concept,
                        "condition_start_date": _date(
                            resource.get("onsetDateTime") or resource.get("recordedDate")
                        ),
                    }
                )
            elif kind in ("MedicationStatement", "MedicationRequest"):
                concept, _ = concepts.coding(resource.get("medicationCodeableConcept"))
                period = resource.get("effectivePeriod") or {}
                tables["drug_exposure"].append(
                    {
                        "drug_exposure_id": len(tables["drug_exposure"]) + 1,
                        "person_id": number,
                        "drug_concept_id": concept,
                        "drug_source_concept_id": 0,
                        "drug_exposure_start_date": _date(period.get("start")),
                        "drug_exposure_end_date": _date(period.get("end")),
                    }
                )
            elif kind == "Procedure":
                concept, _ = concepts.coding(resource.get("code"))
                tables["procedure_occurrence"].append(
                    {
                        "procedure_occurrence_id": len(tables["procedure_occurrence"]) + 1,
                        "person_id": number,
                        "procedure_concept_id": concept,
                        "procedure_source_concept_id": 0,
                        "procedure_date": _date(resource.get("performedDateTime")),
                    }
                )
    tables["concept"] = [
        {"concept_id": concept, "vocabulary_id": vocabulary, "concept_code": code}
        for (vocabulary, code), concept in concepts.rows.items()
    ]
    return tables


_TYPES = {
    "person": {
        "person_id": "int64",
        "gender_concept_id": "int64",
        "year_of_birth": "int32",
        "month_of_birth": "int32",
        "day_of_birth": "int32",
        "person_source_value": "string",
    },
    "concept": {"concept_id": "int64", "vocabulary_id": "string", "concept_code": "string"},
    "measurement": {
        "measurement_id": "int64",
        "person_id": "int64",
        "measurement_concept_id": "int64",
        "measurement_source_concept_id": "int64",
        "measurement_date": "date32",
        "value_as_number": "float64",
        "value_as_concept_id": "int64",
        "unit_concept_id": "int64",
        "unit_source_value": "string",
    },
    "condition_occurrence": {
        "condition_occurrence_id": "int64",
        "person_id": "int64",
        "condition_concept_id": "int64",
        "condition_source_concept_id": "int64",
        "condition_start_date": "date32",
    },
    "drug_exposure": {
        "drug_exposure_id": "int64",
        "person_id": "int64",
        "drug_concept_id": "int64",
        "drug_source_concept_id": "int64",
        "drug_exposure_start_date": "date32",
        "drug_exposure_end_date": "date32",
    },
    "procedure_occurrence": {
        "procedure_occurrence_id": "int64",
        "person_id": "int64",
        "procedure_concept_id": "int64",
        "procedure_source_concept_id": "int64",
        "procedure_date": "date32",
    },
}


def write_omop(patients: Iterable[Synthetic], folder: Path) -> None:
    """The patients as OMOP tables: one `TABLE.parquet` per table in `folder`."""
    import datetime

    pa = importlib.import_module("pyarrow")
    pq = importlib.import_module("pyarrow.parquet")
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in omop_tables(patients).items():
        types = _TYPES[name]
        columns: dict[str, list[Any]] = {column: [] for column in types}
        for row in rows:
            for column in types:
                value = row.get(column)
                if types[column] == "date32" and value is not None:
                    value = datetime.date.fromisoformat(value)
                columns[column].append(value)
        schema = pa.schema([pa.field(c, getattr(pa, t)()) for c, t in types.items()])
        pq.write_table(
            pa.Table.from_pydict(columns, schema=schema), str(folder / f"{name}.parquet")
        )
