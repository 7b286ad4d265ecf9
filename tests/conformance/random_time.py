"""Random protocols with dates, histories, code lists and integers, and records for them.

`random_time_protocols` extends the flat generator of
tests/properties/test_evaluator.py (`Writer`: numbers, quantities, booleans,
enumerations, sets, ordinals, scores) with what issue 11 added: date elements
(records give full or partial dates), `as of`, date arithmetic, windows,
`years since`, `days between`, integers, a coded element and code lists, and
three histories (quantity, codes, medications; each complete or open) read
through every selector (`any`, `no`, `number of`, `latest`, `earliest`,
`highest`, `lowest`, `total`) with `where`, windows and `(EXPR) of`.

`random_time_records` draws records for such a protocol with a seeded
`random.Random`: dates from a small pool so that ties, window edges and equal
dates are frequent, partial dates, histories absent, empty or with entries
in two units, entries without their upper limit or dose, and medications
still ongoing. Entries are never dated after the reference date (that is a
record error, which `make fuzz` would only compare as an error).

There is no reference interpreter here: the engines are compared with
`Protocol.evaluate` (tests/conformance/fuzz.py, tests/properties/test_time_fuzz.py).
"""

from __future__ import annotations

import datetime
import random
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from tests.properties.test_evaluator import (
    ENUM,
    NUMBERS,
    SCALE,
    SET,
    UNITS,
    Element,
    RandomProtocol,
    Writer,
)

REFERENCE = "screening"
DATE_LITERALS = ("2024-01-01", "2025-06-15", "2026-02-28", "2026-03-01", "2026-06-01")
DURATIONS = ("1 day", "10 days", "30 days", "2 weeks", "4 weeks", "1 month", "3 months")
DURATIONS += ("6 months", "1 year", "2 years")
CALENDAR = ("days", "weeks", "months", "years")
COUNTS = ("0", "1", "2", "3", "12", "18", "30", "365")
CODE_LISTS = {
    "cl_ild": ("Lung disease", "icd10cm", ("J84.*", "J99.1")),
    "cl_ssc": ("Sclerosis", "snomed", ("89155008",)),
    "cl_drug": ("Immunosuppressants", "atc", ("L04AA06", "L04AX*")),
}
CODES = (
    "icd10cm:J84.10",
    "icd10cm:J84",
    "icd10cm:J99.1",
    "icd10cm:J99.10",
    "icd10cm:M34.81",
    "snomed:89155008",
    "snomed:1234567",
    "atc:L04AA06",
    "atc:L04AX01",
    "atc:L01BA01",
)
# Entry dates and record dates: a small pool around the usual reference date makes
# ties, window edges (30 days, 4 weeks, 6 months before 2026-06-01) and equal dates common.
DAYS = (
    "2024-02-29",
    "2025-06-01",
    "2025-12-01",
    "2026-01-01",
    "2026-02-28",
    "2026-03-01",
    "2026-03-04",
    "2026-05-02",
    "2026-05-04",
    "2026-05-18",
    "2026-05-31",
    "2026-06-01",
)
QUANTITY = ("0.5", "1", "1.2", "1.5", "2", "2.4", "3", "12")
DOSES = ("500", "1000", "1500", "2000", "3000")


