"""What integrators rely on: the version, the type marker, the licence and the exit statuses."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner

import critlang
from critlang.cli import main

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
CTD_ILD = str(ROOT / "protocols" / "ctd_ild.crit")


def test_version_is_the_installed_distributions() -> None:
    assert critlang.__version__ == version("critlang")
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", critlang.__version__)


def test_py_typed_ships_in_the_package() -> None:
    assert (Path(critlang.__file__).parent / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["critlang"]


def test_licence_file_matches_pyproject() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["no-such-command"], 64),
        (["eval", CTD_ILD], 64),  # RECORDS missing
        (["render", CTD_ILD, "--format", "pdf"], 64),
        (["check", "--no-such-option", CTD_ILD], 64),
        (["check", "no-such-file.crit"], 66),
        (["check", CTD_ILD], 0),
    ],
)
def test_exit_statuses(args: list[str], status: int) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == status, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_records_in_error_and_usage_errors_differ(tmp_path: Path) -> None:
    records = tmp_path / "r.jsonl"
    records.write_text('{"id": "p1", "age": "old"}\n', encoding="utf-8")
    in_error = CliRunner().invoke(main, ["eval", CTD_ILD, str(records)])
    assert in_error.exit_code == 2, in_error.output
    usage = CliRunner().invoke(main, ["eval", CTD_ILD, str(records), "--format", "xml"])
    assert usage.exit_code == 64
    assert "Invalid value for '--format'" in usage.output
