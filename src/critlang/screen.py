"""Screening whole populations: the SQL query run on DuckDB or Spark, and attrition.

A data file (CSV, Parquet or JSON Lines) becomes a table whose schema gives
the layout (sql.layout_from_schema); the query from sql.py screens it in one
pass; the results go to Parquet or CSV; one more query counts, criterion by
criterion, how many patients met, failed or could not be judged, and how
many remain after each. DuckDB runs in process; Spark runs `local[2]`, or on
whatever session the caller passes.
"""

from __future__ import annotations

import decimal
import importlib
import importlib.util
import itertools
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
from sqlglot import exp

from critlang import sql, units
from critlang.check import Checked
from critlang.engines.sql.layout import EVENT_COLUMNS
from critlang.records import (
    HEADER_UNIT,
    ID_FIELD,
    Intake,
    RecordError,
    Row,
    read_records,
    record_format,
)
from critlang.report import atomic_path, csv_line, flat_columns
from critlang.vocab import ENTRY_LAYOUT, EntryKind, Outcome, Truth

ENGINES = ("duckdb", "spark")
STATUSES = (Outcome.ELIGIBLE, Outcome.INELIGIBLE, Outcome.UNDETERMINED, Outcome.ERROR)
DATA_FORMATS = (".csv", ".parquet", ".jsonl", ".ndjson", ".json")
OUTPUT_FORMATS = (".parquet", ".csv")
RESULTS = "results"


@attrs.frozen
class Step:
    """One criterion in the funnel: how its values fell, and who remains after it."""

    id: str
    kind: str
    title: str
    true: int
    false: int
    unknown: int
    not_applicable: int
    remaining: int
    excluded: int


@attrs.frozen
class Attrition:
    """Counts over a screened population, criterion by criterion, in protocol order.

    `remaining` after a criterion counts the patients that no criterion so far
    definitely excludes: those still eligible or undetermined.
    """

    protocol: str
    title: str
    total: int
    statuses: Mapping[str, int]
    steps: tuple[Step, ...]

    @property
    def screened(self) -> int:
        """Records screened, leaving out those in error."""
        return self.total - self.statuses.get(Outcome.ERROR, 0)

    @property
    def errors(self) -> int:
        return self.statuses.get(Outcome.ERROR, 0)

    def text(self) -> str:
        """The attrition table as plain text."""
        counts = ", ".join(f"{self.statuses.get(s, 0)} {s}" for s in STATUSES)
        lines = [f"{self.protocol}: {self.total} record(s): {counts}", ""]
        header = ("criterion", "true", "false", "unknown", "n/a", "excluded", "remaining")
        rows: list[tuple[str, ...]] = [header, ("start", "", "", "", "", "", str(self.screened))]
        for step in self.steps:
            label = f"{step.id} {step.title}"
            label = label if len(label) <= 48 else label[:47] + "…"
            numbers = (step.true, step.false, step.unknown, step.not_applicable)
            rows.append((label, *(str(n) for n in (*numbers, step.excluded, step.remaining))))
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        for row in rows:
            cells = [row[0].ljust(widths[0])]
            cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines)


# ---- SQL over the results table --------------------------------------------------


def _count_rows(condition: exp.Expr, weight: str | None = None) -> exp.Expr:
    one = exp.Literal.number(1) if weight is None else _col(weight)
    return exp.Sum(this=exp.Case().when(condition, one).else_(exp.Literal.number(0)))


def _col(name: str) -> exp.Expr:
    return exp.column(name, quoted=True)


def _is(name: str, truth: bool) -> exp.Expr:
    return exp.Is(this=_col(name), expression=exp.true() if truth else exp.false())


