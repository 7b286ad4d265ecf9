"""Screening straight from an OMOP CDM 5.4 database: DuckDB, Parquet, PostgreSQL or Spark.

The OMOP tables are read where they are. A few small queries look the
binding's codes up in `concept` and list the units the element's records
carry; then one query (bindings/omop.py) makes critlang's patient table (and
one its events table), the screening query of `engines/sql` screens it as
`critlang screen` screens any table, and the attrition and the data problems
are counted.
Each backend runs the same sqlglot trees in its own dialect.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import attrs
from sqlglot import exp

from critlang import screen, sql, units
from critlang.bindings.binding import Binding, CodeSet, normal_code
from critlang.bindings.omop import (
    CONCEPT_SYSTEM,
    DOSE_DIGITS,
    EXACT_PLACES,
    FACTOR_PLACES,
    FLAGS,
    PERSON_ID,
    RECORD_ERROR,
    RECORD_ID,
    ROW,
    TABLES,
    VOCABULARIES,
    OmopSource,
    PatientTable,
    Resolved,
    UnitRead,
    flag_column,
    read_unit,
    source_of,
)
from critlang.check import Checked
from critlang.engines.sql import exact
from critlang.records import ID_FIELD
from critlang.report import atomic_path
from critlang.vocab import CodeSystem

PATIENTS = "critlang_patients"
EVENTS = "critlang_events"


@attrs.frozen
class Problem:
    """A count of one kind of trouble in an element's data."""

    element: str
    kind: str  # a key of bindings.omop.FLAGS, or "unit", "code", "unmapped", "unbound", "strength"
    count: int
    detail: str = ""

    def text(self) -> str:
        what = FLAGS.get(self.kind, "")
        detail = f" ({self.detail})" if self.detail else ""
        if self.kind == "unit":
            return f"{self.element}: {self.count} record(s) with an unusable unit{detail}"
        if self.kind == "code":
            return f"{self.element}: {self.detail}"
        if self.kind == "strength":
            return f"{self.element}: {self.detail}; its doses are not read"
        if self.kind == "unmapped":
            return f"{self.element}: {self.count} record(s) with concept 0 (not mapped){detail}"
        if self.kind == "unbound":
            return f"{self.element}: no binding; unknown for every patient"
        return f"{self.element}: {self.count} {what}{detail}"


@attrs.frozen
class OmopScreen:
    """The attrition of a screening from OMOP, and what was wrong with the data."""

    attrition: screen.Attrition
    problems: tuple[Problem, ...]
    no_data: tuple[tuple[str, int], ...]  # per element: patients with no data at all

    def text(self) -> str:
        lines = [self.attrition.text(), "", "no data at all, by element:"]
        width = max((len(name) for name, _ in self.no_data), default=0)
        lines += [f"  {name.ljust(width)}  {count}" for name, count in self.no_data]
        shown = [p for p in self.problems if p.count or p.kind in ("code", "unbound", "strength")]
        if shown:
            lines += ["", "data problems (counted; none changed a result silently):"]
            lines += [f"  {problem.text()}" for problem in shown]
        return "\n".join(lines)


# ---- a backend: where the OMOP tables are, and how to run a query -------------------


class Backend:
    """A connection to OMOP tables in one engine; queries are sqlglot trees."""

    dialect = "duckdb"
    error: type[Exception] = Exception  # what the engine raises for a query it cannot run

    def rows(self, query: exp.Expr) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def tables(self) -> set[str]:
        raise NotImplementedError

    def column_type(self, table: str, column: str) -> str:
        """The SQL type of a column, as the engine names it (lower case); "" if unknown."""
        raise NotImplementedError

    def text(self, query: exp.Expr) -> str:
        return query.sql(dialect=self.dialect)

    def close(self) -> None:
        pass


