"""Error recovery on damaged protocols: the CTD-ILD file with characters deleted,
inserted or replaced at random. Recovery never raises, reports only syntax
errors inside the file, parses a sound file as `parse` does, and agrees
with `check_source`; one broken criterion costs only that criterion."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from critlang import syntax as s
from critlang.check import check_source
from critlang.fmt import without_spans
from critlang.parser import parse, parse_recovering

ROOT = Path(__file__).resolve().parents[2]
CTD_ILD = (ROOT / "protocols" / "ctd_ild.crit").read_text(encoding="utf-8")
LINES = CTD_ILD.split("\n")
# Mistakes an author makes: stray punctuation, operators, brackets, quotes, words.
DEBRIS = ["&&", "x", "(", ")", "[", "]", ",", ":", "'", '"', "==", " and", " not", "mo", "%", "\n"]


@st.composite
def damaged(draw: st.DrawFn) -> str:
    text = CTD_ILD
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(text) - 1))
        end = start + draw(st.integers(0, 6))
        text = text[:start] + draw(st.sampled_from(["", *DEBRIS])) + text[end:]
    return text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged())
def test_recovery_never_raises_and_agrees_with_check(text: str) -> None:
    protocol, diagnostics = parse_recovering(text, "ctd_ild.crit")
    lines = text.split("\n")
    for diagnostic in diagnostics:
        assert diagnostic.code in ("CRIT001", "CRIT020")
        assert 1 <= diagnostic.span.line <= len(lines)
    if not diagnostics:
        assert protocol is not None
        assert without_spans(protocol) == without_spans(parse(text, "ctd_ild.crit"))
        return
    _, checked = check_source(text, "ctd_ild.crit")
    assert [d for d in checked if d.code in ("CRIT001", "CRIT020")] == diagnostics


CRITERIA = parse(CTD_ILD, "ctd_ild.crit").criteria


@pytest.mark.parametrize("broken", CRITERIA, ids=lambda c: c.id.text)
def test_one_broken_criterion_leaves_every_other_intact(broken: s.Criterion) -> None:
    line = broken.condition.span.line - 1
    damaged_lines = [*LINES]
    damaged_lines[line] = damaged_lines[line].replace("met when ", "met when && ", 1)
    assert damaged_lines[line] != LINES[line]
    protocol, diagnostics = parse_recovering("\n".join(damaged_lines), "ctd_ild.crit")
    assert [d.span.line for d in diagnostics] == [line + 1]
    assert protocol is not None
    kept = [without_spans(c) for c in protocol.criteria]
    assert kept == [without_spans(c) for c in CRITERIA if c is not broken]


def test_a_sound_file_recovers_to_the_tree_parse_gives() -> None:
    protocol, diagnostics = parse_recovering(CTD_ILD, "ctd_ild.crit")
    assert diagnostics == []
    assert protocol == parse(CTD_ILD, "ctd_ild.crit")