def attrition_query(
    checked: Checked, table: str = RESULTS, weight: str | None = None
) -> exp.Select:
    """Counts over a results table: statuses, and per criterion its values and who remains.

    With `weight`, each row of `table` stands for that many results (see `grouped_results`).
    """
    total = exp.Count(this=exp.Star()) if weight is None else exp.Sum(this=_col(weight))
    columns: list[exp.Expr] = [exp.alias_(total, "total", quoted=True)]
    status = _col(sql.STATUS)

    def _count(condition: exp.Expr) -> exp.Expr:
        return _count_rows(condition, weight)

    for name in STATUSES:
        counted = _count(exp.EQ(this=status, expression=exp.Literal.string(name)))
        columns.append(exp.alias_(counted, name, quoted=True))
    screened = exp.NEQ(this=status, expression=exp.Literal.string(Outcome.ERROR))
    excluded: list[exp.Expr] = []
    for criterion in checked.protocol.criteria:
        ident = criterion.id.text
        applicable: exp.Expr = screened
        if criterion.applies_when is not None:
            absent = _is(sql.applies_column(ident), False)
            columns.append(
                exp.alias_(_count(exp.and_(screened, absent)), f"{ident} n/a", quoted=True)
            )
            applicable = exp.and_(screened, exp.not_(absent))
        value = _col(ident)
        for word, test in (
            ("true", _is(ident, True)),
            ("false", _is(ident, False)),
            ("unknown", exp.Is(this=value, expression=exp.null())),
        ):
            columns.append(
                exp.alias_(_count(exp.and_(applicable, test)), f"{ident} {word}", quoted=True)
            )
        excluded.append(_is(ident, criterion.kind == "exclusion"))
        remaining = exp.and_(screened, exp.not_(exp.or_(*excluded)))
        columns.append(exp.alias_(_count(remaining), f"{ident} remaining", quoted=True))
    return exp.select(*columns).from_(exp.to_table(table))


WEIGHT = "critlang count"


def grouped_results(
    checked: Checked, table: str = RESULTS, weight: str | None = None
) -> exp.Select:
    """One row per distinct (status, criterion values, applicability) of a results table,
    with how many results have it in `WEIGHT`: the attrition counts these few rows
    (thousands for a million patients) instead of every result, and counts the same.
    With `weight`, each row of `table` stands for that many results already."""
    names = [sql.STATUS]
    for criterion in checked.protocol.criteria:
        names.append(criterion.id.text)
        if criterion.applies_when is not None:
            names.append(sql.applies_column(criterion.id.text))
    total = exp.Count(this=exp.Star()) if weight is None else exp.Sum(this=_col(weight))
    counted = exp.alias_(total, WEIGHT, quoted=True)
    return (
        exp.select(*(_col(name) for name in names), counted)
        .from_(exp.table_(table, quoted=True))
        .group_by(*(_col(name) for name in names))
    )


def _duckdb_attrition(
    connection: Any, checked: Checked, table: str = RESULTS, weight: str | None = None
) -> Attrition:
    """The attrition of DuckDB results, counted over the grouped results."""
    grouped = grouped_results(checked, table, weight).subquery("grouped")
    counts = connection.sql(
        attrition_query(checked, "grouped", WEIGHT).from_(grouped).sql("duckdb")
    )
    row = dict(zip(counts.columns, counts.fetchall()[0], strict=True))
    return attrition_from(checked, row)


def attrition_from(checked: Checked, row: Mapping[str, Any]) -> Attrition:
    """An Attrition from the one row of `attrition_query`."""
    protocol = checked.protocol

    def get(name: str) -> int:
        return int(row.get(name) or 0)

    statuses = {str(name): get(name) for name in STATUSES}
    steps: list[Step] = []
    before = get("total") - statuses[Outcome.ERROR]
    for criterion in protocol.criteria:
        ident = criterion.id.text
        remaining = get(f"{ident} remaining")
        steps.append(
            Step(
                ident,
                criterion.kind,
                criterion.title,
                get(f"{ident} true"),
                get(f"{ident} false"),
                get(f"{ident} unknown"),
                get(f"{ident} n/a"),
                remaining,
                before - remaining,
            )
        )
        before = remaining
    return Attrition(
        protocol.name.text,
        protocol.header.title or protocol.name.text,
        get("total"),
        statuses,
        tuple(steps),
    )


# ---- engines --------------------------------------------------------------------
#
# Records are read and validated by records.py, exactly as `critlang eval` reads
# them, and written to a typed Parquet file in declared units; the engine screens
# that file. A record that cannot be read or does not fit the data dictionary
# keeps its place with its error, so every record gets exactly one result.

