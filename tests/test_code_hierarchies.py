"""Code lists with exceptions and hierarchies (`except`, `"CODE" and descendants`), the
terminology that decides descendants, and histories of quantity read in other units.

Every engine's answers are in the conformance corpus (hierarchy*.yaml,
histories_units.yaml); these tests cover each stage around them: the reader of
terminology files, the API and CLI options, explanations, documents and the formatter.
"""

from __future__ import annotations

import json
import pickle
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

import critlang
from critlang import ir
from critlang.cli import main
from critlang.fmt import format_source
from critlang.render import render_document
from critlang.terminology import TerminologyError, read_terminology, terminology_of

PROTOCOL = """protocol liver
codes dmards "Other DMARDs" atc ("L04A*", "L01BA01") except ("L04AB*", "L04AA06")
codes liver "Chronic liver disease" snomed ("328383001" and descendants, "235856003")

data
  drug: code
  diagnosis: code

exclusion E1 "Another disease-modifying drug"
  met when drug in dmards

exclusion E2 "Chronic liver disease"
  met when diagnosis in liver
"""
CLOSURE = "ancestor,descendant\nsnomed:328383001,snomed:197321007\n"


def value(protocol: critlang.Protocol, criterion: str, **record: str) -> bool | None:
    result = protocol.evaluate(record)
    return next(c.value for c in result.criteria if c.id == criterion)


@pytest.fixture
def closure(tmp_path: Path) -> Path:
    path = tmp_path / "closure.csv"
    path.write_text(CLOSURE, encoding="utf-8")
    return path


# ---- the terminology file ------------------------------------------------------------


def test_descendants_are_followed_to_the_end_from_parent_child_links() -> None:
    terminology = terminology_of(
        [("snomed:100000001", "snomed:100000002"), ("snomed:100000002", "snomed:100000003")]
    )
    assert terminology.descendants("snomed:100000001") == {
        "snomed:100000002",
        "snomed:100000003",
    }
    assert terminology.descendants("snomed:100000003") == frozenset()
    assert terminology.knows("snomed:100000003")
    assert not terminology.knows("snomed:100000004")


def test_a_cycle_in_the_file_ends_and_leaves_the_root_out() -> None:
    terminology = terminology_of(
        [("snomed:100000001", "snomed:100000002"), ("snomed:100000002", "snomed:100000001")]
    )
    assert terminology.descendants("snomed:100000001") == {"snomed:100000002"}


def test_a_system_column_with_bare_codes_and_icd10cm_dots(tmp_path: Path) -> None:
    path = tmp_path / "icd.csv"
    path.write_text("system,ancestor,descendant\nicd10cm,K70,K70.30\n", encoding="utf-8")
    assert read_terminology(path).descendants("icd10cm:K70") == {"icd10cm:K7030"}


def test_parquet_is_read_as_csv_is(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "closure.parquet"
    table = pa.table({"ancestor": ["snomed:328383001"], "descendant": ["snomed:197321007"]})
    pq.write_table(table, path)
    assert read_terminology(path).descendants("snomed:328383001") == {"snomed:197321007"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("parent,child\n", "ancestor and descendant are missing"),
        ("ancestor,descendant\nsnomed:328383001,\n", "row 2: no descendant"),
        ("ancestor,descendant\nsnomed:32838300A,snomed:197321007\n", "row 2: '32838300A'"),
        ("ancestor,descendant\nsnowmed:328383001,snomed:1\n", "row 2: 'snowmed' is not"),
    ],
)
def test_a_bad_file_names_its_row_and_value(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TerminologyError, match=message.replace("(", r"\(")) as raised:
        read_terminology(path)
    assert str(path) in str(raised.value)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TerminologyError, match="cannot read the terminology"):
        read_terminology(tmp_path / "absent.csv")


# ---- membership, with and without a terminology ---------------------------------------


def test_exceptions_win_over_prefixes_and_codes() -> None:
    protocol = critlang.compile_source(PROTOCOL)
    assert value(protocol, "E1", drug="atc:L04AX03", diagnosis="icd10cm:K70") is True
    assert value(protocol, "E1", drug="atc:L04AB02", diagnosis="icd10cm:K70") is False
    assert value(protocol, "E1", drug="atc:L04AA06", diagnosis="icd10cm:K70") is False
    assert value(protocol, "E1", drug="atc:L01BA01", diagnosis="icd10cm:K70") is True


def test_without_a_terminology_a_possible_descendant_is_unknown_never_false() -> None:
    protocol = critlang.compile_source(PROTOCOL)
    assert value(protocol, "E2", drug="atc:L01AA01", diagnosis="snomed:328383001") is True
    assert value(protocol, "E2", drug="atc:L01AA01", diagnosis="snomed:197321007") is None
    assert value(protocol, "E2", drug="atc:L01AA01", diagnosis="icd10cm:K70") is False


