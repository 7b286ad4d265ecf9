"""Concept sets through OMOP's concept hierarchy: `with descendants` and `exclude`, as Circe's.

On the Eunomia GiBleed database (its `concept_ancestor` is the real RxNorm
hierarchy): the NSAID ingredients with their descendants, less the two
clinical drugs the hand-picked list leaves out, screen exactly as that list;
and on the synthetic patients, whose every concept is its own ancestor.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from critlang import screen_omop
from critlang.bindings.binding import check_binding
from critlang.bindings.omop import source_of
from critlang.screen_omop import DuckDBBackend, resolve
from tests.omop import eunomia
from tests.test_omop import BINDING, CTD_ILD, GI_BLEED, SYNTHETIC_BINDING, binding_for, results

AS_OF = datetime.date(2019, 7, 1)
LISTED = "[rxnorm:140587, rxnorm:3355, rxnorm:310965, rxnorm:849574, omop:1115008]"
INGREDIENTS = (
    "[rxnorm:140587 with descendants, rxnorm:3355 with descendants, "
    "rxnorm:5640 with descendants, rxnorm:7258 with descendants]"
)


def nsaids(codes: str, exclude: str | None = None) -> Any:
    """The GI-bleed binding with its NSAIDs said another way."""
    text = BINDING.read_text(encoding="utf-8")
    assert text.count(LISTED) == 2
    said = codes + (f"\n    exclude: {exclude}" if exclude else "")
    binding, diagnostics = check_binding(
        text.replace(LISTED, said), "nsaids.bind.yaml", GI_BLEED.checked
    )
    assert binding is not None, diagnostics
    return binding


def concepts(binding: Any, element: str) -> set[int]:
    sources = [source_of(e) for e in binding.sections["omop"].elements.values()]
    backend = DuckDBBackend(eunomia())
    try:
        resolved, _ = resolve(GI_BLEED.checked, sources, backend, AS_OF)
    finally:
        backend.close()
    return {c for r in resolved if r.source.element == element for c in r.concepts}


def test_descendants_come_from_concept_ancestor() -> None:
    every = concepts(nsaids(INGREDIENTS), "nsaid_last_year")
    # The ingredients and the clinical drugs below them that Eunomia's patients take.
    assert {1118084, 1124300, 1177480, 1115008} <= every
    assert {19078461, 19019979, 1115171, 19019273} <= every
    listed = concepts(binding_for(GI_BLEED), "nsaid_last_year")
    assert listed == {1118084, 1124300, 19078461, 1115171, 1115008}
    # Excluded with its descendants: no ibuprofen at all.
    no_ibuprofen = concepts(
        nsaids(INGREDIENTS, "[rxnorm:5640 with descendants]"), "nsaid_last_year"
    )
    assert no_ibuprofen == every - {1177480, 19078461, 19019979}


def test_ingredients_with_descendants_less_exclusions_screen_as_the_listed_drugs(
    tmp_path: Path,
) -> None:
    database = str(eunomia())

    def screened(binding: Any, name: str) -> dict[str, dict[str, str]]:
        output = tmp_path / f"{name}.csv"
        screen_omop.run(GI_BLEED.checked, binding, database, AS_OF, output=output)
        return results(output)

    listed = screened(binding_for(GI_BLEED), "listed")
    # Ibuprofen 100 MG (rxnorm:198405) and naproxen 500 MG (rxnorm:198014) are left out.
    same = screened(nsaids(INGREDIENTS, "[rxnorm:198405, rxnorm:198014]"), "same")
    assert same == listed
    wider = screened(nsaids(INGREDIENTS), "wider")
    assert set(wider) == set(listed)
    changed = [p for p in listed if wider[p] != listed[p]]
    # Those who took only those two drugs, or took them first: only I2 (NSAID use) changes.
    assert changed
    assert all(wider[p]["I2"] != listed[p]["I2"] for p in changed)


def test_a_hierarchy_needs_concept_ancestor(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "small.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute(f"ATTACH '{eunomia()}' AS e (READ_ONLY)")
        for table in ("person", "concept", "drug_exposure", "condition_occurrence", "measurement"):
            connection.execute(f"CREATE TABLE {table} AS SELECT * FROM e.{table}")
    with pytest.raises(ValueError, match="no table concept_ancestor"):
        screen_omop.run(GI_BLEED.checked, nsaids(INGREDIENTS), str(path), AS_OF)


def test_descendants_are_refused_where_there_is_no_hierarchy() -> None:
    text = (
        "protocol: gi_bleed_screen\n"
        "omop:\n"
        "  peptic_ulcer:\n"
        "    condition_occurrence: [icd10cm:K25* with descendants]\n"
        "    exclude: [snomed:13200003]\n"
    )
    _, diagnostics = check_binding(text, "b.yaml", GI_BLEED.checked)
    assert [(d.code, d.span.line) for d in diagnostics if d.is_error] == [("BIND024", 4)]
    fhir = text.replace("omop:", "fhir:").replace("condition_occurrence", "condition")
    _, diagnostics = check_binding(fhir, "b.yaml", GI_BLEED.checked)
    errors = sorted((d.code, d.span.line) for d in diagnostics if d.is_error)
    assert errors == [("BIND004", 5), ("BIND024", 4)]


def test_synthetic_patients_with_descendants_and_exclusions(tmp_path: Path) -> None:
    from critlang.synth import Generator
    from tests.test_omop import SYNTHETIC_AS_OF, ctd_section, flat_and_omop, same

    generator = Generator(CTD_ILD.checked, ctd_section(), SYNTHETIC_AS_OF, seed=11)
    patients = list(generator.patients(120))
    flat, rows, _ = flat_and_omop(patients, tmp_path)
    text = SYNTHETIC_BINDING.read_text(encoding="utf-8")
    drugs = "[atc:L04AA06, atc:L04AX01, atc:L01AA01, atc:L04AD01]"
    assert drugs in text
    below = drugs.replace(",", " with descendants,").replace("]", " with descendants]")
    by_person = {str(n): p.id for n, p in enumerate(patients, start=1)}

    def screened(said: str, name: str) -> dict[str, dict[str, str]]:
        binding, diagnostics = check_binding(
            text.replace(drugs, said), str(SYNTHETIC_BINDING), CTD_ILD.checked
        )
        assert binding is not None, diagnostics
        output = tmp_path / f"{name}.csv"
        folder = str(tmp_path / "omop")
        screen_omop.run(CTD_ILD.checked, binding, folder, SYNTHETIC_AS_OF, output=output)
        return {by_person[k]: v for k, v in results(output).items()}

    # Every synthetic concept is only its own descendant: the same patients, the same results.
    below_rows = screened(below, "below")
    assert below_rows == rows
    for person, result in flat.items():
        same(result, below_rows[person])
    # An exclusion is the set less that concept: as if it were not listed.
    excluded = screened(below + "\n    exclude: [atc:L01AA01]", "excluded")
    assert excluded == screened("[atc:L04AA06, atc:L04AX01, atc:L04AD01]", "three")
    assert excluded != rows


def test_no_data_counts_persons_whose_records_are_all_outside_the_window(tmp_path: Path) -> None:
    """'No data at all' for a value read within a window: the persons with a record in the
    window come from the patient table, the others are looked for among all the records."""
    import duckdb

    text = BINDING.read_text(encoding="utf-8").replace(
        "    select: earliest\n    read: time since",
        "    select: earliest within 1 year\n    read: time since",
    )
    binding, diagnostics = check_binding(text, "window.bind.yaml", GI_BLEED.checked)
    assert binding is not None, diagnostics
    done = screen_omop.run(GI_BLEED.checked, binding, str(eunomia()), AS_OF)
    listed = "1118084, 1124300, 19078461, 1115171, 1115008"
    with duckdb.connect(str(eunomia()), read_only=True) as connection:
        ((anyone,),) = connection.execute(
            f"SELECT COUNT(DISTINCT person_id) FROM drug_exposure WHERE drug_concept_id IN "
            f"({listed}) OR drug_source_concept_id IN ({listed})"
        ).fetchall()
        ((recent,),) = connection.execute(
            f"SELECT COUNT(DISTINCT person_id) FROM drug_exposure WHERE (drug_concept_id IN "
            f"({listed}) OR drug_source_concept_id IN ({listed})) AND drug_exposure_start_date "
            "<= DATE '2019-07-01' AND COALESCE(drug_exposure_end_date, drug_exposure_start_date)"
            " >= DATE '2018-07-01'"
        ).fetchall()
    assert 0 < recent < anyone  # some persons' NSAIDs are all older than the window
    assert dict(done.no_data)["time_on_nsaids"] == 2694 - anyone
    lean = screen_omop.run(GI_BLEED.checked, binding, str(eunomia()), AS_OF, count_absent=False)
    assert lean.attrition == done.attrition
