from decimal import Decimal
from pathlib import Path

import pytest

from critlang import syntax as s
from critlang.check import check_source
from critlang.diagnostics import CritError
from critlang.parser import parse, parse_recovering

ROOT = Path(__file__).resolve().parent.parent
CTD_ILD = ROOT / "protocols" / "ctd_ild.crit"


def test_ctd_ild_parses_with_every_criterion() -> None:
    protocol = parse(CTD_ILD.read_text(), str(CTD_ILD))
    ids = [(c.kind, c.id.text) for c in protocol.criteria]
    assert ids == [("inclusion", f"I{n}") for n in range(1, 6)] + [
        ("exclusion", f"E{n}") for n in range(1, 6)
    ]


def test_ctd_ild_is_clean() -> None:
    checked, diagnostics = check_source(CTD_ILD.read_text(), str(CTD_ILD))
    assert checked is not None
    assert diagnostics == []


def test_quantity_literal_keeps_exact_decimal_and_span() -> None:
    protocol = parse("protocol p\ninclusion I1 \"t\" met when x > 1.40 'mg/dL'", "f.crit")
    condition = protocol.criteria[0].condition
    assert isinstance(condition, s.Compare)
    assert condition.right == s.QuantityLit(
        Decimal("1.40"), "mg/dL", s.Span("f.crit", 2, 31, 2, 43)
    )


def test_syntax_error_is_a_diagnostic_with_position() -> None:
    with pytest.raises(CritError) as raised:
        parse('protocol p\ninclusion I1 "t" met when age > 20 a\n', "f.crit")
    (diagnostic,) = raised.value.diagnostics
    assert (diagnostic.code, diagnostic.span.line, diagnostic.span.column) == ("CRIT001", 2, 36)
    assert diagnostic.hint is not None and "quoted" in diagnostic.hint


BROKEN = """protocol p
data
  age: quantity 'a'
  weight quantity 'kg'
  smoker: boolean
inclusion I1 "Adult" met when age >= 18 'a' &&
inclusion I2 "Light" met when weight < 100 'kg'
exclusion E1 "Smoker" met when smoker or
example "e" { age = 40 'a' } expect eligible
"""


def test_every_broken_item_is_reported_and_the_rest_is_kept() -> None:
    protocol, diagnostics = parse_recovering(BROKEN, "f.crit")
    assert [(d.span.line, d.span.column) for d in diagnostics] == [(4, 10), (6, 45), (8, 39)]
    assert protocol is not None
    assert [e.name.text for e in protocol.elements] == ["age", "smoker"]
    assert [c.id.text for c in protocol.criteria] == ["I2"]
    assert [e.title for e in protocol.examples] == ["e"]
    with pytest.raises(CritError) as raised:
        parse(BROKEN, "f.crit")
    assert raised.value.diagnostics == tuple(diagnostics)


def test_a_broken_header_stops_recovery() -> None:
    protocol, diagnostics = parse_recovering('protocol\ninclusion I1 "t" met when a\n', "f.crit")
    assert protocol is None
    assert len(diagnostics) == 1


@pytest.mark.parametrize(
    ("condition", "hint"),
    [
        ("alt > 2 x alt_uln", "to multiply, write '*', as in 2 * alt_uln"),
        ("d within 6 'mo'", "a window is measured in calendar units: write months"),
        ("g not in (a, b)", "'not' goes before the condition it negates, as in not (g in (a, b))"),
        ("m = ()", "write not (m includes any of (a, b))"),
        ("g is a", "compare with '=' or '!=', or test a list with 'in (...)', as in g = a"),
    ],
)
def test_english_words_get_the_operator_they_mean(condition: str, hint: str) -> None:
    with pytest.raises(CritError) as raised:
        parse(f'protocol p\ninclusion I1 "t" met when {condition}\n', "f.crit")
    (diagnostic,) = raised.value.diagnostics
    assert diagnostic.hint is not None and hint in diagnostic.hint


def condition_of(source: str) -> s.Expr:
    """The condition of the single criterion in a one-criterion protocol."""
    protocol = parse(f'protocol p\ninclusion I1 "t" met when {source}\n', "f.crit")
    return protocol.criteria[0].condition


def test_unless_binds_looser_than_or() -> None:
    condition = condition_of("a or b unless c")
    assert isinstance(condition, s.Unless)
    assert isinstance(condition.rule, s.Or)
    assert isinstance(condition.exception, s.Ref) and condition.exception.name == "c"


def test_not_binds_tighter_than_and_which_binds_tighter_than_or() -> None:
    condition = condition_of("a or not b and c")
    assert isinstance(condition, s.Or)
    assert isinstance(condition.right, s.And)
    assert isinstance(condition.right.left, s.Not)


def test_arithmetic_precedence_and_units() -> None:
    condition = condition_of("dose / weight + 1 'mg/kg' * 2 > 0.8 'mg/kg/d'")
    assert isinstance(condition, s.Compare) and condition.op == ">"
    total = condition.left
    assert isinstance(total, s.Arithmetic) and total.op == "+"
    assert isinstance(total.left, s.Arithmetic) and total.left.op == "/"
    assert isinstance(total.right, s.Arithmetic) and total.right.op == "*"
    assert condition.right.value == Decimal("0.8") and condition.right.unit == "mg/kg/d"


