"""The English words of critlang, in one home: documents and explanations both use them.

Comparisons, arithmetic, counts and units in words, and numbers with their
units. This module imports no Jinja: screening a record needs the words, not
the templates.
"""

from __future__ import annotations

import functools
from decimal import Decimal

from critlang import units

# UCUM codes that read better as words; every other unit is shown as its code.
UNIT_WORDS = {
    "a": ("year", "years"),
    "mo": ("month", "months"),
    "wk": ("week", "weeks"),
    "d": ("day", "days"),
    "h": ("hour", "hours"),
    "min": ("minute", "minutes"),
}
COMPARISONS = {
    ">": "more than",
    ">=": "at least",
    "<": "less than",
    "<=": "at most",
    "=": "equal to",
    "!=": "not equal to",
}
DATE_COMPARISONS = {
    ">": "after",
    ">=": "on or after",
    "<": "before",
    "<=": "on or before",
    "=": "on",
    "!=": "not on",
}
FLIPPED = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "=": "=", "!=": "!="}
NEGATED = {">": "<=", ">=": "<", "<": ">=", "<=": ">", "=": "!=", "!=": "="}
ARITHMETIC = {
    "*": "\N{MULTIPLICATION SIGN}",
    "/": "\N{DIVISION SIGN}",
    "+": "+",
    "-": "\N{MINUS SIGN}",
}
PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
COUNTS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
ALL = "all of the following"
SCORE_GROUP = "only the highest of"
APPROXIMATE = "approximate"
ANY = "at least one of the following"


def points_words(points: Decimal) -> str:
    """A score item's points: '1 point', '2.5 points'."""
    number = (
        format(points.normalize(), "f")
        if points == points.to_integral_value()
        else format(points, "f")
    )
    return f"{number} point" if points == 1 else f"{number} points"


def quantity(value: Decimal, unit: str) -> str:
    """A number with its unit in words where sensible: '20 years', '10%', '80 U/L'."""
    return format(value, "f") + unit_suffix(unit, value == 1)


@functools.cache
def unit_suffix(unit: str, one: bool) -> str:
    """What follows a number in `unit`: '%', ' year' (one) or ' years', ' mg/dL', ''."""
    if unit == "%":
        return "%"
    if unit in ("1", ""):
        return ""
    if unit in UNIT_WORDS:
        singular, plural = UNIT_WORDS[unit]
        return f" {singular if one else plural}"
    return f" {units.display(unit)}"


def rounded(value: Decimal, limit: Decimal | None = None, places: int = 2) -> Decimal:
    """`value` to `places` decimals, or to more where fewer would make it look equal to,
    or on the other side of, `limit`: 29.996 against 30 is 29.996, never 30.

    A value equal to its limit is returned exactly. An explanation that shows
    'about X' must show an X that agrees with the verdict it explains.
    """
    if limit is None:
        return value.quantize(_step(places)).normalize()
    if value == limit:
        return value
    side = value > limit
    while True:
        shown = value.quantize(_step(places))
        if shown != limit and (shown > limit) == side:
            return shown.normalize()
        places += 1


@functools.cache
def _step(places: int) -> Decimal:
    """1 in the last of `places` decimals: 0.01 for two."""
    return Decimal(1).scaleb(-places)


def format_number(value: Decimal) -> str:
    """A decimal as written, without exponent: '0.8', '1200'."""
    return format(value, "f")


def reading(subject: str, given: Decimal, code: str, value: Decimal, unit: str, how: str) -> str:
    """How a value given in a unit of another kind was read: 'HbA1c 64 mmol/mol, read as
    8.00672% by the protocol's conversion 0.09148 \u00d7 value + 2.152'. `how` is the
    formula's text, or '' for a unit the element accepts by its UCUM factor."""
    held = f"{subject} {quantity(given, code)}, read as {quantity(value, unit)}"
    if how:
        return f"{held} by the protocol's conversion {how}"
    return f"{held}: the protocol accepts{unit_suffix(code, False)}"


def calendar_duration(amount: int, unit: str) -> str:
    """`6 months`, `1 year`: a calendar duration (vocab.CalendarUnit) in words."""
    return f"{amount} {unit}" + ("" if abs(amount) == 1 else "s")


def date_difference(unit: str, start: str, end: str | None, reference: str) -> str:
    """'years since birth date', 'months between diagnosis and screening date'."""
    if end is None:
        return f"{unit}s since {start}"
    return f"{unit}s between {start} and {end}"
