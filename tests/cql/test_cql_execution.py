"""The exported ELM, run by cql-execution, against critlang's Python engine.

Every protocol in `protocols/` (its example patients and random records
around its boundaries) and random protocols from the property tests go
through `run_elm`, one node process per protocol with all its records. Every
criterion value, part value and status must be the Python engine's.

The one thing ELM cannot say is a number with more than 8 decimal places
(CQL's Decimal has a scale of 8: the ELM rounds every result to it, as a
conformant engine does); cql-execution also holds decimals as binary
doubles, exact after that rounding only below 10^7. A record whose
evaluation meets such a number anywhere (the Python engine's trace shows
every intermediate value) is compared too, but a disagreement there is
allowed and counted; every other record must agree exactly.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import critlang
from critlang.decimals import ARITHMETIC
from critlang.diagnostics import CritError
from critlang.protocol_tests import example_record
from tests.cql.engine import run_elm, run_many, unavailable
from tests.properties.test_evaluator import ctd_records, random_protocols, records_for

ROOT = Path(__file__).resolve().parents[2]
PROTOCOLS = sorted((ROOT / "protocols").glob("*.crit"))
LIMIT = Decimal(10) ** 7

pytestmark = pytest.mark.skipif(
    (reason := unavailable()) is not None, reason=reason or "cql-execution is installed"
)

SETTINGS = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


def expected(protocol: critlang.Protocol, record: Mapping[str, Any]) -> dict[str, Any]:
    result = protocol.evaluate(record)
    criteria: dict[str, str] = {}
    for criterion in result.criteria:
        criteria[criterion.id] = criterion.value_word
        for part in criterion.parts:
            criteria[f"{criterion.id}.{part.name}"] = part.value_word
    return {"status": result.status, "criteria": criteria}


def within_cql_decimal(protocol: critlang.Protocol, record: Mapping[str, Any]) -> bool:
    """Whether every number met while screening the record fits CQL's Decimal exactly."""
    _, env = protocol.intake(record, 1)
    with decimal.localcontext(ARITHMETIC):
        trace = protocol.compiled.trace(env)
    for value in trace:
        if isinstance(value, Decimal):
            exponent = value.normalize().as_tuple().exponent
            assert isinstance(exponent, int)
            if exponent < -8 or abs(value) >= LIMIT:
                return False
    return True


def compare(cases: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]) -> list[Mapping[str, Any]]:
    """Assert agreement on every record within CQL's Decimal; the others that disagree.

    All the protocols and their records go through one node process."""
    differ: list[Mapping[str, Any]] = []
    for (source, records), results in zip(cases, run_many(cases), strict=True):
        protocol = critlang.compile_source(source)
        for record, got in zip(records, results, strict=True):
            if got == expected(protocol, record):
                continue
            assert not within_cql_decimal(protocol, record), (source, record, got)
            differ.append(record)
    return differ


@pytest.mark.parametrize("path", PROTOCOLS, ids=[p.stem for p in PROTOCOLS])
def test_example_patients_agree(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    protocol = critlang.compile_source(source, str(path))
    records = [
        example_record(e, protocol.checked.protocol) for e in protocol.checked.protocol.examples
    ]
    assert records, "a protocol in protocols/ has example patients"
    assert compare([(source, records)]) == []


CTD_ILD = (ROOT / "protocols" / "ctd_ild.crit").read_text(encoding="utf-8")


@SETTINGS
@given(st.lists(ctd_records(gaps=True), min_size=15, max_size=15))
def test_ctd_ild_boundary_records_agree(records: list[dict[str, Any]]) -> None:
    # The boundary values of the property tests: FVC 3.0 -> 2.7 is exactly a 10% decline.
    compare([(CTD_ILD, records)])


def compiles(source: str) -> bool:
    try:
        critlang.compile_source(source)
    except CritError:
        return False
    return True


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]]]:
    generated = draw(random_protocols().filter(lambda g: compiles(g.source)))
    records = draw(st.lists(records_for(generated.elements), min_size=1, max_size=10))
    return generated.source, records


@SETTINGS
@given(st.lists(cases(), min_size=4, max_size=4))
def test_random_protocols_agree(drawn: list[tuple[str, list[dict[str, Any]]]]) -> None:
    compare(drawn)


def test_division_by_zero_is_unknown() -> None:
    source = """protocol zero
data
  a: number
  b: number
inclusion I1 "ratio"
  met when a / b > 1
exclusion E1 "zero over zero"
  met when (a - a) / (b - b) = 0
"""
    got = run_elm(source, [{"a": 2, "b": 0}, {"a": 0, "b": 0}, {"a": 3, "b": 2}])
    assert [g["criteria"] for g in got] == [
        {"I1": "unknown", "E1": "unknown"},
        {"I1": "unknown", "E1": "unknown"},
        {"I1": "true", "E1": "unknown"},
    ]