ROW, RECORD_ID, RECORD_ERROR = "critlang row", "critlang id", "critlang error"
BATCH = 8192
DECIMAL_PLACES = 10  # sql.SCALE: the places SQL keeps of a number
SCREENED = "critlang screened"


def _output_format(path: Path | None) -> str | None:
    if path is None:
        return None
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise ValueError(f"{path}: results are written as {' or '.join(OUTPUT_FORMATS)}")
    return suffix


def run(
    checked: Checked,
    data: Path | str,
    engine: str = "duckdb",
    output: Path | None = None,
    session: Any = None,
    input_format: str | None = None,
    intake: Intake | None = None,
    events: Path | None = None,
) -> Attrition:
    """Screen every record of `data`; write results to `output`; return the attrition.

    `data` is read as `critlang eval` reads records (.csv, .jsonl, .json,
    .parquet, "-" for stdin). Raise sql.SqlError for a protocol SQL cannot
    compute exactly, ValueError (records.InputError) for a file that cannot be
    read at all. `session` is a SparkSession to use instead of a new one.
    `events` is the histories' events table (.csv or .parquet, docs/sql.md).
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine '{engine}' (use {' or '.join(ENGINES)})")
    if events is not None and engine != "duckdb":
        raise ValueError("--events: histories are screened on DuckDB (--engine duckdb)")
    target = _output_format(output)
    # Only looked for: a Parquet file screened in place never needs it, and its import
    # (with numpy's) is a good part of the start-up.
    if importlib.util.find_spec("pyarrow") is None:
        raise ValueError("critlang screen needs pyarrow: pip install 'critlang[sql]'")
    intake = intake if intake is not None else Intake(checked)
    if engine == "duckdb" and _typed_table(data, input_format, intake):
        screened = _run_duckdb_on_parquet(checked, Path(data), output, target, intake, events)
        if screened is not None:
            return screened
    rows = read_records(data, checked, input_format)
    with tempfile.TemporaryDirectory(prefix="critlang-screen-") as work:
        patients = Path(work) / "patients.parquet"
        records = screen_input(rows, intake)
        inline: Path | None = None
        if events is None and any(k.kind == "history" for k in checked.element_types.values()):
            # Histories written in the records themselves (JSON entry lists) become the
            # events table, as `--events` would give it; never silently unknown.
            inline = Path(work) / "events.csv"
            records = _inline_events(checked, records, inline, engine)
        _normalise(checked, records, patients)
        if engine == "duckdb":
            return _run_duckdb(checked, patients, output, target, events or inline)
        return _run_spark(checked, patients, output, target, session)


def _inline_events(
    checked: Checked,
    records: Iterator[tuple[int, str, dict[str, Any] | None, str | None]],
    path: Path,
    engine: str,
) -> Iterator[tuple[int, str, dict[str, Any] | None, str | None]]:
    """Pass the records on, writing their histories' entries (already checked and in
    the declared unit) to the events table at `path`."""
    import csv

    histories = {n: k for n, k in checked.element_types.items() if k.kind == "history"}
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(EVENT_COLUMNS)
        for record in records:
            env = record[2]
            for name, kind in histories.items():
                if env is None or env.get(name) is None:
                    continue
                if engine != "duckdb":
                    raise ValueError(
                        f"record {record[1]}: histories ('{name}') are screened on DuckDB "
                        "(--engine duckdb)"
                    )
                layout = ENTRY_LAYOUT[EntryKind(kind.entry)]
                unit = "" if kind.unit == units.DIMENSIONLESS else kind.unit
                if not env[name]:
                    # on record, with no entries
                    writer.writerow([record[1], name] + [""] * (len(EVENT_COLUMNS) - 2))
                for entry in env[name]:
                    fields = dict(zip(layout, entry, strict=True))
                    row = {"id": record[1], "element": name, **fields}
                    if fields.get("value") is not None or fields.get("dose") is not None:
                        row["unit"] = unit
                    writer.writerow([_event_text(row.get(c)) for c in EVENT_COLUMNS])
            yield record


def _event_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def _typed_table(data: Path | str, input_format: str | None, intake: Intake) -> bool:
    """Can the query read `data` where it lies? A Parquet file's columns are typed, so the
    query parses nothing; text formats and other id fields go through Python's intake."""
    if str(data) == "-" or intake.strict_fields or intake.id_field != ID_FIELD:
        return False
    if intake.as_of is not None and intake.reference is not None:
        return False  # the reference date is filled in by the intake
    try:
        return record_format(data, input_format) == "parquet"
    except ValueError:
        return False


