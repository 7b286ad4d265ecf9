"""critlang export: CQL (golden file), ELM, FHIR R4 and USDM, and the command.

The ELM's meaning is tested against cql-execution in tests/cql/; here the
documents are checked against their standards' models and against each
other: the Library carries exactly the CQL and ELM exported on their own,
every FHIR characteristic and USDM criterion names a definition the ELM has.

Regenerate the golden file after an intended change with
`CRITLANG_UPDATE_GOLDEN=1 pytest tests/test_export.py`.
"""

from __future__ import annotations

import base64
import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings

import critlang
from critlang.check import check_source
from critlang.cli import main
from critlang.engines import elm
from critlang.export import export
from critlang.export.cql import library_text
from tests.properties.test_evaluator import random_protocols

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = ROOT / "protocols" / "ctd_ild.crit"
GOLDEN = ROOT / "tests" / "golden" / "ctd_ild.cql"
CTD_ILD = critlang.load(PROTOCOL)
CRITERIA = ["I1", "I2", "I3", "I4", "I5", "E1", "E2", "E3", "E4", "E5"]
PARTS = ["I2.a", "I2.b", "I2.c", "E3.a", "E3.b", "E4.a", "E4.b"]


def exported(target: str) -> Any:
    text = export(CTD_ILD.checked, target)
    return text if target == "cql" else json.loads(text)


def statements(library: dict[str, Any]) -> dict[str, Any]:
    return {d["name"]: d["expression"] for d in library["library"]["statements"]["def"]}


# ---- CQL and ELM ------------------------------------------------------------------


def test_ctd_ild_cql_matches_golden_file() -> None:
    text = exported("cql")
    if os.environ.get("CRITLANG_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")


def test_elm_has_a_typed_parameter_per_element_and_a_definition_per_criterion() -> None:
    library = exported("elm")["library"]
    assert library["identifier"] == {"id": "ctd_ild", "version": "1.0.0"}
    parameters = {p["name"]: p["parameterTypeSpecifier"] for p in library["parameters"]["def"]}
    system = "{urn:hl7-org:elm-types:r1}"
    assert parameters["age"] == {"type": "NamedTypeSpecifier", "name": system + "Quantity"}
    assert parameters["sex"]["name"] == system + "String"
    assert parameters["hiv"]["name"] == system + "Boolean"
    assert parameters["ctd_diagnoses"] == {
        "type": "ListTypeSpecifier",
        "elementType": {"type": "NamedTypeSpecifier", "name": system + "String"},
    }
    names = statements(exported("elm"))
    for name in [*CRITERIA, *PARTS, "I4 applies", "E3.a applies", "fvc_decline", "Status"]:
        assert name in names
    # A part is its own definition, and its criterion refers to it by name.
    assert names["E3"] == {
        "type": "Or",
        "operand": [
            {"type": "ExpressionRef", "name": "E3.a"},
            {"type": "ExpressionRef", "name": "E3.b"},
        ],
    }


def test_quantities_are_read_in_the_elements_unit() -> None:
    between = statements(exported("elm"))["I1"]["operand"][0]
    age = between["operand"][0]["operand"][1]  # 20 <= age
    assert age == {
        "type": "Property",
        "path": "value",
        "source": {
            "type": "ConvertQuantity",
            "operand": [
                {"type": "ParameterRef", "name": "age"},
                {"type": "Literal", "valueType": "{urn:hl7-org:elm-types:r1}String", "value": "a"},
            ],
        },
    }


def test_arithmetic_is_rounded_to_eight_places() -> None:
    ratio = statements(exported("elm"))["steroid_dose_per_weight"]
    assert ratio["type"] == "Round"
    assert ratio["precision"]["value"] == "8"
    assert ratio["operand"]["type"] == "Divide"


def test_decimal_literals_are_exact_or_an_explicit_quotient() -> None:
    assert elm.decimal_text(Fraction("30.4375")) == "30.4375"
    assert elm.decimal_text(Fraction(80)) == "80.0"
    assert elm.decimal_text(Fraction("-0.5")) == "-0.5"
    assert elm.decimal_text(Fraction("0.00000001")) == "0.00000001"
    digits = "12345678901234567890123456789.5"  # more digits than a 28-digit context keeps
    assert elm.decimal_text(Fraction(digits)) == digits
    assert elm.decimal_text(Fraction("0.000000001")) is None
    assert elm.decimal_text(Fraction(1, 3)) is None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_protocols())
def test_every_random_protocol_exports_to_cql(generated: Any) -> None:
    checked, _ = check_source(generated.source, "random.crit")
    if checked is None:
        return  # a generated protocol the checker refuses has nothing to export
    text = export(checked, "cql")
    library = json.loads(export(checked, "elm"))
    for name in statements(library):
        assert f'define "{name}":' in text


def test_author_text_cannot_leave_a_cql_comment() -> None:
    library = {
        "library": {
            "identifier": {"id": "x"},
            "parameters": {"def": []},
            "statements": {
                "def": [
                    {
                        "name": "I1",
                        "expression": {
                            "type": "Literal",
                            "valueType": "{urn:hl7-org:elm-types:r1}Boolean",
                            "value": "true",
                        },
                    }
                ]
            },
        }
    }
    text = library_text(library, {"I1": 'title\ndefine "evil": true'}, "a\nb")
    assert '// title define "evil": true' in text
    assert text.count("define ") == 2  # the real one and the one inside the comment
    assert '\ndefine "evil"' not in text


# ---- FHIR -------------------------------------------------------------------------


def resources() -> dict[str, dict[str, Any]]:
    bundle = exported("fhir")
    return {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}


