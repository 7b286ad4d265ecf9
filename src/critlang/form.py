"""The live screening form: the worksheet's questions, answered in a browser.

One self-contained HTML page per protocol. As the coordinator types, the
page computes every criterion, the status and the data still missing, with
the JavaScript engine (`engines/javascript.py`) on its exact-decimal runtime:
no server and no network. What was entered can be saved as a JSON record
that `critlang eval` reads.

The page's words come from the renderer (labels, the precise reading of each
criterion); its logic only from the core IR; every text a protocol holds is
escaped by the template (autoescape) or written as an escaped JSON literal.
"""

from __future__ import annotations

import attrs
import markupsafe

from critlang import codes, render
from critlang import syntax as s
from critlang.engines import javascript
from critlang.evaluate import Protocol
from critlang.pages import page
from critlang.vocab import CodeSystem


@attrs.frozen
class Field:
    """One question of the form: a data element and how it is answered."""

    name: str
    label: str
    control: str  # yes-no | number | whole | choice | choices | date | code | history
    unit: str
    values: tuple[tuple[str, str], ...]  # (value, words) for choice and choices
    low: str | None
    high: str | None
    used_by: tuple[str, ...]
    entry: str = ""  # a history's entries: measurement | code | medication (vocab.EntryKind)
    systems: tuple[str, ...] = ()  # for codes: the code systems offered, the likeliest first
    dose: bool = False  # a medication history with a dose unit: its entries have a dose


def fields(protocol: Protocol) -> tuple[Field, ...]:
    document = render.document(protocol.checked)
    views = {view.name: view for view in document.elements}
    out = []
    for element in protocol.checked.protocol.elements:
        view = views[element.name.text]
        values: tuple[tuple[str, str], ...] = ()
        entry, dose = "", False
        match element.type:
            case s.BooleanType() | s.AttestationType():
                control = "yes-no"
            case s.EnumType(values=names) | s.OrdinalType(values=names):
                control, values = "choice", tuple((n.text, n.text.replace("_", " ")) for n in names)
            case s.SetType(values=names):
                control, values = (
                    "choices",
                    tuple((n.text, n.text.replace("_", " ")) for n in names),
                )
            case s.DateType():
                control = "date"  # a full date, or a partial one: a year and month, a year
            case s.IntegerType():
                control = "whole"  # a number with nothing after the point
            case s.CodeType():
                control = "code"
            case s.HistoryType(entry=kind, unit=unit):
                control, entry, dose = "history", kind, unit is not None
            case _:
                control = "number"
        limits = element.plausible_range
        out.append(
            Field(
                name=element.name.text,
                label=view.label,
                control=control,
                unit=view.unit_words,
                values=values,
                low=None if limits is None else format(limits[0], "f"),
                high=None if limits is None else format(limits[1], "f"),
                used_by=view.used_by,
                entry=entry,
                dose=dose,
                systems=_systems(protocol, entry) if control in ("code", "history") else (),
            )
        )
    return tuple(out)


_DRUG_SYSTEMS = frozenset({CodeSystem.ATC.value, CodeSystem.RXNORM.value})


def _systems(protocol: Protocol, entry: str) -> tuple[str, ...]:
    """The code systems a coordinator chooses from, the likeliest first: those of the
    protocol's code lists (drug systems first for medications, the others for
    diagnoses), then the rest."""
    used = [c.system.text for c in protocol.checked.protocol.code_lists]
    drugs = entry == "medication"
    likely = [system for system in used if (system in _DRUG_SYSTEMS) == drugs]
    return tuple(dict.fromkeys([*likely, *used, *(system.value for system in CodeSystem)]))


def render_form(protocol: Protocol) -> str:
    """The live form of a compiled protocol, as one HTML page."""
    document = render.document(protocol.checked)
    script = javascript.runtime() + "\n" + javascript.compile_program(protocol.lowered.program)
    limits = {
        f.name: [f.low, f.high]
        for f in fields(protocol)
        if f.low is not None and f.high is not None
    }
    kinds = {f.name: f.control for f in fields(protocol)}
    declared = {e.name.text: e.type for e in protocol.checked.protocol.elements}
    histories = {
        name: {"entry": kind.entry, "unit": kind.unit}
        for name, kind in declared.items()
        if isinstance(kind, s.HistoryType)
    }
    # The form of each system's codes, checked as record intake does (codes.py).
    formats = {system.value: pattern.pattern for system, pattern in codes.FORMATS.items()}
    as_of = protocol.checked.protocol.header.as_of
    return page(
        "form.html.j2",
        document=document,
        fields=fields(protocol),
        criteria=[*document.inclusions, *document.exclusions],
        parts={
            c.id: [(p.name, p.title) for p in c.parts] for c in protocol.lowered.program.criteria
        },
        engine=markupsafe.Markup(script),  # JSON literals in it are escaped for <script>
        setup=markupsafe.Markup(
            f"const FIELDS = {javascript.literal(kinds)};\n"
            f"const LIMITS = {javascript.literal(limits)};\n"
            f"const HISTORIES = {javascript.literal(histories)};\n"
            f"const CODE_FORMATS = {javascript.literal(formats)};\n"
            f"const AS_OF = {javascript.literal(None if as_of is None else as_of.text)};\n"
        ),
    )
