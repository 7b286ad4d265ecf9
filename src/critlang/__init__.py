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

import importlib
from typing import TYPE_CHECKING, Any

from critlang.diagnostics import CritError, Diagnostic

if TYPE_CHECKING:
    from critlang.evaluate import CriterionResult, Part, Protocol, Result
    from critlang.pipeline import compile_source, load
    from critlang.records import RecordError

    __version__: str

# Imported on first use, so that `import critlang.units` or `critlang check` does
# not load the evaluator, the documents and Jinja.
_LAZY = {
    "CriterionResult": "critlang.evaluate",
    "Part": "critlang.evaluate",
    "Protocol": "critlang.evaluate",
    "Result": "critlang.evaluate",
    "RecordError": "critlang.records",
    "compile_source": "critlang.pipeline",
    "load": "critlang.pipeline",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return _version()
    if name not in _LAZY:
        raise AttributeError(f"module 'critlang' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("critlang")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


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
