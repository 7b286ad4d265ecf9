"""The z3 engine: the core IR as three-valued z3 formulas.

A condition is a `Tri`, a pair of formulas "is true" and "is false" that
never both hold (neither means unknown), combined by Kleene's rules. A
number is a `Num`: an exact z3 `Real` term and a formula saying when it is
known; an enum value is held as its position among the declared values and a
date as its ordinal day, both z3 `Int`s; a set is a `Bits`, one boolean per
declared value. Data elements are z3 variables (`Elements`), each with a
formula for "the record has it".

`Encoding` gives the formula of any IR node, one method per IR class, and
nothing else: the engine never sees the syntax tree. The analyses
(`critlang.analyze`) ask questions of these formulas; with every element's
value fixed, they give the value the Python engine computes.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any

import attrs
import z3

from critlang import ir
from critlang.check import Type
from critlang.vocab import ENTRY_LAYOUT, CalendarUnit, EntryKind, Kind, Outcome

Z3 = Any  # z3 has no type stubs
TRUE = z3.BoolVal(True)
FALSE = z3.BoolVal(False)


@attrs.frozen
class Tri:
    """A three-valued condition: `true` and `false` never both hold; neither is unknown."""

    true: Z3
    false: Z3

    def flipped(self) -> Tri:
        return Tri(self.false, self.true)

    @property
    def known(self) -> Z3:
        return z3.Or(self.true, self.false)


@attrs.frozen
class Num:
    """A number (exact rational), an enum value's position or a date's ordinal, and when known."""

    value: Z3
    known: Z3


@attrs.frozen(eq=False)
class Bits:
    """A set: one boolean per declared value, and when it is known."""

    members: dict[str, Z3]
    known: Z3


@attrs.frozen(eq=False)
class History:
    """A history of at most `len(slots)` entries: which slots hold one, and their fields.

    Each slot's fields are `Num`s (a date's ordinal, an exact number, a code as
    a z3 String) whose `known` says the entry has that field; present slots
    come first.
    """

    present: tuple[Z3, ...]
    slots: tuple[dict[str, Num], ...]
    known: Z3


Value = Tri | Num | Bits | History

ENTRIES = 3  # the most entries a history holds in the z3 engine (docs/analysis.md)
# An entry's fields by kind (vocab.EntryKind): (name, sort, always present when the entry is).
ENTRY_FIELDS = {
    "measurement": (("date", "date", True), ("value", "number", True)),
    "code": (("date", "date", True), ("code", "code", True), ("end", "date", False)),
    "medication": (("start", "date", True), ("end", "date", False), ("code", "code", True)),
}
ENTRY_FIELDS["measurement"] += (("low", "number", False), ("high", "number", False))
ENTRY_FIELDS["medication"] += (("dose", "number", False),)
# Codes a witness may use that are in no code list (each a real code of its system).
OTHER_CODES = (
    "snomed:73211009",
    "snomed:38341003",
    "icd10cm:Z000",
    "icd10cm:R05",
    "loinc:2160-0",
    "loinc:718-7",
    "rxnorm:161",
    "rxnorm:1191",
    "atc:A01AA01",
    "atc:N02BE01",
)


def real(value: Fraction | Decimal | int) -> Z3:
    """An exact z3 rational."""
    exact = Fraction(value)
    return z3.Q(exact.numerator, exact.denominator)


def guarded(known: Iterable[Z3], test: Z3) -> Tri:
    """`test` when everything in `known` holds, else unknown."""
    ready = z3.And(*known)
    return Tri(z3.And(ready, test), z3.And(ready, z3.Not(test)))


def truth(model: Z3, value: Tri) -> bool | None:
    """A condition's value in a model: True, False or None (unknown)."""
    if z3.is_true(model.eval(value.true, model_completion=True)):
        return True
    if z3.is_true(model.eval(value.false, model_completion=True)):
        return False
    return None


# ---- data elements --------------------------------------------------------------------


