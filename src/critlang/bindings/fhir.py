"""The FHIR R4 section of a binding: which resources hold each data element.

Source keys (see docs/fhir-omop.md):

- `patient: birthDate | gender`: the Patient resource; a quantity element bound
  to `birthDate` reads the age in whole years at the reference date;
- `observation: CODES`: Observations by code (LOINC), or their components
  by the component's code, status final, amended or corrected only; `read: value` (valueQuantity, valueCodeableConcept
  through `map`, valueBoolean), `date`, or `time since`;
- `condition: CODES`: Conditions (SNOMED CT, ICD-10-CM), not refuted, not
  entered in error; `read: value` (present), `date` (onset) or `time since`;
  `clinical: active` only those active on the reference date (abatement
  date, else clinical status);
- `medication: CODES`: MedicationStatement, MedicationRequest and
  MedicationAdministration (RxNorm, ATC), by their own code or their
  Medication's (`medicationReference`); `read: value`, `dose`, `date`
  (start) or `time since` (the start);
- `procedure: CODES`: Procedures (SNOMED CT), status completed;
- `pregnancy: status`: the pregnancy status observation (LOINC 82810-3) as
  a yes/no value (pregnant, not pregnant);
- `reference: date`: the run's reference date (`--as-of`), for a protocol's
  screening date.

CODES is a list of `system:code` or, for a set or one-of element, a mapping
from each value to the codes that mean it.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import re
from decimal import Decimal
from typing import Any

import yaml

from critlang import units
from critlang.bindings.binding import (
    CodeSet,
    Context,
    ElementBinding,
    Section,
    SourceKind,
    normal_code,
)
from critlang.vocab import CodeSystem

SOURCES = {
    "patient": SourceKind(codes=False, fields=("birthDate", "gender")),
    "observation": SourceKind(reads=("value", "date", "time since")),
    "condition": SourceKind(
        reads=("value", "date", "time since"), options=(("clinical", ("any", "active")),)
    ),
    "medication": SourceKind(reads=("value", "dose", "date", "time since")),
    "procedure": SourceKind(reads=("value", "date", "time since")),
    "pregnancy": SourceKind(codes=False, fields=("status",)),
    "reference": SourceKind(codes=False, fields=("date",)),
}

# What a `read:` gives, by the kinds of element it can fill.
_READ_KINDS = {
    "date": ("date",),
    "time since": ("quantity",),
    "dose": ("quantity", "number", "history"),
}


def parse_section(node: yaml.Node, context: Context) -> Section | None:
    """The `fhir:` section of a binding; problems go to `context`."""
    elements, unbound = context.elements(node, "the fhir section", SOURCES)
    checked = {name: e for name, e in elements.items() if _fits(e, node, context)}
    return Section("fhir", context.span(node), checked, unbound)


def _fits(element: ElementBinding, node: yaml.Node, context: Context) -> bool:
    """The source-specific checks: what each source can give to which kind of element."""
    kind = element.type
    problem: str | None = None
    hint: str | None = None
    if element.source == "patient":
        if element.field == "birthDate" and kind.kind not in ("date", "quantity"):
            problem = "Patient.birthDate gives a date, or an age for a quantity in 'a'"
            hint = "bind birthDate to a date element or to an age in 'a'"
        elif element.field == "birthDate" and kind.kind == "quantity" and kind.unit != "a":
            problem = f"an age from Patient.birthDate is in 'a', not '{kind.unit}'"
            hint = "declare the age as quantity 'a'"
        elif element.field == "gender" and kind.kind != "enum":
            problem = "Patient.gender gives one of its values; bind it to a one-of element"
            hint = "declare it as one of (female, male, ...)"
        elif element.field == "gender" and not set(kind.values) <= _GENDERS:
            problem = f"Patient.gender is one of {', '.join(sorted(_GENDERS))}"
            hint = "name the element's values as FHIR does"
    elif element.source == "reference" and kind.kind != "date":
        problem = "the reference date is a date; bind it to a date element"
    elif kind.kind == "history" and not _HISTORY_SOURCES[kind.entry] & {element.source}:
        fits = " or ".join(sorted(_HISTORY_SOURCES[kind.entry]))
        problem = f"a history of {kind.entry}s is read from {fits}, not {element.source}"
    elif element.source == "pregnancy" and kind.kind != "boolean":
        problem = "the pregnancy status gives yes or no; bind it to a boolean element"
    elif element.read in _READ_KINDS and kind.kind not in _READ_KINDS[element.read]:
        problem = f"'read: {element.read}' does not give {kind.describe()}"
    elif element.read == "time since" and kind.unit not in _TIME_UNITS:
        problem = f"'read: time since' gives a duration, not a quantity in '{kind.unit}'"
    elif (
        element.read == "value"
        and element.source in ("condition", "procedure", "medication")
        and kind.kind not in ("boolean", "set", "enum", "history")
    ):
        problem = f"a {element.source} is present or not; '{element.name}' is {kind.describe()}"
        hint = "read its date, its time since, or bind a yes/no element"
    if problem is None:
        return True
    hint = hint or "see docs/fhir-omop.md for what each FHIR source gives"
    context.error_at(element.span, "BIND040", f"'{element.name}': {problem}", hint)
    return False


_HISTORY_SOURCES = {
    "measurement": frozenset({"observation"}),
    "code": frozenset({"condition", "procedure", "observation"}),
    "medication": frozenset({"medication"}),
}
_GENDERS = frozenset({"female", "male", "other", "unknown"})
_TIME_UNITS = frozenset({"a", "mo", "wk", "d", "h", "min", "s"})


# ---- reading resources --------------------------------------------------------------
#
# A resource becomes zero or more entries: one per data element it feeds, and
# one per problem found in it. Entries are plain tuples (see `Entry`) so that
# a partition of them spills to disk with `marshal` and reads back fast.

# Every FHIR R4 (4.0.1) resource type.
R4_TYPES = frozenset(
    [
        "Account",
        "ActivityDefinition",
        "AdverseEvent",
        "AllergyIntolerance",
        "Appointment",
        "AppointmentResponse",
        "AuditEvent",
        "Basic",
        "Binary",
        "BiologicallyDerivedProduct",
        "BodyStructure",
        "Bundle",
        "CapabilityStatement",
        "CarePlan",
        "CareTeam",
        "CatalogEntry",
        "ChargeItem",
        "ChargeItemDefinition",
        "Claim",
        "ClaimResponse",
        "ClinicalImpression",
        "CodeSystem",
        "Communication",
        "CommunicationRequest",
        "CompartmentDefinition",
        "Composition",
        "ConceptMap",
        "Condition",
        "Consent",
        "Contract",
        "Coverage",
        "CoverageEligibilityRequest",
        "CoverageEligibilityResponse",
        "DetectedIssue",
        "Device",
        "DeviceDefinition",
        "DeviceMetric",
        "DeviceRequest",
        "DeviceUseStatement",
        "DiagnosticReport",
        "DocumentManifest",
        "DocumentReference",
        "EffectEvidenceSynthesis",
        "Encounter",
        "Endpoint",
        "EnrollmentRequest",
        "EnrollmentResponse",
        "EpisodeOfCare",
        "EventDefinition",
        "Evidence",
        "EvidenceVariable",
        "ExampleScenario",
        "ExplanationOfBenefit",
        "FamilyMemberHistory",
        "Flag",
        "Goal",
        "GraphDefinition",
        "Group",
        "GuidanceResponse",
        "HealthcareService",
        "ImagingStudy",
        "Immunization",
        "ImmunizationEvaluation",
        "ImmunizationRecommendation",
        "ImplementationGuide",
        "InsurancePlan",
        "Invoice",
        "Library",
        "Linkage",
        "List",
        "Location",
        "Measure",
        "MeasureReport",
        "Media",
        "Medication",
        "MedicationAdministration",
        "MedicationDispense",
        "MedicationKnowledge",
        "MedicationRequest",
        "MedicationStatement",
        "MedicinalProduct",
        "MedicinalProductAuthorization",
        "MedicinalProductContraindication",
        "MedicinalProductIndication",
        "MedicinalProductIngredient",
        "MedicinalProductInteraction",
        "MedicinalProductManufactured",
        "MedicinalProductPackaged",
        "MedicinalProductPharmaceutical",
        "MedicinalProductUndesirableEffect",
        "MessageDefinition",
        "MessageHeader",
        "MolecularSequence",
        "NamingSystem",
        "NutritionOrder",
        "Observation",
        "ObservationDefinition",
        "OperationDefinition",
        "OperationOutcome",
        "Organization",
        "OrganizationAffiliation",
        "Parameters",
        "Patient",
        "PaymentNotice",
        "PaymentReconciliation",
        "Person",
        "PlanDefinition",
        "Practitioner",
        "PractitionerRole",
        "Procedure",
        "Provenance",
        "Questionnaire",
        "QuestionnaireResponse",
        "RelatedPerson",
        "RequestGroup",
        "ResearchDefinition",
        "ResearchElementDefinition",
        "ResearchStudy",
        "ResearchSubject",
        "RiskAssessment",
        "RiskEvidenceSynthesis",
        "Schedule",
        "SearchParameter",
        "ServiceRequest",
        "Slot",
        "Specimen",
        "SpecimenDefinition",
        "StructureDefinition",
        "StructureMap",
        "Subscription",
        "Substance",
        "SubstanceNucleicAcid",
        "SubstancePolymer",
        "SubstanceProtein",
        "SubstanceReferenceInformation",
        "SubstanceSourceMaterial",
        "SubstanceSpecification",
        "SupplyDelivery",
        "SupplyRequest",
        "Task",
        "TerminologyCapabilities",
        "TestReport",
        "TestScript",
        "ValueSet",
        "VerificationResult",
        "VisionPrescription",
    ]
)
MEDICATION_TYPES = ("MedicationStatement", "MedicationRequest", "MedicationAdministration")
# The source key that reads each resource type.
SOURCE_OF = {
    "Observation": "observation",
    "Condition": "condition",
    "Procedure": "procedure",
    **dict.fromkeys(MEDICATION_TYPES, "medication"),
}
SYSTEMS = {str(system.uri): str(system) for system in CodeSystem}
UCUM = "http://unitsofmeasure.org"
PREGNANCY_STATUS = "loinc:82810-3"
PREGNANCY_VALUES = (
    ("true", CodeSet(frozenset({"snomed:77386006"}))),  # pregnant
    ("false", CodeSet(frozenset({"snomed:60001007"}))),  # not pregnant
)
# Statuses whose resource is used; `entered-in-error` is reported, the others only counted.
USED_STATUS = {
    "Observation": frozenset({"final", "amended", "corrected"}),
    "Procedure": frozenset({"completed"}),
    "MedicationStatement": frozenset({"active", "completed", "intended", "stopped", "on-hold"}),
    "MedicationRequest": frozenset({"active", "completed", "stopped", "on-hold"}),
    "MedicationAdministration": frozenset({"completed", "in-progress"}),
}
# Condition.clinicalStatus: active on the day it was written, or over.
ACTIVE_CLINICAL = frozenset({"active", "recurrence", "relapse"})
INACTIVE_CLINICAL = frozenset({"inactive", "remission", "resolved"})
UNCERTAIN_VERIFICATION = frozenset({"unconfirmed", "provisional", "differential"})
EXCLUDED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
# A FHIR date or dateTime (an instant is a dateTime with seconds and an offset). FHIR
# wants seconds and an offset with any time; both are let pass (the day written does
# not depend on them), a time or an offset out of range is not.
_DATE = re.compile(
    r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2})"
    r"(?:T(?:[01][0-9]|2[0-3]):[0-5][0-9](?::(?:[0-5][0-9]|60)(?:\.[0-9]+)?)?"
    r"(?:Z|[+-](?:(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00))?)?)?)?"
)

# An entry: (patient, element, source, date, value, unit, low, high, code, end, note).
# element "" marks the Patient resource itself; None a problem of the patient as a whole.
# note: None, UNCERTAIN, or a problem that makes the entry unusable.
Entry = tuple[
    str, str | None, str, str | None, Any, str | None, Any, Any, str | None, str | None, str | None
]
UNCERTAIN = "uncertain"


class Reader:
    """Turns FHIR resources (parsed JSON) into entries for the elements a section binds.

    `as_of` is the reference date, which `clinical: active` needs (a condition
    abated after it was still active on it). `medications` holds the codes of
    the Medication resources read so far (`add_medication`), by reference.
    """

    def __init__(self, section: Section, as_of: datetime.date | None = None) -> None:
        self.section = section
        self.as_of = as_of
        # For each source key: exact code -> element names, and (prefix, name) pairs.
        self.exact: dict[str, dict[str, list[str]]] = {}
        self.prefixes: dict[str, list[tuple[str, str]]] = {}
        # For each source key: (system URI, code as a file writes it) -> [(name, code)].
        self.written: dict[str, dict[tuple[str, str], list[tuple[str, str]]]] = {}
        self.patient_fields: list[tuple[str, str]] = []
        self.reads_dose = {name: e.read == "dose" for name, e in section.elements.items()}
        self.active_only = frozenset(
            name
            for name, e in section.elements.items()
            if e.source == "condition" and e.option("clinical", "any") == "active"
        )
        # Histories of codes carry a diagnosis's end: one resolved on an unknown day
        # cannot be placed in time there (see `_condition`).
        self.code_histories = frozenset(
            name
            for name, e in section.elements.items()
            if e.source == "condition" and e.type.kind == "history"
        )
        self.medications: dict[str, tuple[list[str], bool]] = {}
        for name, element in section.elements.items():
            source = element.source
            if source == "reference":
                continue
            if source == "patient":
                self.patient_fields.append((name, element.field or ""))
                continue
            codes = element.codes
            if source == "pregnancy":
                source, codes = "observation", CodeSet(frozenset({PREGNANCY_STATUS}))
            table = self.exact.setdefault(source, {})
            written = self.written.setdefault(source, {})
            for code in codes.codes:
                table.setdefault(code, []).append(name)
                system = code.partition(":")[0]
                uri = CodeSystem(system).uri
                for form in _forms(code):
                    written.setdefault((uri, form), []).append((name, code))
            self.prefixes.setdefault(source, []).extend((p, name) for p in codes.prefixes)
        self.prefixed = frozenset(source for source, pairs in self.prefixes.items() if pairs)
        self.any_medication = [
            (name, "") for name, e in section.elements.items() if e.source == "medication"
        ]
        self.types = frozenset(
            {"Patient"}
            | {t for t, source in SOURCE_OF.items() if source in self.exact}
            | ({"Medication"} if "medication" in self.exact else set())
        )

    def wanted(self, kind: str) -> tuple[frozenset[bytes], tuple[bytes, ...]]:
        """The codes and code prefixes, as a file writes them, that a resource of `kind` may feed.

        A line holding none of them feeds no element.
        """
        source = SOURCE_OF.get(kind)
        codes = self.exact.get(source, {}) if source is not None else {}
        prefixes = self.prefixes.get(source, []) if source is not None else []
        # ICD-10-CM both with its dot, as FHIR writes it, and without, as some exports do.
        return (
            frozenset(form.encode() for code in codes for form in _forms(code)),
            tuple(sorted({form.encode() for p, _ in prefixes for form in _forms(p)})),
        )

    def elements_for(self, source: str, code: str) -> list[str]:
        names = list(self.exact.get(source, {}).get(code, ()))
        for prefix, name in self.prefixes.get(source, ()):
            if code.startswith(prefix) and name not in names:
                names.append(name)
        return names

    def add_medication(
        self,
        resource: Any,
        full_url: str | None = None,
        into: dict[str, tuple[list[str], bool]] | None = None,
    ) -> str | None:
        """Keep a Medication's codes for the resources that name it (in `into`, else for the
        whole run); a problem, or None."""
        if not isinstance(resource, dict) or not isinstance(rid := resource.get("id"), str):
            return "a Medication without an id; not read"
        if resource.get("status") == "entered-in-error":
            return f"Medication/{_short(rid)}: entered in error; not used"
        table = self.medications if into is None else into
        concept = resource.get("code")
        known = (_codings(concept), _coded(concept))
        table[f"Medication/{rid}"] = known
        if full_url is not None:
            table[full_url] = known
        return None

    def entries(
        self,
        resource: Any,
        patient_of: dict[str, str] | None = None,
        medications: dict[str, tuple[list[str], bool]] | None = None,
    ) -> list[Entry]:
        """The entries one resource gives; never raises on what the resource holds.

        `patient_of` and `medications` resolve a Bundle's own references (its fullUrls).
        """
        if not isinstance(resource, dict):
            return [problem("", "?", "not a JSON object")]
        kind = resource.get("resourceType")
        rid = resource.get("id")
        if kind == "Patient" and isinstance(rid, str):
            return self._patient(resource, f"Patient/{rid}")
        subject = _subject(resource, patient_of) or ""
        if not isinstance(kind, str) or kind not in R4_TYPES:
            shown = _short(kind) if isinstance(kind, str) else "(none)"
            where = f"{shown}/{_short(rid) if isinstance(rid, str) else '?'}"
            return [problem(subject, where, f"unknown resource type '{shown}'; not read")]
        if not isinstance(rid, str):
            return [problem(subject, f"{kind}/?", "a resource without an id; not read")]
        source = f"{kind}/{rid}"
        reader = SOURCE_OF.get(kind)
        if reader is None or reader not in self.exact:
            return []
        unresolved: str | None = None
        coded: bool | None
        if reader == "medication":
            codes, coded, unresolved = self._medication_codes(resource, medications)
            # A medication whose codes cannot be found could be any of them.
            matched = self._match(reader, codes) if unresolved is None else self.any_medication
        else:
            matched = self._matches(reader, resource.get("code"))
            coded = None  # found out only when needed
        components: list[tuple[str, str, dict[str, Any]]] = []
        if kind == "Observation" and isinstance(parts := resource.get("component"), list):
            for part in parts:
                if isinstance(part, dict):
                    components.extend(
                        (name, code, part) for name, code in self._matches(reader, part.get("code"))
                    )
        if not matched and not components:
            if coded or (coded is None and _coded(resource.get("code"))):
                return []  # coded, but not with a code the binding reads
            return [problem(subject, source, "no code; not read")]
        if not subject:
            return [problem("", source, "names no patient; not read")]
        status = resource.get("status")
        if status == "entered-in-error" or (
            kind == "Condition" and _verification(resource) == "entered-in-error"
        ):
            return [problem(subject, source, "entered in error; not used")]
        used = USED_STATUS.get(kind)
        if used is not None and status not in used:
            shown = _short(status)
            allowed = ", ".join(sorted(used))
            return [problem(subject, source, f"status '{shown}' (only {allowed} are used)")]
        if kind == "Observation":
            return self._observation(resource, subject, source, matched, components)
        if kind == "Condition":
            return self._condition(resource, subject, source, matched)
        if kind == "Procedure":
            date, note = _date_of(resource, ("performedDateTime", "performedPeriod"))
            return [
                (subject, name, source, date, None, None, None, None, code, None, note)
                for name, code in matched
            ]
        return self._medication(resource, kind, subject, source, matched, unresolved)

    def _matches(self, reader: str, concept: Any) -> list[tuple[str, str]]:
        """(element, code) for each element a CodeableConcept's codes feed, once each."""
        codings = concept.get("coding") if isinstance(concept, dict) else None
        if not isinstance(codings, list):
            return []
        if reader in self.prefixed:
            return self._match(reader, _codings(concept))
        written = self.written.get(reader, {})
        found: list[tuple[str, str]] = []
        for coding in codings:
            if not isinstance(coding, dict):
                continue
            try:
                key: Any = (coding.get("system"), coding.get("code"))
                hits = written.get(key)
            except TypeError:  # a system or code that is not text (a list, an object)
                continue
            for name, code in hits or ():
                if not found or all(name != n for n, _ in found):
                    found.append((name, code))
        return found

    def _match(self, reader: str, codes: list[str]) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        for code in codes:
            for name in self.elements_for(reader, code):
                if all(name != n for n, _ in found):
                    found.append((name, code))
        return found

    def _medication_codes(
        self, resource: dict[str, Any], local: dict[str, tuple[list[str], bool]] | None
    ) -> tuple[list[str], bool, str | None]:
        """A medication resource's known codes, its own or its Medication's, and whether it
        has any coding at all; or, for a reference that names nothing, why not."""
        if "medicationCodeableConcept" in resource:
            concept = resource["medicationCodeableConcept"]
            return _codings(concept), _coded(concept), None
        reference = _get(resource, "medicationReference", "reference")
        if not isinstance(reference, str):
            return [], False, None
        if reference.startswith("#"):
            contained = resource.get("contained")
            for item in contained if isinstance(contained, list) else ():
                if (
                    isinstance(item, dict)
                    and item.get("resourceType") == "Medication"
                    and item.get("id") == reference[1:]
                ):
                    return _codings(item.get("code")), _coded(item.get("code")), None
            why = f"its medicationReference '{_short(reference)}' names no contained Medication"
            return [], False, why
        for table in (local, self.medications):
            if table is None:
                continue
            known = table.get(reference)
            if known is None and "Medication/" in reference:
                known = table.get("Medication/" + reference.rpartition("Medication/")[2])
            if known is not None:
                return known[0], known[1], None
        why = f"its medicationReference '{_short(reference)}' names no Medication in the export"
        return [], False, why

    def _patient(self, resource: dict[str, Any], source: str) -> list[Entry]:
        patient = str(resource["id"])
        out: list[Entry] = [_noted(patient, "", source, None)]
        deceased = resource.get("deceasedDateTime") or resource.get("deceasedBoolean")
        if deceased:
            when = f" ({_short(deceased)})" if isinstance(deceased, str) else ""
            out.append(problem(patient, source, f"the patient is deceased{when}"))
        for name, field in self.patient_fields:
            value = resource.get(field)
            if value is None:
                continue
            if not isinstance(value, str):
                out.append(
                    _noted(patient, name, source, f"Patient.{field} is not text: {_short(value)}")
                )
                continue
            note = None
            if field == "birthDate" and _full_or_partial(value) is None:
                note = f"Patient.birthDate '{_short(value)}' is not a date"
            date = value if field == "birthDate" else None
            out.append(_noted(patient, name, source, note, date, value))
        return out

    def _observation(
        self,
        resource: dict[str, Any],
        patient: str,
        source: str,
        matched: list[tuple[str, str]],
        components: list[tuple[str, str, dict[str, Any]]],
    ) -> list[Entry]:
        date, date_problem = _date_of(
            resource, ("effectiveDateTime", "effectivePeriod", "effectiveInstant")
        )
        out: list[Entry] = []
        notes: list[str] = []
        if matched:
            value, unit, low, high, code, unusable = _observed(resource, source, notes)
            out.extend(
                (patient, name, source, date, value, unit, low, high, code or matched_code,
                 None, date_problem or unusable)
                for name, matched_code in matched
            )  # fmt: skip
        for name, matched_code, part in components:
            if any(name == e[1] for e in out):
                continue  # the observation's own code feeds it already
            value, unit, low, high, code, unusable = _observed(part, source, notes, matched_code)
            out.append(
                (patient, name, source, date, value, unit, low, high, code or matched_code,
                 None, date_problem or unusable)
            )  # fmt: skip
        # A reference range that cannot be used is left out and said; the value stands.
        out.extend(problem(patient, source, note) for note in dict.fromkeys(notes))
        return out

    def _condition(
        self, resource: dict[str, Any], patient: str, source: str, matched: list[tuple[str, str]]
    ) -> list[Entry]:
        verification = _verification(resource)
        if verification in EXCLUDED_VERIFICATION:
            return [_noted(patient, None, source, f"{source} is {verification}; not used")]
        date, problem = _date_of(resource, ("onsetDateTime", "onsetPeriod", "recordedDate"))
        note = problem or (UNCERTAIN if verification in UNCERTAIN_VERIFICATION else None)
        abated, abated_problem = _abatement(resource)
        out: list[Entry] = []
        for name, code in matched:
            entry_note = note
            if name in self.active_only:
                active, why = self._active(resource, abated, abated_problem)
                if active is False:
                    continue  # a matching code, but over by the reference date
                if why is not None:
                    entry_note = note if note not in (None, UNCERTAIN) else why
                elif active is None and entry_note is None:
                    entry_note = UNCERTAIN
            elif name in self.code_histories and abated is None and entry_note is None:
                coding = _first(_get(resource, "clinicalStatus", "coding"))
                if isinstance(coding, dict) and coding.get("code") in INACTIVE_CLINICAL:
                    # Without its end, a history would hold it as still present.
                    entry_note = f"{source} is {coding.get('code')} with no abatement date"
            out.append(
                (patient, name, source, date, None, None, None, None, code, abated, entry_note)
            )
        return out

    def _active(
        self, resource: dict[str, Any], abated: str | None, abated_problem: str | None
    ) -> tuple[bool | None, str | None]:
        """Whether a condition was active on the reference date: yes, no, or None (not said).

        An abatement date decides: on or before the reference date the condition
        was over, after it still active. Without one, the clinical status does.
        """
        if abated_problem is not None:
            return None, abated_problem
        if abated is not None and self.as_of is not None:
            return abated > self.as_of.isoformat(), None
        coding = _first(_get(resource, "clinicalStatus", "coding"))
        status = coding.get("code") if isinstance(coding, dict) else None
        if status in ACTIVE_CLINICAL:
            return True, None
        if status in INACTIVE_CLINICAL:
            return False, None
        return None, None

    def _medication(
        self,
        resource: dict[str, Any],
        kind: str,
        patient: str,
        source: str,
        matched: list[tuple[str, str]],
        unresolved: str | None,
    ) -> list[Entry]:
        if kind == "MedicationRequest":
            dosage = _first(resource.get("dosageInstruction"))
            bounds = _get(dosage, "timing", "repeat", "boundsPeriod")
            period = bounds if isinstance(bounds, dict) else {"start": resource.get("authoredOn")}
        else:
            dosage = (
                _first(resource.get("dosage"))
                if kind == "MedicationStatement"
                else resource.get("dosage")
            )
            period = resource.get("effectivePeriod") or {"start": resource.get("effectiveDateTime")}
        start, problem = _date_text(
            period.get("start") if isinstance(period, dict) else None, "start"
        )
        end: str | None = None
        if isinstance(period, dict) and period.get("end") is not None:
            end, end_problem = _date_text(period.get("end"), "end")
            problem = problem or end_problem
        if (
            end is None
            and not problem
            and (
                kind == "MedicationAdministration"
                or resource.get("status") in ("completed", "stopped")
            )
        ):
            end = start  # given that day, or over with no end date said: taken as that day
        dose, unit, dose_problem = _daily_dose(dosage, kind)
        return [
            (
                patient,
                name,
                source,
                start,
                dose,
                unit,
                None,
                None,
                code,
                end,
                unresolved or problem or (dose_problem if self.reads_dose.get(name) else None),
            )
            for name, code in matched
        ]


