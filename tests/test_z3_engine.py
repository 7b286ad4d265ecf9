"""The z3 engine against the Python engine: with a record's values fixed, the same answers.

For random protocols (the generator of `tests/properties/test_evaluator.py`)
and for every protocol in `protocols/` and `tests/cases/analyze/`, the z3
formula of every criterion, every part and the status, with each data
element fixed to the record's value (or to "unknown" when the record lacks
it), must take the value `Protocol.evaluate` gives. The conformance corpus
(`tests/conformance/`) runs the same engine through `tests/z3engine.py` too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

pytest.importorskip("z3")

import critlang
from tests.properties.test_evaluator import (
    CTD_VALUES,
    SETTINGS,
    random_protocols,
    records_for,
)
from tests.z3engine import Z3Engine

ROOT = Path(__file__).resolve().parent.parent
PROTOCOLS = sorted([*ROOT.glob("protocols/*.crit"), *ROOT.glob("tests/cases/analyze/*.crit")])


def python_values(
    protocol: critlang.Protocol, record: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    result = protocol.evaluate(record)
    out: dict[str, Any] = {}
    for criterion in result.criteria:
        out[criterion.id] = criterion.value
        for part in criterion.parts:
            out[f"{criterion.id}.{part.name}"] = part.value
    return out, result.status


@settings(SETTINGS, max_examples=50)
@given(st.data())
def test_z3_engine_matches_python_on_random_protocols(data: st.DataObject) -> None:
    generated = data.draw(random_protocols(), label="protocol")
    try:
        protocol = critlang.compile_source(generated.source, "random.crit")
    except critlang.CritError:
        # Whether every generated protocol compiles is tests/properties/test_evaluator.py's
        # question (a ratio of two concentrations beside '1' is refused since the UCUM
        # rewrite); this test compares two engines on the protocols that do.
        reject()
    engine = Z3Engine(protocol)
    gaps = data.draw(st.booleans(), label="gaps")
    records = data.draw(st.lists(records_for(generated.elements, gaps), min_size=1, max_size=4))
    for record in records:
        assert engine.values(record) == python_values(protocol, record), generated.source


@pytest.fixture(scope="module", params=PROTOCOLS, ids=lambda path: path.name)
def engine(request: pytest.FixtureRequest) -> Z3Engine:
    return Z3Engine(critlang.load(request.param))


def example_records(protocol: critlang.Protocol) -> list[dict[str, Any]]:
    """The records of `protocols/NAME.examples.jsonl`, for a protocol that has them."""
    path = ROOT / "protocols" / f"{protocol.checked.protocol.name.text}.examples.jsonl"
    if not path.exists():
        return []
    lines = path.read_text("utf-8").splitlines()
    return [json.loads(line)["record"] for line in lines if line]


def protocol_records(protocol: critlang.Protocol, gaps: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Records on and around every bound of ctd_ild; with `gaps` any field may be absent.

    A protocol with example records (dates, histories) draws one of them instead,
    and with `gaps` leaves out any of its fields."""
    examples = example_records(protocol)
    if examples:
        chosen = st.sampled_from(examples)
        if not gaps:
            return chosen
        return chosen.flatmap(
            lambda r: st.sets(st.sampled_from(sorted(r))).map(
                lambda dropped: {k: v for k, v in r.items() if k not in dropped}
            )
        )
    names = [e.name.text for e in protocol.checked.protocol.elements]
    fields = {n: CTD_VALUES.get(n, st.booleans()) for n in names}
    if gaps:
        fields = {n: st.one_of(st.none(), values) for n, values in fields.items()}
    return st.fixed_dictionaries(fields).map(
        lambda r: {k: v for k, v in r.items() if v is not None}
    )


def test_z3_engine_matches_python_on_the_protocols(engine: Z3Engine) -> None:
    @settings(SETTINGS, max_examples=50)
    @given(st.data())
    def check(data: st.DataObject) -> None:
        gaps = data.draw(st.booleans(), label="gaps")
        record = data.draw(protocol_records(engine.protocol, gaps), label="record")
        assert engine.values(record) == python_values(engine.protocol, record)

    check()
