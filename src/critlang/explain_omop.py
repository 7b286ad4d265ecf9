"""Each person's result from OMOP, every value citing the table row it came from.

`critlang eval PROTOCOL --bindings B --omop DATABASE --as-of D [--person ID ...]`.
The values are those of the screening (`screen_omop`): the same patient-table
and events queries of `bindings/omop.py`, restricted to the persons asked
about, so an explanation can never disagree with a screening. Each person's
values then go through record intake and the protocol's explanation, as a
flat record does; and for every value, the records it was selected from are
read once more (the same `matched` query, with their row ids) to name the
row and date it came from (`measurement/123, 2026-10-01`), or why there is
none (no record in the window, a unit that cannot be read, disagreeing
values on the selected day).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from critlang.bindings.assemble import Cited, Shown
from critlang.bindings.binding import Binding
from critlang.bindings.omop import (
    PERSON_ID,
    TABLES,
    PatientTable,
    Resolved,
    flag_column,
    source_of,
)
from critlang.bindings.run import SourcedResult
from critlang.evaluate import Protocol
from critlang.screen_omop import Backend, _needs_reference, _unmapped, connect, resolve

BATCH = 500  # persons per query
_WORDS = {
    "unreadable": "the selected value could not be read (its unit, number or concept)",
    "conflict": "disagreeing values on the selected day",
    "future": "record(s) dated after the reference date, not read",
}


class OmopExplain:
    """Explains the persons of an OMOP database (all, or those asked about) one by one."""

    def __init__(
        self,
        protocol: Protocol,
        binding: Binding,
        database: str,
        reference: datetime.date | None,
        engine: str = "duckdb",
        session: Any = None,
    ) -> None:
        section = binding.sections.get("omop")
        if section is None:
            raise ValueError(f"{binding.file}: the binding has no omop section")
        self.protocol = protocol
        self.sources = [source_of(element) for element in section.elements.values()]
        if reference is None and _needs_reference(protocol.checked, self.sources):
            raise ValueError("the bindings' windows and ages need the reference date: give --as-of")
        self.reference = reference
        self.database = database
        self.backend: Backend = connect(database, engine, session)
        self.unbound = section.unbound
        try:
            self.resolved, self.problems = resolve(
                protocol.checked, self.sources, self.backend, reference
            )
            self.problems += _unmapped(self.sources, self.backend)
        except self.backend.error as error:
            self.backend.close()
            raise ValueError(f"{database}: {str(error).strip().splitlines()[0]}") from None
        self.table = PatientTable(protocol.checked, self.resolved, reference)

    def close(self) -> None:
        self.backend.close()

    def persons(self, asked: Sequence[int] | None) -> list[int]:
        """The persons asked about that are in `person` (all of them, in order, if none asked)."""
        from sqlglot import exp

        query = exp.select(exp.column(PERSON_ID)).from_("person").order_by(exp.column(PERSON_ID))
        if asked:
            wanted = [exp.Literal.number(p) for p in asked]
            query = query.where(exp.In(this=exp.column(PERSON_ID), expressions=wanted))
        return [int(row[0]) for row in self.backend.rows(query)]

    def results(self, asked: Sequence[int] | None = None) -> Iterator[SourcedResult]:
        try:
            found = self.persons(asked)
            for start in range(0, len(found), BATCH):
                yield from self._batch(found[start : start + BATCH])
        except self.backend.error as error:
            raise ValueError(f"{self.database}: {str(error).strip().splitlines()[0]}") from None

    def report(self, asked: Sequence[int] | None, found: int) -> list[str]:
        lines = [f"OMOP: {found} person(s) explained"]
        if asked:
            missing = len(set(asked)) - found
            if missing:
                lines.append(f"{missing} person id(s) asked about are not in the person table")
        shown = [p for p in self.problems if p.count or p.kind in ("code", "strength")]
        if shown:
            lines.append("data problems (counted; none changed a result silently):")
            lines += [f"  {p.text()}" for p in shown]
        return lines

    # ---- one batch of persons

    def _rows(self, query: Any) -> list[dict[str, Any]]:
        names = [e.alias_or_name for e in query.expressions]
        return [dict(zip(names, row, strict=True)) for row in self.backend.rows(query)]

    def _batch(self, persons: list[int]) -> Iterator[SourcedResult]:
        table = self.table
        table.persons = persons
        try:
            patients = self._patients(table)
            events: dict[str, dict[str, list[dict[str, Any]]]] = {}
            query = table.events()
            histories = {item.source.element: item for item in self.resolved if item.history}
            if query is not None:
                for row in self.backend.rows(query):
                    history = events.setdefault(str(row[0]), {}).setdefault(str(row[1]), [])
                    if row[7] is not None:
                        history.append(_entry(row, histories[str(row[1])]))
            cited = {
                item.source.element: self._records(table, item)
                for item in self.resolved
                if not item.history and item.source.table in TABLES
            }
        finally:
            table.persons = None
        for person in persons:
            record, sources, problems = self._record(
                person, patients[person], events.get(str(person), {}), cited
            )
            (result,) = self.protocol.screen([(1, record)])
            yield SourcedResult.of(result, sources, problems)

    def _patients(self, table: PatientTable) -> dict[int, dict[str, Any]]:
        query = table.query()
        cursor = self.backend.rows(query)
        names = [e.alias_or_name for e in query.expressions]
        return {int(row[0]): dict(zip(names, row, strict=True)) for row in cursor}

    def _records(self, table: PatientTable, item: Resolved) -> dict[int, list[dict[str, Any]]]:
        """The element's records in its window, per person, each with its row id."""
        by_person: dict[int, list[dict[str, Any]]] = {}
        for row in self._rows(table.matched(item, window_only=True, cite=True)):
            by_person.setdefault(int(row["pid"]), []).append(row)
        return by_person

    def _record(
        self,
        person: int,
        row: dict[str, Any],
        histories: dict[str, list[dict[str, Any]]],
        cited: dict[str, dict[int, list[dict[str, Any]]]],
    ) -> tuple[dict[str, Any], dict[str, Cited], tuple[str, ...]]:
        record: dict[str, Any] = {"id": str(person)}
        sources: dict[str, Cited] = {}
        problems: list[str] = []
        reference = self.table.checked_reference()
        if reference is not None and self.reference is not None:
            record[reference] = self.reference.isoformat()
        for item in self.resolved:
            name = item.source.element
            for flag, words in _WORDS.items():
                count = row.get(flag_column(name, flag))
                if count:
                    shown = f"{count} {words}" if flag == "future" else words
                    problems.append(f"{name}: {shown}")
            if item.history:
                entries = histories.get(name, [])
                record[name] = entries
                sources[name] = Cited(
                    f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}",
                    rule=item.source.select,
                )
                continue
            value = row.get(item.column)
            if value is not None:
                record[name] = _value(value, item)
            if item.source.table == "person":
                sources[name] = self._person_cited(person, item, value)
            else:
                records = cited[name].get(person, [])
                sources[name] = _cited(item, value, records, self._rule(item))
        return record, sources, tuple(problems)

    def _rule(self, item: Resolved) -> str:
        source = item.source
        if source.window is None:
            return source.select
        amount, unit = source.window.amount, source.window.unit
        return f"{source.select} within {amount} {unit}{'s' if amount != 1 else ''}"

    def _person_cited(self, person: int, item: Resolved, value: Any) -> Cited:
        where = f"person/{person}"
        field = item.source.field
        if field == "reference_date":
            return Cited(_text(value), rule="the reference date (--as-of)")
        if value is None:
            return Cited(None, where, rule=f"person.{field}", why=f"no usable {field} in person")
        if field == "gender":
            return Cited(str(value), where, rule="person.gender_concept_id")
        if item.kind.kind == "date":
            return Cited(_text(value), where, rule="person.birth_date")
        return Cited(Shown(Decimal(value), "a"), where, rule=f"age on {self.reference}")