def test_fhir_bundle_validates_against_the_r4b_models() -> None:
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.evidencevariable import EvidenceVariable
    from fhir.resources.R4B.library import Library
    from fhir.resources.R4B.researchstudy import ResearchStudy

    bundle = exported("fhir")
    Bundle.model_validate(bundle)
    found = resources()
    Library.model_validate(found["Library"])
    EvidenceVariable.model_validate(found["EvidenceVariable"])
    ResearchStudy.model_validate(found["ResearchStudy"])
    assert sorted(found) == ["EvidenceVariable", "Group", "Library", "ResearchStudy"]


def test_fhir_library_carries_the_cql_and_elm() -> None:
    library = resources()["Library"]
    content = {c["contentType"]: base64.b64decode(c["data"]).decode() for c in library["content"]}
    assert content["text/cql"] == exported("cql")
    assert json.loads(content["application/elm+json"]) == exported("elm")
    inputs = {p["name"]: p["type"] for p in library["parameter"] if p["use"] == "in"}
    assert inputs["age"] == "Quantity"
    assert inputs["ctd_diagnoses"] == "string"


def test_fhir_characteristics_point_at_the_library() -> None:
    found = resources()
    evidence, library = found["EvidenceVariable"], found["Library"]
    characteristics = evidence["characteristic"]
    assert [c["definitionExpression"]["expression"] for c in characteristics] == [
        "I1",
        "I2",
        "I2.a",
        "I2.b",
        "I2.c",
        "I3",
        "I4",
        "I5",
        "E1",
        "E2",
        "E3",
        "E3.a",
        "E3.b",
        "E4",
        "E4.a",
        "E4.b",
        "E5",
    ]
    names = statements(exported("elm"))
    for characteristic in characteristics:
        expression = characteristic["definitionExpression"]
        assert expression["expression"] in names
        assert expression["reference"] == library["url"]
        assert expression["language"] == "text/cql-identifier"
        assert characteristic["exclude"] is expression["expression"].startswith("E")
    first = characteristics[0]
    assert first["description"].startswith("Adult subjects aged between 20 and 80 years")
    assert first["definitionExpression"]["description"].startswith("All of the following:")
    study = found["ResearchStudy"]
    assert study["enrollment"] == [{"reference": f"Group/{found['Group']['id']}"}]
    assert study["relatedArtifact"][0]["resource"] == evidence["url"]


# ---- USDM -------------------------------------------------------------------------


def test_usdm_criteria_validate_against_the_usdm_model() -> None:
    from usdm_model.eligibility_criterion import EligibilityCriterion, EligibilityCriterionItem

    document = exported("usdm")
    items = document["studyVersion"]["eligibilityCriterionItems"]
    criteria = document["studyDesign"]["eligibilityCriteria"]
    for item in items:
        EligibilityCriterionItem.model_validate(item)
    for criterion in criteria:
        EligibilityCriterion.model_validate(criterion)
    assert [c["identifier"] for c in criteria] == CRITERIA
    assert [c["category"]["code"] for c in criteria] == ["C25532"] * 5 + ["C25370"] * 5
    item_ids = {item["id"] for item in items}
    assert all(c["criterionItemId"] in item_ids for c in criteria)
    assert criteria[0]["previousId"] is None and criteria[-1]["nextId"] is None
    assert criteria[1]["previousId"] == criteria[0]["id"]
    assert items[0]["text"].startswith("Adult subjects aged between 20 and 80 years")
    assert any(n["text"].startswith("Plain: You are 20 to 80") for n in criteria[0]["notes"])


# ---- the command ------------------------------------------------------------------


@pytest.mark.parametrize("target", ["cql", "elm", "fhir", "usdm"])
def test_command_writes_the_export(target: str, tmp_path: Path) -> None:
    out = tmp_path / f"ctd_ild.{target}"
    result = CliRunner().invoke(main, ["export", str(PROTOCOL), "--to", target, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == export(CTD_ILD.checked, target)


def test_command_reports_a_protocol_with_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.crit"
    bad.write_text('protocol bad\ninclusion I1 "x"\n  met when missing_name\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["export", str(bad), "--to", "cql"])
    assert result.exit_code == 1
    assert "missing_name" in result.output
    assert "Traceback" not in result.output


def test_fhir_validation_reads_every_resource_in_the_bundle() -> None:
    # The check is real: a wrong type deep inside one entry is refused.
    from fhir.resources.R4B.bundle import Bundle
    from pydantic import ValidationError

    bundle = exported("fhir")
    group = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Group")
    group["characteristic"][0]["exclude"] = "sometimes"
    with pytest.raises(ValidationError):
        Bundle.model_validate(bundle)


CORPUS = sorted((ROOT / "protocols").glob("*.crit")) + sorted(
    (ROOT / "tests" / "conformance").glob("*.crit")
)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_every_protocol_and_corpus_file_exports_to_cql(path: Path) -> None:
    """Histories, code lists, dates and scores all have CQL text (no traceback, no gap)."""
    checked, diagnostics = check_source(path.read_text(encoding="utf-8"), str(path))
    assert checked is not None, diagnostics
    text = export(checked, "cql")
    assert text.startswith("// ") and "\ndefine " in text


def test_a_history_selector_is_a_cql_query_over_its_entries() -> None:
    checked, _ = check_source(
        "protocol q\n"
        'codes ild "ILD" icd10cm ("J84.*")\n'
        "data\n  diagnoses: history of codes complete\n"
        'inclusion I1 "ILD"\n  met when any diagnoses where its code in ild\n',
        "q.crit",
    )
    assert checked is not None
    text = export(checked, "cql")
    assert 'parameter "diagnoses" List<Tuple { "date" Date, "code" String' in text
    assert 'exists ("diagnoses" E' in text
    assert "where " in text and '."code"' in text and "StartsWith(" in text