class DuckDBBackend(Backend):
    """A DuckDB file (opened read-only) or a directory of Parquet tables, in memory."""

    def __init__(self, location: Path) -> None:
        import duckdb

        self.error = duckdb.Error
        self.connection = duckdb.connect()
        self.connection.execute("SET enable_progress_bar = false")
        self.found: set[str] = set()
        if location.is_dir():
            for path in sorted(location.iterdir()):
                name = path.name.lower().removesuffix(".parquet")
                if path.is_dir() or path.suffix.lower() == ".parquet":
                    pattern = str(path / "*.parquet") if path.is_dir() else str(path)
                    self.view(name, f"read_parquet({_string(pattern)})")
        else:
            self.connection.execute(f"ATTACH {_string(str(location))} AS omop_source (READ_ONLY)")
            listed = self.connection.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_catalog = 'omop_source'"
            ).fetchall()
            for schema, table in listed:
                self.view(table.lower(), f"omop_source.{_quoted(schema)}.{_quoted(table)}")

    def view(self, name: str, source: str) -> None:
        if name in self.found:
            return
        self.connection.execute(f"CREATE VIEW {_quoted(name)} AS SELECT * FROM {source}")
        self.found.add(name)

    def rows(self, query: exp.Expr) -> list[tuple[Any, ...]]:
        return self.connection.execute(self.text(query)).fetchall()

    def tables(self) -> set[str]:
        return self.found

    def column_type(self, table: str, column: str) -> str:
        described = self.connection.execute(f"DESCRIBE {_quoted(table)}").fetchall()
        types = {str(row[0]).lower(): str(row[1]).lower() for row in described}
        return types.get(column, "")

    def close(self) -> None:
        self.connection.close()


class PostgresBackend(Backend):
    """OMOP tables in a PostgreSQL database, found on its search_path."""

    dialect = "postgres"

    def __init__(self, url: str) -> None:
        import psycopg

        self.error = psycopg.Error
        self.connection = psycopg.connect(url, autocommit=True)

    def rows(self, query: exp.Expr) -> list[tuple[Any, ...]]:
        return self.connection.execute(self.text(query)).fetchall()

    def tables(self) -> set[str]:
        found = self.connection.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = ANY (current_schemas(false))"
        ).fetchall()
        return {str(name).lower() for (name,) in found}

    def column_type(self, table: str, column: str) -> str:
        found = self.connection.execute(
            "SELECT data_type, numeric_precision, numeric_scale FROM information_schema.columns "
            "WHERE table_schema = ANY (current_schemas(false)) AND lower(table_name) = %s "
            "AND lower(column_name) = %s",
            (table, column),
        ).fetchall()
        if not found:
            return ""
        kind, precision, scale = found[0]
        if str(kind) == "numeric" and precision is not None:
            return f"decimal({precision},{scale or 0})"
        return str(kind).lower()

    def close(self) -> None:
        self.connection.close()


class SparkBackend(Backend):
    """A directory of Parquet tables read by Spark as temporary views."""

    dialect = "spark"

    def __init__(self, location: Path, session: Any = None) -> None:
        self.spark = session if session is not None else screen.spark_session()
        self.error = Exception
        self.found: set[str] = set()
        if not location.is_dir():
            raise ValueError(f"{location}: Spark reads OMOP tables from a directory of Parquet")
        for path in sorted(location.iterdir()):
            name = path.name.lower().removesuffix(".parquet")
            if path.is_dir() or path.suffix.lower() == ".parquet":
                self.spark.read.parquet(str(path)).createOrReplaceTempView(name)
                self.found.add(name)

    def rows(self, query: exp.Expr) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.spark.sql(self.text(query)).collect()]

    def tables(self) -> set[str]:
        return self.found

    def column_type(self, table: str, column: str) -> str:
        fields = {f.name.lower(): f.dataType.simpleString() for f in self.spark.table(table).schema}
        return str(fields.get(column, "")).lower()


def _string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def connect(database: str, engine: str = "duckdb", session: Any = None) -> Backend:
    """The backend for `database`: a postgresql:// URL, a DuckDB file or a Parquet directory."""
    if database.startswith(("postgresql://", "postgres://")):
        if engine != "duckdb":
            raise ValueError("a PostgreSQL database is screened by PostgreSQL itself")
        return PostgresBackend(database)
    location = Path(database)
    if not location.exists():
        raise ValueError(f"{database}: no such OMOP database (a DuckDB file or a directory)")
    if engine == "spark":
        return SparkBackend(location, session)
    return DuckDBBackend(location)


# ---- looking the binding up in the data ------------------------------------------------


def _select(columns: list[exp.Expr], table: str) -> exp.Select:
    return exp.select(*columns, copy=False).from_(exp.to_table(table), copy=False)


def _ints(values: Sequence[int]) -> list[exp.Expr]:
    return [exp.Literal.number(v) for v in values]


