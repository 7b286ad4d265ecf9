"""From one patient's entries to a critlang record, with the source of every value.

A source section (FHIR, ...) turns its resources into entries (`fhir.Entry`);
this module applies each element's selection rule to them and writes the
record format of every other input (flat values, histories as lists of
entries), so the engines never know where a record came from.

Rules, the same for every source (docs/fhir-omop.md):
- entries dated after the reference date are not used (reported);
- `within N units` keeps entries dated from the reference date minus N units
  to the reference date (a medication: its period overlaps that window);
- an entry that cannot be used (no date, a unit that is not UCUM or of
  another kind, a value out of range) and might have been chosen makes its
  element unknown and is reported: it never silently changes a result;
- `latest`/`earliest`: the entries of the latest/earliest date; if they
  disagree, the element is unknown (reported as a conflict);
- `highest`/`lowest`: the largest/smallest value;
- `any`/`none`: whether some entry is there (a condition only provisional,
  unconfirmed or differential: unknown); none found is unknown unless
  `absent: false`;
- a set: every value some entry maps to; none is unknown unless `absent: empty`.
"""

from __future__ import annotations

import calendar
import datetime
import functools
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import attrs

from critlang import units
from critlang.bindings.binding import CodeSet, ElementBinding, Section
from critlang.bindings.fhir import PREGNANCY_VALUES, UNCERTAIN, Entry
from critlang.check import Checked
from critlang.explain import format_quantity
from critlang.records import Intake
from critlang.vocab import CalendarUnit

_MISSING = object()
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class Shown:
    """A quantity put into words only when shown: most results are never read in full."""

    __slots__ = ("number", "unit")

    def __init__(self, number: Decimal, unit: str) -> None:
        self.number = number
        self.unit = unit

    def __str__(self) -> str:
        return format_quantity(self.number, self.unit)

    def __eq__(self, other: object) -> bool:
        return str(self) == other if isinstance(other, str) else NotImplemented

    __hash__ = None  # type: ignore[assignment]


@attrs.frozen
class Cited:
    """Where an element's value came from: the source record and its date, or why there is none."""

    value: str | Shown | None  # the value as text; None when unknown
    source: str | None = None  # 'Observation/123'
    date: str | None = None
    rule: str | None = None
    why: str | None = None

    def to_dict(self) -> dict[str, str]:
        fields = {
            "value": self.value,
            "source": self.source,
            "date": self.date,
            "rule": self.rule,
            "why": self.why,
        }
        return {k: str(v) for k, v in fields.items() if v is not None}

    def words(self) -> str:
        if self.value is None:
            return f"unknown: {self.why}" if self.why else "unknown"
        where = f" ({self.source}" + (f", {self.date}" if self.date else "") + ")"
        rule = f", {self.rule}" if self.rule else ""
        return f"{self.value}{where if self.source else ''}{rule}"


@attrs.frozen
class Assembled:
    """A patient's record (as any record file would say it) and each value's source."""

    patient: str
    record: dict[str, Any]
    sources: dict[str, Cited]
    problems: tuple[str, ...]

    def env(self) -> dict[str, Any]:
        """The record as the evaluator takes it: every value here is already converted."""
        env = {k: v for k, v in self.record.items() if k != "id"}
        for name, value in env.items():
            if isinstance(value, list):
                env[name] = frozenset(value)
            elif isinstance(value, str) and _DAY.fullmatch(value):
                env[name] = datetime.date.fromisoformat(value)
        return env


def shift(date: datetime.date, amount: int, unit: CalendarUnit) -> datetime.date:
    """`date` moved by whole calendar units as CQL does (month ends clamp)."""
    if unit == CalendarUnit.DAY:
        return date + datetime.timedelta(days=amount)
    if unit == CalendarUnit.WEEK:
        return date + datetime.timedelta(weeks=amount)
    months = amount * (12 if unit == CalendarUnit.YEAR else 1)
    index = date.year * 12 + date.month - 1 + months
    year, month = divmod(index, 12)
    day = min(date.day, calendar.monthrange(year, month + 1)[1])
    return datetime.date(year, month + 1, day)


def whole_years(start: datetime.date, end: datetime.date) -> int:
    years = end.year - start.year
    if (end.month, end.day) < (start.month, start.day):
        years -= 1
    return years


