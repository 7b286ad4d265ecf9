"""Shared vocabulary, in one home: outcomes, criterion kinds and truth words.

Every stage compares against these names instead of string literals. They are
`StrEnum`s, so a value still prints, serialises and compares as its word
("eligible" == Outcome.ELIGIBLE), which keeps results and files readable.
"""

from __future__ import annotations

import enum


class Outcome(enum.StrEnum):
    """A record's screening status."""

    ELIGIBLE = "eligible"
    INELIGIBLE = "ineligible"
    UNDETERMINED = "undetermined"
    ERROR = "error"  # the record could not be read; its message says why


class Kind(enum.StrEnum):
    """What a criterion does to the status when it is met."""

    INCLUSION = "inclusion"
    EXCLUSION = "exclusion"

    @property
    def neutral(self) -> bool:
        """The value that lets a patient through: met for an inclusion, not met for an exclusion."""
        return self is Kind.INCLUSION


class Truth(enum.StrEnum):
    """The words for a criterion's or part's value in results and documents."""

    TRUE = "true"
    FALSE = "false"
    UNKNOWN = "unknown"
    NOT_APPLICABLE = "not applicable"

    @classmethod
    def of(cls, value: bool | None, applicable: bool | None = True) -> Truth:
        if applicable is False:
            return cls.NOT_APPLICABLE
        if value is None:
            return cls.UNKNOWN
        return cls.TRUE if value else cls.FALSE


OUTCOMES = tuple(o.value for o in Outcome if o is not Outcome.ERROR)


class EntryKind(enum.StrEnum):
    """What the entries of a history hold (`history of quantity`, `of codes`, `of medications`)."""

    MEASUREMENT = "measurement"  # date, value (in the declared unit), optional low and high
    CODE = "code"  # date, code, optional end (a diagnosis, procedure or finding; its resolution)
    MEDICATION = "medication"  # start, end (absent while ongoing), code, optional dose


# How the Python engine and record intake hold one history entry: a tuple of
# these fields, in this order (records.py says what each holds). A
# medication, or a code entry, is ongoing when its `end` is None (for a code
# entry of an incomplete history lowering reads that as unknown).
ENTRY_LAYOUT = {
    EntryKind.MEASUREMENT: ("date", "value", "low", "high", "source"),
    EntryKind.CODE: ("date", "code", "end", "source"),
    EntryKind.MEDICATION: ("start", "end", "code", "dose", "source"),
}


class CalendarUnit(enum.StrEnum):
    """Calendar units of date arithmetic (`6 months`), distinct from UCUM's 'mo' and 'a'."""

    YEAR = "year"
    MONTH = "month"
    WEEK = "week"
    DAY = "day"


class CodeSystem(enum.StrEnum):
    """The code systems a code list or a coded value may use, by their name in a .crit file.

    A coded value is written `system:code` everywhere (records, IR, engines):
    `icd10cm:J84.10`, `snomed:233703007`. ICD-10-CM codes are compared without
    their dot (`J84.10` and `J8410` are one code).
    """

    SNOMED = "snomed"
    ICD10CM = "icd10cm"
    LOINC = "loinc"
    RXNORM = "rxnorm"
    ATC = "atc"

    @property
    def uri(self) -> str:
        """The system's canonical URI, as FHIR writes it."""
        return CODE_SYSTEM_URIS[self]


CODE_SYSTEM_URIS = {
    CodeSystem.SNOMED: "http://snomed.info/sct",
    CodeSystem.ICD10CM: "http://hl7.org/fhir/sid/icd-10-cm",
    CodeSystem.LOINC: "http://loinc.org",
    CodeSystem.RXNORM: "http://www.nlm.nih.gov/research/umls/rxnorm",
    CodeSystem.ATC: "http://www.whocc.no/atc",
}
