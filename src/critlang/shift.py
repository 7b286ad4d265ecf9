"""Which patients an amendment moves: two versions of a protocol screened on one population.

`critlang diff OLD NEW --population DATA` screens DATA with both versions on
DuckDB (as `critlang screen` does, records read as `critlang eval` reads them)
and counts, for each direction (eligible → ineligible, undetermined →
eligible, ...), the patients whose status changes, with their ids.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import attrs

from critlang import screen
from critlang.evaluate import Protocol
from critlang.records import printable


@attrs.frozen
class Move:
    before: str
    after: str
    ids: tuple[str, ...]


@attrs.frozen
class Shift:
    """A population screened by two versions: how many, and who moved where."""

    patients: int
    moves: tuple[Move, ...]  # most patients first

    @property
    def moved(self) -> int:
        return sum(len(move.ids) for move in self.moves)


def population_shift(old: Protocol, new: Protocol, data: Path | str) -> Shift:
    """Screen `data` with both versions on DuckDB and compare the statuses record by record."""
    import duckdb

    with tempfile.TemporaryDirectory(prefix="critlang-diff-") as work:
        before, after = Path(work) / "old.parquet", Path(work) / "new.parquet"
        screen.run(old.checked, data, "duckdb", before)
        screen.run(new.checked, data, "duckdb", after)
        # Results keep the records' order, so the n-th row of each is the same record.
        connection = duckdb.connect()
        rows = connection.execute(
            "SELECT a.id, a.status, b.status FROM "
            "(SELECT row_number() OVER () AS n, id, status FROM read_parquet(?)) a "
            "JOIN (SELECT row_number() OVER () AS n, id, status FROM read_parquet(?)) b "
            "USING (n) ORDER BY n",
            [str(before), str(after)],
        ).fetchall()
    moves: dict[tuple[str, str], list[str]] = {}
    for record_id, status_before, status_after in rows:
        if status_before != status_after:
            moves.setdefault((status_before, status_after), []).append(str(record_id))
    ordered = sorted(moves.items(), key=lambda item: (-len(item[1]), item[0]))
    return Shift(len(rows), tuple(Move(b, a, tuple(ids)) for (b, a), ids in ordered))


def shift_lines(shift: Shift, shown: int = 20) -> list[str]:
    """The shift in plain text, at most `shown` ids per direction."""
    lines = [f"population: {shift.patients} patient(s), {shift.moved} change status"]
    for move in shift.moves:
        ids = ", ".join(printable(i) for i in move.ids[:shown])
        more = f" and {len(move.ids) - shown} more" if len(move.ids) > shown else ""
        lines.append(f"  {move.before} → {move.after}: {len(move.ids)} ({ids}{more})")
    return lines
