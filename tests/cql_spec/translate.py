"""The CQL specification's tests, translated into critlang where critlang can say them.

The XML files beside this module are the HL7 CQL test suite
(github.com/cqframework/cql-tests, Apache-2.0, see NOTICE.md). Each `<test>`
has a CQL expression and its expected output. `translate` turns the ones
critlang can express (dates without a time of day, full or partial, date
plus or minus a calendar duration, comparisons of dates, `years/months/
weeks/days between`, `X in Interval[A, B]` of dates or integers, and Kleene
logic with `null`) into one criterion each of one protocol, with a record
that holds the partial dates and the unknowns (a `null` is a data element
absent from the record; a partial date is a record's `"2014-01"`, as no
critlang literal is partial). Every other case gets the category of what
critlang cannot say. The criterion's expected word is the CQL output:
`true`, `false`, or `unknown` for `null`. An expression that is not yes/no
(`DateTime(2005, 10, 10) + 5 years`, output `@2010-10-10T`) is compared with
its output (`2005-10-10 + 5 years = 2010-10-10`, expected true).

This is test code, not product code: it reads only the subset of CQL the
suite's date, interval, null and logic tests use.

    python -m tests.cql_spec.translate --markdown docs/cql-conformance.md
"""

from __future__ import annotations

import argparse
import re
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

HERE = Path(__file__).resolve().parent
FILES = (
    "CqlDateTimeOperatorsTest.xml",
    "CqlIntervalOperatorsTest.xml",
    "CqlNullologicalOperatorsTest.xml",
    "CqlLogicalOperatorsTest.xml",
)
NS = "{http://hl7.org/fhirpath/tests}"
CALENDAR = {"year", "month", "week", "day"}
CLOCK = {"hour", "minute", "second", "millisecond"}


class NotExpressible(Exception):
    """A CQL construct critlang has no words for; the message is its category."""


@attrs.frozen
class SpecTest:
    file: str
    group: str
    name: str
    expression: str
    output: str | None
    invalid: bool


@attrs.frozen
class Translated:
    test: SpecTest
    condition: str  # critlang
    fields: dict[str, tuple[str, Any]]  # name -> (declared type, record value or None)
    expected: str  # true | false | unknown


def read_tests(files: Sequence[str] = FILES) -> list[SpecTest]:
    tests = []
    for file in files:
        root = ET.parse(HERE / file).getroot()
        for group in root.iter(f"{NS}group"):
            for test in group.iter(f"{NS}test"):
                expression = test.find(f"{NS}expression")
                outputs = test.findall(f"{NS}output")
                assert expression is not None and expression.text is not None
                output = None
                if len(outputs) > 1:
                    output = "<several>"
                elif outputs and outputs[0].text is not None:
                    output = " ".join(outputs[0].text.split())
                tests.append(
                    SpecTest(
                        file.removesuffix(".xml"),
                        group.get("name", ""),
                        test.get("name", ""),
                        " ".join(expression.text.split()),
                        output,
                        expression.get("invalid") in ("true", "semantic"),
                    )
                )
    return tests


# ---- CQL: tokens and a small parser ---------------------------------------------------

TOKEN = re.compile(
    r"\s*(?:(?P<date>@[0-9T][0-9T:.\-+Z]*)|(?P<number>[0-9]+(?:\.[0-9]+)?)"
    r"|(?P<string>'(?:[^'\\]|\\.)*')|(?P<name>[A-Za-z_][A-Za-z_0-9]*|\"[^\"]*\")"
    r"|(?P<op><=|>=|!=|!~|[=<>~+\-*/(),\[\]{}:.]))"
)


def tokens(text: str) -> list[str]:
    out, at = [], 0
    while at < len(text):
        match = TOKEN.match(text, at)
        if match is None or match.end() == at:
            if text[at:].strip() == "":
                break
            raise NotExpressible("other syntax")
        out.append(match.group().strip())
        at = match.end()
    return out


@attrs.frozen
class Value:
    text: str  # critlang
    type: str  # bool | date | int | null


