"""Codes of the clinical code systems: their formats, and one spelling for each code.

A coded value is written `system:code` everywhere after intake (records, IR,
engines): `icd10cm:J8410`, `snomed:233703007`. ICD-10-CM codes lose their dot
(`J84.10` and `J8410` are one code); every other system keeps its code as
written. The checker validates the codes of code lists with `code_problem`,
record intake those of records with `coded_value`.
"""

from __future__ import annotations

import re

from critlang.vocab import CODE_SYSTEM_URIS, CodeSystem

# The shape of a code in each system (after an ICD-10-CM code has lost its dot).
FORMATS = {
    CodeSystem.SNOMED: re.compile(r"[1-9][0-9]{5,17}"),
    CodeSystem.ICD10CM: re.compile(r"[A-Z][0-9][0-9A-Z][0-9A-Z]{0,4}"),
    CodeSystem.LOINC: re.compile(r"[0-9]{1,7}-[0-9]"),
    CodeSystem.RXNORM: re.compile(r"[0-9]{1,9}"),
    CodeSystem.ATC: re.compile(r"[A-Z](?:[0-9]{2}(?:[A-Z](?:[A-Z](?:[0-9]{2})?)?)?)?"),
}
# The start of a code, for a prefix pattern ("J84.*").
PREFIXES = {
    CodeSystem.SNOMED: re.compile(r"[1-9][0-9]*"),
    CodeSystem.ICD10CM: re.compile(r"[A-Z][0-9A-Z]*"),
    CodeSystem.LOINC: re.compile(r"[0-9]+-?"),
    CodeSystem.RXNORM: re.compile(r"[0-9]+"),
    CodeSystem.ATC: re.compile(r"[A-Z][0-9A-Z]*"),
}
EXAMPLES = {
    CodeSystem.SNOMED: "233703007",
    CodeSystem.ICD10CM: "J84.10",
    CodeSystem.LOINC: "2160-0",
    CodeSystem.RXNORM: "68149",
    CodeSystem.ATC: "L04AA06",
}
_BY_URI = {uri: system for system, uri in CODE_SYSTEM_URIS.items()}


def system_named(name: str) -> CodeSystem | None:
    """The code system a name or a FHIR system URI stands for; None if unknown."""
    if name in _BY_URI:
        return _BY_URI[name]
    try:
        return CodeSystem(name)
    except ValueError:
        return None


def bare(system: CodeSystem, code: str) -> str:
    """A code as compared: ICD-10-CM without its dot, every other as written."""
    return code.replace(".", "") if system is CodeSystem.ICD10CM else code


def code_problem(system: CodeSystem, code: str) -> str | None:
    """What is wrong with a code of `system` (None when it is well formed)."""
    if system is CodeSystem.ICD10CM and code.count(".") > 1:
        return f"'{code}' has more than one dot"
    if not FORMATS[system].fullmatch(bare(system, code)):
        return f"'{code}' is not a code of {system.value} (one looks like {EXAMPLES[system]})"
    return None


def prefix_problem(system: CodeSystem, prefix: str) -> str | None:
    """What is wrong with the start of a code written before '*'."""
    if not prefix:
        return "a pattern needs the start of a code before '*'"
    if "*" in prefix:
        return "'*' may stand only at the end of a code"
    if not PREFIXES[system].fullmatch(bare(system, prefix)):
        return f"'{prefix}' does not start a code of {system.value} (one looks like {EXAMPLES[system]})"
    return None


def coded_value(value: str, system: str | None = None) -> str:
    """A record's code as `system:code`; raise ValueError with the reason when it is not one.

    `value` is `system:code` (`icd10cm:M34.81`), or a bare code when `system`
    (a system name or its FHIR URI) is given.
    """
    if system is None:
        name, colon, code = value.partition(":")
        if not colon:
            raise ValueError("a code needs its system, as in icd10cm:M34.81 or snomed:233703007")
    else:
        name, code = system, value
    known = system_named(name)
    if known is None:
        names = ", ".join(s.value for s in CodeSystem)
        raise ValueError(f"'{name}' is not a code system critlang knows ({names})")
    code = code.strip()
    problem = code_problem(known, code)
    if problem is not None:
        raise ValueError(problem)
    return f"{known.value}:{bare(known, code)}"
