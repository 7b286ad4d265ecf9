"""Screening whole populations: the SQL query run on DuckDB or Spark, and attrition.

A data file (CSV, Parquet or JSON Lines) becomes a table whose schema gives
the layout (sql.layout_from_schema); the query from sql.py screens it in one
pass; the results go to Parquet or CSV; one more query counts, criterion by
criterion, how many patients met, failed or could not be judged, and how
many remain after each. DuckDB runs in process; Spark runs `local[2]`, or on
whatever session the caller passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import jinja2
from sqlglot import exp

from critlang import sql
from critlang.check import Checked
from critlang.records import ID_FIELD
from critlang.vocab import Outcome

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


def _count(condition: exp.Expr) -> exp.Expr:
    one, zero = exp.Literal.number(1), exp.Literal.number(0)
    return exp.Sum(this=exp.Case().when(condition, one).else_(zero))


def _col(name: str) -> exp.Expr:
    return exp.column(name, quoted=True)


def _is(name: str, truth: bool) -> exp.Expr:
    return exp.Is(this=_col(name), expression=exp.true() if truth else exp.false())


def attrition_query(checked: Checked, table: str = RESULTS) -> exp.Select:
    """Counts over a results table: statuses, and per criterion its values and who remains."""
    columns: list[exp.Expr] = [exp.alias_(exp.Count(this=exp.Star()), "total", quoted=True)]
    status = _col(sql.STATUS)
    for name in STATUSES:
        counted = _count(exp.EQ(this=status, expression=exp.Literal.string(name)))
        columns.append(exp.alias_(counted, name, quoted=True))
    screened = exp.NEQ(this=status, expression=exp.Literal.string(Outcome.ERROR))
    excluded: list[exp.Expr] = []
    for criterion in checked.protocol.criteria:
        ident = criterion.id.text
        applicable: exp.Expr = screened
        if criterion.applies_when is not None:
            absent = _is(sql.applies_column(criterion), False)
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


def export_query(checked: Checked, flat: bool, table: str = RESULTS) -> exp.Select:
    """The results to write; `flat` joins `missing` with ';' for CSV."""
    columns: list[exp.Expr] = []
    for name in sql.result_columns(checked):
        if name == sql.MISSING and flat:
            joined = exp.ArrayToString(this=_col(name), expression=exp.Literal.string(";"))
            columns.append(exp.alias_(joined, name, quoted=True))
        else:
            columns.append(_col(name))
    return exp.select(*columns).from_(exp.to_table(table))


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


def _data_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in DATA_FORMATS:
        raise ValueError(f"{path}: unknown data format '{suffix}' (use {', '.join(DATA_FORMATS)})")
    return suffix


def _output_format(path: Path | None) -> str | None:
    if path is None:
        return None
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise ValueError(f"{path}: results are written as {' or '.join(OUTPUT_FORMATS)}")
    return suffix


def run(
    checked: Checked,
    data: Path,
    engine: str = "duckdb",
    output: Path | None = None,
    session: Any = None,
) -> Attrition:
    """Screen every record of `data`; write results to `output`; return the attrition.

    Raise sql.SchemaError for a column that does not fit the data dictionary,
    sql.SqlError for a protocol SQL cannot compute exactly, ValueError for an
    unknown file format. `session` is a SparkSession to use instead of a new one.
    """
    if not data.exists():
        raise ValueError(f"{data}: no such file")
    if engine == "duckdb":
        return _run_duckdb(checked, data, output)
    if engine == "spark":
        return _run_spark(checked, data, output, session)
    raise ValueError(f"unknown engine '{engine}' (use {' or '.join(ENGINES)})")


def _run_duckdb(checked: Checked, data: Path, output: Path | None) -> Attrition:
    import duckdb

    suffix, target = _data_format(data), _output_format(output)
    connection = duckdb.connect()
    try:
        if suffix == ".csv":
            relation = connection.read_csv(str(data), header=True, all_varchar=True)
        elif suffix == ".parquet":
            relation = connection.read_parquet(str(data))
        elif suffix == ".json":
            relation = connection.read_json(str(data), format="auto")
        else:
            relation = connection.read_json(str(data), format="newline_delimited")
        schema = list(zip(relation.columns, (str(t) for t in relation.types), strict=True))
    except duckdb.Error as error:
        raise ValueError(f"{data}: cannot read the data ({error})") from None
    layout = sql.layout_from_schema(checked, schema, "duckdb", text=suffix == ".csv")
    if layout.id_column is None:
        # Records without ids are numbered in file order, from 1.
        relation = relation.project("row_number() OVER () AS id, *")
        layout = attrs.evolve(layout, id_column=ID_FIELD)
    relation.create_view("patients")
    query = sql.to_sql(checked, "patients", "duckdb", layout, pretty=False)
    connection.sql(query).create(RESULTS)
    if output is not None:
        exported = connection.sql(export_query(checked, target == ".csv").sql("duckdb"))
        if target == ".csv":
            exported.write_csv(str(output), header=True)
        else:
            exported.write_parquet(str(output))
    counts = connection.sql(attrition_query(checked).sql("duckdb"))
    row = dict(zip(counts.columns, counts.fetchall()[0], strict=True))
    connection.close()
    return attrition_from(checked, row)


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


def _run_spark(checked: Checked, data: Path, output: Path | None, session: Any) -> Attrition:
    from pyspark.errors import PySparkException
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    suffix, target = _data_format(data), _output_format(output)
    spark = session if session is not None else spark_session()
    reader = spark.read
    try:
        if suffix == ".csv":
            frame = reader.option("header", True).csv(str(data))
        elif suffix == ".parquet":
            frame = reader.parquet(str(data))
        else:
            frame = reader.json(str(data), prefersDecimal=True, multiLine=suffix == ".json")
        schema = [(f.name, f.dataType.simpleString()) for f in frame.schema.fields]
    except PySparkException as error:
        raise ValueError(f"{data}: cannot read the data ({error})") from None
    layout = sql.layout_from_schema(checked, schema, "spark", text=suffix == ".csv")
    if layout.id_column is None:
        order = Window.orderBy(F.monotonically_increasing_id())
        frame = frame.withColumn(ID_FIELD, F.row_number().over(order))
        layout = attrs.evolve(layout, id_column=ID_FIELD)
    frame.createOrReplaceTempView("patients")
    results = spark.sql(sql.to_sql(checked, "patients", "spark", layout, pretty=False)).cache()
    results.createOrReplaceTempView(RESULTS)
    try:
        if output is not None:
            exported = spark.sql(export_query(checked, target == ".csv").sql("spark"))
            writer = exported.write.mode("overwrite")
            if target == ".csv":
                writer.option("header", True).csv(str(output))
            else:
                writer.parquet(str(output))
        row = spark.sql(attrition_query(checked).sql("spark")).collect()[0].asDict()
    finally:
        results.unpersist()
    return attrition_from(checked, row)


# ---- the report ---------------------------------------------------------------------


def render_html(attrition: Attrition) -> str:
    """The attrition report as a self-contained HTML page with an inline SVG chart."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("critlang", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    template = environment.get_template("attrition.html.j2")
    return template.render(attrition=attrition, statuses=STATUSES)
