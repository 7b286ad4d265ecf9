"""The compiled evaluator against a reference interpreter, on random protocols.

The reference below walks the attrs syntax tree directly: Kleene logic on
True / False / None, exact `Fraction` arithmetic, every quantity held in one
canonical unit per dimension. It shares nothing with compile.py.

Random protocols use units whose conversions are powers of ten, and a
division only at the top of one side of a comparison: the evaluator's
28-digit decimals then agree with exact fractions (a single rounded quotient
can never land on the other side of a short decimal it differs from).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import critlang
from critlang import syntax as s

ROOT = Path(__file__).resolve().parents[2]
CTD_ILD = critlang.load(ROOT / "protocols" / "ctd_ild.crit")

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---- the reference interpreter ------------------------------------------------

Value = Any  # bool | None | Fraction | str | frozenset[str]

# Every quantity is held in one unit per dimension (g/L, L, days, mg/d, kg, ...);
# a percentage is a plain ratio. UCUM: 1 a = 365.25 d, 1 mo = 1 a / 12.
CANONICAL = {
    "g/L": Fraction(1),
    "mg/dL": Fraction(1, 100),
    "mg/L": Fraction(1, 1000),
    "L": Fraction(1),
    "dL": Fraction(1, 10),
    "mL": Fraction(1, 1000),
    "%": Fraction(1, 100),
    "1": Fraction(1),
    "d": Fraction(1),
    "wk": Fraction(7),
    "mo": Fraction("365.25") / 12,
    "a": Fraction("365.25"),
    "mg/d": Fraction(1),
    "g/d": Fraction(1000),
    "kg": Fraction(1),
    "g": Fraction(1, 1000),
    "mg/kg/d": Fraction(1),  # (mg/d) / kg, as steroid_dose / body_weight
    "mL/min/mm[Hg]": Fraction(1),
    "U/L": Fraction(1),
}


def k_not(a: Value) -> Value:
    return None if a is None else not a


def k_and(values: Iterable[Value]) -> Value:
    values = list(values)
    if False in values:
        return False
    return None if None in values else True


def k_or(values: Iterable[Value]) -> Value:
    values = list(values)
    if True in values:
        return True
    return None if None in values else False


def applicable(applies: Value, value: Value, kind: str) -> Value:
    """A criterion that does not apply counts as met (inclusion) or not met (exclusion).

    A part that does not apply is left out of its list: read as met in `all of`
    (pass kind "inclusion") and as not met in `any of` and `at least` ("exclusion").
    """
    if kind == "inclusion":
        return k_or([k_not(applies), value])
    return k_and([applies, value])


def canonical(value: Any, declared: s.DeclaredType) -> Value:
    """A record's value as the reference holds it."""
    if isinstance(declared, s.QuantityType | s.DurationType):
        if isinstance(value, Mapping):
            return Fraction(value["value"]) * CANONICAL[value["unit"]]
        return Fraction(value) * CANONICAL[declared.unit]
    if isinstance(declared, s.NumberType):
        return Fraction(value)
    if isinstance(declared, s.SetType):
        return frozenset(value)
    return value


