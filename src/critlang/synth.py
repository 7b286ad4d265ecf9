"""Synthetic patients written three ways: flat records, FHIR R4 NDJSON and OMOP CDM 5.4 tables.

The generator decides each patient's flat record first (random values, or a
boundary witness from `critlang analyze`), keeps only what its binding can
carry (an age is whole years from a birth date, a time since is whole days),
then writes resources that say exactly that record through the binding:
the value that a rule must pick (the latest within 90 days, the earliest) and
decoys it must not pick (older results, a preliminary result, codes the
binding does not read, resource types it skips). The flat record is written
from the generator's own values, never by reading the FHIR back, so screening
both and comparing is a real differential test of the FHIR path.
"""

from __future__ import annotations

import datetime
import json
import random
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import attrs

from critlang import units
from critlang.bindings.assemble import shift, whole_years
from critlang.bindings.binding import CodeSet, ElementBinding, Section
from critlang.bindings.fhir import PREGNANCY_STATUS, PREGNANCY_VALUES, UCUM
from critlang.check import Checked
from critlang.vocab import CODE_SYSTEM_URIS, CalendarUnit, CodeSystem

_RESOURCE_TYPES = ("Patient", "Observation", "Condition", "MedicationStatement", "Procedure")
_DISPLAY = "synthetic"


@attrs.frozen
class Synthetic:
    """One patient: the flat record (as JSON values) and the FHIR resources that say the same."""

    id: str
    record: dict[str, Any]
    resources: tuple[dict[str, Any], ...]


