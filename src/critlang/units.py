"""UCUM units: validation, dimensions, clinical kinds and exact conversions.

critlang reads unit codes with its own parser, following the UCUM grammar, and
takes every atom, prefix and factor from UCUM's own definitions table
(`data/ucum-essence.xml`, shipped in the package). Factors are exact rationals
derived from those definitions. The table is read once, on first use, and each
code is parsed once (cached).

Two layers:

- UCUM: `ucum_factor` and `ucum_linear` convert exactly as UCUM says, including
  the mole as a number (6.0221367e23) and annotations as the unit 1.
- Clinical kinds: `factor`, `linear` and `compatible` also demand that both units
  measure the same kind of thing (`same_kind`). The mole is kept apart from pure
  numbers (mmol/L is not 10*9/L), annotations keep their meaning ('mL/min' is not
  'mL/min/{1.73_m2}'), arbitrary units ([IU], [arb'U]) are commensurable only with
  themselves, and a ratio of like quantities (mmol/mol, mL/dL) is not a plain
  fraction ('%'). This is the layer the checker, the records and the engines use.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple
from xml.etree import ElementTree

DIMENSIONLESS = "1"

_NS = "{http://unitsofmeasure.org/ucum-essence}"
_MOLE = "mol"
# Words for the base dimensions in messages; the mole is a dimension of its own here.
_WORDS = {
    "m": "length",
    "s": "time",
    "g": "mass",
    "rad": "plane angle",
    "K": "temperature",
    "C": "charge",
    "cd": "luminous intensity",
    _MOLE: "substance",
}


class UnitError(ValueError):
    """A unit code that is not UCUM, or two units that do not convert."""


# ---- the definitions table --------------------------------------------------------


class _Atom(NamedTuple):
    code: str
    name: str
    metric: bool
    arbitrary: bool
    special: bool
    value: Fraction  # the number in front of the definition
    unit: str  # the definition (for special units, the unit of their function)
    function: str | None


class _Table(NamedTuple):
    prefixes: dict[str, Fraction]
    prefix_names: dict[str, str]
    atoms: dict[str, _Atom]
    bases: frozenset[str]


@functools.cache
def _table() -> _Table:
    data = (Path(__file__).parent / "data" / "ucum-essence.xml").read_bytes()
    root = ElementTree.fromstring(data)
    prefixes: dict[str, Fraction] = {}
    prefix_names: dict[str, str] = {}
    for prefix in root.iter(f"{_NS}prefix"):
        code = prefix.get("Code", "")
        value = prefix.find(f"{_NS}value")
        prefixes[code] = Fraction(value.get("value", "1") if value is not None else "1")
        prefix_names[code] = prefix.findtext(f"{_NS}name", "")
    atoms: dict[str, _Atom] = {}
    bases = set()
    for base in root.iter(f"{_NS}base-unit"):
        code = base.get("Code", "")
        bases.add(code)
        atoms[code] = _Atom(
            code, base.findtext(f"{_NS}name", code), True, False, False, Fraction(1), code, None
        )
    for unit in root.iter(f"{_NS}unit"):
        code = unit.get("Code", "")
        value = unit.find(f"{_NS}value")
        assert value is not None
        function = value.find(f"{_NS}function")
        special = unit.get("isSpecial") == "yes"
        if special and function is not None:
            number, definition = function.get("value", "1"), function.get("Unit", "1")
        else:
            number, definition = value.get("value", "1"), value.get("Unit", "1")
        atoms[code] = _Atom(
            code=code,
            name=unit.findtext(f"{_NS}name", code),
            metric=unit.get("isMetric") == "yes",
            arbitrary=unit.get("isArbitrary") == "yes",
            special=special,
            value=Fraction(number),
            unit=definition,
            function=function.get("name") if special and function is not None else None,
        )
    return _Table(prefixes, prefix_names, atoms, frozenset(bases))


# ---- values of unit expressions ---------------------------------------------------

_Powers = tuple[tuple[str, int], ...]


def _add(a: _Powers, b: _Powers, times: int = 1) -> _Powers:
    total = dict(a)
    for key, power in b:
        total[key] = total.get(key, 0) + power * times
    return tuple(sorted((k, p) for k, p in total.items() if p != 0))


class _Value(NamedTuple):
    """A unit expression: magnitude x product of base dimensions.

    `dims` keeps the mole and each arbitrary unit as dimensions of their own;
    `above`/`below` are the dimensions of the atoms written with a positive or a
    negative exponent (a ratio of like quantities, mmol/mol, has both); `special`
    is the atom's code for a lone special unit ('Cel'), '' for an expression
    that contains a special unit among others, None otherwise.
    """

    magnitude: Fraction = Fraction(1)
    dims: _Powers = ()
    annotations: _Powers = ()
    above: frozenset[str] = frozenset()
    below: frozenset[str] = frozenset()
    special: str | None = None

    def times(self, other: _Value) -> _Value:
        return _Value(
            self.magnitude * other.magnitude,
            _add(self.dims, other.dims),
            _add(self.annotations, other.annotations),
            self.above | other.above,
            self.below | other.below,
            None if self.special is None and other.special is None else "",
        )

    def power(self, exponent: int) -> _Value:
        if exponent == 1:
            return self
        above, below = (self.above, self.below) if exponent > 0 else (self.below, self.above)
        return _Value(
            self.magnitude**exponent,
            tuple((k, p * exponent) for k, p in self.dims),
            tuple((k, p * exponent) for k, p in self.annotations),
            above,
            below,
            None if self.special is None else "",
        )


# UCUM defines [IU] as [iU]: messages name the one people write.
_ARBITRARY_ALIASES = {"[iU]": "[IU]"}


def is_arbitrary(code: str) -> bool:
    """Does `code` contain an arbitrary unit ([IU], [arb'U], [CFU], ...)?"""
    atoms = _table().atoms
    return any(atoms[name].arbitrary for name, _ in _parse(code).dims if name in atoms)


def _avogadro() -> Fraction:
    return _table().atoms[_MOLE].value * Fraction(10) ** 23


@functools.cache
def _atom_value(code: str) -> _Value:
    """The value of an atom in base units (the mole and arbitrary units as bases)."""
    table = _table()
    atom = table.atoms[code]
    if code in table.bases or code == _MOLE:
        dims: _Powers = ((code, 1),)
        return _Value(Fraction(1), dims, (), frozenset([code]))
    if atom.arbitrary:
        # [IU] is defined as [iU]: one arbitrary unit under two codes.
        root = atom.unit if atom.unit in table.atoms and table.atoms[atom.unit].arbitrary else code
        root = _ARBITRARY_ALIASES.get(root, root)
        return _Value(atom.value, ((root, 1),), (), frozenset([root]))
    inner = _parse(atom.unit) if atom.unit != DIMENSIONLESS else _Value()
    dims = inner.dims
    return _Value(
        atom.value * inner.magnitude,
        dims,
        (),
        frozenset(k for k, _ in dims),
        frozenset(),
        code if atom.special else None,
    )


# ---- the parser (UCUM's grammar) --------------------------------------------------

_MAX_EXPONENT = 99  # keeps every factor small enough to compute at once
_EXPONENT = re.compile(r"^(.*?)([+-]?[0-9]+)$")


def _symbols(code: str) -> Iterator[str]:
    """Split a code into operators, annotations and symbols; brackets hold anything."""
    position = 0
    while position < len(code):
        char = code[position]
        if char in "./()":
            yield char
            position += 1
        elif char == "{":
            end = code.find("}", position)
            if end < 0:
                raise UnitError(f"'{code}': an annotation '{{' is not closed")
            yield code[position : end + 1]
            position = end + 1
        else:
            start, depth = position, 0
            while position < len(code):
                char = code[position]
                if char == "[":
                    depth += 1
                elif char == "]":
                    depth -= 1
                    if depth < 0:
                        raise UnitError(f"'{code}': ']' without '['")
                elif depth == 0 and char in "./(){}":
                    break
                position += 1
            if depth:
                raise UnitError(f"'{code}': '[' is not closed")
            if position == start:  # a '}' without '{'
                raise UnitError(f"'{code}': unexpected '{char}'")
            yield code[start:position]


class _Parser:
    def __init__(self, code: str) -> None:
        self.code = code
        self.tokens = list(_symbols(code))
        self.position = 0

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def fail(self, problem: str) -> UnitError:
        return UnitError(f"'{self.code}' is not a UCUM unit: {problem}")

    def main(self) -> _Value:
        # A leading '/' inverts the first component only: '/[pi].A/m' is A/(pi.m).
        if self.peek() == "/":
            self.take()
            value = self.term(self.component().power(-1))
        else:
            value = self.term()
        if self.peek() is not None:
            raise self.fail(f"unexpected '{self.peek()}'")
        return value

    def term(self, first: _Value | None = None) -> _Value:
        value = self.component() if first is None else first
        while self.peek() in (".", "/"):
            operator = self.take()
            right = self.component()
            value = value.times(right if operator == "." else right.power(-1))
        return value

    def component(self) -> _Value:
        token = self.peek()
        if token is None:
            raise self.fail("a unit is missing at the end")
        if token == "(":
            self.take()
            value = self.term()
            if self.peek() != ")":
                raise self.fail("'(' is not closed")
            self.take()
            # A group in parentheses is one quantity: the ratio of two of them, as critlang
            # writes 'a / b' ('(g/L)/(g/L)'), is a pure number, not a ratio of like units.
            return value._replace(
                above=frozenset(),
                below=frozenset(),
                special=None if value.special is None else "",
            )
        if token in (".", "/", ")"):
            raise self.fail(f"'{token}' must follow a unit")
        self.take()
        if token.startswith("{"):
            return _annotation(self, token)
        value = _symbol(self, token)
        following = self.peek()
        if following is not None and following.startswith("{"):
            value = value.times(_annotation(self, self.take()))
        return value


def _annotation(parser: _Parser, token: str) -> _Value:
    text = token[1:-1]
    if any(not 32 <= ord(char) <= 126 for char in text):
        raise parser.fail("an annotation holds only ASCII characters")
    return _Value(annotations=((text, 1),))


def _symbol(parser: _Parser, token: str) -> _Value:
    if any(not 33 <= ord(char) <= 126 for char in token):
        raise parser.fail(f"'{token}' has a character UCUM does not allow")
    if token.isdigit():
        if int(token) == 0:
            raise parser.fail("a factor of 0 is not a unit")
        return _Value(Fraction(int(token)))
    exponent = 1
    name = token
    found = _EXPONENT.match(token)
    if found and found.group(1):
        name, exponent = found.group(1), int(found.group(2))
        if abs(exponent) > _MAX_EXPONENT:
            raise parser.fail(f"the exponent of '{token}' is beyond {_MAX_EXPONENT}")
    value = _simple(name)
    if value is None:
        raise parser.fail(f"'{name}' is not a UCUM unit")
    return value.power(exponent)


@functools.cache
def _simple(name: str) -> _Value | None:
    """An atom, or a metric atom with a prefix; None when `name` is neither."""
    table = _table()
    if name in table.atoms:
        return _atom_value(name)
    for length in (2, 1):
        prefix, rest = name[:length], name[length:]
        atom = table.atoms.get(rest)
        if prefix in table.prefixes and atom is not None and atom.metric:
            value = _atom_value(rest)
            return _Value(
                value.magnitude * table.prefixes[prefix],
                value.dims,
                value.annotations,
                value.above,
                value.below,
                None if value.special is None else "",
            )
    return None


@functools.cache
def _parse(code: str) -> _Value:
    if not isinstance(code, str) or code == "":
        raise UnitError("an empty unit code is not a UCUM unit; write '1' for a pure number")
    try:
        return _Parser(code).main()
    except RecursionError:
        raise UnitError(f"'{code[:40]}...' nests too deeply") from None


# ---- public: validity and dimensions ----------------------------------------------


def check(code: str) -> None:
    """Raise UnitError unless `code` is a valid UCUM unit code."""
    _parse(code)


def is_valid(code: str) -> bool:
    try:
        _parse(code)
    except UnitError:
        return False
    return True


def _words(dims: _Powers) -> str:
    def term(name: str, power: int) -> str:
        word = _WORDS.get(name, name)
        return word + (f"^{abs(power)}" if abs(power) != 1 else "")

    above = "*".join(term(n, p) for n, p in dims if p > 0) or "1"
    below = "*".join(term(n, p) for n, p in dims if p < 0)
    if not dims:
        return "dimensionless"
    return f"{above}/{below}" if below else above


def dimension(code: str) -> str:
    """The physical dimension of a unit in words, e.g. 'mass/length^3' for mg/dL."""
    return _words(_parse(code).dims)


def is_time(code: str) -> bool:
    return _parse(code).dims == (("s", 1),) and _parse(code).special is None


def is_molar_mass(code: str) -> bool:
    return _parse(code).dims == (("g", 1), (_MOLE, -1))


# ---- public: kinds ------------------------------------------------------------------


class Kind(NamedTuple):
    """What a unit measures, for refusing silent conversions between clinical kinds."""

    dims: _Powers
    annotations: _Powers
    ratio_of: frozenset[
        str
    ]  # like quantities divided (mmol/mol: the mole); only when dimensionless

    def describe(self) -> str:
        if self.ratio_of:
            words = " and ".join(sorted(_WORDS.get(d, d) for d in self.ratio_of))
            text = f"a ratio of {words}"
        elif not self.dims:
            text = "a pure number"
        else:
            text = _words(self.dims)
        for annotation, power in self.annotations:
            text += f" {'per' if power < 0 else 'of'} {{{annotation}}}"
        return text


@functools.cache
def kind(code: str) -> Kind:
    value = _parse(code)
    ratio_of = value.above & value.below if not value.dims else frozenset()
    return Kind(value.dims, value.annotations, ratio_of)


def same_kind(source: str, target: str) -> bool:
    """Do two valid units measure the same clinical kind of thing?"""
    if source == target:
        return True
    one, other = kind(source), kind(target)
    if DIMENSIONLESS in (source, target):
        # A bare number has no kind of its own: it is read in the other unit, if that is a
        # pure number apart from annotations ({score}).
        return one.dims == other.dims and one.ratio_of == other.ratio_of
    return one == other


# ---- public: conversions ------------------------------------------------------------

# Kelvin = scale x value + offset, for the special units that are affine.
_AFFINE = {
    "Cel": (Fraction(1), Fraction("273.15")),
    "[degF]": (Fraction(5, 9), Fraction("459.67") * Fraction(5, 9)),
    "[degRe]": (Fraction(5, 4), Fraction("273.15")),
}


def _to_ucum(value: _Value) -> tuple[Fraction, _Powers]:
    """UCUM's own canonical form: the mole is a number."""
    moles = dict(value.dims).get(_MOLE, 0)
    dims = tuple((k, p) for k, p in value.dims if k != _MOLE)
    return value.magnitude * _avogadro() ** moles, dims


def _affine(code: str, value: _Value) -> tuple[Fraction, Fraction]:
    """(scale, offset) to the canonical unit, for a ratio unit or an affine special unit."""
    if value.special is None:
        return _to_ucum(value)[0], Fraction(0)
    if value.special in _AFFINE:
        return _AFFINE[value.special]
    raise UnitError(
        f"'{code}' is a special UCUM unit (a logarithmic or other non-linear scale): "
        "it converts to no other unit"
    )


def _linear(
    source: str, target: str, kinds: bool, molar_mass: Fraction | None
) -> tuple[Fraction, Fraction]:
    one, goal = _parse(source), _parse(target)
    if source == target:
        return Fraction(1), Fraction(0)
    attempts = [(one, Fraction(1))]
    if molar_mass is not None and molar_mass > 0:
        grams_per_mole = _parse("g/mol")
        attempts += [
            (one.times(grams_per_mole.power(-1)), 1 / molar_mass),
            (one.times(grams_per_mole), molar_mass),
        ]
    for attempt, by in attempts:
        if kinds:
            same = (
                same_kind(source, target)
                if attempt is one
                else (attempt.dims, attempt.annotations) == (goal.dims, goal.annotations)
            )
        else:
            same = _to_ucum(attempt)[1] == _to_ucum(goal)[1]
        if not same:
            continue
        if (attempt.special is not None or goal.special is not None) and (
            attempt.special == "" or goal.special == "" or attempt is not one
        ):
            raise UnitError(
                f"'{source}' does not convert to '{target}': a special unit is used in an expression"
            )
        scale_in, offset_in = _affine(source, attempt)
        scale_out, offset_out = _affine(target, goal)
        scale = by * scale_in / scale_out
        return scale, (offset_in - offset_out) / scale_out
    if kinds and _to_ucum(one)[1] == _to_ucum(goal)[1]:
        raise UnitError(
            f"'{source}' ({kind(source).describe()}) and '{target}' ({kind(target).describe()}) "
            "are different kinds of quantity"
        )
    raise UnitError(
        f"'{source}' ({dimension(source)}) does not convert to '{target}' ({dimension(target)})"
    )


@functools.cache
def linear(
    source: str, target: str, molar_mass: Fraction | None = None
) -> tuple[Fraction, Fraction]:
    """(scale, offset) with value_in_target = scale x value + offset, for units of one kind.

    Temperatures on different scales need the offset; every other pair has offset 0.
    """
    return _linear(source, target, True, molar_mass)


@functools.cache
def factor(source: str, target: str, molar_mass: Fraction | None = None) -> Fraction:
    """The exact number that turns a value in `source` units into `target` units.

    Both must measure the same clinical kind (see `same_kind`). `molar_mass` (g/mol)
    lets mass and substance concentrations convert, as for creatinine in mg/dL and umol/L.
    """
    scale, offset = linear(source, target, molar_mass)
    if offset != 0:
        raise UnitError(f"'{source}' does not convert to '{target}' by a factor")
    return scale


@functools.cache
def ucum_linear(source: str, target: str) -> tuple[Fraction, Fraction]:
    """(scale, offset) as UCUM converts, without the clinical kinds."""
    return _linear(source, target, False, None)


@functools.cache
def ucum_factor(source: str, target: str) -> Fraction:
    """The exact UCUM factor, without the clinical kinds: 'mol' is 6.0221367e23, '{a}' is 1."""
    scale, offset = ucum_linear(source, target)
    if offset != 0:
        raise UnitError(f"'{source}' does not convert to '{target}' by a factor")
    return scale


def commensurable(source: str, target: str) -> bool:
    """Does UCUM itself convert between the two (whatever their clinical kinds)?"""
    try:
        ucum_linear(source, target)
    except UnitError:
        return False
    return True


# Units people usually write, first of their kind: the hint for a derived unit
# ('(kg)/((cm).(cm))' from weight / height^2) proposes the usual one of its kind.
_USUAL = (
    "kg/m2",
    "m2",
    "kg",
    "cm",
    "L",
    "mL/min",
    "mg/dL",
    "mmol/L",
    "g/dL",
    "mm[Hg]",
    "mg/kg",
    "mg/(kg.d)",
    "mL/kg",
    "/min",
    "a",
    "%",
)


def usual(code: str) -> str:
    """The usual code of the same kind as `code` when `code` is a derived expression."""
    if "(" not in code or not is_valid(code):
        return code
    return next((u for u in _USUAL if same_kind(code, u)), code)


# Everyday spellings that are not UCUM, rewritten piece by piece ('mIU/mL' -> 'm[IU]/mL').
_SPELLINGS = (
    (r"1\.73\s*m(?:2|\^2|²)", "{1.73_m2}"),
    (r"(?i)^x?10\^([0-9]+)", r"10*\1"),
    (r"(?<![A-Za-z\[])([munpkµ]?)(?:IU|iu)\b", r"\1[IU]"),
    (r"(?i)mm\s*Hg", "mm[Hg]"),
    (r"(?i)cm\s*H2O", "cm[H2O]"),
    (r"(?<![A-Za-z])mcg", "ug"),
    (r"µ", "u"),
    (r"\^([0-9]+)", r"\1"),
    (r"²", "2"),
    (r"³", "3"),
    (r"(?i)\bcells\b", "{cells}"),
    (r"(?i)\b(?:years?|yrs?)\b", "a"),
    (r"(?i)\bmonths?\b", "mo"),
    (r"(?i)\bweeks?\b", "wk"),
    (r"(?i)\bdays?\b", "d"),
    (r"(?i)\b(?:hours?|hrs?)\b", "h"),
    (r"(?i)\blbs?\b", "[lb_av]"),
    (r"\s+", ""),
)


def suggest(code: str) -> str | None:
    """The UCUM code an author most likely meant by an everyday spelling, if any."""
    if not isinstance(code, str) or len(code) > 100:
        return None
    text = code
    for pattern, replacement in _SPELLINGS:
        text = re.sub(pattern, replacement, text)
    return text if text != code and is_valid(text) else None


def is_special(code: str) -> bool:
    """Is a special unit (a temperature scale, a logarithm) part of `code`?"""
    return _parse(code).special is not None


def compatible(source: str, target: str, molar_mass: Fraction | None = None) -> bool:
    try:
        factor(source, target, molar_mass)
    except UnitError:
        return False
    return True


def multiply(left: str, right: str) -> str:
    """The UCUM code of a product of two units."""
    if left == DIMENSIONLESS:
        return right
    if right == DIMENSIONLESS:
        return left
    return f"({left}).({right})"


def divide(left: str, right: str) -> str:
    """The UCUM code of a quotient of two units."""
    if right == DIMENSIONLESS:
        return left
    return f"({left})/({right})"


# ---- display names ----------------------------------------------------------------

# A whole code as people write it on its own ('20 years', not '20 a').
_WHOLE = {
    "a": "years",
    "mo": "months",
    "wk": "weeks",
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "1": "",
}
# An atom as people write it inside a larger unit.
_ATOMS = {
    "[IU]": "IU",
    "[iU]": "IU",
    "m[Hg]": "mHg",
    "[in_i'Hg]": "inHg",
    "m[H2O]": "mH₂O",
    "[in_i'H2O]": "inH₂O",
    "[lb_av]": "lb",
    "[oz_av]": "oz",
    "[in_i]": "in",
    "[ft_i]": "ft",
    "[yd_i]": "yd",
    "[mi_i]": "mi",
    "Cel": "°C",
    "[degF]": "°F",
    "deg": "°",
    "[arb'U]": "arb. U",
    "[pi]": "π",
    "Ohm": "Ω",
    "10*": "10",
    "10^": "10",
    "a": "yr",
}
_SUPERSCRIPT = str.maketrans("0123456789+-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻")


def _atom_display(name: str) -> str:
    if name in _ATOMS:
        return _ATOMS[name]
    if name.startswith("[") and name.endswith("]"):
        return name[1:-1].replace("'", " ").replace("_", " ")
    return name


def _symbol_display(token: str) -> str:
    if token.isdigit():
        return token
    found = _EXPONENT.match(token)
    name, exponent = (found.group(1), found.group(2)) if found and found.group(1) else (token, "")
    table = _table()
    if name in table.atoms:
        text = _atom_display(name)
    else:
        prefix = next((p for p in (name[:2], name[:1]) if name[len(p) :] in table.atoms), "")
        text = ("µ" if prefix == "u" else prefix) + _atom_display(name[len(prefix) :])
    return text + exponent.lstrip("+").translate(_SUPERSCRIPT)


def _annotation_display(token: str) -> str:
    text = token[1:-1].replace("_", " ")
    return re.sub(r"(?<=[A-Za-z])([0-9]+)\b", lambda m: m.group(1).translate(_SUPERSCRIPT), text)


@functools.cache
def display(code: str) -> str:
    """A unit as people write it: 'mmHg', 'µmol/L', '\u00d710⁹/L', 'mL/min/1.73 m²', 'years'.

    One table for documents, worksheets and explanations; a code that is not UCUM
    is shown as it is.
    """
    if code in _WHOLE:
        return _WHOLE[code]
    if not is_valid(code):
        return code
    parts = []
    for token in _symbols(code):
        if token == ".":
            parts.append("·")
        elif token in "/()":
            parts.append(token)
        elif token.startswith("{"):
            parts.append(_annotation_display(token))
        else:
            parts.append(_symbol_display(token))
    text = "".join(parts)
    return "\N{MULTIPLICATION SIGN}" + text if code.startswith(("10*", "10^")) else text
