"""The `critlang` command line."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from critlang.check import check_source
from critlang.diagnostics import render


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
