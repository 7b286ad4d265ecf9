"""The shape STYLE.md promises, checked: engines are peers, screening loads no templates."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ENGINES = Path(__file__).resolve().parent.parent / "src" / "critlang" / "engines"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_no_engine_imports_another_or_the_syntax_tree() -> None:
    engines = sorted(p for p in ENGINES.glob("*.py") if p.name != "__init__.py")
    assert engines
    for path in engines:
        modules = imported_modules(path)
        others = {m for m in modules if m.startswith("critlang.engines")}
        assert others == set(), (path.name, others)
        assert "critlang.syntax" not in modules, path


def test_screening_a_record_loads_no_templates() -> None:
    script = (
        "import sys, critlang\n"
        "p = critlang.load('protocols/ctd_ild.crit')\n"
        "p.evaluate({'age': 45, 'sex': 'female'}).to_dict()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jinja2', 'markupsafe')"
        " or m == 'critlang.render'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
