"""Diagnoses with a period (an end) and `during` windows: syntax, formatting, lexing,
records and the Python engine against the rules worked out plainly.

The engines' agreement on hand-derived cases is `tests/conformance/histories_periods`.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pygments.token import Name, Operator

import critlang
from critlang import syntax as s
from critlang.check import check_source
from critlang.fmt import format_source
from critlang.lexer import CritLexer
from critlang.parser import parse
from critlang.records import read_events
from critlang.render import render_document

PROTOCOL = """protocol periods
  as of screening

codes cancer "Malignant neoplasms" icd10cm ("C*")

data
  screening: date
  during: boolean label "An element may be called during"
  diagnoses: history of codes complete
  infections: history of codes
  drugs: history of medications

exclusion E1 "Cancer at any time in the 5 years before screening"
  met when any diagnoses during 5 years where its code in cancer

exclusion E2 "Infection at any time in the 3 months before screening"
  met when any infections during 3 months before screening

inclusion I1 "Cancer resolved"
  met when no diagnoses where its code in cancer and ongoing

inclusion I2 "During"
  met when during

inclusion I3 "A drug in the 2 weeks after screening"
  met when any drugs during 2 weeks after screening
"""


def test_during_is_an_overlap_window_and_still_a_name_elsewhere() -> None:
    checked, diagnostics = check_source(PROTOCOL, "p.crit")
    assert checked is not None, diagnostics
    assert not [d for d in diagnostics if d.is_error]
    windows = [
        c.condition.window
        for c in checked.protocol.criteria
        if isinstance(c.condition, s.Selector) and c.condition.window is not None
    ]
    assert [(w.overlap, w.direction, w.duration.amount) for w in windows] == [
        (True, "before", 5),
        (True, "before", 3),
        (True, "after", 2),
    ]
    assert "within" not in PROTOCOL
    plain = parse("protocol x\ndata\n  a: history of codes\ninclusion I1 \"x\"\n"
                  "  met when any a within 2 days\n", "x.crit")  # fmt: skip
    condition = plain.criteria[0].condition
    assert isinstance(condition, s.Selector) and condition.window is not None
    assert condition.window.overlap is False


def test_the_formatter_keeps_during_and_is_stable() -> None:
    formatted = format_source(PROTOCOL, "p.crit")
    assert "any diagnoses during 5 years where its code in cancer" in formatted
    assert "any infections during 3 months before screening" in formatted
    assert "any drugs during 2 weeks after screening" in formatted
    assert format_source(formatted, "p.crit") == formatted


def test_the_lexer_reads_during_as_a_keyword_only_before_a_number() -> None:
    tokens = [(t, v) for t, v in CritLexer().get_tokens("any d during 5 years\nmet when during\n")]
    assert (Operator.Word, "during") in tokens
    assert (Name, "during") in tokens


def test_documents_say_an_overlap_in_words() -> None:
    checked, _ = check_source(PROTOCOL, "p.crit")
    assert checked is not None
    markdown = render_document(checked, "md")
    assert "present at some time within 5 years before" in markdown


def test_a_code_entry_end_comes_from_an_events_file(tmp_path: Path) -> None:
    (tmp_path / "events.csv").write_text(
        "id,element,date,code,end\n"
        "p1,diagnoses,2015-01-01,icd10cm:C50.9,2022-01-01\n"
        "p2,diagnoses,2015-01-01,icd10cm:C50.9,2014-01-01\n"
        "p3,diagnoses,2015-01-01,icd10cm:C50.9,\n"
    )
    checked, _ = check_source(PROTOCOL, "p.crit")
    assert checked is not None
    events = read_events(tmp_path / "events.csv", checked)
    assert "p2" in events.errors and "before the date" in events.errors["p2"].problem
    protocol = critlang.compile_source(PROTOCOL, "p.crit")
    values = {}
    for patient in ("p1", "p3"):
        record = dict(events.merged({"id": patient, "screening": "2026-06-01"}, patient))
        values[patient] = {c.id: c.value for c in protocol.evaluate(record).criteria}
    assert values["p1"]["E1"] is True and values["p1"]["I1"] is True
    assert values["p3"]["E1"] is True and values["p3"]["I1"] is False


def test_explanations_show_a_diagnosis_period() -> None:
    protocol = critlang.compile_source(PROTOCOL, "p.crit")
    result = protocol.evaluate(
        {
            "screening": "2026-06-01",
            "diagnoses": [
                {
                    "date": "2015-01-01",
                    "code": "icd10cm:C50.9",
                    "end": "2022-01-01",
                    "source": "C/1",
                }
            ],
        }
    )
    reason = result.criteria[0].reason
    assert "icd10cm:C509 on 2015-01-01 to 2022-01-01 (C/1)" in reason, reason
    assert "during 5 years before" in reason, reason
    open_world = protocol.evaluate(
        {"screening": "2026-06-01", "infections": [{"date": "2025-01-01", "code": "icd10cm:J18.9"}]}
    )
    reason = open_world.criteria[1].reason
    assert open_world.criteria[1].value is None
    assert "has no end and may have resolved off the record" in reason, reason


# ---- the Python engine against the rules, worked out plainly ----------------------------

SCREENING = datetime.date(2026, 6, 1)
WINDOW_START = datetime.date(2026, 3, 1)  # 3 months before screening
DAYS = st.dates(datetime.date(2025, 10, 1), SCREENING)
ENTRIES = st.lists(
    st.tuples(DAYS, st.one_of(st.none(), st.integers(0, 200)), st.booleans()), max_size=5
)
RULES = """protocol rules
  as of screening
