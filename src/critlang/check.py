"""The checker: names, types, units and structure of a parsed protocol.

It never stops at the first problem: every diagnostic is collected, so an
author fixes a file in one pass. Its result, `Checked`, carries the type of
every expression, which the compiler and the SQL generator rely on.
"""

from __future__ import annotations

import difflib
import re
from fractions import Fraction

import attrs

from critlang import codes, units
from critlang import syntax as s
from critlang.diagnostics import CritError, Diagnostic, sort_key
from critlang.parser import parse
from critlang.terminology import Terminology
from critlang.vocab import ENTRY_LAYOUT, CodeSystem, EntryKind

OUTCOMES = ("eligible", "ineligible", "undetermined")

# Everyday spellings that are not UCUM, with the code an author most likely meant.
UCUM_SPELLINGS = {
    **dict.fromkeys(("y", "yr", "yrs", "year", "years"), "a"),
    **dict.fromkeys(("month", "months", "mon"), "mo"),
    **dict.fromkeys(("week", "weeks"), "wk"),
    **dict.fromkeys(("day", "days"), "d"),
    **dict.fromkeys(("hr", "hrs", "hour", "hours"), "h"),
    **dict.fromkeys(("sec", "secs"), "s"),
    "mmhg": "mm[Hg]",
    "iu": "[IU]",
    "mcg": "ug",
    "lb": "[lb_av]",
    "lbs": "[lb_av]",
}


@attrs.frozen
class Type:
    """The type of a value: kind, and for quantities the unit it is held in."""

    kind: str  # boolean | number | quantity | date | enum | set | ordinal | code | history | error
    unit: str = units.DIMENSIONLESS
    values: tuple[str, ...] = ()  # enum and set values; an ordinal's, lowest first
    molar_mass: Fraction | None = None
    integer: bool = False  # a number that is always whole (counts, calendar differences)
    entry: str = ""  # a history's entries: measurement | code | medication (vocab.EntryKind)
    complete: bool = False  # a history declared complete: no entry means never

    @property
    def numeric(self) -> bool:
        return self.kind in ("number", "quantity")

    def describe(self) -> str:
        if self.kind == "quantity":
            return f"a quantity in '{self.unit}'"
        if self.kind in ("enum", "set"):
            word = "one of" if self.kind == "enum" else "a set of"
            return f"{word} ({', '.join(self.values)})"
        if self.kind == "ordinal":
            return f"a value of the scale ({', '.join(self.values)})"
        if self.kind == "number" and self.integer:
            return "a whole number"
        if self.kind == "history":
            return f"a history of {ENTRY_WORDS.get(self.entry, self.entry)}"
        return {
            "boolean": "a yes/no condition",
            "number": "a whole number" if self.integer else "a number",
            "date": "a date",
            "calendar": "a calendar duration",
            "code": "a code",
        }.get(self.kind, self.kind)


ENTRY_WORDS = {"measurement": "measurements", "code": "codes", "medication": "medications"}
# What each field of a history entry in an example holds, and which an entry needs (as
# records.py reads the JSON entry lists; docs/records.md).
_ENTRY_KINDS = {
    "date": "date",
    "start": "date",
    "end": "date",
    "code": "code",
    "value": "amount",
    "low": "amount",
    "high": "amount",
    "dose": "amount",
    "source": "text",
}
_ENTRY_REQUIRED = {
    "measurement": ("date", "value"),
    "code": ("date", "code"),
    "medication": ("start", "code"),
}


BOOLEAN = Type("boolean")
NUMBER = Type("number")
INTEGER = Type("number", integer=True)
DATE = Type("date")
ERROR = Type("error")
INTEGER = Type("number", integer=True)
CALENDAR = Type("calendar")  # `6 months`: only in date arithmetic and windows
PERCENT = Type("quantity", "%")
CODE = Type("code")
COUNT = Type("number", integer=True)


def declared_type(declared: s.DeclaredType, molar_mass: Fraction | None = None) -> Type:
    """The value type of a data element's declared type."""
    match declared:
        case s.BooleanType() | s.AttestationType():
            return BOOLEAN
        case s.NumberType():
            return NUMBER
        case s.QuantityType(unit=unit) | s.DurationType(unit=unit):
            return Type("quantity", unit, molar_mass=molar_mass)
        case s.DateType():
            return DATE
        case s.EnumType(values=values):
            return Type("enum", values=tuple(v.text for v in values))
        case s.SetType(values=values):
            return Type("set", values=tuple(v.text for v in values))
        case s.IntegerType():
            return INTEGER
        case s.OrdinalType(values=values):
            return Type("ordinal", values=tuple(v.text for v in values))
        case s.CodeType():
            return CODE
        case s.HistoryType(entry=entry, unit=unit):
            return Type("history", unit or units.DIMENSIONLESS, entry=entry, molar_mass=molar_mass)


def literal_type(literal: s.Literal) -> Type:
    match literal:
        case s.NumberLit():
            return NUMBER
        case s.QuantityLit(unit=unit):
            return Type("quantity", unit)
        case s.DateLit():
            return DATE


def molar_mass_of(element: s.DataElement) -> Fraction | None:
    mass = element.molar_mass
    if mass is None or not units.is_valid(mass.unit) or not units.is_molar_mass(mass.unit):
        return None
    if mass.value <= 0:  # reported by the checker; as a divisor it would stop every conversion
        return None
    return Fraction(mass.value) * units.factor(mass.unit, "g/mol")


@attrs.frozen
class Checked:
    """A protocol that passed the checker, with every expression's type."""

    protocol: s.Protocol
    types: dict[object, Type]
    elements: dict[str, s.DataElement]
    constants: dict[str, s.Constant]
    definitions: dict[str, s.Definition]
    element_types: dict[str, Type]
    code_lists: dict[str, s.CodeList] = attrs.field(factory=dict)
    # What `"CODE" and descendants` is decided by when evaluating (none: unknown).
    terminology: Terminology | None = None

    def with_terminology(self, terminology: Terminology | None) -> Checked:
        """The protocol evaluated against `terminology` (lowering reads it)."""
        return attrs.evolve(self, terminology=terminology)

    def type_of(self, node: object) -> Type:
        return self.types[node]

    # Shared by every back end (the evaluator, SQL, the analyser), so that they
    # fold constants and convert units identically.

    def factor(self, source: s.Expr, target: s.Expr) -> Fraction:
        """The exact number that turns a value of `source` into the unit of `target`."""
        source_type, target_type = self.types[source], self.types[target]
        molar_mass = source_type.molar_mass or target_type.molar_mass
        return units.factor(source_type.unit, target_type.unit, molar_mass)

    def fold(self, node: s.Expr) -> Fraction | None:
        """The exact value of a numeric expression made only of literals and constants."""
        match node:
            case s.NumberLit(value=value) | s.QuantityLit(value=value):
                return Fraction(value)
            case s.Ref(name=name) if name in self.constants:
                literal = self.constants[name].value
                return None if isinstance(literal, s.DateLit) else Fraction(literal.value)
            case s.Arithmetic(op=op, left=a, right=b):
                left, right = self.fold(a), self.fold(b)
                if left is None or right is None:
                    return None
                if op in "+-":
                    right *= self.factor(b, a)
                    return left + right if op == "+" else left - right
                if op == "*":
                    return left * right
                return None if right == 0 else left / right
        return None


def check(protocol: s.Protocol) -> tuple[Checked, list[Diagnostic]]:
    """Check a protocol; return its typed form and every diagnostic found."""
    checker = _Checker(protocol)
    checker.run()
    checked = Checked(
        protocol=protocol,
        types=checker.types,
        elements=checker.elements,
        constants=checker.constants,
        definitions=checker.definitions,
        element_types=checker.element_types,
        code_lists=checker.code_lists,
    )
    return checked, checker.diagnostics


