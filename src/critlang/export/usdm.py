"""CDISC USDM 4.0 (the `usdm` package's model): eligibility criteria and their items.

USDM keeps a criterion's text once per study version
(`StudyVersion.eligibilityCriterionItems`) and the criteria that use it in
each study design (`StudyDesign.eligibilityCriteria`, chained by
`previousId`/`nextId`). The export is those two lists, each object
validated by the package's pydantic model:

- an `EligibilityCriterionItem` per criterion: `text` the registered text,
  `description` the precise reading;
- an `EligibilityCriterion` per criterion: `category` inclusion (NCI
  C25532) or exclusion (C25370), `identifier` the criterion id, `label` its
  title, `description` the precise reading, and as `notes` the plain
  language and the CQL definition that computes it.

Sub-criteria have no place of their own in USDM: they are in the precise
reading of their criterion.
"""

from __future__ import annotations

from typing import Any

from critlang import ir
from critlang.check import Checked
from critlang.export import ExportError, entries

USDM_VERSION = "4.0.0"
_CATEGORY = {
    "inclusion": ("C25532", "Inclusion Criteria"),
    "exclusion": ("C25370", "Exclusion Criteria"),
}
_NCI = "http://www.cdisc.org"
_NCI_VERSION = "2024-09-27"


def document(checked: Checked, program: ir.Program) -> dict[str, Any]:
    """The USDM objects as JSON: items (per study version) and criteria (per design)."""
    models = _models()
    names = {c.id for c in program.criteria}
    items: list[dict[str, Any]] = []
    criteria: list[dict[str, Any]] = []
    chosen = [e for e in entries(checked, program) if e.expression in names]
    for n, entry in enumerate(chosen, start=1):
        code, decode = _CATEGORY[entry.kind]
        notes = [{"id": f"CommentAnnotation_{n}_1", "text": f"CQL definition: {entry.expression}"}]
        if entry.plain:
            notes.append({"id": f"CommentAnnotation_{n}_2", "text": f"Plain: {entry.plain}"})
        items.append(
            {
                "id": f"EligibilityCriterionItem_{n}",
                "name": entry.expression,
                "label": entry.title,
                "description": entry.reading,
                "text": entry.registered or entry.reading,
            }
        )
        criteria.append(
            {
                "id": f"EligibilityCriterion_{n}",
                "name": entry.expression,
                "label": entry.title,
                "description": entry.reading,
                "category": {
                    "id": f"Code_{n}",
                    "code": code,
                    "codeSystem": _NCI,
                    "codeSystemVersion": _NCI_VERSION,
                    "decode": decode,
                },
                "identifier": entry.expression,
                "criterionItemId": f"EligibilityCriterionItem_{n}",
                "previousId": f"EligibilityCriterion_{n - 1}" if n > 1 else None,
                "nextId": f"EligibilityCriterion_{n + 1}" if n < len(chosen) else None,
                "notes": notes,
            }
        )
    validated_items = [_valid(models[0], item) for item in items]
    validated_criteria = [_valid(models[1], criterion) for criterion in criteria]
    return {
        "usdmVersion": USDM_VERSION,
        "studyVersion": {"eligibilityCriterionItems": validated_items},
        "studyDesign": {"eligibilityCriteria": validated_criteria},
    }


def _models() -> tuple[Any, Any]:
    try:
        from usdm_model.eligibility_criterion import (
            EligibilityCriterion,
            EligibilityCriterionItem,
        )
    except ImportError:
        raise ExportError(
            "USDM export needs the usdm package: pip install 'critlang[export]'"
        ) from None
    return EligibilityCriterionItem, EligibilityCriterion


def _valid(model: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """The object as the model holds it (with `instanceType`s), or ExportError."""
    try:
        instance = model(**fields)
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        raise ExportError(f"the USDM model refuses {fields['id']}: {error}") from None
    dumped: dict[str, Any] = instance.model_dump(mode="json")
    return dumped
