"""Random protocols with dates, histories, code lists and integers on every engine.

The protocols of tests/conformance/random_time.py and their records go through
`Protocol.evaluate` and DuckDB and the JavaScript engine on every example, and
through PostgreSQL, Spark and z3 on a few; every status and criterion word must
agree with the evaluator's. `make fuzz` runs the same generator at length.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from critlang import sql
from tests.conformance import engines
from tests.conformance.fuzz import with_ranges
from tests.conformance.random_time import random_time_protocols, random_time_records
from tests.properties.test_evaluator import RandomProtocol

SETTINGS = settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
RECORDS = 25


def agree(engine: Any, generated: RandomProtocol, seed: int, count: int = RECORDS) -> None:
    source = with_ranges(generated.source)
    records = random_time_records(random.Random(seed), generated, count)
    reference = engines.python_evaluate(source, records)
    try:
        outcomes = engine(source, records)
    except sql.SqlError:
        return  # too wide for exact SQL decimals: refused with a location, never wrong
    for record, expected, actual in zip(records, reference, outcomes, strict=True):
        assert {"status": actual["status"], "criteria": actual["criteria"]} == {
            "status": expected["status"],
            "criteria": expected["criteria"],
        }, (source, record)


def test_every_generated_protocol_checks() -> None:
    """The generator writes only valid protocols (a refused one would test nothing)."""
    import critlang

    @settings(SETTINGS, max_examples=60)
    @given(random_time_protocols())
    def check(generated: RandomProtocol) -> None:
        critlang.compile_source(with_ranges(generated.source), "random.crit")

    check()


@pytest.mark.sql
@SETTINGS
@given(random_time_protocols(), st.integers(0, 2**16))
def test_duckdb_agrees(generated: RandomProtocol, seed: int) -> None:
    agree(engines.duckdb, generated, seed)


@pytest.mark.node
@SETTINGS
@given(random_time_protocols(), st.integers(0, 2**16))
def test_javascript_agrees(generated: RandomProtocol, seed: int) -> None:
    agree(engines.javascript, generated, seed)


@pytest.mark.z3
@settings(SETTINGS, max_examples=2)
@given(random_time_protocols(), st.integers(0, 2**16))
def test_z3_agrees(generated: RandomProtocol, seed: int) -> None:
    agree(engines.z3, generated, seed, count=1)


@pytest.mark.sql
@pytest.mark.postgres
@settings(SETTINGS, max_examples=1)
@given(data=st.data())
def test_postgres_agrees(postgres_url: str, data: st.DataObject) -> None:
    generated = data.draw(random_time_protocols())
    seed = data.draw(st.integers(0, 2**16))
    agree(lambda s, r: engines.postgres(s, r, url=postgres_url), generated, seed)


@pytest.fixture(scope="module")
def spark_session() -> Iterator[Any]:
    from critlang import screen

    session = screen.spark_session()
    yield session
    session.stop()


@pytest.mark.sql
@pytest.mark.spark
@settings(SETTINGS, max_examples=1)
@given(data=st.data())
def test_spark_agrees(spark_session: Any, data: st.DataObject) -> None:
    generated = data.draw(random_time_protocols())
    seed = data.draw(st.integers(0, 2**16))
    agree(lambda s, r: engines.spark(s, r, session=spark_session), generated, seed)