class Parser:
    """CQL to critlang for one expression; each partial date or null becomes a field."""

    def __init__(self, text: str, prefix: str) -> None:
        self.tokens = tokens(text)
        self.at = 0
        self.prefix = prefix
        self.fields: dict[str, tuple[str, Any]] = {}

    # ---- the token stream ----

    def peek(self, ahead: int = 0) -> str | None:
        index = self.at + ahead
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise NotExpressible("other syntax")
        self.at += 1
        return token

    def field(self, kind: str, value: Any) -> str:
        name = f"{self.prefix}_{len(self.fields)}"
        self.fields[name] = (kind, value)
        return name

    def typed(self, value: Value, kind: str) -> Value:
        """A `null` given the type its context needs: an absent field of that type."""
        if value.type != "null":
            return value
        if kind == "bool":
            return Value(self.field("boolean", None), "bool")
        if kind == "date":
            return Value(self.field("date", None), "date")
        return Value(self.field("integer", None), "int")

    # ---- the grammar, lowest precedence first ----

    def parse(self) -> Value:
        value = self.implies()
        if self.peek() is not None:
            raise NotExpressible(self.category_of_rest())
        return value

    def category_of_rest(self) -> str:
        rest = " ".join(self.tokens[self.at :])
        return categorize(rest)

    def implies(self) -> Value:
        left = self.or_()
        while self.peek() == "implies":
            self.take()
            a, b = self.typed(left, "bool"), self.typed(self.or_(), "bool")
            self.need(a, "bool")
            self.need(b, "bool")
            left = Value(f"(not {a.text} or {b.text})", "bool")
        return left

    def or_(self) -> Value:
        left = self.and_()
        while self.peek() in ("or", "xor"):
            word = self.take()
            a, b = self.typed(left, "bool"), self.typed(self.and_(), "bool")
            self.need(a, "bool")
            self.need(b, "bool")
            if word == "or":
                left = Value(f"({a.text} or {b.text})", "bool")
            else:
                text = f"(({a.text} and not {b.text}) or (not {a.text} and {b.text}))"
                left = Value(text, "bool")
        return left

    def and_(self) -> Value:
        left = self.not_()
        while self.peek() == "and":
            self.take()
            a, b = self.typed(left, "bool"), self.typed(self.not_(), "bool")
            self.need(a, "bool")
            self.need(b, "bool")
            left = Value(f"({a.text} and {b.text})", "bool")
        return left

    def not_(self) -> Value:
        if self.peek() == "not":
            self.take()
            inner = self.typed(self.not_(), "bool")
            self.need(inner, "bool")
            return Value(f"(not {inner.text})", "bool")
        return self.comparison()

    def comparison(self) -> Value:
        left = self.additive()
        token = self.peek()
        if token in ("=", "!=", "<", ">", "<=", ">="):
            self.take()
            right = self.additive()
            left, right = self.unify(left, right)
            if left.type == "bool" and token not in ("=", "!="):
                raise NotExpressible("other syntax")
            return Value(f"({left.text} {token} {right.text})", "bool")
        if token in ("~", "!~"):
            raise NotExpressible("equivalence (~)")
        if token == "in" and self.peek(1) == "Interval":
            self.take()
            return self.interval_membership(left)
        return left

    def interval_membership(self, point: Value) -> Value:
        self.take("Interval")
        opening = self.take()
        if opening not in ("[", "("):
            raise NotExpressible("intervals")
        low = self.additive()
        self.take(",")
        high = self.additive()
        closing = self.take()
        if (opening, closing) not in (("[", "]"), ("(", ")")):
            raise NotExpressible("intervals")
        if low.type == "null" or high.type == "null":
            # A null boundary of a CQL interval is unbounded (closed) or unknown (open),
            # not a missing value: nothing critlang's `between` says.
            raise NotExpressible("intervals")
        point, low = self.unify(point, low)
        point, high = self.unify(point, high)
        exclusive = " exclusive" if opening == "(" else ""
        return Value(f"({point.text} between {low.text} and {high.text}{exclusive})", "bool")

    def unify(self, a: Value, b: Value) -> tuple[Value, Value]:
        if a.type == "null" and b.type == "null":
            return self.typed(a, "bool"), self.typed(b, "bool")
        a, b = self.typed(a, b.type), self.typed(b, a.type)
        if a.type != b.type:
            raise NotExpressible("other syntax")
        return a, b

    def need(self, value: Value, kind: str) -> None:
        if value.type != kind:
            raise NotExpressible("other syntax")

    def additive(self) -> Value:
        left = self.primary()
        if self.peek() in ("*", "/"):
            raise NotExpressible("arithmetic on durations")
        while self.peek() in ("+", "-"):
            if left.type == "int":
                raise NotExpressible("arithmetic on durations")
            op = self.take()
            duration = self.duration()
            left = self.typed(left, "date")
            self.need(left, "date")
            left = Value(f"({left.text} {op} {duration})", "date")
        return left

    def duration(self) -> str:
        number = self.take()
        if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", number):
            raise NotExpressible("date arithmetic with a null or a quantity")
        unit = self.take()
        word = unit.rstrip("s")
        if word in CLOCK:
            raise NotExpressible("time of day")
        if word not in CALENDAR:
            raise NotExpressible("other syntax")
        if "." in number:
            raise NotExpressible("fractional calendar durations")
        return f"{number} {word}{'s' if number != '1' else ''}"

    def primary(self) -> Value:
        token = self.peek()
        if token is None:
            raise NotExpressible("other syntax")
        if token == "(":
            self.take()
            inner = self.implies()
            self.take(")")
            return Value(
                f"({inner.text})" if not inner.text.startswith("(") else inner.text, inner.type
            )
        if token in ("true", "false"):
            self.take()
            return Value(token, "bool")
        if token == "null":
            self.take()
            if self.peek() == "as":
                self.take()
                kind = self.take()
                kinds = {"Boolean": "bool", "Date": "date", "DateTime": "date", "Integer": "int"}
                if kind not in kinds:
                    raise NotExpressible(categorize(kind))
                return self.typed(Value("null", "null"), kinds[kind])
            return Value("null", "null")
        if token.startswith("@"):
            self.take()
            return self.date_literal(token)
        if token in ("DateTime", "Date") and self.peek(1) == "(":
            return self.constructor()
        if token in ("years", "months", "weeks", "days") and self.peek(1) == "between":
            self.take()
            self.take("between")
            a = self.typed(self.additive(), "date")
            self.take("and")
            b = self.typed(self.additive(), "date")
            self.need(a, "date")
            self.need(b, "date")
            return Value(f"({token} between {a.text} and {b.text})", "int")
        if re.fullmatch(r"[0-9]+", token):
            self.take()
            if self.peek() is not None and self.peek().rstrip("s") in CALENDAR | CLOCK:  # type: ignore[union-attr]
                raise NotExpressible("durations as values")
            return Value(token, "int")
        if token == "-" and re.fullmatch(r"[0-9]+", self.peek(1) or ""):
            self.take()
            return Value(f"-{self.take()}", "int")
        raise NotExpressible(categorize(" ".join(self.tokens[self.at :])))

    def date_literal(self, token: str) -> Value:
        text = token[1:].rstrip("T")
        if "T" in text or token.startswith("@T"):
            raise NotExpressible("time of day")
        return self.date(text)

    def date(self, text: str) -> Value:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            return Value(text, "date")
        if re.fullmatch(r"[0-9]{4}(-[0-9]{2})?", text):
            return Value(self.field("date", text), "date")
        raise NotExpressible("other syntax")

    def constructor(self) -> Value:
        self.take()
        self.take("(")
        parts: list[str] = []
        while self.peek() != ")":
            part = self.take()
            if part == ",":
                continue
            if part == "null":
                raise NotExpressible("a null component of a date")
            if not re.fullmatch(r"[0-9]+", part):
                raise NotExpressible("time zones")
            parts.append(part)
        self.take(")")
        if len(parts) > 3:
            raise NotExpressible("time of day")
        widths = (4, 2, 2)
        text = "-".join(p.rjust(w, "0") for p, w in zip(parts, widths, strict=False))
        return self.date(text)