class Reference:
    """Evaluates a protocol's syntax tree for one record, remembering every node's value."""

    def __init__(self, protocol: s.Protocol, record: Mapping[str, Any]) -> None:
        self.elements = {e.name.text: e for e in protocol.elements}
        self.constants = {c.name.text: c for c in protocol.constants}
        self.definitions = {d.name.text: d for d in protocol.definitions}
        self.env = {
            name: canonical(value, self.elements[name].type)
            for name, value in record.items()
            if name != "id" and value is not None
        }
        self.values: dict[int, Value] = {}
        self.criteria = {c.id.text: self.criterion(c) for c in protocol.criteria}

    def criterion(self, criterion: s.Criterion) -> Value:
        value = self.ev(criterion.condition, criterion.kind)
        if criterion.applies_when is not None:
            value = applicable(
                self.ev(criterion.applies_when, criterion.kind), value, criterion.kind
            )
        self.values[id(criterion)] = value
        return value

    def ev(self, node: Any, kind: str) -> Value:
        value = self._ev(node, kind)
        self.values[id(node)] = value
        return value

    def _ev(self, node: Any, kind: str) -> Value:
        ev = self.ev
        match node:
            case s.NumberLit(value=v):
                return Fraction(v)
            case s.QuantityLit(value=v, unit=unit):
                return Fraction(v) * CANONICAL[unit]
            case s.BoolLit(value=v):
                return v
            case s.Ref(name=name) if name in self.elements:
                return self.env.get(name)
            case s.Ref(name=name) if name in self.constants:
                return ev(self.constants[name].value, kind)
            case s.Ref(name=name) if name in self.definitions:
                return ev(self.definitions[name].expr, kind)
            case s.Ref(name=name):
                return name  # an enum value, as in `e0 = v1`
            case s.Not(operand=a):
                return k_not(ev(a, kind))
            case s.And(left=a, right=b):
                return k_and([ev(a, kind), ev(b, kind)])
            case s.Or(left=a, right=b):
                return k_or([ev(a, kind), ev(b, kind)])
            case s.Unless(rule=a, exception=b):
                return k_and([ev(a, kind), k_not(ev(b, kind))])
            case s.Compare(left=s.Score()) | s.Compare(right=s.Score()):
                return self.score(node, kind)
            case s.Compare(left=a, right=b) if self.scale_of(a) or self.scale_of(b):
                return self.ordinal(node, kind)
            case s.Compare(op=op, left=a, right=b):
                left, right = ev(a, kind), ev(b, kind)
                if left is None or right is None:
                    return None
                return COMPARE[op](left, right)
            case s.Between(subject=x, low=lo, high=hi, exclusive=exclusive):
                value, low, high = ev(x, kind), ev(lo, kind), ev(hi, kind)
                below = COMPARE["<" if exclusive else "<="]
                above = None if value is None or low is None else below(low, value)
                under = None if value is None or high is None else below(value, high)
                return k_and([above, under])
            case s.Member(subject=x, values=names):
                value = ev(x, kind)
                return None if value is None else value in {n.text for n in names}
            case s.Includes(subject=x, quantifier=quantifier, values=names):
                value = ev(x, kind)
                wanted = {n.text for n in names}
                if value is None:
                    return None
                return bool(value & wanted) if quantifier == "any" else wanted <= value
            case s.Arithmetic(op=op, left=a, right=b):
                left, right = ev(a, kind), ev(b, kind)
                if left is None or right is None or (op == "/" and right == 0):
                    return None
                return ARITHMETIC[op](left, right)
            case s.RelativeChange(direction=direction, baseline=b, current=c):
                baseline, current = ev(b, kind), ev(c, kind)
                if baseline is None or current is None or baseline == 0:
                    return None
                difference = baseline - current if direction == "decline" else current - baseline
                return difference / baseline  # a ratio; '10%' is held as 1/10
            case s.Quantified(quantifier=quantifier, count=count, items=items):
                listed = "inclusion" if quantifier == "all" else "exclusion"
                values = [ev(item, listed) for item in items]
                if quantifier == "any":
                    return k_or(values)
                if quantifier == "all":
                    return k_and(values)
                assert count is not None
                if values.count(True) >= count:
                    return True
                return False if values.count(True) + values.count(None) < count else None
            case s.SubCriterion(applies_when=applies, condition=condition):
                value = ev(condition, kind)
                if applies is None:
                    return value
                return applicable(ev(applies, kind), value, kind)
        raise AssertionError(f"no reference for {node!r}")

    # ---- scores and scales (issue 11), from their definitions, not from lowering ----

    def score(self, node: s.Compare, kind: str) -> Value:
        """The least and the most the items can add up to, unknown items either way."""
        flipped = isinstance(node.right, s.Score)
        score, other = (node.right, node.left) if flipped else (node.left, node.right)
        assert isinstance(score, s.Score)
        threshold = self.ev(other, kind)
        low = high = Fraction(0)
        for entry in score.entries:
            items = entry.items if isinstance(entry, s.ScoreGroup) else (entry,)
            values = [(Fraction(item.points), self.ev(item.condition, kind)) for item in items]
            low += max((p for p, v in values if v is True), default=Fraction(0))
            high += max((p for p, v in values if v is not False), default=Fraction(0))
        op = FLIP[node.op] if flipped else node.op
        test = COMPARE[op]
        self.values[id(score)] = None if low != high else low
        if test(low, threshold) and test(high, threshold):
            return True  # every total the unknown items allow meets it (the test is monotone)
        if not test(low, threshold) and not test(high, threshold):
            return False
        return None

    def scale_of(self, node: Any) -> tuple[str, ...] | None:
        if isinstance(node, s.Ref) and node.name in self.elements:
            declared = self.elements[node.name].type
            if isinstance(declared, s.OrdinalType):
                return tuple(v.text for v in declared.values)
        return None

    def ordinal(self, node: s.Compare, kind: str) -> Value:
        """By place on the scale; with an unknown side, false when no value could make it
        true, else unknown (as `nyha < baseline` is false when the baseline is i)."""
        scale = self.scale_of(node.left) or self.scale_of(node.right)
        assert scale is not None
        test = COMPARE[node.op]
        left, right = self.ev(node.left, kind), self.ev(node.right, kind)
        if left is not None and right is not None:
            return test(scale.index(left), scale.index(right))
        lefts = [left] if left is not None else list(scale)
        rights = [right] if right is not None else list(scale)
        possible = any(test(scale.index(x), scale.index(y)) for x in lefts for y in rights)
        return None if possible else False

    def status(self, protocol: s.Protocol) -> str:
        kinds = {c.id.text: c.kind for c in protocol.criteria}
        inclusions = [v for i, v in self.criteria.items() if kinds[i] == "inclusion"]
        exclusions = [v for i, v in self.criteria.items() if kinds[i] == "exclusion"]
        if False in inclusions or True in exclusions:
            return "ineligible"
        if all(v is True for v in inclusions) and all(v is False for v in exclusions):
            return "eligible"
        return "undetermined"

    def missing(self, protocol: s.Protocol) -> set[str]:
        """Absent elements under an unknown part of an unknown criterion."""
        found: set[str] = set()
        for criterion in protocol.criteria:
            if self.values[id(criterion)] is None:
                for root in (criterion.applies_when, criterion.condition):
                    if root is not None:
                        found |= self.missing_under(root)
        return found

    def missing_under(self, node: Any) -> set[str]:
        if self.values[id(node)] is not None:
            return set()
        if isinstance(node, s.Ref):
            if node.name in self.elements:
                return set() if node.name in self.env else {node.name}
            if node.name in self.definitions:
                return self.missing_under(self.definitions[node.name].expr)
            return set()
        return {name for child in s.children(node) for name in self.missing_under(child)}


FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "!=": "!="}
COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
ARITHMETIC: dict[str, Callable[[Fraction, Fraction], Fraction]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
}


# ---- random protocols -------------------------------------------------------------

UNITS = {"conc": ("g/L", "mg/dL", "mg/L"), "vol": ("L", "dL", "mL")}
ENUM = ("v0", "v1", "v2")
SCALE = ("o0", "o1", "o2", "o3")  # an ordinal scale, lowest first
POINTS = ("1", "2", "3", "0.5", "1.5")
SET = ("s0", "s1", "s2", "s3")
NUMBERS = ("0", "0.5", "1", "2", "2.5", "3", "5", "10", "12.5", "20", "100")
DIVISORS = ("2", "4", "5", "10", "0.5")


@attrs.frozen
class Element:
    name: str
    kind: str  # boolean | number | conc | vol | enum | set | ordinal
    unit: str | None = None

    def declaration(self) -> str:
        match self.kind:
            case "boolean" | "number":
                return f"{self.name}: {self.kind}"
            case "conc" | "vol":
                return f"{self.name}: quantity '{self.unit}'"
            case "enum":
                return f"{self.name}: one of ({', '.join(ENUM)})"
            case "ordinal":
                return f"{self.name}: ordinal ({', '.join(SCALE)})"
        return f"{self.name}: set of ({', '.join(SET)})"


