"""A real PostgreSQL server for the test session: Debian's binaries, a temporary cluster.

`initdb` makes a cluster in a temporary directory, `pg_ctl` starts it listening
only on a Unix socket in that directory (no TCP port, so nothing else on the
machine can collide with it or reach it), and `stop` shuts it down and removes
the directory. PostgreSQL refuses to run as root: as root the server runs as the
`postgres` user that Debian's package creates, and owns the directory.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from critlang.check import Checked

PORT = 5432  # only names the socket file, which lives in the server's own directory
USER = "critlang"


def binaries() -> Path | None:
    """The newest of Debian's /usr/lib/postgresql/<version>/bin, or None."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else None


class Server:
    """One PostgreSQL cluster in a temporary directory; `url` once started."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="critlang-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@/postgres?host={self.root}&port={PORT}"

    def run(self, program: str, *args: str) -> None:
        command = [*self.prefix, str(self.bin_dir / program), *args]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{program} failed: {done.stdout}{done.stderr}{log}")

    def start(self) -> str:
        self.run("initdb", "-D", str(self.data), "-U", USER, "-A", "trust", "--no-sync")
        options = f"-k {self.root} -p {PORT} -c listen_addresses='' -c fsync=off"
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        return self.url

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


# ---- screening a table in PostgreSQL ----------------------------------------------

TYPES = {
    "boolean": "BOOLEAN",
    "enum": "TEXT",
    "ordinal": "TEXT",
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

    from critlang import sql

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
