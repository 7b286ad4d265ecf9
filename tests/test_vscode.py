"""The VS Code extension in editors/vscode: its grammar under vscode-textmate and its
packaging into a .vsix with @vscode/vsce. Both need npm, which installs the
extension's own locked dependencies on first use (as `make vscode` does)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from critlang.parser import parse

ROOT = Path(__file__).resolve().parent.parent
EXTENSION = ROOT / "editors" / "vscode"
NPM = shutil.which("npm")

needs_npm = pytest.mark.skipif(
    NPM is None, reason="npm is not installed: the VS Code extension is built and tested with npm"
)


def npm(*args: str) -> subprocess.CompletedProcess[str]:
    assert NPM is not None
    result = subprocess.run(
        [NPM, *args], cwd=EXTENSION, capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def installed() -> None:
    """node_modules as package-lock.json pins it; reinstalled when the lock changes."""
    marker = EXTENSION / "node_modules" / ".package-lock.json"
    lock = EXTENSION / "package-lock.json"
    if not marker.exists() or marker.stat().st_mtime < lock.stat().st_mtime:
        npm("ci", "--no-audit", "--no-fund")


@needs_npm
def test_grammar_and_manifest_pass_their_node_tests(installed: None) -> None:
    result = npm("test")
    assert "# fail 0" in result.stdout
    assert "# pass 6" in result.stdout


@needs_npm
def test_the_extension_packages_into_a_vsix(installed: None, tmp_path: Path) -> None:
    vsix = tmp_path / "critlang.vsix"
    npm("run", "package", "--", "--out", str(vsix))
    with zipfile.ZipFile(vsix) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("extension/package.json"))
        grammar = archive.read("extension/syntaxes/critlang.tmLanguage.json")
    assert {
        "extension/extension.js",
        "extension/language-configuration.json",
        "extension/snippets/critlang.json",
        "extension/node_modules/vscode-languageclient/node.js",
    } <= names
    assert not any(name.startswith("extension/test/") for name in names)
    assert not any("/node_modules/@vscode/vsce/" in name for name in names)  # tools stay out
    (language,) = manifest["contributes"]["languages"]
    assert (language["id"], language["extensions"]) == ("critlang", [".crit"])
    assert manifest["contributes"]["grammars"][0]["scopeName"] == "source.crit"
    assert grammar == (EXTENSION / "syntaxes" / "critlang.tmLanguage.json").read_bytes()
    settings = manifest["contributes"]["configuration"]["properties"]
    assert settings["critlang.server.args"]["default"] == ["lsp"]


def expanded(body: list[str]) -> str:
    """A snippet as VS Code inserts it when the author accepts every default."""
    text = "\n".join(body)
    text = re.sub(r"\$\{\d+\|([^,|]+)[^}]*\}", r"\1", text)  # a choice: the first
    text = re.sub(r"\$\{\d+:([^}]*)\}", r"\1", text)  # a placeholder: its default
    return re.sub(r"\$\d+", "", text)


def test_every_snippet_parses_as_written() -> None:
    snippets = json.loads((EXTENSION / "snippets" / "critlang.json").read_text(encoding="utf-8"))
    for name, snippet in snippets.items():
        text = expanded(snippet["body"])
        assert "$" not in text, name
        parse(f"protocol p\n{text}\n", f"{name}.crit")