def problem(patient: str, source: str, text: str) -> Entry:
    """An entry that feeds no element: a problem of the patient (or, without one, of the file)."""
    return _noted(patient, None, source, f"{source}: {text}")


def _noted(
    patient: str,
    element: str | None,
    source: str,
    note: str | None,
    date: str | None = None,
    value: Any = None,
) -> Entry:
    """An entry holding at most a date and a value, and its note."""
    return (patient, element, source, date, value, None, None, None, None, None, note)


def _written(code: str) -> str:
    """A critlang code as a FHIR file writes it: ICD-10-CM gets its dot back."""
    system, _, bare = code.partition(":")
    if system == CodeSystem.ICD10CM and len(bare) > 3:
        return f"{bare[:3]}.{bare[3:]}"
    return bare


def _forms(code: str) -> set[str]:
    """The ways a file may write a critlang code: as is, and ICD-10-CM with its dot."""
    return {code.partition(":")[2], _written(code)}


def _short(value: Any) -> str:
    from critlang.records import printable, shorten

    return printable(shorten(str(value), 40))


def _get(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else None


def _codings(concept: Any) -> list[str]:
    """The codes of a CodeableConcept in systems critlang knows, as `system:code`."""
    codings = concept.get("coding") if isinstance(concept, dict) else None
    if not isinstance(codings, list):
        return []
    found = []
    for coding in codings:
        if not isinstance(coding, dict):
            continue
        system = SYSTEMS.get(coding.get("system"))  # type: ignore[arg-type]
        code = coding.get("code")
        if system is not None and isinstance(code, str) and code:
            found.append(normal_code(system, code))
    return found


def _coded(concept: Any) -> bool:
    """Whether a CodeableConcept has any coding with a code, in whatever system."""
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return isinstance(codings, list) and any(
        isinstance(c, dict) and isinstance(c.get("code"), str) and c.get("code") for c in codings
    )


def _subject(resource: dict[str, Any], patient_of: dict[str, str] | None) -> str | None:
    holder = resource.get("subject") or resource.get("patient")
    reference = holder.get("reference") if isinstance(holder, dict) else None
    if not isinstance(reference, str):
        return None
    if patient_of is not None and reference in patient_of:
        return patient_of[reference]
    kind, slash, rid = reference.rpartition("/")
    if slash and kind.endswith("Patient") and rid:
        return rid
    if reference.startswith("urn:uuid:"):
        return reference[len("urn:uuid:") :]
    return None


def _verification(resource: dict[str, Any]) -> str | None:
    coding = _first(_get(resource, "verificationStatus", "coding"))
    code = coding.get("code") if isinstance(coding, dict) else None
    return code if isinstance(code, str) else None


def _full_or_partial(text: str) -> tuple[str, str, str] | None:
    match = _DATE.fullmatch(text)
    if match is None:
        return None
    year, month, day = match.groups()
    return (year, month, day) if _real_day(year, month or "01", day or "01") else None


@functools.lru_cache(maxsize=4096)
def _real_day(year: str, month: str, day: str) -> bool:
    try:
        datetime.date(int(year), int(month), int(day))
    except ValueError:
        return False
    return True


def _date_text(value: Any, what: str) -> tuple[str | None, str | None]:
    """(YYYY-MM-DD, None) for a full date or dateTime (its local day); else (None, problem)."""
    if value is None:
        return None, f"no {what} date"
    if isinstance(value, str):
        return _day_of(value, what)
    return None, f"the {what} date '{_short(value)}' cannot be read"


@functools.lru_cache(maxsize=8192)
def _day_of(value: str, what: str) -> tuple[str | None, str | None]:
    if (parts := _full_or_partial(value)) is None:
        return None, f"the {what} date '{_short(value)}' cannot be read"
    year, month, day = parts
    if month is None or day is None:
        return None, f"the {what} date '{_short(value)}' is not a full date"
    return f"{year}-{month}-{day}", None


def _date_of(resource: dict[str, Any], fields: tuple[str, ...]) -> tuple[str | None, str | None]:
    for field in fields:
        value = resource.get(field)
        if value is None:
            continue
        if field.endswith("Period"):
            value = value.get("start") if isinstance(value, dict) else value
        return _date_text(
            value,
            "effective"
            if field.startswith("effective")
            else field.removesuffix("DateTime").removesuffix("Period").removesuffix("Date"),
        )
    return None, "no date"


def _quantity(quantity: Any, what: str) -> tuple[Any, str | None, str | None]:
    """(value, UCUM code, problem) of a Quantity."""
    if not isinstance(quantity, dict):
        return None, None, f"{what} is not a quantity"
    value = quantity.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None, None, f"{what} has no number"
    code = quantity.get("code")
    system = quantity.get("system")
    if not isinstance(code, str) or (system is not None and system != UCUM):
        shown = quantity.get("unit") if isinstance(quantity.get("unit"), str) else code
        return None, None, f"{what} {value} has no UCUM unit (unit '{_short(shown)}')"
    if not units.is_valid(code):
        return None, None, f"{what} {value} has the unit '{_short(code)}', not a UCUM code"
    return str(value), code, None


def _observed(
    holder: dict[str, Any], source: str, notes: list[str], part: str = ""
) -> tuple[Any, str | None, Any, Any, str | None, str | None]:
    """(value, unit, low, high, coded value, problem) of an Observation or one of its components.

    A reference range that cannot be read goes to `notes`: it does not make the value unusable.
    """
    value: Any = None
    unit = low = high = code = problem = None
    if "valueQuantity" in holder:
        value, unit, problem = _quantity(
            holder["valueQuantity"], f"component {part}'s value" if part else "the value"
        )
        ranges = holder.get("referenceRange")
        if unit is not None and isinstance(ranges, list) and ranges:
            low, high, range_problem = _range(ranges[0], unit)
            if range_problem is not None:
                notes.append(f"{range_problem}; the range is not used")
    elif "valueCodeableConcept" in holder:
        codes = _codings(holder["valueCodeableConcept"])
        code = codes[0] if codes else None
        value = codes
        if not codes:
            problem = f"{source} has a coded value{f' in component {part}' if part else ''} without a known code"
    elif "valueBoolean" in holder:
        value = holder["valueBoolean"] if isinstance(holder["valueBoolean"], bool) else None
        value = None if value is None else ("true" if value else "false")
    elif "dataAbsentReason" in holder:
        problem = f"{source} has no value{f' in component {part}' if part else ''} (data absent)"
    return value, unit, low, high, code, problem


def _range(limits: Any, unit: str) -> tuple[str | None, str | None, str | None]:
    """(low, high, problem) of a reference range, converted to the value's unit.

    A limit in another unit of the same kind is converted exactly; one that
    is not UCUM, or of another kind, is a problem (the range is not used).
    """
    if not isinstance(limits, dict):
        return None, None, "the reference range is not an object"
    found: list[str | None] = []
    for side in ("low", "high"):
        quantity = limits.get(side)
        if quantity is None:
            found.append(None)
            continue
        value, code, problem = _quantity(quantity, f"the reference range's {side}")
        if problem is not None or value is None or code is None:
            return None, None, problem or f"the reference range's {side} cannot be read"
        if code != unit:
            try:
                scale = units.factor(code, unit)
                with decimal.localcontext() as exact:
                    exact.traps[decimal.Inexact] = True
                    value = str(Decimal(value) * scale.numerator / scale.denominator)
            except (units.UnitError, decimal.Inexact):
                why = f"the reference range's {side} is in '{_short(code)}', which does not "
                return None, None, why + f"convert exactly to the value's '{_short(unit)}'"
        found.append(value)
    return found[0], found[1], None


def _abatement(resource: dict[str, Any]) -> tuple[str | None, str | None]:
    """A condition's abatement day (dateTime, or a period's end else start), or a problem."""
    value = resource.get("abatementDateTime")
    if value is None and isinstance(period := resource.get("abatementPeriod"), dict):
        value = period.get("end") or period.get("start")
    if value is None:
        return None, None
    return _date_text(value, "abatement")


def _daily_dose(dosage: Any, kind: str) -> tuple[str | None, str | None, str | None]:
    """The daily dose of a Dosage: dose times frequency per period; None when not said."""
    if not isinstance(dosage, dict):
        return None, None, None
    quantity = _get(_first(dosage.get("doseAndRate")), "doseQuantity")
    if kind == "MedicationAdministration":
        quantity = dosage.get("dose")
    if quantity is None:
        return None, None, None
    value, unit, problem = _quantity(quantity, "the dose")
    if problem is not None or value is None or unit is None:
        return None, None, problem
    repeat = _get(dosage, "timing", "repeat")
    if not isinstance(repeat, dict):
        return value, unit, None
    frequency, period, period_unit = (
        repeat.get("frequency", 1),
        repeat.get("period"),
        repeat.get("periodUnit"),
    )
    if (
        not isinstance(period, int | float | Decimal)
        or not isinstance(frequency, int)
        or period_unit not in ("h", "d", "wk", "mo")
    ):
        return value, unit, None
    per = Decimal(value) * frequency / Decimal(str(period))
    return str(per), f"{unit}/{period_unit}", None
