"""Calendar arithmetic as properties, and every engine against it on random dates.

1. The Python engine's `shift_date` and `date_diff` against their definition in
   docs/language.md: the units between a and b (a <= b) are the most n with
   a + n units <= b, minus the count from b to a when b is before a; a month or a
   year added keeps the day of the month or takes the last day of a shorter month.
2. Partial dates against brute force: `a op b + n units` on a month-precision date
   is true when it holds for every day of the month, false when for none, else
   unknown; the engines compare ends, so they must agree with trying every day.
3. Every other engine against the Python engine on random calendar arithmetic:
   a protocol of constant criteria `d + n months = e`, `months between d and e = k`
   (e and k worked out by the Python engine, which 1. checks) must be all true.
"""

from __future__ import annotations

import calendar
import datetime
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from critlang.engines.python import date_diff, shift_date
from tests.conformance import engines

UNITS = ("day", "week", "month", "year")
DAYS = st.dates(min_value=datetime.date(1900, 1, 1), max_value=datetime.date(2100, 12, 31))


def by_definition_shift(day: datetime.date, amount: int, unit: str) -> datetime.date:
    """Written from the words, not the engine: count months on a calendar, clamp the day."""
    if unit in ("day", "week"):
        return day + datetime.timedelta(days=amount * (7 if unit == "week" else 1))
    months = amount * (12 if unit == "year" else 1)
    year, month = day.year, day.month
    step = 1 if months >= 0 else -1
    for _ in range(abs(months)):
        month += step
        if month == 13:
            year, month = year + 1, 1
        if month == 0:
            year, month = year - 1, 12
    return datetime.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@settings(max_examples=400, deadline=None)
@given(day=DAYS, amount=st.integers(-60, 60), unit=st.sampled_from(UNITS))
def test_shift_is_the_calendar_with_the_day_clamped(
    day: datetime.date, amount: int, unit: str
) -> None:
    assert shift_date(day, amount, unit) == by_definition_shift(day, amount, unit)


@settings(max_examples=400, deadline=None)
@given(start=DAYS, end=DAYS, unit=st.sampled_from(UNITS))
def test_units_between_is_the_most_whole_units(
    start: datetime.date, end: datetime.date, unit: str
) -> None:
    count = int(date_diff(unit, start, end))
    if end < start:
        assert count == -int(date_diff(unit, end, start))
        return
    assert count >= 0
    assert by_definition_shift(start, count, unit) <= end
    assert by_definition_shift(start, count + 1, unit) > end


@settings(max_examples=200, deadline=None)
@given(
    earlier=DAYS,
    later=DAYS,
    shifted=DAYS,
    amount=st.integers(-30, 30),
    unit=st.sampled_from(UNITS),
)
def test_shift_and_difference_are_monotone(
    earlier: datetime.date,
    later: datetime.date,
    shifted: datetime.date,
    amount: int,
    unit: str,
) -> None:
    """What lowering relies on to carry a partial date's two ends through."""
    low, high = sorted((earlier, later))
    assert shift_date(low, amount, unit) <= shift_date(high, amount, unit)  # type: ignore[operator]
    assert date_diff(unit, shifted, low) <= date_diff(unit, shifted, high)
    assert date_diff(unit, low, shifted) >= date_diff(unit, high, shifted)


# ---- partial dates against trying every day --------------------------------------------

PARTIAL = """protocol partial
data
  a: date
  b: date
inclusion I1 "t"
  met when a {op} b + {amount} {unit}s
inclusion I2 "u"
  met when {unit}s between a and b {op} {count}
"""
OPS = {
    "<": lambda x, y: x < y,
    "<=": lambda x, y: x <= y,
    ">": lambda x, y: x > y,
    ">=": lambda x, y: x >= y,
    "=": lambda x, y: x == y,
    "!=": lambda x, y: x != y,
}