def test_a_terminology_decides(closure: Path) -> None:
    protocol = critlang.compile_source(PROTOCOL, terminology=closure)
    assert value(protocol, "E2", drug="atc:L01AA01", diagnosis="snomed:197321007") is True
    assert value(protocol, "E2", drug="atc:L01AA01", diagnosis="snomed:9999991") is False


def test_a_terminology_that_does_not_name_the_root_decides_nothing(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("ancestor,descendant\nsnomed:19829001,snomed:233703007\n", encoding="utf-8")
    protocol = critlang.compile_source(PROTOCOL, terminology=path)
    assert value(protocol, "E2", drug="atc:L01AA01", diagnosis="snomed:9999991") is None


def test_the_lowered_list_holds_the_descendants_the_terminology_gives(closure: Path) -> None:
    protocol = critlang.compile_source(PROTOCOL, terminology=closure)
    lists = {
        n.codes.name: n.codes for n in protocol.lowered.program.nodes() if isinstance(n, ir.InCodes)
    }
    assert lists["liver"].codes == {"snomed:328383001", "snomed:197321007", "snomed:235856003"}
    assert lists["dmards except"].prefixes == ("atc:L04AB",)


def test_a_pickled_protocol_keeps_its_terminology(closure: Path) -> None:
    protocol = pickle.loads(pickle.dumps(critlang.compile_source(PROTOCOL, terminology=closure)))
    assert value(protocol, "E2", drug="atc:L01AA01", diagnosis="snomed:197321007") is True


def test_the_explanation_says_why_membership_is_unknown(closure: Path, tmp_path: Path) -> None:
    record = {"drug": "atc:L01AA01", "diagnosis": "snomed:197321007"}
    reason = critlang.compile_source(PROTOCOL).evaluate(record).criteria[1].reason
    assert "whether it descends from 328383001 is not known (no terminology was given)" in reason
    other = tmp_path / "other.csv"
    other.write_text("ancestor,descendant\nsnomed:19829001,snomed:233703007\n", encoding="utf-8")
    reason = (
        critlang.compile_source(PROTOCOL, terminology=other).evaluate(record).criteria[1].reason
    )
    assert f"the terminology ({other}) does not name it" in reason


def test_the_explanation_names_only_the_roots_left_undecided(closure: Path) -> None:
    source = PROTOCOL.replace('"235856003")', '"235856003", "709044004" and descendants)')
    record = {"drug": "atc:L01AA01", "diagnosis": "snomed:9999991"}
    reason = (
        critlang.compile_source(source, terminology=closure).evaluate(record).criteria[1].reason
    )
    assert reason.endswith(
        f"whether it descends from 709044004 is not known (the terminology ({closure}) "
        "does not name it)"
    )


def test_the_explanation_names_an_exception() -> None:
    record = {"drug": "atc:L04AB02", "diagnosis": "icd10cm:K70"}
    reason = critlang.compile_source(PROTOCOL).evaluate(record).criteria[0].reason
    assert reason == "drug atc:L04AB02 is not in Other DMARDs: it is one of its exceptions"


# ---- the CLI ---------------------------------------------------------------------------


def test_eval_and_screen_take_a_terminology(tmp_path: Path, closure: Path) -> None:
    protocol = tmp_path / "liver.crit"
    protocol.write_text(PROTOCOL, encoding="utf-8")
    records = tmp_path / "records.jsonl"
    records.write_text(
        json.dumps({"id": "p1", "drug": "atc:L01AA01", "diagnosis": "snomed:197321007"}) + "\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    without = runner.invoke(main, ["eval", str(protocol), str(records), "--format", "jsonl"])
    assert json.loads(without.stdout)["status"] == "undetermined"
    given = runner.invoke(
        main,
        ["eval", str(protocol), str(records), "--format", "jsonl", "--terminology", str(closure)],
    )
    assert json.loads(given.stdout)["status"] == "ineligible", given.output
    pytest.importorskip("duckdb")
    screened = runner.invoke(
        main, ["screen", str(protocol), str(records), "--terminology", str(closure)]
    )
    assert "0 eligible, 1 ineligible, 0 undetermined" in screened.stdout, screened.output


def test_a_bad_terminology_file_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    protocol = tmp_path / "liver.crit"
    protocol.write_text(PROTOCOL, encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text("ancestor\nsnomed:1\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["eval", str(protocol), "-", "--terminology", str(bad)])
    assert result.exit_code == 64  # a usage error, as every bad option
    assert "descendant is missing" in result.output
    assert "Traceback" not in result.output


# ---- documents and the formatter --------------------------------------------------------


def test_the_formatter_keeps_exceptions_and_descendants() -> None:
    formatted = format_source(PROTOCOL)
    assert '("L04A*", "L01BA01") except ("L04AB*", "L04AA06")' in formatted
    assert '"328383001" and descendants' in formatted
    assert format_source(formatted) == formatted


def test_documents_show_exceptions_and_descendants() -> None:
    checked = critlang.compile_source(PROTOCOL).checked
    markdown = render_document(checked, "md")
    assert "L04A\\*, L01BA01; except L04AB\\*, L04AA06" in markdown
    assert "328383001 and descendants, 235856003" in markdown
    assert "in the terminology given when screening" in markdown


# ---- histories of quantity in other units -----------------------------------------------

UNITS = """protocol units
as of screening
data
  screening: date
  creatinine: history of quantity 'mg/dL' complete molar mass 113.12 'g/mol'
  hba1c: history of quantity '%' convert 'mmol/mol' as 0.09148 * value + 2.152
inclusion I1 "Creatinine below 133 umol/L"
  met when (latest creatinine) < 133 'umol/L'
inclusion I2 "HbA1c below 8%"
  met when (latest hba1c) < 8 '%'
"""


def test_history_entries_are_read_exactly_in_the_declared_unit() -> None:
    protocol = critlang.compile_source(UNITS)
    record = {
        "screening": "2026-06-01",
        "creatinine": [{"date": "2026-05-01", "value": 120, "unit": "umol/L"}],
        "hba1c": [{"date": "2026-05-01", "value": 64, "unit": "mmol/mol"}],
    }
    _, env = protocol.intake(record, 1)
    assert env["creatinine"][0][1] == Decimal("1.35744")
    assert env["hba1c"][0][1] == Decimal("8.00672")
    result = protocol.evaluate(record)
    assert [c.value for c in result.criteria] == [True, False]


def test_an_entry_of_another_kind_is_an_error_of_its_record_only() -> None:
    protocol = critlang.compile_source(UNITS)
    records = [
        {"id": "bad", "screening": "2026-06-01", "creatinine": [
            {"date": "2026-05-01", "value": 1.2, "unit": "g"}
        ]},
        {"id": "good", "screening": "2026-06-01", "creatinine": [
            {"date": "2026-05-01", "value": 1.2, "unit": "mg/dL"}
        ]},
    ]  # fmt: skip
    bad, good = protocol.evaluate_many(records)
    assert bad.status == "error"
    assert "creatinine[0]" in bad.error and "'g' (mass) does not convert" in bad.error
    assert good.criteria[0].value is True


def test_the_formatter_keeps_comments_among_codes_with_their_codes() -> None:
    source = """protocol p
codes dmards "Other DMARDs" atc (
  "L04A*",    # immunosuppressants
  # methotrexate, by name
  "L01BA01"
) except ("L04AB*")  # not the TNF inhibitors
data
  drug: code
exclusion E1 "Another DMARD"
  met when drug in dmards
"""
    formatted = format_source(source)
    assert '  "L04A*",  # immunosuppressants\n  # methotrexate, by name\n  "L01BA01"\n' in formatted
    assert ') except (\n  "L04AB*"  # not the TNF inhibitors\n)\n' in formatted
    assert format_source(formatted) == formatted


def test_export_writes_prefixes_and_the_terminology_s_descendants(
    tmp_path: Path, closure: Path
) -> None:
    protocol = tmp_path / "liver.crit"
    protocol.write_text(PROTOCOL, encoding="utf-8")
    runner = CliRunner()
    without = runner.invoke(main, ["export", str(protocol), "--to", "cql"])
    assert without.exit_code == 0, without.output
    assert "StartsWith(\"drug\", 'atc:L04AB')" in without.stdout
    assert "StartsWith(\"diagnosis\", 'snomed:')" in without.stdout
    assert "snomed:197321007" not in without.stdout
    given = runner.invoke(
        main, ["export", str(protocol), "--to", "cql", "--terminology", str(closure)]
    )
    assert "\"diagnosis\" = 'snomed:197321007'" in given.stdout
    assert "StartsWith(\"diagnosis\", 'snomed:')" not in given.stdout


def test_an_omop_screen_refuses_a_terminology(tmp_path: Path, closure: Path) -> None:
    protocol = tmp_path / "liver.crit"
    protocol.write_text(PROTOCOL, encoding="utf-8")
    result = CliRunner().invoke(
        main,
        [
            "screen",
            str(protocol),
            "--omop",
            str(tmp_path / "cdm.duckdb"),
            "--terminology",
            str(closure),
        ],
    )
    assert result.exit_code == 64
    assert "its own concept_ancestor" in result.output
