"""Protocol analysis with z3: who can be eligible, which criteria ever decide, and
where alternatives overlap or leave gaps.

One file per layer:

- `questions`: the questions asked and the findings (diagnostics with witnesses);
- `witness`: solving, and witness patients confirmed by the Python engine;
- `bands`: comparisons of one quantity with constant bounds across alternatives;
- `words`: the findings in words;
- `diff`: `critlang diff`, the same questions asked of two versions of a protocol.

Every formula comes from the z3 engine (`critlang.engines.z3`), which
encodes the lowered program (the core IR) and nothing else, so the analysis
and the evaluator share one semantics. The questions are asked over records
in which every data element has a value, within its plausible range.
"""

from __future__ import annotations

from critlang.analyze.questions import (
    BLOCKING,
    Finding,
    Proposal,
    Report,
    analyze,
    boundary_examples,
)
from critlang.analyze.witness import Claim, Witness
from critlang.analyze.words import SCOPE, render_report

__all__ = [
    "BLOCKING",
    "SCOPE",
    "Claim",
    "Finding",
    "Proposal",
    "Report",
    "Witness",
    "analyze",
    "boundary_examples",
    "render_report",
]