def _run_duckdb_on_parquet(
    checked: Checked,
    data: Path,
    output: Path | None,
    target: str | None,
    intake: Intake,
    events: Path | None = None,
) -> Attrition | None:
    """Screen a Parquet file in place: DuckDB reads, checks and screens every row at once.

    Each row keeps its position (its record number) and id, as Python's intake
    gives them; columns that are not data elements are ignored and counted.
    None when the query cannot read the file as it is (a damaged file, a column
    of {value, unit} structs): Python's intake then reads it, and says what is wrong.
    """
    import duckdb

    connection = duckdb.connect()
    try:
        try:
            relation = connection.read_parquet(str(data))
            schema = list(zip(relation.columns, (str(t) for t in relation.types), strict=True))
            elements = [(n, t) for n, t in schema if _element_of(checked, n) is not None]
            layout = _layout(checked, elements, "duckdb")
            rows = len(relation)
        except (duckdb.Error, sql.SchemaError):
            return None
        for name, _ in schema:
            if name != ID_FIELD and _element_of(checked, name) is None:
                intake.unknown[name] = intake.unknown.get(name, 0) + rows
        identity = (
            f"CAST({_quoted(ID_FIELD)} AS VARCHAR)"
            if ID_FIELD in relation.columns
            else "CAST(row_number() OVER () AS VARCHAR)"
        )
        picked = ", ".join(_quoted(name) for name, _ in elements)
        source = "'" + str(data).replace("'", "''") + "'"  # a view takes no parameters
        connection.execute(
            f"CREATE VIEW patients AS SELECT {identity} AS {_quoted(RECORD_ID)}, "
            f"CAST(NULL AS VARCHAR) AS {_quoted(RECORD_ERROR)}"
            f"{', ' + picked if picked else ''} FROM read_parquet({source})"
        )
        layout = attrs.evolve(layout, id_column=RECORD_ID)
        if events is not None:
            layout = _with_events(connection, checked, layout, events)
        return _screen_in_place(connection, checked, layout, output, target)
    finally:
        connection.close()


def _screen_in_place(
    connection: Any, checked: Checked, layout: sql.Layout, output: Path | None, target: str | None
) -> Attrition:
    """Screen the view `patients` over a Parquet file, in one pass over the file.

    No record failed Python's intake, so the query's rows are the results: no
    join back to the records, and no sort, since DuckDB keeps record order
    through a scan, projections, a window with an empty OVER (), CREATE TABLE
    AS and COPY. With a Parquet result file or none, the results are not even
    kept: the query runs once, into the file (whose words the attrition then
    reads back, `_results_from_words`) or into the attrition's counts.
    """
    query = sql.to_sql(checked, "patients", "duckdb", layout, pretty=False)
    if output is None or target == ".parquet":
        connection.execute(f"CREATE VIEW {_quoted(RESULTS)} AS {query}")
        if output is None:
            return _duckdb_attrition(connection, checked)
        with atomic_path(output) as temporary:
            connection.sql(_flat_sql(checked, ordered=False)).write_parquet(str(temporary))
            written = "'" + str(temporary).replace("'", "''") + "'"
            connection.execute(
                f"CREATE VIEW {_quoted(WRITTEN)} AS {_results_from_words(checked, written)}"
            )
            return _duckdb_attrition(connection, checked, WRITTEN, WEIGHT)
    connection.sql(query).create(RESULTS)
    if target is not None:
        columns = ", ".join(_quoted(name) for name in sql.result_columns(checked))
        cursor = connection.execute(f"SELECT {columns} FROM {_quoted(RESULTS)}")
        write_results_file(checked, _batches(cursor.fetchmany), output, target)
    return _duckdb_attrition(connection, checked)