def _entry(row: Sequence[Any], item: Resolved) -> dict[str, Any]:
    """An events row (id, element, date, value, code, start, end, source, low, high, dose)
    as a history entry of a record."""
    _, _, date, value, code, start, end, source, low, high, dose = (
        v.isoformat() if isinstance(v, datetime.date) else v for v in row
    )
    unit = item.kind.unit
    if item.kind.entry == "measurement":
        entry: dict[str, Any] = {"date": date, "value": value, "unit": unit}
        entry.update({k: v for k, v in (("low", low), ("high", high)) if v is not None})
    elif item.kind.entry == "medication":
        entry = {"start": start, "end": end, "code": code}
        if dose is not None:
            entry.update(dose=dose, unit=unit)
    else:
        entry = {"date": date, "code": code}
        if end is not None:
            entry["end"] = end  # a condition's end date
    entry["source"] = source
    return entry


def _value(value: Any, item: Resolved) -> Any:
    """A patient-table value as a flat record holds it."""
    if item.source.read == "time since":
        return {"value": Decimal(value), "unit": "d"}
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return sorted(str(v) for v in value)
    return value


def _text(value: Any) -> str:
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _shown(value: Any, item: Resolved) -> str | Shown:
    if item.source.read == "time since":
        return Shown(Decimal(value), "d")
    if item.kind.kind == "quantity":
        return Shown(Decimal(value), item.kind.unit or "1")
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "none"
    return _text(value)


