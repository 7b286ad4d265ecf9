"""The ELM engine: the core IR as ELM JSON, the executable form of CQL.

ELM (Expression Logical Model, release r1, the form CQL 1.5 translates to)
is what a CQL engine runs. Each data element is a library parameter; each
definition, criterion and sub-criterion an expression (`I2.a`), and a
conditional one also its applicability (`I4 applies`) and own condition
(`I4 met`); `Status` gives the record's status. Everything is in the `Unfiltered`
context: the parameters are the record, so no data model is involved.

The meaning is the IR's, operation for operation:

- CQL's `and`, `or` and `not` are Kleene on null, as the IR's are;
  `AtLeast` counts the true and the null operands (`if o is true then 1
  else 0`) and compares the counts with the threshold;
- CQL's Decimal has a scale of 8: every sum, difference, product and
  quotient is written `Round(x, 8)`, so that an engine holding decimals
  exactly and one holding binary floating point (cql-execution) give the
  same number whenever the exact one has at most 8 decimal places; a
  comparison whose unit factors or constants do not terminate within 8
  places is multiplied through until they are whole (`compare`); CQL's
  division by zero is null, as the IR's is;
- a quantity parameter is converted to the element's unit (`convert ... to`)
  and only its value is used from there on, as the IR's numbers are;
- `Member` is a chain of `=`, `Includes` a chain of `contains` behind an
  `is null` test (CQL's `contains` is false, not null, on a null list).

Only the IR reaches the generator; names and enum values are written as
strings in the JSON, never spliced into code.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from critlang import ir
from critlang.check import Type
from critlang.vocab import Kind, Outcome

Elm = dict[str, Any]

SYSTEM = "{urn:hl7-org:elm-types:r1}"
SCALE = 8  # CQL Decimal: 28 digits of precision, 8 of them after the point
STATUS = "Status"

# What an expression of each IR type holds: a quantity is read as its value in its unit.
_VALUE_TYPES = {
    "boolean": "Boolean",
    "number": "Decimal",
    "quantity": "Decimal",
    "date": "Date",
    "enum": "String",
    "ordinal": "String",
    "code": "String",
}
# The fields of a history's entries (a List of Tuples), by entry kind (vocab.EntryKind).
ENTRY_FIELDS = {
    "measurement": (
        ("date", "Date"),
        ("value", "Decimal"),
        ("low", "Decimal"),
        ("high", "Decimal"),
    ),
    "code": (("date", "Date"), ("code", "String"), ("end", "Date")),
    "medication": (("start", "Date"), ("end", "Date"), ("code", "String"), ("dose", "Decimal")),
}
_COMPARE = {"<": "Less", "<=": "LessOrEqual", ">": "Greater", ">=": "GreaterOrEqual", "=": "Equal"}
_ARITH = {"+": "Add", "-": "Subtract", "*": "Multiply", "/": "Divide"}


def applies_name(name: str) -> str:
    """The expression holding whether a criterion or sub-criterion applies."""
    return f"{name} applies"


def met_name(name: str) -> str:
    """The expression holding a conditional criterion's or sub-criterion's own condition."""
    return f"{name} met"


def part_name(criterion: ir.Criterion, part: ir.Part) -> str:
    """The expression holding a sub-criterion's value, as `I2.a`."""
    return f"{criterion.id}.{part.name}"


def _parameters(program: ir.Program) -> list[tuple[str, Type]]:
    """The library's parameters: each element, and a date's last possible day (`name latest`)."""
    out: list[tuple[str, Type]] = []
    for name, kind in program.elements:
        out.append((name, kind))
        if kind.kind == "date":
            out.append((f"{name} latest", kind))
    return out


