"""The CQL specification's date, interval, null and logic tests that critlang can express,
on every engine (translate.py says how a case becomes a criterion; docs/cql-conformance.md
lists the cases critlang cannot say)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conformance import engines
from tests.conformance.test_conformance import ENGINE_MARKS
from tests.cql_spec import translate

ROOT = Path(__file__).resolve().parents[2]
SUITE = translate.translate_all()
SPARK_EVERY = 3  # Spark answers every third case (all of them: 75 s on a loaded machine)
Z3_EVERY = 6  # z3 answers every sixth case (all of them: 75 solver calls, minutes)


def test_the_translation_covers_the_expressible_cases() -> None:
    assert len(SUITE.translated) >= 70
    categories = {category for _, category in SUITE.refused}
    assert "other syntax" not in categories, [
        t.expression for t, c in SUITE.refused if c == "other syntax"
    ]
    assert not any(c.startswith("refused by the checker") for c in categories)


def test_the_page_is_current() -> None:
    page = (ROOT / "docs" / "cql-conformance.md").read_text(encoding="utf-8")
    assert page == translate.markdown(SUITE), (
        "run: python -m tests.cql_spec.translate --markdown docs/cql-conformance.md"
    )


@pytest.fixture(scope="module")
def spark_session() -> Iterator[Any]:
    from critlang import screen

    session = screen.spark_session()
    yield session
    session.stop()


ENGINES = [name for name in engines.REPORTS if name != "python-status"]


@pytest.mark.parametrize(
    "engine",
    [
        pytest.param(name, marks=[getattr(pytest.mark, m) for m in ENGINE_MARKS.get(name, ())])
        for name in ENGINES
    ],
)
def test_every_translated_case_agrees(engine: str, request: pytest.FixtureRequest) -> None:
    adapters: dict[str, Any] = {
        "python-evaluate": engines.python_evaluate,
        "duckdb": engines.duckdb,
        "z3": engines.z3,
        "javascript": engines.javascript,
        "elm": engines.elm,
    }
    if engine == "postgres":
        adapters[engine] = functools.partial(
            engines.postgres, url=request.getfixturevalue("postgres_url")
        )
    if engine == "spark":
        adapters[engine] = functools.partial(
            engines.spark, session=request.getfixturevalue("spark_session")
        )
    cases = SUITE.translated
    if engine == "z3":
        cases = cases[::Z3_EVERY]  # a solver call per criterion: a sample keeps CI short
    if engine == "spark":
        cases = cases[::SPARK_EVERY]  # Spark plans one wide query slowly
    source, record = translate.protocol_source(cases), translate.record(cases)
    words = adapters[engine](source, [record])[0]["criteria"]
    wrong = [
        f"{case.test.name}: {case.test.expression} -> {case.condition}: "
        f"expected {case.expected}, got {words.get(f'I{number}')}"
        for number, case in enumerate(cases, start=1)
        if words.get(f"I{number}") != case.expected
    ]
    assert wrong == []