def resolve(
    checked: Checked,
    sources: Sequence[OmopSource],
    backend: Backend,
    reference: datetime.date | None = None,
) -> tuple[list[Resolved], list[Problem]]:
    """Each binding with its concept ids and units looked up in the data (the units of the
    records that can be read: up to `reference`, within the element's window)."""
    tables = backend.tables()
    needed = {"person"} | {s.table for s in sources}
    named = [s for s in sources if _named(s)]
    if named:
        needed.add("concept")
    if any(s.read == "dose" for s in sources):
        needed |= {"drug_strength", "concept"}
    hierarchy = [s for s in sources if any(c.descendants for c in _code_sets(s))]
    if hierarchy:
        needed.add("concept_ancestor")
    absent = sorted(needed - tables)
    if absent:
        raise ValueError(f"the OMOP database has no table {', '.join(absent)}")
    catalog = _catalog([c for s in named for c in _code_sets(s)], backend)
    below = _descendants([c for s in hierarchy for c in _code_sets(s)], catalog, backend)
    resolved: list[Resolved] = []
    problems: list[Problem] = []
    for source in sources:
        kind = checked.element_types[source.element]
        excluded, missing = _concepts(source.exclude, catalog, below)
        concepts, lost = _concepts(source.codes, catalog, below, excluded)
        missing += lost
        values = []
        for value, codes in source.values:
            ids, lost = _concepts(codes, catalog, below, excluded)
            values.append((value, tuple(ids)))
            missing += lost
        problems += [
            Problem(source.element, "code", 0, f"{code} is not in the concept table")
            for code in missing
        ]
        reads: tuple[UnitRead, ...] = ()
        table = TABLES.get(source.table)
        numeric = kind.numeric or (kind.kind == "history" and kind.entry == "measurement")
        if numeric and source.read == "value" and table is not None and table.unit_concept:
            counted = _units(source, kind, concepts, backend, reference)
            for read, count in counted:
                if read.factor is None:
                    problems.append(Problem(source.element, "unit", count, read.problem or ""))
            reads = tuple(read for read, _ in counted)
        storage, ranges = "text", None
        if reads and table is not None and table.value is not None:
            storage = _storage(backend.column_type(table.name, table.value))
            if kind.kind == "history":
                low = backend.column_type(table.name, "range_low")
                ranges = _storage(low) if low else None
        strengths: tuple[tuple[int, Fraction], ...] = ()
        quantity = "text"
        if source.read == "dose":
            strengths, refused = _strengths(source.element, kind, concepts, backend)
            problems += refused
            quantity = _storage(backend.column_type("drug_exposure", "quantity"))
        coded: tuple[tuple[int, str], ...] = ()
        if kind.kind == "code" or (kind.kind == "history" and kind.entry in ("code", "medication")):
            coded = _codes_of(concepts, catalog, backend)
        resolved.append(
            Resolved(
                source,
                kind,
                tuple(concepts),
                tuple(values),
                reads,
                storage,
                coded,
                ranges,
                strengths,
                quantity,
            )
        )
    return resolved, problems


_DECIMAL = re.compile(r"(?:decimal|numeric)\(\s*(\d+)\s*,\s*(\d+)\s*\)")


def _storage(column_type: str) -> str:
    """How values of a column type are read exactly: as a double, a decimal, or as text."""
    if column_type in ("double", "double precision", "float", "real", "float8", "float4"):
        return "float"
    if column_type in ("bigint", "integer", "int", "smallint", "tinyint", "hugeint"):
        return "decimal"
    match = _DECIMAL.fullmatch(column_type)
    if match and int(match.group(2)) <= EXACT_PLACES:
        return "decimal"
    return "text"  # VARCHAR, an unbounded NUMERIC, or what is not known: parsed from its text


def _code_sets(source: OmopSource) -> list[CodeSet]:
    """Every set of codes a binding names: its records', its values' and those it excludes."""
    return [source.codes, source.exclude, *(codes for _, codes in source.values)]


def _named(source: OmopSource) -> bool:
    """Does the binding name codes that need looking up in `concept`?"""
    return any(
        not code.startswith(f"{CONCEPT_SYSTEM}:")
        for codes in _code_sets(source)
        for code in (*codes.codes, *codes.prefixes)
    )


def _concept_id(code: str, catalog: dict[str, int]) -> int | None:
    system, _, bare = code.partition(":")
    return int(bare) if system == CONCEPT_SYSTEM else catalog.get(code)


