"""Bands: comparisons of one quantity with constant bounds, across the alternatives of a list.

A band is found on the syntax tree (so it can be named and pointed at) and
read from the IR: the bound is the lowered constant, already exact and in
the unit of the quantity it bounds, and the quantity is the IR node z3
encodes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from fractions import Fraction

import attrs

from critlang import ir
from critlang import syntax as s
from critlang.decimals import to_decimal
from critlang.fmt import without_spans
from critlang.lower import Lowered


@attrs.frozen
class Interval:
    """A set of values of one quantity; None bounds are unbounded."""

    low: Fraction | None
    low_closed: bool
    high: Fraction | None
    high_closed: bool

    def intersect(self, other: Interval) -> Interval | None:
        low, low_closed = _tighter((self.low, self.low_closed), (other.low, other.low_closed), max)
        high, high_closed = _tighter(
            (self.high, self.high_closed), (other.high, other.high_closed), min
        )
        candidate = Interval(low, low_closed, high, high_closed)
        return None if candidate.empty else candidate

    @property
    def empty(self) -> bool:
        if self.low is None or self.high is None:
            return False
        return self.low > self.high or (
            self.low == self.high and not (self.low_closed and self.high_closed)
        )

    def has_whole(self) -> bool:
        """Is there a whole number in the interval (an `integer` element can take it)?"""
        if self.low is None or self.high is None:
            return True
        first = math.floor(self.low) + 1 if not self.low_closed else math.ceil(self.low)
        last = math.ceil(self.high) - 1 if not self.high_closed else math.floor(self.high)
        return first <= last

    def points(self, whole: bool = False) -> list[tuple[Fraction, Fraction]]:
        """(point, bound): each bound, and one step past it (the step of its last digit).

        With `whole` (an `integer` element), the points are the whole numbers on
        each side of a bound: a count is never 2.5.
        """
        if whole:
            return self.whole_points()
        points: list[tuple[Fraction, Fraction]] = []
        for bound, closed, upward in (
            (self.low, self.low_closed, False),
            (self.high, self.high_closed, True),
        ):
            if bound is None:
                continue
            exponent = to_decimal(bound).normalize().as_tuple().exponent
            step = Fraction(10) ** min(0, int(exponent))
            # One step out of the band past a closed bound, one step into it past an open one.
            past = bound + step if upward == closed else bound - step
            points += [(bound, bound), (past, bound)]
        return points

    def whole_points(self) -> list[tuple[Fraction, Fraction]]:
        points: list[tuple[Fraction, Fraction]] = []
        for bound, closed, upward in (
            (self.low, self.low_closed, False),
            (self.high, self.high_closed, True),
        ):
            if bound is None:
                continue
            # The last whole number in the band and the first one out of it.
            if upward:
                inside = Fraction(math.floor(bound) if closed else math.ceil(bound) - 1)
                points += [(inside, bound), (inside + 1, bound)]
            else:
                inside = Fraction(math.ceil(bound) if closed else math.floor(bound) + 1)
                points += [(inside, bound), (inside - 1, bound)]
        return points


def _tighter(
    a: tuple[Fraction | None, bool], b: tuple[Fraction | None, bool], pick: object
) -> tuple[Fraction | None, bool]:
    if a[0] is None:
        return b
    if b[0] is None:
        return a
    if a[0] == b[0]:
        return a[0], a[1] and b[1]
    chosen = max(a[0], b[0]) if pick is max else min(a[0], b[0])
    return a if chosen == a[0] else b


def holes(intervals: list[Interval]) -> list[Interval]:
    """The values between bands that no band covers.

    A hole between a band open downwards and one open upwards (`x < 20 or x > 80`)
    is how "outside a range" is written, not a gap, and is not reported.
    """
    ordered = sorted(intervals, key=lambda i: (i.low is not None, i.low or 0, not i.low_closed))
    found: list[Interval] = []
    below = ordered[0]  # the band reaching highest so far
    for interval in ordered[1:]:
        if below.high is None:
            break
        low = interval.low
        apart = low is not None and (
            low > below.high
            or (low == below.high and not (below.high_closed or interval.low_closed))
        )
        outside_a_range = below.low is None and interval.high is None
        if apart and low is not None and not outside_a_range:
            found.append(Interval(below.high, not below.high_closed, low, not interval.low_closed))
        if (
            interval.high is None
            or interval.high > below.high
            or (interval.high == below.high and interval.high_closed)
        ):
            below = interval
    return found


@attrs.frozen(eq=False)
class Band:
    """`subject` (syntax, for words) within `interval`; `quantity` is its IR node."""

    subject: s.Expr
    quantity: ir.Node
    interval: Interval
    node: s.Expr
    alternative: int
    label: str  # the alternative's name (a sub-criterion's), or empty

    @property
    def unit(self) -> str:
        return self.quantity.type.unit

    @property
    def key(self) -> object:
        return (without_spans(self.subject), self.unit)


def seams(bands: list[Band]) -> list[tuple[Fraction, Band]]:
    """Where one band ends and the next begins, and the band the boundary belongs to."""
    found: list[tuple[Fraction, Band]] = []
    for a, b in itertools.permutations(bands, 2):
        if a.interval.high is not None and a.interval.high == b.interval.low:
            found.append((a.interval.high, a if a.interval.high_closed else b))
    return found


@attrs.frozen
class Group:
    """A disjunction (an `or` chain or an `any of`) and the bands of its alternatives."""

    node: s.Expr
    bands: tuple[Band, ...]

    def by_subject(self) -> dict[object, list[Band]]:
        found: dict[object, list[Band]] = {}
        for band in self.bands:
            found.setdefault(band.key, []).append(band)
        return found


_MIRRORED = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
_INTERVALS = {
    ">": lambda v: Interval(v, False, None, False),
    ">=": lambda v: Interval(v, True, None, False),
    "<": lambda v: Interval(None, False, v, False),
    "<=": lambda v: Interval(None, False, v, True),
}


class Bands:
    """Finds the bands of a lowered protocol's syntax nodes."""

    def __init__(self, lowered: Lowered) -> None:
        self.origin = lowered.origin

    def band(self, node: object, position: int = 0, label: str = "") -> Band | None:
        """The band a comparison or `between` with constant bounds sets, if it is one."""
        lowered = self.origin.get(id(node))
        match node, lowered:
            case s.Compare(op=op, left=left, right=right), ir.Compare() if op in _INTERVALS:
                bound, quantity = _bound(lowered.right), lowered.left
                subject, shown = left, op
                if bound is None:
                    bound, quantity = _bound(lowered.left), lowered.right
                    subject, shown = right, _MIRRORED[op]
                if bound is None or isinstance(quantity, ir.Const):
                    return None
                return Band(subject, quantity, _INTERVALS[shown](bound), node, position, label)
            case s.Between(subject=subject, exclusive=exclusive), ir.And(operands=(above, below)):
                assert isinstance(above, ir.Compare) and isinstance(below, ir.Compare)
                low, high = _bound(above.left), _bound(below.right)
                if low is None or high is None or isinstance(above.right, ir.Const):
                    return None
                interval = Interval(low, not exclusive, high, not exclusive)
                return Band(subject, above.right, interval, node, position, label)
        return None

    def bands(self, alternative: object, position: int, label: str = "") -> list[Band]:
        """The bands an alternative sets, its conjuncts on one quantity intersected."""
        found: dict[object, Band] = {}
        for conjunct in _conjuncts(alternative):
            band = self.band(conjunct, position, label)
            if band is None:
                continue
            if band.key in found:
                common = found[band.key].interval.intersect(band.interval)
                if common is None:
                    continue
                band = attrs.evolve(found[band.key], interval=common)
            found[band.key] = band
        return list(found.values())

    def groups(self, criterion: s.Criterion) -> Iterator[tuple[Group, str]]:
        """Each disjunction in a criterion's condition with bands, and what it belongs to."""

        def visit(node: object, owner: str) -> Iterator[tuple[Group, str]]:
            alternatives = _alternatives(node)
            if alternatives is not None:
                found = tuple(
                    band
                    for position, (label, alternative) in enumerate(alternatives)
                    for band in self.bands(alternative, position, label)
                )
                if found:
                    assert isinstance(node, s.Expr)
                    yield Group(node, found), owner
            # An `or` chain is one disjunction: go on from its alternatives, not its halves.
            inside = (
                [a for _, a in alternatives or ()] if isinstance(node, s.Or) else s.children(node)
            )
            for child in inside:
                inner = f"{owner} {child.name.text}" if isinstance(child, s.SubCriterion) else owner
                yield from visit(child, inner)

        yield from visit(criterion.condition, criterion.id.text)


def _bound(node: ir.Node) -> Fraction | None:
    if isinstance(node, ir.Const) and isinstance(node.value, Fraction):
        return node.value
    return None


def _alternatives(node: object) -> list[tuple[str, object]] | None:
    """The alternatives of a disjunction, with the names of those that are sub-criteria."""
    if isinstance(node, s.Quantified) and node.quantifier == "any":
        return [
            (i.name.text, i.condition) if isinstance(i, s.SubCriterion) else ("", i)
            for i in node.items
        ]
    if isinstance(node, s.Or):
        out: list[tuple[str, object]] = []
        current: object = node
        while isinstance(current, s.Or):
            out.append(("", current.right))
            current = current.left
        out.append(("", current))
        return out[::-1]
    return None


def _conjuncts(node: object) -> list[object]:
    if isinstance(node, s.And):
        return [*_conjuncts(node.left), *_conjuncts(node.right)]
    if isinstance(node, s.Quantified) and node.quantifier == "all":
        return [
            c
            for i in node.items
            for c in _conjuncts(i.condition if isinstance(i, s.SubCriterion) else i)
        ]
    return [node]
