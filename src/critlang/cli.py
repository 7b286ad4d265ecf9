"""The `critlang` command line."""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from critlang.check import check_source
from critlang.diagnostics import render
from critlang.evaluate import ERROR, Protocol
from critlang.pipeline import build
from critlang.records import Row, read_records
from critlang.report import WRITERS
from critlang.vocab import Outcome

STATUSES = (Outcome.ELIGIBLE, Outcome.INELIGIBLE, Outcome.UNDETERMINED)


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
    return build(checked)


@main.command("eval")
@click.argument(
    "protocol_file", metavar="PROTOCOL", type=click.Path(path_type=Path, dir_okay=False)
)
@click.argument("records_file", metavar="RECORDS", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--format", "output_format", type=click.Choice(FORMATS), default="text", show_default=True
)
@click.option(
    "-o",
    "--output",
    type=click.File("w", encoding="utf-8"),
    default="-",
    help="Write here instead of stdout.",
)
def eval_command(
    protocol_file: Path, records_file: Path, output_format: str, output: TextIO
) -> None:
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


@main.command("render")
@click.argument("protocol", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "txt", "html", "plain"]),
    default="md",
    show_default=True,
    help="md: protocol page; txt: registry text; html: screening worksheet; plain: plain language.",
)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write to this file."
)
def render_command(protocol: Path, fmt: str, output: Path | None) -> None:
    """Render a protocol as a document; exit 1 if it has errors."""
    from critlang.render import render_document

    text = read_source(protocol)
    checked, diagnostics = check_source(text, str(protocol))
    for diagnostic in diagnostics:
        click.echo(render(diagnostic, text), err=True)
    if checked is None:
        sys.exit(1)
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
        raise click.ClickException(
            f"this command needs {error.name}: pip install 'critlang[{extra}]'"
        ) from None


@main.command("sql")
@click.argument(
    "protocol_file", metavar="PROTOCOL", type=click.Path(path_type=Path, dir_okay=False)
)
@click.option(
    "--dialect",
    default="duckdb",
    show_default=True,
    help="Any SQL dialect sqlglot writes: duckdb, spark, postgres, snowflake, ...",
)
@click.option("--table", default="patients", show_default=True, help="The patient table.")
def sql_command(protocol_file: Path, dialect: str, table: str) -> None:
    """Print the SQL query that screens a table of patients against PROTOCOL.

    The table has one row per patient and a column per data element; see docs/sql.md.
    """
    sqlglot = optional("sqlglot", "sql")
    sql = optional("critlang.sql", "sql")
    if sqlglot.Dialect.get(dialect) is None:
        known = ", ".join(sorted(d.value for d in sqlglot.Dialects if d.value))
        raise click.BadParameter(f"unknown dialect '{dialect}' (one of {known})")
    protocol = load_protocol(protocol_file)
    try:
        click.echo(sql.to_sql(protocol.checked, table, dialect) + ";")
    except sql.SqlError as error:
        raise click.ClickException(str(error)) from None


@main.command("screen")
@click.argument(
    "protocol_file", metavar="PROTOCOL", type=click.Path(path_type=Path, dir_okay=False)
)
@click.argument("data_file", metavar="DATA", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Write per-patient results here (.parquet or .csv; with Spark, a directory).",
)
@click.option(
    "--report",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the attrition report here as HTML.",
)
def screen_command(
    protocol_file: Path, data_file: Path, engine: str, output: Path | None, report: Path | None
) -> None:
    """Screen a whole population in DATA (.csv, .parquet, .jsonl) with SQL.

    Prints the attrition table. Exits 2 when any record was in error.
    """
    sql = optional("critlang.sql", "sql")
    screen = optional("critlang.screen", "sql")
    protocol = load_protocol(protocol_file)
    try:
        attrition = screen.run(protocol.checked, data_file, engine, output)
    except (sql.SchemaError, sql.SqlError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(attrition.text())
    if report is not None:
        report.write_text(screen.render_html(attrition), encoding="utf-8")
    sys.exit(2 if attrition.errors else 0)


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
def analyze_command(protocol_file: Path, examples: bool) -> None:
    """Analyse PROTOCOL with z3: eligible patients, criteria that never decide,
    overlapping or gapped alternatives, each with a witness patient that the
    compiled evaluator confirms. Exits 2 if a witness is not confirmed."""
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
    click.echo(
        f"{len(report.findings)} finding(s); {confirmed} confirmed by the compiled evaluator",
        err=True,
    )
    sys.exit(0 if report.confirmed else 2)


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
def export_command(protocol_file: Path, target: str, output: Path | None, base_url: str) -> None:
    """Export PROTOCOL to a standard (see docs/export.md); exit 1 if it has errors."""
    from critlang.export import ExportError, export

    protocol = load_protocol(protocol_file)
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