def _descendants(
    sets: Sequence[CodeSet], catalog: dict[str, int], backend: Backend
) -> dict[int, set[int]]:
    """concept id -> the concepts below it in `concept_ancestor`, for the codes named
    `with descendants` (one query for all); each concept counts as its own descendant."""
    wanted = sorted(
        {
            concept
            for codes in sets
            for code in codes.descendants
            if (concept := _concept_id(code, catalog)) is not None
        }
    )
    below: dict[int, set[int]] = {concept: {concept} for concept in wanted}
    if not wanted:
        return below
    query = _select(
        [exp.column("ancestor_concept_id"), exp.column("descendant_concept_id")],
        "concept_ancestor",
    ).where(exp.In(this=exp.column("ancestor_concept_id"), expressions=_ints(wanted)), copy=False)
    for ancestor, descendant in backend.rows(query):
        below[int(ancestor)].add(int(descendant))
    return below


def _catalog(sets: Sequence[CodeSet], backend: Backend) -> dict[str, int]:
    """`system:code` -> concept_id for the concepts the binding's codes may name.

    One query fetches every concept of the vocabularies named whose code
    (ICD-10-CM without its dot) is one of the codes or starts with a prefix;
    CodeSet.matches then decides exactly which.
    """
    wanted: dict[str, list[exp.Expr]] = {}
    for codes in sets:
        for code in (*codes.codes, *codes.prefixes):
            system, _, bare = code.partition(":")
            if system == CONCEPT_SYSTEM:
                continue
            vocabulary = VOCABULARIES[CodeSystem(system)]
            column: exp.Expr = exp.column("concept_code")
            if system == CodeSystem.ICD10CM:
                column = exp.Anonymous(
                    this="REPLACE",
                    expressions=[column, exp.Literal.string("."), exp.Literal.string("")],
                )
            if code in codes.prefixes:
                # A prefix compared as the code's first characters: no LIKE, whose escapes differ.
                start = exp.Substring(
                    this=column, start=exp.Literal.number(1), length=exp.Literal.number(len(bare))
                )
                test: exp.Expr = exp.EQ(this=start, expression=exp.Literal.string(bare))
            else:
                test = exp.EQ(this=column, expression=exp.Literal.string(bare))
            wanted.setdefault(vocabulary, []).append(test)
    if not wanted:
        return {}
    tests = [
        exp.and_(
            exp.EQ(this=exp.column("vocabulary_id"), expression=exp.Literal.string(vocabulary)),
            exp.paren(exp.or_(*codes)),
        )
        for vocabulary, codes in wanted.items()
    ]
    query = _select(
        [exp.column("concept_id"), exp.column("vocabulary_id"), exp.column("concept_code")],
        "concept",
    ).where(exp.or_(*tests), copy=False)
    systems = {vocabulary: system for system, vocabulary in VOCABULARIES.items()}
    found: dict[str, int] = {}
    for concept, vocabulary, code in backend.rows(query):
        named = systems.get(str(vocabulary))
        if named is not None:
            found[normal_code(named, str(code))] = int(concept)
    return found


def _concepts(
    codes: CodeSet,
    catalog: dict[str, int],
    below: dict[int, set[int]],
    excluded: Sequence[int] = (),
) -> tuple[list[int], list[str]]:
    """The concept ids `codes` name (with the descendants of those so marked), less
    `excluded`, and the codes not found in the concept table. As OHDSI's concept sets:
    what is excluded is left out whichever code included it."""
    ids: set[int] = set()
    missing: list[str] = []
    for code in sorted(codes.codes):
        concept = _concept_id(code, catalog)
        if concept is None:
            missing.append(code)
        elif code in codes.descendants:
            ids.update(below.get(concept, {concept}))
        else:
            ids.add(concept)
    for prefix in codes.prefixes:
        hits = [concept for code, concept in catalog.items() if code.startswith(prefix)]
        if not hits:
            missing.append(prefix + "*")
        ids.update(hits)
    ids.discard(0)  # concept 0 means "not mapped": it never names an element's records
    ids.difference_update(excluded)
    return sorted(ids), missing


