"""The core IR: the few operations every engine implements.

Lowering (`lower.py`) reduces the checked syntax tree to these nodes, and
decides every question of meaning on the way: names, enum values and
definitions are resolved, constants folded, unit factors inserted as exact
rationals (`Scale`), and `between`, `unless`, relative change, applicability
and the quantifiers rewritten as Kleene `And`/`Or`/`Not`/`AtLeast`,
comparisons and arithmetic. An engine is one function per class below and
nothing else: it never sees the syntax tree.

Values: `True`/`False`/`None` (unknown) for conditions; exact rationals for
numbers, already in the unit the comparison needs; `str` for an enum value,
`frozenset[str]` for a set, `datetime.date` for a date.

Every node has a dense integer `id` (0, 1, 2, ...) that engines use to index
their traces; nodes compare by identity. A node may be shared (a data
element, a definition, the baseline of a relative change), so engines treat
the IR as a DAG.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from fractions import Fraction

import attrs

from critlang.check import Type
from critlang.vocab import Kind

Value = bool | Fraction | datetime.date | str | frozenset[str]


@attrs.frozen(kw_only=True, eq=False)
class Node:
    id: int
    type: Type


@attrs.frozen(kw_only=True, eq=False)
class Const(Node):
    """A value known when the protocol is compiled."""

    value: Value


@attrs.frozen(kw_only=True, eq=False)
class Element(Node):
    """A data element's value in the record, in its declared unit; None when absent."""

    name: str


@attrs.frozen(kw_only=True, eq=False)
class Definition(Node):
    """The value of a named definition, computed once per record (see `Program.definitions`)."""

    name: str


@attrs.frozen(kw_only=True, eq=False)
class Not(Node):
    operand: Node


@attrs.frozen(kw_only=True, eq=False)
class And(Node):
    """Kleene conjunction of any number of conditions; of none, true."""

    operands: tuple[Node, ...]


@attrs.frozen(kw_only=True, eq=False)
class Or(Node):
    """Kleene disjunction of any number of conditions; of none, false."""

    operands: tuple[Node, ...]


@attrs.frozen(kw_only=True, eq=False)
class AtLeast(Node):
    """True when `count` operands are true, false when fewer than `count` can be."""

    count: int
    operands: tuple[Node, ...]


@attrs.frozen(kw_only=True, eq=False)
class Compare(Node):
    """`left op right`; numbers are in the same unit, enums and booleans use = and !=."""

    op: str  # < <= > >= = !=
    left: Node
    right: Node


@attrs.frozen(kw_only=True, eq=False)
class Arith(Node):
    """Exact `left op right`; unknown when either side is, or when dividing by zero."""

    op: str  # + - * /
    left: Node
    right: Node


@attrs.frozen(kw_only=True, eq=False)
class Scale(Node):
    """`operand` times an exact rational: a unit conversion decided at compile time."""

    operand: Node
    factor: Fraction


@attrs.frozen(kw_only=True, eq=False)
class Member(Node):
    """An enum value is one of `values`."""

    operand: Node
    values: frozenset[str]


@attrs.frozen(kw_only=True, eq=False)
class Includes(Node):
    """A set holds any (`every=False`) or all (`every=True`) of `values`."""

    operand: Node
    every: bool
    values: frozenset[str]


def children(node: Node) -> tuple[Node, ...]:
    """The direct operands of a node."""
    match node:
        case Not(operand=a) | Scale(operand=a) | Member(operand=a) | Includes(operand=a):
            return (a,)
        case And(operands=ops) | Or(operands=ops) | AtLeast(operands=ops):
            return ops
        case Compare(left=a, right=b) | Arith(left=a, right=b):
            return (a, b)
    return ()


def walk(root: Node, definitions: dict[str, Node] | None = None) -> list[Node]:
    """Every node under `root` once, left to right as the source reads, without recursion.

    With `definitions`, a `Definition` is followed into its body.
    """
    found: list[Node] = []
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if node.id in seen:
            continue
        seen.add(node.id)
        found.append(node)
        if definitions is not None and isinstance(node, Definition) and node.name in definitions:
            stack.append(definitions[node.name])
        stack.extend(reversed(children(node)))
    return found


# ---- the protocol as a whole ---------------------------------------------------------


@attrs.frozen(kw_only=True)
class Part:
    """A named sub-criterion (I2 a) and the node holding its contribution to its list."""

    name: str
    title: str | None
    applies: Node | None
    condition: Node
    value: Node


@attrs.frozen(kw_only=True)
class Criterion:
    """A criterion: `value` is after applicability (not applicable counts as `kind.neutral`)."""

    id: str
    kind: Kind
    title: str
    applies: Node | None
    condition: Node
    value: Node
    parts: tuple[Part, ...]


@attrs.frozen(kw_only=True)
class Program:
    """A lowered protocol: what every engine compiles.

    `definitions` are in dependency order (each only uses those before it);
    `elements` are the data elements the criteria read, with their types.
    The status rule is fixed: ineligible when an inclusion is false or an
    exclusion true, eligible when every inclusion is true and every exclusion
    false, undetermined otherwise.
    """

    name: str
    elements: tuple[tuple[str, Type], ...]
    definitions: tuple[tuple[str, Node], ...]
    criteria: tuple[Criterion, ...]
    size: int  # ids run from 0 to size - 1

    def nodes(self) -> Iterator[Node]:
        """Every node once, operands before the nodes that use them."""
        seen: set[int] = set()
        roots: list[Node] = [node for _, node in self.definitions]
        for criterion in self.criteria:
            roots.append(criterion.value)
            roots.extend(part.value for part in criterion.parts)
        for root in roots:
            yield from _post_order(root, seen)


def _post_order(root: Node, seen: set[int]) -> Iterator[Node]:
    # Iterative, so that a chain of hundreds of terms needs no deep Python stack.
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if node.id in seen:
            continue
        if expanded:
            seen.add(node.id)
            yield node
            continue
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(children(node)))
