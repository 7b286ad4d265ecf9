"""Hypothesis in CI: the same examples on every run, so a red run is about the change.

Local runs stay random and keep exploring; a failure found there prints the
blob that reproduces it. `postgres_url` starts a real PostgreSQL server for the
session, once, for the tests that ask for it (tests/pg.py).
"""

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests import pg

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "explore")


# Tests that need an engine or a browser, by file; `make check` leaves them out
# (markers registered in pyproject.toml). A test that takes the `spark` fixture
# needs Spark whatever its file.
ENGINE_FILES = {
    "test_site.py": "browser",
    "test_form.py": "browser",
    "test_javascript_engine.py": "node",
    "test_worksheet_print.py": "browser",
    "test_sql.py": "sql",
    "test_sql_differential.py": "sql",
    "test_omop.py": "sql",
    "test_analyze.py": "z3",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = ENGINE_FILES.get(item.path.name)
        if marker is not None:
            item.add_marker(marker)
        fixtures = getattr(item, "fixturenames", ())
        if "spark" in fixtures:
            item.add_marker("spark")
        if "postgres_url" in fixtures:
            item.add_marker("postgres")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server for the session (Debian's `postgresql` package)."""
    bin_dir = pg.binaries()
    if bin_dir is None:
        message = "PostgreSQL is not installed: apt-get install postgresql (make test does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = pg.Server(bin_dir)
    try:
        yield server.start()
    finally:
        server.stop()