def _units(
    source: OmopSource,
    kind: Any,
    concepts: Sequence[int],
    backend: Backend,
    reference: datetime.date | None,
) -> list[tuple[UnitRead, int]]:
    """Every (unit concept, unit source value) the element's records that can be read carry."""
    table = TABLES[source.table]
    assert table.unit_concept is not None and table.unit_source is not None
    if not concepts:
        return []
    match = exp.or_(
        exp.In(this=exp.column(table.concept), expressions=_ints(concepts)),
        exp.In(this=exp.column(table.source_concept), expressions=_ints(concepts)),
        wrap=True,
    )
    if reference is not None:
        date = exp.column(table.date)
        day = exp.cast(exp.Literal.string(reference.isoformat()), "DATE")
        match = exp.and_(match, exp.LTE(this=date, expression=day))
        if source.window is not None:
            start = exp.Literal.string(source.window.start(reference).isoformat())
            match = exp.and_(match, exp.GTE(this=date.copy(), expression=exp.cast(start, "DATE")))
    query = (
        _select(
            [
                exp.column(table.unit_concept),
                exp.column(table.unit_source),
                exp.alias_(exp.Count(this=exp.Star()), "n"),
            ],
            table.name,
        )
        .where(match, copy=False)
        .group_by(exp.column(table.unit_concept), exp.column(table.unit_source), copy=False)
    )
    pairs = [(_int(c), None if s is None else str(s), int(n)) for c, s, n in backend.rows(query)]
    ucum = _ucum([c for c, _, _ in pairs if c], backend)
    return [(read_unit(kind, c, s, ucum), n) for c, s, n in pairs]


def _ucum(unit_ids: Sequence[int], backend: Backend) -> dict[int, str]:
    """The UCUM code of each unit concept (those of the UCUM vocabulary)."""
    if not unit_ids or "concept" not in backend.tables():
        return {}
    lookup = _select([exp.column("concept_id"), exp.column("concept_code")], "concept").where(
        exp.and_(
            exp.In(this=exp.column("concept_id"), expressions=_ints(sorted(set(unit_ids)))),
            exp.EQ(this=exp.column("vocabulary_id"), expression=exp.Literal.string("UCUM")),
        ),
        copy=False,
    )
    return {int(i): str(code) for i, code in backend.rows(lookup)}


def _strengths(
    element: str, kind: Any, concepts: Sequence[int], backend: Backend
) -> tuple[tuple[tuple[int, Fraction], ...], list[Problem]]:
    """Per drug concept, its amount per unit dispensed (drug_strength's amount_value) in the
    element's unit per day: a daily dose is that x quantity / days_supply. A drug without
    one strength (none, or one per ingredient), with no amount, a unit that is not UCUM or
    of another kind, or a factor not exact in SQL decimals is refused and named."""
    if not concepts:
        return (), []
    query = _select(
        [
            exp.column("drug_concept_id"),
            exp.column("amount_value"),
            exp.column("amount_unit_concept_id"),
        ],
        "drug_strength",
    ).where(exp.In(this=exp.column("drug_concept_id"), expressions=_ints(concepts)), copy=False)
    rows: dict[int, list[tuple[Any, int | None]]] = {}
    for drug, amount, unit in backend.rows(query):
        rows.setdefault(int(drug), []).append((amount, _int(unit)))
    ucum = _ucum([u for found in rows.values() for _, u in found if u], backend)
    strengths: list[tuple[int, Fraction]] = []
    problems: list[Problem] = []
    for drug, found in sorted(rows.items()):
        why = None
        if len(found) > 1:
            why = f"{len(found)} strengths (one per ingredient)"
        elif found[0][0] is None:
            why = "no amount_value (not a solid form)"
        else:
            amount, unit_id = found[0]
            code = ucum.get(unit_id) if unit_id else None
            per_day = f"{code}/d" if code else None
            if per_day is None or not units.is_valid(per_day):
                why = f"amount unit concept {unit_id} is not a UCUM unit"
            elif not units.compatible(per_day, kind.unit, kind.molar_mass):
                why = f"'{per_day}' does not convert to '{kind.unit}'"
            else:
                per = Fraction(str(amount)) * units.factor(per_day, kind.unit, kind.molar_mass)
                places = exact.places(per)
                if places is None or places > FACTOR_PLACES or abs(per) >= 10**DOSE_DIGITS:
                    why = f"{amount} {per_day} is {per} '{kind.unit}', not exact in SQL decimals"
                else:
                    strengths.append((drug, per))
        if why is not None:
            problems.append(Problem(element, "strength", 0, f"drug concept {drug}: {why}"))
    return tuple(strengths), problems