def every_day(text: str) -> list[datetime.date]:
    year, month = int(text[:4]), int(text[5:7])
    if len(text) == 10:
        return [datetime.date.fromisoformat(text)]
    return [
        datetime.date(year, month, d) for d in range(1, calendar.monthrange(year, month)[1] + 1)
    ]


def kleene(outcomes: set[bool]) -> bool | None:
    return outcomes.pop() if len(outcomes) == 1 else None


MONTHS = st.builds(
    lambda day, partial: day.isoformat()[:7] if partial else day.isoformat(),
    st.dates(min_value=datetime.date(2000, 1, 1), max_value=datetime.date(2030, 12, 31)),
    st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(
    a=MONTHS,
    b=MONTHS,
    op=st.sampled_from(sorted(OPS)),
    amount=st.integers(-14, 14),
    count=st.integers(-3, 40),
    unit=st.sampled_from(UNITS),
)
def test_partial_dates_are_decided_only_when_every_day_agrees(
    a: str, b: str, op: str, amount: int, count: int, unit: str
) -> None:
    source = PARTIAL.format(op=op, amount=amount, unit=unit, count=count)
    protocol = engines.compile_source(source)
    result = protocol.evaluate({"a": a, "b": b})
    compare = OPS[op]
    shifted = kleene(
        {compare(x, shift_date(y, amount, unit)) for x in every_day(a) for y in every_day(b)}
    )
    counted = kleene(
        {compare(int(date_diff(unit, x, y)), count) for x in every_day(a) for y in every_day(b)}
    )
    assert [c.value for c in result.criteria] == [shifted, counted]


# ---- every engine against the Python engine ------------------------------------------


def random_arithmetic(seed: int, size: int = 24) -> str:
    """Constant criteria, each true by the Python engine's calendar arithmetic."""
    rng = random.Random(seed)
    lines = ["protocol random_dates", "data", "  a: date"]
    ordinal = datetime.date(1950, 1, 1).toordinal()
    for number in range(1, size + 1):
        start = datetime.date.fromordinal(ordinal + rng.randrange(0, 365 * 100))
        unit = rng.choice(UNITS)
        if rng.random() < 0.5:
            amount = rng.randrange(-40, 41)
            moved = shift_date(start, amount, unit)
            assert moved is not None
            sign = "+" if amount >= 0 else "-"
            condition = f"{start} {sign} {abs(amount)} {unit}s = {moved}"
        else:
            # Near month ends and leap days as often as anywhere.
            end = start + datetime.timedelta(days=rng.choice([-400, -31, -1, 0, 1, 28, 365, 3000]))
            end = end + datetime.timedelta(days=rng.randrange(-3, 4))
            count = int(date_diff(unit, start, end))
            condition = f"{unit}s between {start} and {end} = {count}"
        lines.append(f'inclusion I{number} "c{number}"\n  met when {condition}')
    lines.append('inclusion I0 "uses a"\n  met when a = a')
    return "\n".join(lines) + "\n"


FAST_ENGINES: dict[str, tuple[Any, tuple[str, ...]]] = {
    "duckdb": (engines.duckdb, ("sql",)),
    "z3": (engines.z3, ("z3",)),
    "javascript": (engines.javascript, ("node",)),
    "elm": (engines.elm, ("node",)),
}


@pytest.mark.parametrize(
    "engine",
    [
        pytest.param(name, marks=[getattr(pytest.mark, m) for m in marks])
        for name, (_, marks) in FAST_ENGINES.items()
    ],
)
@pytest.mark.parametrize("seed", range(3))
def test_every_engine_does_calendar_arithmetic_as_python_does(engine: str, seed: int) -> None:
    source = random_arithmetic(seed)
    run, _ = FAST_ENGINES[engine]
    (outcome,) = run(source, [{"id": "r", "a": "2020-01-01"}])
    wrong = {k: v for k, v in outcome["criteria"].items() if v != "true"}
    assert wrong == {}, source
    assert outcome["status"] == "eligible"
