"""The binding file: read with positions, checked against its protocol, shared by every source.

A binding is YAML, composed (not loaded) so that every key and value keeps its
line and column; each problem becomes a `Diagnostic` (`BIND` codes) with a
hint, all collected, as the protocol checker does. The layout:

    protocol: ctd_ild            # the protocol's name, as after `protocol`
    fhir:                        # one section per source
      creatinine:                # a data element of the protocol
        observation: [loinc:2160-0]
        select: latest within 90 days
      willing_to_consent: ~      # not in this source: always unknown

The parts every source shares are read here: the element names, the codes
(`system:code`, a trailing `*` for a prefix), the selection rule, the value
map and what absence means. What a source key means (`observation`,
`measurement`, ...) is the section's: a section module (`bindings/fhir.py`,
`bindings/omop.py`) exposes `parse_section(node, context) -> Section | None`,
and `SECTIONS` says which module reads which top-level key.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import yaml

from critlang.check import Checked, Type
from critlang.diagnostics import Diagnostic
from critlang.syntax import Span
from critlang.vocab import CalendarUnit, CodeSystem

# The top-level key of each source section and the module that reads it.
SECTIONS = {"fhir": "critlang.bindings.fhir", "omop": "critlang.bindings.omop"}
HEADER_KEYS = ("protocol", "title")

# Selection rules: how one value is chosen from the entries a source holds.
SELECT_FLAT = ("latest", "earliest", "highest", "lowest")
SELECT_BOOLEAN = ("any", "none")
SELECT_HISTORY = ("all",)
SELECTS = SELECT_FLAT + SELECT_BOOLEAN + SELECT_HISTORY
# What absence of every matching entry means for a flat element (default: unknown).
ABSENT = {"unknown": ("boolean", "set", "enum", "number", "quantity", "date"),
          "false": ("boolean",), "empty": ("set",)}  # fmt: skip

_RULE = re.compile(
    r"^\s*(?P<select>[a-z]+)"
    r"(?:\s+within\s+(?P<amount>[0-9]+)\s+(?P<unit>[a-z]+))?\s*$"
)
_CALENDAR = {
    **dict.fromkeys(("year", "years"), CalendarUnit.YEAR),
    **dict.fromkeys(("month", "months"), CalendarUnit.MONTH),
    **dict.fromkeys(("week", "weeks"), CalendarUnit.WEEK),
    **dict.fromkeys(("day", "days"), CalendarUnit.DAY),
}
_SYSTEMS = frozenset(str(system) for system in CodeSystem)
DESCENDANTS = " with descendants"  # after a code: it and every concept below it
_CODE_FORMATS = {
    CodeSystem.SNOMED: re.compile(r"[1-9][0-9]{5,17}"),
    CodeSystem.ICD10CM: re.compile(r"[A-Z][0-9][0-9A-Z](?:\.?[0-9A-Z]{1,4})?"),
    CodeSystem.LOINC: re.compile(r"(?:LP|LA)?[0-9]{1,7}-[0-9]"),
    CodeSystem.RXNORM: re.compile(r"[0-9]{1,9}"),
    CodeSystem.ATC: re.compile(r"[A-Z](?:[0-9]{2}(?:[A-Z](?:[A-Z](?:[0-9]{2})?)?)?)?"),
}


@attrs.frozen
class CodeSet:
    """Codes written `system:code` (ICD-10-CM without its dot) and prefixes they may start with.

    `descendants` are those of `codes` whose descendants count too (`with descendants`,
    read through a source's concept hierarchy: OMOP's `concept_ancestor`).
    """

    codes: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    descendants: frozenset[str] = frozenset()

    def matches(self, code: str) -> bool:
        return code in self.codes or (bool(self.prefixes) and code.startswith(self.prefixes))

    def __bool__(self) -> bool:
        return bool(self.codes or self.prefixes)

    def union(self, other: CodeSet) -> CodeSet:
        return CodeSet(
            self.codes | other.codes,
            self.prefixes + other.prefixes,
            self.descendants | other.descendants,
        )


def normal_code(system: str, code: str) -> str:
    """`system:code` as critlang compares codes: ICD-10-CM without its dot."""
    if system == CodeSystem.ICD10CM:
        code = code.replace(".", "")
    return f"{system}:{code}"


@attrs.frozen
class Rule:
    """`select` (one of SELECTS), optionally only entries `within` amount units before the date."""

    select: str
    within: tuple[int, CalendarUnit] | None = None

    def describe(self) -> str:
        if self.within is None:
            return self.select
        amount, unit = self.within
        return f"{self.select} within {amount} {unit}{'s' if amount != 1 else ''}"


@attrs.frozen
class ElementBinding:
    """Where one data element comes from in one source, and how its value is picked.

    `source` is the section's source key (`observation`, `measurement`, ...),
    `field` what that key named when it is not codes (`Patient` fields),
    `codes` what selects the source's entries, `values` which codes mean
    which value (enum, set and boolean elements), `read` what is taken from
    the chosen entry (`value`, `date`, `time since`, ...), `exclude` the codes
    whose entries never count (where the source has a concept hierarchy).
    """

    name: str
    type: Type
    source: str
    span: Span
    rule: Rule
    codes: CodeSet = CodeSet()
    field: str | None = None
    values: tuple[tuple[str, CodeSet], ...] = ()
    read: str = "value"
    absent: str = "unknown"
    options: tuple[tuple[str, str], ...] = ()  # a source's own keys as given (`clinical: active`)
    exclude: CodeSet = CodeSet()

    def option(self, key: str, default: str) -> str:
        return next((value for name, value in self.options if name == key), default)


@attrs.frozen
class Section:
    """One source's part of a binding: its bound elements and those it says it lacks."""

    name: str
    span: Span
    elements: Mapping[str, ElementBinding]
    unbound: tuple[str, ...] = ()


