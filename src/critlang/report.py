"""Screening results out: a readable table, JSON, JSON Lines or CSV, streamed and written safely.

Every writer turns one result into text first and writes it whole, so a
result that cannot be put into words becomes an `error` result instead of
half a line. Files are written to a temporary file beside the target and
renamed over it only when complete (`atomic_output`); an output that is one
of the inputs is refused (`refuse_overwriting`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import secrets
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol as Interface
from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from critlang.check import Checked
from critlang.evaluate import Protocol, Result, failed
from critlang.records import printable
from critlang.vocab import Outcome

STATUSES = tuple(o.value for o in Outcome)
STATUS_STYLE = {
    Outcome.ELIGIBLE.value: "green",
    Outcome.INELIGIBLE.value: "red",
    Outcome.UNDETERMINED.value: "yellow",
    Outcome.ERROR.value: "magenta",
}
# A spreadsheet reads a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


# ---- records to results -------------------------------------------------------------


def summary(counts: Mapping[str, int]) -> str:
    """'5 record(s): 2 eligible, 1 ineligible, 1 undetermined, 1 error'."""
    total = sum(counts.values())
    words = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts.get(s))
    return f"{total} record(s): {words or 'none'}"


# ---- the flat result schema, shared by eval --format csv and screen -o ---------------


def flat_columns(checked: Checked) -> list[str]:
    """id, status, one column per criterion (its value word), missing, error."""
    return ["id", "status", *(c.id.text for c in checked.protocol.criteria), "missing", "error"]


def flat_row(result: Result, criteria: Sequence[str]) -> list[str]:
    values = {c.id: c.value_word for c in result.criteria}
    return [
        result.id,
        result.status,
        *(values.get(i, "") for i in criteria),
        ";".join(result.missing),
        result.error or "",
    ]


def neutralise(cell: str) -> str:
    """A CSV cell a spreadsheet will not run: one starting a formula gets a leading quote."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


# ---- writers ----------------------------------------------------------------------------


class Writer(Interface):
    def format(self, result: Result) -> str: ...

    def write(self, result: Result) -> None: ...

    def close(self, counts: Mapping[str, int]) -> None: ...


class _Base:
    def __init__(self, out: TextIO, protocol: Protocol) -> None:
        self.out = out
        self.protocol = protocol

    def format(self, result: Result) -> str:
        raise NotImplementedError

    def write(self, result: Result) -> None:
        """Write a result; one that cannot be put into words is written as an error."""
        try:
            text = self.format(result)
        except (ArithmeticError, ValueError, RecursionError) as error:
            text = self.format(failed(result.id, error))
        self.out.write(text)

    def close(self, counts: Mapping[str, int]) -> None:
        self.out.flush()


class TextWriter(_Base):
    """A compact table per record: each reason said once, parts indented; a summary at the end.

    Everything a record or protocol says is shown as plain text: no rich markup,
    no emoji codes, and control characters escaped.
    """

    def __init__(self, out: TextIO, protocol: Protocol) -> None:
        super().__init__(out, protocol)
        self.color = Console(file=out).is_terminal

    def console(self, buffer: TextIO) -> Console:
        return Console(
            file=buffer,
            width=120,
            soft_wrap=False,
            markup=False,
            emoji=False,
            highlight=False,
            force_terminal=self.color,
            no_color=not self.color,
        )

    def format(self, result: Result) -> str:
        buffer = io.StringIO()
        console = self.console(buffer)
        heading = Text(printable(result.id), style="bold")
        heading.append(": ")
        heading.append(result.status, style=STATUS_STYLE.get(result.status, ""))
        console.print(heading)
        if result.error is not None:
            console.print(Text("  " + printable(result.error)))
            console.print()
            return buffer.getvalue()
        table = Table(show_header=False, box=None, padding=(0, 1), pad_edge=False)
        table.add_column("criterion", max_width=44, overflow="ellipsis", no_wrap=True)
        table.add_column("value", no_wrap=True)
        table.add_column("reason", overflow="fold")
        for criterion in result.criteria:
            # A criterion with parts is decided by them: their reasons say why, once.
            reason = "" if criterion.parts else _unrepeated(criterion.value_word, criterion.reason)
            table.add_row(
                Text(printable(f"{criterion.id} {criterion.title}")),
                Text(criterion.value_word),
                Text(printable(reason)),
            )
            for part in criterion.parts:
                table.add_row(
                    Text(printable(f"  {part.name} {part.title or ''}".rstrip())),
                    Text(part.value_word),
                    Text(printable(_unrepeated(part.value_word, part.reason))),
                )
        console.print(table)
        for reading in result.readings:
            console.print(Text("  read: " + printable(reading)))
        if result.missing:
            console.print(Text("  missing: " + printable(", ".join(result.missing))))
        console.print()
        # rich pads every cell to the column width: drop the padding at line ends.
        return "\n".join(line.rstrip() for line in buffer.getvalue().split("\n"))

    def close(self, counts: Mapping[str, int]) -> None:
        self.out.write(summary(counts) + "\n")
        self.out.flush()


