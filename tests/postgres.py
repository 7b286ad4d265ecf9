"""A throwaway PostgreSQL server for the tests, from the machine's own binaries.

`postgres_url` starts one server per test session in a temporary directory
(Unix socket only, trust authentication) and stops it at the end. It skips,
saying why, only when no PostgreSQL binaries are installed; any other failure
to start is an error. As root, the server runs as the `postgres` user, since
PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from critlang import sql
from critlang.check import Checked


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A connection URL to a fresh, empty PostgreSQL database."""
    binaries = _binaries()
    if binaries is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed")
    pytest.importorskip("psycopg", reason="psycopg is not installed (extra 'sql')")
    root = Path(tempfile.mkdtemp(prefix="critlang-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()

    def run(*command: str) -> None:
        subprocess.run([*prefix, *command], check=True, capture_output=True, cwd=root)

    run(str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    options = f"-k {root} -p {port} -c listen_addresses=''"
    run(
        str(binaries / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        options,
        "-w",
        "-l",
        str(root / "log"),
        "start",
    )
    try:
        yield f"postgresql://postgres@/postgres?host={root}&port={port}"
    finally:
        run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


TYPES = {
    "boolean": "BOOLEAN",
    "enum": "TEXT",
    "set": "TEXT[]",
    "date": "DATE",
    "number": "NUMERIC(18,6)",
    "quantity": "NUMERIC(18,6)",
}


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def screen_in_postgres(
    url: str,
    checked: Checked,
    records: Sequence[Mapping[str, Any]],
    types: Mapping[str, str] | None = None,
    text: bool = False,
) -> dict[str, dict[str, Any]]:
    """Load `records` into a fresh table, run the screening query, return rows by id."""
    import psycopg

    columns = [("id", "TEXT")]
    for name, kind in checked.element_types.items():
        columns.append((name, "TEXT" if text else (types or {}).get(name, TYPES[kind.kind])))
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP TABLE IF EXISTS patients")
        listed = ", ".join(f"{_quoted(n)} {t}" for n, t in columns)
        connection.execute(f"CREATE TABLE patients ({listed})")
        marks = ", ".join(["%s"] * len(columns))
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO patients VALUES ({marks})",
                [[record.get(n) for n, _ in columns] for record in records],
            )
        layout = sql.layout_from_schema(checked, columns, "postgres", text=text)
        cursor = connection.execute(sql.to_sql(checked, "patients", "postgres", layout))
        names = [d.name for d in cursor.description or ()]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}