class TimeWriter(Writer):
    """`Writer` with atoms over dates, integers, codes and histories."""

    def __init__(self, draw: st.DrawFn, elements: list[Element], as_of: bool) -> None:
        super().__init__(draw, elements)
        self.as_of = as_of
        self.dates = [e.name for e in elements if e.kind == "date"]
        self.integers = [e.name for e in elements if e.kind == "integer"]
        self.codes = [e.name for e in elements if e.kind == "code"]
        self.histories = {e.name: e for e in elements if e.kind.startswith("history")}

    def atom(self) -> str:
        if self.chance(0.45):
            choices = ["date_compare", "date_window", "date_between", "date_since"]
            choices += ["integer"] if self.integers else []
            choices += ["code"] if self.codes else []
            choices += ["history"] * 4 if self.histories else []
            match self.pick(choices):
                case "date_compare":
                    return self.date_compare()
                case "date_window":
                    return self.date_window()
                case "date_between":
                    return self.date_between()
                case "date_since":
                    return self.date_since()
                case "integer":
                    return self.integer()
                case "code":
                    return f"({self.pick(self.codes)} in {self.pick(list(CODE_LISTS))})"
                case _:
                    return self.history()
        return super().atom()

    # ---- dates ----

    def date(self, shift: bool = True) -> str:
        """A date expression: an element, a literal, maybe plus or minus a duration."""
        if self.dates and self.chance(0.75):
            base = self.pick(self.dates)
        else:
            base = self.pick(DATE_LITERALS)
        if shift and self.chance(0.3):
            return f"({base} {self.pick(['+', '-'])} {self.pick(DURATIONS)})"
        return base

    def date_compare(self) -> str:
        op = self.pick(["<", "<=", ">", ">=", "=", "!="])
        if self.chance(0.2):
            low, high = sorted([self.pick(DATE_LITERALS), self.pick(DATE_LITERALS)])
            exclusive = " exclusive" if low != high and self.chance(0.3) else ""
            return f"({self.date()} between {low} and {high}{exclusive})"
        return f"({self.date()} {op} {self.date()})"

    def date_window(self) -> str:
        anchors = ["before", "after"] + ([""] if self.as_of else [])
        anchor = self.pick(anchors)
        tail = f" {anchor} {self.date(shift=False)}" if anchor else ""
        return f"({self.date(shift=False)} within {self.pick(DURATIONS)}{tail})"

    def date_between(self) -> str:
        op = self.pick(["<", "<=", ">", ">=", "=", "!="])
        count = self.pick(COUNTS)
        count = f"-{count}" if count != "0" and self.chance(0.2) else count
        return f"({self.pick(CALENDAR)} between {self.date()} and {self.date()} {op} {count})"

    def date_since(self) -> str:
        if not self.as_of:
            return self.date_between()
        op = self.pick(["<", "<=", ">", ">=", "=", "!="])
        return f"({self.pick(CALENDAR)} since {self.date()} {op} {self.pick(COUNTS)})"

    # ---- integers ----

    def integer(self) -> str:
        op = self.pick(["<", "<=", ">", ">=", "=", "!="])
        left = self.pick(self.integers)
        if len(self.integers) > 1 and self.chance(0.3):
            left = f"({left} {self.pick(['+', '-', '*'])} {self.pick(self.integers)})"
        elif self.chance(0.2):
            left = f"({left} / {self.pick(['2', '4'])})"
        right = self.pick(self.integers) if self.chance(0.2) else self.pick(COUNTS)
        return f"({left} {op} {right})"

    # ---- histories ----

    def window(self) -> str:
        if not self.chance(0.5):
            return ""
        anchors = ["before", "after"] + ([""] if self.as_of else [])
        anchor = self.pick(anchors)
        tail = f" {anchor} {self.date(shift=False)}" if anchor else ""
        return f" within {self.pick(DURATIONS)}{tail}"

    def where(self, history: Element) -> str:
        if not self.chance(0.5):
            return ""
        conditions = [self.entry_condition(history)]
        if self.chance(0.3):
            conditions.append(self.entry_condition(history))
        joined = f" {self.pick(['and', 'or'])} ".join(conditions)
        return f" where {joined}"

    def entry_condition(self, history: Element) -> str:
        op = self.pick(["<", "<=", ">", ">=", "=", "!="])
        kind = history.kind
        options = ["date"]
        if kind == "history_quantity":
            options += ["value", "value", "limit"]
        elif kind == "history_codes":
            options += ["code", "code"]
        else:
            options += ["code", "ongoing", "start", "dose"]
        match self.pick(options):
            case "date":
                field = "its start" if kind == "history_medications" else "its date"
                return f"{field} {op} {self.date()}"
            case "start":
                return f"its start {op} {self.date()} - {self.pick(DURATIONS)}"
            case "value":
                return f"its value {op} {self.pick(QUANTITY)} '{self.pick(UNITS['conc'])}'"
            case "limit":
                return f"its value {op} its upper limit"
            case "code":
                return f"its code in {self.pick(list(CODE_LISTS))}"
            case "ongoing":
                return self.pick(["ongoing", "not ongoing"])
        return f"its dose {op} {self.pick(DOSES)} 'mg/d'"

    def selection(self, history: Element) -> str:
        # The window first: a `where` runs to the end of the condition.
        return f"{self.window()}{self.where(history)}"

    def history(self) -> str:
        name = self.pick(list(self.histories))
        history = self.histories[name]
        complete = history.unit == "complete"
        words = ["any", "no", "number", "latest", "earliest", "highest", "lowest"]
        words += ["total"] if complete else []
        word = self.pick(words)
        op = self.pick(["<", "<=", ">", ">=", "=", "!="])
        if word in ("any", "no"):
            return f"({word} {name}{self.selection(history)})"
        if word == "number":
            return f"((number of {name}{self.selection(history)}) {op} {self.pick(COUNTS[:5])})"
        kind = history.kind
        if kind == "history_quantity":
            if word in ("latest", "earliest") and self.chance(0.3):
                of = "(its value / its upper limit) of "
                right = self.pick(["1", "2", "1.5", "0.5"])
            elif word == "total":
                of, right = "", f"{self.pick(QUANTITY)} '{self.pick(UNITS['conc'])}'"
            else:
                of = "" if self.chance(0.6) else "(its value) of "
                right = f"{self.pick(QUANTITY)} '{self.pick(UNITS['conc'])}'"
        elif kind == "history_codes" or (word in ("latest", "earliest") and self.chance(0.3)):
            field = "its start" if kind == "history_medications" else "its date"
            if word == "total" or (self.chance(0.3) and word in ("latest", "earliest")):
                # `total` of codes has no value: count instead.
                if word == "total":
                    return f"((number of {name}{self.selection(history)}) {op} 1)"
                return f"(({word} (its code) of {name}{self.selection(history)}) in cl_ild)"
            return f"(({word} ({field}) of {name}{self.selection(history)}) {op} {self.date()})"
        else:
            of, right = "(its dose) of ", f"{self.pick(DOSES)} '{self.pick(['mg/d', 'g/d'])}'"
        return f"(({word} {of}{name}{self.selection(history)}) {op} {right})"


