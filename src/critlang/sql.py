"""The SQL engine's public names, kept here for existing imports: see `critlang.engines.sql`."""

from critlang.engines.sql import *  # noqa: F403
from critlang.engines.sql import __all__  # noqa: F401