def type_name(kind: Type) -> Elm:
    """The CQL type of a data element's parameter."""
    named = {
        "boolean": "Boolean",
        "number": "Decimal",
        "quantity": "Quantity",
        "date": "Date",
        "enum": "String",
        "ordinal": "String",
        "code": "String",
    }
    if kind.kind == "history":
        fields = [
            {"name": name, "elementType": _named(field)} for name, field in ENTRY_FIELDS[kind.entry]
        ]
        return {
            "type": "ListTypeSpecifier",
            "elementType": {"type": "TupleTypeSpecifier", "element": fields},
        }
    if kind.kind == "set":
        return {"type": "ListTypeSpecifier", "elementType": _named("String")}
    return _named(named[kind.kind])


def library(program: ir.Program, version: str | None = None) -> Elm:
    """The ELM library of a lowered protocol, as JSON-ready dictionaries."""
    generator = _Generator(program)
    identifier: Elm = {"id": program.name}
    if version:
        identifier["version"] = version
    return {
        "library": {
            "identifier": identifier,
            "schemaIdentifier": {"id": "urn:hl7-org:elm", "version": "r1"},
            "usings": {
                "def": [
                    {"localIdentifier": "System", "uri": "urn:hl7-org:elm-types:r1"},
                ]
            },
            "parameters": {
                "def": [
                    {
                        "name": name,
                        "accessLevel": "Public",
                        "parameterTypeSpecifier": type_name(kind),
                        # Unknown unless given: said outright, as some engines need it.
                        "default": {"type": "Null"},
                    }
                    for name, kind in _parameters(program)
                ]
            },
            "contexts": {"def": [{"name": "Unfiltered"}]},
            "statements": {"def": generator.statements()},
        }
    }


def decimal_text(value: Fraction) -> str | None:
    """A rational as a CQL Decimal literal, or None if it needs more than 8 places."""
    scaled = value * 10**SCALE
    if scaled.denominator != 1:
        return None
    whole, fraction = divmod(abs(scaled.numerator), 10**SCALE)
    places = f"{fraction:0{SCALE}d}".rstrip("0") or "0"
    return f"{'-' if value < 0 else ''}{whole}.{places}"


