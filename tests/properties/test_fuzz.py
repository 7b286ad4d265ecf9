"""The checker on broken text: mutations of a real protocol give diagnostics, never a crash."""

from __future__ import annotations

import random
import re
import tempfile
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from critlang.check import check_source
from critlang.cli import main
from critlang.diagnostics import Diagnostic, render

ROOT = Path(__file__).resolve().parents[2]

SOURCE = (ROOT / "protocols" / "ctd_ild.crit").read_text(encoding="utf-8")

# The keywords and punctuation of the grammar's rules (terminal definitions are
# patterns, not tokens), the tokens of its terminals, and values an author might write.
GRAMMAR = (ROOT / "grammar" / "critlang.lark").read_text(encoding="utf-8")
RULE_LINES = [line for line in GRAMMAR.splitlines() if not re.match(r"\s*(//|[A-Z_.0-9]+:)", line)]
RULE_LITERALS = sorted({word for line in RULE_LINES for word in re.findall(r'"([^"]+)"', line)})
OTHER_TOKENS = [
    *("inclusion", "exclusion", "exclusive", "<", "<=", ">", ">=", "!=", "+", "-", "*", "/"),
    *("%", "==", "&&", ";", "'", '"', "#", "\\", "\t", "\n", "\u2264"),
    *("'mg/dL'", "'umol/L'", "'a'", "'mo'", "'g/mol'", "'mm[Hg]'", "'10*3/uL'", "''"),
    *("'Cel'", "'[degF]'", "'dB'", "'{score}'", "'kg/'", "'m0'", "'years'"),
    *("0", "1.4", "-3", "10%", "2024-02-30", "2024-01-01", "99999999999999999999"),
    *("I1", "E2", "I1I1", '"text"', '"""long\ntext"""', '"C:\\xfiles"', '"\\N{nope}"'),
    *("creatinine", "creatinin", "sex", "female", "fvc_decline", "unknown_name", "Age"),
    *("eligible", "ineligible", "undetermined"),
]
VOCABULARY = [*RULE_LITERALS, *OTHER_TOKENS]

# A mutation is (kind, position, argument); positions are taken modulo the text's length.
Mutation = tuple[str, int, int | str]
POSITION = st.integers(min_value=0, max_value=10**6)
MUTATION: st.SearchStrategy[Mutation] = st.one_of(
    st.tuples(st.just("delete"), POSITION, st.integers(min_value=1, max_value=60)),
    st.tuples(st.just("duplicate_line"), POSITION, st.just(0)),
    st.tuples(st.just("swap_tokens"), POSITION, POSITION),
    st.tuples(st.just("insert"), POSITION, st.sampled_from(VOCABULARY)),
    st.tuples(st.just("truncate"), POSITION, st.just(0)),
)


def mutate(text: str, mutation: Mutation) -> str:
    kind, position, argument = mutation
    at = position % (len(text) + 1)
    if kind == "delete":
        return text[:at] + text[at + int(argument) :]
    if kind == "duplicate_line":
        lines = text.split("\n")
        line = position % len(lines)
        return "\n".join([*lines[: line + 1], *lines[line:]])
    if kind == "swap_tokens":
        tokens = list(re.finditer(r"\S+", text))
        if not tokens:
            return text
        first, second = sorted(
            (tokens[position % len(tokens)], tokens[int(argument) % len(tokens)]),
            key=lambda match: match.start(),
        )
        if first.start() == second.start():
            return text
        return "".join(
            (
                text[: first.start()],
                second.group(),
                text[first.end() : second.start()],
                first.group(),
                text[second.end() :],
            )
        )
    if kind == "insert":
        return f"{text[:at]} {argument} {text[at:]}"
    if kind == "truncate":
        return text[:at]
    raise AssertionError(kind)


def assert_points_inside(diagnostic: Diagnostic, text: str, file: str) -> None:
    """The span is inside the text, and the rendering shows that line with a caret under it."""
    span = diagnostic.span
    lines = text.split("\n")
    assert span.file == file
    assert 1 <= span.line <= len(lines), diagnostic
    assert 1 <= span.column <= len(lines[span.line - 1]) + 1, diagnostic
    assert (span.end_line, span.end_column) >= (span.line, span.column), diagnostic
    header, excerpt, carets, *_ = render(diagnostic, text).split("\n")
    assert header.startswith(f"{file}:{span.line}:{span.column}: {diagnostic.severity}[")
    gutter = f"{span.line:>4} | "
    assert excerpt == gutter + lines[span.line - 1].rstrip().expandtabs(1)
    assert carets.index("^") == len(gutter) + span.column - 1


def test_unmutated_source_is_clean() -> None:
    checked, diagnostics = check_source(SOURCE, "fuzz.crit")
    assert diagnostics == []
    assert checked is not None


def test_vocabulary_has_the_grammar_keywords() -> None:
    assert {"protocol", "met", "when", "between", "at", "least", "[", "(", "{"} <= set(
        RULE_LITERALS
    )
    assert all(" " not in word for word in RULE_LITERALS)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(MUTATION, min_size=1, max_size=3))
def test_mutated_protocol_only_gives_diagnostics(mutations: list[Mutation]) -> None:
    text = SOURCE
    for mutation in mutations:
        text = mutate(text, mutation)
    checked, diagnostics = check_source(text, "fuzz.crit")
    for diagnostic in diagnostics:
        assert_points_inside(diagnostic, text, "fuzz.crit")
    assert (checked is None) == any(d.is_error for d in diagnostics)


def test_cli_reports_mutations_without_traceback() -> None:
    runner = CliRunner()
    generator = random.Random(20250723)
    with tempfile.TemporaryDirectory() as directory:
        for number in range(12):
            text = mutate(
                SOURCE, ("insert", generator.randrange(10**6), generator.choice(VOCABULARY))
            )
            text = mutate(text, ("delete", generator.randrange(10**6), generator.randrange(1, 30)))
            path = Path(directory) / f"mutant_{number}.crit"
            path.write_text(text, encoding="utf-8")
            result = runner.invoke(main, ["check", str(path)])
            assert "Traceback" not in result.output
            assert result.exit_code in (0, 1), result.output
            assert result.exit_code == int("error[" in result.stdout)