def _codes_of(
    concepts: Sequence[int], catalog: dict[str, int], backend: Backend
) -> tuple[tuple[int, str], ...]:
    """Each concept's `system:code`, as a history's entries carry it; concepts of a
    vocabulary critlang has no code system for are left out (their entries have no code)."""
    found = {concept: code for code, concept in catalog.items() if concept in concepts}
    unknown = sorted(set(concepts) - set(found))
    if unknown:
        query = _select(
            [exp.column("concept_id"), exp.column("vocabulary_id"), exp.column("concept_code")],
            "concept",
        ).where(exp.In(this=exp.column("concept_id"), expressions=_ints(unknown)), copy=False)
        systems = {vocabulary: system for system, vocabulary in VOCABULARIES.items()}
        for concept, vocabulary, code in backend.rows(query):
            named = systems.get(str(vocabulary))
            if named is not None:
                found[int(concept)] = normal_code(named, str(code))
    return tuple(sorted(found.items()))


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _unmapped(sources: Sequence[OmopSource], backend: Backend) -> list[Problem]:
    """Records with concept 0 in each table a binding reads: data that no element can see."""
    problems = []
    for name in sorted({s.table for s in sources if s.table in TABLES}):
        table = TABLES[name]
        query = _select([exp.Count(this=exp.Star())], name).where(
            exp.EQ(this=exp.column(table.concept), expression=exp.Literal.number(0)), copy=False
        )
        (count,) = backend.rows(query)[0]
        detail = "read only where a binding names their source concept"
        problems.append(Problem(name, "unmapped", int(count), detail))
    return problems


# ---- screening -----------------------------------------------------------------------------


def run(
    checked: Checked,
    binding: Binding,
    database: str,
    reference: datetime.date | None,
    engine: str = "duckdb",
    output: Path | None = None,
    session: Any = None,
    count_absent: bool = True,
) -> OmopScreen:
    """Screen every person of the OMOP `database`; write results to `output`; count problems.

    `binding` is checked (bindings.load_binding) and has an `omop` section.
    `count_absent=False` leaves out the patients with no data at all (and the
    records after the reference date) of elements with a value: counting them
    costs one more pass over all their records. Raise ValueError for a
    database that cannot be read or a binding without an OMOP section.
    """
    section = binding.sections.get("omop")
    if section is None:
        raise ValueError(f"{binding.file}: the binding has no omop section")
    sources = [source_of(element) for element in section.elements.values()]
    if reference is None and _needs_reference(checked, sources):
        raise ValueError("the bindings' windows and ages need the reference date: give --as-of")
    target = screen._output_format(output)
    backend = connect(database, engine, session)
    try:
        try:
            resolved, problems = resolve(checked, sources, backend, reference)
            problems += _unmapped(sources, backend)
            table = PatientTable(checked, resolved, reference)
            table.count_absent = count_absent
            if isinstance(backend, DuckDBBackend):
                attrition, counts = _screen_duckdb(backend, checked, table, output, target)
            elif isinstance(backend, PostgresBackend):
                attrition, counts = _screen_postgres(backend, checked, table, output, target)
            else:
                assert isinstance(backend, SparkBackend)
                attrition, counts = _screen_spark(backend, checked, table, output, target)
        except backend.error as error:
            raise ValueError(f"{database}: {_first_line(error)}") from None
    finally:
        backend.close()
    bound = {s.element for s in sources}
    for item in resolved:
        for flag in FLAGS:
            column = flag_column(item.source.element, flag)
            if column in counts:
                problems.append(Problem(item.source.element, flag, int(counts[column] or 0)))
    problems += [Problem(name, "unbound", 0) for name in checked.elements if name not in bound]
    no_data = tuple(
        (name, int(counts[flag_column(name, "none")] or 0) if name in bound else attrition.total)
        for name in checked.elements
        if name not in bound or flag_column(name, "none") in counts
    )
    kept = tuple(p for p in problems if p.kind != "none")
    return OmopScreen(attrition, kept, no_data)


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _needs_reference(checked: Checked, sources: Sequence[OmopSource]) -> bool:
    def age(source: OmopSource) -> bool:
        return source.field == "birth_date" and checked.element_types[source.element].numeric

    return any(
        s.window is not None or s.read == "time since" or s.field == "reference_date" or age(s)
        for s in sources
    )