class _Generator:
    def __init__(self, program: ir.Program) -> None:
        self.program = program
        # Nodes that have an expression of their own are referred to by name; a data
        # element, definition or constant keeps its own (it may be shared by many).
        self.named: dict[int, str] = {node.id: name for name, node in program.definitions}
        for criterion in program.criteria:
            for part in criterion.parts:
                name = part_name(criterion, part)
                if part.applies is not None:
                    self.name(part.applies, applies_name(name))
                    self.name(part.condition, met_name(name))
                self.name(part.value, name)
            if criterion.applies is not None:
                self.name(criterion.applies, applies_name(criterion.id))
                self.name(criterion.condition, met_name(criterion.id))
        self.types = dict(program.elements)
        self.alias: str | None = None  # the alias of the entry an `Entry` reads

    def name(self, node: ir.Node, name: str) -> None:
        if not isinstance(node, ir.Element | ir.Definition | ir.Const):
            self.named.setdefault(node.id, name)

    def statements(self) -> list[Elm]:
        out: list[Elm] = [self.define(name, node) for name, node in self.program.definitions]
        for criterion in self.program.criteria:
            for part in criterion.parts:
                name = part_name(criterion, part)
                if part.applies is not None:
                    out.append(self.define(applies_name(name), part.applies))
                    out.append(self.define(met_name(name), part.condition))
                out.append(self.define(name, part.value))
            if criterion.applies is not None:
                out.append(self.define(applies_name(criterion.id), criterion.applies))
                out.append(self.define(met_name(criterion.id), criterion.condition))
            out.append(self.define(criterion.id, criterion.value))
        out.append(self.status())
        return out

    def define(self, name: str, node: ir.Node) -> Elm:
        return {
            "name": name,
            "context": "Unfiltered",
            "accessLevel": "Public",
            **_result_type(node.type),
            "expression": self.expr(node, root=True),
        }

    def status(self) -> Elm:
        """Ineligible when an inclusion is false or an exclusion true; eligible when all settle."""
        refs = [(c.kind, {"type": "ExpressionRef", "name": c.id}) for c in self.program.criteria]
        failing = [_unary("IsFalse" if k is Kind.INCLUSION else "IsTrue", r) for k, r in refs]
        passing = [_unary("IsTrue" if k is Kind.INCLUSION else "IsFalse", r) for k, r in refs]
        expression = _if(
            _junction("Or", failing),
            _string(Outcome.INELIGIBLE.value),
            _if(
                _junction("And", passing),
                _string(Outcome.ELIGIBLE.value),
                _string(Outcome.UNDETERMINED.value),
            ),
        )
        return {
            "name": STATUS,
            "context": "Unfiltered",
            "accessLevel": "Public",
            "resultTypeName": SYSTEM + "String",
            "expression": expression,
        }

    # ---- one arm per IR node ----

    def expr(self, node: ir.Node, root: bool = False) -> Elm:
        if not root and node.id in self.named:
            return {"type": "ExpressionRef", "name": self.named[node.id]}
        match node:
            case ir.Const(value=value):
                return _constant(value)
            case ir.Element(name=name, bound="latest"):
                # A date's last possible day: its own parameter, else the date itself.
                latest = {"type": "ParameterRef", "name": node.key}
                return {"type": "Coalesce", "operand": [latest, self.element(name)]}
            case ir.Element(name=name):
                return self.element(name)
            case ir.Definition(name=name):
                return {"type": "ExpressionRef", "name": name}
            case ir.Not(operand=a):
                return _unary("Not", self.expr(a))
            case ir.And(operands=operands):
                return _junction("And", [self.expr(x) for x in operands])
            case ir.Or(operands=operands):
                return _junction("Or", [self.expr(x) for x in operands])
            case ir.AtLeast(count=count, operands=operands, weights=tuple() as weights):
                return self.score(count, [self.expr(x) for x in operands], weights)
            case ir.AtLeast(count=int() as count, operands=operands):
                return self.at_least(count, [self.expr(x) for x in operands])
            case ir.Compare(op="!=", left=a, right=b):
                return _unary("Not", self.compare("=", a, b))
            case ir.Compare(op=op, left=a, right=b):
                return self.compare(op, a, b)
            case ir.Arith(op=op, left=a, right=b):
                return _round(_binary(_ARITH[op], self.expr(a), self.expr(b)))
            case ir.Scale(operand=a, factor=factor):
                return self.scale(self.expr(a), factor)
            case ir.Member(operand=a, values=values):
                x = self.expr(a)
                if not values:
                    return _if(_unary("IsNull", x), _null("Boolean"), _boolean(False))
                return _junction("Or", [_binary("Equal", x, _string(v)) for v in sorted(values)])
            case ir.Includes(operand=a, every=every, values=values):
                x = self.expr(a)
                held = [_binary("Contains", x, _string(v)) for v in sorted(values)]
                test = _junction("And" if every else "Or", held)
                return _if(_unary("IsNull", x), _null("Boolean"), test)
            case ir.InCodes(operand=a, codes=codes):
                x = self.expr(a)
                tests = [_binary("Equal", x, _string(c)) for c in sorted(codes.codes)]
                tests += [_binary("StartsWith", x, _string(p)) for p in codes.prefixes]
                return _if(_unary("IsNull", x), _null("Boolean"), _junction("Or", tests))
            case ir.Entry(field="ongoing"):
                assert self.alias is not None, "an entry is read inside its history's query"
                return _unary("IsNull", {"type": "Property", "path": "end", "scope": self.alias})
            case ir.Entry(field=field):
                assert self.alias is not None, "an entry is read inside its history's query"
                return {"type": "Property", "path": field, "scope": self.alias}
            case ir.Aggregate():
                return self.aggregate(node)
            case ir.DateShift(operand=a, amount=amount, unit=unit):
                # CQL adds calendar durations as the IR does: the day of the month is kept,
                # or the month's last day taken.
                moved = _quantity(abs(amount), unit.value)
                return _binary("Add" if amount >= 0 else "Subtract", self.expr(a), moved)
            case ir.DateDiff(unit=unit, start=a, end=b):
                between = {
                    "type": "DurationBetween",
                    "precision": unit.value.capitalize(),
                    "operand": [self.expr(a), self.expr(b)],
                }
                return _unary("ToDecimal", between)
        raise AssertionError(f"the ELM engine has no rule for {node!r}")

    # ---- histories: queries over a list of tuples ----

    def within(self, alias: str, node: ir.Node) -> Elm:
        """`node` with its entry fields read from the query's alias."""
        outer, self.alias = self.alias, alias
        try:
            return self.expr(node)
        finally:
            self.alias = outer

    def aggregate(self, node: ir.Aggregate) -> Elm:
        """An `ir.Aggregate` with its Kleene rules, as queries over the history's list.

        A query's `where` keeps only the entries where it is true; the entries
        where it is null are asked for by a query of their own (`open`). Every
        query returns `all`: CQL's default would drop entries that are alike.
        """
        alias = f"E{node.id}"
        history: Elm = {"type": "ParameterRef", "name": node.history.name}

        def query(where: Elm | None, returned: Elm | None = None) -> Elm:
            found: Elm = {
                "type": "Query",
                "source": [{"alias": alias, "expression": history}],
                "relationship": [],
                "return": {
                    "distinct": False,
                    "expression": returned or {"type": "AliasRef", "name": alias},
                },
            }
            if where is not None:
                found["where"] = where
            return found

        where = None if node.where is None else self.within(alias, node.where)
        unknown = [_unary("IsNull", history)]
        if where is not None:
            unknown.append(_unary("Exists", query(_unary("IsNull", where))))
        kind = _VALUE_TYPES.get(node.type.kind, "Decimal")
        if node.op == "exists":
            found = _unary("Exists", query(where))
            undecided = (
                _boolean(False)
                if where is None
                else _if(unknown[1], _null("Boolean"), _boolean(False))
            )
            return _if(unknown[0], _null("Boolean"), _if(found, _boolean(True), undecided))
        if node.op == "count":
            count = {"type": "ToDecimal", "operand": {"type": "Count", "source": query(where)}}
            return _if(_junction("Or", unknown), _null(kind), count)
        assert node.of is not None
        of = self.within(alias, node.of)
        date: Elm = {
            "type": "Property",
            "path": "start" if node.history.type.entry == "medication" else "date",
            "scope": alias,
        }
        selected = where
        if node.op in ("latest", "earliest"):
            extreme = "Max" if node.op == "latest" else "Min"
            day = {"type": extreme, "source": query(where, date)}
            same = _binary("Equal", dict(date), day)
            selected = same if where is None else _binary("And", where, same)
        blank = _unary("IsNull", of)
        missing = blank if selected is None else _binary("And", selected, blank)
        unknown.append(_unary("Exists", query(missing)))
        values = query(selected, of)
        match node.op:
            case "sum":
                total = {"type": "Sum", "source": values}
                value = _round({"type": "Coalesce", "operand": [total, _decimal(Fraction(0))]})
            case "max" | "min":
                value = {"type": node.op.capitalize(), "source": values}
            case _:
                low, high = {"type": "Min", "source": values}, {"type": "Max", "source": values}
                value = _if(_binary("Equal", high, low), dict(low), _null(kind))
        return _if(_junction("Or", unknown), _null(kind), value)

    # ---- comparisons kept exact past 8 decimal places ----

    def compare(self, op: str, left: ir.Node, right: ir.Node) -> Elm:
        """`left op right`; sides whose unit factors or constants do not terminate
        within 8 places are multiplied through by the least number that makes them
        whole (1 'mo' in weeks, 4.348214…, is 1461 / 336), so the comparison is exact."""
        multiple = 1
        if left.type.numeric:
            found: list[Fraction] = []
            self.multipliers(left, Fraction(1), found)
            self.multipliers(right, Fraction(1), found)
            for value in found:
                if decimal_text(value) is None:
                    multiple = math.lcm(multiple, value.denominator)
        if multiple == 1:
            return _binary(_COMPARE[op], self.expr(left), self.expr(right))
        factor = Fraction(multiple)
        return _binary(_COMPARE[op], self.scaled(left, factor), self.scaled(right, factor))

    def multipliers(self, node: ir.Node, by: Fraction, out: list[Fraction]) -> None:
        """What multiplies each term of a sum: a constant's value, a term's factor."""
        match node:
            case ir.Const(value=Fraction() as value):
                out.append(by * value)
            case ir.Scale(operand=a, factor=factor) if node.id not in self.named:
                self.multipliers(a, by * factor, out)
            case ir.Arith(op="+" | "-", left=a, right=b) if node.id not in self.named:
                self.multipliers(a, by, out)
                self.multipliers(b, by, out)
            case (
                ir.Arith(op="*", left=ir.Const(value=Fraction() as k), right=a)
                | ir.Arith(op="*", left=a, right=ir.Const(value=Fraction() as k))
            ) if node.id not in self.named:
                self.multipliers(a, by * k, out)
            case ir.Arith(op="/", left=a, right=ir.Const(value=Fraction() as k)) if (
                k != 0 and node.id not in self.named
            ):
                self.multipliers(a, by / k, out)
            case _:
                out.append(by)

    def scaled(self, node: ir.Node, by: Fraction) -> Elm:
        """`node` times `by`, the multiplier pushed down to each term (see `multipliers`)."""
        match node:
            case ir.Const(value=Fraction() as value):
                return _decimal(by * value)
            case ir.Scale(operand=a, factor=factor) if node.id not in self.named:
                return self.scaled(a, by * factor)
            case ir.Arith(op="+" | "-" as op, left=a, right=b) if node.id not in self.named:
                return _round(_binary(_ARITH[op], self.scaled(a, by), self.scaled(b, by)))
            case (
                ir.Arith(op="*", left=ir.Const(value=Fraction() as k), right=a)
                | ir.Arith(op="*", left=a, right=ir.Const(value=Fraction() as k))
            ) if node.id not in self.named:
                return self.scaled(a, by * k)
            case ir.Arith(op="/", left=a, right=ir.Const(value=Fraction() as k)) if (
                k != 0 and node.id not in self.named
            ):
                return self.scaled(a, by / k)
        term = self.expr(node)
        return term if by == 1 else _round(_binary("Multiply", term, _decimal(by)))

    def element(self, name: str) -> Elm:
        parameter: Elm = {"type": "ParameterRef", "name": name}
        kind = self.types[name]
        if kind.kind != "quantity":
            return parameter
        converted = {"type": "ConvertQuantity", "operand": [parameter, _string(kind.unit)]}
        return {"type": "Property", "path": "value", "source": converted}

    def at_least(self, count: int, operands: list[Elm]) -> Elm:
        """True with `count` true operands, false when fewer than `count` can be, else null."""
        if not operands:
            return _boolean(count <= 0)
        met = _sum([_if(_unary("IsTrue", x), _integer(1), _integer(0)) for x in operands])
        open_ = _sum([_if(_unary("IsNull", x), _integer(1), _integer(0)) for x in operands])
        return _if(
            _binary("GreaterOrEqual", met, _integer(count)),
            _boolean(True),
            _if(
                _binary("Less", _binary("Add", met, open_), _integer(count)),
                _boolean(False),
                _null("Boolean"),
            ),
        )

    def score(self, count: int | Fraction, operands: list[Elm], weights: Sequence[Fraction]) -> Elm:
        """A weighted AtLeast, in whole numbers: every weight and the threshold are
        multiplied by their common denominator, so no Decimal rounding enters."""
        common = math.lcm(Fraction(count).denominator, *(w.denominator for w in weights))
        whole = [int(w * common) for w in weights]
        threshold = int(Fraction(count) * common)
        if not operands:
            return _boolean(threshold <= 0)
        sure = _sum(
            [
                _if(_unary("IsTrue", x), _integer(w), _integer(0))
                for x, w in zip(operands, whole, strict=True)
            ]
        )
        possible = _sum(
            [
                _if(_unary("IsFalse", x), _integer(0), _integer(w))
                for x, w in zip(operands, whole, strict=True)
            ]
        )
        return _if(
            _binary("GreaterOrEqual", sure, _integer(threshold)),
            _boolean(True),
            _if(_binary("Less", possible, _integer(threshold)), _boolean(False), _null("Boolean")),
        )

    def scale(self, operand: Elm, factor: Fraction) -> Elm:
        if decimal_text(factor) is not None:
            return _round(_binary("Multiply", operand, _decimal(factor)))
        product = _binary("Multiply", operand, _decimal(Fraction(factor.numerator)))
        return _round(_binary("Divide", product, _decimal(Fraction(factor.denominator))))


