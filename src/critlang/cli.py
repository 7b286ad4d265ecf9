"""The `critlang` command line."""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from critlang.check import check_source
from critlang.compile import ELIGIBLE, INELIGIBLE, UNDETERMINED, compile_protocol
from critlang.diagnostics import render
from critlang.evaluate import ERROR, Protocol
from critlang.records import Row, read_records
from critlang.report import WRITERS

STATUSES = (ELIGIBLE, INELIGIBLE, UNDETERMINED)


def read_source(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise click.ClickException(f"{path}: cannot read the file ({error})") from None


@click.group()
@click.version_option(package_name="critlang")
def main() -> None:
    """critlang: clinical-trial eligibility criteria as code."""


@main.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
def check_command(files: tuple[Path, ...]) -> None:
    """Check protocol files; exit 1 if any has an error."""
    errors = warnings = 0
    for path in files:
        text = read_source(path)
        _, diagnostics = check_source(text, str(path))
        for diagnostic in diagnostics:
            click.echo(render(diagnostic, text), err=False)
        errors += sum(d.is_error for d in diagnostics)
        warnings += sum(not d.is_error for d in diagnostics)
    summary = f"{len(files)} file(s) checked: {errors} error(s), {warnings} warning(s)"
    click.echo(summary, err=True)
    sys.exit(1 if errors else 0)


FORMATS = ("text", "json", "jsonl", "csv")


def load_protocol(path: Path) -> Protocol:
    """Compile a protocol file, or print its diagnostics and exit 1."""
    text = read_source(path)
    checked, diagnostics = check_source(text, str(path))
    if checked is None:
        for diagnostic in diagnostics:
            click.echo(render(diagnostic, text), err=True)
        sys.exit(1)
    return Protocol(compile_protocol(checked))


@main.command("eval")
@click.argument("protocol_file", metavar="PROTOCOL", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("records_file", metavar="RECORDS", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("-o", "--output", type=click.File("w", encoding="utf-8"), default="-", help="Write here instead of stdout.")
def eval_command(protocol_file: Path, records_file: Path, output_format: str, output: TextIO) -> None:
    """Screen RECORDS (.json, .jsonl or .csv) against PROTOCOL.

    Exits 2 when any record was in error (each is reported and the rest go on).
    """
    protocol = load_protocol(protocol_file)
    try:
        rows = read_records(records_file, protocol.checked)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    counts: Counter[str] = Counter()
    writer = WRITERS[output_format](output, protocol)
    with _progress() as advance:
        for result in protocol.screen(_guard_io(rows, records_file)):
            counts[result.status] += 1
            writer.write(result)
            advance()
    writer.close()
    total = sum(counts.values())
    summary = ", ".join(f"{counts[s]} {s}" for s in (*STATUSES, ERROR) if counts[s])
    click.echo(f"{total} record(s): {summary or 'none'}", err=True)
    sys.exit(2 if counts[ERROR] else 0)


def _guard_io(rows: Iterator[Row], path: Path) -> Iterator[Row]:
    try:
        yield from rows
    except (OSError, UnicodeDecodeError) as error:
        raise click.ClickException(f"{path}: cannot read records ({error})") from None


@contextlib.contextmanager
def _progress() -> Iterator[Callable[[], None]]:
    """A progress counter on stderr when it is a terminal; nothing otherwise."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda: None
        return
    columns = (SpinnerColumn(), TextColumn("{task.completed} records"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("screening", total=None)
        yield lambda: progress.advance(task)
