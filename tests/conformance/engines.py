"""One adapter per engine, each: (protocol source, records) -> one outcome per record.

An outcome is `{"status": ..., "criteria": {"I1": "true", "I2.a": "not applicable", ...}}`
with the words "true", "false", "unknown" and "not applicable". `REPORTS` says how
much of that each engine can give today: the runner checks exactly that much.

The adapters are thin on purpose: they call today's public surface of each engine
(`Protocol.status`, `Protocol.evaluate`, `critlang.sql` in DuckDB, Spark and
PostgreSQL, the z3 engine `critlang.engines.z3`) and only translate values into
words. When the engines move onto the core IR, these functions are re-pointed,
and `KNOWN_BUGS` below, the one list of disagreements, shrinks.
"""

from __future__ import annotations

import datetime
import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

import critlang
from critlang import syntax as s
from critlang.check import Checked
from critlang.records import RecordError
from critlang.vocab import ENTRY_LAYOUT, EntryKind

Outcome = dict[str, Any]
Engine = Callable[[str, Sequence[Mapping[str, Any]]], list[Outcome]]
WORDS = {True: "true", False: "false", None: "unknown"}
NOT_APPLICABLE = "not applicable"

# What each engine reports: the status only, the criteria too, or the named parts too.
STATUS, CRITERIA, PARTS = "status", "criteria", "parts"
REPORTS = {
    "python-status": STATUS,
    "python-evaluate": PARTS,
    "duckdb": PARTS,
    "spark": PARTS,
    "postgres": PARTS,
    "z3": PARTS,
    "javascript": PARTS,
    "elm": PARTS,
}
# Engines that answer only for records in which every data element has a value: none
# since the z3 engine encodes "unknown" too (`fuzz.py` still limits z3's records, for time).
FULLY_KNOWN_ONLY: frozenset[str] = frozenset()


# The terminology a protocol's cases are evaluated with (`terminology:` in its data file).
TERMINOLOGIES: dict[str, Path] = {}


@functools.lru_cache(maxsize=64)
def compile_source(source: str) -> critlang.Protocol:
    """The compiled protocol; an engine adapter compiles what it needs from it."""
    return critlang.compile_source(source, "conformance.crit", TERMINOLOGIES.get(source))


def word(value: bool | None, applies: bool | None = True) -> str:
    return NOT_APPLICABLE if applies is False else WORDS[value]


def reported_parts(criterion: s.Criterion) -> tuple[s.SubCriterion, ...]:
    """The named parts an engine reports: those of a list that is the whole condition."""
    condition = criterion.condition
    if not isinstance(condition, s.Quantified):
        return ()
    return tuple(item for item in condition.items if isinstance(item, s.SubCriterion))


# ---- Python --------------------------------------------------------------------------


def python_status(source: str, records: Sequence[Mapping[str, Any]]) -> list[Outcome]:
    protocol = compile_source(source)
    return [{"status": protocol.status(record), "criteria": {}} for record in records]


def python_evaluate(source: str, records: Sequence[Mapping[str, Any]]) -> list[Outcome]:
    protocol = compile_source(source)
    outcomes = []
    for record in records:
        result = protocol.evaluate(record)
        words: dict[str, str] = {}
        for criterion in result.criteria:
            words[criterion.id] = criterion.value_word
            for part in criterion.parts:
                words[f"{criterion.id}.{part.name}"] = part.value_word
        outcomes.append({"status": result.status, "criteria": words})
    return outcomes


# ---- JavaScript: the live form's engine, in Node.js -------------------------------------


def javascript(source: str, records: Sequence[Mapping[str, Any]]) -> list[Outcome]:
    from tests.jsengine import run_node

    outcomes = run_node(compile_source(source), [dict(record) for record in records])
    return [{"status": o["status"], "criteria": o["criteria"]} for o in outcomes]


# ---- ELM: the exported CQL, run by the reference engine cql-execution ---------------------


def elm(source: str, records: Sequence[Mapping[str, Any]]) -> list[Outcome]:
    from tests.cql.engine import run_elm

    outcomes = run_elm(source, [dict(record) for record in records])
    return [{"status": o["status"], "criteria": o["criteria"]} for o in outcomes]


# ---- SQL: one table per batch of records, one query per table ---------------------------


