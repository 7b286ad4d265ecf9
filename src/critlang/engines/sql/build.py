"""Small builders of sqlglot nodes shared by the SQL engine's stages.

A sqlglot node has one parent, so every builder returns fresh nodes.
"""

from __future__ import annotations

from sqlglot import exp


def and_(*terms: exp.Expr) -> exp.Expr:
    """Kleene conjunction (SQL's AND is Kleene's); of no terms, TRUE."""
    if not terms:
        return exp.true()
    return _chain(exp.And, terms)


def or_(*terms: exp.Expr) -> exp.Expr:
    """Kleene disjunction; of no terms, FALSE."""
    if not terms:
        return exp.false()
    return _chain(exp.Or, terms)


def _chain(connective: type[exp.Connector], terms: tuple[exp.Expr, ...]) -> exp.Expr:
    """terms[0] op terms[1] op ...; as sqlglot's `and_`, without its per-term parsing."""
    if len(terms) == 1:
        return terms[0]

    def wrapped(term: exp.Expr) -> exp.Expr:
        return exp.Paren(this=term) if isinstance(term, exp.Connector) else term

    result = wrapped(terms[0])
    for term in terms[1:]:
        result = connective(this=result, expression=wrapped(term))
    return result


def not_(term: exp.Expr) -> exp.Expr:
    return exp.not_(term, copy=False)


def is_null(term: exp.Expr) -> exp.Expr:
    return exp.Is(this=paren(term), expression=exp.null())


def is_(term: exp.Expr, truth: bool) -> exp.Expr:
    return exp.Is(this=paren(term), expression=exp.true() if truth else exp.false())


def cast(value: exp.Expr, to: exp.DataType | str) -> exp.Cast:
    """CAST(value AS to), taking `value` as it is (sqlglot's helper copies it)."""
    kind = to if isinstance(to, exp.DataType) else exp.DataType.build(to, dialect="duckdb")
    return exp.Cast(this=value, to=kind)


def when(condition: exp.Expr, value: exp.Expr, default: exp.Expr | None = None) -> exp.Case:
    """CASE WHEN condition THEN value [ELSE default] END (sqlglot's `Case.when` copies)."""
    return case([(condition, value)], default)


def case(whens: list[tuple[exp.Expr, exp.Expr]], default: exp.Expr | None = None) -> exp.Case:
    """CASE with every WHEN built at once: adding them one by one would copy the CASE."""
    ifs = [exp.If(this=condition, true=value) for condition, value in whens]
    return exp.Case(ifs=ifs, default=default)


def text(value: str) -> exp.Expr:
    return exp.Literal.string(value)


def col(name: str) -> exp.Expr:
    return exp.column(name, quoted=True)


def alias(sql: exp.Expr, name: str) -> exp.Expr:
    return exp.alias_(sql, name, quoted=True, copy=False)


def select(columns: list[exp.Expr], source: exp.Expr | str) -> exp.Select:
    """SELECT columns FROM source; every part is built fresh, so nothing is copied."""
    return exp.select(*columns, copy=False).from_(source, copy=False)


def lambda_(body: exp.Expr) -> exp.Lambda:
    return exp.Lambda(this=body, expressions=[exp.to_identifier("x")])


def x() -> exp.Expr:
    """The lambda's parameter; a fresh node each time, as a node has one parent."""
    return exp.column("x")


def paren(sql: exp.Expr) -> exp.Expr:
    """`sql` in parentheses unless it is atomic; sqlglot prints trees as they are built."""
    atomic = (exp.Column, exp.Literal, exp.Cast, exp.Paren, exp.Func, exp.Case, exp.Boolean)
    if isinstance(sql, atomic) and not isinstance(sql, exp.Connector):
        return sql
    return exp.Paren(this=sql)