class Assembler:
    """Applies a section's rules to a patient's entries; `as_of` is the reference date."""

    def __init__(self, section: Section, checked: Checked, as_of: datetime.date | None) -> None:
        self.section = section
        self.as_of = as_of
        self.converters = Intake(checked).converters
        self.rules = {name: e.rule.describe() for name, e in section.elements.items()}
        self.lows: dict[str, datetime.date | None] = {}
        for name, element in section.elements.items():
            within = element.rule.within
            low = None if within is None or as_of is None else shift(as_of, -within[0], within[1])
            self.lows[name] = low
        # What an element is when no entry feeds it: the same for every such patient.
        self.empty = {name: self._element(e, [], []) for name, e in section.elements.items()}

    def assemble(self, patient: str, entries: Iterable[Entry]) -> Assembled:
        by_element: dict[str, list[Entry]] = {}
        problems: list[str] = []
        seen_patient = False
        for entry in entries:
            name, note = entry[1], entry[10]
            if name == "":
                seen_patient = True
            elif name is None:
                problems.append(note or "a resource could not be read")
            else:
                by_element.setdefault(name, []).append(entry)
                if note is not None and note != UNCERTAIN:
                    problems.append(f"{entry[2]}: {note}")
        if not seen_patient:
            problems.append(f"no Patient resource with id '{patient}'")
        record: dict[str, Any] = {"id": patient}
        sources: dict[str, Cited] = {}
        for name, element in self.section.elements.items():
            found = by_element.get(name)
            if found is None:
                value, cited = self.empty[name]
                if isinstance(value, list):
                    value = []  # each record its own (empty) history
            else:
                value, cited = self._element(element, found, problems)
            sources[name] = cited
            if value is not _MISSING:
                record[name] = value
        return Assembled(patient, record, sources, tuple(dict.fromkeys(problems)))

    # ---- one element

    def _element(
        self, element: ElementBinding, found: list[Entry], problems: list[str]
    ) -> tuple[Any, Cited]:
        if element.source == "patient":
            return self._patient(element, found, problems)
        if element.source == "reference":
            if self.as_of is None:
                return _MISSING, Cited(None, rule="the reference date", why="no --as-of given")
            day = self.as_of.isoformat()
            return day, Cited(day, rule="the reference date (--as-of)")
        rule = self.rules[element.name]
        as_of = self.as_of
        usable: list[Entry] = []
        poison: Entry | None = None
        low = self.lows[element.name]
        for entry in found:
            date, end, note = _day(entry[3]), _day(entry[9]), entry[10]
            if date is not None and as_of is not None and date > as_of:
                problems.append(
                    f"{entry[2]} is dated {entry[3]}, after the reference date {as_of}; not used"
                )
                continue
            if low is not None and date is not None:
                latest = end if element.source == "medication" and entry[9] is not None else date
                if element.source == "medication" and entry[9] is None:
                    latest = as_of  # ongoing
                if latest is not None and latest < low:
                    continue
            if note is not None and note != UNCERTAIN:
                poison = poison or entry
                continue
            usable.append(entry)
        if poison is not None:
            why = f"{poison[2]} could not be used: {poison[10]}"
            return _MISSING, Cited(None, rule=rule, why=why)
        kind = element.type.kind
        if kind == "history":
            return self._history(element, usable, rule, problems)
        if kind == "set":
            return self._set(element, usable, rule)
        if element.rule.select in ("any", "none"):
            return self._exists(element, usable, rule)
        return self._pick(element, usable, rule, problems)

    def _history(
        self, element: ElementBinding, usable: list[Entry], rule: str, problems: list[str]
    ) -> tuple[Any, Cited]:
        """The entries as a record's history, each checked as record intake will check it.

        An entry intake would refuse makes the element unknown (reported), as for
        a flat element; a medication's dose that does not fit is left out
        (reported), its start, end and code kept.
        """
        entry_kind = element.type.entry
        convert = self.converters[element.name]
        doses = element.type.unit != units.DIMENSIONLESS  # a history without a dose unit
        history: list[dict[str, Any]] = []
        doubtful = next((e for e in usable if e[10] == UNCERTAIN), None)
        if doubtful is not None:
            # A history entry has no place for doubt: a provisional diagnosis read
            # as confirmed could decide `any`, left out it could decide `no` of a
            # complete history. The whole history is unknown instead.
            why = f"{doubtful[2]} is only {UNCERTAIN} (not confirmed)"
            return _MISSING, Cited(None, doubtful[2], doubtful[3], rule, why=why)
        for e in usable:
            item: dict[str, Any] = {}
            try:
                if entry_kind == "measurement":
                    item = {"date": e[3], "value": _number(e[4]), "unit": e[5]}
                    if e[6] is not None:
                        item["low"] = _number(e[6])
                    if e[7] is not None:
                        item["high"] = _number(e[7])
                elif entry_kind == "medication":
                    item = {"start": e[3], "end": e[9], "code": e[8]}
                    if e[4] is not None and doses:
                        item.update(dose=_number(e[4]), unit=e[5])
                else:
                    item = {"date": e[3], "code": e[8]}
                    if e[9] is not None:
                        item["end"] = e[9]  # a condition's abatement
                item["source"] = e[2]
                convert([item])
            except (ValueError, ArithmeticError, TypeError) as error:
                said = str(error) if isinstance(error, ValueError) else "its value is not a number"
                if "dose" not in item:
                    why = f"{e[2]} could not be used: {said}"
                    problems.append(why)
                    return _MISSING, Cited(None, rule=rule, why=why)
                problems.append(f"{e[2]}: its dose is left out: {said}")
                del item["dose"], item["unit"]
            history.append(item)
        cited = Cited(f"{len(history)} entr{'y' if len(history) == 1 else 'ies'}", rule=rule)
        return history, cited

    def _set(self, element: ElementBinding, usable: list[Entry], rule: str) -> tuple[Any, Cited]:
        sure: dict[str, Entry] = {}
        maybe: dict[str, Entry] = {}
        for e in usable:
            for value in _mapped(element.values, e):
                target = maybe if e[10] == UNCERTAIN else sure
                target.setdefault(value, e)
        doubtful = [v for v in maybe if v not in sure]
        if doubtful:
            e = maybe[doubtful[0]]
            why = f"{e[2]} says {doubtful[0]} only as {UNCERTAIN} (not confirmed)"
            return _MISSING, Cited(None, rule=rule, why=why)
        if not sure:
            if element.absent == "empty":
                return [], Cited("none", rule=rule, why="no matching record; absent means none")
            return _MISSING, Cited(None, rule=rule, why="no matching record")
        shown = ", ".join(f"{v} ({e[2]}, {e[3]})" for v, e in sure.items())
        return sorted(sure), Cited(shown, rule=rule)

    def _exists(self, element: ElementBinding, usable: list[Entry], rule: str) -> tuple[Any, Cited]:
        negate = element.rule.select == "none"
        true_entry = next((e for e in usable if e[10] is None and _truth(element, e) is True), None)
        if true_entry is not None:
            return (not negate), Cited(str(not negate).lower(), true_entry[2], true_entry[3], rule)
        if any(e[10] == UNCERTAIN or _truth(element, e) is None for e in usable):
            e = usable[0]
            return _MISSING, Cited(None, e[2], e[3], rule, why="only an unconfirmed record")
        if usable:
            e = usable[0]
            return negate, Cited(str(negate).lower(), e[2], e[3], rule)
        if element.absent == "false":
            return negate, Cited(
                str(negate).lower(), rule=rule, why="no matching record; absent means false"
            )
        return _MISSING, Cited(None, rule=rule, why="no matching record")

    def _pick(
        self, element: ElementBinding, usable: list[Entry], rule: str, problems: list[str]
    ) -> tuple[Any, Cited]:
        values: list[tuple[Any, Entry, datetime.date]] = []
        for e in usable:
            day = _day(e[3])
            if day is None:
                return _MISSING, Cited(None, e[2], rule=rule, why=f"{e[2]} has no date")
            if e[10] == UNCERTAIN:
                return _MISSING, Cited(None, e[2], e[3], rule, why=f"{e[2]} is not confirmed")
            try:
                value = self._value(element, e, day)
            except (ValueError, ArithmeticError, TypeError) as error:
                problem = f"{e[2]}: {error}"
                problems.append(problem)
                return _MISSING, Cited(None, e[2], e[3], rule, why=problem)
            if value is None:
                why = f"{e[2]} has no value the binding can read"
                problems.append(why)
                return _MISSING, Cited(None, e[2], e[3], rule, why=why)
            values.append((value, e, day))
        if not values:
            return _MISSING, Cited(None, rule=rule, why="no matching record")
        select = element.rule.select
        if select in ("latest", "earliest", "any", "none"):
            pick_day = (max if select != "earliest" else min)(d for _, _, d in values)
            chosen = [(v, e) for v, e, d in values if d == pick_day]
            distinct = {_key(v) for v, _ in chosen}
            if len(distinct) > 1:
                said = "; ".join(f"{e[2]} says {_text(v)}" for v, e in chosen)
                problem = f"conflicting values for '{element.name}' on {pick_day}: {said}"
                problems.append(problem)
                return _MISSING, Cited(None, rule=rule, why=problem)
            value, entry = chosen[0]
        else:
            best = (max if select == "highest" else min)(values, key=lambda x: x[0])
            value, entry = best[0], best[1]
        shown: str | Shown
        if element.type.kind == "quantity" and isinstance(value, Decimal):
            shown = Shown(value, element.type.unit)
        else:
            shown = _text(value)
        return value, Cited(shown, entry[2], entry[3], rule)

    def _value(self, element: ElementBinding, e: Entry, day: datetime.date) -> Any:
        kind = element.type.kind
        convert = self.converters[element.name]
        if element.read == "date":
            return day
        if element.read == "time since":
            if self.as_of is None:
                raise ValueError("the time since needs a reference date (--as-of)")
            return convert({"value": Decimal((self.as_of - day).days), "unit": "d"})
        if kind in ("enum", "boolean"):
            if element.source == "pregnancy":
                mapped = _mapped(PREGNANCY_VALUES, e)
            elif element.values:
                mapped = _mapped(element.values, e)
            else:
                mapped = [e[4]] if e[4] in ("true", "false") else []
            if len(set(mapped)) != 1:
                codes = e[4] if isinstance(e[4], list) else [e[8]]
                raise ValueError(
                    f"the code(s) {', '.join(str(c) for c in codes)} map to "
                    f"{'no value' if not mapped else 'several values'} of '{element.name}'"
                )
            return convert(mapped[0] == "true" if kind == "boolean" else mapped[0])
        if e[4] is None:
            return None
        number = Decimal(str(e[4]))
        if e[5] is None:
            return convert(number)
        return convert({"value": number, "unit": e[5]})

    def _patient(
        self, element: ElementBinding, found: list[Entry], problems: list[str]
    ) -> tuple[Any, Cited]:
        rule = f"Patient.{element.field}"
        usable = [e for e in found if e[10] is None]
        if not usable:
            why = found[0][10] if found else f"no Patient.{element.field}"
            return _MISSING, Cited(None, rule=rule, why=why)
        e = usable[0]
        text = str(e[4])
        if element.field == "gender":
            if text not in element.type.values:
                why = f"Patient.gender is '{text}', not a value of '{element.name}'"
                problems.append(why)
                return _MISSING, Cited(None, e[2], rule=rule, why=why)
            return text, Cited(text, e[2], rule=rule)
        if element.type.kind == "date":
            if not _DAY.fullmatch(text):
                why = f"Patient.birthDate '{text}' is not a full date"
                problems.append(why)
                return _MISSING, Cited(None, e[2], rule=rule, why=why)
            return text, Cited(text, e[2], rule=rule)
        if self.as_of is None:
            return _MISSING, Cited(None, e[2], rule=rule, why="the age needs a reference date")
        first, last = _birth_range(text)
        oldest, youngest = whole_years(first, self.as_of), whole_years(last, self.as_of)
        if oldest != youngest:
            why = f"born {text}: {youngest} or {oldest} years old on {self.as_of}"
            return _MISSING, Cited(None, e[2], text, rule, why=why)
        try:
            value = self.converters[element.name]({"value": Decimal(oldest), "unit": "a"})
        except ValueError as error:
            why = f"{e[2]}: age {oldest}: {error}"
            problems.append(why)
            return _MISSING, Cited(None, e[2], text, rule, why=why)
        return value, Cited(f"{oldest} a", e[2], text, f"age on {self.as_of}")


