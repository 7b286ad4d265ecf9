"""Write examples/patients.parquet from examples/records.csv, typed by the protocol.

    .venv/bin/python examples/make_parquet.py   # needs the `sql` extra (pyarrow)

The Parquet file is what `critlang screen` reads from a warehouse export: one
row per patient, a typed column per data element (decimals in the declared
unit, booleans, text, lists of text for `set of`). The CSV is the source of
truth; tests/test_readme.py checks that the shipped Parquet file still holds
exactly its rows.
"""

from __future__ import annotations

import csv
import datetime
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from critlang.check import Checked, check_source

HERE = Path(__file__).resolve().parent
PROTOCOL = HERE.parent / "protocols" / "ctd_ild.crit"
ARROW = {
    "boolean": pa.bool_(),
    "enum": pa.string(),
    "set": pa.list_(pa.string()),
    "date": pa.date32(),
    "number": pa.decimal128(18, 6),
    "quantity": pa.decimal128(18, 6),
}


def cell(text: str, kind: str) -> Any:
    if text == "":
        return None
    if kind == "boolean":
        return {"true": True, "false": False}[text]
    if kind == "set":
        return text.split(";")
    if kind == "date":
        return datetime.date.fromisoformat(text)
    if kind in ("number", "quantity"):
        return Decimal(text)
    return text


def table(checked: Checked, path: Path) -> pa.Table:
    """The CSV's rows as an Arrow table; a unit in a header must be the declared one."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        columns = []
        for heading in header:
            match = re.fullmatch(r"(\w+)(?: \[(.+)\])?", heading)
            if match is None:
                raise SystemExit(f"{path}: cannot read the column heading {heading!r}")
            name, unit = match.groups()
            if unit is not None and unit != checked.element_types[name].unit:
                raise SystemExit(f"{path}: column {name} is in {unit}, not the declared unit")
            columns.append(name)
        rows = [dict(zip(columns, row, strict=True)) for row in reader]
    fields = [pa.field("id", pa.string())] + [
        pa.field(name, ARROW[kind.kind]) for name, kind in checked.element_types.items()
    ]
    kinds = {name: kind.kind for name, kind in checked.element_types.items()}
    records = [
        {f.name: cell(row.get(f.name, ""), kinds.get(f.name, "enum")) for f in fields}
        for row in rows
    ]
    return pa.Table.from_pylist(records, pa.schema(fields))


def main() -> None:
    checked, diagnostics = check_source(PROTOCOL.read_text(encoding="utf-8"), str(PROTOCOL))
    if checked is None:
        raise SystemExit(f"{PROTOCOL} has errors: {[d.message for d in diagnostics]}")
    pq.write_table(table(checked, HERE / "records.csv"), HERE / "patients.parquet")


if __name__ == "__main__":
    main()
