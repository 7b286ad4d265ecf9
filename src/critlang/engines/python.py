"""The Python engine: generated three-valued Python from the core IR.

Two functions per protocol. `status(env)` short-circuits `and`/`or` and
stops at the first criterion that makes the record ineligible; `trace(env)`
computes every node and returns their values in a list indexed by node id.

Values: True / False / None (unknown) for conditions; `Decimal` for numbers
(rationals from the IR become the nearest 28-digit decimal, exact whenever
they terminate; the caller runs the functions in `ARITHMETIC`); `str`,
`frozenset` and `datetime.date` as in the IR.

Only the IR reaches the generator: names become identifiers from a fixed
alphabet (data element and definition names are `[a-z_][a-z0-9_]*` in the
grammar), every constant is passed in the namespace, and no text an author
wrote is ever spliced in as code.
"""

from __future__ import annotations

import calendar
import datetime
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import attrs

from critlang import ir
from critlang.decimals import to_decimal
from critlang.vocab import ENTRY_LAYOUT, CalendarUnit, EntryKind, Outcome

_COMPARE = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "=": "==", "!=": "!="}


@attrs.frozen
class Compiled:
    status: Callable[[dict[str, Any]], str]
    trace: Callable[[dict[str, Any]], list[Any]]
    source: str


def compile_program(program: ir.Program) -> Compiled:
    """Generate and compile the two functions of a lowered protocol."""
    generator = _Generator(program)
    source = generator.module()
    namespace: dict[str, Any] = dict(generator.constants)
    namespace.update(shift_date=shift_date, Decimal=Decimal)
    code = compile(source, f"<critlang {program.name}>", "exec")
    exec(code, namespace)  # generated from the IR only; see the module docstring
    return Compiled(status=namespace["status"], trace=namespace["trace"], source=source)