class _Checker:
    def __init__(self, protocol: s.Protocol) -> None:
        self.protocol = protocol
        self.diagnostics: list[Diagnostic] = []
        self.types: dict[object, Type] = {}
        self.elements: dict[str, s.DataElement] = {}
        self.constants: dict[str, s.Constant] = {}
        self.definitions: dict[str, s.Definition] = {}
        self.element_types: dict[str, Type] = {}
        self.definition_types: dict[str, Type] = {}
        self.in_progress: list[str] = []
        self.used: set[str] = set()
        # (unit, declared unit) -> the element option that converts records between them
        self.conversions: dict[tuple[str, str], s.UnitConversion] = {}
        self.code_lists: dict[str, s.CodeList] = {}
        # The entries the selectors being checked look at, innermost last; None
        # where no entry may be read (a window's date).
        self.entries: list[Type | None] = []
        self.compared: set[int] = set()  # ids of the operands of comparisons being checked

    # ---- reporting ----

    def error(self, code: str, span: s.Span, message: str, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code, "error", span, message, hint))

    def warning(self, code: str, span: s.Span, message: str, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code, "warning", span, message, hint))

    def unit_ok(self, code: str, span: s.Span) -> bool:
        if units.is_valid(code):
            return True
        usual = UCUM_SPELLINGS.get(code.lower()) or units.suggest(code)
        self.error(
            "CRIT002",
            span,
            f"'{code}' is not a UCUM unit code",
            f"the UCUM code is '{usual}'"
            if usual
            else "write units as UCUM codes, e.g. 'mg/dL', 'umol/L', 'a' (years), 'mo', 'wk', 'U/L'",
        )
        return False

    # ---- declarations ----

    def run(self) -> None:
        self.declare_names()
        for code_list in self.protocol.code_lists:
            self.check_code_list(code_list)
        for element in self.protocol.elements:
            self.check_element(element)
        for constant in self.protocol.constants:
            self.types[constant.value] = self.check_literal(constant.value)
        for definition in self.protocol.definitions:
            if self.definitions.get(definition.name.text) is definition:
                self.definition_type(definition.name.text)
            else:  # its name was taken (and reported); its expression is still checked
                self.infer(definition.expr)
        self.check_reference()
        self.check_criteria()
        for example in self.protocol.examples:
            self.check_example(example)
        self.report_unused()

    def declare_names(self) -> None:
        seen: dict[str, s.Span] = {}
        declarations: list[tuple[s.Name, object]] = [
            *((e.name, e) for e in self.protocol.elements),
            *((c.name, c) for c in self.protocol.constants),
            *((d.name, d) for d in self.protocol.definitions),
            *((c.name, c) for c in self.protocol.code_lists),
        ]
        for name, node in declarations:
            if name.text in seen:
                first = seen[name.text]
                self.error(
                    "CRIT003",
                    name.span,
                    f"'{name.text}' is declared twice",
                    f"the first declaration is at line {first.line}; rename one of them",
                )
                continue
            seen[name.text] = name.span
            match node:
                case s.DataElement():
                    self.elements[name.text] = node
                case s.Constant():
                    self.constants[name.text] = node
                case s.Definition():
                    self.definitions[name.text] = node
                case s.CodeList():
                    self.code_lists[name.text] = node

    def check_element(self, element: s.DataElement) -> None:
        declared = element.type
        unit_valid = True
        if isinstance(declared, s.QuantityType | s.DurationType):
            unit_valid = self.unit_ok(declared.unit, declared.span)
            if (
                unit_valid
                and isinstance(declared, s.DurationType)
                and not units.is_time(declared.unit)
            ):
                self.error(
                    "CRIT012",
                    declared.span,
                    f"a duration needs a unit of time, not '{declared.unit}'",
                    "use 'd', 'wk', 'mo' or 'a'",
                )
                unit_valid = False  # every comparison with it would repeat the error
        if isinstance(declared, s.EnumType | s.SetType | s.OrdinalType):
            self.check_enum_values(declared.values)
        if isinstance(declared, s.HistoryType):
            unit_valid = self.check_history_type(declared)
        elif element.complete:
            self.error(
                "CRIT051",
                element.span,
                f"'{element.name.text}' is not a history, so it cannot be complete",
                "'complete' says a history holds every entry: history of codes complete",
            )
        if element.plausible_range is not None:
            low, high = element.plausible_range
            if not isinstance(
                declared, s.NumberType | s.IntegerType | s.QuantityType | s.DurationType
            ):
                self.error(
                    "CRIT011",
                    element.span,
                    f"'{element.name.text}' is not a number, so it can have no range",
                )
            elif low > high:
                self.error(
                    "CRIT011",
                    element.span,
                    f"the range of '{element.name.text}' is empty: {low} is more than {high}",
                    "write the lower limit first",
                )
        if element.molar_mass is not None:
            self.check_molar_mass(element)
        if element.accepts or element.conversions:
            self.check_record_units(element)
        molar_mass = molar_mass_of(element) if unit_valid else None
        kind = declared_type(declared, molar_mass)
        if element.complete and kind.kind == "history":
            kind = attrs.evolve(kind, complete=True)
        self.element_types[element.name.text] = kind if unit_valid else ERROR

    def check_molar_mass(self, element: s.DataElement) -> None:
        mass = element.molar_mass
        assert mass is not None
        declared = element.type
        measured = isinstance(declared, s.HistoryType) and declared.entry == "measurement"
        if not isinstance(declared, s.QuantityType) and not measured:
            self.error(
                "CRIT016",
                mass.span,
                "only a quantity or a history of quantity can have a molar mass",
            )
        elif self.unit_ok(mass.unit, mass.span) and not units.is_molar_mass(mass.unit):
            self.error(
                "CRIT016",
                mass.span,
                f"a molar mass is mass per amount of substance, not '{mass.unit}'",
                "write it in 'g/mol'",
            )
        elif mass.value <= 0:
            self.error("CRIT016", mass.span, "a molar mass must be more than zero")

    def check_record_units(self, element: s.DataElement) -> None:
        """`accepts` and `convert`: the units of another kind a record may use."""
        declared = element.type
        if isinstance(declared, s.HistoryType) and declared.unit is not None:
            declared = s.QuantityType(declared.unit, declared.span)
        if not isinstance(declared, s.QuantityType):
            first = (element.accepts or tuple(c.unit for c in element.conversions))[0]
            self.error("CRIT023", first.span, "only a quantity can accept or convert units")
            return
        if not units.is_valid(declared.unit):
            return
        seen: set[str] = set()
        for ref in (*element.accepts, *(c.unit for c in element.conversions)):
            if not self.unit_ok(ref.code, ref.span):
                continue
            if ref.code in seen:
                self.error("CRIT023", ref.span, f"'{ref.code}' is listed twice", "keep one")
            seen.add(ref.code)
            if units.compatible(ref.code, declared.unit):
                self.error(
                    "CRIT023",
                    ref.span,
                    f"'{ref.code}' already converts to '{declared.unit}': it is the same kind",
                    "remove it; records in units of the same kind convert by their exact factor",
                )
        for ref in element.accepts:
            if units.is_valid(ref.code) and not units.commensurable(ref.code, declared.unit):
                self.error(
                    "CRIT023",
                    ref.span,
                    f"'{ref.code}' ({units.dimension(ref.code)}) cannot be read as "
                    f"'{declared.unit}' ({units.dimension(declared.unit)}) by a factor",
                    "declare a formula instead: convert 'unit' as 0.5 * value + 1",
                )
        for conversion in element.conversions:
            self.conversions.setdefault((conversion.unit.code, declared.unit), conversion)
            if conversion.scale == 0:
                self.error(
                    "CRIT023",
                    conversion.span,
                    "a conversion that multiplies by 0 reads every record as the same value",
                )

    def check_enum_values(self, values: tuple[s.Name, ...]) -> None:
        seen: set[str] = set()
        for value in values:
            if value.text in seen:
                self.error("CRIT014", value.span, f"the value '{value.text}' is listed twice")
            seen.add(value.text)

    def check_literal(self, literal: s.Literal) -> Type:
        if isinstance(literal, s.QuantityLit) and not self.unit_ok(literal.unit, literal.span):
            return ERROR
        return literal_type(literal)

    def definition_type(self, name: str) -> Type:
        if name in self.definition_types:
            return self.definition_types[name]
        definition = self.definitions[name]
        if name in self.in_progress:
            cycle = [*self.in_progress[self.in_progress.index(name) :], name]
            self.error(
                "CRIT009",
                definition.name.span,
                f"definition '{name}' depends on itself: {' -> '.join(cycle)}",
                "a definition may use only definitions that do not use it",
            )
            self.definition_types[name] = ERROR
            return ERROR
        self.in_progress.append(name)
        kind = self.infer(definition.expr)
        self.in_progress.pop()
        self.definition_types.setdefault(name, kind)
        return self.definition_types[name]

    def check_criteria(self) -> None:
        seen: dict[str, s.Span] = {}
        for criterion in self.protocol.criteria:
            ident = criterion.id
            if ident.text in seen:
                self.error(
                    "CRIT004",
                    ident.span,
                    f"criterion id {ident.text} is used twice",
                    f"the first {ident.text} is at line {seen[ident.text].line}; ids must be unique",
                )
            seen.setdefault(ident.text, ident.span)
            expected_prefix = "I" if criterion.kind == "inclusion" else "E"
            if not ident.text.startswith(expected_prefix):
                self.error(
                    "CRIT018",
                    ident.span,
                    f"{criterion.kind} {ident.text} has the id of an "
                    f"{'exclusion' if expected_prefix == 'I' else 'inclusion'}",
                    f"{criterion.kind} ids start with {expected_prefix}, e.g. {expected_prefix}1",
                )
            if criterion.applies_when is not None:
                self.expect_boolean(criterion.applies_when, "the condition after 'applies when'")
            self.expect_boolean(criterion.condition, f"the condition of {ident.text}")
            self.check_approximations(criterion)

    def check_example(self, example: s.Example) -> None:
        if example.expect.text not in OUTCOMES:
            self.error(
                "CRIT017",
                example.expect.span,
                f"'{example.expect.text}' is not an outcome",
                "expect eligible, ineligible or undetermined",
            )
        seen: set[str] = set()
        for field in example.fields:
            name = field.name.text
            if name in seen:
                self.error("CRIT003", field.name.span, f"'{name}' is given twice in this example")
            seen.add(name)
            if name not in self.element_types:
                self.undefined(
                    field.name.text,
                    field.name.span,
                    list(self.element_types),
                    "an example gives values of data elements declared under 'data'",
                )
                continue
            self.check_field_value(field, self.element_types[name])

    def check_field_value(self, field: s.ExampleField, expected: Type) -> None:
        value = field.value
        if expected.kind == "error":
            return
        actual: Type
        match value:
            case s.HistoryLit():
                self.check_history_value(field, value, expected)
                return
            case s.CodeLit():
                if expected.kind != "code":
                    self.error(
                        "CRIT006",
                        field.span,
                        f"'{field.name.text}' is {expected.describe()}, but the example gives a code",
                    )
                    return
                self.check_code_value(value)
                return
            case s.PartialDateLit():
                actual = self.check_partial_date(value)
            case s.NumberLit() if expected.kind == "date":
                actual = self.check_year(value)
            case s.BoolLit():
                actual = BOOLEAN
            case s.Name(text=text):
                if expected.kind in ("enum", "ordinal") and text not in expected.values:
                    self.unknown_value(text, value.span, expected)
                actual = expected if expected.kind in ("enum", "ordinal") else Type("a name")
            case tuple():
                for item in value:
                    if expected.kind == "set" and item.text not in expected.values:
                        self.unknown_value(item.text, item.span, expected)
                actual = Type("set", values=tuple(item.text for item in value))
            case _:
                actual = self.check_literal(value)
                if (
                    expected.integer
                    and isinstance(value, s.NumberLit)
                    and value.value != value.value.to_integral_value()
                ):
                    self.not_whole(field.name.text, value)
        if actual.kind == "error":
            return
        if expected.kind in ("history", "code"):
            written = (
                f"{field.name.text} = [{{{', '.join(f'{f} = ...' for f in _ENTRY_REQUIRED[expected.entry])}}}]"
                if expected.kind == "history"
                else f'{field.name.text} = icd10cm "J84.10"'
            )
            self.error(
                "CRIT006",
                field.span,
                f"'{field.name.text}' is {expected.describe()}, but the example gives {actual.describe()}",
                f"write, for example, {written}",
            )
            return
        if actual.kind == "number" and expected.kind == "quantity":
            return
        if actual.kind != expected.kind:
            self.error(
                "CRIT006",
                field.span,
                f"'{field.name.text}' is {expected.describe()}, but the example gives {actual.describe()}",
            )
        elif actual.kind == "quantity" and not units.compatible(
            actual.unit, expected.unit, expected.molar_mass
        ):
            self.incompatible(field.span, actual, expected)

    # ---- histories, codes and partial dates in examples ----

    def check_partial_date(self, value: s.PartialDateLit) -> Type:
        if not 1 <= int(value.text[5:7]) <= 12:
            self.error(
                "CRIT001",
                value.span,
                f"'{value.text}' is not a month of the calendar",
                "write a year and month as YYYY-MM, the month from 01 to 12",
            )
            return ERROR
        return DATE

    def check_year(self, value: s.NumberLit) -> Type:
        """A number given to a date element is a year (a partial date), as in records."""
        if not re.fullmatch(r"[0-9]{4}", str(value.value)) or value.value < 1:
            self.error(
                "CRIT006",
                value.span,
                f"{value.value} is not a date",
                "write a date as YYYY-MM-DD, or a partial date as YYYY-MM or YYYY",
            )
            return ERROR
        return DATE

    def check_code_value(self, value: s.CodeLit) -> None:
        system = codes.system_named(value.system.text)
        if system is None or system.value != value.system.text:
            names = ", ".join(c.value for c in CodeSystem)
            self.error(
                "CRIT050",
                value.system.span,
                f"'{value.system.text}' is not a code system critlang knows",
                f"the systems are: {names}",
            )
            return
        problem = codes.code_problem(system, value.code)
        if problem is not None:
            self.error(
                "CRIT050",
                value.span,
                problem,
                f"write {system.value} codes as {codes.EXAMPLES[system]}",
            )

    def check_history_value(
        self, field: s.ExampleField, value: s.HistoryLit, expected: Type
    ) -> None:
        name = field.name.text
        if expected.kind != "history":
            self.error(
                "CRIT006",
                field.span,
                f"'{name}' is {expected.describe()}, but the example gives a history",
            )
            return
        element = self.elements[name]
        dose_unit = (
            element.type.unit
            if isinstance(element.type, s.HistoryType) and expected.entry == "medication"
            else expected.unit
        )
        allowed = ENTRY_LAYOUT[EntryKind(expected.entry)]
        for entry in value.entries:
            given: dict[str, s.EntryItem] = {}
            for item in entry.items:
                item_name = item.name.text
                if item_name in given:
                    self.error(
                        "CRIT003", item.name.span, f"'{item_name}' is given twice in this entry"
                    )
                    continue
                given[item_name] = item
                if item_name not in allowed:
                    close = difflib.get_close_matches(item_name, allowed, n=1)
                    self.error(
                        "CRIT051",
                        item.name.span,
                        f"an entry of '{name}' ({expected.describe()}) has no field '{item_name}'",
                        f"did you mean '{close[0]}'?"
                        if close
                        else f"its fields are: {', '.join(allowed)}",
                    )
                    continue
                self.check_entry_item(name, item, expected, dose_unit)
            lacking = [f for f in _ENTRY_REQUIRED[expected.entry] if f not in given]
            if lacking:
                self.error(
                    "CRIT051",
                    entry.span,
                    f"an entry of '{name}' lacks {' and '.join(repr(f) for f in lacking)}",
                    f"an entry of {expected.describe()} needs "
                    f"{', '.join(_ENTRY_REQUIRED[expected.entry])}",
                )
            self.check_entry_units(name, given)

    def check_entry_item(
        self, name: str, item: s.EntryItem, history: Type, dose_unit: str | None
    ) -> None:
        field = item.name.text
        value = item.value
        wanted = _ENTRY_KINDS[field]
        where = f"'{field}' of an entry of '{name}'"
        if wanted == "date":
            if not isinstance(value, s.DateLit):
                self.error(
                    "CRIT006",
                    item.span,
                    f"{where} is a full date, but the example gives {self.entry_value_words(value)}",
                    "write the day as YYYY-MM-DD: an entry needs a full date",
                )
        elif wanted == "code":
            if isinstance(value, s.CodeLit):
                self.check_code_value(value)
            else:
                self.error(
                    "CRIT006",
                    item.span,
                    f"{where} is a code, but the example gives {self.entry_value_words(value)}",
                    'write the system and the code, as in icd10cm "J84.10"',
                )
        elif wanted == "text":
            if not isinstance(value, s.TextLit):
                self.error(
                    "CRIT006",
                    item.span,
                    f"{where} is a text, but the example gives {self.entry_value_words(value)}",
                    'write it in double quotes, as in "Observation/123"',
                )
        elif field == "dose" and dose_unit is None:
            self.error(
                "CRIT051",
                item.span,
                f"'{name}' declares no dose unit, so its entries have no dose",
                f"declare one, as in {name}: history of medications 'mg/d'",
            )
        elif isinstance(value, s.QuantityLit):
            actual = self.check_literal(value)
            if actual.kind != "error" and not units.compatible(
                actual.unit, history.unit, history.molar_mass
            ):
                self.incompatible(item.span, actual, Type("quantity", history.unit))
        elif not isinstance(value, s.NumberLit):
            self.error(
                "CRIT006",
                item.span,
                f"{where} is a quantity in '{history.unit}', "
                f"but the example gives {self.entry_value_words(value)}",
            )

    def check_entry_units(self, name: str, given: dict[str, s.EntryItem]) -> None:
        """A measurement's low and high are in the unit of its value, as in a record."""
        value = given.get("value")
        unit = (
            value.value.unit
            if value is not None and isinstance(value.value, s.QuantityLit)
            else None
        )
        for bound in ("low", "high"):
            item = given.get(bound)
            if item is None or not isinstance(item.value, s.QuantityLit) or value is None:
                continue
            if item.value.unit != unit:
                self.error(
                    "CRIT006",
                    item.span,
                    f"'{bound}' of an entry of '{name}' is in '{item.value.unit}', "
                    f"its value in '{unit or 'the history unit'}'",
                    "give the reference range in the unit of the value, as a record does",
                )

    @staticmethod
    def entry_value_words(value: s.EntryValue) -> str:
        match value:
            case s.DateLit():
                return "a date"
            case s.PartialDateLit():
                return "a partial date"
            case s.CodeLit():
                return "a code"
            case s.TextLit():
                return "a text"
            case s.QuantityLit():
                return "a quantity"
        return "a number"

    def report_unused(self) -> None:
        for name, element in self.elements.items():
            if name not in self.used:
                self.warning(
                    "CRIT010",
                    element.name.span,
                    f"data element '{name}' is not used by any criterion",
                    "remove it, or use it in a criterion or definition",
                )
        named: list[s.Constant | s.Definition] = [
            *self.constants.values(),
            *self.definitions.values(),
        ]
        for node in named:
            if node.name.text not in self.used:
                self.warning("CRIT019", node.name.span, f"'{node.name.text}' is never used")

    # ---- expressions ----

    def expect_boolean(self, expr: s.Expr, where: str) -> None:
        kind = self.infer(expr)
        if kind.kind not in ("boolean", "error"):
            self.error(
                "CRIT006",
                expr.span,
                f"{where} must be a yes/no condition, but this is {kind.describe()}",
                "compare it with something, e.g. age >= 18 'a'",
            )

    def infer(self, expr: s.Expr) -> Type:
        kind = self._infer(expr)
        self.types[expr] = kind
        return kind

    def _infer(self, expr: s.Expr) -> Type:
        match expr:
            case s.NumberLit() | s.QuantityLit() | s.DateLit():
                return self.check_literal(expr)
            case s.BoolLit():
                return BOOLEAN
            case s.Ref():
                return self.resolve(expr)
            case s.Not(operand=operand):
                self.expect_boolean(operand, "what follows 'not'")
                return BOOLEAN
            case s.And(left=a, right=b) | s.Or(left=a, right=b):
                word = "each side of " + ("'and'" if isinstance(expr, s.And) else "'or'")
                self.expect_boolean(a, word)
                self.expect_boolean(b, word)
                return BOOLEAN
            case s.Unless(rule=rule, exception=exception):
                self.expect_boolean(rule, "each side of 'unless'")
                self.expect_boolean(exception, "each side of 'unless'")
                return BOOLEAN
            case s.Compare():
                return self.infer_compare(expr)
            case s.Between():
                return self.infer_between(expr)
            case s.Member(subject=subject, values=values):
                return self.infer_membership(subject, values, "enum", "'in'")
            case s.Includes(subject=subject, values=values):
                return self.infer_membership(subject, values, "set", "'includes'")
            case s.Arithmetic():
                return self.infer_arithmetic(expr)
            case s.RelativeChange(baseline=baseline, current=current):
                first, second = self.infer(baseline), self.infer(current)
                for side, kind in ((baseline, first), (current, second)):
                    if not kind.numeric and kind.kind != "error":
                        self.not_numeric(side, kind, f"'{expr.direction} from'")
                if first.numeric and second.numeric:
                    self.expect_compatible(expr, first, second)
                return PERCENT
            case s.Quantified():
                return self.infer_quantified(expr)
            case s.Score():
                self.infer_score(expr)
                self.error(
                    "CRIT062",
                    expr.span,
                    "a score is a total of points: compare it with a number",
                    "write score [...] >= 9 (or <, >, <=)",
                )
                return ERROR
            case s.EntryField():
                return self.entry_field(expr)
            case s.InCodes():
                return self.in_codes(expr)
            case s.Selector():
                return self.selector(expr)
            case s.CalendarDuration():
                return CALENDAR
            case s.DateDifference():
                return self.infer_date_difference(expr)
            case s.Window():
                return self.infer_window(expr)
        raise AssertionError(f"unhandled node {expr!r}")

    def resolve(self, ref: s.Ref) -> Type:
        name = ref.name
        if name == "ongoing" and not self.is_symbol(name):
            return self.ongoing(ref)
        self.used.add(name)
        if name in self.element_types:
            kind = self.element_types[name]
            if kind.kind == "history":
                self.error(
                    "CRIT051",
                    ref.span,
                    f"'{name}' is {kind.describe()}, read only through a selector",
                    f"write, for example, any {name}, number of {name} or latest {name}",
                )
                return ERROR
            return kind
        if name in self.code_lists:
            self.error(
                "CRIT055",
                ref.span,
                f"'{name}' is a code list: it is used only after 'in'",
                f"write, for example, its code in {name}",
            )
            return ERROR
        if name in self.constants:
            return self.types.get(self.constants[name].value, ERROR)
        if name in self.definitions:
            return self.definition_type(name)
        known = [*self.elements, *self.constants, *self.definitions]
        self.undefined(name, ref.span, known)
        return ERROR

    def undefined(
        self,
        name: str,
        span: s.Span,
        known: list[str],
        otherwise: str = "declare it under 'data', or as a constant or definition",
    ) -> None:
        close = difflib.get_close_matches(name, known, n=1)
        owner = next((e for e, kind in self.element_types.items() if name in kind.values), None)
        # The element the author most likely meant is not reported as unused as well.
        self.used.update([owner] if owner else close)
        if owner is not None:
            test = "=" if self.element_types[owner].kind != "set" else "includes any of"
            operand = name if test == "=" else f"({name})"
            hint = f"'{name}' is a value of '{owner}': write {owner} {test} {operand}"
        else:
            hint = f"did you mean '{close[0]}'?" if close else otherwise
        self.error("CRIT005", span, f"unknown name '{name}'", hint)

    def unknown_value(self, value: str, span: s.Span, kind: Type) -> None:
        if kind.kind == "ordinal":
            close = difflib.get_close_matches(value, kind.values, n=1)
            scale = f"the scale is, lowest first: {', '.join(kind.values)}"
            self.error(
                "CRIT066",
                span,
                f"'{value}' is not a value of the scale",
                f"did you mean '{close[0]}'? {scale}" if close else scale,
            )
            return
        close = difflib.get_close_matches(value, kind.values, n=1)
        hint = (
            f"did you mean '{close[0]}'?" if close else f"the values are: {', '.join(kind.values)}"
        )
        self.error("CRIT008", span, f"'{value}' is not one of the declared values", hint)

    def enum_literal(self, expr: s.Expr, other: Type) -> bool:
        """Is `expr` a bare enum value (`female` in `sex = female`)? Report it if not declared."""
        if (
            not isinstance(expr, s.Ref)
            or other.kind not in ("enum", "ordinal")
            or self.is_symbol(expr.name)
        ):
            return False
        if expr.name not in other.values:
            self.unknown_value(expr.name, expr.span, other)
        self.types[expr] = other
        return True

    def is_symbol(self, name: str) -> bool:
        return name in self.elements or name in self.constants or name in self.definitions

    def infer_compare(self, expr: s.Compare) -> Type:
        # A count of an incomplete history may be compared, and only compared.
        self.compared.update((id(expr.left), id(expr.right)))
        if isinstance(expr.left, s.Score) or isinstance(expr.right, s.Score):
            return self.infer_score_comparison(expr)
        if isinstance(expr.right, s.Ref) and not self.is_symbol(expr.right.name):
            left = self.infer(expr.left)
            if self.enum_literal(expr.right, left):
                return self.enum_comparison(expr, left)
            right = self.infer(expr.right)
        else:
            right = self.infer(expr.right)
            if self.enum_literal(expr.left, right):
                return self.enum_comparison(expr, right)
            left = self.infer(expr.left)
        if "error" in (left.kind, right.kind):
            return BOOLEAN
        if left.kind == "enum" and right.kind == "enum" and left.values == right.values:
            return self.enum_comparison(expr, left)
        if left.kind == "ordinal" or right.kind == "ordinal":
            return self.ordinal_comparison(expr, left, right)
        others = ("boolean", "set", "enum", "code")
        if left.kind in others or right.kind in others:
            if expr.op in ("=", "!=") and left.kind == right.kind == "boolean":
                return BOOLEAN
            self.error(
                "CRIT006",
                expr.span,
                f"cannot compare {left.describe()} with {right.describe()} using '{expr.op}'",
            )
            return BOOLEAN
        self.expect_compatible(expr, left, right)
        return BOOLEAN

    def enum_comparison(self, expr: s.Compare, kind: Type) -> Type:
        if kind.kind == "ordinal":
            self.scale_ends(expr, kind)
            return BOOLEAN
        if expr.op not in ("=", "!="):
            self.error(
                "CRIT006",
                expr.span,
                f"'{expr.op}' needs an order, but the values ({', '.join(kind.values)}) have none",
                "use '=', '!=' or 'in (...)'",
            )
        return BOOLEAN

    def infer_between(self, expr: s.Between) -> Type:
        subject = self.infer(expr.subject)
        for bound in (expr.low, expr.high):
            kind = self.infer(bound)
            if "error" in (subject.kind, kind.kind):
                continue
            if not (subject.numeric or subject.kind == "date"):
                self.not_numeric(expr.subject, subject, "'between'", "a number, quantity or date")
                return BOOLEAN
            self.expect_compatible(bound if isinstance(bound, s.NumberLit) else expr, subject, kind)
        bounds = self.literal_bounds(expr.low, expr.high, subject)
        if bounds is not None and (
            bounds[0] > bounds[1] or (expr.exclusive and bounds[0] == bounds[1])
        ):
            self.error(
                "CRIT011",
                expr.span,
                "this range is empty: "
                + (
                    "the bounds are equal and excluded"
                    if bounds[0] == bounds[1]
                    else "the lower bound is more than the upper bound"
                ),
                "write the lower bound first"
                if bounds[0] != bounds[1]
                else "drop 'exclusive', or widen the range",
            )
        return BOOLEAN

    def literal_bounds(
        self, low: s.Expr, high: s.Expr, subject: Type
    ) -> tuple[Fraction, Fraction] | None:
        """The bounds of a `between` as comparable values, when both are literals."""
        if isinstance(low, s.DateLit) and isinstance(high, s.DateLit):
            return Fraction(low.value.toordinal()), Fraction(high.value.toordinal())
        if not isinstance(low, s.NumberLit | s.QuantityLit) or not isinstance(
            high, s.NumberLit | s.QuantityLit
        ):
            return None
        low_value, high_value = self.literal_in(low, subject), self.literal_in(high, subject)
        if low_value is None or high_value is None:
            return None
        return low_value, high_value

    def literal_in(self, literal: s.NumberLit | s.QuantityLit, target: Type) -> Fraction | None:
        unit = literal.unit if isinstance(literal, s.QuantityLit) else units.DIMENSIONLESS
        if not units.compatible(unit, target.unit, target.molar_mass):
            return None
        return Fraction(literal.value) * units.factor(unit, target.unit, target.molar_mass)

    def infer_membership(
        self, subject: s.Expr, values: tuple[s.Name, ...], kind: str, word: str
    ) -> Type:
        subject_type = self.infer(subject)
        if subject_type.kind == "error":
            return BOOLEAN
        on_scale = subject_type.kind == "ordinal" and kind == "enum"  # `in` on a scale
        if subject_type.kind != kind and not on_scale:
            needed = "one of a list of values" if kind == "enum" else "a set of values"
            other = {"enum": "write: x in (a, b)", "set": "write: x includes any of (a, b)"}
            self.error(
                "CRIT006",
                subject.span,
                f"{word} needs {needed}, but this is {subject_type.describe()}",
                other.get(subject_type.kind),
            )
            return BOOLEAN
        for value in values:
            if value.text not in subject_type.values:
                self.unknown_value(value.text, value.span, subject_type)
        return BOOLEAN

    def infer_arithmetic(self, expr: s.Arithmetic) -> Type:
        left, right = self.infer(expr.left), self.infer(expr.right)
        if "error" in (left.kind, right.kind):
            return ERROR
        if "date" in (left.kind, right.kind) or "calendar" in (left.kind, right.kind):
            return self.date_arithmetic(expr, left, right)
        for side, kind in ((expr.left, left), (expr.right, right)):
            if not kind.numeric:
                self.not_numeric(side, kind, f"'{expr.op}'")
                return ERROR
        if expr.op in "+-":
            if not self.expect_compatible(expr, left, right):
                return ERROR
            return Type(left.kind if left.kind == right.kind else "quantity", left.unit)
        combine = units.multiply if expr.op == "*" else units.divide
        unit = combine(left.unit, right.unit)
        if not units.is_valid(unit) or units.is_special(unit):
            self.error(
                "CRIT007",
                expr.span,
                f"'{expr.op}' cannot combine '{left.unit}' and '{right.unit}'",
                "units with an offset or a logarithmic scale, such as 'Cel' or 'dB', "
                "can only be compared",
            )
            return ERROR
        return NUMBER if unit == units.DIMENSIONLESS else Type("quantity", unit)

    def infer_quantified(self, expr: s.Quantified) -> Type:
        names: set[str] = set()
        for item in expr.items:
            if isinstance(item, s.SubCriterion):
                if item.name.text in names:
                    self.error(
                        "CRIT015",
                        item.name.span,
                        f"sub-criterion '{item.name.text}' is named twice",
                    )
                names.add(item.name.text)
                if item.applies_when is not None:
                    self.expect_boolean(item.applies_when, "the condition after 'applies when'")
                self.expect_boolean(item.condition, f"sub-criterion '{item.name.text}'")
            else:
                self.expect_boolean(item, "each item of a list of conditions")
        if expr.count is not None and not 1 <= expr.count <= len(expr.items):
            outcome = "is always met" if expr.count == 0 else "can never be met"
            self.error(
                "CRIT013",
                expr.span,
                f"'at least {expr.count} of' a list of {len(expr.items)} {outcome}",
                f"use a number from 1 to {len(expr.items)}",
            )
        return BOOLEAN

    # ---- histories and code lists ----

    def check_code_list(self, code_list: s.CodeList) -> None:
        system = codes.system_named(code_list.system.text)
        if system is None or system.value != code_list.system.text:
            names = ", ".join(c.value for c in CodeSystem)
            close = difflib.get_close_matches(code_list.system.text, list(CodeSystem), n=1)
            self.error(
                "CRIT050",
                code_list.system.span,
                f"'{code_list.system.text}' is not a code system critlang knows",
                f"did you mean '{close[0]}'?" if close else f"the systems are: {names}",
            )
            return
        self.check_codes(system, code_list, code_list.codes)
        self.check_codes(system, code_list, code_list.excluded)
        self.check_exceptions(system, code_list)

    def check_exceptions(self, system: CodeSystem, code_list: s.CodeList) -> None:
        """An exception that no code of the list can match changes nothing: a slip."""
        if any(c.descendants for c in code_list.codes):
            return  # a hierarchy may hold any code of the system
        listed = [
            codes.bare(system, c.text.removesuffix("*").removesuffix(".")) for c in code_list.codes
        ]
        starts = [c for c, w in zip(listed, code_list.codes, strict=True) if w.text.endswith("*")]
        for written in code_list.excluded:
            code = codes.bare(system, written.text.removesuffix("*").removesuffix("."))
            pattern = written.text.endswith("*")
            wrong = codes.prefix_problem if pattern else codes.code_problem
            if written.descendants or wrong(system, code) is not None:
                continue  # a hierarchy may hold it; a malformed code is reported already
            # A code is excepted in vain unless a prefix covers it or it is listed; a
            # pattern unless it overlaps a prefix or covers a listed code.
            covered = any(code.startswith(p) for p in starts) or (
                any(c.startswith(code) for c in listed) if pattern else code in listed
            )
            if not covered:
                self.warning(
                    "CRIT050",
                    written.span,
                    f"'{written.text}' is not in '{code_list.name.text}', so excepting it changes nothing",
                    "except only codes the list's codes or patterns take in",
                )

    def check_codes(
        self, system: CodeSystem, code_list: s.CodeList, listed: tuple[s.CodeText, ...]
    ) -> None:
        seen: dict[str, s.Span] = {}
        for written in listed:
            text = written.text
            if text.endswith("*") and written.descendants:
                self.error(
                    "CRIT050",
                    written.span,
                    f"'{text}' is a pattern: it has no descendants of its own",
                    f"write '{text}' for every code that starts so, or "
                    f"'\"{text[:-1].removesuffix('.')}\" and descendants' for the hierarchy",
                )
                continue
            if text.endswith("*"):
                problem = codes.prefix_problem(system, text[:-1].removesuffix("."))
                key = codes.bare(system, text)
            else:
                problem = codes.code_problem(system, text)
                key = codes.bare(system, text) + (" and descendants" if written.descendants else "")
            if problem is not None:
                self.error(
                    "CRIT050",
                    written.span,
                    problem,
                    f"write {system.value} codes as {codes.EXAMPLES[system]}; "
                    "a code ending in '*' stands for every code that starts so",
                )
            elif key in seen:
                self.warning(
                    "CRIT050",
                    written.span,
                    f"'{text}' is listed twice in '{code_list.name.text}'"
                    + (" (in its exceptions)" if listed is code_list.excluded else ""),
                    f"the first is at line {seen[key].line}; keep one",
                )
            seen.setdefault(key, written.span)

    def check_history_type(self, declared: s.HistoryType) -> bool:
        """A history's unit: a valid UCUM code (a medication's dose unit may be left out)."""
        if declared.unit is None:
            return True
        return self.unit_ok(declared.unit, declared.span)

    def entry(self, span: s.Span, what: str) -> Type | None:
        """The entries of the innermost selector; report `what` read outside one."""
        if self.entries and self.entries[-1] is not None:
            return self.entries[-1]
        if self.entries:
            self.error(
                "CRIT052",
                span,
                f"{what} cannot be read in a window's date",
                "a window ends at a date of the record, as in within 90 days before screening_date",
            )
        else:
            self.error(
                "CRIT052",
                span,
                f"{what} is read only inside a selector's 'where' or '(...) of'",
                "write, for example, any diagnoses where its code in ild",
            )
        return None

    def ongoing(self, ref: s.Ref) -> Type:
        history = self.entry(ref.span, "'ongoing'")
        if history is None:
            return ERROR
        if history.entry == "measurement":
            self.error(
                "CRIT052",
                ref.span,
                f"'ongoing' is said of medications and codes, not of {history.describe()}",
                "a medication, or a diagnosis of a history of codes, is ongoing when it has no end",
            )
            return ERROR
        return BOOLEAN

    def entry_field(self, expr: s.EntryField) -> Type:
        words = FIELD_WORDS[expr.field]
        history = self.entry(expr.span, f"'its {words}'")
        if history is None:
            return ERROR
        kind = FIELD_TYPES[history.entry].get(expr.field)
        if kind is None:
            fields = ", ".join(f"its {FIELD_WORDS[f]}" for f in FIELD_TYPES[history.entry])
            self.error(
                "CRIT052",
                expr.span,
                f"an entry of {history.describe()} has no {words}",
                f"its fields are: {fields}",
            )
            return ERROR
        if kind == "quantity":
            if history.unit == units.DIMENSIONLESS and expr.field == "dose":
                self.error(
                    "CRIT052",
                    expr.span,
                    "the dose of these medications has no declared unit",
                    "declare it: history of medications 'mg/d'",
                )
                return ERROR
            return Type("quantity", history.unit, molar_mass=history.molar_mass)
        return {"date": DATE, "code": CODE}[kind]

    def in_codes(self, expr: s.InCodes) -> Type:
        subject = self.infer(expr.subject)
        name = expr.codes.text
        if name not in self.code_lists:
            close = difflib.get_close_matches(name, list(self.code_lists), n=1)
            if name in self.element_types and self.element_types[name].kind == "enum":
                hint = f"'{name}' is an element: list values in ( ), as in x in (a, b)"
            elif close:
                hint = f"did you mean '{close[0]}'?"
            else:
                hint = 'declare it: codes NAME "label" icd10cm ("J84.*", ...)'
            self.error("CRIT055", expr.codes.span, f"'{name}' is not a code list", hint)
        else:
            self.used.add(name)
        if subject.kind not in ("code", "error"):
            self.error(
                "CRIT055",
                expr.subject.span,
                f"'in {name}' needs a code, but this is {subject.describe()}",
                "a code is a data element of type code, or its code in a selector",
            )
        return BOOLEAN

    def selector(self, expr: s.Selector) -> Type:
        name = expr.history.name
        self.used.add(name)
        history = self.element_types.get(name)
        if history is None:
            histories = [n for n, t in self.element_types.items() if t.kind == "history"]
            self.undefined(name, expr.history.span, histories, "declare it: NAME: history of codes")
            history = ERROR
        elif history.kind not in ("history", "error"):
            self.error(
                "CRIT053",
                expr.history.span,
                f"'{name}' is {history.describe()}, not a history",
                f"'{SELECTOR_WORDS[expr.op]}' reads a history: history of quantity 'mg/dL', "
                "history of codes or history of medications",
            )
            history = ERROR
        self.types[expr.history] = history
        known = history if history.kind == "history" else None
        if expr.window is not None:
            self.entry_window(expr.window)
            if expr.window.overlap and known is not None and known.entry == "measurement":
                self.warning(
                    "CRIT059",
                    expr.window.span,
                    f"a measurement has one date, so 'during' keeps the same entries of '{name}' "
                    "as 'within'",
                    "write within; 'during' is for entries with a period (codes with an end, "
                    "medications)",
                )
        self.entries.append(known)
        try:
            if expr.where is not None:
                self.expect_boolean(expr.where, "the condition after 'where'")
            of = self.infer(expr.of) if expr.of is not None else None
        finally:
            self.entries.pop()
        if known is None:
            return BOOLEAN if expr.op in ("any", "no") else ERROR
        return self.selected(expr, known, of)

    def selected(self, expr: s.Selector, history: Type, of: Type | None) -> Type:
        """The type of what a selector gives, and whether it can give it."""
        word = SELECTOR_WORDS[expr.op]
        name = expr.history.name
        if expr.op in ("any", "no", "count"):
            if expr.of is not None:
                self.error("CRIT053", expr.of.span, f"'{word}' takes no '(...) of'")
            if expr.op == "count" and not history.complete and id(expr) not in self.compared:
                self.error(
                    "CRIT056",
                    expr.span,
                    f"'{name}' may be incomplete, so this count is only a lower bound",
                    f"compare the count with a number, as in (number of {name} ...) >= 2, "
                    f"or declare the history complete: {name}: ... complete",
                )
                return ERROR
            return BOOLEAN if expr.op in ("any", "no") else COUNT
        if of is None:
            if history.entry != "measurement":
                field = "code" if history.entry == "code" else "dose"
                self.error(
                    "CRIT053",
                    expr.span,
                    f"'{word} {name}' does not say which field of {history.describe()} it means",
                    f"write {word} (its {field}) of {name}, or (its date) for the date",
                )
                return ERROR
            of = Type("quantity", history.unit, molar_mass=history.molar_mass)
        if of.kind == "error":
            return ERROR
        if of.kind in ("boolean", "set", "history"):
            self.error(
                "CRIT053",
                expr.of.span if expr.of is not None else expr.span,
                f"'{word}' gives a value, but this is {of.describe()}",
                "give a value of the entry, as in (its value) or (its date)",
            )
            return ERROR
        if expr.op in ("highest", "lowest", "total") and not (
            of.numeric or (of.kind == "date" and expr.op != "total")
        ):
            needs = "a number or quantity" if expr.op == "total" else "a number, quantity or date"
            where = expr.of if expr.of is not None else expr
            self.not_numeric(where, of, f"'{word}'", needs)
            return ERROR
        if expr.op == "total" and not history.complete:
            self.error(
                "CRIT053",
                expr.span,
                f"the total of '{name}' is unknown unless the history is complete",
                f"declare it complete ({name}: ... complete) if every entry is on record",
            )
            return ERROR
        return of

    def entry_window(self, window: s.EntryWindow) -> None:
        """A selector's window: a calendar duration before or after a date (the reference date)."""
        self.infer(window.duration)
        word = "during" if window.overlap else "within"
        if window.duration.amount < 0:
            self.error(
                "CRIT042",
                window.duration.span,
                "a window's length cannot be negative",
                f"write {word} {-window.duration.amount} {window.duration.unit}s "
                f"{'after' if window.direction == 'before' else 'before'} instead",
            )
        if window.anchor is None:
            self.needs_reference(window.span, f"'{word} ... {window.direction}' without a date")
            return
        self.entries.append(None)
        try:
            anchor = self.infer(window.anchor)
        finally:
            self.entries.pop()
        if anchor.kind not in ("date", "error"):
            self.error(
                "CRIT054",
                window.anchor.span,
                f"a window ends at a date, but this is {anchor.describe()}",
                "write, for example, within 90 days before screening_date",
            )

    # ---- dates and the reference date (docs/language.md, "Dates and time") ----

    def check_reference(self) -> None:
        """`as of NAME`: NAME must be a date data element."""
        name = self.protocol.header.as_of
        if name is None:
            return
        self.used.add(name.text)
        kind = self.element_types.get(name.text)
        if kind is None:
            dates = [n for n, k in self.element_types.items() if k.kind == "date"]
            self.undefined(
                name.text, name.span, dates, "declare it under 'data' as a date: name: date"
            )
        elif kind.kind not in ("date", "error"):
            self.error(
                "CRIT040",
                name.span,
                f"'as of' needs a date data element, but '{name.text}' is {kind.describe()}",
                f"declare it as a date: {name.text}: date",
            )

    def needs_reference(self, span: s.Span, construct: str) -> None:
        if self.protocol.header.as_of is None:
            self.error(
                "CRIT041",
                span,
                f"{construct} needs the protocol's reference date, but it has no 'as of'",
                "name the date element that is the evaluation's date in the header, "
                "as in: as of screening_date",
            )

    def expect_date(self, expr: s.Expr, kind: Type, word: str) -> bool:
        if kind.kind == "date":
            return True
        if kind.kind != "error":
            self.error("CRIT006", expr.span, f"{word} needs a date, but this is {kind.describe()}")
        return False

    def date_arithmetic(self, expr: s.Arithmetic, left: Type, right: Type) -> Type:
        """DATE + DURATION and DATE - DURATION; every other mix of dates is an error."""
        if left.kind == "date" and right.kind == "calendar" and expr.op in "+-":
            return DATE
        if left.kind == "date" and right.kind == "date" and expr.op == "-":
            first = expr.right.name if isinstance(expr.right, s.Ref) else "A"
            second = expr.left.name if isinstance(expr.left, s.Ref) else "B"
            hint = f"write days between {first} and {second} (or years, months, weeks between)"
            message = "a date minus a date is not a number in critlang"
        elif left.kind == "date" and right.kind == "quantity" and units.is_time(right.unit):
            amount = expr.right.value if isinstance(expr.right, s.QuantityLit) else "N"
            word = CALENDAR_WORDS.get(right.unit, "days")
            message = f"a date moves by calendar units, not by the UCUM quantity '{right.unit}'"
            hint = f"write {amount} {word}: calendar {word} keep the day of the month"
            if right.unit in UCUM_LENGTHS:
                hint += f"; '{right.unit}' is a fixed {UCUM_LENGTHS[right.unit]}"
        elif right.kind == "date" and left.kind == "calendar" and expr.op == "+":
            message = "write the date first"
            hint = "as in start_date + 6 months"
        else:
            message = f"'{expr.op}' cannot combine {left.describe()} and {right.describe()}"
            hint = "a date moves by a calendar duration: start_date + 6 months"
        self.error("CRIT042", expr.span, message, hint)
        return ERROR

    def infer_date_difference(self, expr: s.DateDifference) -> Type:
        start = self.infer(expr.start)
        self.expect_date(expr.start, start, f"'{expr.unit}s since'")
        if expr.end is None:
            self.needs_reference(expr.span, f"'{expr.unit}s since'")
        else:
            end = self.infer(expr.end)
            self.expect_date(expr.end, end, f"'{expr.unit}s between'")
        return INTEGER

    def infer_window(self, expr: s.Window) -> Type:
        subject = self.infer(expr.subject)
        if self.entries and self.entries[-1] is not None and subject.kind not in ("date", "error"):
            # `any meds where ongoing within 2 weeks`: the window was read as part of the `where`.
            self.error(
                "CRIT054",
                expr.subject.span,
                f"'within' needs a date, but this is {subject.describe()}",
                "to keep the entries of a window, write it before 'where': "
                "any H within 2 weeks before d where ...",
            )
            return BOOLEAN
        self.expect_date(expr.subject, subject, "'within'")
        self.infer(expr.duration)
        if expr.duration.amount < 0:
            self.error(
                "CRIT042",
                expr.duration.span,
                "a window's length cannot be negative",
                f"write within {-expr.duration.amount} {expr.duration.unit}s "
                f"{'after' if expr.direction == 'before' else 'before'} instead",
            )
        if expr.anchor is None:
            self.needs_reference(expr.span, f"'within ... {expr.direction}' without a date")
        else:
            self.expect_date(expr.anchor, self.infer(expr.anchor), f"'{expr.direction}'")
        return BOOLEAN

    def not_numeric(
        self, expr: s.Expr, kind: Type, word: str, needs: str = "a number or quantity"
    ) -> None:
        self.error("CRIT006", expr.span, f"{word} needs {needs}, but this is {kind.describe()}")

    def expect_compatible(self, expr: s.Expr, left: Type, right: Type) -> bool:
        if left.kind == "date" or right.kind == "date":
            if left.kind == right.kind:
                return True
            self.error(
                "CRIT006", expr.span, f"cannot compare {left.describe()} with {right.describe()}"
            )
            return False
        if {left.kind, right.kind} == {"number", "quantity"}:
            quantity = left if left.kind == "quantity" else right
            # A bare number is read in the unit 1, so next to '%' a 10 would mean 1000%.
            if not units.compatible(quantity.unit, units.DIMENSIONLESS) or units.factor(
                quantity.unit, units.DIMENSIONLESS
            ) != Fraction(1):
                number = (
                    expr
                    if isinstance(expr, s.NumberLit)
                    else next((c for c in s.children(expr) if isinstance(c, s.NumberLit)), None)
                )
                self.unitless(expr.span, quantity, number)
                return False
        molar_mass = left.molar_mass or right.molar_mass
        if units.compatible(left.unit, right.unit, molar_mass):
            return True
        self.incompatible(expr.span, left, right)
        return False

    def unitless(self, span: s.Span, quantity: Type, number: s.NumberLit | None) -> None:
        if number is None:  # a number-typed element or expression, not a literal
            hint = f"multiply the number by a quantity to give it a unit, as in x * 1 '{quantity.unit}'"
        elif quantity.unit == "%":
            hint = f"write the unit after the number, as in {number.value}%"
        else:
            hint = f"write the unit after the number, as in {number.value} '{units.usual(quantity.unit)}'"
        self.error(
            "CRIT007",
            number.span if number is not None else span,
            f"a number without a unit is used with {quantity.describe()}",
            hint,
        )

    def incompatible(self, span: s.Span, left: Type, right: Type) -> None:
        if units.commensurable(left.unit, right.unit) and not (
            units.is_special(left.unit) or units.is_special(right.unit)
        ):
            conversion = self.conversions.get((left.unit, right.unit)) or self.conversions.get(
                (right.unit, left.unit)
            )
            if conversion is not None:
                target = right.unit if conversion.unit.code == left.unit else left.unit
                hint = (
                    f"records in '{conversion.unit.code}' are read in '{target}' as "
                    f"{conversion_words(conversion)}; write the bound in '{target}'"
                )
            else:
                hint = (
                    "critlang never converts between kinds: compare in the data element's unit, "
                    "or let records use another unit with 'accepts' or 'convert' on the element"
                )
            self.error(
                "CRIT007",
                span,
                f"'{left.unit}' ({units.kind(left.unit).describe()}) and '{right.unit}' "
                f"({units.kind(right.unit).describe()}) are different kinds of quantity",
                hint,
            )
            return
        if units.dimension(left.unit) == units.dimension(right.unit):
            self.error(
                "CRIT007",
                span,
                f"'{left.unit}' and '{right.unit}' do not convert by a factor",
                "temperatures on different scales ('Cel', '[degF]') and logarithmic units "
                "('dB') convert by no factor; use the data element's own unit",
            )
            return
        self.error(
            "CRIT007",
            span,
            f"'{left.unit}' and '{right.unit}' measure different things "
            f"({units.dimension(left.unit)} vs {units.dimension(right.unit)})",
            "arbitrary units ([IU], [arb'U], [CFU], ...) convert only to themselves, "
            "with a prefix ('m[IU]/mL')"
            if units.is_arbitrary(left.unit) or units.is_arbitrary(right.unit)
            else "compare quantities of the same kind; mass and molar concentrations "
            "convert only when the data element declares a molar mass",
        )

    # ---- whole numbers, ordered scales, scores and approximation marks (issue 11) ----

    def not_whole(self, name: str, literal: s.NumberLit) -> None:
        self.error(
            "CRIT060",
            literal.span,
            f"'{name}' is a whole number, but the example gives {literal.value}",
            "give a whole number",
        )

    def ordinal_comparison(self, expr: s.Compare, left: Type, right: Type) -> Type:
        """Two values of one scale compare by their place on it; anything else is an error."""
        if left.kind == right.kind == "ordinal" and left.values == right.values:
            return BOOLEAN
        scale, other = (left, right) if left.kind == "ordinal" else (right, left)
        side = expr.left if left.kind == "ordinal" else expr.right
        name = side.name if isinstance(side, s.Ref) else "x"
        hint = (
            f"compare it with a value of its scale ({', '.join(scale.values)}), "
            f"as in {name} >= {scale.values[-1]}"
        )
        if other.kind == "ordinal":
            hint = "only values of the same scale compare"
        self.error(
            "CRIT066",
            expr.span,
            f"cannot compare {scale.describe()} with {other.describe()}",
            hint,
        )
        return BOOLEAN

    def scale_ends(self, expr: s.Compare, scale: Type) -> None:
        """`nyha < i` is never true and `nyha >= i` always when known: say so."""
        value, op = expr.right, expr.op
        if not isinstance(value, s.Ref) or self.is_symbol(value.name):
            value, op = expr.left, {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
        if not isinstance(value, s.Ref) or value.name not in scale.values:
            return
        lowest, highest = value.name == scale.values[0], value.name == scale.values[-1]
        never = (op == "<" and lowest) or (op == ">" and highest)
        always = (op == ">=" and lowest) or (op == "<=" and highest)
        if never or always:
            self.warning(
                "CRIT068",
                expr.span,
                f"this comparison is {'never true' if never else 'true for every known value'}: "
                f"'{value.name}' is the {'lowest' if lowest else 'highest'} value of the scale",
                "compare with another value of the scale",
            )

    def infer_score(self, score: s.Score) -> None:
        names: set[str] = set()
        for item in score.items():
            if item.name is not None:
                if item.name.text in names:
                    self.error(
                        "CRIT015", item.name.span, f"score item '{item.name.text}' is named twice"
                    )
                names.add(item.name.text)
            if item.points <= 0:
                self.error(
                    "CRIT061",
                    item.span,
                    f"an item must score more than 0 points, not {item.points}",
                    "a score adds the points of the true items: give each a positive number; "
                    "to subtract, compare with a higher total instead",
                )
            self.expect_boolean(item.condition, "the condition of a score item")
        for entry in score.entries:
            if isinstance(entry, s.ScoreGroup) and len(entry.items) < 2:
                self.warning(
                    "CRIT067",
                    entry.span,
                    "'highest of' a single item is that item",
                    "list the item on its own",
                )
        self.types[score] = NUMBER

    def infer_score_comparison(self, expr: s.Compare) -> Type:
        """`score [...] >= 9`: the total against a number known when the protocol is written."""
        score, other = (
            (expr.left, expr.right) if isinstance(expr.left, s.Score) else (expr.right, expr.left)
        )
        assert isinstance(score, s.Score)
        self.infer_score(score)
        if isinstance(other, s.Score):
            self.infer_score(other)
            self.error(
                "CRIT062", expr.span, "two scores cannot be compared", "compare each with a number"
            )
            return BOOLEAN
        other_type = self.infer(other)
        threshold = self.checked_fold(other) if other_type.kind == "number" else None
        if threshold is None:
            if other_type.kind != "error":
                self.error(
                    "CRIT062",
                    other.span,
                    "a score's threshold must be a number written in the protocol",
                    "write a number or a numeric constant, as in score [...] >= 9",
                )
            return BOOLEAN
        op = score_operator(expr.op, score is expr.left)
        if op in ("=", "!="):
            self.error(
                "CRIT062",
                expr.span,
                f"a score is compared with '>=', '>', '<' or '<=', not '{expr.op}'",
                "a total is reached or not: write score [...] >= 9",
            )
            return BOOLEAN
        weights = [Fraction(item.points) for item in score.items()]
        if op in (">", "<=") and not all(w.denominator == 1 for w in (*weights, threshold)):
            self.error(
                "CRIT063",
                expr.span,
                f"'{expr.op}' needs whole points and a whole threshold",
                f"with fractional points, write it with '>=' or '<' ({score_rewrite(op)})",
            )
            return BOOLEAN
        threshold = threshold + 1 if op in (">", "<=") else threshold
        top = score_maximum(score)
        if threshold <= 0 or threshold > top:
            always = threshold <= 0
            self.error(
                "CRIT064",
                expr.span,
                f"this comparison is {'always' if always == (op in ('>=', '>')) else 'never'} true: "
                f"the score runs from 0 to {_number_words(top)}",
                "compare with a total between the lowest and the highest the items can give",
            )
        return BOOLEAN

    def checked_fold(self, expr: s.Expr) -> Fraction | None:
        return Checked(self.protocol, self.types, self.elements, self.constants, {}, {}).fold(expr)

    def check_approximations(self, criterion: s.Criterion) -> None:
        marks = [criterion.approximate] + [
            item.approximate
            for item in s.walk(criterion.condition)
            if isinstance(item, s.SubCriterion)
        ]
        for mark in marks:
            if mark is not None and not mark.reason.strip():
                self.error(
                    "CRIT065",
                    mark.span,
                    "an approximation needs its reason",
                    'say what the criterion\'s text asks that this does not capture: approximate "..."',
                )


def is_approximate(criterion: s.Criterion) -> bool:
    """Is the criterion, or any part of it, marked `approximate`?"""
    if criterion.approximate is not None:
        return True
    return any(
        isinstance(node, s.SubCriterion) and node.approximate is not None
        for node in s.walk(criterion.condition)
    )


def coverage(protocol: s.Protocol) -> str:
    """'coverage: 12 faithful, 2 approximate criteria', for `critlang check`."""
    approximate = sum(is_approximate(c) for c in protocol.criteria)
    faithful = len(protocol.criteria) - approximate
    return f"coverage: {faithful} faithful, {approximate} approximate criteria"


def score_operator(op: str, score_on_left: bool) -> str:
    """The comparison as read with the score on the left (`9 <= score [...]` is `>=`)."""
    if score_on_left:
        return op
    return {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)


def score_rewrite(op: str) -> str:
    return "score > t is score >= t + 1" if op == ">" else "score <= t is score < t + 1"


def score_maximum(score: s.Score) -> Fraction:
    """The highest total: every item, and of each group its highest item."""
    total = Fraction(0)
    for entry in score.entries:
        if isinstance(entry, s.ScoreGroup):
            total += max(Fraction(item.points) for item in entry.items)
        else:
            total += Fraction(entry.points)
    return total


def _number_words(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else str(float(value))


# The words of a selector, by its `op`.
SELECTOR_WORDS = {
    "any": "any",
    "no": "no",
    "count": "number of",
    "latest": "latest",
    "earliest": "earliest",
    "highest": "highest",
    "lowest": "lowest",
    "total": "total",
}
# `its ...` in words, by entry field.
FIELD_WORDS = {
    "value": "value",
    "date": "date",
    "code": "code",
    "dose": "dose",
    "start": "start",
    "end": "end",
    "high": "upper limit",
    "low": "lower limit",
}
# The fields of each kind of entry (vocab.EntryKind) and the kind of their values.
FIELD_TYPES = {
    "measurement": {"date": "date", "value": "quantity", "high": "quantity", "low": "quantity"},
    "code": {"date": "date", "code": "code", "end": "date"},
    "medication": {"start": "date", "end": "date", "code": "code", "dose": "quantity"},
}
# UCUM's units of time an author may have meant as calendar units, and how long they are.
CALENDAR_WORDS = {"a": "years", "mo": "months", "wk": "weeks", "d": "days"}
UCUM_LENGTHS = {"a": "365.25 days", "mo": "30.4375 days", "wk": "7 days", "d": "1 day"}


def conversion_words(conversion: s.UnitConversion) -> str:
    """The formula of a declared conversion, '0.09148 x value + 2.152' with a times sign."""
    text = f"{conversion.scale} \N{MULTIPLICATION SIGN} value"
    if conversion.offset:
        sign = "-" if conversion.offset < 0 else "+"
        text += f" {sign} {abs(conversion.offset)}"
    return text


def check_source(text: str, file: str) -> tuple[Checked | None, list[Diagnostic]]:
    """Parse and check source text. The protocol is None when it cannot be used."""
    try:
        protocol = parse(text, file)
        checked, diagnostics = check(protocol)
    except CritError as error:
        return None, list(error.diagnostics)
    except RecursionError:
        # Parser, checker and compiler all walk the tree recursively; a few hundred
        # levels of nesting (a chain of 400 'and's) exhaust Python's stack.
        start = s.Span(file, 1, 1, 1, 2)
        hint = "give parts of the condition names with 'define'"
        return None, [Diagnostic("CRIT021", "error", start, "the protocol nests too deeply", hint)]
    usable = not any(d.is_error for d in diagnostics)
    return (checked if usable else None), sorted(diagnostics, key=sort_key)
