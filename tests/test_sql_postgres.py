"""The screening query runs on a real PostgreSQL server and agrees with the Python engine."""

from __future__ import annotations

from pathlib import Path

import critlang
from tests.patients import ELIGIBLE
from tests.postgres import screen_in_postgres

ROOT = Path(__file__).resolve().parents[1]
CTD_ILD = critlang.load(ROOT / "protocols" / "ctd_ild.crit")
MIX = critlang.load(ROOT / "tests" / "cases" / "sql" / "every_construct.crit")


def test_the_query_runs_on_postgres(postgres_url: str) -> None:
    records = [
        {"id": "eligible", **ELIGIBLE},
        {"id": "man", **ELIGIBLE, "sex": "male", "pregnancy_test": None},
        {"id": "old", **ELIGIBLE, "age": 131},
        {"id": "empty"},
    ]
    rows = screen_in_postgres(postgres_url, CTD_ILD.checked, records)
    for result in CTD_ILD.evaluate_many(records):
        row = rows[result.id]
        assert row["status"] == result.status, (result.id, row)
        for criterion in result.criteria:
            if result.status != "error":
                assert row[criterion.id] is criterion.value, (result.id, criterion.id)
    assert (
        rows["old"]["error"]
        == "column 'age': expected a number from 0 to 130 a, exactly in 6 decimal places"
    )