@attrs.frozen
class Binding:
    file: str
    protocol: str
    title: str | None
    sections: Mapping[str, Section]


# ---- the context a section parser works in ------------------------------------------


@attrs.frozen
class SourceKind:
    """A source key a section accepts: `codes` (a list or a value map) or one of `fields`."""

    codes: bool = True
    fields: tuple[str, ...] = ()
    reads: tuple[str, ...] = ("value",)  # what `read:` may name for this source; first is default
    # Keys only this source takes, each with the words it may be set to (the first is the default).
    options: tuple[tuple[str, tuple[str, ...]], ...] = ()


class Context:
    """The file being checked, its protocol, and the diagnostics collected so far."""

    def __init__(self, file: str, checked: Checked) -> None:
        self.file = file
        self.checked = checked
        self.diagnostics: list[Diagnostic] = []
        # Code systems a section accepts besides vocab.CodeSystem (OMOP concept ids, say).
        self.extra_systems: tuple[str, ...] = ()
        # Does the section's source have a concept hierarchy (`with descendants`, `exclude`)?
        self.hierarchy = False

    # -- diagnostics

    def span(self, node: yaml.Node) -> Span:
        start, end = node.start_mark, node.end_mark
        return Span(self.file, start.line + 1, start.column + 1, end.line + 1, end.column + 1)

    def error(self, node: yaml.Node, code: str, message: str, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code, "error", self.span(node), message, hint))

    def error_at(self, span: Span, code: str, message: str, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code, "error", span, message, hint))

    def warning(self, node: yaml.Node, code: str, message: str, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code, "warning", self.span(node), message, hint))

    # -- YAML shapes

    def mapping(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """The (key, key node, value node) of a mapping; duplicates and odd keys are reported."""
        if not isinstance(node, yaml.MappingNode):
            self.error(node, "BIND002", f"{what} must be a mapping of keys to values")
            return []
        found: list[tuple[str, yaml.Node, yaml.Node]] = []
        seen: dict[str, yaml.Node] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                self.error(key, "BIND002", f"a key in {what} must be a plain word")
                continue
            if key.value in seen:
                line = seen[key.value].start_mark.line + 1
                self.error(
                    key,
                    "BIND003",
                    f"'{key.value}' is given twice in {what}",
                    f"keep one; the first is on line {line}",
                )
                continue
            seen[key.value] = key
            found.append((str(key.value), key, value))
        return found

    def scalar(self, node: yaml.Node, what: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or is_null(node):
            self.error(node, "BIND002", f"{what} must be a single value")
            return None
        return str(node.value)

    def unknown_key(self, key: str, node: yaml.Node, allowed: tuple[str, ...], where: str) -> None:
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"expected one of: {', '.join(allowed)}"
        self.error(node, "BIND004", f"unknown key '{key}' in {where}", hint)

    # -- the shared vocabulary of bindings

    def element_type(self, name: str, node: yaml.Node) -> Type | None:
        types = self.checked.element_types
        if name in types:
            return types[name]
        close = difflib.get_close_matches(name, list(types), n=1)
        hint = (
            f"did you mean '{close[0]}'?"
            if close
            else f"the protocol's data elements are: {', '.join(types)}"
        )
        self.error(node, "BIND010", f"'{name}' is not a data element of the protocol", hint)
        return None

    def codes(self, node: yaml.Node, extra_systems: tuple[str, ...] = ()) -> CodeSet:
        """A code or a list of codes, `system:code`, a trailing `*` for every code it starts."""
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        codes: set[str] = set()
        prefixes: list[str] = []
        descendants: set[str] = set()
        if not items:
            self.error(node, "BIND020", "the list of codes is empty", "name at least one code")
        for item in items:
            text = self.scalar(item, "a code")
            if text is None:
                continue
            text = text.strip()
            below = text.endswith(DESCENDANTS)
            if below:
                text = text.removesuffix(DESCENDANTS).rstrip()
                if not self.hierarchy:
                    self.error(
                        item,
                        "BIND024",
                        f"'{text}{DESCENDANTS}': this source has no concept hierarchy",
                        "list the codes themselves, or a prefix with a trailing *",
                    )
                    continue
            parsed = self._code(item, text, extra_systems)
            if parsed is None:
                continue
            code, prefix = parsed
            if prefix and below:
                self.error(
                    item,
                    "BIND024",
                    f"'{text}' is a prefix; only a code has descendants",
                    f"write the code itself, e.g. '{text.rstrip('*')}{DESCENDANTS}'",
                )
            elif prefix:
                prefixes.append(code)
            else:
                codes.add(code)
                if below:
                    descendants.add(code)
        return CodeSet(frozenset(codes), tuple(prefixes), frozenset(descendants))

    def _code(
        self, node: yaml.Node, text: str, extra_systems: tuple[str, ...]
    ) -> tuple[str, bool] | None:
        systems = (*sorted(_SYSTEMS), *extra_systems)
        system, colon, code = text.partition(":")
        if not colon or not code:
            self.error(
                node,
                "BIND021",
                f"'{text}' does not say its code system",
                f"write it as system:code, e.g. loinc:2160-0; systems: {', '.join(systems)}",
            )
            return None
        if system not in systems:
            close = difflib.get_close_matches(system, systems, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"systems: {', '.join(systems)}"
            self.error(node, "BIND022", f"unknown code system '{system}' in '{text}'", hint)
            return None
        prefix = code.endswith("*")
        bare = code.rstrip("*").rstrip(".")
        pattern = _CODE_FORMATS.get(CodeSystem(system)) if system in _SYSTEMS else None
        well_formed = (
            (prefix and bool(bare) and not bare.endswith("*"))
            if prefix
            else (pattern is None or bool(pattern.fullmatch(code)))
        )
        if not well_formed:
            self.error(
                node,
                "BIND023",
                f"'{code}' is not a well-formed {system} code",
                "a trailing * matches every code that starts with what comes before it",
            )
            return None
        return normal_code(system, bare), prefix

    def rule(self, node: yaml.Node) -> Rule | None:
        text = self.scalar(node, "a selection rule")
        if text is None:
            return None
        match = _RULE.fullmatch(text)
        select = match.group("select") if match else ""
        if match is None or select not in SELECTS:
            self.error(
                node,
                "BIND030",
                f"'{text}' is not a selection rule",
                f"write one of {', '.join(SELECTS)}, optionally followed by "
                "'within N days|weeks|months|years', e.g. 'latest within 90 days'",
            )
            return None
        if match.group("amount") is None:
            return Rule(select)
        unit = _CALENDAR.get(match.group("unit"))
        if unit is None:
            self.error(
                node,
                "BIND031",
                f"'{match.group('unit')}' is not a calendar unit",
                "windows count days, weeks, months or years",
            )
            return None
        return Rule(select, (int(match.group("amount")), unit))

    def elements(
        self, node: yaml.Node, where: str, sources: Mapping[str, SourceKind]
    ) -> tuple[dict[str, ElementBinding], tuple[str, ...]]:
        """A section's element bindings and the elements it says it lacks (`name: ~`).

        Each element is a mapping with exactly one key of `sources`, and
        optionally `select`, `map`, `read` and `absent`; the shared checks
        (types against the rule, the map's values, absence) are done here, the
        source-specific ones by the section afterwards.
        """
        bound: dict[str, ElementBinding] = {}
        unbound: list[str] = []
        mentioned: set[str] = set()
        for name, key, value in self.mapping(node, where):
            mentioned.add(name)
            kind = self.element_type(name, key)
            if kind is None:
                continue
            if is_null(value):
                unbound.append(name)
                continue
            element = self._element(name, kind, key, value, where, sources)
            if element is not None:
                bound[name] = element
        for name in self.checked.element_types:
            if name not in mentioned:
                self.warning(
                    node,
                    "BIND011",
                    f"data element '{name}' is not bound in {where}: it is unknown for every patient",
                    f"bind it, or write '{name}: ~' to say this source does not hold it",
                )
        return bound, tuple(unbound)

    def _element(
        self,
        name: str,
        kind: Type,
        key: yaml.Node,
        node: yaml.Node,
        where: str,
        sources: Mapping[str, SourceKind],
    ) -> ElementBinding | None:
        entries = self.mapping(node, f"the binding of '{name}'")
        if not entries:
            return None
        own = tuple(dict.fromkeys(key for kind in sources.values() for key, _ in kind.options))
        allowed = (*sources, "select", "map", "read", "absent", *own)
        if self.hierarchy:
            allowed = (*allowed, "exclude")
        source: tuple[str, yaml.Node, yaml.Node] | None = None
        options: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        ok = True
        for word, word_node, value in entries:
            if word in sources:
                if source is not None:
                    self.error(
                        word_node,
                        "BIND012",
                        f"'{name}' is bound to two sources, '{source[0]}' and '{word}'",
                        "bind an element to one source; split it into two elements if needed",
                    )
                    ok = False
                    continue
                source = (word, word_node, value)
            elif word in allowed:
                options[word] = (word_node, value)
            else:
                self.unknown_key(word, word_node, allowed, f"the binding of '{name}'")
                ok = False
        if source is None:
            self.error(
                key,
                "BIND013",
                f"the binding of '{name}' names no source",
                f"say where it is in {where}: one of {', '.join(sources)}",
            )
            return None
        word, word_node, value = source
        spec = sources[word]
        span = self.span(key)
        codes, field = CodeSet(), None
        values: tuple[tuple[str, CodeSet], ...] = ()
        if spec.fields:
            field = self.scalar(value, f"'{word}'")
            if field is not None and field not in spec.fields:
                self.unknown_key(field, value, spec.fields, f"'{word}'")
                ok = False
        elif isinstance(value, yaml.MappingNode):
            values = self._value_map(name, kind, value)
            for _, codeset in values:
                codes = codes.union(codeset)
        else:
            codes = self.codes(value, self.extra_systems)
        rule = self._rule_for(name, kind, options.get("select"))
        exclude = CodeSet()
        if "exclude" in options:
            exclude = self.codes(options["exclude"][1], self.extra_systems)
        if "map" in options:
            if spec.fields or isinstance(value, yaml.MappingNode):
                self.error(
                    options["map"][0],
                    "BIND014",
                    f"'map' maps the codes of an observation's value; '{word}' has no such value",
                    f"map the codes under '{word}' to values instead",
                )
                ok = False
            else:
                values = self._value_map(name, kind, options["map"][1])
        read = spec.reads[0]
        if "read" in options:
            given = self.scalar(options["read"][1], "'read'")
            if given is not None and given not in spec.reads:
                self.unknown_key(given, options["read"][1], spec.reads, "'read'")
                ok = False
            elif given is not None:
                read = given
        absent = "unknown"
        if "absent" in options:
            absent_node = options["absent"][1]
            given = self.scalar(absent_node, "'absent'")
            if given is not None:
                absent = given
                if kind.kind not in ABSENT.get(given, ()):
                    fits = [word for word, kinds in ABSENT.items() if kind.kind in kinds]
                    self.error(
                        absent_node,
                        "BIND015",
                        f"'absent: {given}' does not fit '{name}' ({kind.describe()})",
                        f"for this element write one of: {', '.join(fits)}",
                    )
                    ok = False
        own_options: list[tuple[str, str]] = []
        for option in own:
            if option not in options:
                continue
            words = dict(spec.options).get(option)
            option_node = options[option][1]
            if words is None:
                self.error(
                    options[option][0],
                    "BIND004",
                    f"'{option}' does not apply to '{word}'",
                    f"'{option}' is a key of: "
                    + ", ".join(s for s, k in sources.items() if option in dict(k.options)),
                )
                ok = False
                continue
            given = self.scalar(option_node, f"'{option}'")
            if given is not None and given not in words:
                self.unknown_key(given, option_node, words, f"'{option}'")
                ok = False
            elif given is not None:
                own_options.append((option, given))
        if rule is None or not ok:
            return None
        if kind.kind in ("enum", "set") and not values and not spec.fields:
            self.error(
                key,
                "BIND016",
                f"'{name}' is {kind.describe()} but no codes say which value is which",
                f"map codes to values, e.g. under '{word}': {kind.values[0]}: [snomed:...]",
            )
            return None
        return ElementBinding(
            name=name,
            type=kind,
            source=word,
            span=span,
            rule=rule,
            codes=codes,
            field=field,
            values=values,
            read=read,
            absent=absent,
            options=tuple(own_options),
            exclude=exclude,
        )

    def _value_map(self, name: str, kind: Type, node: yaml.Node) -> tuple[tuple[str, CodeSet], ...]:
        allowed = kind.values if kind.kind in ("enum", "set") else ("true", "false")
        found: list[tuple[str, CodeSet]] = []
        for value, key, codes in self.mapping(node, f"the value map of '{name}'"):
            if kind.kind not in ("enum", "set", "boolean"):
                self.error(
                    key,
                    "BIND017",
                    f"'{name}' is {kind.describe()}; codes cannot be mapped to its values",
                    "map codes only for yes/no, one-of and set-of elements",
                )
                return ()
            if value not in allowed:
                close = difflib.get_close_matches(value, allowed, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"values: {', '.join(allowed)}"
                self.error(key, "BIND018", f"'{value}' is not a value of '{name}'", hint)
                continue
            found.append((value, self.codes(codes, self.extra_systems)))
        return tuple(found)

    def _rule_for(
        self, name: str, kind: Type, given: tuple[yaml.Node, yaml.Node] | None
    ) -> Rule | None:
        if kind.kind == "history":
            default = "all"
            fits: tuple[str, ...] = SELECT_HISTORY
        elif kind.kind == "boolean":
            default, fits = "any", SELECT_BOOLEAN + SELECT_FLAT
        elif kind.numeric:
            default, fits = "latest", SELECT_FLAT
        elif kind.kind == "set":
            default, fits = "all", SELECT_HISTORY
        else:
            default, fits = "latest", ("latest", "earliest")
        if given is None:
            return Rule(default)
        rule = self.rule(given[1])
        if rule is not None and rule.select not in fits:
            self.error(
                given[1],
                "BIND032",
                f"'{rule.select}' does not fit '{name}' ({kind.describe()})",
                f"for this element select one of: {', '.join(fits)}",
            )
            return None
        return rule


def is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


# ---- the whole file ---------------------------------------------------------------


def check_binding(
    text: str, file: str, checked: Checked
) -> tuple[Binding | None, list[Diagnostic]]:
    """Check binding text against its protocol: the binding (None on errors) and every diagnostic."""
    context = Context(file, checked)
    binding = _read(text, context)
    errors = any(d.is_error for d in context.diagnostics)
    return (None if errors else binding), sorted(
        context.diagnostics, key=lambda d: (d.span.line, d.span.column, d.code)
    )


def load_binding(path: str | Path, checked: Checked) -> tuple[Binding | None, list[Diagnostic]]:
    """Read and check a binding file; an unreadable file is a diagnostic, not an exception."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        problem = getattr(error, "strerror", None) or str(error)
        span = Span(str(path), 1, 1, 1, 1)
        return None, [Diagnostic("BIND001", "error", span, f"cannot read the binding ({problem})")]
    return check_binding(text, str(path), checked)


def _read(text: str, context: Context) -> Binding | None:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = getattr(error, "problem", None) or str(error)
        context.diagnostics.append(
            Diagnostic(
                "BIND001",
                "error",
                Span(context.file, line, column, line, column + 1),
                f"not valid YAML: {problem}",
                "a binding is a YAML mapping; check the indentation and the quotes here",
            )
        )
        return None
    if root is None:
        span = Span(context.file, 1, 1, 1, 1)
        context.diagnostics.append(
            Diagnostic(
                "BIND002", "error", span, "the binding is empty", "start with 'protocol: NAME'"
            )
        )
        return None
    protocol: str | None = None
    title: str | None = None
    sections: dict[str, Section] = {}
    allowed = (*HEADER_KEYS, *SECTIONS)
    for key, key_node, value in context.mapping(root, "the binding"):
        if key == "protocol":
            protocol = context.scalar(value, "'protocol'")
            expected = context.checked.protocol.name.text
            if protocol is not None and protocol != expected:
                context.error(
                    value,
                    "BIND005",
                    f"this binding is for protocol '{protocol}', not '{expected}'",
                    "bind each protocol with its own file, or correct the name",
                )
        elif key == "title":
            title = context.scalar(value, "'title'")
        elif key in SECTIONS:
            section = _section(key, key_node, value, context)
            if section is not None:
                sections[key] = section
        else:
            context.unknown_key(key, key_node, allowed, "the binding")
    if protocol is None and isinstance(root, yaml.MappingNode):
        context.error(
            root,
            "BIND006",
            "the binding does not name its protocol",
            f"add 'protocol: {context.checked.protocol.name.text}' at the top",
        )
    if not sections and isinstance(root, yaml.MappingNode):
        context.error(
            root,
            "BIND007",
            "the binding has no source section",
            f"add one of: {', '.join(SECTIONS)}",
        )
    return Binding(context.file, protocol or "", title, sections)


def _section(key: str, key_node: yaml.Node, value: yaml.Node, context: Context) -> Section | None:
    try:
        module: Any = importlib.import_module(SECTIONS[key])
    except ImportError:
        context.error(
            key_node,
            "BIND008",
            f"this critlang cannot read '{key}' sections",
            "install a critlang with that source",
        )
        return None
    section: Section | None = module.parse_section(value, context)
    return section
