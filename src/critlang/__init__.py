"""critlang: clinical-trial eligibility criteria as code.

The public API is small:

    protocol = critlang.load("protocols/ctd_ild.crit")
    result = protocol.evaluate({"age": 45, "sex": "female", ...})
    result.status, result.criteria, result.missing, result.to_dict()

`load` and `compile_source` raise `CritError` (with `.diagnostics`) when the
protocol has errors; `Protocol.evaluate` raises `RecordError` for a record
that does not fit the data dictionary, while `Protocol.evaluate_many` reports
such a record as a result with status "error" and goes on.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from critlang.diagnostics import CritError, Diagnostic
from critlang.evaluate import CriterionResult, Part, Protocol, Result
from critlang.pipeline import compile_source, load
from critlang.records import RecordError

__all__ = [
    "CritError",
    "CriterionResult",
    "Diagnostic",
    "Part",
    "Protocol",
    "RecordError",
    "Result",
    "__version__",
    "compile_source",
    "load",
]

try:
    __version__ = version("critlang")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