WRITTEN = "critlang written"


def _results_from_words(checked: Checked, source: str) -> str:
    """The status, criterion and `applies` columns of results, read back from the words of
    the flat result file `source` wrote by `_flat_sql`: the exact inverse of its words,
    with how many results have them in `WEIGHT`.

    'not applicable' is an `applies` of FALSE, and the criterion's value is then
    its neutral one (TRUE for an inclusion, FALSE for an exclusion), as in the query.
    The words are grouped first, so that they are turned back into values once for
    each of the few thousand distinct rows, not for each of a million results.
    """
    words = [_quoted("status"), *(_quoted(c.id.text) for c in checked.protocol.criteria)]
    grouped = (
        f"SELECT {', '.join(words)}, count(*) AS {_quoted(WEIGHT)} "
        f"FROM read_parquet({source}) GROUP BY {', '.join(words)}"
    )
    columns = [_quoted("status")]
    for criterion in checked.protocol.criteria:
        ident = _quoted(criterion.id.text)
        neutral = "TRUE" if criterion.kind == "inclusion" else "FALSE"
        columns.append(
            f"CASE {ident} WHEN '{Truth.TRUE.value}' THEN TRUE WHEN '{Truth.FALSE.value}' "
            f"THEN FALSE WHEN '{Truth.NOT_APPLICABLE.value}' THEN {neutral} END AS {ident}"
        )
        if criterion.applies_when is not None:
            applies = _quoted(sql.applies_column(criterion.id.text))
            columns.append(f"{ident} <> '{Truth.NOT_APPLICABLE.value}' AS {applies}")
    return f"SELECT {', '.join(columns)}, {_quoted(WEIGHT)} FROM ({grouped})"


def _element_of(checked: Checked, column: str) -> str | None:
    match = HEADER_UNIT.match(column)
    element = match.group(1) if match else column
    if element not in checked.element_types and column.endswith(" latest"):
        element = column.removesuffix(" latest")  # a date's last possible day
        kind = checked.element_types.get(element)
        return element if kind is not None and kind.kind == "date" else None
    return element if element in checked.element_types else None


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def screen_input(
    rows: Iterator[Row], intake: Intake
) -> Iterator[tuple[int, str, dict[str, Any] | None, str | None]]:
    """(position, id, environment or None, error or None) for every row, in order."""
    for position, row in rows:
        if isinstance(row, RecordError):
            yield position, row.record_id, None, str(row)
            continue
        try:
            record_id, env = intake(row, position)
        except RecordError as error:
            yield position, error.record_id, None, str(error)
            continue
        yield position, record_id, env, None


def _arrow_schema(checked: Checked) -> Any:
    pa = importlib.import_module("pyarrow")
    fields = [
        pa.field(ROW, pa.int64()),
        pa.field(RECORD_ID, pa.string()),
        pa.field(RECORD_ERROR, pa.string()),
    ]
    for name, kind in checked.element_types.items():
        if kind.kind == "history":
            continue  # in the events table
        arrow_type = {
            "boolean": pa.bool_(),
            "enum": pa.string(),
            "ordinal": pa.string(),
            "code": pa.string(),
            "set": pa.list_(pa.string()),
            "date": pa.date32(),
        }.get(kind.kind, pa.decimal128(38, DECIMAL_PLACES))
        fields.append(pa.field(name, arrow_type))
        if kind.kind == "date":  # a partial date's last possible day (ir.Element.key)
            fields.append(pa.field(f"{name} latest", arrow_type))
    return pa.schema(fields)


_STORED = decimal.Context(prec=60)
_PLACES = Decimal(1).scaleb(-DECIMAL_PLACES)


def _storer(kind: str) -> Callable[[Any], Any] | None:
    """How a value of this kind is stored in the typed Parquet file; None: as it is."""
    if kind == "set":
        return sorted
    if kind in ("number", "quantity"):
        return lambda value: value.quantize(_PLACES, context=_STORED)
    return None