def _screen_duckdb(
    backend: DuckDBBackend,
    checked: Checked,
    table: PatientTable,
    output: Path | None,
    target: str | None,
) -> tuple[screen.Attrition, dict[str, Any]]:
    connection = backend.connection
    connection.sql(backend.text(table.query())).create(PATIENTS)
    described = connection.execute(f"DESCRIBE {PATIENTS}").fetchall()
    schema = [(str(row[0]), str(row[1])) for row in described]
    layout = _layout(checked, schema, "duckdb")
    events = table.events()
    if events is not None:
        connection.sql(backend.text(events)).create(EVENTS)
        described = connection.execute(f"DESCRIBE {EVENTS}").fetchall()
        layout = _with_events(layout, [(str(row[0]), str(row[1])) for row in described], "duckdb")
    query = sql.to_sql(checked, PATIENTS, "duckdb", layout, pretty=False)
    if output is None:
        # Read once, by the attrition count: screened where it is counted, never stored.
        connection.execute(f"CREATE VIEW {_quoted(screen.SCREENED)} AS {query}")
    else:
        connection.sql(query).create(screen.SCREENED)
    # Every person was read without an intake error: the results are the screened rows in
    # person order, with no join back to the patient table.
    connection.execute(
        f"CREATE VIEW {screen.RESULTS} AS SELECT CAST({_quoted(ID_FIELD)} AS BIGINT) AS "
        f"{_quoted(ROW)}, * FROM {_quoted(screen.SCREENED)}"
    )
    if output is not None and target == ".parquet":
        with atomic_path(output) as temporary:
            connection.sql(screen._flat_sql(checked)).write_parquet(str(temporary))
    elif output is not None and target is not None:
        cursor = connection.execute(screen.export_query(checked).sql("duckdb"))
        screen.write_results_file(checked, _fetched(cursor.fetchmany), output, target)
    counts = connection.sql(screen.attrition_query(checked).sql("duckdb"))
    row = dict(zip(counts.columns, counts.fetchall()[0], strict=True))
    attrition = screen.attrition_from(checked, row)
    return attrition, _counts(backend, table, attrition.total)


def _with_events(layout: sql.Layout, schema: list[tuple[str, str]], dialect: str) -> sql.Layout:
    """The layout that joins the events table to the patients by person."""
    events = sql.events_from_schema(EVENTS, schema, dialect)
    return attrs.evolve(layout, events=events, events_key=RECORD_ID)


def _counts(backend: Backend, table: PatientTable, total: int) -> dict[str, Any]:
    """The problem counts of the patient table and, for histories, of the events table."""
    counts = _one_row(backend, table.problems(PATIENTS))
    for item in table.resolved:
        if not table.count_absent:
            break
        if item.source.table in TABLES and not item.history and not table.counted_per_person(item):
            records, future = table.record_counts(item, PATIENTS)
            seen = int(counts[flag_column(item.source.element, "seen")] or 0)
            others = int(_one_row(backend, records)["persons"] or 0)
            counts[flag_column(item.source.element, "none")] = total - seen - others
            counts[flag_column(item.source.element, "future")] = int(
                _one_row(backend, future)["future"] or 0
            )
    for item in table.resolved:
        if item.history and item.source.read == "dose":
            row = _one_row(backend, table.dose_problems(item))
            counts[flag_column(item.source.element, "unreadable")] = int(row["persons"] or 0)
    histories = [item for item in table.resolved if item.history]
    if not histories:
        return counts
    columns: list[exp.Expr] = []
    for index, item in enumerate(histories):
        element = exp.EQ(
            this=exp.column("element"), expression=exp.Literal.string(item.source.element)
        )
        field = "value" if item.kind.entry == "measurement" else "code"
        unread = exp.and_(
            element.copy(),
            exp.Is(this=exp.column(field), expression=exp.null()),
            exp.Not(this=exp.Is(this=exp.column("source"), expression=exp.null())),
        )
        entry = exp.or_(
            exp.Not(this=exp.Is(this=exp.column("date"), expression=exp.null())),
            exp.Not(this=exp.Is(this=exp.column("start"), expression=exp.null())),
            wrap=True,
        )
        whose = exp.Count(
            this=exp.Distinct(
                expressions=[exp.Case().when(exp.and_(element.copy(), entry), exp.column("id"))]
            )
        )
        bad = exp.Count(this=exp.Distinct(expressions=[exp.Case().when(unread, exp.column("id"))]))
        columns += [exp.alias_(whose, f"h{index}"), exp.alias_(bad, f"u{index}")]
    row = _one_row(backend, _select(columns, EVENTS))
    for index, item in enumerate(histories):
        counts[flag_column(item.source.element, "none")] = total - int(row[f"h{index}"] or 0)
        unreadable = flag_column(item.source.element, "unreadable")
        counts[unreadable] = counts.get(unreadable, 0) + int(row[f"u{index}"] or 0)
    return counts


def _layout(checked: Checked, schema: list[tuple[str, str]], dialect: str) -> sql.Layout:
    """The patient table's layout: its element columns (a duration's in days), by row number."""
    elements = [(n, t) for n, t in schema if screen._element_of(checked, n) is not None]
    return attrs.evolve(sql.layout_from_schema(checked, elements, dialect), id_column=ROW)


