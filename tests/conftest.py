"""Hypothesis in CI: the same examples on every run, so a red run is about the change.

Local runs stay random and keep exploring; a failure found there prints the
blob that reproduces it.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "explore")

# The session's PostgreSQL server, for every test that asks for `postgres_url`.
pytest_plugins = ["tests.postgres"]