# ---- ELM nodes ----


def _result_type(kind: Type) -> Elm:
    if kind.kind == "set":
        return {"resultTypeSpecifier": type_name(kind)}
    return {"resultTypeName": SYSTEM + _VALUE_TYPES[kind.kind]}


def _named(name: str) -> Elm:
    return {"type": "NamedTypeSpecifier", "name": SYSTEM + name}


def _literal(kind: str, value: str) -> Elm:
    return {"type": "Literal", "valueType": SYSTEM + kind, "value": value}


def _boolean(value: bool) -> Elm:
    return _literal("Boolean", "true" if value else "false")


def _integer(value: int) -> Elm:
    return _literal("Integer", str(value))


def _string(value: str) -> Elm:
    return _literal("String", value)


def _decimal(value: Fraction) -> Elm:
    text = decimal_text(value)
    if text is not None:
        return _literal("Decimal", text)
    # Beyond CQL's scale: the engine's own quotient, rounded as every other result.
    num, den = Fraction(value.numerator), Fraction(value.denominator)
    return _round(_binary("Divide", _decimal(num), _decimal(den)))


def _constant(value: ir.Value) -> Elm:
    if value is None:  # unknown: a partial date's comparison, the Kleene bounds of a history
        return _null("Boolean")
    if isinstance(value, bool):
        return _boolean(value)
    if isinstance(value, Fraction):
        return _decimal(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, datetime.date):
        return {
            "type": "Date",
            "year": _integer(value.year),
            "month": _integer(value.month),
            "day": _integer(value.day),
        }
    return {"type": "List", "element": [_string(v) for v in sorted(value)]}


