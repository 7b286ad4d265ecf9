"""Histories, medications and code lists: each stage on its own, and the Python engine
against a plain reading of `ir.Aggregate`'s semantics on random histories."""

from __future__ import annotations

import datetime
import decimal
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import critlang
from critlang import codes, ir
from critlang import syntax as s
from critlang.check import check_source
from critlang.cli import main
from critlang.decimals import ARITHMETIC
from critlang.diagnostics import CritError
from critlang.fmt import format_source
from critlang.lower import lower
from critlang.parser import parse
from critlang.records import InputError, RecordError, read_events
from critlang.render import render_document
from critlang.vocab import CodeSystem

PROTOCOL = """protocol histories
as of screening

codes ild "Interstitial lung disease" icd10cm ("J84.*", "J99.1")
codes mycophenolate "Mycophenolate" atc ("L04AA06")

data
  screening: date
  primary: code label "Primary diagnosis"
  creatinine: history of quantity 'mg/dL' complete label "Creatinine"
  alt: history of quantity 'U/L'
  diagnoses: history of codes complete
  exacerbations: history of codes complete
  medications: history of medications 'mg/d'

inclusion I1 "Kidney"
  met when (latest creatinine within 90 days) < 1.5 'mg/dL'

inclusion I2 "ILD"
  met when primary in ild or any diagnoses where its code in ild

exclusion E1 "Liver"
  met when (latest (its value / its upper limit) of alt within 4 weeks) > 3

exclusion E2 "Exacerbations"
  met when (number of exacerbations within 1 year) >= 2

inclusion I3 "Stable mycophenolate"
  met when any medications within 2 weeks where its code in mycophenolate and ongoing
"""


@pytest.fixture(scope="module")
def protocol() -> critlang.Protocol:
    return critlang.compile_source(PROTOCOL, "histories.crit")


def record(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "p",
        "screening": "2026-06-01",
        "primary": "icd10cm:I10",
        "creatinine": [
            {"date": "2026-05-02", "value": Decimal("1.2"), "unit": "mg/dL", "high": 1.3,
             "source": "Observation/123"}
        ],
        "alt": [{"date": "2026-05-20", "value": 30, "unit": "U/L", "high": 40}],
        "diagnoses": [{"date": "2019-05-02", "code": "icd10cm:J84.10", "source": "Condition/9"}],
        "exacerbations": [],
        "medications": [{"start": "2025-01-01", "code": "atc:L04AA06", "dose": 2000, "unit": "mg/d"}],
    }  # fmt: skip
    return {**base, **fields}


# ---- syntax ---------------------------------------------------------------------------


def test_selectors_parse_into_their_parts() -> None:
    parsed = parse(PROTOCOL, "h.crit")
    ild, mycophenolate = parsed.code_lists
    assert mycophenolate.system.text == "atc"
    assert (ild.name.text, ild.label, ild.system.text) == (
        "ild",
        "Interstitial lung disease",
        "icd10cm",
    )
    assert [c.text for c in ild.codes] == ["J84.*", "J99.1"]
    liver = parsed.criteria[2].condition
    assert isinstance(liver, s.Compare) and isinstance(liver.left, s.Selector)
    selector = liver.left
    assert (selector.op, selector.history.name) == ("latest", "alt")
    assert isinstance(selector.of, s.Arithmetic)
    assert isinstance(selector.of.right, s.EntryField) and selector.of.right.field == "high"
    assert selector.window is not None and selector.window.duration.amount == 4
    assert (selector.window.duration.unit, selector.window.anchor) == ("week", None)
    stable = parsed.criteria[4].condition
    assert isinstance(stable, s.Selector) and stable.window is not None and stable.where is not None
    elements = {e.name.text: e for e in parsed.elements}
    assert elements["creatinine"].complete and not elements["alt"].complete
    assert elements["medications"].type == s.HistoryType(
        "medication", "mg/d", elements["medications"].type.span
    )


@pytest.mark.parametrize(
    ("condition", "words"),
    [
        ("any diagnoses where its colour in ild", "'its colour' is not a field of an entry"),
        ("any diagnoses within 2.5 days before screening", "whole number"),
    ],
)
def test_syntax_errors_of_selectors(condition: str, words: str) -> None:
    text = PROTOCOL.split("inclusion I1")[0] + f'inclusion I9 "x" met when {condition}\n'
    with pytest.raises(CritError) as raised:
        parse(text, "h.crit")
    assert words in str(raised.value)