class Elements:
    """One z3 variable per data element (one boolean per value for a set).

    With `missing=False` every element is known; with `missing=True` each has
    a boolean `known` variable too (named `name?`). `prefix` keeps the
    variables of two sets of elements apart.
    """

    def __init__(
        self,
        elements: Iterable[tuple[str, Type]],
        *,
        missing: bool = False,
        prefix: str = "",
        entries: int = ENTRIES,
    ) -> None:
        self.entries = entries
        self.types: dict[str, Type] = dict(elements)
        self.values: dict[str, Value] = {}
        self.known: dict[str, Z3] = {}
        self.raw: dict[str, Z3] = {}  # the variable of each element that is not a set
        # A date's last possible day (ir.Element.key), for a partial date in a record.
        self.latest: dict[str, Z3] = {}
        # Each date variable's (year, month, day), by its key: variables tied to the day by
        # `calendar()`, which z3 decides far faster than dividing the day number down.
        self.parts: dict[str, tuple[Z3, Z3, Z3]] = {}
        for name, kind in self.types.items():
            known = z3.Bool(f"{prefix}{name}?") if missing else TRUE
            self.known[name] = known
            self.values[name] = self.variable(f"{prefix}{name}", name, kind, known)
            if kind.kind == "date":
                self.latest[name] = z3.Int(f"{prefix}{name} latest")
                for key in (name, f"{name} latest"):
                    self.parts[key] = (
                        z3.Int(f"{prefix}{key}.year"),
                        z3.Int(f"{prefix}{key}.month"),
                        z3.Int(f"{prefix}{key}.day"),
                    )

    def variable(self, label: str, name: str, kind: Type, known: Z3) -> Value:
        if kind.kind == "history":
            return self.history(label, kind, known)
        if kind.kind == "code":
            var = z3.String(label)
            self.raw[name] = var
            return Num(var, known)
        if kind.kind == "set":
            members = {value: z3.Bool(f"{label}.{value}") for value in kind.values}
            return Bits(members, known)
        if kind.kind == "boolean":
            var = z3.Bool(label)
            self.raw[name] = var
            return Tri(z3.And(known, var), z3.And(known, z3.Not(var)))
        # A whole number is an Int, so witnesses and bands propose whole numbers only.
        var = z3.Real(label) if kind.numeric and not kind.integer else z3.Int(label)
        self.raw[name] = var
        return Num(var, known)

    def history(self, label: str, kind: Type, known: Z3) -> History:
        present = tuple(z3.Bool(f"{label}[{i}]") for i in range(self.entries))
        slots: list[dict[str, Num]] = []
        for i, there in enumerate(present):
            fields: dict[str, Num] = {}
            for field, sort, required in ENTRY_FIELDS[kind.entry]:
                name = f"{label}[{i}].{field}"
                var = {"date": z3.Int, "number": z3.Real, "code": z3.String}[sort](name)
                given = there if required else z3.And(there, z3.Bool(f"{name}?"))
                fields[field] = Num(var, given)
            slots.append(fields)
        return History(present, tuple(slots), known)

    def domain(
        self,
        ranges: Mapping[str, tuple[Fraction, Fraction]] | None = None,
        program: ir.Program | None = None,
    ) -> list[Z3]:
        """Each element within its values: an enum one of its values, a number in `ranges`.

        With `program`: codes are those of its code lists or one of `OTHER_CODES`,
        and a history's entries are dated on or before the reference date.
        """
        ranges = ranges or {}
        out: list[Z3] = []
        codes = _candidate_codes(program)
        for name, kind in self.types.items():
            held = self.values[name]
            if isinstance(held, History):
                out += self.history_domain(held, kind, ranges.get(name), codes, program)
                continue
            var: Z3 = self.raw.get(name)
            if kind.kind == "code" and codes:
                out.append(z3.Or(*(var == z3.StringVal(c) for c in codes)))
            if kind.kind in ("enum", "ordinal"):
                out += [var >= 0, var < len(kind.values)]
            elif kind.kind == "date":
                # A witness is a record: its dates are whole days, first and last the same
                # (the same calendar variables too: z3 need not find the same day twice).
                out += [var >= FIRST_DAY, var <= LAST_DAY, self.latest[name] == var]
                out += self.calendar(name, latest=False)
                first, last = self.parts[name], self.parts[f"{name} latest"]
                out += [a == b for a, b in zip(first, last, strict=True)]
            elif kind.numeric and name in ranges:
                low, high = ranges[name]
                out += [var >= real(low), var <= real(high)]
        return out

    def holds(
        self,
        name: str,
        value: ir.Value | Decimal | None,
        latest: datetime.date | None = None,
    ) -> Z3:
        """The element has `value` (a record's value as the Python engine takes it in);
        a date also `latest`, its last possible day (the same day when not given)."""
        if value is None:
            return z3.Not(self.known[name])
        if name in self.latest:
            assert isinstance(value, datetime.date)
            last = self.latest[name] == _term(latest or value, self.types[name])
            first = self.raw[name] == _term(value, self.types[name])
            return z3.And(self.known[name], first, last, *self.calendar(name))
        kind = self.types[name]
        held = self.values[name]
        if isinstance(held, Bits):
            assert isinstance(value, frozenset)
            bits = [bit if v in value else z3.Not(bit) for v, bit in held.members.items()]
            return z3.And(held.known, *bits)
        if isinstance(held, History):
            return self.history_holds(held, kind, value)
        var = self.raw[name]
        return z3.And(self.known[name], var == _term(value, kind))

    def history_domain(
        self,
        held: History,
        kind: Type,
        limits: tuple[Fraction, Fraction] | None,
        codes: list[str],
        program: ir.Program | None,
    ) -> list[Z3]:
        out: list[Z3] = []
        for i, fields in enumerate(held.slots):
            if i > 0:
                out.append(z3.Implies(held.present[i], held.present[i - 1]))
            for field, sort, _ in ENTRY_FIELDS[kind.entry]:
                var = fields[field].value
                if sort == "date":
                    out += [var >= FIRST_DAY, var <= LAST_DAY]
                elif sort == "code" and codes:
                    out.append(z3.Or(*(var == z3.StringVal(c) for c in codes)))
            if limits is not None:
                low, high = limits
                value = fields["value"].value if "value" in fields else None
                if value is not None:
                    out += [value >= real(low), value <= real(high)]
            if "end" in fields:
                end = fields["end"]
                first = fields["start" if "start" in fields else "date"]
                out.append(z3.Implies(end.known, end.value >= first.value))
            if program is not None and program.reference in self.types:
                reference = self.raw[program.reference]
                day = fields["start" if "start" in fields else "date"].value
                out.append(
                    z3.Implies(
                        z3.And(held.present[i], self.known[program.reference]), day <= reference
                    )
                )
        return out

    def history_holds(self, held: History, kind: Type, value: Any) -> Z3:
        """The history holds exactly the record's entries: tuples as intake makes them
        (vocab.ENTRY_LAYOUT), or mappings of their fields."""
        entries = list(value)
        if len(entries) > len(held.slots):
            raise ValueError(
                f"{len(entries)} entries: the z3 engine holds at most {len(held.slots)} per history"
            )
        layout = ENTRY_LAYOUT[EntryKind(kind.entry)]
        entries = [
            dict(zip(layout, e, strict=True)) if isinstance(e, tuple) else e for e in entries
        ]
        out = [held.known]
        for i, fields in enumerate(held.slots):
            if i >= len(entries):
                out.append(z3.Not(held.present[i]))
                continue
            out.append(held.present[i])
            for field, sort, _ in ENTRY_FIELDS[kind.entry]:
                given = _entry_field(entries[i], field)
                slot = fields[field]
                if given is None:
                    out.append(z3.Not(slot.known))
                    continue
                out += [slot.known, slot.value == _field_term(given, sort)]
        return z3.And(*out)

    def calendar(self, name: str, latest: bool = True) -> list[Z3]:
        """A date element's (year, month, day) variables are the calendar's for its days."""
        out: list[Z3] = []
        days = [(name, self.raw[name])]
        if latest:
            days.append((f"{name} latest", self.latest[name]))
        for key, day in days:
            year, month, date = self.parts[key]
            out += [
                ordinal(year, month, date) == day,
                month >= 1,
                month <= 12,
                date >= 1,
                date <= month_length(year, month),
            ]
        return out

    def read(self, model: Z3) -> dict[str, Any]:
        """The record a model describes: each element's value, None when unknown.

        A history is a list of entries, each a dict of the fields it has.
        """
        out: dict[str, Any] = {}
        for name, kind in self.types.items():
            if not z3.is_true(model.eval(self.known[name], model_completion=True)):
                out[name] = None
                continue
            held = self.values[name]
            if isinstance(held, History):
                out[name] = _read_history(model, held, kind)
                continue
            if isinstance(held, Bits):
                out[name] = frozenset(
                    v
                    for v, bit in held.members.items()
                    if z3.is_true(model.eval(bit, model_completion=True))
                )
                continue
            term = model.eval(self.raw[name], model_completion=True)
            if kind.kind == "boolean":
                out[name] = bool(z3.is_true(term))
            elif kind.kind in ("enum", "ordinal"):
                out[name] = kind.values[term.as_long()]
            elif kind.kind == "date":
                out[name] = datetime.date.fromordinal(term.as_long())
            elif kind.kind == "code":
                out[name] = term.as_string()
            else:
                out[name] = fraction(term)
        return out


