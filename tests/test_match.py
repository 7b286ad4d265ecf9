"""Matching across trials: statuses side by side and the data worth collecting."""

from __future__ import annotations

import json
from pathlib import Path

import critlang
from critlang.cli import main
from critlang.match import ElementRank, Tally, match_records

LUNG = """protocol lung
  title "Lung trial"
data
  age: quantity 'a'
  fvc: quantity 'L'
  smoker: boolean
inclusion I1 "Adult"
  met when age >= 18 'a'
inclusion I2 "Low FVC"
  met when fvc < 3 'L'
exclusion E1 "Smoker"
  met when smoker
"""

HEART = """protocol heart
  title "Heart trial"
data
  age: quantity 'a'
  smoker: boolean
  ef: quantity '%'
inclusion I1 "Older adult"
  met when age >= 50 'a'
inclusion I2 "Reduced ejection fraction"
  met when ef < 40%
exclusion E1 "Smoker"
  met when smoker
"""

RECORDS = [
    # lung: eligible; heart: undetermined, missing ef only
    {"id": "p1", "age": 60, "fvc": 2.5, "smoker": False},
    # lung: undetermined (fvc); heart: undetermined (ef)
    {"id": "p2", "age": 55, "smoker": False},
    # lung: undetermined (fvc, smoker); heart: ineligible (age)
    {"id": "p3", "age": 30},
    # both ineligible: a smoker
    {"id": "p4", "age": 70, "smoker": True},
]


def protocols() -> list[critlang.Protocol]:
    return [critlang.compile_source(LUNG), critlang.compile_source(HEART)]


def test_each_patient_gets_every_trial_with_its_missing_data() -> None:
    patients = list(match_records(protocols(), RECORDS))
    seen = {p.id: {t.trial: (t.status, t.missing) for t in p.trials} for p in patients}
    assert seen["p1"] == {"lung": ("eligible", ()), "heart": ("undetermined", ("ef",))}
    assert seen["p2"] == {"lung": ("undetermined", ("fvc",)), "heart": ("undetermined", ("ef",))}
    assert seen["p3"]["lung"] == ("undetermined", ("fvc", "smoker"))
    assert seen["p3"]["heart"] == ("ineligible", ())
    assert seen["p4"] == {"lung": ("ineligible", ()), "heart": ("ineligible", ())}


def test_elements_are_ranked_by_the_patients_they_would_settle() -> None:
    trials = protocols()
    tally = Tally(trials)
    for patient in match_records(trials, RECORDS):
        tally.add(patient)
    population = tally.population()
    lung, heart = population.trials
    assert lung.statuses["undetermined"] == 2 and lung.statuses["eligible"] == 1
    assert lung.ranking == (ElementRank("fvc", 1, 2), ElementRank("smoker", 0, 1))
    assert heart.ranking == (ElementRank("ef", 2, 2),)
    assert population.overall == (
        ElementRank("ef", 2, 2),
        ElementRank("fvc", 1, 2),
        ElementRank("smoker", 0, 1),
    )


def test_match_command_text_json_and_html(tmp_path: Path) -> None:
    from click.testing import CliRunner

    (tmp_path / "lung.crit").write_text(LUNG)
    (tmp_path / "heart.crit").write_text(HEART)
    records = tmp_path / "records.jsonl"
    records.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    args = [str(tmp_path / "lung.crit"), str(tmp_path / "heart.crit"), str(records)]
    runner = CliRunner()
    text = runner.invoke(main, ["match", *args])
    assert text.exit_code == 0, text.output
    assert "  heart: undetermined; to collect: ef" in text.output
    assert "  ef: settles 2, needed by 2 undetermined" in text.output
    as_json = runner.invoke(main, ["match", "--format", "json", *args])
    document = json.loads(as_json.stdout)
    assert document["population"]["overall"][0] == {"element": "ef", "settles": 2, "needed": 2}
    assert [p["id"] for p in document["patients"]] == ["p1", "p2", "p3", "p4"]
    page = tmp_path / "match.html"
    html = runner.invoke(main, ["match", "--format", "html", "-o", str(page), *args])
    assert html.exit_code == 0, html.output
    assert "<td>ef</td>" in page.read_text()


def test_match_refuses_a_single_path_and_same_named_protocols(tmp_path: Path) -> None:
    from click.testing import CliRunner

    (tmp_path / "lung.crit").write_text(LUNG)
    runner = CliRunner()
    alone = runner.invoke(main, ["match", str(tmp_path / "lung.crit")])
    assert alone.exit_code != 0 and "protocol files" in alone.output
    records = tmp_path / "r.jsonl"
    records.write_text("{}\n")
    twice = runner.invoke(
        main, ["match", str(tmp_path / "lung.crit"), str(tmp_path / "lung.crit"), str(records)]
    )
    assert twice.exit_code != 0 and "same name" in twice.output