def test_format_puts_the_window_first_and_keeps_the_meaning() -> None:
    formatted = format_source(PROTOCOL, "h.crit")
    assert format_source(formatted, "h.crit") == formatted
    assert "any medications within 2 weeks where its code in mycophenolate and ongoing" in formatted
    assert "latest (its value / its upper limit) of alt within 4 weeks > 3" in formatted
    assert 'codes ild "Interstitial lung disease" icd10cm ("J84.*", "J99.1")' in formatted


# ---- checking -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "code", "words"),
    [
        ("any medications where its dose > 1 'mg/d'", None, None),
        ("any diagnoses where ongoing", None, None),
        ("any diagnoses where its end <= screening", None, None),
        ("any diagnoses during 5 years where its code in ild", None, None),
        ("any alt where ongoing", "CRIT052", "'ongoing' is said of medications and codes"),
        ("any alt where its end <= screening", "CRIT052", "has no end"),
        ("any diagnoses during -2 days", "CRIT042", "cannot be negative"),
        ("any diagnoses during 2 days before 3", "CRIT054", "a window ends at a date"),
        ("(latest (its code) of diagnoses) in ild", None, None),
        ("(number of alt) + 1 >= 2", "CRIT056", "only a lower bound"),
        ("(number of diagnoses) + 1 >= 2", None, None),
        ("(highest (its code) of diagnoses) in ild", "CRIT006", "'highest' needs"),
        ("(total alt) > 3 'U/L'", "CRIT053", "unknown unless the history is complete"),
        ("any screening", "CRIT053", "not a history"),
        ("primary in mycophenolate and ild", "CRIT055", "code list"),
        ("(latest creatinine within 1 week before primary) > 1 'mg/dL'", "CRIT054", "a window ends at a date"),
        ("any diagnoses within 2 days where its code in ild within 3 days", "CRIT006", "'within' needs a date"),
    ],
)  # fmt: skip
def test_checker_on_selectors(condition: str, code: str | None, words: str | None) -> None:
    text = PROTOCOL.split("inclusion I1")[0] + f'inclusion I9 "x" met when {condition}\n'
    _, diagnostics = check_source(text, "h.crit")
    errors = [d for d in diagnostics if d.is_error]
    if code is None:
        assert errors == []
    else:
        assert errors and errors[0].code == code and words in errors[0].message, errors


def test_a_medication_history_without_unit_has_no_dose() -> None:
    text = PROTOCOL.replace(
        "medications: history of medications 'mg/d'", "medications: history of medications"
    )
    text = (
        text.split("inclusion I1")[0]
        + "inclusion I9 \"x\" met when any medications where its dose > 1 'mg/d'\n"
    )
    _, diagnostics = check_source(text, "h.crit")
    errors = [d for d in diagnostics if d.is_error]
    assert [d.code for d in errors] == ["CRIT052"]
    assert "declare it: history of medications 'mg/d'" in (errors[0].hint or "")


# ---- lowering -------------------------------------------------------------------------


def lowered_condition(condition: str) -> ir.Node:
    text = PROTOCOL.split("inclusion I1")[0] + f'inclusion I9 "x" met when {condition}\n'
    checked, diagnostics = check_source(text, "h.crit")
    assert checked is not None, diagnostics
    return lower(checked).program.criteria[0].condition


def test_any_over_an_incomplete_history_is_never_false() -> None:
    node = lowered_condition("any alt")
    assert isinstance(node, ir.Or)
    aggregate, unknown = node.operands
    assert isinstance(aggregate, ir.Aggregate) and aggregate.op == "exists"
    assert isinstance(unknown, ir.Const) and unknown.value is None
    complete = lowered_condition("no diagnoses")
    assert isinstance(complete, ir.Not) and isinstance(complete.operand, ir.Aggregate)