def _read_history(model: Z3, held: History, kind: Type) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for there, fields in zip(held.present, held.slots, strict=True):
        if not z3.is_true(model.eval(there, model_completion=True)):
            break
        entry: dict[str, Any] = {}
        for field, sort, _ in ENTRY_FIELDS[kind.entry]:
            slot = fields[field]
            if not z3.is_true(model.eval(slot.known, model_completion=True)):
                continue
            term = model.eval(slot.value, model_completion=True)
            if sort == "date":
                entry[field] = datetime.date.fromordinal(term.as_long())
            elif sort == "code":
                entry[field] = term.as_string()
            else:
                entry[field] = fraction(term)
        entries.append(entry)
    return entries


def _entry_field(entry: Any, field: str) -> Any:
    if isinstance(entry, Mapping):
        return entry.get(field)
    return getattr(entry, field, None)


def _field_term(value: Any, sort: str) -> Z3:
    if sort == "date":
        day = datetime.date.fromisoformat(value) if isinstance(value, str) else value
        return z3.IntVal(day.toordinal())
    if sort == "code":
        return z3.StringVal(str(value))
    return real(Fraction(str(value)) if isinstance(value, float) else Fraction(value))


def _candidate_codes(program: ir.Program | None) -> list[str]:
    """The codes a witness may hold: each code list's codes and prefixes, and some in none."""
    if program is None:
        return []
    lists = {n.codes.name: n.codes for n in program.nodes() if isinstance(n, ir.InCodes)}
    found: set[str] = set()
    for codes in lists.values():
        found |= codes.codes
        # A prefix is a code too, except a whole system's ("snomed:", for roots no terminology decides).
        found |= {p for p in codes.prefixes if not p.endswith(":")}
    others = [c for c in OTHER_CODES if not any(x.matches(c) for x in lists.values())]
    return sorted(found) + others


