"""Whole numbers, ordered scales, weighted scores and approximation marks (issue 11, items 4 and 6).

The engines' answers are in the conformance corpus (`integers`, `ordinals`,
`scores`, `ssc_2013`); these tests cover the stages around them: parsing,
lowering, record intake, explanations, documents, the formatter, `critlang
check` and the analyser.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from click.testing import CliRunner

from critlang import compile_source, ir
from critlang import syntax as s
from critlang.check import check_source
from critlang.cli import main
from critlang.fmt import format_source
from critlang.parser import parse
from critlang.records import RecordError
from critlang.render import render_document

ROOT = Path(__file__).resolve().parent.parent
SSC = ROOT / "tests" / "conformance" / "ssc_2013.crit"

SCORE = """\
protocol p
data
  a: boolean
  b: boolean
  c: boolean
  score: number
inclusion I1 "Scored" met when
  score [named "A title": 2 points when a, highest of [1 point when b, 3 points when c]] {op} {t}
"""


def lowered(op: str, threshold: str) -> tuple[ir.Node, list[ir.Node]]:
    protocol = compile_source(SCORE.format(op=op, t=threshold))
    criterion = protocol.lowered.program.criteria[0]
    return criterion.condition, [criterion.condition, *ir.children(criterion.condition)]


# ---- parsing ---------------------------------------------------------------------------


def test_score_items_groups_and_names_parse() -> None:
    protocol = parse(SCORE.format(op=">=", t="3"))
    condition = protocol.criteria[0].condition
    assert isinstance(condition, s.Compare) and isinstance(condition.left, s.Score)
    named, group = condition.left.entries
    assert isinstance(named, s.ScoreItem) and isinstance(group, s.ScoreGroup)
    assert (named.name and named.name.text, named.title, named.points) == ("named", "A title", 2)
    assert [item.points for item in group.items] == [1, 3]


def test_score_is_still_an_element_name() -> None:
    text = SCORE.format(op=">=", t="3").replace(" >= 3", " >= 3 and score > 1")
    assert check_source(text, "p.crit")[0] is not None


def test_approximation_marks_on_criteria_and_parts() -> None:
    protocol = parse(
        "protocol p data x: boolean y: boolean\n"
        'inclusion I1 "t" approximate "why" met when all of [\n'
        '  a "A" applies when x approximate "part why": y, b: x]\n'
    )
    criterion = protocol.criteria[0]
    assert criterion.approximate is not None and criterion.approximate.reason == "why"
    part = criterion.condition.items[0]  # type: ignore[union-attr]
    assert isinstance(part, s.SubCriterion) and part.approximate is not None
    assert part.approximate.reason == "part why" and part.applies_when is not None


# ---- lowering --------------------------------------------------------------------------


def test_highest_of_lowers_to_weighted_terms() -> None:
    condition, _ = lowered(">=", "3")
    assert isinstance(condition, ir.AtLeast)
    assert condition.count == 3
    assert condition.weights == (Fraction(2), Fraction(1), Fraction(2))
    a, b_or_c, c = condition.operands
    assert isinstance(a, ir.Element) and a.name == "a"
    assert isinstance(b_or_c, ir.Or) and len(b_or_c.operands) == 2
    assert c is b_or_c.operands[1]  # the 3-point item, shared


@pytest.mark.parametrize(
    ("op", "threshold", "negated", "count"),
    [(">=", "3", False, 3), (">", "3", False, 4), ("<", "3", True, 3), ("<=", "3", True, 4)],
)
def test_score_comparisons(op: str, threshold: str, negated: bool, count: int) -> None:
    condition, _ = lowered(op, threshold)
    if negated:
        assert isinstance(condition, ir.Not)
        condition = condition.operand
    assert isinstance(condition, ir.AtLeast) and condition.count == count


def test_threshold_first_reads_from_the_score() -> None:
    text = (
        SCORE.format(op=">=", t="3")
        .replace("score [named", "3 <= score [named")
        .replace("]] >= 3", "]]")
    )
    protocol = compile_source(text)
    condition = protocol.lowered.program.criteria[0].condition
    assert isinstance(condition, ir.AtLeast) and condition.count == 3


def test_ordinal_comparisons_lower_to_membership() -> None:
    text = """\