@pytest.mark.parametrize(
    ("comparison", "shape"),
    [
        ("(number of alt) >= 2", ("Or", ">=")),
        ("(number of alt) < 2", ("And", "<")),
        ("(number of alt) = 2", ("And", "<=")),
        ("(number of alt) != 2", ("Or", ">")),
        ("2 > (number of alt)", ("And", ">")),
    ],
)
def test_a_count_of_an_incomplete_history_is_a_lower_bound(
    comparison: str, shape: tuple[str, str]
) -> None:
    node = lowered_condition(comparison)
    assert type(node).__name__ == shape[0]
    assert isinstance(node, ir.And | ir.Or)
    compared, unknown = node.operands
    assert isinstance(compared, ir.Compare) and compared.op == shape[1]
    assert isinstance(unknown, ir.Const) and unknown.value is None


def test_a_window_is_a_date_shift_in_the_where() -> None:
    node = lowered_condition("(latest creatinine within 3 months before screening) < 1 'mg/dL'")
    assert isinstance(node, ir.Compare)
    shifts = [n for n in ir.walk(node) if isinstance(n, ir.DateShift)]
    assert shifts and all((n.amount, n.unit.value) == (-3, "month") for n in shifts)
    aggregate = node.left
    assert isinstance(aggregate, ir.Aggregate) and aggregate.op == "latest"
    assert isinstance(aggregate.of, ir.Entry) and aggregate.of.field == "value"


def test_code_lists_hold_codes_without_the_icd_dot() -> None:
    node = lowered_condition("primary in ild")
    assert isinstance(node, ir.InCodes)
    assert node.codes.codes == frozenset({"icd10cm:J991"})
    assert node.codes.prefixes == ("icd10cm:J84",)
    assert node.codes.matches("icd10cm:J8410") and not node.codes.matches("icd10cm:J9910")