@attrs.frozen
class RandomProtocol:
    source: str
    elements: tuple[Element, ...]


class Writer:
    """Writes random, well-typed critlang expressions as source text."""

    def __init__(self, draw: st.DrawFn, elements: list[Element]) -> None:
        self.draw = draw
        self.elements = elements
        self.numeric: dict[str, list[str]] = {"num": [], "conc": [], "vol": []}
        for element in elements:
            if element.kind == "number":
                self.numeric["num"].append(element.name)
            elif element.kind in ("conc", "vol"):
                self.numeric[element.kind].append(element.name)
        self.booleans = [e.name for e in elements if e.kind == "boolean"]
        self.enums = [e.name for e in elements if e.kind == "enum"]
        self.sets = [e.name for e in elements if e.kind == "set"]
        self.ordinals = [e.name for e in elements if e.kind == "ordinal"]

    def pick(self, options: list[str] | tuple[str, ...]) -> str:
        return self.draw(st.sampled_from(options))

    def chance(self, p: float = 0.5) -> bool:
        return self.draw(st.integers(0, 99)) < p * 100

    # ---- numbers ----

    def literal(self, dim: str) -> str:
        number = self.pick(NUMBERS)
        if dim == "num":
            return f"-{number}" if number != "0" and self.chance(0.1) else number
        if dim == "pct":
            return f"-{number}%" if number != "0" and self.chance(0.1) else f"{number}%"
        if dim == "ratio":
            return f"{number} '1'"
        return f"{number} '{self.pick(UNITS[dim])}'"

    def leaf(self, dim: str) -> str:
        names = self.numeric[dim]
        if names and self.chance(0.7):
            return self.pick(names)
        return self.literal(dim)

    def number(self, dim: str, depth: int) -> str:
        """A numeric expression without division by data: its value is exact."""
        if depth <= 0 or self.chance(0.4):
            return self.leaf(dim)
        op = self.pick(["+", "-", "*", "/"])
        if op in "+-":
            return f"({self.number(dim, depth - 1)} {op} {self.number(dim, depth - 1)})"
        if op == "/":
            return f"({self.number(dim, depth - 1)} / {self.pick(DIVISORS)})"
        scaled, factor = self.number(dim, depth - 1), self.number("num", depth - 1)
        return f"({scaled} * {factor})" if self.chance() else f"({factor} * {scaled})"

    def side(self, dim: str) -> str:
        """One side of a comparison: may end in one division, or be a relative change."""
        if dim == "pct":
            if self.chance(0.3):
                return self.literal("pct")
            of = self.pick(["num", "conc", "vol"])
            word = self.pick(["decline", "change"])
            return f"({word} from {self.number(of, 1)} to {self.number(of, 1)})"
        if dim == "ratio":
            # Mass over mass concentration is dimensionless, but not in the unit 1:
            # a bare number next to it needs its unit, '1'.
            if self.chance(0.3):
                return self.literal("ratio")
            of = self.pick(["conc", "vol"])
            return f"({self.number(of, 1)} / {self.number(of, 1)})"
        if self.chance(0.2):
            return f"({self.number(dim, 1)} / {self.number('num', 1)})"
        return self.number(dim, 2)

    def dimension(self) -> str:
        return self.pick(["num", "conc", "vol", "pct", "ratio"])

    # ---- conditions ----

    def comparison(self) -> str:
        dim = self.dimension()
        op = self.pick(["<", "<=", ">", ">=", "=", "!="])
        return f"({self.side(dim)} {op} {self.side(dim)})"

    def between(self) -> str:
        dim = self.dimension()
        exclusive = " exclusive" if self.chance(0.3) else ""
        if self.chance(0.7):
            low, high = self.literal(dim), self.literal(dim)
        else:
            low, high = self.side(dim), self.side(dim)
        bounds = as_literal(low), as_literal(high)
        # The checker rejects a range of two literals that is empty.
        if bounds[0] is not None and bounds[1] is not None:
            if bounds[0] > bounds[1]:
                low, high = high, low
            if bounds[0] == bounds[1]:
                exclusive = ""
        return f"({self.side(dim)} between {low} and {high}{exclusive})"

    def atom(self) -> str:
        choices = ["comparison", "between", "truth"]
        choices += ["boolean"] * 3 if self.booleans else []
        choices += ["member", "enum_equal"] if self.enums else []
        choices += ["includes"] if self.sets else []
        choices += ["boolean_equal"] if len(self.booleans) >= 2 else []
        choices += ["ordinal"] if self.ordinals else []
        choices += ["score"] if self.booleans else []
        match self.pick(choices):
            case "ordinal":
                return self.ordinal()
            case "score":
                return self.score()
            case "comparison":
                return self.comparison()
            case "between":
                return self.between()
            case "truth":
                return self.pick(["true", "false"])
            case "boolean":
                return self.pick(self.booleans)
            case "member":
                values = self.draw(st.lists(st.sampled_from(ENUM), min_size=1, unique=True))
                return f"({self.pick(self.enums)} in ({', '.join(values)}))"
            case "enum_equal":
                return f"({self.pick(self.enums)} {self.pick(['=', '!='])} {self.pick(ENUM)})"
            case "includes":
                values = self.draw(st.lists(st.sampled_from(SET), min_size=1, unique=True))
                word = self.pick(["any", "all"])
                return f"({self.pick(self.sets)} includes {word} of ({', '.join(values)}))"
            case _:
                first, second = self.draw(
                    st.lists(st.sampled_from(self.booleans), min_size=2, max_size=2, unique=True)
                )
                return f"({first} {self.pick(['=', '!='])} {second})"

    def ordinal(self) -> str:
        subject, op = self.pick(self.ordinals), self.pick(["<", "<=", ">", ">=", "=", "!="])
        match self.pick(["value", "value first", "two", "in"]):
            case "value":
                return f"({subject} {op} {self.pick(SCALE)})"
            case "value first":
                return f"({self.pick(SCALE)} {op} {subject})"
            case "two":
                return f"({subject} {op} {self.pick(self.ordinals)})"
        values = self.draw(st.lists(st.sampled_from(SCALE), min_size=1, unique=True))
        return f"({subject} in ({', '.join(values)}))"

    def score(self) -> str:
        """A weighted score of booleans, maybe with a `highest of` group, against a threshold
        the items can reach (the checker refuses one they cannot)."""
        entries: list[str] = []
        top = Fraction(0)
        whole = True
        for _ in range(self.draw(st.integers(1, 3))):
            size = self.draw(st.integers(1, 3)) if self.chance(0.3) else 1
            points = [self.pick(POINTS) for _ in range(size)]
            whole = whole and all(Fraction(p).denominator == 1 for p in points)
            items = [f"{p} points when {self.pick(self.booleans)}" for p in points]
            top += max(Fraction(p) for p in points)
            if size == 1:
                entries.append(items[0])
            else:
                entries.append(f"highest of [{', '.join(items)}]")
        ops = [">=", "<", ">", "<="] if whole else [">=", "<"]
        op = self.pick(ops)
        # `> t` and `<= t` mean `>= t + 1`: keep t + 1 within what the items can give.
        limit = top - 1 if op in (">", "<=") else top
        if limit < 1 and op in (">", "<="):
            op, limit = ">=", top
        candidates = [t for t in POINTS if 0 < Fraction(t) <= limit]
        if op in (">", "<="):
            candidates = [t for t in candidates if Fraction(t).denominator == 1] or ["0"]
        threshold = self.pick(candidates) if candidates else "0.5"
        if op in (">", "<=") and threshold == "0":
            op, threshold = ">=", self.pick([t for t in POINTS if Fraction(t) <= top] or ["0.5"])
        if self.chance(0.2):
            return f"({threshold} {FLIP[op]} score [{', '.join(entries)}])"
        return f"(score [{', '.join(entries)}] {op} {threshold})"

    def condition(self, depth: int, parts: bool) -> str:
        """A yes/no expression; `parts` allows named sub-criteria in lists."""
        if depth <= 0 or self.chance(0.3):
            return self.atom()
        match self.pick(["not", "and", "or", "unless", "list", "list"]):
            case "not":
                return f"(not {self.condition(depth - 1, parts)})"
            case "and" | "or" | "unless" as word:
                left = self.condition(depth - 1, parts)
                return f"({left} {word} {self.condition(depth - 1, parts)})"
        size = self.draw(st.integers(1, 3))
        items = [self.item(position, depth - 1, parts) for position in range(size)]
        quantifier = self.pick(["any of", "all of", "at least"])
        if quantifier == "at least":
            quantifier = f"at least {self.draw(st.integers(1, size))} of"
        return f"({quantifier} [{', '.join(items)}])"

    def item(self, position: int, depth: int, parts: bool) -> str:
        condition = self.condition(depth, parts)
        if not parts or self.chance(0.4):
            return condition
        name = "abc"[position]
        title = ' "a part"' if self.chance(0.3) else ""
        applies = f" applies when {self.condition(1, False)}" if self.chance(0.5) else ""
        return f"{name}{title}{applies}: {condition}"


