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
