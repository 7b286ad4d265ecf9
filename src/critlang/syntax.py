"""The critlang syntax tree: frozen attrs nodes, each with its source span.

Nodes hold what the author wrote and nothing more; names are resolved and
types inferred by the checker, meaning is given by the compiler.

Nodes are dictionary keys (the checker's types, the evaluator's trace slots),
so each caches its hash: a deep tree is hashed once, not on every lookup.
"""

from __future__ import annotations

import datetime
from decimal import Decimal

import attrs


@attrs.frozen(cache_hash=True)
class Span:
    """A region of source text; lines and columns count from 1."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@attrs.frozen(cache_hash=True)
class Name:
    """An identifier as written, e.g. an enum value in a list."""

    text: str
    span: Span


# ---- types of data elements --------------------------------------------------


@attrs.frozen(cache_hash=True)
class BooleanType:
    span: Span


@attrs.frozen(cache_hash=True)
class NumberType:
    span: Span


@attrs.frozen(cache_hash=True)
class QuantityType:
    unit: str
    span: Span


@attrs.frozen(cache_hash=True)
class DurationType:
    unit: str
    span: Span


@attrs.frozen(cache_hash=True)
class DateType:
    span: Span


@attrs.frozen(cache_hash=True)
class EnumType:
    values: tuple[Name, ...]
    span: Span


@attrs.frozen(cache_hash=True)
class SetType:
    values: tuple[Name, ...]
    span: Span


@attrs.frozen(cache_hash=True)
class AttestationType:
    """A fact that named people confirm; it evaluates as a boolean."""

    attesters: tuple[str, ...]
    span: Span


@attrs.frozen(cache_hash=True)
class IntegerType:
    """A whole number (a count): records must give whole numbers."""

    span: Span


@attrs.frozen(cache_hash=True)
class CodeType:
    """One coded value (`system:code`), tested with `x in CODELIST`."""

    span: Span


@attrs.frozen(cache_hash=True)
class OrdinalType:
    """An ordered scale, lowest value first: `ordinal (i, ii, iii, iv)`."""

    values: tuple[Name, ...]
    span: Span


@attrs.frozen(cache_hash=True)
class HistoryType:
    """`history of quantity 'U'`, `history of codes`, `history of medications ['U']`.

    `entry` is a `vocab.EntryKind` value; `unit` the unit of a measurement's
    value or a medication's dose (None for codes, or a medication without dose).
    """

    entry: str
    unit: str | None
    span: Span


DeclaredType = (
    BooleanType
    | NumberType
    | QuantityType
    | DurationType
    | DateType
    | EnumType
    | SetType
    | AttestationType
    | IntegerType
    | OrdinalType
    | CodeType
    | HistoryType
)


# ---- expressions -------------------------------------------------------------


@attrs.frozen(cache_hash=True)
class NumberLit:
    value: Decimal
    span: Span


@attrs.frozen(cache_hash=True)
class QuantityLit:
    value: Decimal
    unit: str
    span: Span


@attrs.frozen(cache_hash=True)
class DateLit:
    value: datetime.date
    span: Span


@attrs.frozen(cache_hash=True)
class BoolLit:
    value: bool
    span: Span


@attrs.frozen(cache_hash=True)
class Ref:
    """A name used in an expression: a data element, constant or definition."""

    name: str
    span: Span


@attrs.frozen(cache_hash=True)
class Not:
    operand: Expr
    span: Span


@attrs.frozen(cache_hash=True)
class And:
    left: Expr
    right: Expr
    span: Span


@attrs.frozen(cache_hash=True)
class Or:
    left: Expr
    right: Expr
    span: Span


@attrs.frozen(cache_hash=True)
class Unless:
    """`rule unless exception`: the rule holds and the exception does not."""

    rule: Expr
    exception: Expr
    span: Span


@attrs.frozen(cache_hash=True)
class Compare:
    op: str
    left: Expr
    right: Expr
    span: Span


@attrs.frozen(cache_hash=True)
class Between:
    subject: Expr
    low: Expr
    high: Expr
    exclusive: bool
    span: Span


@attrs.frozen(cache_hash=True)
class Member:
    """`subject in (a, b)`: an enum value is one of the listed values."""

    subject: Expr
    values: tuple[Name, ...]
    span: Span


@attrs.frozen(cache_hash=True)
class Includes:
    """`subject includes any of (a, b)` / `includes all of (...)` on a set."""

    subject: Expr
    quantifier: str
    values: tuple[Name, ...]
    span: Span


@attrs.frozen(cache_hash=True)
class Arithmetic:
    op: str
    left: Expr
    right: Expr
    span: Span


@attrs.frozen(cache_hash=True)
class RelativeChange:
    """Change from baseline to current as a percentage of baseline.

    `decline` counts a fall as positive; `change` counts a rise as positive.
    """

    direction: str
    baseline: Expr
    current: Expr
    span: Span


@attrs.frozen(cache_hash=True)
class Approximation:
    """`approximate "why"`: the author says this encodes its source text only approximately."""

    reason: str
    span: Span


@attrs.frozen(cache_hash=True)
class SubCriterion:
    """A named alternative or part (I2 a, b, c) inside any of / all of."""

    name: Name
    title: str | None
    applies_when: Expr | None
    condition: Expr
    span: Span
    approximate: Approximation | None = None


@attrs.frozen(cache_hash=True)
class ScoreItem:
    """`[name "title":] 2 points when condition`: one weighted item of a score."""

    name: Name | None
    title: str | None
    points: Decimal
    condition: Expr
    span: Span


@attrs.frozen(cache_hash=True)
class ScoreGroup:
    """`highest of [...]`: only the highest-scoring true item of the group counts."""

    items: tuple[ScoreItem, ...]
    span: Span


@attrs.frozen(cache_hash=True)
class Score:
    """`score [...]`: the total points of the true items; compared with a number."""

    entries: tuple[ScoreItem | ScoreGroup, ...]
    span: Span

    def items(self) -> tuple[ScoreItem, ...]:
        """Every item, those of groups included, in source order."""
        found: list[ScoreItem] = []
        for entry in self.entries:
            found.extend(entry.items if isinstance(entry, ScoreGroup) else (entry,))
        return tuple(found)


@attrs.frozen(cache_hash=True)
class Quantified:
    """`any of [...]`, `all of [...]` or `at least N of [...]`."""

    quantifier: str
    count: int | None
    items: tuple[Expr | SubCriterion, ...]
    span: Span


# ---- dates and calendar durations (docs/language.md, "Dates and time") ----------


@attrs.frozen(cache_hash=True)
class CalendarDuration:
    """`6 months`: a whole number of calendar units, only for date arithmetic and windows.

    Not a UCUM quantity: a month here is a calendar month, not 'mo' (30.4375 days).
    """

    amount: int
    unit: str  # a vocab.CalendarUnit value
    span: Span


@attrs.frozen(cache_hash=True)
class DateDifference:
    """`years between a and b` (whole units); `years since a` has no `end`: the reference date."""

    unit: str  # a vocab.CalendarUnit value
    start: Expr
    end: Expr | None
    span: Span


@attrs.frozen(cache_hash=True)
class Window:
    """`d within 6 months before r` / `after r`; no `anchor`: the reference date."""

    subject: Expr
    duration: CalendarDuration
    direction: str  # "before" | "after"
    anchor: Expr | None
    span: Span


# ---- histories and code lists (docs/language.md, "Histories, medications and code lists")


@attrs.frozen(cache_hash=True)
class EntryField:
    """`its value`, `its date`, `its upper limit`...: a field of the entry a selector looks at."""

    field: str  # value | date | code | dose | start | end | high | low
    span: Span


@attrs.frozen(cache_hash=True)
class InCodes:
    """`subject in CODELIST`: a coded value is in a code list."""

    subject: Expr
    codes: Name
    span: Span


@attrs.frozen(cache_hash=True)
class EntryWindow:
    """`within 90 days [before|after DATE]`: entries dated (medications: taken) in the window.

    `during 90 days ...` (`overlap`): entries whose period (from their date or
    start to their end) overlaps the window. No `anchor`: the reference date (`as of`).
    """

    duration: CalendarDuration
    direction: str  # "before" | "after"
    anchor: Expr | None
    span: Span
    overlap: bool = False


@attrs.frozen(cache_hash=True)
class Selector:
    """`any H`, `no H`, `number of H`, `latest H`, `latest (EXPR) of H`, ... with `where` and window.

    `op` is any, no, count, latest, earliest, highest, lowest or total; `of`
    is the expression written in `latest (EXPR) of H` (None: the entry's value).
    """

    op: str
    history: Ref
    of: Expr | None
    where: Expr | None
    window: EntryWindow | None
    span: Span


Literal = NumberLit | QuantityLit | DateLit
Expr = (
    NumberLit
    | QuantityLit
    | DateLit
    | BoolLit
    | Ref
    | Not
    | And
    | Or
    | Unless
    | Compare
    | Between
    | Member
    | Includes
    | Arithmetic
    | RelativeChange
    | Quantified
    | Score
    | CalendarDuration
    | DateDifference
    | Window
    | EntryField
    | InCodes
    | Selector
)


# ---- declarations --------------------------------------------------------------


@attrs.frozen(cache_hash=True)
class UnitRef:
    """A unit code where it is written, as in `accepts 'mL/min'`."""

    code: str
    span: Span


@attrs.frozen(cache_hash=True)
class UnitConversion:
    """`convert 'mmol/mol' as 0.09148 * value + 2.152`: a record in `unit` is read in the
    element's declared unit as scale x value + offset. Only record intake applies it;
    engines never see it."""

    unit: UnitRef
    scale: Decimal
    offset: Decimal
    span: Span


@attrs.frozen(cache_hash=True)
class DataElement:
    name: Name
    type: DeclaredType
    label: str | None
    plausible_range: tuple[Decimal, Decimal] | None
    molar_mass: QuantityLit | None
    span: Span
    # Units of another kind that records may use, converted by their UCUM factor.
    accepts: tuple[UnitRef, ...] = ()
    conversions: tuple[UnitConversion, ...] = ()
    complete: bool = False  # a history with every entry: no entry means never


@attrs.frozen(cache_hash=True)
class CodeText:
    """One code of a code list as written, e.g. "J84.*"; `descendants`: `"..." and descendants`."""

    text: str
    span: Span
    descendants: bool = False


@attrs.frozen(cache_hash=True)
class CodeList:
    """`codes ild "Interstitial lung disease" icd10cm ("J84.*", "J99.1")`."""

    name: Name
    label: str | None
    system: Name
    codes: tuple[CodeText, ...]
    span: Span
    excluded: tuple[CodeText, ...] = ()  # `except (...)`: codes that are in no case in the list


@attrs.frozen(cache_hash=True)
class Constant:
    name: Name
    value: Literal
    label: str | None
    span: Span


@attrs.frozen(cache_hash=True)
class Definition:
    name: Name
    expr: Expr
    label: str | None
    span: Span


@attrs.frozen(cache_hash=True)
class Criterion:
    kind: str  # "inclusion" | "exclusion"
    id: Name
    title: str
    registered: str | None
    plain: str | None
    notes: tuple[str, ...]
    applies_when: Expr | None
    condition: Expr
    span: Span
    approximate: Approximation | None = None


@attrs.frozen(cache_hash=True)
class CodeLit:
    """A code in an example, `icd10cm "E11.9"`: its system as written, and the code."""

    system: Name
    code: str
    span: Span


@attrs.frozen(cache_hash=True)
class PartialDateLit:
    """A year and month in an example (`2019-05`): a date known to the month only."""

    text: str
    span: Span


@attrs.frozen(cache_hash=True)
class TextLit:
    """A text in an example's history entry (its `source`)."""

    text: str
    span: Span


EntryValue = NumberLit | QuantityLit | DateLit | CodeLit | TextLit | PartialDateLit


@attrs.frozen(cache_hash=True)
class EntryItem:
    """One field of a history entry in an example: `date = 2026-05-02`."""

    name: Name
    value: EntryValue
    span: Span


@attrs.frozen(cache_hash=True)
class EntryLit:
    """One entry of a history in an example: `{date = 2026-05-02, value = 1.6 'mg/dL'}`."""

    items: tuple[EntryItem, ...]
    span: Span


@attrs.frozen(cache_hash=True)
class HistoryLit:
    """A history in an example: a list of entries, `[]` for none."""

    entries: tuple[EntryLit, ...]
    span: Span


FieldValue = (
    NumberLit
    | QuantityLit
    | DateLit
    | BoolLit
    | Name
    | tuple[Name, ...]
    | CodeLit
    | PartialDateLit
    | HistoryLit
)


@attrs.frozen(cache_hash=True)
class ExampleField:
    name: Name
    value: FieldValue
    span: Span


@attrs.frozen(cache_hash=True)
class Example:
    """An example patient with the outcome the author expects."""

    title: str
    fields: tuple[ExampleField, ...]
    expect: Name
    span: Span


@attrs.frozen(cache_hash=True)
class Header:
    title: str | None = None
    version: str | None = None
    registry: str | None = None
    sponsor: str | None = None
    sites: tuple[str, ...] = ()
    status: str | None = None
    summary: str | None = None
    as_of: Name | None = None  # the date element that is the evaluation's reference date


@attrs.frozen(cache_hash=True)
class Protocol:
    name: Name
    header: Header
    elements: tuple[DataElement, ...]
    constants: tuple[Constant, ...]
    definitions: tuple[Definition, ...]
    criteria: tuple[Criterion, ...]
    examples: tuple[Example, ...]
    span: Span
    code_lists: tuple[CodeList, ...] = ()


def children(node: object) -> tuple[object, ...]:
    """The direct sub-expressions of an expression node, in source order."""
    match node:
        case Not(operand=o):
            return (o,)
        case And(left=a, right=b) | Or(left=a, right=b) | Arithmetic(left=a, right=b):
            return (a, b)
        case Compare(left=a, right=b):
            return (a, b)
        case Unless(rule=a, exception=b):
            return (a, b)
        case Between(subject=s, low=lo, high=hi):
            return (s, lo, hi)
        case Member(subject=s) | Includes(subject=s):
            return (s,)
        case RelativeChange(baseline=b, current=c):
            return (b, c)
        case Quantified(items=items):
            return items
        case Score():
            return tuple(item.condition for item in node.items())
        case DateDifference(start=a, end=None):
            return (a,)
        case DateDifference(start=a, end=b):
            return (a, b)
        case Window(subject=d, duration=u, anchor=None):
            return (d, u)
        case Window(subject=d, duration=u, anchor=r):
            return (d, u, r)
        case InCodes(subject=subject):
            return (subject,)
        case Selector(history=h, of=of, where=where, window=window):
            anchor = None if window is None else window.anchor
            return tuple(x for x in (h, of, where, anchor) if x is not None)
        case SubCriterion(applies_when=None, condition=c):
            return (c,)
        case SubCriterion(applies_when=w, condition=c):
            return (w, c)
    return ()


def walk(node: object) -> list[object]:
    """The node and all its sub-expressions, depth first."""
    out = [node]
    for child in children(node):
        out.extend(walk(child))
    return out
