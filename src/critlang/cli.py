"""The `critlang` command line."""

from __future__ import annotations

import contextlib
import datetime
import importlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from critlang.check import Checked, check_source, coverage
from critlang.diagnostics import render
from critlang.records import FORMATS as FORMATS_IN
from critlang.records import (
    ID_FIELD,
    Events,
    InputError,
    Intake,
    Row,
    printable,
    read_events,
    read_records,
    shorten,
    with_events,
)
from critlang.vocab import Outcome

if TYPE_CHECKING:
    from critlang.evaluate import Protocol
    from critlang.terminology import Terminology

# The engines, documents, reports and rich load in the commands that use them:
# `critlang check` starts without them.

STATUSES = (Outcome.ELIGIBLE, Outcome.INELIGIBLE, Outcome.UNDETERMINED)


def read_source(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise click.ClickException(f"{path}: cannot read the file ({error})") from None


# Exit statuses (docs/cli.md): 0 done; 1 a protocol has errors, an example fails or a
# file would be reformatted; 2 a record in error or an unconfirmed witness; and, after
# sysexits.h, 64 a wrong command line, 66 an input that cannot be read or used, 69 a
# missing optional extra, 73 an output that must not be written (it is an input).
# Click itself would give usage errors 2, like records in error.
EXIT_USAGE = 64
EXIT_INPUT = 66
EXIT_UNAVAILABLE = 69
EXIT_OUTPUT = 73


class _Usage(click.UsageError):
    exit_code = EXIT_USAGE


class _Input(click.ClickException):
    exit_code = EXIT_INPUT


class _Unavailable(click.ClickException):
    exit_code = EXIT_UNAVAILABLE


class _Output(click.ClickException):
    exit_code = EXIT_OUTPUT


class _Group(click.Group):
    """A click group whose errors exit with the statuses above."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        with _exit_codes():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with _exit_codes():
            return super().invoke(ctx)


@contextlib.contextmanager
def _exit_codes() -> Iterator[None]:
    try:
        yield
    except _Usage:
        raise
    except click.UsageError as error:
        raise _Usage(error.format_message(), error.ctx) from None
    except click.ClickException as error:
        if error.exit_code != 1:
            raise
        raise _Input(error.format_message()) from None


@click.group(cls=_Group)
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
        checked, diagnostics = check_source(text, str(path))
        for diagnostic in diagnostics:
            click.echo(render(diagnostic, text), err=False)
        if checked is not None:  # how much of the protocol is encoded only approximately
            click.echo(f"{path}: {coverage(checked.protocol)}", err=True)
        errors += sum(d.is_error for d in diagnostics)
        warnings += sum(not d.is_error for d in diagnostics)
    summary = f"{len(files)} file(s) checked: {errors} error(s), {warnings} warning(s)"
    click.echo(summary, err=True)
    sys.exit(1 if errors else 0)


FORMATS = ("text", "json", "jsonl", "csv")


def load_protocol(path: Path, terminology: Terminology | None = None) -> Protocol:
    """Compile a protocol file, or print its diagnostics and exit 1."""
    from critlang.pipeline import build

    return build(load_checked(path, terminology))


def load_checked(path: Path, terminology: Terminology | None = None) -> Checked:
    """Check a protocol file, or print its diagnostics and exit 1; for a command that
    needs no Python engine (`screen` compiles to SQL only)."""
    text = read_source(path)
    checked, diagnostics = check_source(text, str(path))
    if checked is None:
        for diagnostic in diagnostics:
            click.echo(render(diagnostic, text), err=True)
        sys.exit(1)
    return checked.with_terminology(terminology)


def _terminology(
    _context: click.Context, _parameter: click.Parameter, value: Path | None
) -> Terminology | None:
    from critlang.terminology import TerminologyError, read_terminology

    if value is None:
        return None
    try:
        return read_terminology(value)
    except TerminologyError as error:
        raise click.BadParameter(str(error)) from None


terminology_option = click.option(
    "--terminology",
    type=click.Path(path_type=Path, dir_okay=False),
    callback=_terminology,
    help='Which codes descend from which, for "CODE" and descendants in code lists '
    "(.csv or .parquet with columns ancestor, descendant; see docs/language.md).",
)


def record_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options shared by the commands that read records: format, id field, strictness."""
    options = (
        click.option(
            "--input-format",
            type=click.Choice(FORMATS_IN),
            help="The records' format when the file name does not say (stdin: jsonl).",
        ),
        click.option(
            "--id-field",
            default=ID_FIELD,
            show_default=True,
            help="The field (or CSV column) that identifies a record.",
        ),
        click.option(
            "--strict-fields",
            is_flag=True,
            help="A field that is not a data element makes its record an error.",
        ),
    )
    for option in reversed(options):
        command = option(command)
    return command


def _as_of(_context: click.Context, _parameter: click.Parameter, value: str | None) -> Any:
    from critlang.records import reference_date

    try:
        return reference_date(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


as_of_option = click.option(
    "--as-of",
    "as_of",
    metavar="YYYY-MM-DD",
    callback=_as_of,
    help="The reference date ('as of' in the protocol) for records that do not give it.",
)


def fhir_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of screening from a health record: the binding and the data (--as-of gives the date)."""
    options = (
        click.option(
            "--bindings",
            type=click.Path(path_type=Path, dir_okay=False),
            help="A binding file (NAME.bind.yaml) saying where each data element is.",
        ),
        click.option(
            "--fhir",
            type=click.Path(path_type=Path),
            help="A FHIR R4 bulk export folder (.ndjson) or Bundles (.json).",
        ),
    )
    for option in reversed(options):
        command = option(command)
    return command


def _checked_binding(bindings: Path, protocol: Protocol) -> Any:
    """The binding file checked against the protocol, its diagnostics shown; exit 1 on errors."""
    optional("yaml", "bindings")
    from critlang.bindings import load_binding

    binding, diagnostics = load_binding(bindings, protocol.checked)
    text = bindings.read_text(encoding="utf-8", errors="replace") if bindings.is_file() else None
    for diagnostic in diagnostics:
        click.echo(render(diagnostic, text), err=True)
    if binding is None:
        sys.exit(1)
    return binding


def _eval_fhir(
    protocol: Protocol,
    protocol_file: Path,
    bindings: Path,
    fhir: Path,
    as_of: datetime.date | None,
    output_format: str,
    output: Path | None,
) -> None:
    """`eval --bindings --fhir`: every patient's result, each value citing its source."""
    from critlang.bindings.run import FhirScreen, writer
    from critlang.bindings.stream import FhirInputError
    from critlang.evaluate import ERROR
    from critlang.report import summary, write_results

    binding = _checked_binding(bindings, protocol)
    section = binding.sections.get("fhir")
    if section is None:
        raise _Usage(f"{bindings}: the binding has no fhir section")
    try:
        screen = FhirScreen(protocol, section, fhir, as_of)
    except FhirInputError as error:
        raise _Input(str(error)) from None
    if as_of is None and _needs_date(section):
        raise _Usage("the binding uses windows, ages or times since: give --as-of YYYY-MM-DD")
    with _safe_output(output, (fhir, bindings, protocol_file)) as out, _progress() as advance:
        counts = write_results(screen.results(), writer(output_format, out, protocol), advance)
    for line in screen.report():
        click.echo(line, err=True)
    if output_format != "text" or output is not None:
        click.echo(summary(counts), err=True)
    sys.exit(2 if counts[ERROR] else 0)


def _eval_omop(
    protocol: Protocol,
    bindings: Path,
    omop: str,
    persons: tuple[int, ...],
    as_of: datetime.date | None,
    output_format: str,
    output: Path | None,
) -> None:
    """`eval --bindings --omop`: each person's result, each value citing its table row."""
    optional("sqlglot", "sql")
    from critlang.bindings.run import writer
    from critlang.evaluate import ERROR
    from critlang.explain_omop import OmopExplain
    from critlang.report import summary, write_results

    binding = _checked_binding(bindings, protocol)
    try:
        explained = OmopExplain(protocol, binding, omop, as_of)
    except ValueError as error:
        raise _Input(str(error)) from None
    try:
        with _safe_output(output, (bindings,)) as out, _progress() as advance:
            results = explained.results(list(persons) or None)
            counts = write_results(results, writer(output_format, out, protocol), advance)
    except ValueError as error:
        raise _Input(str(error)) from None
    finally:
        explained.close()
    for line in explained.report(list(persons), sum(counts.values())):
        click.echo(line, err=True)
    if output_format != "text" or output is not None:
        click.echo(summary(counts), err=True)
    sys.exit(2 if counts[ERROR] else 0)


def _needs_date(section: Any) -> bool:
    return any(
        e.rule.within is not None
        or e.read == "time since"
        or (e.type.kind == "quantity" and e.source == "patient")
        or e.source == "reference"
        or e.option("clinical", "any") == "active"  # active on the reference date
        for e in section.elements.values()
    )


@main.command("synth")
@click.argument(
    "protocol_file", metavar="PROTOCOL", type=click.Path(path_type=Path, dir_okay=False)
)
@click.option(
    "--bindings", required=True, type=click.Path(path_type=Path, dir_okay=False),
    help="The binding file whose fhir section says how each element is written.",
)  # fmt: skip
@click.option("--as-of", "as_of", required=True, type=click.DateTime(formats=["%Y-%m-%d"]))
@click.option("--patients", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--boundary", is_flag=True, help="Begin with the boundary patients of `critlang analyze`."
)
@click.option(
    "-o", "--output", required=True, type=click.Path(path_type=Path, file_okay=False),
    help="A folder: flat.jsonl, fhir/ (NDJSON) and omop.duckdb are written there.",
)  # fmt: skip
def synth_command(
    protocol_file: Path,
    bindings: Path,
    as_of: datetime.datetime,
    patients: int,
    seed: int,
    boundary: bool,
    output: Path,
) -> None:
    """Synthetic patients for PROTOCOL, written flat, as FHIR and as OMOP tables (docs/fhir-omop.md)."""
    optional("yaml", "bindings")
    from critlang.bindings import load_binding
    from critlang.synth import Generator, write_fhir, write_flat, write_omop

    protocol = load_protocol(protocol_file)
    binding, diagnostics = load_binding(bindings, protocol.checked)
    text = bindings.read_text(encoding="utf-8", errors="replace") if bindings.is_file() else None
    for diagnostic in diagnostics:
        click.echo(render(diagnostic, text), err=True)
    if binding is None or "fhir" not in binding.sections:
        raise _Usage(f"{bindings}: the synthetic patients need a binding with a fhir section")
    witnesses: list[dict[str, Any]] = []
    if boundary:
        optional("z3", "analyze")
        from critlang.analyze.questions import boundary_examples

        witnesses = [p.witness.record for p in boundary_examples(protocol)]
    generator = Generator(protocol.checked, binding.sections["fhir"], as_of.date(), seed)
    made = list(generator.patients(patients, witnesses))
    output.mkdir(parents=True, exist_ok=True)
    write_flat(made, output / "flat.jsonl")
    write_fhir(made, output / "fhir")
    if importlib.util.find_spec("duckdb") is not None:
        write_omop(made, output / "omop.duckdb")
    click.echo(f"{len(made)} patient(s) written to {output}", err=True)


@main.command("eval")
@click.argument(
    "protocol_file", metavar="PROTOCOL", type=click.Path(path_type=Path, dir_okay=False)
)
@click.argument(
    "records_file",
    metavar="[RECORDS]",
    required=False,
    type=click.Path(path_type=Path, dir_okay=False),
)
@click.option(
    "--format", "output_format", type=click.Choice(FORMATS), default="text", show_default=True
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write here instead of stdout (replaced only once complete).",
)
@click.option(
    "--events",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The histories, one row per entry (.csv or .parquet; see docs/records.md).",
)
@record_options
@as_of_option
@terminology_option
@fhir_options
@click.option(
    "--omop", help="An OMOP CDM database (DuckDB file, Parquet folder, postgresql:// URL)."
)
@click.option("--person", "persons", multiple=True, type=int, help="--omop: only this person_id.")
def eval_command(
    protocol_file: Path,
    records_file: Path | None,
    output_format: str,
    output: Path | None,
    events: Path | None,
    input_format: str | None,
    id_field: str,
    strict_fields: bool,
    bindings: Path | None,
    fhir: Path | None,
    as_of: datetime.date | None,
    omop: str | None,
    persons: tuple[int, ...],
    terminology: Terminology | None,
) -> None:
    """Screen RECORDS (.json, .jsonl, .csv, .parquet; - for stdin) against PROTOCOL.

    Or screen the patients of a FHIR R4 bulk export or Bundles (--fhir), or the
    persons of an OMOP CDM database (--omop, --person), through a binding file
    (--bindings); see docs/fhir-omop.md.

    Every record gets one result; a record in error is reported and the rest
    go on. Exits 2 when any record was in error.
    """
    from critlang.evaluate import ERROR
    from critlang.report import WRITERS, summary, write_results

    protocol = load_protocol(protocol_file, terminology)
    if omop is not None:
        if records_file is not None or fhir is not None or bindings is None or events is not None:
            raise _Usage("give --bindings with --omop, and no RECORDS, --fhir or --events")
        _eval_omop(protocol, bindings, omop, persons, as_of, output_format, output)
        return
    if fhir is not None or bindings is not None:
        if records_file is not None or fhir is None or bindings is None or events is not None:
            raise _Usage("give --bindings and --fhir together, and no RECORDS or --events file")
        _eval_fhir(protocol, protocol_file, bindings, fhir, as_of, output_format, output)
        return
    if records_file is None:
        raise _Usage("give a RECORDS file (- for stdin), or --bindings and --fhir")
    intake = Intake(protocol.checked, id_field, strict_fields, as_of)
    histories = _read_events(events, protocol) if events is not None else None
    inputs = (records_file, protocol_file, *(() if events is None else (events,)))
    with _safe_output(output, inputs) as out:
        rows = _read(records_file, protocol, input_format)
        if histories is not None:
            rows = with_events(rows, histories, intake)
        writer = WRITERS[output_format](out, protocol)
        with _progress() as advance:
            counts = write_results(protocol.screen(rows, intake), writer, advance)
    _report_unknown(intake)
    bad_events = _report_events(histories)
    if output_format != "text" or output is not None:
        click.echo(summary(counts), err=True)
    sys.exit(2 if counts[ERROR] or bad_events else 0)


def _read_events(source: Path, protocol: Protocol) -> Events:
    try:
        return read_events(source, protocol.checked)
    except InputError as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:
        raise click.ClickException(f"{source}: cannot read ({error.strerror or error})") from None


def _report_events(events: Events | None) -> bool:
    """Say which rows of the events file were left out; True when some could not be read."""
    if events is None:
        return False
    for problem in events.bad_lines:
        click.echo(f"error: {printable(problem)}", err=True)
    if events.ignored:
        listed = ", ".join(
            f"'{printable(shorten(name))}' ({count})"
            for name, count in sorted(events.ignored.items())
        )
        click.echo(
            f"note: rows of elements that are not histories of the protocol were left out: {listed}",
            err=True,
        )
    return bool(events.bad_lines)


def _read(source: Path, protocol: Protocol, input_format: str | None) -> Iterator[Row]:
    try:
        rows = read_records(source, protocol.checked, input_format)
    except InputError as error:
        raise click.ClickException(str(error)) from None
    return _guard_input(rows, source)


def _guard_input(rows: Iterator[Row], source: Path) -> Iterator[Row]:
    """Rows; a file that stops being readable ends the run with its name, not a traceback."""
    try:
        yield from rows
    except InputError as error:
        raise click.ClickException(f"{source}: {error}") from None
    except OSError as error:
        raise click.ClickException(
            f"{source}: cannot read records ({error.strerror or error})"
        ) from None


@contextlib.contextmanager
def _safe_output(output: Path | None, inputs: tuple[Path, ...]) -> Iterator[TextIO]:
    """The output stream; a file is refused if it is an input, and replaced only when complete."""
    from critlang.report import OutputError, atomic_output, refuse_overwriting

    try:
        if output is not None:
            refuse_overwriting(output, inputs)
        with atomic_output(output) as out:
            yield out
    except OutputError as error:
        raise _Output(str(error)) from None
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other filters do.
        if output is None:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(1)
        raise click.ClickException(f"{output}: cannot write (broken pipe)") from None
    except OSError as error:
        target = output if output is not None else "standard output"
        raise click.ClickException(f"{target}: cannot write ({error.strerror or error})") from None


def _report_unknown(intake: Intake) -> None:
    lines = intake.unknown_report()
    if lines:
        click.echo(
            f"note: {len(lines)} field(s) are not data elements of the protocol and were "
            "ignored (--strict-fields makes them errors):",
            err=True,
        )
        for line in lines:
            click.echo(f"  {line}", err=True)


@contextlib.contextmanager
def _progress() -> Iterator[Callable[[], None]]:
    """A progress counter on stderr when it is a terminal; nothing otherwise."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda: None
        return
    columns = (SpinnerColumn(), TextColumn("{task.completed} records"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("screening", total=None)
        yield lambda: progress.advance(task)


@main.command("render")
@click.argument("protocol", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "txt", "html", "plain", "form"]),
    default="md",
    show_default=True,
    help="md: protocol page; txt: registry text; html: screening worksheet; "
    "plain: plain language; form: the live screening form.",
)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write to this file."
)
def render_command(protocol: Path, fmt: str, output: Path | None) -> None:
    """Render a protocol as a document; exit 1 if it has errors."""
    from critlang.pipeline import build
    from critlang.render import render_document

    text = read_source(protocol)
    checked, diagnostics = check_source(text, str(protocol))
    for diagnostic in diagnostics:
        click.echo(render(diagnostic, text), err=True)
    if checked is None:
        sys.exit(1)
    if fmt == "form":
        from critlang.form import render_form

        document = render_form(build(checked))
    else:
        document = render_document(checked, fmt)
    if output is None:
        click.echo(document, nl=False)
    else:
        output.write_text(document, encoding="utf-8")


# ---- population screening in SQL: `critlang sql` and `critlang screen` ----------------
# sqlglot, DuckDB, Spark and z3 are optional (extras `sql`, `spark`, `analyze`): imported on use.


def optional(module: str, extra: str) -> Any:
    """Import a module that needs an optional extra, or say which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise _Unavailable(
            f"this command needs {error.name}: pip install 'critlang[{extra}]'"
        ) from None


# The dialects whose SQL the tests parse back and, for DuckDB and Spark, run.
SQL_DIALECTS = ("duckdb", "spark", "databricks", "postgres", "trino", "snowflake", "bigquery")
TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}")


@main.command("sql")
@click.argument(
    "protocol_file", metavar="PROTOCOL", type=click.Path(path_type=Path, dir_okay=False)
)
@click.option(
    "--dialect",
    default="duckdb",
    show_default=True,
    help=f"The SQL dialect: {', '.join(SQL_DIALECTS)}.",
)
@click.option(
    "--table",
    default="patients",
    show_default=True,
    help="The patient table: a name, optionally qualified (warehouse.trial.patients).",
)
def sql_command(protocol_file: Path, dialect: str, table: str) -> None:
    """Print the SQL query that screens a table of patients against PROTOCOL.

    The table has one row per patient and a column per data element; see docs/sql.md.
    """
    sql = optional("critlang.sql", "sql")
    if dialect not in SQL_DIALECTS:
        raise click.BadParameter(
            f"unknown dialect '{dialect}' (one of {', '.join(SQL_DIALECTS)})",
            param_hint="'--dialect'",
        )
    if not TABLE_NAME.fullmatch(table):
        raise click.BadParameter(
            "expected a table name: letters, digits and _, up to three parts joined by '.'",
            param_hint="'--table'",
        )
    protocol = load_protocol(protocol_file)
    try:
        click.echo(sql.to_sql(protocol.checked, table, dialect) + ";")
    except sql.SqlError as error:
        raise click.ClickException(str(error)) from None


@main.command("screen")
@click.argument(
    "protocol_file", metavar="PROTOCOL", type=click.Path(path_type=Path, dir_okay=False)
)
@click.argument(
    "data_file", metavar="DATA", required=False, type=click.Path(path_type=Path, dir_okay=False)
)
@click.option(
    "--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True
)
@click.option(
    "--omop",
    metavar="DATABASE",
    help="Screen an OMOP CDM database instead of DATA: a DuckDB file, a directory of "
    "Parquet tables, or a postgresql:// URL (needs --bindings).",
)
@click.option(
    "--bindings",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The binding file saying where each data element is in the OMOP tables.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write per-patient results here (.parquet or .csv), replaced only once complete.",
)
@click.option(
    "--report",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the attrition report here as HTML.",
)
@click.option(
    "--events",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The histories' entries, one row per entry (.csv or .parquet; see docs/sql.md).",
)
@record_options
@as_of_option
@terminology_option
def screen_command(
    protocol_file: Path,
    data_file: Path | None,
    engine: str,
    omop: str | None,
    bindings: Path | None,
    output: Path | None,
    report: Path | None,
    events: Path | None,
    input_format: str | None,
    id_field: str,
    strict_fields: bool,
    as_of: datetime.date | None,
    terminology: Terminology | None,
) -> None:
    """Screen a whole population in DATA (.csv, .parquet, .jsonl, .json; - for stdin) with SQL.

    Records are read exactly as `critlang eval` reads them. Prints the
    attrition table. Exits 2 when any record was in error. With --omop and
    --bindings, screens an OMOP CDM database instead (docs/fhir-omop.md).
    """
    from critlang.report import OutputError, refuse_overwriting

    sql = optional("critlang.sql", "sql")
    screen = optional("critlang.screen", "sql")
    if omop is not None or data_file is None:
        if terminology is not None:
            raise _Usage("--terminology is for DATA; an OMOP database has its own concept_ancestor")
        _screen_omop(protocol_file, data_file, omop, bindings, as_of, engine, output, report)
        return
    inputs = (data_file, protocol_file, *((events,) if events is not None else ()))
    try:
        for target in (output, report):
            if target is not None:
                refuse_overwriting(target, inputs)
        if output is not None and report is not None:
            refuse_overwriting(report, (output,))
    except OutputError as error:
        raise _Output(str(error)) from None
    checked = load_checked(protocol_file, terminology)
    intake = Intake(checked, id_field, strict_fields, as_of)
    try:
        attrition = screen.run(
            checked,
            data_file,
            engine,
            output,
            input_format=input_format,
            intake=intake,
            events=events,
        )
    except (sql.SchemaError, sql.SqlError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:
        raise click.ClickException(f"cannot screen ({error.strerror or error})") from None
    click.echo(attrition.text())
    _report_unknown(intake)
    if report is not None:
        with _safe_output(report, inputs) as out:
            out.write(screen.render_html(attrition))
    sys.exit(2 if attrition.errors else 0)


def _screen_omop(
    protocol_file: Path,
    data_file: Path | None,
    database: str | None,
    bindings: Path | None,
    as_of: Any,
    engine: str,
    output: Path | None,
    report: Path | None,
) -> None:
    """`critlang screen PROTOCOL --omop DATABASE --bindings B`: see screen_omop.py."""
    from critlang.bindings import load_binding
    from critlang.diagnostics import render_all
    from critlang.report import OutputError, refuse_overwriting

    if database is None or data_file is not None or bindings is None:
        raise click.UsageError("give DATA, or --omop DATABASE with --bindings B")
    screen_omop = optional("critlang.screen_omop", "sql")
    screen = optional("critlang.screen", "sql")
    inputs = (protocol_file, bindings)
    try:
        for target in (output, report):
            if target is not None:
                refuse_overwriting(target, inputs)
    except OutputError as error:
        raise _Output(str(error)) from None
    protocol = load_protocol(protocol_file)
    binding, diagnostics = load_binding(bindings, protocol.checked)
    if diagnostics:
        click.echo(render_all(diagnostics, read_source(bindings)), err=True)
    if binding is None:
        sys.exit(1)
    try:
        result = screen_omop.run(protocol.checked, binding, database, as_of, engine, output)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:
        raise click.ClickException(f"cannot screen ({error.strerror or error})") from None
    click.echo(result.text())
    if report is not None:
        with _safe_output(report, inputs) as out:
            out.write(screen.render_html(result.attrition))
    sys.exit(2 if result.attrition.errors else 0)


# ---- authoring tools: fmt, test, analyze ------------------------------------------


@main.command("fmt")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--check", is_flag=True, help="Change nothing; exit 1 if any file would change.")
@click.option("--diff", "show_diff", is_flag=True, help="With --check: print the unified diff.")
def fmt_command(files: tuple[Path, ...], check: bool, show_diff: bool) -> None:
    """Rewrite protocol files in canonical form, keeping their comments."""
    from critlang.diagnostics import CritError
    from critlang.fmt import diff, format_source

    check = check or show_diff  # a diff is shown instead of writing the file

    changed = failed = 0
    for path in files:
        text = read_source(path)
        try:
            formatted = format_source(text, str(path))
        except CritError as error:
            for diagnostic in error.diagnostics:
                click.echo(render(diagnostic, text), err=True)
            failed += 1
            continue
        if formatted == text:
            continue
        changed += 1
        if check:
            click.echo(
                diff(text, formatted, str(path)) if show_diff else f"would reformat {path}",
                nl=not show_diff,
            )
        else:
            path.write_text(formatted, encoding="utf-8")
            click.echo(f"reformatted {path}")
    verb = "would be reformatted" if check else "reformatted"
    click.echo(f"{changed} of {len(files)} file(s) {verb}, {failed} not parsed", err=True)
    sys.exit(1 if failed or (check and changed) else 0)


@main.command("lsp")
def lsp_command() -> None:
    """Run the language server on stdin/stdout, for editors (needs critlang[lsp])."""
    optional("pygls", "lsp")
    from critlang.lsp import serve

    serve()


@main.command("test")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
def test_command(files: tuple[Path, ...]) -> None:
    """Run the example patients of protocol files; exit 1 if any fails."""
    from critlang.protocol_tests import failure_details, run_source, summary_line

    passed = failed = 0
    for path in files:
        text = read_source(path)
        outcome = run_source(text, str(path))
        for diagnostic in outcome.diagnostics:
            if diagnostic.is_error:
                click.echo(render(diagnostic, text), err=True)
        if not outcome.usable:
            failed += 1
            continue
        if not outcome.outcomes:
            click.echo(f"{path}: no examples")
        for example in outcome.outcomes:
            click.echo(summary_line(example))
            if not example.passed:
                click.echo(failure_details(example))
        passed += sum(e.passed for e in outcome.outcomes)
        failed += sum(not e.passed for e in outcome.outcomes)
    click.echo(f"{passed + failed} example(s): {passed} passed, {failed} failed", err=True)
    sys.exit(1 if failed else 0)


@main.command("analyze")
@click.argument(
    "protocol_file", metavar="PROTOCOL", type=click.Path(path_type=Path, dir_okay=False)
)
@click.option(
    "--examples", is_flag=True, help="Print boundary example blocks (from witnesses) instead."
)
@click.option(
    "--warn-only",
    is_flag=True,
    help="Exit 0 even when no patient can be eligible or a criterion can never decide.",
)
def analyze_command(protocol_file: Path, examples: bool, warn_only: bool) -> None:
    """Analyse PROTOCOL with z3: eligible patients, criteria that never decide,
    overlapping or gapped alternatives, each with a witness patient that the
    compiled evaluator confirms. Exits 1 if no patient can be eligible or a
    criterion can never pass or never fail (unless --warn-only), 2 if a
    witness is not confirmed."""
    analyze = optional("critlang.analyze", "analyze")
    protocol = load_protocol(protocol_file)
    if examples:
        proposals = analyze.boundary_examples(protocol)
        click.echo("# Proposed by critlang analyze --examples: patients on and just past each")
        click.echo("# bound. Each expected outcome is what the protocol does now: review it.")
        for proposal in proposals:
            click.echo()
            click.echo(proposal.text(), nl=False)
        summary = f"{len(proposals)} boundary example(s), each confirmed by the compiled evaluator"
        click.echo(summary, err=True)
        return
    report = analyze.analyze(protocol)
    click.echo(analyze.render_report(report, read_source(protocol_file)))
    confirmed = "every witness" if report.confirmed else "NOT every witness"
    blocking = len(report.blocking)
    click.echo(
        f"{len(report.findings)} finding(s), {blocking} blocking; "
        f"{confirmed} confirmed by the compiled evaluator",
        err=True,
    )
    if not report.confirmed:
        sys.exit(2)
    sys.exit(1 if blocking and not warn_only else 0)


# At most this many patients are listed one by one on the HTML page of `match`;
# the ranking always counts them all.
MATCH_PAGE_PATIENTS = 1000


@main.command("match")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "html"]),
    default="text",
    show_default=True,
)
@click.option("-o", "--output", type=click.File("w", encoding="utf-8"), default="-")
def match_command(paths: tuple[Path, ...], output_format: str, output: TextIO) -> None:
    """Screen RECORDS against several PROTOCOLS at once: critlang match P1.crit P2.crit RECORDS.

    For each patient, each trial's status and the data still to collect; then
    the data elements ranked by how many undetermined patients each would
    settle, per trial and overall. Exits 2 when any record was in error.
    """
    from critlang import match

    *protocol_files, records_file = paths
    if not protocol_files:
        raise click.UsageError("give one or more protocol files, then the records file")
    if str(records_file) == "-":
        # Each trial reads the records with its own data dictionary: a file, read once each.
        raise click.UsageError("match reads the records once per protocol: give a file, not -")
    protocols = [load_protocol(path) for path in protocol_files]
    names = [p.name for p in protocols]
    if len(set(names)) != len(names):
        raise click.UsageError(f"two protocols have the same name: {', '.join(names)}")
    streams = [_read(records_file, p, None) for p in protocols]
    tally = match.Tally(protocols)
    listed: list[match.PatientMatch] = []
    for patient in match.match_streams(protocols, streams):
        tally.add(patient)
        if output_format == "text":
            click.echo("\n".join(match.text_lines(patient)), file=output)
        elif output_format == "json" or len(listed) < MATCH_PAGE_PATIENTS:
            listed.append(patient)
    population = tally.population()
    if output_format == "text":
        click.echo("\n".join(match.population_lines(population)), file=output)
    elif output_format == "json":
        document = {
            "population": population.to_dict(),
            "patients": [patient.to_dict() for patient in listed],
        }
        json.dump(document, output, indent=2)
        output.write("\n")
    else:
        output.write(match.render_html(population, listed))
    errors = sum(t.statuses.get(Outcome.ERROR.value, 0) for t in population.trials)
    click.echo(
        f"{population.patients} patient(s) matched against {len(protocols)} trial(s)"
        + (f"; {errors} record(s) in error" if errors else ""),
        err=True,
    )
    sys.exit(2 if errors else 0)


