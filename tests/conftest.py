"""Hypothesis in CI: the same examples on every run, so a red run is about the change.

Local runs stay random and keep exploring; a failure found there prints the
blob that reproduces it.
"""

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "explore")


# Tests that need an engine or a browser, by file; `make check` leaves them out
# (markers registered in pyproject.toml). A test that takes the `spark` fixture
# needs Spark whatever its file.
ENGINE_FILES = {
    "test_site.py": "browser",
    "test_form.py": "browser",
    "test_worksheet_print.py": "browser",
    "test_sql.py": "sql",
    "test_sql_differential.py": "sql",
    "test_analyze.py": "z3",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = ENGINE_FILES.get(item.path.name)
        if marker is not None:
            item.add_marker(marker)
        if "spark" in getattr(item, "fixturenames", ()):
            item.add_marker("spark")