@functools.lru_cache(maxsize=8192)  # the same days come back patient after patient
def _day(text: str | None) -> datetime.date | None:
    if text is None or len(text) != 10:
        return None
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        return None


def _birth_range(text: str) -> tuple[datetime.date, datetime.date]:
    year = int(text[:4])
    if len(text) >= 10:
        day = datetime.date.fromisoformat(text[:10])
        return day, day
    if len(text) >= 7:
        month = int(text[5:7])
        last = calendar.monthrange(year, month)[1]
        return datetime.date(year, month, 1), datetime.date(year, month, last)
    return datetime.date(year, 1, 1), datetime.date(year, 12, 31)


def _mapped(values: tuple[tuple[str, CodeSet], ...], e: Entry) -> list[str]:
    codes = e[4] if isinstance(e[4], list) else [e[8]]
    return [value for value, codeset in values if any(c and codeset.matches(c) for c in codes)]


def _truth(element: ElementBinding, e: Entry) -> bool | None:
    """Whether an entry says yes for an `any` rule: its mapped or boolean value, else its presence."""
    if element.source == "pregnancy" or element.values:
        mapped = set(
            _mapped(PREGNANCY_VALUES if element.source == "pregnancy" else element.values, e)
        )
        return None if len(mapped) != 1 else mapped == {"true"}
    if e[4] in ("true", "false"):
        return bool(e[4] == "true")
    return True


def _number(text: Any) -> Decimal | None:
    return None if text is None else Decimal(str(text))


def _key(value: Any) -> Any:
    return value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return str(value)


def cited_dict(sources: Mapping[str, Cited]) -> dict[str, dict[str, str]]:
    return {name: cited.to_dict() for name, cited in sources.items()}
