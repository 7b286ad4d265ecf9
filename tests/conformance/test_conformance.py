"""The conformance corpus on every engine: one test per (case, engine).

Each `<theme>.yaml` beside this file names a protocol (`<theme>.crit`) and lists
cases: a record, the status and the word of every criterion and named part,
worked out by hand from the semantics (README.md). Every engine runs all the
cases of one protocol in one batch (one query for the SQL engines), once per
session; each test then compares one case's outcome.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml

from critlang import syntax as s
from tests.conformance import engines

HERE = Path(__file__).resolve().parent
VALUE_WORDS = {"true", "false", "unknown", "not applicable"}
STATUSES = {"eligible", "ineligible", "undetermined"}


@attrs.frozen
class Case:
    suite: str  # the data file's stem
    name: str
    source: str
    record: dict[str, Any]
    status: str
    expect: dict[str, str]

    @property
    def id(self) -> str:
        return f"{self.suite}/{self.name}"


def _word(value: Any) -> str:
    # YAML reads a bare true/false as a boolean: it is the word.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _record_value(value: Any) -> Any:
    """Exact decimals for numbers (1.4, not the float nearest it); dates as text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _record_value(v) for k, v in value.items()}
    if isinstance(value, list):  # a set's values, or a history's entries
        return [_record_value(v) for v in value]
    return value


def load_suite(path: Path) -> list[Case]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    source = (path.parent / data["protocol"]).read_text(encoding="utf-8")
    if "terminology" in data:  # every engine compiles this protocol with it
        engines.TERMINOLOGIES[source] = path.parent / data["terminology"]
    cases = []
    for entry in data["cases"]:
        record = {
            "id": entry["name"],
            **{k: _record_value(v) for k, v in (entry["record"] or {}).items()},
        }
        expect = {str(k): _word(v) for k, v in entry["expect"].items()}
        cases.append(Case(path.stem, entry["name"], source, record, entry["status"], expect))
    return cases


SUITES = {path.stem: load_suite(path) for path in sorted(HERE.glob("*.yaml"))}
CASES = [case for cases in SUITES.values() for case in cases]


def expected_keys(source: str) -> set[str]:
    """Every criterion id and every reported part (`I2.a`) of a protocol."""
    criteria = engines.compile_source(source).checked.protocol.criteria
    keys = {c.id.text for c in criteria}
    for criterion in criteria:
        keys |= {f"{criterion.id.text}.{p.name.text}" for p in engines.reported_parts(criterion)}
    return keys


# ---- the corpus itself ------------------------------------------------------------------


def test_the_corpus_is_large_and_well_formed() -> None:
    assert len(CASES) >= 150
    assert len({case.id for case in CASES}) == len(CASES), "case names repeat in a file"
    for case in CASES:
        assert case.status in STATUSES, case.id
        assert set(case.expect.values()) <= VALUE_WORDS, case.id
        assert set(case.expect) == expected_keys(case.source), case.id


def test_every_expected_status_follows_from_the_expected_criteria() -> None:
    """The status rule, applied to the hand-derived criterion words."""
    for case in CASES:
        protocol = engines.compile_source(case.source).checked.protocol
        values = {}
        for c in protocol.criteria:
            words = case.expect[c.id.text]
            # Not applicable: met (true) for an inclusion, absent (false) for an exclusion.
            value = {"true": True, "false": False, "unknown": None}.get(
                words, c.kind == "inclusion"
            )
            values[c.id.text] = (c.kind, value)
        kinds = list(values.values())
        if any(v is (k == "exclusion") for k, v in kinds):
            status = "ineligible"
        elif all(v is (k == "inclusion") for k, v in kinds):
            status = "eligible"
        else:
            status = "undetermined"
        assert status == case.status, case.id