def as_literal(text: str) -> Fraction | None:
    """The canonical value of a literal written by `Writer.literal`; None for others."""
    number, _, unit = text.partition(" ")
    try:
        if number.endswith("%"):
            return Fraction(number[:-1]) / 100
        return Fraction(number) * (CANONICAL[unit.strip("'")] if unit else 1)
    except ValueError:
        return None


@st.composite
def random_protocols(draw: st.DrawFn) -> RandomProtocol:
    elements: list[Element] = []
    counts = {
        "boolean": draw(st.integers(1, 3)),
        "number": draw(st.integers(0, 2)),
        "conc": draw(st.integers(0, 2)),
        "vol": draw(st.integers(0, 1)),
        "enum": draw(st.integers(0, 1)),
        "set": draw(st.integers(0, 1)),
        "ordinal": draw(st.integers(0, 2)),
    }
    for kind, count in counts.items():
        for n in range(count):
            unit = draw(st.sampled_from(UNITS[kind])) if kind in UNITS else None
            elements.append(Element(f"{kind}{n}", kind, unit))
    writer = Writer(draw, elements)
    lines = ["protocol random", "data", *(f"  {e.declaration()}" for e in elements)]
    # Constants and definitions become names the expressions may use.
    for n in range(draw(st.integers(0, 2))):
        dim = writer.pick(["num", "conc", "vol"])
        lines.append(f"constant k{n}_{dim} = {writer.literal(dim)}")
        writer.numeric[dim].append(f"k{n}_{dim}")
    for n in range(draw(st.integers(0, 2))):
        dim = writer.pick(["num", "conc", "vol"])
        lines.append(f"define m{n} = {writer.number(dim, 2)}")
        writer.numeric[dim].append(f"m{n}")
    for n in range(draw(st.integers(0, 2))):
        lines.append(f"define q{n} = {writer.condition(2, parts=False)}")
        writer.booleans.append(f"q{n}")
    kinds = draw(st.lists(st.sampled_from(["inclusion", "exclusion"]), min_size=1, max_size=3))
    for n, kind in enumerate(kinds, start=1):
        applies = f"  applies when {writer.condition(1, False)}\n" if writer.chance(0.3) else ""
        condition = writer.condition(3, parts=True)
        lines.append(
            f'{kind} {kind[0].upper()}{n} "criterion {n}"\n{applies}  met when {condition}'
        )
    return RandomProtocol("\n".join(lines) + "\n", tuple(elements))


