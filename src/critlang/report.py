"""Writing screening results: a readable table, JSON, JSON Lines or CSV, streamed."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from typing import Protocol as Interface
from typing import TextIO

from rich.console import Console
from rich.table import Table

from critlang.evaluate import Protocol, Result

STATUS_STYLE = {
    "eligible": "green",
    "ineligible": "red",
    "undetermined": "yellow",
    "error": "magenta",
}


class Writer(Interface):
    def write(self, result: Result) -> None: ...

    def close(self) -> None: ...


class TextWriter:
    """A per-criterion table for each record (rich; plain text when not a terminal)."""

    def __init__(self, out: TextIO, protocol: Protocol) -> None:
        self.console = Console(file=out, width=120, soft_wrap=False)

    def write(self, result: Result) -> None:
        style = STATUS_STYLE.get(result.status, "")
        self.console.print(f"[bold]{result.id}[/bold]: [{style}]{result.status}[/{style}]")
        if result.error is not None:
            self.console.print(f"  {result.error}", markup=False)
            return
        table = Table(show_header=True, header_style="bold", box=None, padding=(0, 1))
        table.add_column("criterion")
        table.add_column("value")
        table.add_column("reason", overflow="fold")
        for criterion in result.criteria:
            table.add_row(
                f"{criterion.id} {criterion.title}", criterion.value_word, criterion.reason
            )
            for part in criterion.parts:
                word = (
                    "not applicable"
                    if part.applicable is False
                    else {True: "true", False: "false", None: "unknown"}[part.value]
                )
                table.add_row(f"  {part.name} {part.title or ''}", word, part.reason)
        self.console.print(table)
        if result.missing:
            self.console.print("  missing: " + ", ".join(result.missing), markup=False)
        self.console.print()

    def close(self) -> None:
        pass


class JsonLinesWriter:
    def __init__(self, out: TextIO, protocol: Protocol) -> None:
        self.out = out

    def write(self, result: Result) -> None:
        self.out.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")

    def close(self) -> None:
        self.out.flush()


class JsonWriter:
    """One JSON list, written as results arrive so memory stays constant."""

    def __init__(self, out: TextIO, protocol: Protocol) -> None:
        self.out = out
        self.first = True

    def write(self, result: Result) -> None:
        self.out.write("[\n" if self.first else ",\n")
        self.first = False
        self.out.write(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))

    def close(self) -> None:
        self.out.write("[]\n" if self.first else "\n]\n")
        self.out.flush()


class CsvWriter:
    """id, status, one column per criterion, missing, error."""

    def __init__(self, out: TextIO, protocol: Protocol) -> None:
        self.ids = [c.id.text for c in protocol.checked.protocol.criteria]
        self.writer = csv.writer(out, lineterminator="\n")
        self.writer.writerow(["id", "status", *self.ids, "missing", "error"])
        self.out = out

    def write(self, result: Result) -> None:
        values = {c.id: c.value_word for c in result.criteria}
        self.writer.writerow(
            [
                result.id,
                result.status,
                *(values.get(i, "") for i in self.ids),
                ";".join(result.missing),
                result.error or "",
            ]
        )

    def close(self) -> None:
        self.out.flush()


WRITERS: dict[str, Callable[[TextIO, Protocol], Writer]] = {
    "text": TextWriter,
    "json": JsonWriter,
    "jsonl": JsonLinesWriter,
    "csv": CsvWriter,
}
