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
from critlang.vocab import ENTRY_LAYOUT, EntryKind, Outcome

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
    namespace.update(Decimal=Decimal, TRACE=generator.template)
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
        self.known: set[str] = set()  # expressions never None: entry fields intake requires
        # The trace every record starts from: the folded constants already in their slots.
        self.template: list[Any] = [None] * (program.size + 1)
        # Per enclosing loop of a trace: its body's top level, and the trace writes of that
        # level, made once after the loop (the last entry's values) instead of per entry.
        self.loop_tops: list[tuple[list[str], list[str]]] = []

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
            body.append("trace = TRACE.copy()")
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
                # A date's last possible day is a second local (see ir.Element.key).
                local = f"{'l' if node.bound == 'latest' else 'v'}_{node.name}"
                lines.append(f"{local} = get({node.key!r})")
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
            if isinstance(node, ir.Const):
                self.template[node.id] = _engine_value(node.value)
            elif self.loop_tops and out is self.loop_tops[-1][0]:
                self.loop_tops[-1][1].append(f"trace[{node.id}] = {value}")
            else:
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
            case ir.Or() if not self.tracing and _bound_parts(node) is not None:
                self.bound(local, node, out)
            case ir.Or(operands=operands):
                self.junction(local, operands, True, out)
            case ir.AtLeast(weights=tuple() as weights, count=count, operands=operands):
                self.score(local, count, operands, weights, out)
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
                self.guarded(local, [x, y], f"{x} {_COMPARE[op]} {y}", out, boolean=True)
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
                self.guarded(local, [x], test, out, boolean=True)
            case ir.DateShift(operand=a, amount=amount, unit=unit):
                x = self.value(a, out)
                call = f"{self.const(shift_date)}({x}, {amount}, {self.const(unit.value)})"
                self.guarded(local, [x], call, out)
            case ir.DateDiff(unit=unit, start=a, end=b):
                x, y = self.value(a, out), self.value(b, out)
                call = f"{self.const(date_diff)}({self.const(unit.value)}, {x}, {y})"
                self.guarded(local, [x, y], call, out)
            case ir.Aggregate():
                self.aggregate(node, local, out)
            case _:
                raise AssertionError(f"the Python engine has no rule for {node!r}")

    def score(
        self,
        local: str,
        count: int | Fraction,
        operands: tuple[ir.Node, ...],
        weights: tuple[Fraction, ...],
        out: list[str],
    ) -> None:
        """A weighted AtLeast: true once the true operands' weights reach `count`,
        false when the true and unknown ones together cannot."""
        sure, possible = f"{local}_sure", f"{local}_possible"
        out += [f"{sure} = {self.const(Fraction(0))}", f"{possible} = {self.const(Fraction(0))}"]
        for operand, weight in zip(operands, weights, strict=True):
            x, w = self.value(operand, out), self.const(weight)
            out.append(f"if {x} is True: {sure} += {w}")
            out.append(f"if {x} is not False: {possible} += {w}")
        threshold = self.const(Fraction(count))
        out.append(
            f"{local} = True if {sure} >= {threshold} else "
            f"(False if {possible} < {threshold} else None)"
        )

    def guarded(
        self,
        local: str,
        values: list[str],
        test: str,
        out: list[str],
        extra: tuple[str, ...] = (),
        boolean: bool = False,
    ) -> None:
        """`test`, or None when any of `values` is unknown (or an `extra` condition holds)."""
        checks = [f"{v} is None" for v in values if v not in self.constants and v not in self.known]
        unknown = " or ".join([*checks, *extra])
        out.append(f"{local} = None if {unknown} else ({test})" if unknown else f"{local} = {test}")
        if not unknown and boolean:
            self.known.add(local)  # a test of known values is true or false, never unknown

    def bound(self, local: str, node: ir.Or, out: list[str]) -> None:
        """`Or(sure, And(possible, unknown))`, lowering's comparison of a partial date, in one
        line: true when `sure` is, false when both are false, else unknown."""
        parts = _bound_parts(node)
        assert parts is not None
        tests = []
        for compare in parts:
            x, y = self.value(compare.left, out), self.value(compare.right, out)
            unknown = [
                f"{v} is None" for v in (x, y) if v not in self.constants and v not in self.known
            ]
            tests.append((" or ".join(unknown), f"{x} {_COMPARE[compare.op]} {y}"))
        (open_sure, sure), (open_possible, possible) = tests
        known_sure = f"not ({open_sure}) and " if open_sure else ""
        known_both = known_sure + (f"not ({open_possible}) and " if open_possible else "")
        out.append(
            f"{local} = True if {known_sure}{sure} else "
            f"(False if {known_both}not ({possible}) else None)"
        )

    def junction(
        self, local: str, operands: tuple[ir.Node, ...], disjunction: bool, out: list[str]
    ) -> None:
        """Kleene and/or: the deciding value wins, else unknown if any operand is unknown."""
        decisive, other = (True, False) if disjunction else (False, True)
        junction = "or" if disjunction else "and"
        unknown = f"{local}_unknown"
        if self.tracing:
            # Explanations need the value of every operand: no short cut.
            values = [self.value(x, out) for x in operands]
            fixed = {x.value for x in operands if isinstance(x, ir.Const)}
            values = [
                v for x, v in zip(operands, values, strict=True) if not isinstance(x, ir.Const)
            ]
            if decisive in fixed:
                out.append(f"{local} = {decisive}")
                return
            if not values:
                out.append(f"{local} = {None if None in fixed else other}")
                return
            if all(v in self.known for v in values) and None not in fixed:
                out.append(f"{local} = {f' {junction} '.join(values)}")
                self.known.add(local)
                return
            decided = " or ".join(f"{v} is {decisive}" for v in values)
            if None in fixed:
                out.append(f"{local} = {decisive} if {decided} else None")
                return
            open_ = " or ".join(f"{v} is None" for v in values)
            out.append(f"{local} = {decisive} if {decided} else (None if {open_} else {other})")
            return
        constants = [x.value for x in operands if isinstance(x, ir.Const)]
        if constants and len(constants) < len(operands):
            # Decided when written (a Kleene bound's unknown): only the other operands are read.
            if decisive in constants:
                out.append(f"{local} = {decisive}")
                return
            rest = tuple(x for x in operands if not isinstance(x, ir.Const))
            if None not in constants:
                self.junction(local, rest, disjunction, out)
                return
            if all(not isinstance(x, ir.And | ir.Or | ir.AtLeast) for x in rest):
                values = [self.value(x, out) for x in rest]
                decided = " or ".join(f"{v} is {decisive}" for v in values)
                out.append(f"{local} = {decisive} if {decided} else None")
                return
        if all(_single(x) for x in operands):
            # Operands that are single tests cost less to compute than to skip.
            values = [self.value(x, out) for x in operands]
            if values and all(v in self.known for v in values):
                # Two-valued: Python's own and/or, on values that are never unknown.
                out.append(f"{local} = {f' {junction} '.join(values)}")
                self.known.add(local)
                return
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

    def invariants(self, roots: list[ir.Node]) -> list[ir.Node]:
        """The largest parts of `roots` that read no entry of the loop (nor of any other)."""
        reads: dict[int, bool] = {}

        def reads_entry(node: ir.Node) -> bool:
            if node.id not in reads:
                kids = ir.children(node)
                reads[node.id] = isinstance(node, ir.Entry) or any(reads_entry(k) for k in kids)
            return reads[node.id]

        found: list[ir.Node] = []
        stack = list(reversed(roots))
        while stack:
            node = stack.pop()
            if not reads_entry(node):
                if not isinstance(node, ir.Const | ir.Element | ir.Definition):
                    found.append(node)
            else:
                stack.extend(reversed(ir.children(node)))
        return found

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
        self.known.update(prefix + field for field in REQUIRED[kind])
        self.known.add(f"({prefix}end is None)")
        # What does not depend on the entry is computed once, before the loop.
        for invariant in self.invariants([x for x in (node.where, node.of) if x is not None]):
            self.value(invariant, out)
        saved = dict(self.names)
        self.loops.append(node)
        body: list[str] = []
        last: list[str] = []  # the trace's per-entry values, written once after the loop
        quick = (
            self.tracing
            and node.where is not None
            and not any(isinstance(n, ir.Aggregate) for n in ir.walk(node.where))
        )
        if quick:
            # Each entry's `where` as `status` computes it; the trace's values of the last
            # entry the loop read are computed once after it (see below).
            self.tracing = False
            where = self.value(node.where, body) if node.where is not None else None
            self.tracing = True
        else:
            self.loop_tops.append((body, last))
            where = self.value(node.where, body) if node.where is not None else None
            self.loop_tops.pop()
        selected: list[str] = []  # statements for a selected entry
        op = node.op
        unknown = f"{local}_unknown"
        if where is not None and where not in self.known:
            body.append(f"if {where} is None:")
            if op == "exists":
                body.append(f"    {unknown} = True")
                body.append("    continue")
            else:
                body.append(f"    {unknown} = True")
                body.append("    break")
            body.append(f"if {where}:")
        elif where is not None:
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
        if quick and node.where is not None:
            # The loop's variables still hold the last entry it read: its `where` once more,
            # traced, leaves the trace as computing it traced for every entry would.
            self.loops.append(node)
            self.value(node.where, last)
            self.loops.pop()
            self.names = saved
        if last:
            # The loop's top level runs for every entry before any `break` or `continue`,
            # so after it its locals hold the last entry's values, as per-entry writes would.
            finish += [f"if {history}:", *("    " + line for line in last)]
        out.append(f"if {history} is None:")
        out.append(f"    {local} = None")
        out.append("else:")
        out += ["    " + line for line in [*start, *loop, *("    " + b for b in body), *finish]]