protocol p
data
  nyha: ordinal (i, ii, iii, iv)
inclusion I1 "t" met when nyha >= iii
inclusion I2 "t" met when ii > nyha
inclusion I3 "t" met when nyha != ii
"""
    program = compile_source(text).lowered.program
    values = []
    for criterion in program.criteria:
        assert isinstance(criterion.condition, ir.Member)
        values.append(criterion.condition.values)
    assert values == [{"iii", "iv"}, {"i"}, {"i", "iii", "iv"}]


# ---- records ---------------------------------------------------------------------------

TYPES = """\
protocol p
data
  count: integer range 0 to 50
  nyha: ordinal (i, ii, iii, iv)
inclusion I1 "t" met when count >= 2 and nyha >= ii
"""


def test_an_integer_record_must_be_whole() -> None:
    protocol = compile_source(TYPES)
    assert protocol.status({"count": 2, "nyha": "iii"}) == "eligible"
    assert protocol.status({"count": 2.0, "nyha": "iii"}) == "eligible"
    with pytest.raises(RecordError) as error:
        protocol.status({"count": 2.5})
    assert "field 'count', value 2.5: expected a whole number" in str(error.value)


def test_an_ordinal_record_names_a_value_of_its_scale() -> None:
    protocol = compile_source(TYPES)
    with pytest.raises(RecordError) as error:
        protocol.status({"nyha": "v"})
    assert "expected a value of the scale, lowest first: i, ii, iii, iv" in str(error.value)
    with pytest.raises(RecordError):
        protocol.status({"nyha": 3})


def test_sql_reports_a_fractional_integer_per_record() -> None:
    duckdb = pytest.importorskip("duckdb")
    from critlang import sql

    protocol = compile_source(TYPES)
    connection = duckdb.connect()
    connection.execute(
        "CREATE TABLE patients AS SELECT * FROM (VALUES "
        "('a', 2.0::DECIMAL(18, 6), 'iii'), ('b', 2.5::DECIMAL(18, 6), 'iii'), "
        "('c', 3::DECIMAL(18, 6), 'v')) t(id, count, nyha)"
    )
    relation = connection.sql("SELECT * FROM patients")
    schema = list(zip(relation.columns, map(str, relation.types), strict=True))
    layout = sql.layout_from_schema(protocol.checked, schema, "duckdb")
    result = connection.sql(sql.to_sql(protocol.checked, "patients", "duckdb", layout))
    rows = {row[0]: dict(zip(result.columns, row, strict=True)) for row in result.fetchall()}
    assert rows["a"]["status"] == "eligible" and rows["a"]["error"] is None
    assert "column 'count': expected a whole number from 0 to 50" in rows["b"]["error"]
    assert "column 'nyha': expected a value of the scale" in rows["c"]["error"]


# ---- explanations ----------------------------------------------------------------------


def test_a_score_explains_its_points() -> None:
    protocol = compile_source(SSC.read_text(encoding="utf-8"), str(SSC))
    result = protocol.evaluate(
        {
            "puffy_fingers": True,
            "raynaud": True,
            "anti_scl70": True,
            "skin_proximal": False,
            "sclerodactyly": False,
            "digital_tip_ulcers": False,
            "pitting_scars": False,
            "abnormal_capillaries": False,
            "pah": False,
            "ild": False,
        }
    )
    reason = result.criteria[0].reason
    assert reason == (
        "score 8 of at least 9 (Puffy fingers 2, Raynaud's phenomenon 3, "
        "SSc-related autoantibodies 3); up to 10 with the unknown Telangiectasia"
    )


def test_highest_of_a_group_is_explained_once() -> None:
    protocol = compile_source(SCORE.format(op=">=", t="3"))
    reason = protocol.evaluate({"a": True, "b": True, "c": True}).criteria[0].reason
    assert reason == "score 5 of at least 3 (A title 2, c 3)"


# ---- documents, check, formatter ---------------------------------------------------------

HOSTILE = """\
protocol p
data
  x: boolean
  y: boolean
