"""Bindings: where each data element of a protocol comes from in a site's health records.

A binding file (`NAME.bind.yaml`) names its protocol and, under one section
per source (`fhir:`, `omop:`), maps every data element to the resources or
tables that hold it and the rule that picks a value. It is checked like a
protocol (`file:line:col`, a code and a hint) by `load_binding`; a source
section turns that source's data into ordinary critlang records, so the
engines never know where a record came from. See docs/fhir-omop.md.
"""

from __future__ import annotations

from critlang.bindings.binding import (
    Binding,
    CodeSet,
    Context,
    ElementBinding,
    Rule,
    Section,
    check_binding,
    load_binding,
)

__all__ = [
    "Binding",
    "CodeSet",
    "Context",
    "ElementBinding",
    "Rule",
    "Section",
    "check_binding",
    "load_binding",
]