# ---- codes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "system", "expected"),
    [
        ("icd10cm:J84.10", None, "icd10cm:J8410"),
        ("J84.10", "icd10cm", "icd10cm:J8410"),
        ("J84.10", "http://hl7.org/fhir/sid/icd-10-cm", "icd10cm:J8410"),
        ("snomed:233703007", None, "snomed:233703007"),
        ("loinc:2160-0", None, "loinc:2160-0"),
        ("atc:L04AA06", None, "atc:L04AA06"),
        ("rxnorm:68149", None, "rxnorm:68149"),
    ],
)
def test_codes_are_read_as_system_and_code(value: str, system: str | None, expected: str) -> None:
    assert codes.coded_value(value, system) == expected


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("J84.10", "needs its system"),
        ("icd11:XY", "not a code system"),
        ("snomed:0123", "not a code of snomed"),
        ("loinc:2160", "not a code of loinc"),
        ("icd10cm:J8.4.1", "more than one dot"),
    ],
)
def test_malformed_codes_say_why(value: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        codes.coded_value(value)


def test_prefixes_are_checked_per_system() -> None:
    assert codes.prefix_problem(CodeSystem.ICD10CM, "J84") is None
    assert codes.prefix_problem(CodeSystem.ATC, "H02AB") is None
    assert "does not start" in (codes.prefix_problem(CodeSystem.SNOMED, "X1") or "")


# ---- records --------------------------------------------------------------------------


def test_entries_become_tuples_in_the_history_unit(protocol: critlang.Protocol) -> None:
    given = record(
        creatinine=[{"date": "2026-05-02", "value": 12, "unit": "mg/L", "low": 6, "high": 13}],
        medications=[{"start": "2025-01-01", "end": None, "code": "atc:L04AA06", "dose": 2, "unit": "g/d"}],
        diagnoses=[
            {"date": "2019-05-02", "system": "icd10cm", "code": "J84.10"},
            {"date": "2019-05-02", "code": "icd10cm:J84.10", "end": "2020-01-31", "source": "C/1"},
        ],
    )  # fmt: skip
    _, env = protocol.intake(given, 1)
    day = datetime.date(2026, 5, 2)
    assert env["creatinine"] == ((day, Decimal("1.2"), Decimal("0.6"), Decimal("1.3"), None),)
    assert env["medications"] == (
        (datetime.date(2025, 1, 1), None, "atc:L04AA06", Decimal(2000), None),
    )
    assert env["diagnoses"] == (
        (datetime.date(2019, 5, 2), "icd10cm:J8410", None, None),
        (datetime.date(2019, 5, 2), "icd10cm:J8410", datetime.date(2020, 1, 31), "C/1"),
    )
    assert env["primary"] == "icd10cm:I10"


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"creatinine": [{"date": "2026-05", "value": 1, "unit": "mg/dL"}]},
         ["'creatinine[0].date'", "full date"]),
        ({"creatinine": [{"date": "2026-05-02", "value": 1, "unit": "mmol/L"}]},
         ["'creatinine[0].value'", "'mmol/L'", "does not convert"]),
        ({"creatinine": [{"date": "2026-05-02", "value": 1}]},
         ["'creatinine[0].unit'", "gives no unit"]),
        ({"creatinine": [{"date": "2026-05-02", "unit": "mg/dL"}]},
         ["'creatinine[0].value'", "has no value"]),
        ({"creatinine": [{"date": "2026-05-02", "value": 1, "unit": "mg/dL", "colour": 1}]},
         ["'creatinine[0].colour'", "not a field"]),
        ({"creatinine": {"date": "2026-05-02"}}, ["'creatinine'", "a list of entries"]),
        ({"diagnoses": [{"date": "2019-05-02", "code": "J84.10"}]},
         ["'diagnoses[0].code'", "needs its system"]),
        ({"diagnoses": [{"date": "2019-05-02"}]}, ["'diagnoses[0].code'", "has no code"]),
        ({"medications": [{"start": "2025-02-01", "end": "2025-01-01", "code": "atc:L04AA06"}]},
         ["'medications[0].end'", "before the start"]),
        ({"diagnoses": [{"date": "2019-05-02", "code": "icd10cm:J84.10", "end": "2019-05-01"}]},
         ["'diagnoses[0].end'", "before the date (2019-05-02)"]),
        ({"diagnoses": [{"date": "2019-05-02", "code": "icd10cm:J84.10", "end": "2019-05"}]},
         ["'diagnoses[0].end'", "full date"]),
        ({"medications": [{"start": "2026-06-02", "code": "atc:L04AA06"}]},
         ["'medications[0].start'", "after the reference date 2026-06-01"]),
        ({"creatinine": [{"date": "2026-06-02", "value": 1, "unit": "mg/dL"}]},
         ["'creatinine[0].date'", "after the reference date"]),
        ({"primary": "icd10cm:84"}, ["'primary'", "not a code of icd10cm"]),
        ({"primary": 84}, ["'primary'", "expected a code as text"]),
    ],
)  # fmt: skip
def test_a_bad_entry_is_its_records_error(
    protocol: critlang.Protocol, changes: dict[str, Any], words: list[str]
) -> None:
    results = list(protocol.evaluate_many([record(id="bad", **changes), record(id="good")]))
    assert [r.status for r in results][1] == "eligible"
    assert results[0].status == "error" and results[0].error is not None
    for word in words:
        assert word in results[0].error, results[0].error


# ---- the Python engine and explanations -------------------------------------------------


def test_explanations_cite_the_entry_used(protocol: critlang.Protocol) -> None:
    result = protocol.evaluate(record()).to_dict()
    reasons = {c["id"]: c["reason"] for c in result["criteria"]}
    assert result["status"] == "eligible"
    assert reasons["I1"] == (
        "Creatinine 1.2 mg/dL on 2026-05-02 (Observation/123), the latest within 90 days "
        "before screening, is less than 1.5 mg/dL"
    )
    assert "icd10cm:J8410 on 2019-05-02 (Condition/9)" in reasons["I2"]
    assert reasons["E2"] == (
        "exacerbations: 0 entries within 1 year before screening; the criterion asks for at least 2"
    )


def test_explanations_tell_complete_from_incomplete(protocol: critlang.Protocol) -> None:
    complete = protocol.evaluate(record(diagnoses=[], primary="icd10cm:J84.1"))
    assert complete.status == "eligible"
    lacking = protocol.evaluate(record(medications=[]))
    reasons = {c.id: c.reason for c in lacking.criteria}
    assert lacking.status == "undetermined"
    assert "no entry" in reasons["I3"] and "may be incomplete" in reasons["I3"]
    assert "medications" in lacking.missing
    gone = protocol.evaluate(record(diagnoses=[]))
    assert "no entry where its code in ild; the history is complete" in gone.criteria[1].reason


