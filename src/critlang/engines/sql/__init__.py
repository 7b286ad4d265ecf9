"""The SQL engine: one query that screens every patient in a table.

The query is built from sqlglot expression nodes, never by pasting text, and
transpiled to any dialect sqlglot writes; it runs on DuckDB, Spark and
PostgreSQL. It reads a flat table, one row per patient, described by a
`Layout` (docs/sql.md), and returns per patient: `id`, `status`, one BOOLEAN
column per criterion (NULL when unknown), an `<id> applies` column for each
criterion with an `applies when`, a column per named part (`I2 a`), `missing`
and `error`.

The layers: `layout` reads and validates the table, `exact` does exact
decimal arithmetic in SQL, `query` turns the core IR into the query. Only the
IR reaches `query`: the meaning of every construct was decided in lowering.
"""

from __future__ import annotations

from sqlglot import exp

from critlang.check import Checked
from critlang.engines.sql.exact import MAX_PRECISION
from critlang.engines.sql.layout import (
    SCALE,
    UNBOUNDED_DIGITS,
    Column,
    Events,
    Layout,
    SchemaError,
    SqlError,
    check_event_elements,
    default_layout,
    events_from_schema,
    layout_from_schema,
)
from critlang.engines.sql.query import (
    ERROR_COLUMN,
    MISSING,
    STATUS,
    Query,
    applies_column,
    part_column,
)
from critlang.engines.sql.query import result_columns as program_columns
from critlang.lower import lower

__all__ = [
    "ERROR_COLUMN",
    "MAX_PRECISION",
    "MISSING",
    "SCALE",
    "STATUS",
    "UNBOUNDED_DIGITS",
    "Column",
    "Events",
    "Layout",
    "SchemaError",
    "SqlError",
    "applies_column",
    "check_event_elements",
    "default_layout",
    "events_from_schema",
    "layout_from_schema",
    "part_column",
    "query",
    "result_columns",
    "to_sql",
]


def result_columns(checked: Checked) -> list[str]:
    """The query's columns, in order."""
    return program_columns(lower(checked).program)


def query(checked: Checked, table: str = "patients", layout: Layout | None = None) -> exp.Select:
    """The screening query over `table`, as a sqlglot expression."""
    program = lower(checked).program
    generator = Query(checked, program, layout or default_layout(checked))
    return generator.query(exp.to_table(table))


def to_sql(
    checked: Checked,
    table: str = "patients",
    dialect: str = "duckdb",
    layout: Layout | None = None,
    pretty: bool = True,
) -> str:
    """The screening query over `table` as SQL text in `dialect`."""
    tree: exp.Expr = query(checked, table, layout)
    if dialect in ("postgres", "postgresql"):
        tree = tree.transform(_postgres, copy=False)
    return tree.sql(dialect=dialect, pretty=pretty, copy=False)


INPUT_STAGES = frozenset({"screen_source", "screen_input", "screen_checked"})


def _postgres(node: exp.Expr) -> exp.Expr:
    """What sqlglot does not yet write for PostgreSQL: splitting text at a pattern, and
    adding days to a DATE as a DATE (`date + interval` is a timestamp there)."""
    if isinstance(node, exp.CTE) and node.alias in INPUT_STAGES:
        # PostgreSQL inlines a CTE used once: every read of a date parsed from text would
        # repeat the parsing, and calendar arithmetic reads a date many times over.
        node.set("materialized", True)
        return node
    if isinstance(node, exp.DateAdd):
        return exp.Paren(this=exp.Add(this=node.this, expression=node.expression))
    if isinstance(node, exp.RegexpSplit):
        return exp.Anonymous(this="REGEXP_SPLIT_TO_ARRAY", expressions=[node.this, node.expression])
    return node