def _one_row(backend: Backend, query: exp.Select) -> dict[str, Any]:
    names = [e.alias_or_name for e in query.expressions]
    return dict(zip(names, backend.rows(query)[0], strict=True))


def _screen_postgres(
    backend: PostgresBackend,
    checked: Checked,
    table: PatientTable,
    output: Path | None,
    target: str | None,
) -> tuple[screen.Attrition, dict[str, Any]]:
    connection = backend.connection
    layout = _layout(checked, _pg_created(backend, PATIENTS, table.query()), "postgres")
    events = table.events()
    if events is not None:
        layout = _with_events(layout, _pg_created(backend, EVENTS, events), "postgres")
    query = sql.to_sql(checked, PATIENTS, "postgres", layout, pretty=False)
    connection.execute(f"DROP TABLE IF EXISTS {_quoted(screen.SCREENED)}")
    connection.execute(f"CREATE TEMPORARY TABLE {_quoted(screen.SCREENED)} AS {query}")
    joined = screen.results_query(checked, screen.SCREENED, PATIENTS)
    connection.execute(f"DROP TABLE IF EXISTS {screen.RESULTS}")
    connection.execute(f"CREATE TEMPORARY TABLE {screen.RESULTS} AS {backend.text(joined)}")
    if output is not None and target is not None:
        # A server-side cursor streams the rows; it lives in a transaction.
        with connection.transaction(), connection.cursor(name="critlang_results") as cursor:
            cursor.execute(backend.text(screen.export_query(checked)))
            screen.write_results_file(checked, _fetched(cursor.fetchmany), output, target)
    row = _one_row(backend, screen.attrition_query(checked))
    attrition = screen.attrition_from(checked, row)
    return attrition, _counts(backend, table, attrition.total)


def _fetched(fetch: Callable[[int], list[Any]]) -> Any:
    while rows := fetch(screen.BATCH):
        yield from rows


def _pg_created(backend: PostgresBackend, name: str, query: exp.Expr) -> list[tuple[str, str]]:
    """Make the temporary table `name` from `query`; its columns and their types."""
    connection = backend.connection
    connection.execute(f"DROP TABLE IF EXISTS {name}")
    connection.execute(f"CREATE TEMPORARY TABLE {name} AS {backend.text(query)}")
    described = connection.execute(
        "SELECT column_name, data_type, numeric_precision, numeric_scale "
        "FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
        (name,),
    ).fetchall()
    return [(str(n), _pg_type(str(t), p, s)) for n, t, p, s in described]


def _pg_type(kind: str, precision: Any, scale: Any) -> str:
    if kind == "numeric" and precision is not None:
        return f"DECIMAL({precision}, {scale or 0})"
    return kind.upper()


def _screen_spark(
    backend: SparkBackend,
    checked: Checked,
    table: PatientTable,
    output: Path | None,
    target: str | None,
) -> tuple[screen.Attrition, dict[str, Any]]:
    spark = backend.spark
    frame = spark.sql(backend.text(table.query())).cache()
    try:
        frame.createOrReplaceTempView(PATIENTS)
        schema = [(f.name, f.dataType.simpleString()) for f in frame.schema.fields]
        layout = _layout(checked, schema, "spark")
        events = table.events()
        if events is not None:
            entries = spark.sql(backend.text(events)).cache()
            entries.createOrReplaceTempView(EVENTS)
            fields = [(f.name, f.dataType.simpleString()) for f in entries.schema.fields]
            layout = _with_events(layout, fields, "spark")
        screened = spark.sql(sql.to_sql(checked, PATIENTS, "spark", layout, pretty=False))
        name = screen.SCREENED.replace(" ", "_")
        screened.createOrReplaceTempView(name)
        joined = screen.results_query(checked, name, PATIENTS).sql("spark")
        results = spark.sql(joined).cache()
        results.createOrReplaceTempView(screen.RESULTS)
        try:
            if output is not None and target is not None:
                rows = spark.sql(screen.export_query(checked).sql("spark")).toLocalIterator()
                screen.write_results_file(checked, (tuple(r) for r in rows), output, target)
            row = spark.sql(screen.attrition_query(checked).sql("spark")).collect()[0].asDict()
        finally:
            results.unpersist()
        attrition = screen.attrition_from(checked, row)
        return attrition, _counts(backend, table, attrition.total)
    finally:
        frame.unpersist()


__all__ = ["PERSON_ID", "RECORD_ERROR", "RECORD_ID", "ROW", "OmopScreen", "Problem", "run"]