def test_a_tie_that_disagrees_is_explained(protocol: critlang.Protocol) -> None:
    tie = [
        {"date": "2026-05-02", "value": 1.2, "unit": "mg/dL"},
        {"date": "2026-05-02", "value": 1.7, "unit": "mg/dL"},
    ]
    result = protocol.evaluate(record(creatinine=tie))
    assert result.criteria[0].value is None
    assert "entries on the same date disagree" in result.criteria[0].reason


ENTRY_DATES = st.dates(datetime.date(2026, 1, 1), datetime.date(2026, 6, 1))
MEASUREMENTS = st.lists(
    st.tuples(
        ENTRY_DATES,
        st.integers(1, 40).map(lambda n: Decimal(n) / 10),
        st.one_of(st.none(), st.integers(5, 30).map(lambda n: Decimal(n) / 10)),
    ),
    max_size=8,
)
ENGINE_PROTOCOL = """protocol engine
data
  screening: date
  labs: history of quantity 'mg/dL' complete
  found: history of quantity 'mg/dL'
inclusion I1 "latest" met when (latest labs within 30 days before screening) < 2 'mg/dL'
inclusion I2 "count" met when (number of labs where its value > its upper limit) >= 2
inclusion I3 "any" met when any found where its value > 3 'mg/dL'
inclusion I4 "highest" met when (highest labs within 60 days before screening) <= 3 'mg/dL'
inclusion I5 "total" met when (total labs where its value > 1 'mg/dL') < 10 'mg/dL'
inclusion I6 "earliest" met when (earliest (its value) of labs) >= 1 'mg/dL'
"""


def reference(entries: list[tuple[datetime.date, Decimal, Decimal | None]]) -> dict[str, Any]:
    """Each criterion worked out plainly from ir.Aggregate's rules (not the engine's code)."""
    screening = datetime.date(2026, 6, 1)

    def window(days: int) -> list[Any]:
        return [
            e for e in entries if screening - datetime.timedelta(days=days) <= e[0] <= screening
        ]

    def compare(value: Decimal | None, test: Any) -> bool | None:
        return None if value is None else test(value)

    def picked(selected: list[Any], latest: bool) -> Decimal | None:
        if not selected:
            return None
        best = (max if latest else min)(e[0] for e in selected)
        values = {e[1] for e in selected if e[0] == best}
        return values.pop() if len(values) == 1 else None

    recent = window(30)
    i1 = compare(picked(recent, True), lambda v: v < 2)
    where = [None if e[2] is None else e[1] > e[2] for e in entries]
    i2 = None if None in where else where.count(True) >= 2
    i3 = True if any(e[1] > 3 for e in entries) else None  # incomplete: never false
    wide = window(60)
    i4 = compare(max(e[1] for e in wide) if wide else None, lambda v: v <= 3)
    i5 = sum((e[1] for e in entries if e[1] > 1), Decimal(0)) < 10
    i6 = compare(picked(entries, False), lambda v: v >= 1)
    return {"I1": i1, "I2": i2, "I3": i3, "I4": i4, "I5": i5, "I6": i6}


@settings(max_examples=150, deadline=None)
@given(MEASUREMENTS)
def test_the_engine_follows_the_aggregate_rules(entries: list[Any]) -> None:
    protocol = critlang.compile_source(ENGINE_PROTOCOL, "engine.crit")
    given_entries = [
        {"date": d.isoformat(), "value": v, "unit": "mg/dL"} | ({} if h is None else {"high": h})
        for d, v, h in entries
    ]
    result = protocol.evaluate(
        {"id": "r", "screening": "2026-06-01", "labs": given_entries, "found": given_entries}
    )
    assert {c.id: c.value for c in result.criteria} == reference(entries)
    _, env = protocol.intake({"id": "r", "screening": "2026-06-01", "labs": given_entries,
                              "found": given_entries}, 1)  # fmt: skip
    with decimal.localcontext(ARITHMETIC):
        assert protocol.compiled.status(env) == result.status


# ---- documents --------------------------------------------------------------------------