codes pneumonia "Pneumonia" icd10cm ("J18.*")
data
  screening: date
  closed: history of codes complete
  open: history of codes
inclusion I1 "closed" met when any closed during 3 months where its code in pneumonia
inclusion I2 "open" met when any open during 3 months where its code in pneumonia
inclusion I3 "ongoing" met when (number of closed where ongoing) >= 1
inclusion I4 "open ongoing" met when any open where ongoing
"""


def overlaps(day: datetime.date, end: datetime.date | None, complete: bool) -> bool | None:
    if day > SCREENING:
        return False
    if day >= WINDOW_START or (end is not None and end >= WINDOW_START):
        return True
    if end is None:
        return True if complete else None
    return False


def expected(entries: list[tuple[datetime.date, datetime.date | None, bool]]) -> dict[str, Any]:
    def exists(values: list[bool | None], complete: bool) -> bool | None:
        if True in values:
            return True
        if None in values or not complete:
            return None
        return False

    wanted = [(d, e) for d, e, pneumonia in entries if pneumonia]
    return {
        "I1": exists([overlaps(d, e, True) for d, e in wanted], True),
        "I2": exists([overlaps(d, e, False) for d, e in wanted], False),
        "I3": any(e is None for _, e, _ in entries),
        # An open history's entry without an end is ongoing or unknown; with one, not
        # ongoing; and `any` of an open history is never false.
        "I4": None,
    }


@settings(max_examples=150, deadline=None)
@given(ENTRIES)
def test_the_python_engine_follows_the_overlap_rules(raw: list[tuple[Any, Any, bool]]) -> None:
    entries = [
        (day, None if length is None else day + datetime.timedelta(days=length), pneumonia)
        for day, length, pneumonia in raw
    ]
    given_entries = [
        {"date": d.isoformat(), "code": "icd10cm:J18.9" if p else "icd10cm:I10"}
        | ({} if e is None else {"end": e.isoformat()})
        for d, e, p in entries
    ]
    protocol = critlang.compile_source(RULES, "rules.crit")
    result = protocol.evaluate(
        {"screening": SCREENING.isoformat(), "closed": given_entries, "open": given_entries}
    )
    assert {c.id: c.value for c in result.criteria} == expected(entries)


@pytest.mark.parametrize(
    "condition",
    [
        "any diagnoses during 5 years where its end > screening",
        "(latest (its end) of diagnoses) <= screening",
        "any infections where ongoing",
    ],
)
def test_its_end_of_a_code_history_checks(condition: str) -> None:
    text = PROTOCOL + f'inclusion I9 "x" met when {condition}\n'
    _, diagnostics = check_source(text, "p.crit")
    assert not [d for d in diagnostics if d.is_error]


DOC_PROTOCOL = """protocol idioms
  as of screening

codes cancer "Malignant neoplasms" icd10cm ("C*")
codes rituximab "Rituximab" atc ("L01FA01")

data
  screening: date
  surgery_date: date
  diagnoses: history of codes complete
  infections: history of codes
  medications: history of medications 'mg/d' complete

"""


def test_the_idioms_of_the_language_page_check() -> None:
    text = (Path(__file__).parents[1] / "docs" / "language.md").read_text("utf-8")
    start = text.index("any diagnoses during 5 years where its code in cancer\nany diagnoses")
    block = text[start : text.index("```", start)].strip().splitlines()
    assert len(block) == 4
    for number, line in enumerate(block, 1):
        source = DOC_PROTOCOL + f'inclusion I{number} "idiom"\n  met when {line}\n'
        _, diagnostics = check_source(source, "idioms.crit")
        assert not [d for d in diagnostics if d.is_error], (line, diagnostics)
    examples = text[text.index('exclusion E1 "Cancer in the past 5 years"') :]
    examples = examples[: examples.index("```")]
    _, diagnostics = check_source(DOC_PROTOCOL + examples, "examples.crit")
    assert not [d for d in diagnostics if d.is_error], diagnostics