HISTORY_KINDS = {
    "history_quantity": "history of quantity 'mg/dL'",
    "history_codes": "history of codes",
    "history_medications": "history of medications 'mg/d'",
}


def declaration(element: Element) -> str:
    match element.kind:
        case "date" | "integer" | "code":
            return f"{element.name}: {element.kind}"
        case kind if kind in HISTORY_KINDS:
            complete = " complete" if element.unit == "complete" else ""
            return f"{element.name}: {HISTORY_KINDS[kind]}{complete}"
    return element.declaration()


@st.composite
def random_time_protocols(draw: st.DrawFn) -> RandomProtocol:
    """A protocol that uses dates, histories and code lists as well as flat values."""
    elements: list[Element] = []
    counts = {
        "boolean": draw(st.integers(0, 2)),
        "number": draw(st.integers(0, 1)),
        "conc": draw(st.integers(0, 1)),
        "ordinal": draw(st.integers(0, 1)),
        "enum": draw(st.integers(0, 1)),
        "integer": draw(st.integers(0, 2)),
        "date": draw(st.integers(1, 3)),
        "code": draw(st.integers(0, 1)),
    }
    for kind, count in counts.items():
        for n in range(count):
            unit = draw(st.sampled_from(UNITS[kind])) if kind in UNITS else None
            elements.append(Element(f"{kind}{n}", kind, unit))
    for kind in HISTORY_KINDS:
        if draw(st.booleans()):
            complete = "complete" if draw(st.booleans()) else None
            elements.append(Element(kind.replace("history_", "h_"), kind, complete))
    as_of = draw(st.integers(0, 99)) < 70
    if as_of:
        elements.insert(0, Element(REFERENCE, "date"))
    writer = TimeWriter(draw, elements, as_of)
    lines = ["protocol random_time"]
    if as_of:
        lines.append(f"  as of {REFERENCE}")
    for name, (label, system, codes) in CODE_LISTS.items():
        quoted = ", ".join(f'"{c}"' for c in codes)
        lines.append(f'codes {name} "{label}" {system} ({quoted})')
    lines += ["data", *(f"  {declaration(e)}" for e in elements)]
    for n in range(draw(st.integers(0, 1))):
        lines.append(f"define q{n} = {writer.condition(1, parts=False)}")
        writer.booleans.append(f"q{n}")
    kinds = draw(st.lists(st.sampled_from(["inclusion", "exclusion"]), min_size=1, max_size=3))
    for n, kind in enumerate(kinds, start=1):
        applies = f"  applies when {writer.condition(1, False)}\n" if writer.chance(0.2) else ""
        condition = writer.condition(2, parts=True)
        lines.append(
            f'{kind} {kind[0].upper()}{n} "criterion {n}"\n{applies}  met when {condition}'
        )
    return RandomProtocol("\n".join(lines) + "\n", tuple(elements))