def test_documents_show_code_lists_as_escaped_tables() -> None:
    text = PROTOCOL.replace('"Interstitial lung disease"', '"ILD <b>| *x*"')
    checked, _ = check_source(text, "h.crit")
    assert checked is not None
    markdown = render_document(checked, "md")
    assert "### Code lists" in markdown
    assert "`ild` | ILD &lt;b&gt;\\| \\*x\\* | icd10cm | J84.\\*, J99.1 | [I2](#I2) |" in markdown
    html = render_document(checked, "html")
    assert (
        "<td>ILD &lt;b&gt;| *x* <code>ild</code></td><td>icd10cm</td><td>J84.*, J99.1</td>" in html
    )
    assert "<b>" not in html
    text_words = " ".join(render_document(checked, "txt").split())
    assert (
        "The latest creatinine within 90 days before the reference date less than 1.5" in text_words
    )


# ---- events files -----------------------------------------------------------------------

FLAT = (
    "id,screening,primary\np1,2026-06-01,icd10cm:I10\np2,2026-06-01,icd10cm:J84.1\np3,2026-06-01,\n"
)
EVENTS = """id,element,date,value,unit,low,high,code,start,end,dose,source
p1,creatinine,2026-05-02,1.2,mg/dL,,1.3,,,,,Observation/1
p1,diagnoses,2019-05-02,,,,,icd10cm:J84.10,,,,
p1,medications,,,mg/d,,,atc:L04AA06,2025-01-01,,2000,
p1,alt,2026-05-20,30,U/L,,40,,,,,
p1,potassium,2026-05-20,4,mmol/L,,,,,,,
p2,creatinine,2026-13-02,1.0,mg/dL,,,,,,,
p3,creatinine,2026-05-02,1.0,mg/dL,,,,,,,
"""


def test_eval_reads_histories_from_an_events_file(tmp_path: Path) -> None:
    (tmp_path / "h.crit").write_text(PROTOCOL)
    (tmp_path / "flat.csv").write_text(FLAT)
    (tmp_path / "events.csv").write_text(EVENTS)
    result = CliRunner().invoke(
        main,
        ["eval", str(tmp_path / "h.crit"), str(tmp_path / "flat.csv"),
         "--events", str(tmp_path / "events.csv"), "--format", "jsonl"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["status"] for line in lines] == ["eligible", "error", "undetermined"]
    assert "events.csv line 7).date" in lines[1]["error"]
    assert "(Observation/1)" in lines[0]["criteria"][0]["reason"]
    assert "'potassium' (1)" in result.stderr


def test_events_in_parquet_read_as_in_csv(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "id": ["p1", "p1"],
            "element": ["creatinine", "diagnoses"],
            "date": [datetime.date(2026, 5, 2), datetime.date(2019, 5, 2)],
            "value": [1.2, None],
            "unit": ["mg/dL", None],
            "code": [None, "icd10cm:J84.10"],
        }
    )
    pq.write_table(table, tmp_path / "events.parquet")
    checked, _ = check_source(PROTOCOL, "h.crit")
    assert checked is not None
    events = read_events(tmp_path / "events.parquet", checked)
    merged = events.merged({"id": "p1"}, "p1")
    assert merged["creatinine"] == [
        {"date": datetime.date(2026, 5, 2), "value": 1.2, "unit": "mg/dL"}
    ]
    assert merged["alt"] == [] and not events.errors


def test_an_events_file_with_a_foreign_column_is_refused(tmp_path: Path) -> None:
    (tmp_path / "events.csv").write_text("id,element,colour\np1,creatinine,red\n")
    checked, _ = check_source(PROTOCOL, "h.crit")
    assert checked is not None
    with pytest.raises(InputError, match="'colour' is not a column of an events file"):
        read_events(tmp_path / "events.csv", checked)


def test_a_history_given_twice_is_the_records_error(tmp_path: Path) -> None:
    (tmp_path / "events.csv").write_text(
        "id,element,date,code\np1,diagnoses,2019-05-02,icd10cm:I10\n"
    )
    checked, _ = check_source(PROTOCOL, "h.crit")
    assert checked is not None
    events = read_events(tmp_path / "events.csv", checked)
    with pytest.raises(RecordError, match="both in the record and in the events file"):
        events.merged({"id": "p1", "diagnoses": []}, "p1")