class Generator:
    """Makes patients for a protocol's FHIR binding; `as_of` is the reference date."""

    def __init__(
        self, checked: Checked, section: Section, as_of: datetime.date, seed: int = 0
    ) -> None:
        self.checked = checked
        self.section = section
        self.as_of = as_of
        self.rng = random.Random(seed)
        self.serial = 0
        self.patient_serial = 0
        self.groups = _groups(section)

    # ---- the flat record

    def random_record(self) -> dict[str, Any]:
        """Values for every bound element, some missing, each in its plausible range."""
        rng = self.rng
        record: dict[str, Any] = {}
        for name, element in self.section.elements.items():
            if (
                element.absent == "unknown"
                and element.source != "reference"
                and rng.random() < 0.15
            ):
                continue
            record[name] = self._random_value(element)
        return record

    def _random_value(self, element: ElementBinding) -> Any:
        rng = self.rng
        kind = element.type
        if kind.kind == "history":
            return self._random_history(element)
        if element.source == "reference":
            return self.as_of.isoformat()
        if kind.kind == "boolean":
            return rng.random() < 0.3
        if kind.kind == "enum":
            return rng.choice(_choices(element))
        if kind.kind == "set":
            return sorted(v for v in _choices(element) if rng.random() < 0.25)
        if kind.kind == "date":
            return (self.as_of - datetime.timedelta(days=rng.randrange(365, 30000))).isoformat()
        if element.read == "time since":
            return {"value": rng.randrange(0, 1500), "unit": "d"}
        if element.source == "patient":
            return Decimal(rng.randrange(15, 86))
        low, high = self._range(element)
        value = Decimal(rng.uniform(float(low), float(high))).quantize(Decimal("0.01"))
        return value if element.source != "patient" else value.to_integral_value()

    def _random_history(self, element: ElementBinding) -> list[dict[str, Any]]:
        """Up to four entries, some inside the protocol's usual windows, some long before."""
        rng = self.rng
        entries: list[dict[str, Any]] = []
        entry = element.type.entry
        codes = sorted(element.codes.codes) + [
            _first_code(CodeSet(prefixes=(p,))) for p in element.codes.prefixes
        ]
        for _ in range(rng.randrange(0, 5)):
            back = rng.choice((rng.randrange(0, 30), rng.randrange(0, 120), rng.randrange(0, 900)))
            day = (self.as_of - datetime.timedelta(days=back)).isoformat()
            if entry == "measurement":
                # Around the usual limits: creatinine near 1.5 mg/dL, enzymes near 100 U/L.
                scale = 60 if element.type.unit == "U/L" else 1
                value = Decimal(rng.uniform(0.3, 3.0) * scale).quantize(Decimal("0.1"))
                item: dict[str, Any] = {"date": day, "value": value, "unit": element.type.unit}
                if rng.random() < 0.7:
                    item["low"] = Decimal("0.5")
                    item["high"] = Decimal(rng.randrange(1, 3)) * scale * Decimal("0.6")
            elif entry == "code":
                item = {"date": day, "code": rng.choice(codes)}
            else:
                end = None
                if rng.random() < 0.5:
                    end = (
                        self.as_of - datetime.timedelta(days=rng.randrange(0, back + 1))
                    ).isoformat()
                item = {"start": day, "end": end, "code": rng.choice(codes)}
                if rng.random() < 0.8:
                    item["dose"] = Decimal(rng.randrange(1, 60))
                    item["unit"] = element.type.unit
            entries.append(item)
        return entries

    def _range(self, element: ElementBinding) -> tuple[Decimal, Decimal]:
        limits = self.checked.elements[element.name].plausible_range
        if limits is None:
            return Decimal(0), Decimal(100)
        low, high = limits
        span = high - low
        # Mostly ordinary values, with the tails still visited.
        return (low, high) if self.rng.random() < 0.1 else (low + span / 20, low + span / 4)

    def expressible(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The record as the binding can carry it (a boundary witness rounded to what FHIR says)."""
        out: dict[str, Any] = {}
        for name, value in record.items():
            element = self.section.elements.get(name)
            if element is None or value is None:
                continue
            kind = element.type.kind
            if element.source == "patient" and kind == "quantity":
                value = Decimal(value).to_integral_value()
            elif element.read == "time since" and isinstance(value, dict):
                pass
            elif element.read == "time since":
                days = round(Fraction(Decimal(value)) * units.factor(element.type.unit, "d"))
                value = {"value": int(days), "unit": "d"}
            elif kind == "history":
                value = [dict(item) for item in value]
            elif kind == "set":
                value = sorted(value)
                if not value and element.absent != "empty":
                    continue
            elif kind == "boolean" and element.rule.select in ("any", "none"):
                if element.absent != "false" and (value is False) == (element.rule.select == "any"):
                    continue  # absence cannot say "no" here: the flat record leaves it unknown
            elif isinstance(value, Decimal | float | int) and not isinstance(value, bool):
                value = Decimal(str(value))
                if value != value.quantize(Decimal("0.0001")):
                    value = value.quantize(Decimal("0.0001"))
            out[name] = value
        # A history is always there from FHIR: no resource is an empty history, never unknown.
        for name, element in self.section.elements.items():
            if element.type.kind == "history":
                out.setdefault(name, [])
        # Elements read from the same resources: the earliest of them exists whenever a later one does.
        for members in self.groups.values():
            earliest = [e for e in members if e.rule.select == "earliest"]
            latest = [e for e in members if e.rule.select == "latest"]
            for first in earliest:
                if first.name not in out:
                    for later in latest:
                        if later.name in out and later.read == first.read:
                            out[first.name] = out[later.name]
        return out

    # ---- the resources

    def patient(self, record: Mapping[str, Any], patient_id: str | None = None) -> Synthetic:
        """The patient whose flat record is `record` (already expressible)."""
        self.patient_serial += 1
        pid = patient_id or f"p{self.patient_serial:07d}"
        resources: list[dict[str, Any]] = [self._patient_resource(pid, record)]
        histories = {
            name: e for name, e in self.section.elements.items() if e.type.kind == "history"
        }
        for members in self.groups.values():
            flat_members = [e for e in members if e.name not in histories]
            if flat_members:
                resources.extend(self._group(pid, flat_members, record))
        record = dict(record)
        for name, element in histories.items():
            entries = []
            for item in record.get(name, ()):
                resource = self._history_resource(pid, element, item)
                resources.append(resource)
                entries.append({**item, "source": f"{resource['resourceType']}/{resource['id']}"})
            if name in record:
                record[name] = entries
        resources.extend(self._decoys(pid))
        flat = {"id": pid, **record}
        return Synthetic(pid, flat, tuple(resources))

    def patients(
        self, count: int, boundary: Iterable[Mapping[str, Any]] = ()
    ) -> Iterator[Synthetic]:
        """The boundary records first, then random ones, `count` in all."""
        made = 0
        for record in boundary:
            if made >= count:
                return
            yield self.patient(self.expressible(record))
            made += 1
        while made < count:
            yield self.patient(self.expressible(self.random_record()))
            made += 1

    def _id(self, kind: str) -> str:
        self.serial += 1
        return f"{kind[:3].lower()}{self.serial:08d}"

    def _patient_resource(self, pid: str, record: Mapping[str, Any]) -> dict[str, Any]:
        resource: dict[str, Any] = {"resourceType": "Patient", "id": pid}
        for name, element in self.section.elements.items():
            if element.source != "patient" or name not in record:
                continue
            value = record[name]
            if element.field == "gender":
                resource["gender"] = value
            elif element.type.kind == "date":
                resource["birthDate"] = value
            else:
                years = int(value)
                born = shift(self.as_of, -years, CalendarUnit.YEAR)
                born -= datetime.timedelta(days=self.rng.randrange(0, 300))
                assert whole_years(born, self.as_of) == years
                resource["birthDate"] = born.isoformat()
        return resource

    def _group(
        self, pid: str, members: list[ElementBinding], record: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        rng = self.rng
        for element in members:
            if element.name not in record:
                continue
            value = record[element.name]
            days = self._days_back(element, members, record)
            for code, shown, date in self._codes_for(element, value, days):
                out.append(self._resource(pid, element, code, shown, date))
        # A preliminary result dated today that a rule must not use.
        if members[0].source in ("observation", "pregnancy") and rng.random() < 0.3:
            element = members[0]
            code = _first_code(element.codes) if element.source != "pregnancy" else PREGNANCY_STATUS
            decoy = self._resource(pid, element, code, _decoy_value(element), self.as_of)
            decoy["status"] = "preliminary"
            out.append(decoy)
        return out

    def _days_back(
        self, element: ElementBinding, members: list[ElementBinding], record: Mapping[str, Any]
    ) -> int:
        rng = self.rng
        within = element.rule.within
        if element.read == "time since":
            value = record[element.name]
            return int(value["value"]) if isinstance(value, dict) else 0
        if element.rule.select == "earliest":
            return rng.randrange(800, 1500)
        if within is not None:
            amount, unit = within
            span = (self.as_of - shift(self.as_of, -amount, unit)).days
            # a later element of the same resources needs room after the earliest
            return rng.randrange(0, max(1, min(span, 700)))
        return rng.randrange(0, 400)

    def _codes_for(
        self, element: ElementBinding, value: Any, days: int
    ) -> list[tuple[str, Any, datetime.date]]:
        date = self.as_of - datetime.timedelta(days=days)
        kind = element.type.kind
        if kind == "set":
            return [(_first_code(dict(element.values)[v]), None, date) for v in value]
        if kind == "boolean" and element.rule.select in ("any", "none"):
            present = value if element.rule.select == "any" else not value
            return [(_first_code(element.codes), None, date)] if present else []
        if element.source == "pregnancy":
            return [
                (PREGNANCY_STATUS, _first_code(dict(PREGNANCY_VALUES)[str(value).lower()]), date)
            ]
        if element.values:
            return [(_first_code(element.codes), _first_code(dict(element.values)[value]), date)]
        return [(_first_code(element.codes), value, date)]

    def _resource(
        self, pid: str, element: ElementBinding, code: str, value: Any, date: datetime.date
    ) -> dict[str, Any]:
        subject = {"reference": f"Patient/{pid}"}
        source = element.source
        if source in ("observation", "pregnancy"):
            resource: dict[str, Any] = {
                "resourceType": "Observation",
                "id": self._id("Observation"),
                "status": self.rng.choice(("final", "final", "amended", "corrected")),
                "code": _concept(code),
                "subject": subject,
                "effectiveDateTime": f"{date.isoformat()}T{self.rng.randrange(7, 18):02d}:30:00Z",
            }
            if isinstance(value, str) and ":" in value:
                resource["valueCodeableConcept"] = _concept(value)
            elif value is not None:
                unit = element.type.unit
                number = Decimal(str(value))
                other = _other_unit(unit)
                if other is not None and self.rng.random() < 0.5:
                    number, unit = number * _integer(units.factor(unit, other)), other
                resource["valueQuantity"] = {
                    "value": number,
                    "unit": unit,
                    "system": UCUM,
                    "code": unit,
                }
            return resource
        if source == "condition":
            return {
                "resourceType": "Condition",
                "id": self._id("Condition"),
                "clinicalStatus": _status_concept("condition-clinical", "active"),
                "verificationStatus": _status_concept("condition-ver-status", "confirmed"),
                "code": _concept(code),
                "subject": subject,
                "onsetDateTime": date.isoformat(),
            }
        if source == "procedure":
            return {
                "resourceType": "Procedure",
                "id": self._id("Procedure"),
                "status": "completed",
                "code": _concept(code),
                "subject": subject,
                "performedDateTime": date.isoformat(),
            }
        resource = {
            "resourceType": "MedicationStatement",
            "id": self._id("MedicationStatement"),
            "status": "active",
            "medicationCodeableConcept": _concept(code),
            "subject": subject,
            "effectivePeriod": {"start": date.isoformat()},
        }
        if element.read == "dose" and value is not None:
            number = Decimal(str(value))
            unit = element.type.unit
            per_day = unit.endswith("/d")
            resource["dosage"] = [
                {
                    "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                    "doseAndRate": [
                        {
                            "doseQuantity": {
                                "value": number,
                                "unit": unit[:-2] if per_day else unit,
                                "system": UCUM,
                                "code": unit[:-2] if per_day else unit,
                            }
                        }
                    ],
                }
            ]
        return resource

    def _history_resource(
        self, pid: str, element: ElementBinding, item: dict[str, Any]
    ) -> dict[str, Any]:
        entry = element.type.entry
        if entry == "measurement":
            resource = self._resource(
                pid, element, _first_code(element.codes), item["value"],
                datetime.date.fromisoformat(item["date"]),
            )  # fmt: skip
            if "low" in item:
                unit = resource["valueQuantity"]["code"]
                factor = _integer(units.factor(element.type.unit, unit))
                resource["referenceRange"] = [
                    {
                        "low": {"value": item["low"] * factor, "unit": unit, "code": unit},
                        "high": {"value": item["high"] * factor, "unit": unit, "code": unit},
                    }
                ]
            return resource
        if entry == "code":
            return self._resource(
                pid, element, item["code"], None, datetime.date.fromisoformat(item["date"])
            )
        resource = self._resource(
            pid, element, item["code"], item.get("dose"), datetime.date.fromisoformat(item["start"])
        )
        if item.get("end") is not None:
            resource["effectivePeriod"]["end"] = item["end"]
        return resource

    def _decoys(self, pid: str) -> list[dict[str, Any]]:
        """Resources no bound element reads: another type, another code."""
        subject = {"reference": f"Patient/{pid}"}
        return [
            {
                "resourceType": "Encounter",
                "id": self._id("Encounter"),
                "status": "finished",
                "class": {"code": "AMB"},
                "subject": subject,
            },
            {
                "resourceType": "Observation",
                "id": self._id("Observation"),
                "status": "final",
                "code": _concept("loinc:8867-4"),  # heart rate
                "subject": subject,
                "effectiveDateTime": self.as_of.isoformat(),
                "valueQuantity": {"value": 72, "unit": "/min", "system": UCUM, "code": "/min"},
            },
        ]


def _groups(section: Section) -> dict[tuple[str, CodeSet], list[ElementBinding]]:
    """Elements read from the same resources (same source and codes), earliest first."""
    groups: dict[tuple[str, CodeSet], list[ElementBinding]] = {}
    for element in section.elements.values():
        if element.source in ("patient", "reference"):
            continue
        key = (element.source, element.codes)
        groups.setdefault(key, []).append(element)
    for members in groups.values():
        members.sort(key=lambda e: e.rule.select != "earliest")
    return groups


def _choices(element: ElementBinding) -> list[str]:
    if element.source == "patient":
        return [v for v in element.type.values if v in ("female", "male", "other", "unknown")]
    mapped = [v for v, _ in element.values]
    return mapped or list(element.type.values)


def _first_code(codes: CodeSet) -> str:
    if codes.codes:
        return sorted(codes.codes)[0]
    prefix = codes.prefixes[0]
    return prefix + ("9" if len(prefix.partition(":")[2]) <= 3 else "")


def _concept(code: str) -> dict[str, Any]:
    system, _, bare = code.partition(":")
    if system == CodeSystem.ICD10CM and len(bare) > 3:
        bare = f"{bare[:3]}.{bare[3:]}"
    uri = CODE_SYSTEM_URIS[CodeSystem(system)]
    return {"coding": [{"system": uri, "code": bare, "display": _DISPLAY}]}


def _status_concept(system: str, code: str) -> dict[str, Any]:
    uri = f"http://terminology.hl7.org/CodeSystem/{system}"
    return {"coding": [{"system": uri, "code": code}]}


def _other_unit(unit: str) -> str | None:
    """A unit of the same kind that converts by a power of ten, to exercise conversion."""
    for other in ("mL", "g", "g/L", "mmol/L"):
        try:
            factor = units.factor(unit, other)
        except units.UnitError:
            continue
        if other != unit and factor.denominator == 1 and str(factor.numerator).rstrip("0") == "1":
            return other
    return None


def _integer(factor: Fraction) -> int:
    if factor.denominator != 1:
        raise ValueError(f"{factor} is not a whole factor")
    return factor.numerator


def _decoy_value(element: ElementBinding) -> Any:
    if element.source == "pregnancy":
        return "snomed:77386006"
    if element.values:
        return _first_code(element.values[-1][1])
    return Decimal("7.77") if element.type.kind == "quantity" else None


# ---- writing ----------------------------------------------------------------------


def dumps(value: Any) -> str:
    """JSON with Decimals as numbers; the generator's values have few digits, so floats are exact."""
    return _encoder.encode(_exact(value))


def _exact(value: Any) -> Any:
    if isinstance(value, Decimal):
        number = float(value)
        if Decimal(repr(number)) != value:
            raise ValueError(f"{value} has too many digits to write exactly")
        return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else number
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_exact(v) for v in value]
    return value


_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def write_flat(patients: Iterable[Synthetic], path: Path) -> None:
    """The flat records as JSON Lines."""
    with path.open("w", encoding="utf-8") as out:
        for patient in patients:
            out.write(dumps(patient.record) + "\n")


def write_fhir(patients: Iterable[Synthetic], folder: Path) -> None:
    """A FHIR bulk export: one NDJSON file per resource type."""
    folder.mkdir(parents=True, exist_ok=True)
    handles: dict[str, Any] = {}
    try:
        for patient in patients:
            for resource in patient.resources:
                kind = resource["resourceType"]
                if kind not in handles:
                    handles[kind] = (folder / f"{kind}.ndjson").open("w", encoding="utf-8")
                handles[kind].write(dumps(resource) + "\n")
    finally:
        for handle in handles.values():
            handle.close()


# ---- OMOP CDM 5.4: one writer, in synth_omop.py -------------------------------------------

_OMOP_NAMES = ("OMOP_TABLES", "omop_tables", "write_omop")


def __getattr__(name: str) -> Any:
    # Read from synth_omop when asked: it needs the SQL extra (sqlglot), FHIR alone does not.
    if name in _OMOP_NAMES:
        import critlang.synth_omop

        return getattr(critlang.synth_omop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