# ---- standards: critlang export ---------------------------------------------------


@main.command("export")
@click.argument(
    "protocol_file", metavar="PROTOCOL", type=click.Path(path_type=Path, dir_okay=False)
)
@click.option(
    "--to",
    "target",
    type=click.Choice(["cql", "elm", "fhir", "usdm"]),
    required=True,
    help="cql: CQL library; elm: ELM JSON; fhir: FHIR R4 Bundle; usdm: USDM criteria.",
)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write to this file."
)
@click.option(
    "--base-url",
    default="http://example.org/fhir",
    show_default=True,
    help="fhir: the base of the resources' canonical URLs.",
)
@terminology_option
def export_command(
    protocol_file: Path,
    target: str,
    output: Path | None,
    base_url: str,
    terminology: Terminology | None,
) -> None:
    """Export PROTOCOL to a standard (see docs/export.md); exit 1 if it has errors."""
    from critlang.export import ExportError, export

    protocol = load_protocol(protocol_file, terminology)
    try:
        text = export(protocol.checked, target, base_url)
    except ExportError as error:
        raise click.ClickException(str(error)) from None
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        raise click.ClickException(f"{output}: cannot write the file ({error})") from None


@main.command("diff")
@click.argument("old_file", metavar="OLD", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("new_file", metavar="NEW", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--population",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Screen these records with both versions on DuckDB and count who changes status.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "html"]),
    default="text",
    show_default=True,
)
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False))
def diff_command(
    old_file: Path,
    new_file: Path,
    population: Path | None,
    output_format: str,
    output: Path | None,
) -> None:
    """What changed between two versions of a protocol: criteria added, removed and
    changed, in words, each change with a patient it makes a difference for, and a
    patient whose status differs (from z3, confirmed by both compiled evaluators).
    With --population, how many patients of DATA change status, in each direction,
    and who. Exits 0 when no patient is judged differently, 1 when one is, 2 if a
    witness is not confirmed or the versions cannot be compared."""
    optional("critlang.analyze", "analyze")
    from critlang.analyze.diff import diff, render_diff, render_diff_html

    old, new = load_protocol(old_file), load_protocol(new_file)
    result = diff(old, new)
    shift = None
    if population is not None:
        sql = optional("critlang.sql", "sql")
        from critlang.shift import population_shift

        try:
            shift = population_shift(old, new, population)
        except (sql.SchemaError, sql.SqlError, ValueError) as error:
            said = str(error)  # most messages name the file already
            raise click.ClickException(
                said if str(population) in said else f"{population}: {said}"
            ) from None
        except OSError as error:
            raise click.ClickException(
                f"{population}: cannot screen ({error.strerror or error})"
            ) from None
    if output_format == "html":
        text = render_diff_html(result, str(old_file), str(new_file), shift)
    else:
        lines = [render_diff(result, str(old_file), str(new_file))]
        if shift is not None:
            from critlang.shift import shift_lines

            lines += shift_lines(shift)
        text = "\n".join(lines) + "\n"
    inputs = (old_file, new_file) if population is None else (old_file, new_file, population)
    with _safe_output(output, inputs) as out:
        out.write(text)
    if result.problems or not result.confirmed:
        sys.exit(2)
    sys.exit(1 if result.differs or (shift is not None and shift.moved) else 0)
