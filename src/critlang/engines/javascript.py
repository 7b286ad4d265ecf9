"""The JavaScript engine: a protocol's core IR as a JavaScript module, for the live form.

The module defines `critlangProtocol` with `trace(env)` (every node's value,
indexed by node id, as the Python engine's trace), `evaluate(env)` (status,
trace and missing data) and `protocol` (the criteria and the IR's shape,
which the runtime reads for the status and the missing data). It needs the
runtime (`runtime.js`): exact decimals rounded as the Python engine rounds
them, and Kleene logic with `null` as unknown.

Values in `env`: decimals from `critlangRuntime.parse` for numbers, in the
declared unit; `true`/`false`; strings for enum values and ISO dates; `Set`s
of strings for sets; `null` or absent for unknown.

Only the IR reaches the generator: every constant and name is written as a
JSON literal (with `<` escaped, so the module can sit in an HTML page), and
no text an author wrote is spliced in as code.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from importlib import resources

from critlang import ir
from critlang.decimals import to_decimal

_ORDER = {"<": "< 0", "<=": "<= 0", ">": "> 0", ">=": ">= 0", "=": "=== 0", "!=": "!== 0"}
_SAME = {"=": "===", "!=": "!==", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_ARITHMETIC = {"+": "add", "-": "sub", "*": "mul", "/": "div"}


def runtime() -> str:
    """The runtime every generated module needs."""
    return resources.files("critlang.engines").joinpath("runtime.js").read_text(encoding="utf-8")


def literal(value: object) -> str:
    """A JSON literal that is also safe inside an HTML <script> element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def compile_program(program: ir.Program) -> str:
    """The JavaScript module of a lowered protocol."""
    generator = _Generator(dict(program.definitions))
    local = _per_entry(program)
    generator.per_entry = local
    body = [generator.statement(node) for node in program.nodes() if node.id not in local]
    shape = {
        "criteria": [
            {
                "id": c.id,
                "kind": c.kind.value,
                "value": c.value.id,
                "applies": None if c.applies is None else c.applies.id,
                "parts": [
                    {
                        "name": p.name,
                        "value": p.value.id,
                        "applies": None if p.applies is None else p.applies.id,
                    }
                    for p in c.parts
                ],
            }
            for c in program.criteria
        ],
        "nodes": [generator.shape(node_id) for node_id in range(program.size)],
    }
    constants = ",\n    ".join(generator.constants)
    return "\n".join(
        [
            "const critlangProtocol = (() => {",
            '  "use strict";',
            "  const R = critlangRuntime;",
            f"  const K = [\n    {constants}\n  ];",
            f"  const protocol = {literal(shape)};",
            "  function trace(env) {",
            f"    const t = new Array({program.size}).fill(null);",
            *("    " + line for line in body),
            "    return t;",
            "  }",
            "  function evaluate(env) {",
            "    const t = trace(env);",
            "    return { status: R.status(protocol, t), trace: t, missing: R.missing(protocol, t, env) };",
            "  }",
            "  return { trace, evaluate, protocol };",
            "})();",
            "",
        ]
    )


def _per_entry(program: ir.Program) -> set[int]:
    """The nodes whose value depends on a history entry: computed per entry, in `aggregate`."""
    local: set[int] = set()
    for node in program.nodes():  # operands first
        if isinstance(node, ir.Entry) or (
            not isinstance(node, ir.Aggregate) and any(kid.id in local for kid in ir.children(node))
        ):
            local.add(node.id)
    return local