def _name(item: Resolved, record: dict[str, Any]) -> str:
    return f"{item.source.table}/{record['rid']}"


def _cited(item: Resolved, value: Any, records: list[dict[str, Any]], rule: str) -> Cited:
    """The record(s) the selected value came from, or why there is no value."""
    source = item.source
    if not records:
        if value is None:
            return Cited(None, rule=rule, why="no matching record")
        return Cited(
            _shown(value, item), rule=rule, why=f"no matching record; absent means {source.absent}"
        )
    by_day = sorted(records, key=lambda r: (r["d"], r["rid"]))
    if item.presence:
        latest = by_day[-1]
        return Cited(
            _shown(value, item) if value is not None else None,
            _name(item, latest),
            _text(latest["d"]),
            rule,
        )
    if item.kind.kind == "set":
        found: dict[str, dict[str, Any]] = {}
        for record in reversed(by_day):
            if record.get("v") is not None:
                found.setdefault(str(record["v"]), record)
        shown = ", ".join(
            f"{word} ({_name(item, found[word])}, {_text(found[word]['d'])})"
            for word in sorted(found)
        )
        return Cited(shown or "none", rule=rule)
    if source.select in ("highest", "lowest"):
        if value is None:
            bad = next((r for r in by_day if r.get("bad")), None)
            why = f"{_name(item, bad)} could not be read" if bad else "no readable value"
            return Cited(None, rule=rule, why=why)
        chosen = [r for r in by_day if r.get("v") == value]
        record = chosen[0] if chosen else by_day[-1]
        return Cited(_shown(value, item), _name(item, record), _text(record["d"]), rule)
    day = by_day[-1]["d"] if source.select != "earliest" else by_day[0]["d"]
    on_day = [r for r in by_day if r["d"] == day]
    names = ", ".join(_name(item, r) for r in on_day)
    if value is None:
        unread = [r for r in on_day if r.get("bad")]
        if unread:
            why = f"{_name(item, unread[0])} could not be read (its unit, number or concept)"
        elif len({str(r.get("v")) for r in on_day}) > 1:
            said = "; ".join(f"{_name(item, r)} says {_text(r.get('v'))}" for r in on_day)
            why = f"disagreeing values on {_text(day)}: {said}"
        else:
            why = f"{names} has no value the binding can read"
        return Cited(None, names, _text(day), rule, why=why)
    return Cited(_shown(value, item), names, _text(day), rule)


__all__ = ["OmopExplain"]