def _quantity(value: int, unit: str) -> Elm:
    """A calendar duration, `6 months`: CQL's calendar units, not UCUM's 'mo'."""
    return {"type": "Quantity", "value": value, "unit": unit if value == 1 else unit + "s"}


def _null(kind: str) -> Elm:
    return {"type": "As", "operand": {"type": "Null"}, "asType": SYSTEM + kind}


def _unary(kind: str, operand: Elm) -> Elm:
    return {"type": kind, "operand": operand}


def _binary(kind: str, left: Elm, right: Elm) -> Elm:
    return {"type": kind, "operand": [left, right]}


def _round(operand: Elm) -> Elm:
    return {"type": "Round", "operand": operand, "precision": _integer(SCALE)}


def _if(condition: Elm, then: Elm, otherwise: Elm) -> Elm:
    return {"type": "If", "condition": condition, "then": then, "else": otherwise}


def _junction(kind: str, operands: Sequence[Elm]) -> Elm:
    """n-ary and/or as a balanced tree of binary ones: depth grows as log n."""
    if not operands:
        return _boolean(kind == "And")
    if len(operands) == 1:
        return operands[0]
    middle = len(operands) // 2
    return _binary(kind, _junction(kind, operands[:middle]), _junction(kind, operands[middle:]))


def _sum(operands: Sequence[Elm]) -> Elm:
    if len(operands) == 1:
        return operands[0]
    middle = len(operands) // 2
    return _binary("Add", _sum(operands[:middle]), _sum(operands[middle:]))