def _normalise(
    checked: Checked,
    records: Iterator[tuple[int, str, dict[str, Any] | None, str | None]],
    path: Path,
) -> None:
    """Write the validated records to `path` as typed Parquet, a batch at a time."""
    pa = importlib.import_module("pyarrow")
    pq = importlib.import_module("pyarrow.parquet")
    schema = _arrow_schema(checked)
    storers = [
        (name, _storer(kind.kind))
        for name, kind in checked.element_types.items()
        if kind.kind != "history"
    ]
    storers += [(f"{n} latest", None) for n, k in checked.element_types.items() if k.kind == "date"]
    with pq.ParquetWriter(str(path), schema) as writer:
        while True:
            batch = list(itertools.islice(records, BATCH))
            if not batch:
                break
            columns: dict[str, list[Any]] = {
                ROW: [b[0] for b in batch],
                RECORD_ID: [b[1] for b in batch],
                RECORD_ERROR: [b[3] for b in batch],
            }
            envs = [env for _, _, env, _ in batch]
            for name, store in storers:
                values = [None if env is None else env.get(name) for env in envs]
                if store is not None:
                    values = [None if value is None else store(value) for value in values]
                columns[name] = values
            writer.write_table(pa.Table.from_pydict(columns, schema=schema))


def _layout(checked: Checked, schema: list[tuple[str, str]], dialect: str) -> sql.Layout:
    elements = [(name, kind) for name, kind in schema if _element_of(checked, name) is not None]
    return attrs.evolve(sql.layout_from_schema(checked, elements, dialect), id_column=ROW)


def results_query(checked: Checked, screened: str, patients: str) -> exp.Select:
    """The screening results joined back to every record, in error or not."""
    error = exp.column(RECORD_ERROR, table="p", quoted=True)
    fine = exp.Is(this=error, expression=exp.null())

    def kept(name: str) -> exp.Expr:
        return exp.Case().when(fine, exp.column(name, table="s", quoted=True))

    columns: list[exp.Expr] = [
        exp.alias_(exp.column(ROW, table="p", quoted=True), ROW, quoted=True),
        exp.alias_(exp.column(RECORD_ID, table="p", quoted=True), ID_FIELD, quoted=True),
        exp.alias_(
            exp.Case()
            .when(fine, exp.column(sql.STATUS, table="s", quoted=True))
            .else_(exp.Literal.string(Outcome.ERROR.value)),
            sql.STATUS,
            quoted=True,
        ),
    ]
    for name in sql.result_columns(checked):
        if name not in (ID_FIELD, sql.STATUS, sql.ERROR_COLUMN):
            columns.append(exp.alias_(kept(name), name, quoted=True))
    columns.append(
        exp.alias_(
            exp.Coalesce(
                this=error, expressions=[exp.column(sql.ERROR_COLUMN, table="s", quoted=True)]
            ),
            sql.ERROR_COLUMN,
            quoted=True,
        )
    )
    joined = exp.EQ(
        this=exp.column(ID_FIELD, table="s", quoted=True),
        expression=exp.cast(exp.column(ROW, table="p", quoted=True), exp.DataType.build("VARCHAR")),
    )
    return (
        exp.select(*columns)
        .from_(exp.alias_(exp.to_table(screened, quoted=True), "s"))
        .join(exp.alias_(exp.to_table(patients, quoted=True), "p"), on=joined)
    )


def export_query(checked: Checked, table: str = RESULTS) -> exp.Select:
    """The results in record order, for writing in the flat result schema."""
    columns = [_col(name) for name in sql.result_columns(checked)]
    return exp.select(*columns).from_(exp.to_table(table)).order_by(_col(ROW))


def _run_duckdb(
    checked: Checked,
    patients: Path,
    output: Path | None,
    target: str | None,
    events: Path | None = None,
) -> Attrition:
    import duckdb

    connection = duckdb.connect()
    try:
        relation = connection.read_parquet(str(patients))
        schema = list(zip(relation.columns, (str(t) for t in relation.types), strict=True))
        relation.create_view("patients")
        layout = _layout(checked, schema, "duckdb")
        return _screen_view(connection, checked, layout, output, target, events)
    finally:
        connection.close()