class _Generator:
    def __init__(self, definitions: dict[str, ir.Node]) -> None:
        self.definitions = definitions
        self.constants: list[str] = []
        self.nodes: dict[int, ir.Node] = {}
        self.local: set[int] = set()  # the per-entry nodes of the aggregate being written
        self.per_entry: set[int] = set()  # every per-entry node of the program

    def r(self, node: ir.Node) -> str:
        """Where a node's value is: `u[id]` for a per-entry node, else `t[id]`."""
        return f"u[{node.id}]" if node.id in self.local else f"t[{node.id}]"

    def aggregate(self, node: ir.Aggregate) -> str:
        """R.aggregate over the history's entries, `where` and `of` as functions of an entry."""
        functions = []
        for root in (node.where, node.of):
            if root is None:
                functions.append("null")
                continue
            local: set[int] = set()
            for inner in ir.walk(root):
                if isinstance(inner, ir.Entry):
                    local.add(inner.id)
            order = [n for n in _post_order(root) if n.id in local or _uses(n, local)]
            self.local = {n.id for n in order}
            lines = [f"u[{n.id}] = {self.expression(n)};" for n in order]
            result = self.r(root)
            self.local = set()
            functions.append(f"(e) => {{ const u = {{}}; {' '.join(lines)} return {result}; }}")
        date = "start" if node.history.type.entry == "medication" else "date"
        history = f"env[{literal(node.history.name)}] ?? null"
        return f"R.aggregate({literal(node.op)}, {history}, {functions[0]}, {functions[1]}, {literal(date)})"

    def constant(self, text: str) -> str:
        self.constants.append(text)
        return f"K[{len(self.constants) - 1}]"

    def value(self, value: ir.Value) -> str:
        if value is None:  # unknown: a partial date's comparison, or a Kleene bound
            return "null"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, Fraction):
            return self.constant(f"R.parse({literal(format(to_decimal(value), 'f'))})")
        if isinstance(value, frozenset):
            return self.constant(f"new Set({literal(sorted(value))})")
        return self.constant(literal(str(value)))  # an enum value or an ISO date

    def integer(self, value: int) -> str:
        return self.constant(f"R.parse({literal(str(value))})")

    def shape(self, node_id: int) -> dict[str, object]:
        node = self.nodes.get(node_id)
        if isinstance(node, ir.Element):
            return {"element": node.name}
        if isinstance(node, ir.Definition):
            return {"definition": self.definitions[node.name].id}
        kids = [kid.id for kid in ir.children(node)] if node is not None else []
        if isinstance(node, ir.Aggregate) and not node.history.type.complete:
            # Its value may be only a bound (lowering's open world): see R.missing. What
            # its per-entry parts read from outside the entry (a window's reference date)
            # is asked for before the history, as explain.py does.
            inputs = [
                inner.id
                for root in (node.where, node.of)
                if root is not None
                for inner in ir.walk(root)
                if inner.id not in self.per_entry
            ]
            return {"kids": [*kids, *inputs], "incomplete": node.history.name}
        return {"kids": kids}

    def statement(self, node: ir.Node) -> str:
        self.nodes[node.id] = node
        return f"t[{node.id}] = {self.expression(node)};"

    def expression(self, node: ir.Node) -> str:
        match node:
            case ir.Const(value=value):
                return self.value(value)
            case ir.Entry(field="ongoing"):
                return '(e["end"] ?? null) === null'
            case ir.Entry(field=field):
                return f"e[{literal(field)}] ?? null"
            case ir.Aggregate():
                return self.aggregate(node)
            case ir.InCodes(operand=a, codes=codes):
                x = self.r(a)
                listed = self.value(frozenset(codes.codes))
                prefixes = self.constant(literal(list(codes.prefixes)))
                return f"{x} === null ? null : {listed}.has({x}) || {prefixes}.some((p) => {x}.startsWith(p))"
            case ir.Element(name=name, bound=None):
                return f"env[{literal(name)}] ?? null"
            case ir.Element(name=name, bound=bound):
                # A date's first or last possible day: from 'name latest' when the record
                # gives it, else from the date itself (a form's field may be partial).
                key = f"env[{literal(node.key)}] ?? env[{literal(name)}] ?? null"
                return f"R.day({key}, {literal(bound)})"
            case ir.Definition(name=name):
                return f"t[{self.definitions[name].id}]"
            case ir.Not(operand=a):
                return f"{self.r(a)} === null ? null : !{self.r(a)}"
            case ir.And(operands=ops):
                return f"R.and([{', '.join(self.r(x) for x in ops)}])"
            case ir.Or(operands=ops):
                return f"R.or([{', '.join(self.r(x) for x in ops)}])"
            case ir.AtLeast(count=count, operands=ops, weights=tuple() as weights):
                # In whole numbers (BigInt): each weight and the threshold times their
                # common denominator, so the sum is exact whatever the points are.
                common = math.lcm(Fraction(count).denominator, *(w.denominator for w in weights))
                whole = ", ".join(f"{int(w * common)}n" for w in weights)
                threshold = f"{int(Fraction(count) * common)}n"
                values = ", ".join(self.r(x) for x in ops)
                return f"R.score({threshold}, [{whole}], [{values}])"
            case ir.AtLeast(count=count, operands=ops):
                return f"R.atLeast({count}, [{', '.join(self.r(x) for x in ops)}])"
            case ir.Compare(op=op, left=a, right=b):
                x, y = self.r(a), self.r(b)
                if a.type.numeric:
                    test = f"R.compare({x}, {y}) {_ORDER[op]}"
                else:
                    test = f"{x} {_SAME[op]} {y}"
                return f"{x} === null || {y} === null ? null : {test}"
            case ir.Arith(op=op, left=a, right=b):
                x, y = self.r(a), self.r(b)
                unknown = f"{x} === null || {y} === null"
                if op == "/":
                    unknown += f" || R.isZero({y})"
                return f"{unknown} ? null : R.{_ARITHMETIC[op]}({x}, {y})"
            case ir.Scale(operand=a, factor=factor):
                x = self.r(a)
                # As the Python engine: times the numerator, then divided by the denominator.
                scaled = f"R.mul({x}, {self.integer(factor.numerator)})"
                if factor.denominator != 1:
                    scaled = f"R.div({scaled}, {self.integer(factor.denominator)})"
                return f"{x} === null ? null : {scaled}"
            case ir.Member(operand=a, values=values):
                x = self.r(a)
                return f"{x} === null ? null : {self.value(values)}.has({x})"
            case ir.Includes(operand=a, every=every, values=values):
                x = self.r(a)
                test = "every" if every else "some"
                return f"{x} === null ? null : [...{self.value(values)}].{test}((v) => {x}.has(v))"
            case ir.DateShift(operand=a, amount=amount, unit=unit):
                x = self.r(a)
                return f"{x} === null ? null : R.shiftDate({x}, {amount}, {literal(unit.value)})"
            case ir.DateDiff(unit=unit, start=a, end=b):
                x, y = self.r(a), self.r(b)
                diff = f"R.dateDiff({literal(unit.value)}, {x}, {y})"
                return f"{x} === null || {y} === null ? null : {diff}"
        raise AssertionError(f"the JavaScript engine has no rule for {node!r}")


def _post_order(root: ir.Node) -> list[ir.Node]:
    order: list[ir.Node] = []
    seen: set[int] = set()

    def visit(node: ir.Node) -> None:
        if node.id in seen:
            return
        seen.add(node.id)
        if not isinstance(node, ir.Aggregate):
            for kid in ir.children(node):
                visit(kid)
        order.append(node)

    visit(root)
    return order


def _uses(node: ir.Node, local: set[int]) -> bool:
    """Whether `node` reads an entry, below it but not inside another aggregate."""
    if isinstance(node, ir.Aggregate):
        return False
    return any(kid.id in local or _uses(kid, local) for kid in ir.children(node))
