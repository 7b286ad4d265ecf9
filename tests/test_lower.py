"""Lowering: the checked tree becomes the core IR, with the semantics decided there."""

from __future__ import annotations

import pickle
from fractions import Fraction

import pytest

import critlang
from critlang import ir
from critlang.check import check_source
from critlang.lower import Lowered, lower

HEADER = """protocol p
data
  x: boolean
  y: boolean
  v: number
  lo: number
  creatinine: quantity 'umol/L' molar mass 113.12 'g/mol'
"""


def lowered(body: str) -> Lowered:
    checked, diagnostics = check_source(HEADER + body, "p.crit")
    assert checked is not None, diagnostics
    return lower(checked)


def only_criterion(body: str) -> ir.Criterion:
    (criterion,) = lowered(body).program.criteria
    return criterion


def test_ids_are_unique_and_operands_come_first() -> None:
    program = lowered(
        'inclusion I1 "t"\n  met when x and (v between lo and 10 or not y)\n'
        "exclusion E1 \"e\"\n  met when creatinine > 1.4 'mg/dL'\n"
    ).program
    nodes = list(program.nodes())
    ids = [n.id for n in nodes]
    assert len(set(ids)) == len(ids) and max(ids) < program.size
    position = {n.id: i for i, n in enumerate(nodes)}
    for node in nodes:
        assert all(position[c.id] < position[node.id] for c in ir.children(node))


def test_between_is_the_kleene_conjunction_of_two_comparisons() -> None:
    criterion = only_criterion('inclusion I1 "t"\n  met when v between lo and 10\n')
    assert isinstance(criterion.value, ir.And)
    low, high = criterion.value.operands
    assert isinstance(low, ir.Compare) and isinstance(high, ir.Compare)
    assert (low.op, high.op) == ("<=", "<=")
    protocol = critlang.compile_source(
        HEADER + 'inclusion I1 "t"\n  met when v between lo and 10\n'
    )
    # lo unknown, v above the known upper bound: false, not unknown
    assert protocol.evaluate({"v": 11}).criteria[0].value is False
    assert protocol.evaluate({"v": 9}).criteria[0].value is None


def test_unit_factors_are_exact_rationals_folded_into_literals() -> None:
    criterion = only_criterion("exclusion E1 \"e\"\n  met when creatinine > 1.4 'mg/dL'\n")
    assert isinstance(criterion.value, ir.Compare)
    right = criterion.value.right
    assert isinstance(right, ir.Const)
    # 1.4 mg/dL of creatinine (113.12 g/mol) in umol/L, exactly
    assert right.value == Fraction(14, 10) * Fraction(10**4, 1) / Fraction(11312, 100)


def test_a_part_that_does_not_apply_is_left_out_whatever_stands_above_it() -> None:
    source = HEADER + (
        'exclusion E1 "not with applicability"\n'
        '  met when not any of [\n    a "A" applies when y: x\n  ]\n'
    )
    protocol = critlang.compile_source(source)
    record = {"x": False, "y": False, "v": 1, "lo": 0}
    result = protocol.evaluate(record)
    assert result.status == protocol.status(record) == "ineligible"
    assert result.criteria[0].reason == "a: not applicable (y: no)"


@pytest.mark.parametrize(
    ("quantifier", "expected"),
    [("all of", True), ("any of", False), ("at least 1 of", False)],
)
def test_a_list_with_nothing_applicable(quantifier: str, expected: bool) -> None:
    protocol = critlang.compile_source(
        HEADER + f'inclusion I1 "t"\n  met when {quantifier} [\n    a applies when y: x\n  ]\n'
    )
    assert protocol.evaluate({"y": False}).criteria[0].value is expected


def test_parts_with_applicability_may_stand_in_a_definition() -> None:
    protocol = critlang.compile_source(
        HEADER + "define either = any of [\n  a applies when y: x,\n  b: v > 1\n]\n"
        'inclusion I1 "t"\n  met when either\n'
    )
    assert protocol.evaluate({"y": False, "x": True, "v": 0}).criteria[0].value is False
    assert protocol.evaluate({"y": True, "x": True, "v": 0}).criteria[0].value is True


def test_wide_lists_and_long_chains_compile_flat() -> None:
    items = ",\n    ".join(["x"] * 100)
    wide = critlang.compile_source(
        HEADER + f'inclusion I1 "t"\n  met when all of [\n    {items}\n  ]\n'
    )
    assert wide.status({"x": True, "v": 1}) == "eligible"
    chain = critlang.compile_source(
        HEADER + 'inclusion I1 "t"\n  met when ' + " or ".join(["x"] * 200) + "\n"
    )
    (criterion,) = chain.lowered.program.criteria
    assert isinstance(criterion.value, ir.Or) and len(criterion.value.operands) == 200
    assert chain.status({"x": False}) == "ineligible"
    assert chain.evaluate({}).status == "undetermined"


def test_a_protocol_pickles_and_screens_the_same_after() -> None:
    protocol = critlang.load("protocols/ctd_ild.crit")
    copy = pickle.loads(pickle.dumps(protocol))
    record = {"age": 45, "sex": "male", "creatinine": {"value": 150, "unit": "umol/L"}}
    assert copy.evaluate(record).to_dict() == protocol.evaluate(record).to_dict()