def _screen_view(
    connection: Any,
    checked: Checked,
    layout: sql.Layout,
    output: Path | None,
    target: str | None,
    events: Path | None = None,
) -> Attrition:
    """Screen the view `patients` (row number, id, intake error, element columns)."""
    if events is not None:
        layout = _with_events(connection, checked, layout, events)
    query = sql.to_sql(checked, "patients", "duckdb", layout, pretty=False)
    connection.sql(query).create(SCREENED)
    connection.sql(results_query(checked, SCREENED, "patients").sql("duckdb")).create(RESULTS)
    if output is not None and target == ".parquet":
        # DuckDB writes the flat schema itself: a million rows never pass through Python.
        with atomic_path(output) as temporary:
            connection.sql(_flat_sql(checked)).write_parquet(str(temporary))
    elif output is not None and target is not None:
        cursor = connection.execute(export_query(checked).sql("duckdb"))
        write_results_file(checked, _batches(cursor.fetchmany), output, target)
    return _duckdb_attrition(connection, checked)


def _with_events(connection: Any, checked: Checked, layout: sql.Layout, events: Path) -> sql.Layout:
    """The view `events` over the events file, and the layout that joins it by record id."""
    import duckdb

    source = "'" + str(events).replace("'", "''") + "'"  # a view takes no parameters
    suffix = events.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"{events}: an events table is read from .csv or .parquet")
    text = suffix == ".csv"
    reader = (
        f"read_csv({source}, all_varchar = true, header = true)"
        if text
        else f"read_parquet({source})"
    )
    try:
        connection.execute(f"CREATE VIEW events AS SELECT * FROM {reader}")
        relation = connection.sql("SELECT * FROM events")
        schema = list(zip(relation.columns, (str(t) for t in relation.types), strict=True))
        table = sql.events_from_schema("events", schema, "duckdb", text)
        named = connection.sql(
            f"SELECT DISTINCT CAST({_quoted('element')} AS VARCHAR) FROM events "
            f"WHERE {_quoted('element')} IS NOT NULL ORDER BY 1"
        ).fetchall()
    except duckdb.Error as error:
        raise ValueError(f"{events}: cannot read the events table ({error})") from None
    except sql.SchemaError as error:
        raise ValueError(f"{events}: {error}") from None
    try:
        sql.check_event_elements(checked, [str(row[0]) for row in named])
    except sql.SchemaError as error:
        raise ValueError(f"{events}: {error}") from None
    return attrs.evolve(layout, events=table, events_key=RECORD_ID)


def _flat_sql(checked: Checked, table: str = RESULTS, ordered: bool = True) -> str:
    """The results in the flat result schema, in record order, as `flat_rows` makes them;
    `ordered` False for a table whose rows are in record order already."""
    error = Outcome.ERROR.value
    columns = [
        f"CAST({_quoted(ID_FIELD)} AS VARCHAR) AS {_quoted('id')}",
        f"{_quoted(sql.STATUS)} AS {_quoted('status')}",
    ]
    for criterion in checked.protocol.criteria:
        ident = criterion.id.text
        value, applies = _quoted(ident), _quoted(sql.applies_column(ident))
        has_applies = criterion.applies_when is not None
        columns.append(
            f"CASE WHEN {_quoted(sql.STATUS)} = '{error}' THEN ''"
            + (
                f" WHEN {applies} IS FALSE THEN '{Truth.NOT_APPLICABLE.value}'"
                if has_applies
                else ""
            )
            + f" WHEN {value} IS NULL THEN '{Truth.UNKNOWN.value}'"
            + f" WHEN {value} THEN '{Truth.TRUE.value}' ELSE '{Truth.FALSE.value}' END"
            + f" AS {value}"
        )
    columns.append(
        f"COALESCE({_quoted(sql.MISSING)}, CAST([] AS VARCHAR[])) AS {_quoted('missing')}"
    )
    columns.append(f"COALESCE({_quoted(sql.ERROR_COLUMN)}, '') AS {_quoted('error')}")
    order = f" ORDER BY {_quoted(ROW)}" if ordered else ""
    return f"SELECT {', '.join(columns)} FROM {_quoted(table)}{order}"


