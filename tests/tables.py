"""Arrow tables of patient records, as the SQL tests hand them to DuckDB and Spark."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa

from critlang.check import Checked

ARROW = {
    "boolean": pa.bool_(),
    "enum": pa.string(),
    "ordinal": pa.string(),
    "set": pa.list_(pa.string()),
    "date": pa.date32(),
    "number": pa.decimal128(18, 6),
    "quantity": pa.decimal128(18, 6),
}


def arrow_table(
    checked: Checked, records: Sequence[Mapping[str, Any]], floats: bool = False
) -> pa.Table:
    fields = [pa.field("id", pa.string())]
    for name, kind in checked.element_types.items():
        arrow = pa.float64() if floats and kind.numeric else ARROW[kind.kind]
        fields.append(pa.field(name, arrow))
    rows = [
        {
            f.name: (
                float(r[f.name]) if floats and isinstance(r.get(f.name), Decimal) else r.get(f.name)
            )
            for f in fields
        }
        for r in records
    ]
    return pa.Table.from_pylist(rows, pa.schema(fields))