# ---- records -------------------------------------------------------------------------


def _day(rng: random.Random, latest: str | None) -> str:
    """A full date from the pool, not after `latest`."""
    days = [d for d in DAYS if latest is None or d <= latest]
    return rng.choice(days or [DAYS[0]])


def _partial(rng: random.Random, day: str) -> str:
    roll = rng.random()
    if roll < 0.12:
        return day[:7]
    if roll < 0.17:
        return day[:4]
    return day


def _number(rng: random.Random, pool: tuple[str, ...]) -> Decimal:
    return Decimal(rng.choice(pool))


def _entries(rng: random.Random, element: Element, latest: str | None) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 4])):
        day = _day(rng, latest)
        if element.kind == "history_quantity":
            value = _number(rng, QUANTITY)
            entry: dict[str, Any] = {"date": day, "value": value, "unit": "mg/dL"}
            if rng.random() < 0.25:
                entry["value"], entry["unit"] = value * 10, "mg/L"
            if rng.random() < 0.7:
                high = _number(rng, ("0.6", "1.2", "1.5"))
                entry["high"] = high * 10 if entry["unit"] == "mg/L" else high
        elif element.kind == "history_codes":
            entry = {"date": day, "code": rng.choice(CODES)}
        else:
            entry = {"start": day, "end": None, "code": rng.choice(CODES)}
            if rng.random() < 0.5:
                ends = [d for d in DAYS if d >= day and (latest is None or d <= latest)]
                entry["end"] = rng.choice(ends or [day])
            if rng.random() < 0.8:
                dose = _number(rng, DOSES)
                entry["dose"], entry["unit"] = dose, "mg/d"
                if rng.random() < 0.2:
                    entry["dose"], entry["unit"] = dose / 1000, "g/d"
        entries.append(entry)
    return entries


def random_time_value(rng: random.Random, element: Element, latest: str | None) -> Any:
    """A value for one element of a `random_time_protocols` protocol."""
    match element.kind:
        case "boolean":
            return rng.random() < 0.5
        case "enum":
            return rng.choice(ENUM)
        case "ordinal":
            return rng.choice(SCALE)
        case "set":
            return rng.sample(SET, rng.randint(0, len(SET)))
        case "integer":
            return Decimal(rng.choice([0, 1, 2, 3, 5, 12, 18, 30, 40]))
        case "date":
            return _partial(rng, rng.choice(DAYS))
        case "code":
            return rng.choice(CODES)
        case kind if kind in HISTORY_KINDS:
            return _entries(rng, element, latest)
        case "conc":
            number = Decimal(rng.choice(NUMBERS))
            if rng.random() < 0.5:
                return {"value": number, "unit": rng.choice(UNITS["conc"])}
            return number
    return Decimal(rng.choice(NUMBERS))


def random_time_records(
    rng: random.Random, generated: RandomProtocol, count: int
) -> list[dict[str, Any]]:
    """`count` records; any element absent with a probability drawn per protocol."""
    gaps = rng.choice([0.0, 0.1, 0.3])
    records = []
    for number in range(count):
        record: dict[str, Any] = {"id": f"r{number}"}
        latest: str | None = None
        for element in generated.elements:
            if element.name == REFERENCE:
                # The reference date: a full date mostly, sometimes partial or unknown.
                if rng.random() < 0.9:
                    day = rng.choice(("2026-06-01", "2026-05-31", "2026-03-04"))
                    record[REFERENCE] = _partial(rng, day) if rng.random() < 0.15 else day
                    latest = _earliest_day(record[REFERENCE])
                continue
            if rng.random() >= gaps:
                record[element.name] = random_time_value(rng, element, latest)
        records.append(record)
    return records


def _earliest_day(value: str) -> str:
    """The first day a full or partial date may be: no entry may come after it."""
    parts = value.split("-")
    year, month = int(parts[0]), int(parts[1]) if len(parts) > 1 else 1
    day = int(parts[2]) if len(parts) > 2 else 1
    return datetime.date(year, month, day).isoformat()