def _batches(fetch: Callable[[int], list[Any]]) -> Iterator[Sequence[Any]]:
    while rows := fetch(BATCH):
        yield from rows


def spark_session() -> Any:
    """A local Spark session on two cores, quiet and without its web UI."""
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("critlang")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        # The screening query is one wide projection: Java code generated for it as a whole
        # takes longer to compile than the interpreted expressions take to run (5 s against
        # 11 s for a million patients on two cores).
        .config("spark.sql.codegen.wholeStage", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


def _run_spark(
    checked: Checked, patients: Path, output: Path | None, target: str | None, session: Any
) -> Attrition:
    spark = session if session is not None else spark_session()
    frame = spark.read.parquet(str(patients))
    schema = [(f.name, f.dataType.simpleString()) for f in frame.schema.fields]
    frame.createOrReplaceTempView("patients")
    layout = _layout(checked, schema, "spark")
    screened = spark.sql(sql.to_sql(checked, "patients", "spark", layout, pretty=False))
    screened.createOrReplaceTempView(SCREENED.replace(" ", "_"))
    query = results_query(checked, SCREENED.replace(" ", "_"), "patients").sql("spark")
    results = spark.sql(query).cache()
    results.createOrReplaceTempView(RESULTS)
    try:
        if output is not None and target is not None:
            rows = spark.sql(export_query(checked).sql("spark")).toLocalIterator()
            write_results_file(checked, (tuple(row) for row in rows), output, target)
        row = spark.sql(attrition_query(checked).sql("spark")).collect()[0].asDict()
    finally:
        results.unpersist()
    return attrition_from(checked, row)


# ---- results files: the flat result schema of report.py -------------------------------


def flat_rows(checked: Checked, rows: Iterable[Sequence[Any]]) -> Iterator[list[Any]]:
    """SQL result rows (sql.result_columns) as rows of the flat result schema."""
    names = sql.result_columns(checked)
    where = {name: index for index, name in enumerate(names)}
    criteria = [
        (where[c.id.text], where.get(sql.applies_column(c.id.text)))
        for c in checked.protocol.criteria
    ]
    for row in rows:
        status = row[where[sql.STATUS]]
        words = [
            "" if status == Outcome.ERROR else Truth.of(row[v], True if a is None else row[a]).value
            for v, a in criteria
        ]
        missing = row[where[sql.MISSING]] or []
        yield [
            str(row[where[ID_FIELD]]),
            status,
            *words,
            list(missing),
            row[where[sql.ERROR_COLUMN]] or "",
        ]


def write_results_file(
    checked: Checked, rows: Iterable[Sequence[Any]], output: Path, target: str
) -> None:
    """Write results in the flat result schema, replacing `output` only once complete."""
    columns = flat_columns(checked)
    with atomic_path(output) as temporary:
        if target == ".csv":
            with temporary.open("w", encoding="utf-8", newline="") as out:
                out.write(csv_line(columns))
                for row in flat_rows(checked, rows):
                    out.write(csv_line([*row[:-2], ";".join(row[-2]), row[-1]]))
            return
        pa = importlib.import_module("pyarrow")
        pq = importlib.import_module("pyarrow.parquet")
        schema = pa.schema(
            [
                pa.field(name, pa.list_(pa.string()) if name == "missing" else pa.string())
                for name in columns
            ]
        )
        with pq.ParquetWriter(str(temporary), schema) as writer:
            flat = flat_rows(checked, rows)
            while batch := list(itertools.islice(flat, BATCH)):
                data = {name: [row[i] for row in batch] for i, name in enumerate(columns)}
                writer.write_table(pa.Table.from_pydict(data, schema=schema))


# ---- the report ---------------------------------------------------------------------


def render_html(attrition: Attrition) -> str:
    """The attrition report as a self-contained HTML page with an inline SVG chart."""
    from critlang.pages import page

    return page("attrition.html.j2", attrition=attrition, statuses=STATUSES)
