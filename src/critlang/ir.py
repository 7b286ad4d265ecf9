"""The core IR: the few operations every engine implements.

Lowering (`lower.py`) reduces the checked syntax tree to these nodes, and
decides every question of meaning on the way: names, enum values and
definitions are resolved, constants folded, unit factors inserted as exact
rationals (`Scale`), and `between`, `unless`, relative change, applicability
and the quantifiers rewritten as Kleene `And`/`Or`/`Not`/`AtLeast`,
comparisons and arithmetic. An engine is one function per class below and
nothing else: it never sees the syntax tree.

Values: `True`/`False`/`None` (unknown) for conditions; exact rationals for
numbers, already in the unit the comparison needs; `str` for an enum value
and for a coded value (`system:code`), `frozenset[str]` for a set,
`datetime.date` for a date; a history is a sequence of entries (see
`Aggregate`, `Entry`), read only through `Aggregate`.

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
from critlang.vocab import CalendarUnit, CodeSystem, Kind

# None only in a `Const`: the unknown a partial date's comparison may be (see lower.py).
Value = bool | Fraction | datetime.date | str | frozenset[str] | None


@attrs.frozen(kw_only=True, eq=False)
class Node:
    id: int
    type: Type


@attrs.frozen(kw_only=True, eq=False)
class Const(Node):
    """A value known when the protocol is compiled.

    Lowering also makes `Const(value=None)`, unknown, in the Kleene bounds of
    incomplete histories (`Or(exists, unknown)`): engines treat it as any
    unknown value.
    """

    value: Value


@attrs.frozen(kw_only=True, eq=False)
class Element(Node):
    """A data element's value in the record, in its declared unit; None when absent.

    A date may be partial in a record (`2019`, `2019-05`): lowering then reads
    it as two elements, the first day it may be (`bound="earliest"`) and the
    last (`bound="latest"`), and decides comparisons three-valuedly from the
    two. Engines read an element's value under `key`.
    """

    name: str
    bound: str | None = None  # None, "earliest" or "latest" (dates only)

    @property
    def key(self) -> str:
        """Where the value is in a record: the name, or 'name latest' for a date's last day."""
        return f"{self.name} latest" if self.bound == "latest" else self.name


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
    """True when `count` operands are true, false when fewer than `count` can be.

    With `weights` (a score: one positive weight per operand) it is the sum of
    the weights that counts: true when the weights of the true operands reach
    `count`, false when those of the true and unknown ones together do not.
    """

    count: int | Fraction  # a Fraction only for a score (see weights)
    operands: tuple[Node, ...]
    weights: tuple[Fraction, ...] | None = None


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


@attrs.frozen(kw_only=True, eq=False)
class DateShift(Node):
    """A date moved by a whole number of calendar units, as CQL adds durations to dates.

    Years and months keep the day of the month, or take the month's last day
    when it has fewer (2024-01-31 + 1 month = 2024-02-29); a week is 7 days.
    `amount` is negative for a move back in time. Unknown when the date is.
    """

    operand: Node
    amount: int
    unit: CalendarUnit


@attrs.frozen(kw_only=True, eq=False)
class DateDiff(Node):
    """Whole calendar units from `start` to `end`, as CQL's `years between` (an integer).

    Negative when `end` is before `start`; a unit counts only when complete
    (from 2000-03-15 to 2001-03-14 is 0 years, to 2001-03-15 is 1). Unknown
    when either date is.
    """

    unit: CalendarUnit
    start: Node
    end: Node


@attrs.frozen(kw_only=True, eq=False)
class Entry(Node):
    """A field of the history entry under consideration, inside an `Aggregate`'s `where` or `of`.

    Fields by entry kind (vocab.EntryKind): measurement `date`, `value`, `low`,
    `high`; code `date`, `code`; medication `start`, `end`, `code`, `dose`.
    `value` and `dose` are in the history's declared unit; `low`/`high` (the
    lab's reference range), `end` (absent while ongoing) and `dose` may be
    unknown in an entry; the others never are (intake refuses such entries).
    """

    field: str


@attrs.frozen(kw_only=True, eq=False)
class Aggregate(Node):
    """One value from a history's entries: a selector over those where `where` is true.

    `op`: `exists`, `count`, `sum`, `max`, `min`, `latest`, `earliest`.
    Semantics (Kleene), the same in every engine:
    - the history itself unknown (absent from the record): unknown;
    - `exists`: true if `where` is true for some entry, else unknown if it is
      unknown for some entry, else false (no entries: false);
    - every other op: unknown if `where` is unknown for any entry; over the
      selected entries `count` is how many (0 for none), `sum` the total of
      `of` (0 for none), `max`/`min` the largest/smallest `of`, `latest` and
      `earliest` the `of` of the entries with the latest/earliest date (a
      medication's `start`); unknown when no entry is selected, when an `of`
      value needed is unknown, or when entries on that date disagree.
    Whether the history is complete (closed world) is decided in lowering,
    not here: engines see only what the entries say.
    """

    op: str
    history: Element
    where: Node | None
    of: Node | None  # an expression over `Entry` nodes; None for exists and count


@attrs.frozen
class CodeList:
    """A named list of codes of one system; `prefixes` match every code that starts with one.

    Codes are written `system:code` with ICD-10-CM codes without their dot,
    as `vocab.CodeSystem` says: `icd10cm:J8410`; a prefix `J84.*` is `icd10cm:J84`.
    Lowering builds one for a list's codes, one for its exceptions (named
    `NAME except`), and `system:` alone for "any code of the system"; a root's
    descendants from the evaluation's terminology are among `codes`.
    """

    name: str
    system: CodeSystem
    codes: frozenset[str]
    prefixes: tuple[str, ...]

    def matches(self, code: str) -> bool:
        return code in self.codes or code.startswith(self.prefixes)


@attrs.frozen(kw_only=True, eq=False)
class InCodes(Node):
    """A coded value (`system:code`) is in a code list."""

    operand: Node
    codes: CodeList


def children(node: Node) -> tuple[Node, ...]:
    """The direct operands of a node."""
    match node:
        case (
            Not(operand=a)
            | Scale(operand=a)
            | Member(operand=a)
            | Includes(operand=a)
            | DateShift(operand=a)
            | InCodes(operand=a)
        ):
            return (a,)
        case DateDiff(start=a, end=b):
            return (a, b)
        case Aggregate(history=h, where=where, of=of):
            return tuple(x for x in (h, where, of) if x is not None)
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
    reference: str | None = None  # the date element named by `as of`: the evaluation's date

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
