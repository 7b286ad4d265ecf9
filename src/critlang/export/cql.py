"""CQL library text, written from the ELM library the IR compiles to.

The text is the ELM read back in CQL's syntax, node for node, so the
library an author reads is the one the engine runs: the same parameters,
the same definitions, the same explicit `Round(..., 8)` after arithmetic.
Every operand that is not a name, literal or call is put in brackets, so
no reader (and no translator) has to know CQL's precedence table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from critlang.engines.elm import SYSTEM, Elm

_INFIX = {
    "And": "and",
    "Or": "or",
    "Equal": "=",
    "Less": "<",
    "LessOrEqual": "<=",
    "Greater": ">",
    "GreaterOrEqual": ">=",
    "Add": "+",
    "Subtract": "-",
    "Multiply": "*",
    "Divide": "/",
    "Contains": "contains",
}
_POSTFIX = {"IsTrue": "is true", "IsFalse": "is false", "IsNull": "is null"}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def library_text(library: Elm, comments: Mapping[str, str], header: str = "") -> str:
    """The CQL text of an ELM library; `comments` puts a line above named definitions."""
    body = library["library"]
    identifier = body["identifier"]
    lines = [f"// {line}".rstrip() for line in header.splitlines()]
    version = identifier.get("version")
    declaration = f"library {_library_name(identifier['id'])}"
    lines += [declaration + (f" version {_string(version)}" if version else ""), ""]
    for parameter in body["parameters"]["def"]:
        kind = type_text(parameter["parameterTypeSpecifier"])
        lines.append(f"parameter {_quoted(parameter['name'])} {kind} default null")
    lines += ["", "context Unfiltered"]
    for statement in body["statements"]["def"]:
        lines.append("")
        comment = comments.get(statement["name"])
        if comment:
            lines.append(f"// {_one_line(comment)}")
        lines.append(f"define {_quoted(statement['name'])}:")
        lines.append("  " + expression(statement["expression"], "  "))
    return "\n".join(lines) + "\n"


def type_text(specifier: Elm) -> str:
    if specifier.get("type") == "ListTypeSpecifier":
        return f"List<{type_text(specifier['elementType'])}>"
    if specifier.get("type") == "TupleTypeSpecifier":
        fields = ", ".join(
            f"{_quoted(field['name'])} {type_text(field['elementType'])}"
            for field in specifier["element"]
        )
        return f"Tuple {{ {fields} }}"
    name: str = specifier["name"]
    return name.removeprefix(SYSTEM)


def expression(node: Elm, indent: str = "") -> str:
    """One ELM expression in CQL; and/or chains go one term a line below `indent`."""
    kind = node["type"]
    if kind in ("And", "Or"):
        terms = _chain(node, kind)
        if len(terms) > 2 or any(_compound(t) for t in terms):
            inner = indent + "  "
            joined = f"\n{inner}{_INFIX[kind]} ".join(_operand(t, inner) for t in terms)
            return joined
    if kind in _INFIX:
        left, right = node["operand"]
        return f"{_operand(left, indent)} {_INFIX[kind]} {_operand(right, indent)}"
    if kind in _POSTFIX:
        return f"{_operand(node['operand'], indent)} {_POSTFIX[kind]}"
    match kind:
        case "Literal":
            return _literal(node)
        case "ParameterRef" | "ExpressionRef":
            return _quoted(node["name"])
        case "Not":
            return f"not {_operand(node['operand'], indent)}"
        case "If":
            inner = indent + "  "
            return (
                f"if {_operand(node['condition'], inner)}\n"
                f"{inner}then {_operand(node['then'], inner)}\n"
                f"{inner}else {_operand(node['else'], inner)}"
            )
        case "Round":
            return f"Round({expression(node['operand'], indent)}, {_literal(node['precision'])})"
        case "ConvertQuantity":
            quantity, unit = node["operand"]
            return f"convert {_operand(quantity, indent)} to {_literal(unit)}"
        case "Property" if "scope" in node:  # an entry's field, inside its history's query
            return f"{node['scope']}.{_quoted(node['path'])}"
        case "Property":
            return f"({expression(node['source'], indent)}).{node['path']}"
        case "AliasRef":
            return str(node["name"])
        case "Exists":
            return f"exists {_operand(node['operand'], indent)}"
        case "Count" | "Max" | "Min" | "Sum":
            return f"{kind}({expression(node['source'], indent)})"
        case "Query":
            return _query(node, indent)
        case "As":
            return f"null as {type_text({'name': node['asType']})}"
        case "Null":
            return "null"
        case "Date":
            year, month, day = (int(node[k]["value"]) for k in ("year", "month", "day"))
            return f"@{year:04d}-{month:02d}-{day:02d}"
        case "List":
            return "{ " + ", ".join(expression(e, indent) for e in node["element"]) + " }"
        case "Quantity":  # a calendar duration: 6 months
            return f"{node['value']} {node['unit']}"
        case "DurationBetween":
            start, end = node["operand"]
            unit = node["precision"].lower() + "s"
            return f"{unit} between {_operand(start, indent)} and {_operand(end, indent)}"
        case "ToDecimal":
            return f"ToDecimal({expression(node['operand'], indent)})"
        case "StartsWith":  # a code list's prefix
            text, start = node["operand"]
            return f"StartsWith({expression(text, indent)}, {expression(start, indent)})"
        case "Coalesce":
            return "Coalesce(" + ", ".join(expression(e, indent) for e in node["operand"]) + ")"
    raise AssertionError(f"no CQL for ELM {kind}")


def _query(node: Elm, indent: str) -> str:
    """`(source) alias where ... return ...`: a history's entries, filtered and mapped."""
    (source,) = node["source"]
    text = f"{_operand(source['expression'], indent)} {source['alias']}"
    inner = indent + "  "
    if "where" in node:
        text += f"\n{inner}where {_operand(node['where'], inner)}"
    returned = node["return"]["expression"]
    if returned != {"type": "AliasRef", "name": source["alias"]}:
        every = "" if node["return"].get("distinct", True) else "all "  # no merging of alike
        text += f"\n{inner}return {every}{_operand(returned, inner)}"
    return text


def _chain(node: Elm, kind: str) -> list[Elm]:
    terms: list[Elm] = []
    stack = [node]
    while stack:
        term = stack.pop()
        if term["type"] == kind:
            stack += reversed(term["operand"])
        else:
            terms.append(term)
    return terms


def _compound(node: Elm) -> bool:
    return node["type"] not in (
        "Literal",
        "ParameterRef",
        "ExpressionRef",
        "Round",
        "Property",
        "Date",
        "Quantity",
        "ToDecimal",
        "Coalesce",
    )


def _operand(node: Elm, indent: str) -> str:
    text = expression(node, indent)
    negative = node["type"] == "Literal" and text.startswith("-")
    return f"({text})" if _compound(node) or negative else text


def _literal(node: Elm) -> str:
    kind = node["valueType"].removeprefix(SYSTEM)
    value: Any = node["value"]
    if kind == "String":
        return _string(value)
    return str(value)


def _string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    return "'" + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + "'"


def _quoted(name: str) -> str:
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


def _library_name(name: str) -> str:
    return name if _IDENTIFIER.fullmatch(name) else _quoted(name)


def _one_line(text: str) -> str:
    # A line comment ends at the line's end: text with a line break cannot leave it.
    return " ".join(text.split())