def _unrepeated(word: str, reason: str) -> str:
    """A reason without the value word it starts with ('not applicable: ...')."""
    return reason.removeprefix(f"{word}: ")


class JsonLinesWriter(_Base):
    def format(self, result: Result) -> str:
        return self.protocol.to_json(result) + "\n"  # json.dumps of to_dict(), quicker


class JsonWriter(_Base):
    """One JSON list, written as results arrive so memory stays constant."""

    def __init__(self, out: TextIO, protocol: Protocol) -> None:
        super().__init__(out, protocol)
        self.first = True

    def format(self, result: Result) -> str:
        return json.dumps(result.to_dict(), ensure_ascii=False, indent=2)

    def write(self, result: Result) -> None:
        self.out.write("[\n" if self.first else ",\n")
        self.first = False
        super().write(result)

    def close(self, counts: Mapping[str, int]) -> None:
        self.out.write("[]\n" if self.first else "\n]\n")
        self.out.flush()


class CsvWriter(_Base):
    """The flat result schema; cells that would start a formula are neutralised."""

    def __init__(self, out: TextIO, protocol: Protocol) -> None:
        super().__init__(out, protocol)
        self.ids = [c.id.text for c in protocol.checked.protocol.criteria]
        self.out.write(csv_line(flat_columns(protocol.checked)))

    def format(self, result: Result) -> str:
        return csv_line(flat_row(result, self.ids))


def csv_line(cells: Sequence[str]) -> str:
    """One CSV line, every cell neutralised."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([neutralise(c) for c in cells])
    return buffer.getvalue()


WRITERS: dict[str, Callable[[TextIO, Protocol], Writer]] = {
    "text": TextWriter,
    "json": JsonWriter,
    "jsonl": JsonLinesWriter,
    "csv": CsvWriter,
}


def write_results(
    results: Iterable[Result], writer: Writer, advance: Callable[[], None]
) -> Counter[str]:
    """Write every result; the counts by status."""
    counts: Counter[str] = Counter()
    for result in results:
        counts[result.status] += 1
        writer.write(result)
        advance()
    writer.close(counts)
    return counts


# ---- output files ----------------------------------------------------------------------


class OutputError(ValueError):
    """An output that would overwrite an input, or cannot be written."""


def refuse_overwriting(output: Path, inputs: Iterable[Path | str]) -> None:
    """Raise OutputError when `output` is one of `inputs`, or inside one (a folder)."""
    target = output.resolve()
    for given in inputs:
        if str(given) == "-":
            continue
        source = Path(given).resolve()
        same = target == source
        if not same and target.exists() and source.exists():
            with contextlib.suppress(OSError):
                same = os.path.samefile(target, source)
        if same or source in target.parents:
            raise OutputError(f"{output}: this is an input ({given}); choose another output")


@contextlib.contextmanager
def atomic_path(output: Path) -> Iterator[Path]:
    """A temporary path beside `output`, renamed over it when the block ends without error.

    Until then `output` keeps its previous content; after an error or Ctrl-C
    the temporary file is removed.
    """
    directory = output.parent if str(output.parent) else Path(".")
    if not directory.is_dir():
        raise OutputError(f"{output}: the folder {directory} does not exist")
    if output.is_dir():
        raise OutputError(f"{output}: is a folder; give a file name")
    # The name is chosen before the file exists and the file is made inside the
    # `try`, so a Ctrl-C at any moment after it exists still removes it.
    temporary = directory / f".{output.name}.{secrets.token_hex(8)}.tmp"
    ours: Path | None = temporary
    try:
        try:
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            ours = None  # another run's file: never remove it
            raise OutputError(
                f"{output}: the temporary file {temporary} exists; try again"
            ) from None
        yield temporary
        if output.exists():
            # Keep the permissions the previous output had.
            with contextlib.suppress(OSError):
                os.chmod(temporary, output.stat().st_mode & 0o777)
        else:
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(temporary, 0o666 & ~mask)
        os.replace(temporary, output)
    finally:
        if ours is not None:
            ours.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_output(output: Path | None) -> Iterator[TextIO]:
    """Standard output, or a text file written through `atomic_path`."""
    if output is None or str(output) == "-":
        yield sys.stdout
        return
    with atomic_path(output) as temporary, temporary.open("w", encoding="utf-8", newline="") as out:
        yield out