def element_values(element: Element) -> st.SearchStrategy[Any]:
    numbers = st.one_of(
        st.sampled_from(NUMBERS).map(Decimal),
        st.decimals(min_value=-5, max_value=100, places=2, allow_nan=False, allow_infinity=False),
    )
    match element.kind:
        case "boolean":
            return st.booleans()
        case "number":
            return numbers
        case "conc" | "vol":
            in_own_unit = numbers
            in_any_unit = st.builds(
                lambda value, unit: {"value": value, "unit": unit},
                numbers,
                st.sampled_from(UNITS[element.kind]),
            )
            return st.one_of(in_own_unit, in_any_unit)
        case "enum":
            return st.sampled_from(ENUM)
        case "ordinal":
            return st.sampled_from(SCALE)
    return st.lists(st.sampled_from(SET), unique=True)


def records_for(
    elements: Iterable[Element], gaps: bool = True
) -> st.SearchStrategy[dict[str, Any]]:
    """Records with every element, or with `gaps` any of them may be absent."""
    fields = {
        e.name: st.one_of(st.none(), element_values(e)) if gaps else element_values(e)
        for e in elements
    }
    return st.fixed_dictionaries(fields).map(
        lambda record: {k: v for k, v in record.items() if v is not None}
    )


def value_of(result: critlang.Result) -> dict[str, Any]:
    """Every criterion's and top-level part's value, by id."""
    out: dict[str, Any] = {}
    for criterion in result.criteria:
        out[criterion.id] = criterion.value
        for part in criterion.parts:
            out[f"{criterion.id}.{part.name}"] = part.value
    return out


