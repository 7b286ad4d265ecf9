"""Calendar arithmetic in SQL (ir.DateShift, ir.DateDiff), the same on every dialect.

DuckDB, PostgreSQL and Spark each add months and count the units between two
dates a little differently (Spark has no three-argument DATEDIFF before 3.3,
PostgreSQL's `date + interval` is a timestamp), so the formulas here are
written out from the year, month and day of a date with integer arithmetic
that all three do alike: MAKE_DATE, EXTRACT, LEAST, integer division of
non-negative numbers and CASE. They follow CQL as `ir.DateShift` and
`ir.DateDiff` say:

- a date plus N months is MAKE_DATE of the month N months on, with the day
  kept or, in a shorter month, its last day (a year is 12 months);
  NULL outside the years 1 to 9999, as in the Python engine;
- the whole months from a to b (a <= b) are the months between their
  year-months, less one when a's day (clamped to b's month) is after b's
  day; from b back to a it is minus the same count; years are counted the
  same way on the month and day, days from a day number (days since
  0000-03-01 in the proleptic Gregorian calendar), weeks as whole 7 days.
"""

from __future__ import annotations

from sqlglot import exp

from critlang.engines.sql import build as b

FIRST_YEAR, LAST_YEAR = 1, 9999
# The days from 0001-01-01 to 9999-12-31 bound every difference in days.
MAX_DAYS = 3_652_059


def _int(value: int) -> exp.Expr:
    return exp.Literal.number(value)


def _part(date: exp.Expr, unit: str) -> exp.Expr:
    """EXTRACT(unit FROM date) as an INT (PostgreSQL's EXTRACT is NUMERIC)."""
    return b.cast(exp.Extract(this=exp.var(unit), expression=date.copy()), "INT")


def _div(a: exp.Expr, n: int) -> exp.Expr:
    """a DIV n for a >= 0 (every dialect truncates and floors alike there)."""
    return exp.IntDiv(this=b.paren(a), expression=_int(n))


def _mod(a: exp.Expr, n: int) -> exp.Expr:
    return exp.Mod(this=b.paren(a), expression=_int(n))


def _add(*terms: exp.Expr) -> exp.Expr:
    result = terms[0]
    for term in terms[1:]:
        result = exp.Add(this=result, expression=term)
    return b.paren(result)


def _sub(a: exp.Expr, c: exp.Expr) -> exp.Expr:
    return b.paren(exp.Sub(this=a, expression=c))


def _mul(a: exp.Expr, n: int) -> exp.Expr:
    return exp.Mul(this=b.paren(a), expression=_int(n))


def month_length(year: exp.Expr, month: exp.Expr) -> exp.Expr:
    """The days in a month of a year (Gregorian leap years)."""

    def divisible(by: int) -> exp.Expr:
        return exp.EQ(this=_mod(year.copy(), by), expression=_int(0))

    leap = b.and_(divisible(4), b.or_(b.not_(divisible(100)), divisible(400)))
    short = exp.In(this=month.copy(), expressions=[_int(m) for m in (4, 6, 9, 11)])
    february = exp.EQ(this=month.copy(), expression=_int(2))
    return b.case(
        [(short, _int(30)), (february, b.when(leap, _int(29), _int(28)))],
        _int(31),
    )


def make_date(year: exp.Expr, month: exp.Expr, day: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this="MAKE_DATE", expressions=[year, month, day])


def shift_months(date: exp.Expr, months: int) -> exp.Expr:
    """`date` moved by whole months, the day clamped to the new month's last."""
    total = _add(_mul(_part(date, "YEAR"), 12), _part(date, "MONTH"), _int(months - 1))
    # PostgreSQL's DIV gives a NUMERIC, which its MAKE_DATE does not take.
    year = b.cast(_div(total, 12), "INT")
    month = _add(_mod(total.copy(), 12), _int(1))
    clamped = exp.Least(this=_part(date, "DAY"), expressions=[month_length(year, month)])
    inside = exp.Between(this=year.copy(), low=_int(FIRST_YEAR), high=_int(LAST_YEAR))
    return b.when(inside, make_date(year.copy(), month.copy(), clamped))


def shift_days(date: exp.Expr, days: int) -> exp.Expr:
    """`date` moved by whole days (DATE_ADD; PostgreSQL writes it `date + n`)."""
    return exp.DateAdd(this=date, expression=_int(days), unit=exp.var("DAY"))


def day_number(date: exp.Expr) -> exp.Expr:
    """Days since 0000-03-01: the year counted from March, so a leap day ends it."""
    month = _part(date, "MONTH")
    march = exp.GT(this=month, expression=_int(2))
    year = _sub(_part(date, "YEAR"), b.when(march, _int(0), _int(1)))
    shifted = _add(month.copy(), b.when(march.copy(), _int(-3), _int(9)))
    day_of_year = _add(_div(_add(_mul(shifted, 153), _int(2)), 5), _part(date, "DAY"), _int(-1))
    return _add(
        _mul(year, 365),
        _div(year.copy(), 4),
        exp.Neg(this=_div(year.copy(), 100)),
        _div(year.copy(), 400),
        day_of_year,
    )


def _months_forward(start: exp.Expr, end: exp.Expr, unit: str) -> exp.Expr:
    """Whole months (or years) from start to end, for start <= end."""
    sy, sm, sd = (_part(start, u) for u in ("YEAR", "MONTH", "DAY"))
    ey, em, ed = (_part(end, u) for u in ("YEAR", "MONTH", "DAY"))
    if unit == "month":
        clamped = exp.Least(this=sd, expressions=[month_length(ey, em)])
        short: exp.Expr = exp.GT(this=clamped, expression=ed)
        count = _add(_mul(_sub(ey.copy(), sy), 12), _sub(em.copy(), sm))
    else:
        clamped = exp.Least(this=sd, expressions=[month_length(ey, sm)])
        later_month = exp.GT(this=sm.copy(), expression=em)
        same_month = exp.EQ(this=sm.copy(), expression=em.copy())
        short = b.or_(later_month, b.and_(same_month, exp.GT(this=clamped, expression=ed)))
        count = _sub(ey.copy(), sy.copy())
    return _sub(count, b.when(short, _int(1), _int(0)))


def between(unit: str, start: exp.Expr, end: exp.Expr) -> exp.Expr:
    """Whole calendar units from start to end; negative when end is before start."""
    if unit in ("day", "week"):
        days = _sub(day_number(end), day_number(start))
        if unit == "day":
            return days
        ahead = exp.GTE(this=days, expression=_int(0))
        weeks = _div(days.copy(), 7)
        backward = exp.Neg(this=_div(exp.Neg(this=days.copy()), 7))
        return b.when(ahead, weeks, backward)
    forward = exp.LTE(this=start.copy(), expression=end.copy())
    return b.when(
        forward,
        _months_forward(start, end, unit),
        exp.Neg(this=_months_forward(end.copy(), start.copy(), unit)),
    )
