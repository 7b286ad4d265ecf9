"""The formatter on generated protocols: same tree, idempotent, every comment kept.

Protocols are generated as syntax trees, then written out by a deliberately
careless writer of this file's own (every sub-expression in parentheses, items
in any order, random spacing, line breaks and comments between tokens), so the
formatter sees text that is far from canonical.
"""

from __future__ import annotations

import datetime
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from critlang import syntax as s
from critlang.fmt import NO_SPAN, format_source, without_spans
from critlang.parser import parse

ROOT = Path(__file__).resolve().parents[2]
SP = NO_SPAN

NAMES = ["age", "sex", "fvc", "dlco_now", "x", "y2", "k_limit", "d", "creatinine", "ct"]
UNITS = ["mg/dL", "a", "mo", "U/L", "mL/min/mm[Hg]", "10*3/uL", "%"]
COMMENT = re.compile(r"#[^\n]*")

names = st.sampled_from(NAMES)
name_nodes = names.map(lambda n: s.Name(n, SP))
name_tuples = st.lists(name_nodes, min_size=1, max_size=8).map(tuple)
decimals = st.decimals(min_value=-10000, max_value=10000, places=2, allow_nan=False)
# No '#' in texts, so that comments can be counted in the formatted text.
texts = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="#"), max_size=30)
long_texts = st.lists(st.text("abc def-.", min_size=1, max_size=15), min_size=2, max_size=4).map(
    lambda lines: "\n".join(line.strip() or "x" for line in lines)
)
strings = st.one_of(texts, long_texts)

number_lits = decimals.map(lambda v: s.NumberLit(v, SP))
quantity_lits = st.builds(lambda v, u: s.QuantityLit(v, u, SP), decimals, st.sampled_from(UNITS))
date_lits = st.dates(datetime.date(1900, 1, 1), datetime.date(2100, 1, 1)).map(
    lambda d: s.DateLit(d, SP)
)
literals = st.one_of(number_lits, quantity_lits, date_lits)
leaves = st.one_of(
    literals,
    st.booleans().map(lambda b: s.BoolLit(b, SP)),
    names.map(lambda n: s.Ref(n, SP)),
)


