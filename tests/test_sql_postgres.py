"""The screening query runs on a real PostgreSQL server and agrees with the Python engine."""

from __future__ import annotations

from pathlib import Path

from sqlglot import exp

import critlang
from critlang import sql
from tests.patients import ELIGIBLE
from tests.pg import screen_in_postgres

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


def test_the_query_never_uses_try_cast() -> None:
    """PostgreSQL has no TRY_CAST: every cast is guarded by a check instead."""
    for protocol in (CTD_ILD, MIX):
        text = [(name, "VARCHAR") for name in protocol.checked.elements]
        layout = sql.layout_from_schema(protocol.checked, text, "postgres", text=True)
        for tree in (sql.query(protocol.checked), sql.query(protocol.checked, layout=layout)):
            assert not [cast for cast in tree.find_all(exp.Cast) if cast.args.get("safe")]
            assert not list(tree.find_all(exp.TryCast))