CATEGORIES = (
    (
        r"\bInterval\b|\b(overlaps|meets|starts|ends|includes|included|during|properly"
        r"|width|collapse|expand|union|intersect|except|contains|start of|end of|point from"
        r"|before or on|after or on)\b",
        "intervals",
    ),
    (r"\bsame\b|\b(before|after)\b|\bdifference\b|\bduration\b", "precision-based timing"),
    (r"\b(from|Now|Today|TimeOfDay|Time)\b", "components, clock and current time"),
    (r"\b(IsNull|IsTrue|IsFalse|Coalesce|is null|is not null)\b|\bis\b", "null tests"),
    (r"\b(hours?|minutes?|seconds?|milliseconds?)\b|@T", "time of day"),
    (r"'", "strings and other types"),
    (r"\{", "lists"),
    (r"\b(ToString|ToDateTime|ToDate|convert|cast|as)\b", "conversions"),
)


def categorize(text: str) -> str:
    for pattern, category in CATEGORIES:
        if re.search(pattern, text):
            return category
    return "other syntax"


def expected_word(output: str | None) -> str | None:
    if output is None or output == "null":
        return "unknown"
    if output in ("true", "false"):
        return output
    return None


def translate(test: SpecTest, prefix: str) -> Translated:
    """The critlang condition for one test, or NotExpressible with its category."""
    if test.invalid:
        raise NotExpressible("an error expected")
    if test.output == "<several>":
        raise NotExpressible("lists")
    whole = f"{test.expression} {test.output or ''}"
    if re.search(r"@T|T[0-9]{2}", whole) or re.search(r"[+-][0-9]{2}:[0-9]{2}\b", whole):
        raise NotExpressible("time of day")
    parser = Parser(test.expression, prefix)
    value = parser.parse()
    word = expected_word(test.output)
    if value.type == "bool" or value.type == "null":
        value = parser.typed(value, "bool")
        if word is None:
            raise NotExpressible("other syntax")
        return Translated(test, value.text, parser.fields, word)
    # A date or a number: compare it with the output.
    if word == "unknown":
        raise NotExpressible("a null date or number as the result")
    output = test.output or ""
    if value.type == "date":
        if not output.startswith("@"):
            raise NotExpressible("other syntax")
        text = output[1:].rstrip("T")
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            raise NotExpressible("a partial date as the result")
        return Translated(test, f"{value.text} = {text}", parser.fields, "true")
    uncertain = re.fullmatch(r"Interval\[ *(-?[0-9]+) *, *(-?[0-9]+) *\]", output)
    if uncertain is not None:
        # An uncertainty interval: the number is somewhere from low to high, so it is at
        # least low and at most high for sure (each bound alone may be unknown).
        low, high = uncertain.groups()
        condition = f"({value.text} >= {low} and {value.text} <= {high})"
        return Translated(test, condition, parser.fields, "true")
    if not re.fullmatch(r"-?[0-9]+", output):
        raise NotExpressible("other syntax")
    return Translated(test, f"{value.text} = {output}", parser.fields, "true")


