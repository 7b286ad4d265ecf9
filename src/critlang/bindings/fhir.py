"""The FHIR R4 section of a binding: which resources hold each data element.

Source keys (see docs/fhir-omop.md):

- `patient: birthDate | gender`: the Patient resource; a quantity element bound
  to `birthDate` reads the age in whole years at the reference date;
- `observation: CODES`: Observations by code (LOINC), status final, amended
  or corrected only; `read: value` (valueQuantity, valueCodeableConcept
  through `map`, valueBoolean), `date`, or `time since`;
- `condition: CODES`: Conditions (SNOMED CT, ICD-10-CM), not refuted, not
  entered in error; `read: value` (present), `date` (onset) or `time since`;
- `medication: CODES`: MedicationStatement, MedicationRequest and
  MedicationAdministration (RxNorm, ATC); `read: value`, `dose`, `date`
  (start) or `time since` (the start);
- `procedure: CODES`: Procedures (SNOMED CT), status completed;
- `pregnancy: status`: the pregnancy status observation (LOINC 82810-3) as
  a yes/no value (pregnant, not pregnant).

CODES is a list of `system:code` or, for a set or one-of element, a mapping
from each value to the codes that mean it.
"""

from __future__ import annotations

import yaml

from critlang.bindings.binding import Context, ElementBinding, Section, SourceKind

SOURCES = {
    "patient": SourceKind(codes=False, fields=("birthDate", "gender")),
    "observation": SourceKind(reads=("value", "date", "time since")),
    "condition": SourceKind(reads=("value", "date", "time since")),
    "medication": SourceKind(reads=("value", "dose", "date", "time since")),
    "procedure": SourceKind(reads=("value", "date", "time since")),
    "pregnancy": SourceKind(codes=False, fields=("status",)),
}

# What a `read:` gives, by the kinds of element it can fill.
_READ_KINDS = {
    "date": ("date",),
    "time since": ("quantity",),
    "dose": ("quantity", "number"),
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


_GENDERS = frozenset({"female", "male", "other", "unknown"})
_TIME_UNITS = frozenset({"a", "mo", "wk", "d", "h", "min", "s"})
