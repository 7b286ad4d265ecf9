"""Dates and the reference date, stage by stage: parsing, checking, lowering, intake,
explanations, documents, formatting and the command line (docs/language.md, "Dates and
time"). Every engine's answers are in tests/conformance/time_*.yaml."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import critlang
from critlang import ir
from critlang import syntax as s
from critlang.check import check_source
from critlang.cli import main
from critlang.fmt import format_source
from critlang.lower import lower
from critlang.parser import parse
from critlang.records import RecordError, partial_date
from critlang.render import render_document

PROTOCOL = """protocol trial
  as of screening_date

data
  screening_date: date label "Screening date"
  birth_date: date label "Date of birth"
  biopsy: date

define age = years since birth_date

inclusion I1 "Adult"
  met when age >= 18

inclusion I2 "Recent biopsy"
  met when biopsy within 6 months before screening_date

exclusion E1 "Biopsy planned within the next 2 weeks"
  met when biopsy within 2 weeks after
"""


@pytest.fixture(scope="module")
def protocol() -> critlang.Protocol:
    return critlang.compile_source(PROTOCOL, "trial.crit")


# ---- parsing ------------------------------------------------------------------------


def test_the_forms_parse_into_their_nodes() -> None:
    tree = parse(PROTOCOL, "trial.crit")
    assert tree.header.as_of is not None and tree.header.as_of.text == "screening_date"
    assert tree.definitions[0].expr == s.DateDifference(
        "year", s.Ref("birth_date", tree.definitions[0].expr.start.span), None,
        tree.definitions[0].expr.span,
    )  # fmt: skip
    window = tree.criteria[1].condition
    assert isinstance(window, s.Window)
    assert (window.duration.amount, window.duration.unit, window.direction) == (
        6,
        "month",
        "before",
    )
    after = tree.criteria[2].condition
    assert isinstance(after, s.Window) and after.anchor is None and after.direction == "after"


def test_calendar_words_stay_usable_as_element_names() -> None:
    source = (
        "protocol p\ndata\n  day: number\n  year: number\n  d: date\n"
        'inclusion I1 "t"\n  met when day > 1 and year < 2 and d + 1 day > d\n'
    )
    checked, diagnostics = check_source(source, "p.crit")
    assert checked is not None, diagnostics


def test_a_fraction_of_a_calendar_unit_is_refused() -> None:
    with pytest.raises(critlang.CritError) as raised:
        parse('protocol p\ninclusion I1 "t" met when d + 1.5 months > d\n', "p.crit")
    assert "whole number of months" in raised.value.diagnostics[0].message


# ---- checking -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "code", "hint"),
    [
        ("d + 6 'mo' > r", "CRIT042", "write 6 months"),
        ("d + 2 'a' > r", "CRIT042", "write 2 years"),
        ("r - d > 3", "CRIT042", "write days between d and r"),
        ("6 months + d > r", "CRIT042", "start_date + 6 months"),
        ("d within -3 days before r", "CRIT042", "within 3 days after"),
        ("years since d > 3", "CRIT041", "as of"),
        ("d within 3 days", "CRIT041", "as of"),
        ("n within 3 days before r", "CRIT006", None),
        ("years between n and r > 3", "CRIT006", None),
    ],
)
def test_date_mistakes_are_diagnosed(condition: str, code: str, hint: str | None) -> None:
    source = f'protocol p\ndata\n  d: date\n  r: date\n  n: number\ninclusion I1 "t"\n  met when {condition}\n'
    _, diagnostics = check_source(source, "p.crit")
    found = [d for d in diagnostics if d.is_error]
    assert [d.code for d in found] == [code], found
    if hint is not None:
        assert found[0].hint is not None and hint in found[0].hint


def test_as_of_must_name_a_date_element() -> None:
    _, diagnostics = check_source(
        'protocol p\n  as of nothing\ninclusion I1 "t" met when true\n', "p.crit"
    )
    assert [d.code for d in diagnostics] == ["CRIT005"]


def test_a_date_difference_is_a_whole_number() -> None:
    checked, _ = check_source(PROTOCOL, "trial.crit")
    assert checked is not None
    age = checked.protocol.definitions[0].expr
    assert checked.type_of(age).kind == "number" and checked.type_of(age).integer


# ---- lowering -----------------------------------------------------------------------


def test_dates_lower_to_earliest_and_latest_and_comparisons_to_three_values() -> None:
    checked, _ = check_source(PROTOCOL, "trial.crit")
    assert checked is not None
    program = lower(checked).program
    assert program.reference == "screening_date"
    elements = [n for n in program.nodes() if isinstance(n, ir.Element)]
    assert {(n.name, n.bound) for n in elements} == {
        (name, bound)
        for name in ("screening_date", "birth_date", "biopsy")
        for bound in ("earliest", "latest")
    }
    assert {n.key for n in elements if n.name == "biopsy"} == {"biopsy", "biopsy latest"}
    # age >= 18: the sure test on the fewest years, the possible one on the most, else unknown
    adult = program.criteria[0].value
    assert isinstance(adult, ir.Or)
    sure, maybe = adult.operands
    assert isinstance(sure, ir.Compare) and isinstance(maybe, ir.And)
    assert isinstance(maybe.operands[1], ir.Const) and maybe.operands[1].value is None
    fewest = sure.right
    assert isinstance(fewest, ir.DateDiff) and fewest.unit.value == "year"
    assert isinstance(fewest.start, ir.Element) and fewest.start.bound == "latest"
    assert isinstance(fewest.end, ir.Element) and fewest.end.bound == "earliest"
    # a definition whose value is a range is inlined: it holds one value
    assert program.definitions == ()


def test_full_date_constants_compare_directly() -> None:
    checked, _ = check_source(
        'protocol p\ninclusion I1 "t"\n  met when 2024-01-31 + 1 month = 2024-02-29\n', "p.crit"
    )
    assert checked is not None
    (criterion,) = lower(checked).program.criteria
    assert isinstance(criterion.value, ir.Compare)
    assert isinstance(criterion.value.left, ir.DateShift)


# ---- intake -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "first", "last"),
    [
        ("2019", "2019-01-01", "2019-12-31"),
        ("2019-05", "2019-05-01", "2019-05-31"),
        ("2024-02", "2024-02-01", "2024-02-29"),
        ("2023-02", "2023-02-01", "2023-02-28"),
        ("2019-05-02", "2019-05-02", "2019-05-02"),
    ],
)
def test_partial_dates_are_their_first_and_last_days(text: str, first: str, last: str) -> None:
    assert partial_date(text) == (
        datetime.date.fromisoformat(first),
        datetime.date.fromisoformat(last),
    )


@pytest.mark.parametrize("text", ["2019-13", "2019-00", "2019-02-30", "0000", "2019-5", "19"])
def test_dates_outside_the_calendar_are_record_errors(
    protocol: critlang.Protocol, text: str
) -> None:
    assert partial_date(text) is None
    with pytest.raises(RecordError) as raised:
        protocol.evaluate({"id": "p1", "birth_date": text})
    message = str(raised.value)
    assert "p1" in message and "birth_date" in message and text in message


def test_as_of_fills_the_reference_date_and_a_records_own_wins(
    protocol: critlang.Protocol,
) -> None:
    record = {"birth_date": "2008-11-30", "biopsy": "2026-06-01"}
    assert protocol.evaluate(record).criteria[0].value is None  # no reference date
    assert protocol.evaluate(record, as_of="2026-11-29").criteria[0].value is False
    assert protocol.evaluate(record, as_of=datetime.date(2026, 11, 30)).criteria[0].value
    own = {**record, "screening_date": "2026-11-30"}
    assert protocol.evaluate(own, as_of="2026-11-29").criteria[0].value is True
    assert protocol.status(record, as_of="2026-11-30") == "eligible"
    results = list(protocol.evaluate_many([record, own], as_of="2026-11-29"))
    assert [r.status for r in results] == ["ineligible", "eligible"]
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        protocol.evaluate(record, as_of="2026-11")


# ---- explanations and documents -----------------------------------------------------


def test_explanations_word_dates_ranges_and_windows(protocol: critlang.Protocol) -> None:
    result = protocol.evaluate({"birth_date": "2008", "biopsy": "2026-06"}, as_of="2026-07-15")
    adult, recent, _ = result.criteria
    assert adult.value is None
    assert adult.reason == "age 17 to 18: unknown whether at least 18"
    assert recent.value is True
    assert recent.reason == (
        "biopsy 2026-06-01 to 2026-06-30 is within 6 months before Screening date 2026-07-15"
    )


def test_documents_read_the_new_forms() -> None:
    checked, _ = check_source(PROTOCOL, "trial.crit")
    assert checked is not None
    text = render_document(checked, "md")
    assert "Biopsy within 6 months before screening date" in text
    assert "biopsy within 2 weeks after screening date" in text.lower()


# ---- formatting ---------------------------------------------------------------------


def test_fmt_writes_the_canonical_forms_and_is_stable() -> None:
    source = (
        "protocol p\n  as of r\ndata\n  r: date\n  d: date\n"
        'inclusion I1 "t"\n  met when (days between d and r) + 1 > 3 and d within 1 day'
        " and d within 2 weeks after and d - 1 year < r\n"
    )
    formatted = format_source(source, "p.crit")
    assert "as of r" in formatted
    assert "(days between d and r) + 1 > 3" in formatted
    assert "d within 1 day and" in formatted or "d within 1 day\n" in formatted
    assert "d within 2 weeks after" in formatted
    assert format_source(formatted, "p.crit") == formatted
    assert parse(formatted, "p.crit") is not None


# ---- the command line ---------------------------------------------------------------


def test_eval_and_screen_take_as_of(tmp_path: Path) -> None:
    crit = tmp_path / "trial.crit"
    crit.write_text(PROTOCOL, encoding="utf-8")
    records = tmp_path / "records.jsonl"
    rows = [
        {"id": "a", "birth_date": "2008-11-29", "biopsy": "2026-06-01"},
        {"id": "b", "birth_date": "2008", "biopsy": "2026-06"},
        {"id": "c", "birth_date": "2019-13"},
        {
            "id": "d",
            "birth_date": "2008-11-30",
            "screening_date": "2026-12-01",
            "biopsy": "2026-05-01",
        },
    ]
    records.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = CliRunner().invoke(
        main, ["eval", str(crit), str(records), "--as-of", "2026-11-29", "--format", "jsonl"]
    )
    assert result.exit_code == 2, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    statuses = {line["id"]: line["status"] for line in lines}
    assert statuses == {"a": "eligible", "b": "undetermined", "c": "error", "d": "ineligible"}
    bad = CliRunner().invoke(main, ["eval", str(crit), str(records), "--as-of", "tomorrow"])
    assert bad.exit_code != 0 and "YYYY-MM-DD" in bad.output
    output = tmp_path / "out.csv"
    screened = CliRunner().invoke(
        main, ["screen", str(crit), str(records), "--as-of", "2026-11-29", "-o", str(output)]
    )
    assert screened.exit_code == 2, screened.output
    table = output.read_text(encoding="utf-8").splitlines()
    assert [row.split(",")[1] for row in table[1:]] == [
        "eligible",
        "undetermined",
        "error",
        "ineligible",
    ]
