"""Decimal arithmetic as critlang defines it: 28 significant digits, half to even.

Every engine that computes with decimals (Python, JavaScript) rounds exactly
so, whatever context its caller has set, and writes a rational constant of
the IR as the same 28-digit decimal, so that they compute the same digits.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from fractions import Fraction

# As CQL's Decimal: 28 significant digits; no traps on inexact results.
ARITHMETIC = decimal.Context(prec=28, rounding=decimal.ROUND_HALF_EVEN)


def to_decimal(value: Fraction) -> Decimal:
    """A fraction as the nearest 28-digit decimal (exact whenever it terminates)."""
    with decimal.localcontext(ARITHMETIC):
        return Decimal(value.numerator) / Decimal(value.denominator)