def reference_values(protocol: s.Protocol, reference: Reference) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for criterion in protocol.criteria:
        out[criterion.id.text] = reference.criteria[criterion.id.text]
        if isinstance(criterion.condition, s.Quantified):
            for item in criterion.condition.items:
                if isinstance(item, s.SubCriterion):
                    out[f"{criterion.id.text}.{item.name.text}"] = reference.values[id(item)]
    return out


# ---- (a) the compiled evaluator agrees with the reference ---------------------------


@SETTINGS
@given(st.data())
def test_compiled_evaluator_matches_reference(data: st.DataObject) -> None:
    generated = data.draw(random_protocols(), label="protocol")
    protocol = critlang.compile_source(generated.source, "random.crit")
    tree = protocol.checked.protocol
    for record in data.draw(st.lists(records_for(generated.elements), min_size=1, max_size=4)):
        result = protocol.evaluate(record)
        reference = Reference(tree, record)
        assert value_of(result) == reference_values(tree, reference), generated.source
        assert result.status == reference.status(tree)
        assert protocol.status(record) == result.status
        if result.status == "undetermined":
            assert set(result.missing) == reference.missing(tree)
        else:
            assert result.missing == ()


# ---- ctd_ild: the reference on the real protocol --------------------------------


def q(value: str, unit: str) -> dict[str, Any]:
    return {"value": Decimal(value), "unit": unit}


