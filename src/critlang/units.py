"""UCUM units: validation, dimensions and exact conversion factors.

Units are parsed by ucumvert into pint, whose registry is built with
`non_int_type=Fraction` so that every conversion factor is an exact rational
number (1 mo = 1/12 a, 1 mm[Hg] = 133322387415/10**9 Pa). Factors are computed
when a protocol is compiled or a record is taken in, never while evaluating.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from typing import Any

from pint.errors import DimensionalityError, PintError
from ucumvert import PintUcumRegistry

DIMENSIONLESS = "1"


class UnitError(ValueError):
    """A unit code that is not UCUM, or two units that do not convert."""


@functools.cache
def _registry() -> Any:
    return PintUcumRegistry(non_int_type=Fraction)


@functools.cache
def _quantity(code: str) -> Any:
    """One of `code`, as an exact pint quantity (UCUM codes may carry a factor, 10*3/uL)."""
    registry = _registry()
    if code == DIMENSIONLESS:
        return registry.Quantity(Fraction(1), registry.dimensionless)
    try:
        parsed = registry.from_ucum(code)
    except Exception as error:  # ucumvert raises lark errors for bad codes
        raise UnitError(f"'{code}' is not a UCUM unit") from error
    if isinstance(parsed, str | int | float | Fraction):
        # ucumvert gives a bare annotation ({score}) as its token and {a}/{b} as a
        # number; UCUM reads an annotation as the unit 1.
        magnitude = Fraction(1) if isinstance(parsed, str) else Fraction(parsed)
        return registry.Quantity(magnitude, registry.dimensionless)
    return registry.Quantity(Fraction(parsed.magnitude), parsed.units)


def check(code: str) -> None:
    """Raise UnitError unless `code` is a valid UCUM unit code."""
    _quantity(code)


def is_valid(code: str) -> bool:
    try:
        _quantity(code)
    except UnitError:
        return False
    return True


def dimension(code: str) -> str:
    """The physical dimension of a unit in words, e.g. 'mass/length^3' for mg/dL."""
    powers = dict(_quantity(code).dimensionality)

    def term(name: str, power: object) -> str:
        exponent = abs(int(str(power)))
        return name.strip("[]") + (f"^{exponent}" if exponent != 1 else "")

    above = "*".join(term(n, p) for n, p in powers.items() if int(str(p)) > 0) or "1"
    below = "*".join(term(n, p) for n, p in powers.items() if int(str(p)) < 0)
    if not powers:
        return "dimensionless"
    return f"{above}/{below}" if below else above


def is_time(code: str) -> bool:
    return dimension(code) == "time"


def is_molar_mass(code: str) -> bool:
    return dimension(code) == "mass/substance"


@functools.cache
def factor(source: str, target: str, molar_mass: Fraction | None = None) -> Fraction:
    """The exact number that turns a value in `source` units into `target` units.

    `molar_mass` (g/mol) lets mass and substance concentrations convert, as for
    creatinine in mg/dL and umol/L.
    """
    one = _quantity(source)
    attempts = [one]
    if molar_mass is not None:
        grams_per_mole = _registry().Quantity(molar_mass, _quantity("g/mol").units)
        attempts += [one / grams_per_mole, one * grams_per_mole]
    goal = _quantity(target)
    for attempt in attempts:
        try:
            converted = attempt.to(goal.units)
        except DimensionalityError:
            continue
        except (PintError, TypeError) as error:  # pint cannot take logarithms of a Fraction
            raise UnitError(f"'{source}' does not convert to '{target}' by a factor") from error
        if not _proportional(attempt, goal):
            raise UnitError(f"'{source}' does not convert to '{target}' by a factor")
        return Fraction(converted.magnitude) / Fraction(goal.magnitude)
    raise UnitError(
        f"'{source}' ({dimension(source)}) does not convert to '{target}' ({dimension(target)})"
    )


def _proportional(one: Any, goal: Any) -> bool:
    """Does zero stay zero? Temperatures in 'Cel' and '[degF]' differ by an offset,
    so no single factor converts between them."""
    if one.units == goal.units:
        return True
    zero = _registry().Quantity(Fraction(0), one.units)
    return bool(zero.to(goal.units).magnitude == 0)


def compatible(source: str, target: str, molar_mass: Fraction | None = None) -> bool:
    try:
        factor(source, target, molar_mass)
    except UnitError:
        return False
    return True


def multiply(left: str, right: str) -> str:
    """The UCUM code of a product of two units."""
    if left == DIMENSIONLESS:
        return right
    if right == DIMENSIONLESS:
        return left
    return f"({left}).({right})"


def divide(left: str, right: str) -> str:
    """The UCUM code of a quotient of two units."""
    if right == DIMENSIONLESS:
        return left
    return f"({left})/({right})"
