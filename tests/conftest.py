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
