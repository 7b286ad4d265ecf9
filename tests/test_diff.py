"""critlang diff: a semantic diff of two versions of a protocol, witnesses confirmed."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("z3")

from critlang import compile_source
from critlang.analyze.diff import Diff, diff
from critlang.cli import main
from critlang.evaluate import Protocol

ROOT = Path(__file__).resolve().parent.parent
CTD_ILD = ROOT / "protocols" / "ctd_ild.crit"
OLD_TEXT = CTD_ILD.read_text(encoding="utf-8")
NEW_TEXT = OLD_TEXT.replace("between 20 'a' and 80 'a'", "between 20 'a' and 75 'a'").replace(
    "creatinine_limit = 1.4 'mg/dL'", "creatinine_limit = 1.5 'mg/dL'"
)


@pytest.fixture(scope="module")
def versions() -> tuple[Protocol, Protocol, Diff]:
    assert NEW_TEXT.count("75 'a'") == 1 and "1.5 'mg/dL'" in NEW_TEXT
    old, new = compile_source(OLD_TEXT, "old.crit"), compile_source(NEW_TEXT, "new.crit")
    return old, new, diff(old, new)


def test_changes_are_put_into_words(versions: tuple[Protocol, Protocol, Diff]) -> None:
    texts = [change.text for change in versions[2].changes]
    assert texts == [
        "constant creatinine_limit: 1.4 → 1.5 mg/dL",
        "I1: age upper limit 80 → 75 years",
        "E4: constant creatinine_limit 1.4 → 1.5 mg/dL",
    ]


def test_each_change_has_a_patient_it_decides_for(
    versions: tuple[Protocol, Protocol, Diff],
) -> None:
    old, new, result = versions
    assert result.confirmed and result.differs
    by_id = {change.text.split(":")[0]: change.witness for change in result.changes}
    for ident, before, after in (("I1", True, False), ("E4", True, False)):
        witness = by_id[ident]
        assert witness is not None
        values = [
            {c.id: c.value for c in protocol.evaluate(witness.record).criteria}[ident]
            for protocol in (old, new)
        ]
        assert values == [before, after]
        # Every other criterion admits the patient in both versions: the change decides.
        statuses = [protocol.evaluate(witness.record).status for protocol in (old, new)]
        assert statuses[0] != statuses[1]
    age, creatinine = by_id["I1"], by_id["E4"]
    assert age is not None and 75 < age.record["age"] <= 80
    assert creatinine is not None and 1.4 < creatinine.record["creatinine"] <= 1.5


def test_a_patient_whose_status_differs(versions: tuple[Protocol, Protocol, Diff]) -> None:
    old, new, result = versions
    assert result.status is not None and result.status.confirmed
    record = result.status.record
    assert old.evaluate(record).status != new.evaluate(record).status


def test_a_rewrite_with_the_same_meaning_is_not_a_change() -> None:
    rewritten = OLD_TEXT.replace(
        "met when age between 20 'a' and 80 'a'", "met when age >= 20 'a' and age <= 80 'a'"
    )
    assert rewritten != OLD_TEXT
    result = diff(compile_source(OLD_TEXT), compile_source(rewritten))
    assert [c.text for c in result.changes] == [
        "I1: rewritten; z3 finds no patient it judges differently"
    ]
    assert result.status is None and not result.differs


def test_added_and_removed_criteria() -> None:
    old = """\
protocol p
data
  age: quantity 'a' range 0 to 130
  smoker: boolean
inclusion I1 "Adult" met when age >= 18 'a'
exclusion E1 "Smoker" met when smoker
"""
    new = old.replace('exclusion E1 "Smoker" met when smoker\n', "") + (
        "exclusion E2 \"Elderly\" met when age > 90 'a'\n"
    )
    result = diff(compile_source(old), compile_source(new))
    texts = [c.text for c in result.changes]
    assert texts == ['E2 added: exclusion "Elderly"', 'E1 removed: exclusion "Smoker"']
    assert result.status is not None and result.status.confirmed


def test_cli_exit_codes(tmp_path: Path) -> None:
    path = tmp_path / "ctd_ild_v2.crit"
    path.write_text(NEW_TEXT, encoding="utf-8")
    changed = CliRunner().invoke(main, ["diff", str(CTD_ILD), str(path)])
    assert changed.exit_code == 1, changed.output
    assert "I1: age upper limit 80 → 75 years" in changed.output
    assert "a patient whose status differs: {" in changed.output
    assert "NOT confirmed" not in changed.output
    same = CliRunner().invoke(main, ["diff", str(CTD_ILD), str(CTD_ILD)])
    assert same.exit_code == 0, same.output
    assert "no patient's status differs between the two versions" in same.output


def test_population_counts_who_changes_status_each_way(tmp_path: Path) -> None:
    """Age 78 leaves the trial when the upper limit drops to 75; creatinine 1.45 mg/dL
    comes in when the limit rises to 1.5; everyone else stays where they were."""
    import json

    from tests.patients import ELIGIBLE

    new = tmp_path / "ctd_ild_v2.crit"
    new.write_text(NEW_TEXT, encoding="utf-8")
    records = [
        {**ELIGIBLE, "id": "stays"},
        {**ELIGIBLE, "id": "too-old-now", "age": 78},
        {**ELIGIBLE, "id": "kidney-ok-now", "creatinine": Decimal("1.45")},
        {**ELIGIBLE, "id": "still-out", "creatinine": Decimal("1.6")},
        {**ELIGIBLE, "id": "unknown-age", "age": None},
    ]
    data = tmp_path / "population.jsonl"
    # decimals as JSON numbers: each reads back as the same exact decimal
    data.write_text("".join(json.dumps(r, default=float) + "\n" for r in records), encoding="utf-8")
    text = CliRunner().invoke(main, ["diff", str(CTD_ILD), str(new), "--population", str(data)])
    assert text.exit_code == 1, text.output
    assert "population: 5 patient(s), 2 change status" in text.output
    assert "  eligible → ineligible: 1 (too-old-now)" in text.output
    assert "  ineligible → eligible: 1 (kidney-ok-now)" in text.output
    page = tmp_path / "diff.html"
    html = CliRunner().invoke(
        main,
        [
            "diff",
            str(CTD_ILD),
            str(new),
            "--population",
            str(data),
            "--format",
            "html",
            "-o",
            str(page),
        ],
    )
    assert html.exit_code == 1, html.output
    written = page.read_text(encoding="utf-8")
    assert "<td>eligible</td><td>ineligible</td><td>1</td><td>too-old-now</td>" in written
    assert "I1: age upper limit 80 → 75 years" in written