def _compound(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    sub_criteria = st.builds(
        lambda n, t, w, c: s.SubCriterion(n, t, w, c, SP),
        name_nodes,
        st.none() | texts,
        st.none() | inner,
        inner,
    )
    items = st.lists(st.one_of(inner, sub_criteria), min_size=1, max_size=4).map(tuple)
    return st.one_of(
        inner.map(lambda o: s.Not(o, SP)),
        st.builds(lambda a, b: s.And(a, b, SP), inner, inner),
        st.builds(lambda a, b: s.Or(a, b, SP), inner, inner),
        st.builds(lambda a, b: s.Unless(a, b, SP), inner, inner),
        st.builds(
            lambda op, a, b: s.Compare(op, a, b, SP),
            st.sampled_from(["<", "<=", ">", ">=", "=", "!="]),
            inner,
            inner,
        ),
        st.builds(
            lambda a, lo, hi, e: s.Between(a, lo, hi, e, SP), inner, inner, inner, st.booleans()
        ),
        st.builds(lambda a, v: s.Member(a, v, SP), inner, name_tuples),
        st.builds(
            lambda a, q, v: s.Includes(a, q, v, SP),
            inner,
            st.sampled_from(["any", "all"]),
            name_tuples,
        ),
        st.builds(
            lambda op, a, b: s.Arithmetic(op, a, b, SP), st.sampled_from(list("+-*/")), inner, inner
        ),
        st.builds(
            lambda d, a, b: s.RelativeChange(d, a, b, SP),
            st.sampled_from(["decline", "change"]),
            inner,
            inner,
        ),
        st.builds(
            lambda q, its: s.Quantified(q, None, its, SP), st.sampled_from(["any", "all"]), items
        ),
        st.builds(lambda n, its: s.Quantified("at_least", n, its, SP), st.integers(0, 5), items),
    )


expressions = st.recursive(leaves, _compound, max_leaves=12)

declared_types = st.one_of(
    st.just(s.BooleanType(SP)),
    st.just(s.NumberType(SP)),
    st.just(s.DateType(SP)),
    st.sampled_from(UNITS[:-1]).map(lambda u: s.QuantityType(u, SP)),
    st.sampled_from(["a", "mo", "d"]).map(lambda u: s.DurationType(u, SP)),
    name_tuples.map(lambda v: s.EnumType(v, SP)),
    name_tuples.map(lambda v: s.SetType(v, SP)),
    st.lists(texts, min_size=1, max_size=3).map(lambda a: s.AttestationType(tuple(a), SP)),
)
elements = st.builds(
    lambda n, t, label, r, m: s.DataElement(n, t, label, r, m, SP),
    name_nodes,
    declared_types,
    st.none() | strings,
    st.none() | st.tuples(decimals, decimals),
    st.none() | quantity_lits,
)
constants = st.builds(
    lambda n, v, label: s.Constant(n, v, label, SP), name_nodes, literals, st.none() | strings
)
definitions = st.builds(
    lambda n, e, label: s.Definition(n, e, label, SP), name_nodes, expressions, st.none() | strings
)
criteria = st.builds(
    lambda kind, number, title, reg, plain, notes, applies, cond: s.Criterion(
        kind,
        s.Name(("I" if kind == "inclusion" else "E") + str(number), SP),
        title,
        reg,
        plain,
        tuple(notes),
        applies,
        cond,
        SP,
    ),
    st.sampled_from(["inclusion", "exclusion"]),
    st.integers(0, 99),
    texts,
    st.none() | strings,
    st.none() | strings,
    st.lists(strings, max_size=2),
    st.none() | expressions,
    expressions,
)
code_lits = st.builds(
    lambda system, code: s.CodeLit(s.Name(system, SP), code, SP),
    st.sampled_from(["icd10cm", "atc", "snomed"]),
    texts,
)
partial_dates = st.builds(
    lambda year, month: s.PartialDateLit(f"{year:04d}-{month:02d}", SP),
    st.integers(1000, 2999),
    st.integers(1, 12),
)
entry_values = st.one_of(literals, code_lits, partial_dates, texts.map(lambda t: s.TextLit(t, SP)))
history_lits = st.lists(
    st.lists(
        st.builds(lambda n, v: s.EntryItem(n, v, SP), name_nodes, entry_values), max_size=4
    ).map(lambda items: s.EntryLit(tuple(items), SP)),
    max_size=3,
).map(lambda entries: s.HistoryLit(tuple(entries), SP))
field_values = st.one_of(
    literals,
    st.booleans().map(lambda b: s.BoolLit(b, SP)),
    name_nodes,
    st.lists(name_nodes, max_size=3).map(tuple),
    code_lits,
    partial_dates,
    history_lits,
)
examples = st.builds(
    lambda title, fields, expect: s.Example(title, tuple(fields), expect, SP),
    texts,
    st.lists(
        st.builds(lambda n, v: s.ExampleField(n, v, SP), name_nodes, field_values), max_size=4
    ),
    st.sampled_from(["eligible", "ineligible", "undetermined"]).map(lambda n: s.Name(n, SP)),
)
headers = st.builds(
    s.Header,
    title=st.none() | texts,
    version=st.none() | texts,
    registry=st.none() | texts,
    sponsor=st.none() | texts,
    sites=st.lists(texts, max_size=2).map(tuple),
    status=st.none() | names,
    summary=st.none() | strings,
)
protocols = st.builds(
    lambda name, header, els, cons, defs, crits, exs: s.Protocol(
        name, header, tuple(els), tuple(cons), tuple(defs), tuple(crits), tuple(exs), SP
    ),
    name_nodes,
    headers,
    st.lists(elements, max_size=4),
    st.lists(constants, max_size=2),
    st.lists(definitions, max_size=2),
    st.lists(criteria, max_size=3),
    st.lists(examples, max_size=2),
)


# ---- the careless writer ----------------------------------------------------------


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("\r", "\\r") + '"'


def _number(value: Decimal) -> list[str]:
    text = f"{abs(value):f}"
    return ["-", text] if value.is_signed() else [text]


def _literal(node: Any) -> list[str]:
    match node:
        case s.QuantityLit(value=v, unit="%"):
            return [*_number(v), "%"]
        case s.QuantityLit(value=v, unit=u):
            return [*_number(v), f"'{u}'"]
        case s.NumberLit(value=v):
            return _number(v)
        case s.DateLit(value=d):
            return [d.isoformat()]
    raise AssertionError(node)


def _names(values: tuple[s.Name, ...]) -> list[str]:
    out = ["("]
    for position, value in enumerate(values):
        out += [",", value.text] if position else [value.text]
    return [*out, ")"]


def _expr(node: Any) -> list[str]:
    """Tokens of an expression, every compound part in parentheses."""

    def wrap(tokens: list[str]) -> list[str]:
        return ["(", *tokens, ")"]

    match node:
        case s.NumberLit() | s.QuantityLit() | s.DateLit():
            return wrap(_literal(node))
        case s.BoolLit(value=v):
            return ["true" if v else "false"]
        case s.Ref(name=n):
            return [n]
        case s.Not(operand=o):
            return wrap(["not", *_expr(o)])
        case s.And(left=a, right=b):
            return wrap([*_expr(a), "and", *_expr(b)])
        case s.Or(left=a, right=b):
            return wrap([*_expr(a), "or", *_expr(b)])
        case s.Unless(rule=a, exception=b):
            return wrap([*_expr(a), "unless", *_expr(b)])
        case s.Compare(op=op, left=a, right=b):
            return wrap([*_expr(a), op, *_expr(b)])
        case s.Between(subject=x, low=lo, high=hi, exclusive=e):
            tail = ["exclusive"] if e else []
            return wrap([*_expr(x), "between", *_expr(lo), "and", *_expr(hi), *tail])
        case s.Member(subject=x, values=v):
            return wrap([*_expr(x), "in", *_names(v)])
        case s.Includes(subject=x, quantifier=q, values=v):
            return wrap([*_expr(x), "includes", q, "of", *_names(v)])
        case s.Arithmetic(op=op, left=a, right=b):
            return wrap([*_expr(a), op, *_expr(b)])
        case s.RelativeChange(direction=d, baseline=a, current=b):
            return wrap([d, "from", *_expr(a), "to", *_expr(b)])
        case s.Quantified(quantifier=q, count=n, items=items):
            head = ["at", "least", str(n), "of"] if q == "at_least" else [q, "of"]
            body: list[str] = []
            for position, item in enumerate(items):
                body += [","] if position else []
                body += _item(item)
            return [*head, "[", *body, "]"]
    raise AssertionError(node)


def _item(item: Any) -> list[str]:
    if not isinstance(item, s.SubCriterion):
        return _expr(item)
    out = [item.name.text]
    if item.title is not None:
        out.append(_quote(item.title))
    if item.applies_when is not None:
        out += ["applies", "when", *_expr(item.applies_when)]
    return [*out, ":", *_expr(item.condition)]


def _type(declared: Any) -> list[str]:
    match declared:
        case s.BooleanType():
            return ["boolean"]
        case s.NumberType():
            return ["number"]
        case s.DateType():
            return ["date"]
        case s.QuantityType(unit=u):
            return ["quantity", f"'{u}'"]
        case s.DurationType(unit=u):
            return ["duration", f"'{u}'"]
        case s.EnumType(values=v):
            return ["one", "of", *_names(v)]
        case s.SetType(values=v):
            return ["set", "of", *_names(v)]
        case s.AttestationType(attesters=a):
            out = ["attestation", "by"]
            for position, who in enumerate(a):
                out += (["and"] if position % 2 else [","]) if position else []
                out.append(_quote(who))
            return out
    raise AssertionError(declared)


def _field_value(value: Any) -> list[str]:
    match value:
        case s.CodeLit(system=system, code=code):
            return [system.text, _quote(code)]
        case s.PartialDateLit(text=text):
            return [text]
        case s.TextLit(text=text):
            return [_quote(text)]
        case s.HistoryLit(entries=entries):
            words = ["["]
            for number, entry in enumerate(entries):
                words += [","] if number else []
                words.append("{")
                for position, item in enumerate(entry.items):
                    words += [","] if position else []
                    words += [item.name.text, "=", *_field_value(item.value)]
                words.append("}")
            return [*words, "]"]
        case s.BoolLit(value=v):
            return ["true" if v else "false"]
        case s.Name(text=t):
            return [t]
        case tuple():
            return _names(value) if value else ["(", ")"]
    return _literal(value)


def _items(protocol: s.Protocol, order: list[int]) -> list[list[str]]:
    """Top-level items, each kind in its own order, the kinds interleaved by `order`."""
    queues: list[list[list[str]]] = [
        [["data", e.name.text, ":", *_type(e.type), *_options(e)] for e in protocol.elements],
        [
            ["constant", c.name.text, "=", *_literal(c.value), *_label(c.label)]
            for c in protocol.constants
        ],
        [
            ["define", d.name.text, "=", *_expr(d.expr), *_label(d.label)]
            for d in protocol.definitions
        ],
        [_criterion(c) for c in protocol.criteria],
        [_example(e) for e in protocol.examples],
    ]
    out: list[list[str]] = []
    for kind in order:
        if queues[kind]:
            out.append(queues[kind].pop(0))
    for queue in queues:
        out.extend(queue)
    return out


def _label(label: str | None) -> list[str]:
    return [] if label is None else ["label", _quote(label)]


def _options(element: s.DataElement) -> list[str]:
    out = _label(element.label)
    if element.plausible_range is not None:
        low, high = element.plausible_range
        out += ["range", *_number(low), "to", *_number(high)]
    if element.molar_mass is not None:
        out += ["molar", "mass", *_literal(element.molar_mass)]
    return out


def _criterion(c: s.Criterion) -> list[str]:
    out = [c.kind, c.id.text, _quote(c.title)]
    for note in c.notes:
        out += ["note", _quote(note)]
    if c.plain is not None:
        out += ["plain", _quote(c.plain)]
    if c.applies_when is not None:
        out += ["applies", "when", *_expr(c.applies_when)]
    if c.registered is not None:
        out += ["registered", _quote(c.registered)]
    return [*out, "met", "when", *_expr(c.condition)]


def _example(e: s.Example) -> list[str]:
    fields: list[str] = []
    for position, f in enumerate(e.fields):
        fields += [","] if position else []
        fields += [f.name.text, "=", *_field_value(f.value)]
    return ["example", _quote(e.title), "{", *fields, "}", "expect", e.expect.text]


def _header(header: s.Header) -> list[list[str]]:
    out: list[list[str]] = []
    for key in ("summary", "status", "title", "version", "registry", "sponsor"):
        value = getattr(header, key)
        if value is not None:
            out.append([key, value if key == "status" else _quote(value)])
    if header.sites:
        sites: list[str] = ["sites"]
        for position, site in enumerate(header.sites):
            sites += [","] if position else []
            sites.append(_quote(site))
        out.append(sites)
    return out


SEPARATORS = [" ", "  ", "\n", "\n\n  ", " # a comment\n", "\n# own line\n", "\t"]


@st.composite
def careless_texts(draw: st.DrawFn) -> tuple[s.Protocol, str]:
    protocol = draw(protocols)
    order = draw(st.lists(st.integers(0, 4), max_size=12))
    tokens = ["protocol", protocol.name.text]
    for part in [*_header(protocol.header), *_items(protocol, order)]:
        tokens += part
    pieces: list[str] = [draw(st.sampled_from(["", "# leading\n"]))]
    for token in tokens:
        pieces += [token, draw(st.sampled_from(SEPARATORS))]
    return protocol, "".join(pieces)


SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(careless_texts())
def test_formatting_keeps_the_tree_and_every_comment(case: tuple[s.Protocol, str]) -> None:
    protocol, text = case
    assert without_spans(parse(text)) == without_spans(protocol)
    formatted = format_source(text)
    assert without_spans(parse(formatted)) == without_spans(protocol)
    assert sorted(COMMENT.findall(formatted)) == sorted(c.rstrip() for c in COMMENT.findall(text))


@SETTINGS
@given(careless_texts())
def test_formatting_is_idempotent(case: tuple[s.Protocol, str]) -> None:
    formatted = format_source(case[1])
    assert format_source(formatted) == formatted


def test_ctd_ild_is_canonical_and_stable() -> None:
    text = (ROOT / "protocols" / "ctd_ild.crit").read_text(encoding="utf-8")
    assert format_source(text) == text
    assert without_spans(parse(format_source(text))) == without_spans(parse(text))