FIRST_DAY = datetime.date(1900, 1, 1).toordinal()
LAST_DAY = datetime.date(2100, 12, 31).toordinal()


def fraction(term: Z3) -> Fraction:
    """A z3 number as a fraction (an algebraic number, from a product of unknowns, rounded)."""
    if z3.is_int_value(term):
        return Fraction(term.as_long())
    if z3.is_rational_value(term):
        return Fraction(term.numerator_as_long(), term.denominator_as_long())
    return Fraction(term.approx(20).as_decimal(20).rstrip("?"))


def _term(value: ir.Value | Decimal, kind: Type) -> Z3:
    """A value as the z3 term that holds it for a node or element of type `kind`."""
    if isinstance(value, bool):
        return z3.BoolVal(value)
    if isinstance(value, Fraction | Decimal | int):
        return real(value)
    if isinstance(value, datetime.date):
        return z3.IntVal(value.toordinal())
    if isinstance(value, str):
        if kind.kind == "code":
            return z3.StringVal(value)
        return z3.IntVal(kind.values.index(value))
    raise AssertionError(f"no z3 term for {value!r}")


# ---- the IR as formulas ----------------------------------------------------------------


@attrs.frozen
class Status:
    """A record's status as formulas: eligible, ineligible; neither is undetermined."""

    eligible: Z3
    ineligible: Z3

    def of(self, model: Z3) -> Outcome:
        if z3.is_true(model.eval(self.ineligible, model_completion=True)):
            return Outcome.INELIGIBLE
        if z3.is_true(model.eval(self.eligible, model_completion=True)):
            return Outcome.ELIGIBLE
        return Outcome.UNDETERMINED