def test_the_corpus_covers_every_construct() -> None:
    seen: set[type] = set()
    exclusive = False
    for source in {case.source for case in CASES}:
        checked = engines.compile_source(source).checked
        for criterion in checked.protocol.criteria:
            roots = [criterion.condition, criterion.applies_when]
            roots += [d.expr for d in checked.protocol.definitions]
            for root in roots:
                for node in s.walk(root) if root is not None else ():
                    seen.add(type(node))
                    exclusive = exclusive or (isinstance(node, s.Between) and node.exclusive)
    wanted = {
        s.And, s.Or, s.Not, s.Unless, s.Compare, s.Between, s.Member, s.Includes,
        s.Arithmetic, s.RelativeChange, s.Quantified, s.SubCriterion, s.BoolLit,
        s.DateLit, s.Ref, s.Selector, s.EntryField, s.InCodes,
    }  # fmt: skip
    assert wanted <= seen, wanted - seen
    assert exclusive


# ---- every case on every engine -------------------------------------------------------


@pytest.fixture(scope="session")
def spark_session() -> Iterator[Any]:
    from critlang import screen

    session = screen.spark_session()
    yield session
    session.stop()


_RESULTS: dict[tuple[str, str], dict[str, engines.Outcome]] = {}


def runner(engine: str, request: pytest.FixtureRequest) -> Callable[..., list[engines.Outcome]]:
    """The engine's adapter, with the session's Spark or PostgreSQL when it needs one."""
    if engine == "spark":
        return functools.partial(engines.spark, session=request.getfixturevalue("spark_session"))
    if engine == "postgres":
        return functools.partial(engines.postgres, url=request.getfixturevalue("postgres_url"))
    adapters: dict[str, Callable[..., list[engines.Outcome]]] = {
        "python-status": engines.python_status,
        "python-evaluate": engines.python_evaluate,
        "duckdb": engines.duckdb,
        "z3": engines.z3,
        "javascript": engines.javascript,
        "elm": engines.elm,
    }
    return adapters[engine]


def outcome_of(engine: str, case: Case, request: pytest.FixtureRequest) -> engines.Outcome:
    """One case's outcome; an engine runs all the cases of a protocol at once, once."""
    key = (engine, case.suite)
    if key not in _RESULTS:
        cases = [c for c in SUITES[case.suite] if runs_on(engine, c)]
        outcomes = runner(engine, request)(case.source, [c.record for c in cases])
        _RESULTS[key] = dict(zip([c.name for c in cases], outcomes, strict=True))
    return _RESULTS[key][case.name]


def runs_on(engine: str, case: Case) -> bool:
    """z3 is asked only about records in which every element is known."""
    return engine not in engines.FULLY_KNOWN_ONLY or engines.fully_known(case.source, case.record)


# What an engine needs beyond Python, as the markers `make check` leaves out.
ENGINE_MARKS = {
    "duckdb": ("sql",),
    "spark": ("sql", "spark"),
    "postgres": ("sql", "postgres"),
    "z3": ("z3",),
    "javascript": ("node",),
    "elm": ("node",),
}


def params() -> list[Any]:
    out = []
    for case in CASES:
        for engine in engines.REPORTS:
            if not runs_on(engine, case):
                continue
            marks = [getattr(pytest.mark, m) for m in ENGINE_MARKS.get(engine, ())]
            reason = engines.KNOWN_BUGS.get((engine, case.id))
            if reason is not None:
                marks.append(pytest.mark.xfail(reason=reason, strict=True))
            out.append(pytest.param(case, engine, id=f"{case.id}-{engine}", marks=marks))
    return out


def reported(engine: str, expect: Mapping[str, str]) -> dict[str, str]:
    """The part of the expected words an engine reports today."""
    level = engines.REPORTS[engine]
    if level == engines.STATUS:
        return {}
    if level == engines.CRITERIA:
        return {k: v for k, v in expect.items() if "." not in k}
    return dict(expect)


@pytest.mark.parametrize(("case", "engine"), params())
def test_case(case: Case, engine: str, request: pytest.FixtureRequest) -> None:
    outcome = outcome_of(engine, case, request)
    expected = {"status": case.status, "criteria": reported(engine, case.expect)}
    actual = {"status": outcome["status"], "criteria": outcome["criteria"]}
    assert actual == expected, outcome.get("error")


def test_every_known_bug_names_a_case() -> None:
    ids = {case.id for case in CASES}
    for engine, case_id in engines.KNOWN_BUGS:
        assert engine in engines.REPORTS and case_id in ids, (engine, case_id)