def test_between_is_inclusive_unless_marked_exclusive() -> None:
    inclusive = condition_of("x between 5% and 10%")
    exclusive = condition_of("x between 5% and 10% exclusive")
    assert isinstance(inclusive, s.Between) and not inclusive.exclusive
    assert isinstance(exclusive, s.Between) and exclusive.exclusive
    assert inclusive.low == s.QuantityLit(Decimal(5), "%", inclusive.low.span)


def test_between_keeps_its_own_and_apart_from_a_following_and() -> None:
    condition = condition_of("age between 20 'a' and 80 'a' and known")
    assert isinstance(condition, s.And)
    assert isinstance(condition.left, s.Between)
    assert isinstance(condition.right, s.Ref)


def test_membership_forms() -> None:
    member = condition_of("sex in (female, male)")
    any_of = condition_of("dx includes any of (sle, ra)")
    all_of = condition_of("dx includes all of (sle)")
    assert isinstance(member, s.Member) and [v.text for v in member.values] == ["female", "male"]
    assert isinstance(any_of, s.Includes) and any_of.quantifier == "any"
    assert isinstance(all_of, s.Includes) and all_of.quantifier == "all"


def test_relative_change_in_both_directions() -> None:
    decline = condition_of("decline from fvc0 to fvc1 > 10%")
    change = condition_of("change from fvc0 to fvc1 >= 5%")
    assert isinstance(decline, s.Compare) and isinstance(decline.left, s.RelativeChange)
    assert decline.left.direction == "decline"
    assert isinstance(change, s.Compare) and isinstance(change.left, s.RelativeChange)
    assert change.left.direction == "change"


def test_quantifiers_with_named_sub_criteria_and_applicability() -> None:
    condition = condition_of('at least 2 of [a "First": x, b applies when w: y, z,]')
    assert isinstance(condition, s.Quantified)
    assert (condition.quantifier, condition.count) == ("at_least", 2)
    first, second, third = condition.items
    assert isinstance(first, s.SubCriterion) and first.title == "First"
    assert first.applies_when is None
    assert isinstance(second, s.SubCriterion) and second.title is None
    assert isinstance(second.applies_when, s.Ref) and second.applies_when.name == "w"
    assert isinstance(third, s.Ref)


def test_header_data_constants_definitions_and_comments() -> None:
    source = '''# leading comment
protocol trial  # trailing comment
  title "T"
  sites "A", "B"
  status recruiting
  summary """
    Two lines,
    dedented.
  """
data
  age: quantity 'a' range 0 to 130 label "Age"
  sex: one of (female, male)
  dx: set of (sle, ra)
  onset: date
  weeks: duration 'wk'
  consent: attestation by "the investigator" and "a witness"
  score: number range -5 to 5
  creatinine: quantity 'mg/dL' molar mass 113.12 'g/mol'
constant limit = 1.4 'mg/dL' label "Limit"
define old = age > 65 'a'
exclusion E1 "Old" applies when consent met when old and onset < 2020-01-31
'''
    protocol = parse(source, "f.crit")
    assert protocol.header.sites == ("A", "B")
    assert protocol.header.summary == "Two lines,\ndedented."
    kinds = {e.name.text: type(e.type).__name__ for e in protocol.elements}
    assert kinds == {
        "age": "QuantityType",
        "sex": "EnumType",
        "dx": "SetType",
        "onset": "DateType",
        "weeks": "DurationType",
        "consent": "AttestationType",
        "score": "NumberType",
        "creatinine": "QuantityType",
    }
    consent = protocol.elements[5].type
    assert isinstance(consent, s.AttestationType)
    assert consent.attesters == ("the investigator", "a witness")
    assert protocol.elements[6].plausible_range == (Decimal(-5), Decimal(5))
    assert protocol.elements[7].molar_mass is not None
    assert protocol.constants[0].label == "Limit"
    criterion = protocol.criteria[0]
    assert criterion.kind == "exclusion"
    assert isinstance(criterion.applies_when, s.Ref)
    condition = criterion.condition
    assert isinstance(condition, s.And) and isinstance(condition.right, s.Compare)
    assert isinstance(condition.right.right, s.DateLit)


def test_example_blocks() -> None:
    source = (
        "protocol p\ndata\n  age: quantity 'a'\n  dx: set of (sle)\n"
        "inclusion I1 \"t\" met when age > 1 'a'\n"
        "example \"one\" { age = 45 'a', dx = (sle), } expect eligible\n"
    )
    (example,) = parse(source, "f.crit").examples
    assert example.title == "one" and example.expect.text == "eligible"
    assert [f.name.text for f in example.fields] == ["age", "dx"]
    assert isinstance(example.fields[1].value, tuple)


def test_a_bad_date_after_a_syntax_error_is_reported_too() -> None:
    source = (
        "protocol p\n"
        'inclusion I1 "a" met when d > 2024-02-30\n'
        'inclusion I2 "b" met when a &&\n'
        'inclusion I3 "c" met when x\n'
    )
    protocol, diagnostics = parse_recovering(source, "f.crit")
    assert [d.span.line for d in diagnostics] == [2, 3]
    assert "not a calendar date" in diagnostics[0].message
    assert protocol is not None
    assert [c.id.text for c in protocol.criteria] == ["I3"]