inclusion I1 "t" approximate "<script>alert(1)</script> & *stars*" met when all of [
  a applies when x approximate "<b>part</b>": y,
  b: x
]
"""


def test_documents_show_approximations_escaped() -> None:
    protocol = compile_source(HOSTILE)
    html = render_document(protocol.checked, "html")
    assert "Approximate encoding:" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; *stars*" in html
    assert "<script>alert" not in html and "<b>part</b>" not in html
    assert "&lt;b&gt;part&lt;/b&gt;" in html
    markdown = render_document(protocol.checked, "md")
    assert '!!! warning "Approximate encoding"' in markdown
    assert "<script>" not in markdown
    text = render_document(protocol.checked, "txt")
    assert "Approximate: <script>alert(1)</script>" in text  # plain text shows it as written


def test_documents_list_score_items_and_scale_order() -> None:
    protocol = compile_source(SSC.read_text(encoding="utf-8"), str(SSC))
    text = render_document(protocol.checked, "txt")
    assert "A total score of at least 9 points, adding:" in text
    assert "- Only the highest of:\n        - 2 points, Puffy fingers: puffy fingers" in text
    markdown = render_document(protocol.checked, "md")
    assert "**Score:** met with a total of at least 9 points" in markdown
    assert "| Puffy fingers | 2 | puffy fingers | highest of group 1 |" in markdown
    assert "| Telangiectasia | 2 | telangiectasia |  |" in markdown
    html = render_document(protocol.checked, "html")
    assert "<tr><td>Fingertip pitting scars</td><td>3</td>" in html
    hostile = compile_source(SCORE.format(op=">=", t="3").replace("A title", "A | <i>title</i>"))
    assert "| A \\| &lt;i&gt;title&lt;/i&gt; | 2 |" in render_document(hostile.checked, "md")
    assert "<td>A | &lt;i&gt;title&lt;/i&gt;</td>" in render_document(hostile.checked, "html")
    scale = compile_source(TYPES)
    markdown = render_document(scale.checked, "md")
    assert "i &lt; ii &lt; iii &lt; iv (lowest first)" in markdown  # Markdown shows '<'
    assert "an ordered scale, lowest first" in render_document(scale.checked, "html")
    assert "whole numbers, 0 to 50" in markdown


def test_check_prints_coverage(tmp_path: Path) -> None:
    path = tmp_path / "p.crit"
    path.write_text(HOSTILE, encoding="utf-8")
    result = CliRunner().invoke(main, ["check", str(path), str(SSC)])
    assert result.exit_code == 0
    assert f"{path}: coverage: 0 faithful, 1 approximate criteria" in result.stderr
    assert f"{SSC}: coverage: 1 faithful, 2 approximate criteria" in result.stderr


@pytest.mark.parametrize("name", ["scores.crit", "ssc_2013.crit", "ordinals.crit", "integers.crit"])
def test_formatter_is_idempotent_on_the_new_constructs(name: str) -> None:
    text = (ROOT / "tests" / "conformance" / name).read_text(encoding="utf-8")
    once = format_source(text, name)
    assert format_source(once, name) == once
    assert "approximate" in format_source(HOSTILE, "h.crit")


# ---- the analyser proposes whole numbers ------------------------------------------------


def test_boundary_examples_of_an_integer_are_whole() -> None:
    pytest.importorskip("z3")
    from critlang.analyze import analyze, boundary_examples

    text = """\
protocol doses
data
  doses: integer range 0 to 20
inclusion I1 "Enough doses" met when doses > 2.5
inclusion I2 "Bands" met when any of [a: doses <= 2, b: doses >= 3]
"""
    protocol = compile_source(text)
    values = {p.witness.record["doses"] for p in boundary_examples(protocol)}
    assert values and all(value == int(value) for value in values)
    assert {2, 3} <= values
    # 2 < doses < 3 holds no whole number: no gap between the bands of I2.
    assert not [f for f in analyze(protocol).findings if f.diagnostic.code == "CRIT108"]
