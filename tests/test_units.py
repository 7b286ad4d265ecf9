"""Units: the UCUM functional tests, UCUM's definitions table, clinical kinds.

The functional tests are the official UCUM suite (`tests/data/ucum/`); the
definitions table is the `ucum-essence.xml` critlang ships.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from fractions import Fraction
from importlib import resources
from pathlib import Path
from xml.etree import ElementTree

import pytest
from hypothesis import given
from hypothesis import strategies as st

from critlang import units

SUITE = ElementTree.parse(Path(__file__).parent / "data" / "ucum" / "UcumFunctionalTests.xml")
ESSENCE = ElementTree.fromstring(
    resources.files("critlang").joinpath("data/ucum-essence.xml").read_bytes()
)
NS = "{http://unitsofmeasure.org/ucum-essence}"


def cases(section: str) -> list[dict[str, str]]:
    found = SUITE.getroot().find(section)
    assert found is not None
    return [case.attrib for case in found.iter("case")]


def significant(text: str) -> int:
    """The precision the suite states: the significant digits of its outcome."""
    digits = Decimal(text).as_tuple().digits
    return len(digits) - next((i for i, d in enumerate(digits) if d), len(digits) - 1)


def rounded(value: Fraction, digits: int) -> Decimal:
    context = decimal.Context(prec=digits, rounding=decimal.ROUND_HALF_EVEN)
    return context.divide(Decimal(value.numerator), Decimal(value.denominator))


def same_at_stated_precision(value: Fraction, outcome: str) -> bool:
    return rounded(value, significant(outcome)) == Decimal(outcome)


@pytest.mark.parametrize("case", cases("validation"), ids=lambda c: f"{c['id']}:{c['unit']}")
def test_ucum_validation(case: dict[str, str]) -> None:
    assert units.is_valid(case["unit"]) is (case["valid"] == "true")
    if case["valid"] == "false":
        with pytest.raises(units.UnitError):
            units.check(case["unit"])


@pytest.mark.parametrize("case", cases("conversion"), ids=lambda c: c["id"])
def test_ucum_conversion(case: dict[str, str]) -> None:
    value = Fraction(case["value"]) * units.ucum_factor(case["srcUnit"], case["dstUnit"])
    assert same_at_stated_precision(value, case["outcome"])


@pytest.mark.parametrize("section", ["multiplication", "division"])
def test_ucum_multiplication_and_division(section: str) -> None:
    for case in cases(section):
        v1, v2 = Fraction(case["v1"]), Fraction(case["v2"])
        if section == "multiplication":
            value, unit = v1 * v2, units.multiply(case["u1"], case["u2"])
        else:
            value, unit = v1 / v2, units.divide(case["u1"], case["u2"])
        result = value * units.ucum_factor(unit, case["uRes"] or units.DIMENSIONLESS)
        assert same_at_stated_precision(result, case["vRes"]), case["id"]


def test_the_suite_is_complete() -> None:
    assert len(cases("validation")) > 500
    assert len(cases("conversion")) == 30


# ---- UCUM's definitions table ------------------------------------------------------


def definitions() -> list[ElementTree.Element]:
    return list(ESSENCE.iter(f"{NS}unit"))


@pytest.mark.parametrize("unit", definitions(), ids=lambda u: u.get("Code"))
def test_every_definition_is_exact_or_refused(unit: ElementTree.Element) -> None:
    code = unit.get("Code", "")
    value = unit.find(f"{NS}value")
    assert value is not None
    units.check(code)  # every atom of the table is a valid code
    if unit.get("isSpecial") == "yes":
        if code in ("Cel", "[degF]", "[degRe]"):
            assert units.ucum_linear(code, "K")[1] != 0
        else:  # logarithms and the like convert to nothing else, with a message
            with pytest.raises(units.UnitError, match="special UCUM unit"):
                units.ucum_factor(code, value.find(f"{NS}function").get("Unit"))  # type: ignore[union-attr]
        return
    if unit.get("isArbitrary") == "yes":
        assert units.ucum_factor(code, code) == 1
        with pytest.raises(units.UnitError):
            units.ucum_factor(code, units.DIMENSIONLESS)
        return
    definition, number = value.get("Unit", "1"), Fraction(value.get("value", "1"))
    assert units.ucum_factor(code, definition) == number


@pytest.mark.parametrize(
    ("source", "target", "exact"),
    [
        ("m[Hg]", "g/(s2.m)", Fraction(133322000)),
        ("mm[Hg]", "kPa", Fraction(133322, 1000000)),
        ("[Cal]", "cal", Fraction(1000)),
        ("[LPF]", "[HPF]", Fraction(100)),
        ("g%", "g/dL", Fraction(1)),
        ("[lb_av]", "g", Fraction("453.59237")),
        ("mo", "a", Fraction(1, 12)),
        ("G", "T", Fraction(1, 10000)),
        ("Mx", "Wb", Fraction(1, 10**8)),
        ("Oe", "A/m", Fraction(250) / Fraction(units._table().atoms["[pi]"].value)),
        ("10*3/uL", "10*9/L", Fraction(1)),
        ("[in_i'Hg]", "mm[Hg]", Fraction(254, 10)),
    ],
)
def test_factors_that_were_wrong_are_exact(source: str, target: str, exact: Fraction) -> None:
    assert units.ucum_factor(source, target) == exact


def test_mu_0_is_exactly_four_pi_times_ten_to_minus_seven() -> None:
    pi = units._table().atoms["[pi]"].value
    assert units.ucum_factor("[mu_0]", "N/A2") == 4 * pi / 10**7


# ---- clinical kinds ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("mmol/mol", "%"),
        ("[IU]", "%"),
        ("[GPL'U]", "[MPL'U]"),
        ("/mL", "[IU]/mL"),
        ("[arb'U]/mL", "[IU]/mL"),
        ("10*9/L", "[IU]/mL"),
        ("[CFU]/L", "[IU]/mL"),
        ("mL/min", "mL/min/{1.73_m2}"),
        ("mmol/L", "10*9/L"),
        ("mL/dL", "%"),
    ],
)
def test_other_kinds_are_refused(source: str, target: str) -> None:
    assert not units.compatible(source, target)
    with pytest.raises(units.UnitError):
        units.factor(source, target)


@pytest.mark.parametrize(
    ("source", "target", "exact"),
    [
        ("10*3/uL", "10*9/L", Fraction(1)),
        ("/uL", "10*9/L", Fraction(1, 1000)),
        ("m[IU]/mL", "[IU]/L", Fraction(1)),
        ("[iU]/mL", "[IU]/L", Fraction(1000)),
        ("umol/mol", "mmol/mol", Fraction(1, 1000)),
        ("[ppm]", "%", Fraction(1, 10000)),
        ("kPa", "mm[Hg]", Fraction(1000000, 133322)),
        ("(kg)/((cm).(cm))", "kg/m2", Fraction(10000)),
        ("1", "{score}", Fraction(1)),
    ],
)
def test_same_kind_converts_exactly(source: str, target: str, exact: Fraction) -> None:
    assert units.factor(source, target) == exact


def test_temperatures_convert_with_their_offset_but_not_by_a_factor() -> None:
    assert units.linear("[degF]", "Cel") == (Fraction(5, 9), Fraction(-160, 9))
    assert units.linear("Cel", "K") == (Fraction(1), Fraction("273.15"))
    with pytest.raises(units.UnitError, match="by a factor"):
        units.factor("Cel", "[degF]")


def test_molar_mass_converts_mass_and_substance() -> None:
    creatinine = Fraction("113.12")
    assert units.factor("mg/dL", "umol/L", creatinine) == Fraction(10000) / creatinine
    with pytest.raises(units.UnitError):
        units.factor("mg/dL", "umol/L")


@given(st.text(max_size=30))
def test_no_text_crashes_the_units(text: str) -> None:
    valid = units.is_valid(text)
    try:
        units.factor(text, "g")
        units.kind(text)
        units.dimension(text)
    except units.UnitError:
        pass
    else:
        assert valid


@given(st.text(alphabet="m/.()[]{}0123456789*+-gLs%'", max_size=20))
def test_no_ucum_like_text_crashes_the_units(text: str) -> None:
    try:
        units.linear(text, "mg/L")
        units.display(text)
    except units.UnitError:
        pass


@pytest.mark.parametrize(
    ("spelling", "code"),
    [
        ("mIU/mL", "m[IU]/mL"),
        ("IU/L", "[IU]/L"),
        ("mmHg", "mm[Hg]"),
        ("mcg/L", "ug/L"),
        ("kg/m^2", "kg/m2"),
        ("x10^9/L", "10*9/L"),
        ("mL/min/1.73m2", "mL/min/{1.73_m2}"),
        ("µmol/L", "umol/L"),
        ("furlong", None),
        ("mg/dL", None),
    ],
)
def test_everyday_spellings_get_their_ucum_code(spelling: str, code: str | None) -> None:
    assert units.suggest(spelling) == code


@pytest.mark.parametrize(
    ("code", "shown"),
    [
        ("mm[Hg]", "mmHg"),
        ("umol/L", "µmol/L"),
        ("10*9/L", "\N{MULTIPLICATION SIGN}10⁹/L"),
        ("mL/min/{1.73_m2}", "mL/min/1.73 m²"),
        ("a", "years"),
        ("kg/m2", "kg/m²"),
        ("[IU]/mL", "IU/mL"),
        ("Cel", "°C"),
        ("ug/(kg.d)", "µg/(kg·d)"),
        ("not a unit", "not a unit"),
    ],
)
def test_units_are_displayed_as_people_write_them(code: str, shown: str) -> None:
    assert units.display(code) == shown


def test_a_derived_unit_is_hinted_by_the_usual_unit_of_its_kind() -> None:
    assert units.usual("(kg)/((cm).(cm))") == "kg/m2"
    assert units.usual("mg/dL") == "mg/dL"


CLINICAL = [
    "mg/dL",
    "g/L",
    "ug/mL",
    "mmol/L",
    "umol/L",
    "10*9/L",
    "/uL",
    "10*3/uL",
    "kPa",
    "mm[Hg]",
    "[in_i'Hg]",
    "%",
    "[ppm]",
    "1",
    "mmol/mol",
    "umol/mol",
    "[IU]/L",
    "m[IU]/mL",
    "[iU]/mL",
    "a",
    "mo",
    "wk",
    "d",
    "kg/m2",
    "g/cm2",
    "[lb_av]",
    "kg",
]


@given(st.sampled_from(CLINICAL), st.sampled_from(CLINICAL), st.sampled_from(CLINICAL))
def test_factors_compose_and_invert_exactly(a: str, b: str, c: str) -> None:
    if not (units.compatible(a, b) and units.compatible(b, c)):
        return
    assert units.factor(a, b) * units.factor(b, a) == 1
    assert units.factor(a, c) == units.factor(a, b) * units.factor(b, c)
    assert units.same_kind(a, c)