def column_groups(
    checked: Checked, records: Sequence[Mapping[str, Any]]
) -> list[tuple[list[str], list[int], list[dict[str, Any]]]]:
    """Records grouped by the columns they need, with rows ready for a table.

    A value given with another unit goes into a column named `name [unit]`, as a
    warehouse table says its unit, and the SQL converts it; records that give one
    element in different units go into different tables.
    """
    # A missing value goes into the column most records use for its element.
    usual: dict[str, str] = {}
    flat = [n for n in checked.elements if checked.element_types[n].kind != "history"]
    for name in flat:
        given = [_column_name(name, r.get(name)) for r in records if r.get(name) is not None]
        usual[name] = max(sorted(set(given)), key=given.count) if given else name
    groups: dict[tuple[str, ...], tuple[list[int], list[dict[str, Any]]]] = {}
    for position, record in enumerate(records):
        row: dict[str, Any] = {"id": str(record.get("id", position))}
        names: list[str] = []
        for name in flat:
            value = record.get(name)
            if checked.element_types[name].kind == "code" and isinstance(value, Mapping):
                value = f"{value['system']}:{value['code']}"
            column = usual[name] if value is None else _column_name(name, value)
            if isinstance(value, Mapping):
                value = value["value"]
            names.append(column)
            row[column] = sql_value(checked.element_types[name].kind, value)
        positions, rows = groups.setdefault(tuple(names), ([], []))
        positions.append(position)
        rows.append(row)
    for _, rows in groups.values():
        _partial_dates_as_text(checked, rows)
    return [(list(names), positions, rows) for names, (positions, rows) in groups.items()]


def history_names(checked: Checked) -> list[str]:
    return [n for n in checked.elements if checked.element_types[n].kind == "history"]