class _Generator:
    def __init__(self, program: ir.Program) -> None:
        self.program = program
        self.constants: dict[str, Any] = {}
        self.constant_names: dict[tuple[type, Any], str] = {}
        self.tracing = False
        self.names: dict[int, str] = {}  # node id -> the local holding its value, in scope
        self.definitions = dict(program.definitions)
        # The aggregates whose loops enclose the code being generated, innermost last.
        self.loops: list[ir.Aggregate] = []

    def module(self) -> str:
        lines: list[str] = []
        for tracing in (False, True):
            self.tracing = tracing
            self.names = {}
            lines += self.function()
        return "\n".join(lines) + "\n"

    def function(self) -> list[str]:
        name = "trace" if self.tracing else "status"
        body: list[str] = ["get = env.get"]
        if self.tracing:
            # One more slot: the entry each aggregate used, by aggregate id (see `aggregate`).
            body.append(f"trace = [None] * {self.program.size + 1}")
            body.append(f"used = trace[{self.program.size}] = {{}}")
        settled: list[str] = []
        for criterion in self.program.criteria:
            roots = [criterion.value, *(part.value for part in criterion.parts)]
            for root in roots:
                body += self.prelude(root)
            value = self.value(criterion.value, body)
            if self.tracing:
                for part in criterion.parts:
                    self.value(part.value, body)
                    self.value(part.condition, body)
            neutral = criterion.kind.neutral
            settled.append(f"{value} is {neutral}")
            if not self.tracing:
                body.append(f"if {value} is {not neutral}: return {Outcome.INELIGIBLE.value!r}")
        if self.tracing:
            body.append("return trace")
        else:
            body.append(f"if {' and '.join(settled) or 'True'}: return {Outcome.ELIGIBLE.value!r}")
            body.append(f"return {Outcome.UNDETERMINED.value!r}")
        return [f"def {name}(env):", *("    " + line for line in body), ""]

    # ---- data elements and definitions, read before the first criterion that needs them ----

    def prelude(self, root: ir.Node) -> list[str]:
        lines: list[str] = []
        # The elements and definitions under `root`, in evaluation order.
        leaves = [n for n in ir.walk(root) if isinstance(n, ir.Element | ir.Definition)]
        for node in leaves:
            if node.id in self.names:
                continue
            if isinstance(node, ir.Element):
                local = f"v_{node.name}"
                lines.append(f"{local} = get({node.name!r})")
                self.names[node.id] = self.traced(node, local, lines)
            elif isinstance(node, ir.Definition):
                lines += self.prelude(self.definitions[node.name])
                value = self.value(self.definitions[node.name], lines)
                local = f"d_{node.name}"
                lines.append(f"{local} = {value}")
                self.names[node.id] = self.traced(node, local, lines)
        return lines

    # ---- expressions ----

    def traced(self, node: ir.Node, value: str, out: list[str]) -> str:
        if self.tracing:
            out.append(f"trace[{node.id}] = {value}")
        return value

    def const(self, value: Any) -> str:
        key = (type(value), value)
        if key not in self.constant_names:
            name = f"k{len(self.constants)}"
            self.constants[name] = value
            self.constant_names[key] = name
        return self.constant_names[key]

    def value(self, node: ir.Node, out: list[str]) -> str:
        """Emit statements computing `node` into `out`; return the expression holding it."""
        if node.id in self.names:
            return self.names[node.id]
        if isinstance(node, ir.Const):
            local = self.constant(node.value)
        elif isinstance(node, ir.Entry):
            return self.entry(node)
        else:
            local = f"n{node.id}"
            self.emit(node, local, out)
        self.names[node.id] = local
        return self.traced(node, local, out)

    def constant(self, value: ir.Value) -> str:
        if value is None or isinstance(value, bool):
            return repr(value)
        if isinstance(value, Fraction):
            return self.const(to_decimal(value))
        return self.const(value)

    def emit(self, node: ir.Node, local: str, out: list[str]) -> None:
        match node:
            case ir.Not(operand=a):
                x = self.value(a, out)
                out.append(f"{local} = None if {x} is None else not {x}")
            case ir.And(operands=operands):
                self.junction(local, operands, False, out)
            case ir.Or(operands=operands):
                self.junction(local, operands, True, out)
            case ir.AtLeast(count=count, operands=operands):
                values = ", ".join(self.value(x, out) for x in operands)
                met, unknown = f"{local}_met", f"{local}_unknown"
                out.append(f"{met} = ({values},).count(True)" if operands else f"{met} = 0")
                out.append(f"{unknown} = ({values},).count(None)" if operands else f"{unknown} = 0")
                out.append(
                    f"{local} = True if {met} >= {count} else "
                    f"(False if {met} + {unknown} < {count} else None)"
                )
            case ir.Compare(op=op, left=a, right=b):
                x, y = self.value(a, out), self.value(b, out)
                self.guarded(local, [x, y], f"{x} {_COMPARE[op]} {y}", out)
            case ir.Arith(op=op, left=a, right=b):
                x, y = self.value(a, out), self.value(b, out)
                zero = (f"{y} == 0",) if op == "/" else ()
                self.guarded(local, [x, y], f"{x} {op} {y}", out, zero)
            case ir.Scale(operand=a, factor=factor):
                x = self.value(a, out)
                test = f"{x} * {self.const(Decimal(factor.numerator))}"
                if factor.denominator != 1:
                    test += f" / {self.const(Decimal(factor.denominator))}"
                self.guarded(local, [x], test, out)
            case ir.Member(operand=a, values=values):
                x = self.value(a, out)
                self.guarded(local, [x], f"{x} in {self.const(values)}", out)
            case ir.Includes(operand=a, every=every, values=values):
                x, wanted = self.value(a, out), self.const(values)
                test = f"{wanted} <= {x}" if every else f"not {x}.isdisjoint({wanted})"
                self.guarded(local, [x], test, out)
            case ir.InCodes(operand=a, codes=codes):
                x = self.value(a, out)
                exact, prefixes = self.const(codes.codes), self.const(codes.prefixes)
                test = f"{x} in {exact} or {x}.startswith({prefixes})"
                self.guarded(local, [x], test, out)
            case ir.DateShift(operand=a, amount=amount, unit=unit):
                x = self.value(a, out)
                test = f"shift_date({x}, {amount}, {self.const(unit)})"
                self.guarded(local, [x], test, out)
            case ir.Aggregate():
                self.aggregate(node, local, out)
            case _:
                raise AssertionError(f"the Python engine has no rule for {node!r}")

    def guarded(
        self, local: str, values: list[str], test: str, out: list[str], extra: tuple[str, ...] = ()
    ) -> None:
        """`test`, or None when any of `values` is unknown (or an `extra` condition holds)."""
        checks = [f"{v} is None" for v in values if v not in self.constants]
        unknown = " or ".join([*checks, *extra])
        out.append(f"{local} = None if {unknown} else ({test})" if unknown else f"{local} = {test}")

    def junction(
        self, local: str, operands: tuple[ir.Node, ...], disjunction: bool, out: list[str]
    ) -> None:
        """Kleene and/or: the deciding value wins, else unknown if any operand is unknown."""
        decisive, other = (True, False) if disjunction else (False, True)
        unknown = f"{local}_unknown"
        if self.tracing:
            # Explanations need the value of every operand: no short cut.
            values = [self.value(x, out) for x in operands]
            listed = ", ".join(values)
            out.append(
                f"{local} = {decisive} if {decisive} in ({listed},) else "
                f"(None if None in ({listed},) else {other})"
                if values
                else f"{local} = {other}"
            )
            return
        if all(not isinstance(x, ir.And | ir.Or | ir.AtLeast) for x in operands):
            # Operands that are single tests cost less to compute than to skip.
            values = [self.value(x, out) for x in operands]
            decided = " or ".join(f"{v} is {decisive}" for v in values)
            open_ = " or ".join(f"{v} is None" for v in values)
            out.append(
                f"{local} = {decisive} if {decided} else (None if {open_} else {other})"
                if values
                else f"{local} = {other}"
            )
            return
        # A flat loop that is left at the first deciding operand: nesting stays
        # as deep as the logic, however many operands there are.
        out += [f"{local} = {other}", f"{unknown} = False", "while True:"]
        saved = dict(self.names)
        block: list[str] = []
        for operand in operands:
            value = self.value(operand, block)
            block.append(f"if {value} is {decisive}:")
            block.append(f"    {local} = {decisive}")
            block.append("    break")
            block.append(f"if {value} is None: {unknown} = True")
        block.append("break")
        out += ["    " + line for line in block]
        self.names = saved  # values computed inside the loop may not exist after it
        out.append(f"if {unknown} and {local} is {other}: {local} = None")

    # ---- histories ----

    def entry(self, node: ir.Entry) -> str:
        """The loop variable holding a field of the innermost aggregate's entry."""
        loop = self.loops[-1]
        if node.field == "ongoing":
            return f"(e{loop.id}_end is None)"
        return f"e{loop.id}_{node.field}"

    def aggregate(self, node: ir.Aggregate, local: str, out: list[str]) -> None:
        """One loop over the history's entries (Kleene, as `ir.Aggregate` says).

        In a trace, `used[node.id]` is the entry the value comes from: the
        first that matched for `exists`, the chosen one for the other ops.
        """
        history = self.value(node.history, out)
        kind = EntryKind(node.history.type.entry)
        fields = ENTRY_LAYOUT[kind]
        prefix = f"e{node.id}_"
        names = ", ".join(prefix + field for field in fields)
        entry = f"e{node.id}"
        saved = dict(self.names)
        self.loops.append(node)
        body: list[str] = []
        where = self.value(node.where, body) if node.where is not None else None
        selected: list[str] = []  # statements for a selected entry
        op = node.op
        unknown = f"{local}_unknown"
        if where is not None:
            body.append(f"if {where} is None:")
            if op == "exists":
                body.append(f"    {unknown} = True")
                body.append("    continue")
            else:
                body.append(f"    {unknown} = True")
                body.append("    break")
            body.append(f"if {where}:")
        else:
            body.append("if True:")
        keep = f"used[{node.id}] = {entry}" if self.tracing else None
        if op == "exists":
            selected += [f"{local} = True", *([keep] if keep else []), "break"]
            start = [f"{local} = False", f"{unknown} = False"]
            finish = [f"if {unknown} and {local} is False: {local} = None"]
        elif op == "count":
            selected += [f"{local} += 1"]
            start = [f"{local} = 0", f"{unknown} = False"]
            finish = [f"{local} = None if {unknown} else Decimal({local})"]
        else:
            assert node.of is not None
            date = prefix + ("start" if kind is EntryKind.MEDICATION else "date")
            best, best_date, conflict = f"{local}_best", f"{local}_date", f"{local}_conflict"
            start = [f"{best} = None", f"{best_date} = None", f"{conflict} = False"]
            start += [f"{unknown} = False"]
            of_lines: list[str] = []
            of = self.value(node.of, of_lines)
            if op in ("latest", "earliest"):
                later = ">" if op == "latest" else "<"
                selected += [
                    f"if {best_date} is None or {date} {later} {best_date}:",
                    *("    " + line for line in of_lines),
                    f"    {best_date} = {date}",
                    f"    {best} = {of}",
                    f"    {conflict} = {of} is None",
                    *([f"    {keep}"] if keep else []),
                    f"elif {date} == {best_date}:",
                    *("    " + line for line in of_lines),
                    f"    if {of} is None or {of} != {best}: {conflict} = True",
                ]
                finish = [f"{local} = None if {unknown} or {conflict} else {best}"]
            elif op in ("max", "min"):
                better = ">" if op == "max" else "<"
                selected += [
                    *of_lines,
                    f"if {of} is None:",
                    f"    {unknown} = True",
                    "    break",
                    f"if {best} is None or {of} {better} {best}:",
                    f"    {best} = {of}",
                    *([f"    {keep}"] if keep else []),
                ]
                finish = [f"{local} = None if {unknown} else {best}"]
            else:  # sum
                start[0] = f"{best} = {self.const(Decimal(0))}"
                selected += [
                    *of_lines,
                    f"if {of} is None:",
                    f"    {unknown} = True",
                    "    break",
                    f"{best} = {best} + {of}",
                ]
                finish = [f"{local} = None if {unknown} else {best}"]
        body += ["    " + line for line in selected]
        self.loops.pop()
        self.names = saved  # values computed inside the loop are per entry
        loop = (
            [f"for {entry} in {history}:", f"    {names}, = {entry}"]
            if self.tracing
            else [f"for {names}, in {history}:"]
        )
        out.append(f"if {history} is None:")
        out.append(f"    {local} = None")
        out.append("else:")
        out += ["    " + line for line in [*start, *loop, *("    " + b for b in body), *finish]]


def shift_date(day: datetime.date, amount: int, unit: str) -> datetime.date | None:
    """`day` moved by `amount` calendar units, as CQL adds durations (see `ir.DateShift`).

    None when the result falls outside the years Python's dates hold.
    """
    try:
        if unit == CalendarUnit.DAY:
            return day + datetime.timedelta(days=amount)
        if unit == CalendarUnit.WEEK:
            return day + datetime.timedelta(days=7 * amount)
        months = (
            day.year * 12 + day.month - 1 + (amount * 12 if unit == CalendarUnit.YEAR else amount)
        )
        year, month = divmod(months, 12)
        last = calendar.monthrange(year, month + 1)[1]
        return datetime.date(year, month + 1, min(day.day, last))
    except (OverflowError, ValueError):
        return None