class Encoding:
    """The formulas of one program's nodes over `elements`, each made once.

    `replace` gives some nodes other formulas (by node id): the nodes that use
    them are encoded with the replacement, which is how an analysis asks
    "what if this comparison came out the other way?".
    """

    def __init__(
        self, program: ir.Program, elements: Elements, replace: Mapping[int, Value] | None = None
    ) -> None:
        self.program = program
        self.elements = elements
        self.definitions = dict(program.definitions)
        self.memo: dict[int, Value] = dict(replace or {})
        self.parts: dict[int, tuple[Z3, Z3, Z3]] = {}  # (year, month, day) of date nodes
        self.rules: dict[type[ir.Node], Callable[[Any], Value]] = {
            ir.Const: self.const,
            ir.Element: self.element,
            ir.Definition: self.definition,
            ir.Not: self.not_,
            ir.And: self.and_,
            ir.Or: self.or_,
            ir.AtLeast: self.at_least,
            ir.Compare: self.compare,
            ir.Arith: self.arith,
            ir.Scale: self.scale,
            ir.Member: self.member,
            ir.Includes: self.includes,
            ir.InCodes: self.in_codes,
            ir.Entry: self.entry,
            ir.Aggregate: self.aggregate,
            ir.DateShift: self.date_shift,
            ir.DateDiff: self.date_diff,
        }
        self.slot: dict[str, Num] | None = None  # the entry an `Entry` reads

    # ---- the program ----

    def criterion(self, criterion: ir.Criterion) -> Tri:
        """A criterion's value, after applicability."""
        return self.condition(criterion.value)

    def passes(self, criterion: ir.Criterion) -> Z3:
        """The criterion lets the patient through: an inclusion met, an exclusion not met."""
        value = self.criterion(criterion)
        return value.true if criterion.kind is Kind.INCLUSION else value.false

    def fails(self, criterion: ir.Criterion) -> Z3:
        """The criterion rules the patient out: an inclusion not met, an exclusion met."""
        value = self.criterion(criterion)
        return value.false if criterion.kind is Kind.INCLUSION else value.true

    def status(self) -> Status:
        criteria = self.program.criteria
        return Status(
            z3.And(*(self.passes(c) for c in criteria)), z3.Or(*(self.fails(c) for c in criteria))
        )

    # ---- nodes ----

    def value(self, node: ir.Node) -> Value:
        """The formula of any node; operands first, without recursion."""
        stack: list[tuple[ir.Node, bool]] = [(node, False)]
        while stack:
            current, ready = stack.pop()
            if current.id in self.memo:
                continue
            if ready:
                self.memo[current.id] = self.rules[type(current)](current)
                continue
            stack.append((current, True))
            stack.extend((child, False) for child in self.operands(current))
        return self.memo[node.id]

    def condition(self, node: ir.Node) -> Tri:
        value = self.value(node)
        assert isinstance(value, Tri), node
        return value

    def number(self, node: ir.Node) -> Num:
        value = self.value(node)
        assert isinstance(value, Num), node
        return value

    def operands(self, node: ir.Node) -> tuple[ir.Node, ...]:
        if isinstance(node, ir.Definition):
            return (self.definitions[node.name],)
        if isinstance(node, ir.Aggregate):
            # `where` and `of` are made once per entry, by `aggregate`.
            return (node.history,)
        return ir.children(node)

    def made(self, node: ir.Node) -> Value:
        """An operand's formula, already made."""
        return self.memo[node.id]

    def tri(self, node: ir.Node) -> Tri:
        value = self.memo[node.id]
        assert isinstance(value, Tri), node
        return value

    def num(self, node: ir.Node) -> Num:
        value = self.memo[node.id]
        assert isinstance(value, Num), node
        return value

    # ---- one rule per IR class ----

    def const(self, node: ir.Const) -> Value:
        value = node.value
        if value is None:  # unknown, in the Kleene bounds lowering makes
            return Tri(FALSE, FALSE)
        if isinstance(value, bool):
            return Tri(z3.BoolVal(value), z3.BoolVal(not value))
        if isinstance(value, frozenset):
            members = {v: z3.BoolVal(v in value) for v in node.type.values}
            return Bits(members, TRUE)
        return Num(_term(value, node.type), TRUE)

    def element(self, node: ir.Element) -> Value:
        if node.bound == "latest":
            return Num(self.elements.latest[node.name], self.elements.known[node.name])
        return self.elements.values[node.name]

    def definition(self, node: ir.Definition) -> Value:
        return self.made(self.definitions[node.name])

    def not_(self, node: ir.Not) -> Value:
        return self.tri(node.operand).flipped()

    def and_(self, node: ir.And) -> Value:
        values = [self.tri(x) for x in node.operands]
        return Tri(z3.And(*(v.true for v in values)), z3.Or(*(v.false for v in values)))

    def or_(self, node: ir.Or) -> Value:
        values = [self.tri(x) for x in node.operands]
        return Tri(z3.Or(*(v.true for v in values)), z3.And(*(v.false for v in values)))

    def at_least(self, node: ir.AtLeast) -> Value:
        values = [self.tri(x) for x in node.operands]
        if node.weights is not None:  # a score: the weights of the true and the open operands
            weights = [real(w) for w in node.weights]
            sure = z3.Sum(*(z3.If(v.true, w, 0) for v, w in zip(values, weights, strict=True)))
            open_weights = (z3.If(v.known, 0, w) for v, w in zip(values, weights, strict=True))
            possible = sure + z3.Sum(*open_weights)
            threshold = real(node.count)
            return (
                Tri(sure >= threshold, possible < threshold)
                if values
                else Tri(z3.BoolVal(threshold <= 0), z3.BoolVal(threshold > 0))
            )
        met = z3.Sum(*(z3.If(v.true, 1, 0) for v in values)) if values else z3.IntVal(0)
        open_ = z3.Sum(*(z3.If(v.known, 0, 1) for v in values)) if values else z3.IntVal(0)
        return Tri(met >= node.count, met + open_ < node.count)

    def compare(self, node: ir.Compare) -> Value:
        left, right = self.made(node.left), self.made(node.right)
        if isinstance(left, Tri) and isinstance(right, Tri):
            same = left.true == right.true
            return guarded([left.known, right.known], same if node.op == "=" else z3.Not(same))
        assert isinstance(left, Num) and isinstance(right, Num), node
        a, b = left.value, right.value
        test = {
            "<": lambda: a < b,
            "<=": lambda: a <= b,
            ">": lambda: a > b,
            ">=": lambda: a >= b,
            "=": lambda: a == b,
            "!=": lambda: a != b,
        }[node.op]()
        return guarded([left.known, right.known], test)

    def arith(self, node: ir.Arith) -> Value:
        left, right = self.num(node.left), self.num(node.right)
        a, b = left.value, right.value
        known = [left.known, right.known]
        if node.op == "/":
            return Num(a / b, z3.And(*known, b != 0))
        value = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b}[node.op]()
        return Num(value, z3.And(*known))

    def scale(self, node: ir.Scale) -> Value:
        operand = self.num(node.operand)
        return Num(operand.value * real(node.factor), operand.known)

    def member(self, node: ir.Member) -> Value:
        operand = self.num(node.operand)
        choices = node.operand.type.values
        test = z3.Or(*(operand.value == choices.index(v) for v in sorted(node.values)))
        return guarded([operand.known], test)

    def includes(self, node: ir.Includes) -> Value:
        operand = self.made(node.operand)
        assert isinstance(operand, Bits), node
        wanted = [operand.members[v] for v in sorted(node.values)]
        return guarded([operand.known], z3.And(*wanted) if node.every else z3.Or(*wanted))

    def in_codes(self, node: ir.InCodes) -> Value:
        operand = self.num(node.operand)
        held = operand.value
        tests = [held == z3.StringVal(c) for c in sorted(node.codes.codes)]
        tests += [z3.PrefixOf(z3.StringVal(p), held) for p in node.codes.prefixes]
        return guarded([operand.known], z3.Or(*tests) if tests else FALSE)

    def entry(self, node: ir.Entry) -> Value:
        assert self.slot is not None, "an entry is read inside its history's aggregate"
        if node.field == "ongoing":  # a medication or code entry without an end
            end = self.slot["end"].known
            return Tri(z3.Not(end), end)
        return self.slot[node.field]

    def per_entry(self, node: ir.Aggregate, slot: dict[str, Num]) -> tuple[Tri | None, Num | None]:
        """`where` and `of` for one entry: a fresh encoding, with what is known so far."""
        inner = Encoding(self.program, self.elements)
        inner.memo = dict(self.memo)
        inner.slot = slot
        where = None if node.where is None else inner.condition(node.where)
        of = None if node.of is None else inner.number(node.of)
        return where, of

    def aggregate(self, node: ir.Aggregate) -> Value:
        """`ir.Aggregate`'s Kleene rules over the history's slots."""
        history = self.made(node.history)
        assert isinstance(history, History), node
        chosen: list[Z3] = []  # the entry is there and `where` is true
        open_: list[Z3] = []  # the entry is there and `where` unknown
        ofs: list[Num] = []
        dates: list[Z3] = []
        day = "start" if node.history.type.entry == "medication" else "date"
        for there, slot in zip(history.present, history.slots, strict=True):
            where, of = self.per_entry(node, slot)
            chosen.append(there if where is None else z3.And(there, where.true))
            open_.append(FALSE if where is None else z3.And(there, z3.Not(where.known)))
            if of is not None:
                ofs.append(of)
            dates.append(slot[day].value)
        known = history.known
        if node.op == "exists":
            return Tri(
                z3.And(known, z3.Or(*chosen)),
                z3.And(known, *(z3.Not(c) for c in chosen), *(z3.Not(o) for o in open_)),
            )
        settled = [known, *(z3.Not(o) for o in open_)]
        if node.op == "count":
            return Num(z3.ToReal(z3.Sum(*(z3.If(c, 1, 0) for c in chosen))), z3.And(*settled))
        needed = [z3.Implies(c, of.known) for c, of in zip(chosen, ofs, strict=True)]
        if node.op == "sum":
            total = z3.Sum(*(z3.If(c, of.value, 0) for c, of in zip(chosen, ofs, strict=True)))
            return Num(total, z3.And(*settled, *needed))
        any_ = z3.Or(*chosen)
        if node.op in ("max", "min"):
            best = ofs[0].value
            seen: Z3 = FALSE
            for c, of in zip(chosen, ofs, strict=True):
                better = of.value > best if node.op == "max" else of.value < best
                best = z3.If(z3.And(c, z3.Or(z3.Not(seen), better)), of.value, best)
                seen = z3.Or(seen, c)
            return Num(best, z3.And(*settled, *needed, any_))
        # latest / earliest: the entries on the latest (earliest) date must agree.
        extreme = dates[0]
        seen = FALSE
        for c, d in zip(chosen, dates, strict=True):
            later = d > extreme if node.op == "latest" else d < extreme
            extreme = z3.If(z3.And(c, z3.Or(z3.Not(seen), later)), d, extreme)
            seen = z3.Or(seen, c)
        at = [z3.And(c, d == extreme) for c, d in zip(chosen, dates, strict=True)]
        value = ofs[0].value
        for a, of in zip(at, ofs, strict=True):
            value = z3.If(a, of.value, value)
        agree = [
            z3.Implies(z3.And(at[i], at[j]), ofs[i].value == ofs[j].value)
            for i in range(len(at))
            for j in range(i + 1, len(at))
        ]
        present = [z3.Implies(a, of.known) for a, of in zip(at, ofs, strict=True)]
        return Num(value, z3.And(*settled, any_, *present, *agree))

    # ---- calendar arithmetic: dates are ordinal days (Python's toordinal) ----

    def date_shift(self, node: ir.DateShift) -> Value:
        operand = self.num(node.operand)
        if node.unit in (CalendarUnit.DAY, CalendarUnit.WEEK):
            moved = operand.value + node.amount * (7 if node.unit is CalendarUnit.WEEK else 1)
            inside = z3.And(moved >= ORDINAL_FIRST, moved <= ORDINAL_LAST)
            return Num(moved, z3.And(operand.known, inside))
        year, month, day = self.civil(node.operand)
        months = node.amount * (12 if node.unit is CalendarUnit.YEAR else 1)
        total = year * 12 + (month - 1) + months
        new_year, new_month = total / 12, total % 12 + 1
        length = month_length(new_year, new_month)
        clamped = z3.If(day <= length, day, length)
        inside = z3.And(new_year >= 1, new_year <= 9999)
        self.parts[node.id] = (new_year, new_month, clamped)
        return Num(ordinal(new_year, new_month, clamped), z3.And(operand.known, inside))

    def civil(self, node: ir.Node) -> tuple[Z3, Z3, Z3]:
        """A date node's (year, month, day): a date element's calendar variables, a month
        shift's own parts, else divided down from the day number."""
        if isinstance(node, ir.Element) and node.key in self.elements.parts:
            return self.elements.parts[node.key]
        if node.id in self.parts:
            return self.parts[node.id]
        return civil(self.num(node).value)

    def date_diff(self, node: ir.DateDiff) -> Value:
        start, end = self.num(node.start), self.num(node.end)
        a, b = start.value, end.value
        if node.unit in (CalendarUnit.DAY, CalendarUnit.WEEK):
            days = b - a
            count = (
                days
                if node.unit is CalendarUnit.DAY
                else z3.If(days >= 0, days / 7, -((-days) / 7))
            )
        else:
            first, last = self.civil(node.start), self.civil(node.end)
            forward = _months_forward(first, last, node.unit)
            backward = _months_forward(last, first, node.unit)
            count = z3.If(a <= b, forward, -backward)
        return Num(z3.ToReal(count), z3.And(start.known, end.known))


