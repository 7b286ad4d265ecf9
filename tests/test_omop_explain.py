"""Per-person explanations from OMOP (`critlang eval --omop`): the same values as the
screening, every value citing the table row and date it came from."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path
from typing import Any

import duckdb
from click.testing import CliRunner

from critlang import screen_omop
from critlang.cli import main
from critlang.explain_omop import OmopExplain
from critlang.vocab import Truth
from tests.omop import eunomia
from tests.test_omop import (
    AS_OF,
    BINDING,
    CTD_ILD,
    GI_BLEED,
    HISTORIES,
    PROTOCOL,
    ROOT,
    SYNTHETIC_AS_OF,
    SYNTHETIC_BINDING,
    binding_for,
    ctd_section,
    results,
)

CITED = re.compile(
    r"^(measurement|condition_occurrence|drug_exposure|observation|procedure_occurrence)/([0-9]+)$"
)


def explained(
    protocol: Any, binding: Any, database: str, as_of: datetime.date, **options: Any
) -> dict[str, Any]:
    explain = OmopExplain(protocol, binding, database, as_of)
    try:
        return {r.id: r for r in explain.results(**options)}
    finally:
        explain.close()


def agree(explained: dict[str, Any], screened: dict[str, dict[str, str]]) -> None:
    assert set(explained) == set(screened)
    for person, result in explained.items():
        row = screened[person]
        assert result.error is None, (person, result.error)
        assert result.status == row["status"], (person, result, row)
        for criterion in result.criteria:
            assert row[criterion.id] == Truth.of(criterion.value, criterion.applicable).value


def cited_rows_exist(database: Path, explained: dict[str, Any]) -> int:
    """Every cited row is a row of its table, of that person, on that date."""
    checked = 0
    with duckdb.connect(str(database), read_only=True) as connection:
        for person, result in explained.items():
            for cited in result.sources.values():
                for name in (cited.source or "").split(", "):
                    found = CITED.match(name)
                    if found is None:
                        continue
                    table, row = found.groups()
                    date = {
                        "condition_occurrence": "condition_start_date",
                        "drug_exposure": "drug_exposure_start_date",
                    }.get(table, f"{table.removesuffix('_occurrence')}_date")
                    got = connection.execute(
                        f"SELECT person_id, {date} FROM {table} WHERE {table}_id = ?", [int(row)]
                    ).fetchall()
                    # (Eunomia's row ids are not all unique: the cited row is among them.)
                    day = datetime.date.fromisoformat(cited.date)
                    assert (int(person), day) in got, (person, cited)
                    checked += 1
    return checked


def test_eunomia_explanations_agree_with_the_screening_and_cite_real_rows(tmp_path: Path) -> None:
    binding = binding_for(GI_BLEED)
    output = tmp_path / "screened.csv"
    screen_omop.run(GI_BLEED.checked, binding, str(eunomia()), AS_OF, output=output)
    every = explained(GI_BLEED, binding, str(eunomia()), AS_OF)
    assert len(every) == 2694
    agree(every, results(output))
    assert cited_rows_exist(eunomia(), every) > 2000


def test_one_person_is_explained_alike_alone(tmp_path: Path) -> None:
    binding = binding_for(GI_BLEED)
    every = explained(GI_BLEED, binding, str(eunomia()), AS_OF)
    alone = explained(GI_BLEED, binding, str(eunomia()), AS_OF, asked=[6, 40])
    assert set(alone) == {"6", "40"}
    for person in alone:
        assert alone[person].to_dict() == every[person].to_dict()


def test_histories_explained_with_ranges_and_doses(tmp_path: Path) -> None:
    from critlang.synth import Generator
    from critlang.synth_omop import write_omop

    fhir = binding_for(HISTORIES, ROOT / "data" / "fhir" / "histories.fhir.bind.yaml")
    omop = binding_for(HISTORIES, ROOT / "data" / "omop" / "histories.omop.bind.yaml")
    patients = list(
        Generator(HISTORIES.checked, fhir.sections["fhir"], SYNTHETIC_AS_OF, seed=4).patients(120)
    )
    write_omop(patients, tmp_path / "omop.duckdb")
    output = tmp_path / "screened.csv"
    database = str(tmp_path / "omop.duckdb")
    screen_omop.run(HISTORIES.checked, omop, database, SYNTHETIC_AS_OF, output=output)
    every = explained(HISTORIES, omop, database, SYNTHETIC_AS_OF)
    agree(every, results(output))
    # The criteria over entries cite the rows they read, as the FHIR path cites resources.
    reasons = " ".join(c.reason for r in every.values() for c in r.criteria)
    assert "measurement/" in reasons and "drug_exposure/" in reasons


def test_synthetic_ctd_ild_explained(tmp_path: Path) -> None:
    from critlang.synth import Generator
    from critlang.synth_omop import write_omop

    patients = list(
        Generator(CTD_ILD.checked, ctd_section(), SYNTHETIC_AS_OF, seed=7).patients(150)
    )
    write_omop(patients, tmp_path / "omop.duckdb")
    binding = binding_for(CTD_ILD, SYNTHETIC_BINDING)
    output = tmp_path / "screened.csv"
    database = tmp_path / "omop.duckdb"
    screen_omop.run(CTD_ILD.checked, binding, str(database), SYNTHETIC_AS_OF, output=output)
    every = explained(CTD_ILD, binding, str(database), SYNTHETIC_AS_OF)
    agree(every, results(output))
    assert cited_rows_exist(database, every) > 300
    # An unknown value says why.
    whys = {c.why for r in every.values() for c in r.sources.values() if c.value is None}
    assert "no matching record" in whys


def test_cli_explains_persons_without_a_traceback(tmp_path: Path) -> None:
    runner = CliRunner()
    args = [
        "eval",
        str(PROTOCOL),
        "--bindings",
        str(BINDING),
        "--omop",
        str(eunomia()),
        "--as-of",
        "2019-07-01",
    ]
    ran = runner.invoke(main, [*args, "--person", "6", "--person", "424242", "--format", "jsonl"])
    assert ran.exit_code == 0, ran.output
    lines = [json.loads(line) for line in ran.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["6"]
    assert lines[0]["sources"]["time_on_nsaids"]["source"].startswith("drug_exposure/")
    assert "1 person id(s) asked about are not in the person table" in ran.stderr
    text = runner.invoke(main, [*args, "--person", "6"])
    assert "time_on_nsaids: " in text.stdout and "(drug_exposure/" in text.stdout
    undated = runner.invoke(main, args[:-2])
    assert undated.exit_code != 0 and "give --as-of" in undated.output
    nothing = str(tmp_path / "nothing.duckdb")
    bad = runner.invoke(main, [*args[:-4], "--omop", nothing, *args[-2:]])
    assert bad.exit_code != 0 and "no such OMOP database" in bad.output
    assert "Traceback" not in bad.output + undated.output


def test_explanations_from_postgres_are_those_from_duckdb(postgres_url: str) -> None:
    from tests.omop import to_postgres

    binding = binding_for(GI_BLEED)
    to_postgres(eunomia(), postgres_url)
    with duckdb.connect(str(eunomia()), read_only=True) as connection:
        rows = connection.execute("SELECT person_id FROM person ORDER BY person_id").fetchall()
    asked = [int(rows[i][0]) for i in (0, 5, 40, 1200, len(rows) - 1)]
    in_postgres = explained(GI_BLEED, binding, postgres_url, AS_OF, asked=asked)
    in_duckdb = explained(GI_BLEED, binding, str(eunomia()), AS_OF, asked=asked)
    assert set(in_postgres) == {str(p) for p in asked}
    for person, result in in_duckdb.items():
        assert in_postgres[person].to_dict() == result.to_dict()