def pool(*values: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from([Decimal(v) if isinstance(v, str) else v for v in values])


# Values on and around every boundary in the protocol, in the declared unit
# unless given with one.
CTD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "age": pool("19.99", 20, 45, 80, "80.01", q("240", "mo")),
    "sex": st.sampled_from(["female", "male"]),
    "ctd_diagnoses": st.lists(
        st.sampled_from(["dermatomyositis", "systemic_sclerosis", "sjogren_syndrome"]),
        unique=True,
    ),
    "treatment_duration": pool(2, 3, "3.1", 24, "24.1", 30, q("2", "a"), q("105", "wk")),
    "steroid_dose": pool(20, 48, "48.1", 60, q("0.049", "g/d")),
    "body_weight": pool(50, 60, q("60000", "g")),
    "fvc_baseline": pool("3.0"),
    "fvc_current": pool("2.6", "2.6997", "2.7", "2.79", "2.85", "2.8503", "3.0", "3.2"),
    "dlco_baseline": pool(20),
    "dlco_current": pool("16.8", "16.9", "16.998", 17, "17.8", 19, 20),
    "symptom_duration": pool(10, "30.4375", "30.4376", 400, q("1", "mo")),
    "pregnancy_test": st.sampled_from(["negative", "positive"]),
    "got": pool(30, 80, "80.1"),
    "gpt": pool(30, 80, "80.1"),
    "creatinine": pool("0.9", "1.4", "1.41", q("1.41", "mg/dL")),
}
CTD_ELEMENTS = tuple(e.name.text for e in CTD_ILD.checked.protocol.elements)


def ctd_records(gaps: bool) -> st.SearchStrategy[dict[str, Any]]:
    """ctd_ild records; with `gaps` any field may be absent."""
    fields = {name: CTD_VALUES.get(name, st.booleans()) for name in CTD_ELEMENTS}
    if gaps:
        fields = {name: st.one_of(st.none(), values) for name, values in fields.items()}
    return st.fixed_dictionaries(fields).map(
        lambda record: {k: v for k, v in record.items() if v is not None}
    )


@SETTINGS
@given(ctd_records(gaps=True))
def test_ctd_ild_matches_reference(record: dict[str, Any]) -> None:
    tree = CTD_ILD.checked.protocol
    result = CTD_ILD.evaluate(record)
    reference = Reference(tree, record)
    assert value_of(result) == reference_values(tree, reference)
    assert result.status == reference.status(tree)
    assert CTD_ILD.status(record) == result.status
    if result.status == "undetermined":
        assert set(result.missing) == reference.missing(tree)
    else:
        assert result.missing == ()


# ---- (b) monotonicity: removing data never changes a definite answer ----------------


def assert_monotone(protocol: critlang.Protocol, full: dict[str, Any], removed: set[str]) -> None:
    reduced = {k: v for k, v in full.items() if k not in removed}
    more, less = protocol.evaluate(full), protocol.evaluate(reduced)
    if less.status != "undetermined":
        assert more.status == less.status, (removed, more.status, less.status)
    if more.status == "undetermined":
        assert less.status != "eligible"
    more_values, less_values = value_of(more), value_of(less)
    for target, value in less_values.items():
        if value is not None:
            assert more_values[target] is value, (target, removed)
    assert protocol.status(reduced) == less.status
    assert protocol.status(full) == more.status


@SETTINGS
@given(st.data())
def test_removing_fields_is_monotone_on_ctd_ild(data: st.DataObject) -> None:
    full = data.draw(ctd_records(gaps=False), label="record")
    removed = data.draw(st.sets(st.sampled_from(CTD_ELEMENTS)), label="removed")
    assert_monotone(CTD_ILD, full, removed)


@settings(SETTINGS, max_examples=150)
@given(st.data())
def test_removing_fields_is_monotone_on_random_protocols(data: st.DataObject) -> None:
    generated = data.draw(random_protocols(), label="protocol")
    protocol = critlang.compile_source(generated.source, "random.crit")
    names = [e.name for e in generated.elements]
    for _ in range(3):
        full = data.draw(records_for(generated.elements, gaps=False), label="record")
        removed = data.draw(st.sets(st.sampled_from(names)), label="removed")
        assert_monotone(protocol, full, removed)


# ---- (c) the short-circuiting status agrees with the full evaluation ----------------


@SETTINGS
@given(st.data())
def test_fast_status_equals_full_evaluation(data: st.DataObject) -> None:
    generated = data.draw(random_protocols(), label="protocol")
    protocol = critlang.compile_source(generated.source, "random.crit")
    for record in data.draw(st.lists(records_for(generated.elements), min_size=1, max_size=5)):
        assert protocol.status(record) == protocol.evaluate(record).status
