"""The analyses' findings in words: lists of names, quantities, bands and the report."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING

from critlang import syntax as s
from critlang.check import Checked
from critlang.decimals import to_decimal
from critlang.diagnostics import render
from critlang.explain import format_quantity
from critlang.fmt import NO_SPAN, expression_text, literal

if TYPE_CHECKING:
    from critlang.analyze.bands import Interval
    from critlang.analyze.questions import Report

SCOPE = (
    "critlang analyze: z3 over records in which every data element is known; "
    "every witness is run through the compiled evaluator"
)


def both(names: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def either(names: Sequence[str]) -> str:
    """'a', 'a or b', 'a, b or c'."""
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " or " + names[-1]


def failing(criteria: Sequence[s.Criterion]) -> str:
    """'I5 is not met', 'I1 is not met or E2 fires'."""
    return either(
        [f"{c.id.text} {'is not met' if c.kind == 'inclusion' else 'fires'}" for c in criteria]
    )


def subject(checked: Checked, node: s.Expr) -> str:
    """What a banded quantity is called: 'label (name)', its name, or its expression."""
    if isinstance(node, s.Ref):
        declared = checked.elements.get(node.name) or checked.definitions.get(node.name)
        if declared is not None and declared.label:
            return f"{declared.label} ({node.name})"
        return node.name
    return expression_text(node)


def quantity(value: Fraction, unit: str) -> str:
    """A value for reading: '10%', '24 months'."""
    return format_quantity(to_decimal(value), unit)


def quantity_literal(value: Fraction, unit: str) -> str:
    """A value as a critlang literal, exactly: 30.4375 'd', 10%."""
    return literal(s.QuantityLit(to_decimal(value).normalize(), unit, NO_SPAN))


def interval(band: Interval, unit: str) -> str:
    """'5% to 10%', 'more than 24 months', 'exactly 10%'."""
    low, high = band.low, band.high
    if low is not None and high is not None:
        if low == high:
            return f"exactly {quantity(low, unit)}"
        if band.low_closed and band.high_closed:
            return f"{quantity(low, unit)} to {quantity(high, unit)}"
        left = "at least" if band.low_closed else "more than"
        right = "at most" if band.high_closed else "less than"
        return f"{left} {quantity(low, unit)} and {right} {quantity(high, unit)}"
    if low is not None:
        return f"{'at least' if band.low_closed else 'more than'} {quantity(low, unit)}"
    if high is not None:
        return f"{'at most' if band.high_closed else 'less than'} {quantity(high, unit)}"
    return "any value"


def render_report(report: Report, source: str) -> str:
    """The findings as the checker renders diagnostics, each followed by its witness."""
    lines = [SCOPE]
    if report.eligible is not None:
        lines += [
            f"an eligible patient exists: {report.eligible.json()}",
            f"  {report.eligible.describe()}",
        ]
    for finding in report.findings:
        lines.append(render(finding.diagnostic, source))
        if finding.witness is not None:
            lines += [f"  witness: {finding.witness.json()}", f"  {finding.witness.describe()}"]
    lines += [f"z3 could not settle {question}" for question in report.inconclusive]
    return "\n".join(lines)