def event_rows(source: str, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The records' histories as rows of an events table, every field as text (docs/sql.md).

    Entries are taken in by the Python engine's intake, so values are in the
    declared unit; a history on record with no entries is a row with only its
    `id` and `element`.
    """
    protocol = compile_source(source)
    checked = protocol.checked
    rows: list[dict[str, Any]] = []
    if not history_names(checked):
        return rows
    for position, record in enumerate(records):
        record_id = str(record.get("id", position))
        try:
            _, env = protocol.intake(record, position)
        except RecordError:
            continue  # the SQL engine's own stages find what is wrong with it
        for name in history_names(checked):
            entries = env.get(name)
            if entries is None:
                continue
            fields = ENTRY_LAYOUT[EntryKind(checked.element_types[name].entry)]
            if not entries:
                rows.append({"id": record_id, "element": name})
            for entry in entries:
                row = {"id": record_id, "element": name}
                for field, value in zip(fields, entry, strict=True):
                    if value is not None:
                        row[field] = _text(value)
                rows.append(row)
    columns = ("id", "element", "date", "value", "low", "high", "code", "start", "end", "dose")
    return [{c: row.get(c) for c in columns} for row in rows]


def _text(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


EVENT_COLUMNS = ("id", "element", "date", "value", "low", "high", "code", "start", "end", "dose")


def events_table(rows: list[dict[str, Any]]) -> Any:
    import pyarrow as pa

    schema = pa.schema([pa.field(c, pa.string()) for c in EVENT_COLUMNS])
    return pa.Table.from_pylist(rows, schema)


def with_events(layout: Any, dialect: str, rows: list[dict[str, Any]], table: str) -> Any:
    """The layout with the events table, its fields all text, as a CSV file gives them."""
    if not rows:
        return layout
    from critlang import sql

    events = sql.events_from_schema(table, [(c, "VARCHAR") for c in EVENT_COLUMNS], dialect, True)
    return attrs.evolve(layout, events=events)


def _partial_dates_as_text(checked: Checked, rows: list[dict[str, Any]]) -> None:
    """A date column with a partial date (`2019-05`) holds text, as a CSV file would."""
    for name, kind in checked.element_types.items():
        if kind.kind == "date" and any(isinstance(row.get(name), str) for row in rows):
            for row in rows:
                value = row.get(name)
                if isinstance(value, datetime.date):
                    row[name] = value.isoformat()


def _column_name(name: str, value: Any) -> str:
    return f"{name} [{value['unit']}]" if isinstance(value, Mapping) and "unit" in value else name


def sql_value(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind in ("number", "quantity"):
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if kind == "date" and isinstance(value, str):
        # A partial date (2019, 2019-05) stays text: see `_partial_dates_as_text`.
        return datetime.date.fromisoformat(value) if len(value) == 10 else value
    return value


def sql_outcome(checked: Checked, row: Mapping[str, Any]) -> Outcome:
    if row.get("error"):
        return {"status": "error", "criteria": {}, "error": row["error"]}
    words = {}
    for criterion in checked.protocol.criteria:
        ident = criterion.id.text
        words[ident] = word(row[ident], row.get(f"{ident} applies", True))
        for part in reported_parts(criterion):
            column = f"{ident} {part.name.text}"
            words[f"{ident}.{part.name.text}"] = word(
                row[column], row.get(f"{column} applies", True)
            )
    return {"status": row["status"], "criteria": words}


def arrow_table(checked: Checked, names: list[str], rows: list[dict[str, Any]]) -> Any:
    import pyarrow as pa

    types = {
        "boolean": pa.bool_(),
        "enum": pa.string(),
        "ordinal": pa.string(),
        "code": pa.string(),
        "set": pa.list_(pa.string()),
        "date": pa.date32(),
        "number": pa.decimal128(18, 6),
        "quantity": pa.decimal128(18, 6),
    }
    fields = [pa.field("id", pa.string())]
    flat = [n for n in checked.elements if checked.element_types[n].kind != "history"]
    for element, column in zip(flat, names, strict=True):
        kind = checked.element_types[element].kind
        text = kind == "date" and any(isinstance(row.get(column), str) for row in rows)
        fields.append(pa.field(column, pa.string() if text else types[kind]))
    return pa.Table.from_pylist(rows, pa.schema(fields))


def _batched(
    source: str,
    records: Sequence[Mapping[str, Any]],
    run: Callable[[Checked, list[str], list[dict[str, Any]]], list[dict[str, Any]]],
) -> list[Outcome]:
    checked = compile_source(source).checked
    outcomes: list[Outcome | None] = [None] * len(records)
    for names, positions, rows in column_groups(checked, records):
        by_id = {str(row["id"]): row for row in run(checked, names, rows)}
        for position, row in zip(positions, rows, strict=True):
            outcomes[position] = sql_outcome(checked, by_id[row["id"]])
    return [o for o in outcomes if o is not None]


def duckdb(source: str, records: Sequence[Mapping[str, Any]]) -> list[Outcome]:
    import duckdb as db

    from critlang import sql

    def run(checked: Checked, names: list[str], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        connection = db.connect()
        connection.register("patients", arrow_table(checked, names, rows))
        relation = connection.sql("SELECT * FROM patients")
        schema = list(zip(relation.columns, map(str, relation.types), strict=True))
        layout = sql.layout_from_schema(checked, schema, "duckdb")
        events = event_rows(source, records)
        connection.register("events", events_table(events))
        layout = with_events(layout, "duckdb", events, "events")
        result = connection.sql(sql.to_sql(checked, "patients", "duckdb", layout))
        return [dict(zip(result.columns, row, strict=True)) for row in result.fetchall()]

    return _batched(source, records, run)


def spark(source: str, records: Sequence[Mapping[str, Any]], session: Any) -> list[Outcome]:
    from critlang import sql

    def run(checked: Checked, names: list[str], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        frame = session.createDataFrame(arrow_table(checked, names, rows))
        frame.createOrReplaceTempView("patients")
        schema = [(f.name, f.dataType.simpleString()) for f in frame.schema.fields]
        layout = sql.layout_from_schema(checked, schema, "spark")
        events = event_rows(source, records)
        if events:
            session.createDataFrame(events_table(events)).createOrReplaceTempView("events")
        layout = with_events(layout, "spark", events, "events")
        query = sql.to_sql(checked, "patients", "spark", layout)
        return [row.asDict() for row in session.sql(query).collect()]

    return _batched(source, records, run)


POSTGRES_TYPES = {
    "boolean": "BOOLEAN",
    "enum": "TEXT",
    "ordinal": "TEXT",
    "code": "TEXT",
    "set": "TEXT[]",
    "date": "DATE",
    "number": "NUMERIC(18, 6)",
    "quantity": "NUMERIC(18, 6)",
}
_tables = itertools.count()


def _postgres_type(kind: str, column: str, rows: list[dict[str, Any]]) -> str:
    if kind == "date" and any(isinstance(row.get(column), str) for row in rows):
        return "TEXT"  # partial dates, as text
    return POSTGRES_TYPES[kind]


def postgres(source: str, records: Sequence[Mapping[str, Any]], url: str) -> list[Outcome]:
    import psycopg
    from psycopg import sql as pgsql

    from critlang import sql

    def run(checked: Checked, names: list[str], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        table = f"patients_{next(_tables)}"
        flat = [n for n in checked.elements if checked.element_types[n].kind != "history"]
        columns = [("id", "TEXT")] + [
            (column, _postgres_type(checked.element_types[element].kind, column, rows))
            for element, column in zip(flat, names, strict=True)
        ]
        create = pgsql.SQL("CREATE TEMPORARY TABLE {} ({})").format(
            pgsql.Identifier(table),
            pgsql.SQL(", ").join(
                pgsql.SQL("{} {}").format(pgsql.Identifier(name), pgsql.SQL(kind))
                for name, kind in columns
            ),
        )
        insert = pgsql.SQL("INSERT INTO {} VALUES ({})").format(
            pgsql.Identifier(table), pgsql.SQL(", ").join(pgsql.Placeholder() * len(columns))
        )
        layout = sql.layout_from_schema(checked, columns, "postgres")
        events = event_rows(source, records)
        events_name = f"events_{next(_tables)}"
        layout = with_events(layout, "postgres", events, events_name)
        query = sql.to_sql(checked, table, "postgres", layout)
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(create)
            if events:
                names_sql = pgsql.SQL(", ").join(
                    pgsql.SQL("{} TEXT").format(pgsql.Identifier(c)) for c in EVENT_COLUMNS
                )
                connection.execute(
                    pgsql.SQL("CREATE TEMPORARY TABLE {} ({})").format(
                        pgsql.Identifier(events_name), names_sql
                    )
                )
                with connection.cursor() as cursor:
                    cursor.executemany(
                        pgsql.SQL("INSERT INTO {} VALUES ({})").format(
                            pgsql.Identifier(events_name),
                            pgsql.SQL(", ").join(pgsql.Placeholder() * len(EVENT_COLUMNS)),
                        ),
                        [[row[c] for c in EVENT_COLUMNS] for row in events],
                    )
            with connection.cursor() as cursor:
                cursor.executemany(insert, [[row[name] for name, _ in columns] for row in rows])
                cursor.execute(query.encode())
                assert cursor.description is not None
                header = [d.name for d in cursor.description]
                return [dict(zip(header, row, strict=True)) for row in cursor.fetchall()]

    return _batched(source, records, run)


# ---- z3 ---------------------------------------------------------------------------


def fully_known(source: str, record: Mapping[str, Any]) -> bool:
    checked = compile_source(source).checked
    return all(record.get(name) is not None for name in checked.elements)


def z3(source: str, records: Sequence[Mapping[str, Any]]) -> list[Outcome]:
    """The z3 engine's word for each criterion and part, every element fixed to the record's.

    `critlang.engines.z3` encodes the lowered protocol as three-valued formulas
    over one variable per element, each with a "known" variable; fixing them to
    the record (an absent element to unknown) leaves one model, read by
    `tests/z3engine.py`.
    """
    from tests.z3engine import Z3Engine

    longest = max(
        (len(v) for record in records for v in record.values() if isinstance(v, list)), default=0
    )
    engine = Z3Engine(compile_source(source), entries=max(longest, 1))
    outcomes = []
    for record in records:
        words, status = engine.words(record)
        outcomes.append({"status": status, "criteria": words})
    return outcomes


# ---- what fails today -----------------------------------------------------------------

# The one list of known disagreements with the decided semantics: each entry is a
# reason, the engines it concerns and the cases (`<data file stem>/<case name>`)
# where those engines answer wrongly today. Every listed (engine, case) runs as a
# strict xfail: when an engine is fixed its pairs pass, fail the run, and must go.
# Every engine compiles the core IR, so no engine is known to disagree: a new
# disagreement goes here, with its reason in words, until it is fixed. What is
# left are the limits of a target that cannot say what critlang says.
_CQL_DECIMAL = (
    "a limit of CQL, not a bug: its Decimal keeps 8 decimal places, and 1 month in weeks "
    "(4.348214285714...) has no exact 8-place form (docs/export.md lists what ELM cannot say)"
)
_DISAGREEMENTS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    (_CQL_DECIMAL, ("elm",), ("units/one-month-in-months",)),
)


def _known_bugs() -> dict[tuple[str, str], str]:
    bugs: dict[tuple[str, str], str] = {}
    for reason, names, cases in _DISAGREEMENTS:
        for engine in names:
            for case in cases:
                key = (engine, case)
                bugs[key] = f"{bugs[key]}; {reason}" if key in bugs else reason
    return bugs


KNOWN_BUGS = _known_bugs()