def _engine_value(value: ir.Value) -> Any:
    """A folded constant as the generated code holds it (a rational as a Decimal)."""
    return to_decimal(value) if isinstance(value, Fraction) else value


def _bound_parts(node: ir.Or) -> tuple[ir.Compare, ir.Compare] | None:
    """(sure, possible) when `node` is `Or(sure, And(possible, Const(None)))`."""
    match node.operands:
        case (ir.Compare() as sure, ir.And(operands=(ir.Compare() as possible, ir.Const() as c))):
            if c.value is None:
                return sure, possible
    return None


def _single(node: ir.Node) -> bool:
    """A test that is one line of Python: cheaper to compute than to skip."""
    if isinstance(node, ir.Or):
        return _bound_parts(node) is not None
    return not isinstance(node, ir.And | ir.AtLeast)


# The entry fields intake never leaves unknown, by entry kind (vocab.ENTRY_LAYOUT).
REQUIRED = {
    EntryKind.MEASUREMENT: ("date", "value"),
    EntryKind.CODE: ("date", "code"),
    EntryKind.MEDICATION: ("start", "code"),
}


# ---- calendar arithmetic (ir.DateShift, ir.DateDiff), as CQL does it ----------------


def shift_date(day: datetime.date, amount: int, unit: str) -> datetime.date | None:
    """`day` moved by `amount` calendar units; a month or year keeps the day of the month
    or takes the month's last day. None outside the calendar's years 1 to 9999."""
    try:
        if unit in ("day", "week"):
            return day + datetime.timedelta(days=amount * (7 if unit == "week" else 1))
        months = day.year * 12 + day.month - 1 + amount * (12 if unit == "year" else 1)
        year, month = divmod(months, 12)
        last = calendar.monthrange(year, month + 1)[1]
        return datetime.date(year, month + 1, min(day.day, last))
    except (OverflowError, ValueError, calendar.IllegalMonthError):
        return None


def date_diff(unit: str, start: datetime.date, end: datetime.date) -> Decimal:
    """Whole calendar units from `start` to `end`: the most `n` with `start + n units <= end`,
    negative (the same count the other way) when `end` is before `start`."""
    if end < start:
        return -date_diff(unit, end, start)
    if unit in ("day", "week"):
        return Decimal((end - start).days // (7 if unit == "week" else 1))
    months = (end.year - start.year) * 12 + end.month - start.month
    count = months if unit == "month" else months // 12
    moved = shift_date(start, count * (12 if unit == "year" else 1), "month")
    if moved is None or moved > end:
        count -= 1
    return Decimal(count)
