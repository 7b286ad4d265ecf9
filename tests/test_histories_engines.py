"""Histories and calendar arithmetic in the JavaScript and z3 engines, beyond the corpus.

The conformance corpus (`tests/conformance/histories*`, `codes*`,
`history_selectors`) runs every selector on every engine; these tests cover
what it cannot: the calendar on thousands of dates, the z3 engine's bound on
entries, and `critlang analyze` of a protocol with histories.
"""

from __future__ import annotations

import datetime
import itertools
import json
import random
import subprocess
from pathlib import Path

import pytest
import z3

import critlang
from critlang import ir
from critlang.analyze import analyze
from critlang.check import Type
from critlang.engines import javascript
from critlang.engines.python import shift_date
from critlang.engines.z3 import Elements, Encoding, Num
from critlang.vocab import CalendarUnit
from tests.jsengine import NODE

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = critlang.load(ROOT / "tests" / "conformance" / "history_selectors.crit")
UNITS = [CalendarUnit.DAY, CalendarUnit.WEEK, CalendarUnit.MONTH, CalendarUnit.YEAR]


def shifts(count: int, seed: int) -> list[tuple[datetime.date, int, CalendarUnit]]:
    """Dates with a move each, many on the ends of months and around 29 February."""
    rng = random.Random(seed)
    ends = [datetime.date(2024, 1, 31), datetime.date(2024, 2, 29), datetime.date(2023, 3, 31)]
    out = []
    for _ in range(count):
        day = rng.choice(ends) if rng.random() < 0.3 else datetime.date(1950, 1, 1)
        if day.year == 1950:
            day += datetime.timedelta(days=rng.randint(0, 60_000))
        out.append((day, rng.randint(-40, 40), rng.choice(UNITS)))
    return out


def test_z3_moves_dates_as_the_python_engine() -> None:
    ids = itertools.count()
    for day, amount, unit in shifts(300, seed=3):
        date = Type("date")
        operand = ir.Const(id=next(ids), type=date, value=day)
        node = ir.DateShift(id=next(ids), type=date, operand=operand, amount=amount, unit=unit)
        program = ir.Program(
            name="p", elements=(), definitions=(), criteria=(), size=next(ids), reference=None
        )
        value = Encoding(program, Elements(())).value(node)
        assert isinstance(value, Num)
        ordinal = z3.simplify(value.value).as_long()
        assert datetime.date.fromordinal(ordinal) == shift_date(day, amount, unit.value), (
            day,
            amount,
            unit,
        )


@pytest.mark.skipif(NODE is None, reason="needs Node.js")
def test_javascript_moves_dates_as_the_python_engine() -> None:
    cases = shifts(2000, seed=4)
    script = javascript.runtime() + (
        "\nconst cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "\nprocess.stdout.write(JSON.stringify(cases.map(([d, n, u]) =>"
        " critlangRuntime.shiftDate(d, n, u))));"
    )
    given = [[day.isoformat(), amount, unit.value] for day, amount, unit in cases]
    assert NODE is not None
    done = subprocess.run(
        [NODE, "-e", script], input=json.dumps(given), capture_output=True, text=True, check=True
    )
    moved = json.loads(done.stdout)
    for (day, amount, unit), result in zip(cases, moved, strict=True):
        assert result == shift_date(day, amount, unit.value).isoformat(), (day, amount, unit)


def test_z3_holds_at_most_its_bound_of_entries() -> None:
    program = PROTOCOL.lowered.program
    elements = Elements(program.elements, missing=True, entries=2)
    _, env = PROTOCOL.intake(
        {
            "creatinine": [
                {"date": f"2026-05-0{day}", "value": 1, "unit": "mg/dL"} for day in (1, 2, 3)
            ]
        },
        1,
    )
    with pytest.raises(ValueError, match="3 entries: the z3 engine holds at most 2 per history"):
        elements.holds("creatinine", env["creatinine"])


def test_analyze_finds_confirmed_patients_with_histories() -> None:
    """Every witness is a record with entry lists that the Python engine takes in and confirms."""
    report = analyze(PROTOCOL)
    assert report.eligible is not None
    assert report.confirmed
    record = report.eligible.record
    assert record["creatinine"], record
    assert all(entry["unit"] == "mg/dL" for entry in record["creatinine"])
    assert PROTOCOL.evaluate(record).status == "eligible"