@attrs.frozen
class Suite:
    translated: list[Translated]
    refused: list[tuple[SpecTest, str]]  # not expressible, with the category


def translate_all(tests: Sequence[SpecTest] | None = None) -> Suite:
    """Every test translated, or set aside with the category critlang cannot say."""
    import critlang

    translated, refused = [], []
    for number, test in enumerate(tests if tests is not None else read_tests()):
        try:
            case = translate(test, f"t{number}")
        except NotExpressible as reason:
            refused.append((test, str(reason)))
            continue
        try:
            critlang.compile_source(protocol_source([case]), "cql.crit")
        except critlang.CritError as error:
            codes = sorted(set(re.findall(r"CRIT[0-9]{3}", str(error))))
            refused.append((test, f"refused by the checker ({', '.join(codes) or 'error'})"))
            continue
        translated.append(case)
    return Suite(translated, refused)


def protocol_source(cases: Sequence[Translated]) -> str:
    lines = ["protocol cql_spec", "data"]
    for case in cases:
        lines += [f"  {name}: {kind}" for name, (kind, _) in case.fields.items()]
    if len(lines) == 2:
        lines.append("  unused: boolean")
    for number, case in enumerate(cases, start=1):
        title = f"{case.test.name}".replace('"', "'")
        lines.append(f'inclusion I{number} "{title}"\n  met when {case.condition}')
    return "\n".join(lines) + "\n"