def test_beyond_eight_places_is_the_listed_difference() -> None:
    # 1/3 of the data needs more than 8 places: CQL rounds it to 0.33333333,
    # critlang keeps 28 digits.
    source = """protocol third
data
  a: number
  b: number
inclusion I1 "a third"
  met when a / b > 0.33333333
"""
    protocol = critlang.compile_source(source)
    record = {"a": 1, "b": 3}
    assert not within_cql_decimal(protocol, record)
    assert expected(protocol, record)["criteria"] == {"I1": "true"}
    assert run_elm(source, [record])[0]["criteria"] == {"I1": "false"}


def test_factors_that_do_not_terminate_are_multiplied_through() -> None:
    # An hour is 1/168 of a week and a month 1461/336 weeks: neither has 8 places.
    # The comparison is written 336 * weeks + 2 * hours > 1461, exact in CQL too.
    source = """protocol month
data
  weeks: duration 'wk'
  hours: duration 'h'
  a: number
inclusion I1 "more than a month in all"
  met when weeks + hours > 1 'mo'
inclusion I2 "a third of a"
  met when a / 3 > 0.33333333
"""
    records = [
        {"weeks": 0, "hours": Decimal("730.500001"), "a": 1},
        {"weeks": 4, "hours": Decimal("58.500001"), "a": Decimal("0.99999999")},
        {"weeks": 4, "hours": Decimal("58.5"), "a": Decimal("0.99999998")},
    ]
    protocol = critlang.compile_source(source)
    assert not any(within_cql_decimal(protocol, r) for r in records)
    got = run_elm(source, records)
    assert got == [expected(protocol, r) for r in records]
    assert [g["criteria"] for g in got] == [
        {"I1": "true", "I2": "true"},
        {"I1": "true", "I2": "false"},
        {"I1": "false", "I2": "false"},
    ]


def test_decimal_arithmetic_is_exact_to_eight_places() -> None:
    # Binary floating point gets each of these wrong (0.1 + 0.2 is 0.30000000000000004);
    # the ELM rounds every result to CQL's 8 places, so cql-execution gets them right.
    source = """protocol float_traps
data
  a: number
  b: number
inclusion I1 "sum"
  met when a + b = 0.3
inclusion I2 "difference"
  met when 0.3 - b = a
inclusion I3 "product"
  met when a * 3 = 0.3
"""
    record = {"a": Decimal("0.1"), "b": Decimal("0.2")}
    got = run_elm(source, [record])
    assert got == [expected(critlang.compile_source(source), record)]
    assert got[0]["criteria"] == {"I1": "true", "I2": "true", "I3": "true"}


EVERY_CONSTRUCT = """protocol every_construct
data
  visit: date
  arm: one of (a, b, c)
  tags: set of (x, y, z)
  weight: quantity 'kg'
  before: quantity 'kg'
  n: number
  ok: boolean
constant cutoff = 2024-01-31
define gain = change from before to weight
inclusion I1 "dates"
  met when visit >= cutoff and visit between 2023-01-01 and 2025-12-31
inclusion I2 "counting"
  met when at least 2 of [
    a "in arm": arm in (a, b),
    b "tagged" applies when ok: tags includes all of (x, y),
    c: tags includes any of (z),
    d "heavy": weight > 70000 'g' unless n < 0
  ]
exclusion E1 "gain"
  applies when arm != c
  met when gain between 10% and 20% exclusive or n * 2.5 = 5
"""


def test_every_construct_agrees() -> None:
    records: list[dict[str, Any]] = [
        {},
        {"visit": "2024-01-31", "arm": "a", "tags": ["x", "y"], "ok": True},
        {"visit": "2024-01-30", "arm": "c", "tags": [], "weight": 71, "n": 1},
        {"visit": "2026-01-01", "tags": ["z"], "weight": 80, "before": 70, "n": 2},
        {"arm": "b", "weight": 77, "before": 70, "ok": False, "tags": ["x"]},
        {"arm": "b", "weight": 72, "before": 60, "n": -1, "ok": True},
        {"weight": 70, "before": 0, "n": "2"},  # refused: n is not a number
    ]
    got = run_elm(EVERY_CONSTRUCT, records)
    protocol = critlang.compile_source(EVERY_CONSTRUCT)
    assert got[-1] == {"status": "error", "criteria": {}}
    assert got[:-1] == [expected(protocol, r) for r in records[:-1]]
    # The records reach every value: true, false, unknown and not applicable.
    words = {w for g in got for w in g["criteria"].values()}
    assert words == {"true", "false", "unknown", "not applicable"}