ORDINAL_FIRST = datetime.date.min.toordinal()
ORDINAL_LAST = datetime.date.max.toordinal()
# Days since 0000-03-01 (Hinnant's civil calendar algorithms) = ordinal + 305.
_MARCH_EPOCH = 305


def civil(day: Z3) -> tuple[Z3, Z3, Z3]:
    """(year, month, day) of an ordinal day, with integer division by constants only."""
    n = day + _MARCH_EPOCH
    era = n / 146097
    doe = n - era * 146097
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    mp = (5 * doy + 2) / 153
    d = doy - (153 * mp + 2) / 5 + 1
    m = z3.If(mp < 10, mp + 3, mp - 9)
    y = yoe + era * 400 + z3.If(m <= 2, 1, 0)
    return y, m, d


# Days in the months before each month of a common year.
_MONTH_STARTS = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)


def ordinal(year: Z3, month: Z3, day: Z3) -> Z3:
    """The ordinal day of a (year, month, day): the days of the years before (a leap day
    every 4th year but centuries not divisible by 400), of the months before, and the day.

    The months are a table, not arithmetic: z3 decides a chain of `If`s on a month far
    faster than a division by 5."""
    before = year - 1
    start = z3.IntVal(_MONTH_STARTS[-1])
    for number in range(len(_MONTH_STARTS) - 1, 0, -1):
        start = z3.If(month == number, _MONTH_STARTS[number - 1], start)
    leap_day = z3.If(z3.And(_leap(year), month > 2), 1, 0)
    return 365 * before + before / 4 - before / 100 + before / 400 + start + leap_day + day


def _leap(year: Z3) -> Z3:
    return z3.And(year % 4 == 0, z3.Or(year % 100 != 0, year % 400 == 0))


def month_length(year: Z3, month: Z3) -> Z3:
    short = z3.Or(month == 4, month == 6, month == 9, month == 11)
    return z3.If(month == 2, z3.If(_leap(year), 29, 28), z3.If(short, 30, 31))


def _months_forward(start: tuple[Z3, Z3, Z3], end: tuple[Z3, Z3, Z3], unit: CalendarUnit) -> Z3:
    """Whole months (or years) from start to end, for start <= end (as ir.DateDiff says)."""
    sy, sm, sd = start
    ey, em, ed = end
    if unit is CalendarUnit.MONTH:
        length = month_length(ey, em)
        clamped = z3.If(sd <= length, sd, length)
        return (ey - sy) * 12 + (em - sm) - z3.If(clamped > ed, 1, 0)
    length = month_length(ey, sm)
    clamped = z3.If(sd <= length, sd, length)
    short = z3.Or(sm > em, z3.And(sm == em, clamped > ed))
    return ey - sy - z3.If(short, 1, 0)