def record(cases: Sequence[Translated]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": "cql"}
    for case in cases:
        for name, (_, value) in case.fields.items():
            if value is not None:
                out[name] = value
    return out


# ---- the page -------------------------------------------------------------------------


def markdown(suite: Suite, agreed: dict[str, int] | None = None) -> str:
    total = len(suite.translated) + len(suite.refused)
    by_file: Counter[str] = Counter(t.test.file for t in suite.translated)
    files = sorted({t.file for t in read_tests()})
    categories: Counter[str] = Counter(category for _, category in suite.refused)
    lines = [
        "# The CQL specification's tests",
        "",
        "<!-- Generated by `python -m tests.cql_spec.translate --markdown"
        " docs/cql-conformance.md`; tests/cql_spec/test_cql_spec.py checks it is current. -->",
        "",
        "The HL7 CQL test suite ([cqframework/cql-tests](https://github.com/cqframework/cql-tests),",
        "Apache-2.0; the files used are in `tests/cql_spec/`) lists CQL expressions with",
        "their expected results. `tests/cql_spec/translate.py` turns every case critlang",
        "can express into a criterion, with a record holding its partial dates and",
        "unknowns (`null` is an element absent from the record), and",
        "`tests/cql_spec/test_cql_spec.py` runs them on every engine (Python, DuckDB,",
        "PostgreSQL, Spark, JavaScript, ELM in cql-execution; Spark on every third case and z3 on every sixth, all of them once by hand), comparing each",
        "criterion's word with the expected result (`null` is unknown). A",
        "result that is a date or a number is compared with `=`:",
        "`DateTime(2005, 10, 10) + 5 years`, expected `@2010-10-10T`, becomes",
        "`2005-10-10 + 5 years = 2010-10-10`, expected true.",
        "",
        f"Of **{total}** cases in the date and time, interval, null and logic files, "
        f"**{len(suite.translated)}** are translated and **every translated case agrees "
        "on every engine**; the rest cannot be said in critlang, by category below.",
        "",
        "| file | cases | translated |",
        "|---|---:|---:|",
    ]
    every: Counter[str] = Counter(t.file for t in read_tests())
    for file in files:
        lines.append(f"| `{file}` | {every[file]} | {by_file[file]} |")
    lines += [
        "",
        "## Not expressible, by category",
        "",
        "| category | cases | example |",
        "|---|---:|---|",
    ]
    examples: dict[str, SpecTest] = {}
    for test, category in suite.refused:
        examples.setdefault(category, test)
    for category, count in categories.most_common():
        example = examples[category].expression.replace("|", "\\|")
        if len(example) > 70:
            example = example[:67] + "..."
        lines.append(f"| {category} | {count} | `{example}` |")
    lines += [
        "",
        "- **time of day**, **time zones**: critlang's dates are days; it has no clock.",
        "- **intervals**: critlang has windows and `between`, not interval values; `X in",
        "  Interval[A, B]` (closed or open at both ends) is translated to `between`.",
        "- **precision-based timing** (`same month as`, `before day of`, `difference in`):",
        "  critlang compares dates as days, a partial date as every day it may be.",
        "- **null tests** (`IsNull`, `Coalesce`, `is null`): a criterion cannot ask whether",
        "  a value is missing; missing data is unknown, by design.",
        "- **a partial date as the result**, **durations as values**: critlang has no",
        "  partial-date or duration value to compare; partial dates are compared",
        "  three-valuedly instead (unknown when the imprecision straddles the boundary).",
        "- **an error expected**: the case expects CQL to refuse the expression.",
        "",
        "## Where critlang's meaning differs from CQL's",
        "",
        "None of the translated cases differs. Partial dates are the place to watch:",
        "CQL compares `DateTime(2014) = DateTime(2014)` at the precision both have",
        "(true); critlang reads each as every day of 2014, so two of them are equal",
        "only when both are one same day (unknown). The suite's cases that compare",
        "two partial dates of the same precision expect CQL's answer and are",
        "listed above only if critlang answers them otherwise (see the test).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Translate the CQL specification's tests.")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--list", action="store_true", help="print every case and its fate")
    options = parser.parse_args(argv)
    suite = translate_all()
    if options.list:
        for case in suite.translated:
            print(f"OK  {case.test.name}: {case.condition} -> {case.expected}")
        for test, category in suite.refused:
            print(f"--  {test.name} [{category}]: {test.expression}")
    print(f"{len(suite.translated)} translated, {len(suite.refused)} not expressible")
    if options.markdown is not None:
        options.markdown.write_text(markdown(suite), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
