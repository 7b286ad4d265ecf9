"""Exact decimal arithmetic in SQL: every number a ratio of two DECIMAL expressions.

Every number is a ratio num / den of two DECIMAL expressions (den > 0,
usually absent), so division never happens in SQL: comparisons
cross-multiply, and a decline of exactly 10% is exactly 10%. Each expression
carries interval bounds and a scale, and is cast to DECIMAL(digits + scale,
scale) after every operation, so DuckDB, Spark and PostgreSQL all type it
alike and none rounds (Spark would silently drop digits from a product typed
wider than 38). An operation that would need more than 38 digits raises
`TooWide`; the query names the criterion or definition that needs it.
"""

from __future__ import annotations

from fractions import Fraction

import attrs
from sqlglot import exp

from critlang.engines.sql import build
from critlang.engines.sql.build import paren

MAX_PRECISION = 38  # the widest DECIMAL that DuckDB, Spark and Postgres share
INT64_DIGITS = 18  # DuckDB multiplies two DECIMALs this narrow in 64 bits


class TooWide(Exception):
    """An operation whose exact result needs more than MAX_PRECISION digits."""


def digits(value: Fraction) -> int:
    """Integer digits needed to hold `value` (|value| < 10 ** digits), at least 1."""
    return max(1, len(str(abs(value.numerator) // value.denominator)))


def places(value: Fraction) -> int | None:
    """Decimal places of `value` written out, or None if it never ends (1/3)."""
    rest, twos, fives = value.denominator, 0, 0
    while rest % 2 == 0:
        rest, twos = rest // 2, twos + 1
    while rest % 5 == 0:
        rest, fives = rest // 5, fives + 1
    return max(twos, fives) if rest == 1 else None


def decimal_type(precision: int, scale: int) -> exp.DataType:
    params = [exp.DataTypeParam(this=exp.Literal.number(n)) for n in (precision, scale)]
    return exp.DataType(this=exp.DType.DECIMAL, expressions=params, nested=False)


@attrs.frozen
class Dec:
    """A DECIMAL expression with bounds on its value and its scale.

    Its SQL type is DECIMAL(width, scale): `width` is the precision the engines
    give the expression as written, at least `precision`; None when it is not
    known (an aggregate), and then it is cast before it is computed with.
    """

    sql: exp.Expr
    low: Fraction
    high: Fraction
    scale: int
    nullable: bool = True
    width: int | None = None

    @property
    def digits(self) -> int:
        return max(digits(self.low), digits(self.high))

    @property
    def precision(self) -> int:
        return self.digits + self.scale

    @property
    def type(self) -> exp.DataType:
        return decimal_type(self.precision, self.scale)

    @property
    def constant(self) -> Fraction | None:
        return self.low if self.low == self.high and not self.nullable else None


def literal(value: Fraction) -> Dec:
    """A terminating decimal as a typed literal: CAST(2.7 AS DECIMAL(2, 1))."""
    count = places(value)
    assert count is not None, "only terminating decimals are literals"
    scaled = str(abs(value.numerator * 10**count // value.denominator)).rjust(count + 1, "0")
    text = f"{scaled[:-count]}.{scaled[-count:]}" if count else scaled
    text = "-" + text if value < 0 else text
    dec = Dec(exp.Literal.number(text), value, value, count, nullable=False)
    return attrs.evolve(dec, sql=build.cast(dec.sql, dec.type), width=dec.precision)


def typed(sql: exp.Expr, low: Fraction, high: Fraction, scale: int, nullable: bool) -> Dec:
    dec = Dec(sql, low, high, scale, nullable)
    if dec.precision > MAX_PRECISION:
        raise TooWide
    return attrs.evolve(dec, sql=build.cast(sql, dec.type), width=dec.precision)


def result(
    sql: exp.Expr, low: Fraction, high: Fraction, scale: int, nullable: bool, width: int | None
) -> Dec:
    """An operation's result: as the engines type it when that is narrow, else cast.

    `width` is the precision every engine gives the operation (the widest of
    their rules). Up to 18 digits DuckDB computes it in 64 bits without
    overflow, Spark neither rounds nor widens past 38 and PostgreSQL's NUMERIC
    is exact: the value is exact as it is, and a CAST would only cost time.
    """
    if width is not None and width <= INT64_DIGITS:
        return Dec(sql, low, high, scale, nullable, width)
    return typed(sql, low, high, scale, nullable)


def tight(a: Dec) -> Dec:
    """`a` cast to its own DECIMAL(precision, scale) if it is typed wider; one whose
    width is not known is left as it is (the operation casts its result)."""
    if a.width is None or a.width == a.precision:
        return a
    return attrs.evolve(a, sql=build.cast(a.sql, a.type), width=a.precision)


def _widths(a: Dec, b: Dec) -> tuple[int, int] | None:
    return None if a.width is None or b.width is None else (a.width, b.width)


def mul(a: Dec, b: Dec) -> Dec:
    if a.constant == 1:
        return b
    if b.constant == 1:
        return a
    corners = [a.low * b.low, a.low * b.high, a.high * b.low, a.high * b.high]
    nullable = a.nullable or b.nullable
    widths = _widths(a, b)
    if widths is not None and widths[0] + widths[1] + 1 <= INT64_DIGITS:
        product = exp.Mul(this=paren(a.sql), expression=paren(b.sql))
        low, high, scale = min(corners), max(corners), a.scale + b.scale
        return result(product, low, high, scale, nullable, sum(widths) + 1)
    a, b = tight(a), tight(b)
    # Spark types a product DECIMAL(p1 + p2 + 1, s1 + s2) and rounds if that is over 38.
    if a.precision + b.precision + 1 > MAX_PRECISION:
        raise TooWide
    left = a.sql
    if a.precision + b.precision > INT64_DIGITS >= max(a.precision, b.precision):
        # DuckDB types the product of two DECIMALs of at most 18 digits DECIMAL(18) and
        # fails when it overflows; one operand of 19 digits makes it DECIMAL(p1 + p2),
        # and 19 + 18 + 1 digits still fit Spark's 38.
        inner = left.this if isinstance(left, exp.Cast) else left
        left = build.cast(inner, decimal_type(INT64_DIGITS + 1, a.scale))
    product = exp.Mul(this=paren(left), expression=paren(b.sql))
    return typed(product, min(corners), max(corners), a.scale + b.scale, nullable)


def add(a: Dec, b: Dec, subtract: bool) -> Dec:
    scale = max(a.scale, b.scale)
    widths = _widths(a, b)
    # DuckDB, Spark: DECIMAL(max(p1 - s1, p2 - s2) + max(s1, s2) + 1, max(s1, s2)).
    width = None
    if widths is not None:
        width = max(widths[0] - a.scale, widths[1] - b.scale) + scale + 1
    if width is None or width > INT64_DIGITS:
        a, b, width = tight(a), tight(b), None
    if max(a.digits, b.digits) + 1 + scale > MAX_PRECISION:
        raise TooWide
    if subtract:
        low, high = a.low - b.high, a.high - b.low
        total: exp.Expr = exp.Sub(this=paren(a.sql), expression=paren(b.sql))
    else:
        low, high = a.low + b.low, a.high + b.high
        total = exp.Add(this=paren(a.sql), expression=paren(b.sql))
    return result(total, low, high, scale, a.nullable or b.nullable, width)


def neg(a: Dec) -> Dec:
    negated = exp.Paren(this=exp.Neg(this=paren(a.sql)))
    return Dec(negated, -a.high, -a.low, a.scale, a.nullable, a.width)


def times(a: Dec | None, b: Dec | None) -> Dec | None:
    if a is None or b is None:
        return a or b
    return mul(a, b)


def product(a: Dec, b: Dec | None) -> Dec:
    return a if b is None else mul(a, b)


def zero() -> exp.Expr:
    return literal(Fraction(0)).sql


OPS: dict[str, type[exp.Binary]] = {
    "<": exp.LT,
    "<=": exp.LTE,
    ">": exp.GT,
    ">=": exp.GTE,
    "=": exp.EQ,
    "!=": exp.NEQ,
}


@attrs.frozen
class Ratio:
    """An exact number num / den, den > 0; no den means 1."""

    num: Dec
    den: Dec | None = None

    @property
    def nullable(self) -> bool:
        return self.num.nullable or (self.den is not None and self.den.nullable)

    @property
    def constant(self) -> Fraction | None:
        num = self.num.constant
        den = Fraction(1) if self.den is None else self.den.constant
        return None if num is None or den is None else num / den


NULL = Ratio(Dec(build.cast(exp.null(), decimal_type(1, 0)), Fraction(0), Fraction(0), 0))


def fresh(x: Ratio) -> Ratio:
    """A copy of `x` whose SQL nodes are new, to use it once more in the tree."""
    den = None if x.den is None else attrs.evolve(x.den, sql=x.den.sql.copy())
    return Ratio(attrs.evolve(x.num, sql=x.num.sql.copy()), den)


def const(value: Fraction) -> Ratio:
    if places(value) is not None:
        return Ratio(literal(value))
    return Ratio(literal(Fraction(value.numerator)), literal(Fraction(value.denominator)))


def ratio_mul(x: Ratio, y: Ratio) -> Ratio:
    return Ratio(mul(x.num, y.num), times(x.den, y.den))


def ratio_scale(x: Ratio, factor: Fraction) -> Ratio:
    return x if factor == 1 else ratio_mul(x, const(factor))


def ratio_add(x: Ratio, y: Ratio, subtract: bool) -> Ratio:
    if x.den == y.den:
        return Ratio(add(x.num, y.num, subtract), x.den)
    num = add(product(x.num, y.den), product(y.num, x.den), subtract)
    return Ratio(num, times(x.den, y.den))


def ratio_div(x: Ratio, y: Ratio) -> Ratio:
    """x / y, NULL when y is 0, as the evaluator's guard; the sign moves to the numerator."""
    constant = y.constant
    if constant is not None:
        return NULL if constant == 0 else ratio_mul(x, const(1 / constant))
    num = product(x.num, y.den)
    divisor = y.num
    if divisor.low > 0:
        return Ratio(num, times(x.den, divisor))
    if divisor.high < 0:
        return Ratio(neg(num), times(x.den, neg(divisor)))
    nonzero = attrs.evolve(
        divisor, sql=exp.Nullif(this=divisor.sql, expression=zero()), nullable=True
    )
    if divisor.low >= 0:
        return Ratio(num, times(x.den, nonzero))
    if divisor.high <= 0:
        return Ratio(neg(num), times(x.den, neg(nonzero)))
    magnitude = Dec(
        exp.Abs(this=nonzero.sql), Fraction(0), max(-divisor.low, divisor.high), divisor.scale
    )
    flipped = neg(num)
    signed = Dec(
        build.when(exp.LT(this=divisor.sql.copy(), expression=zero()), flipped.sql, num.sql),
        min(num.low, flipped.low),
        max(num.high, flipped.high),
        num.scale,
        num.nullable or divisor.nullable,
    )
    return Ratio(signed, times(x.den, magnitude))


def ratio_compare(x: Ratio, op: str, y: Ratio) -> exp.Expr:
    left, right = product(x.num, y.den), product(y.num, x.den)
    # Both engines widen the two sides to one DECIMAL type; it must not pass 38 digits.
    scale = max(left.scale, right.scale)
    widths = _widths(left, right)
    if widths is None or max(widths[0] - left.scale, widths[1] - right.scale) + scale > 38:
        left, right = tight(left), tight(right)
    if max(left.digits, right.digits) + scale > MAX_PRECISION:
        raise TooWide
    return OPS[op](this=paren(left.sql), expression=paren(right.sql))
