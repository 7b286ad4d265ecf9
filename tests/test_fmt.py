"""The formatter: canonical layout, comments kept, `critlang fmt [--check]`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from critlang.cli import main
from critlang.diagnostics import CritError
from critlang.fmt import format_source, without_spans
from critlang.parser import parse

ROOT = Path(__file__).resolve().parent.parent
CTD_ILD = ROOT / "protocols" / "ctd_ild.crit"

MESSY = """\
# file header

protocol p  # the protocol
  status recruiting   title "T"
  summary \"\"\"
      first line
        indented
  \"\"\"
# before the data
data
   x: number range -1 to 5 label "X" # why x
   # before y
   y: one of (a,b)
constant k=3 # k
define d = x > k and (y = a or x < 0) # d
inclusion I1 "t" note "n1" registered "r" met when any of [ # opening
     # lead of a
     a "A": x > 1 and y = b, # after a
     b: y in (a, b)
  ]
# before E1
exclusion E1 "e" met when x < 0 or x > 4 and y = a
example "ex" { x = 1, # f1
   y = a } expect eligible
# at the end
"""

CANONICAL = """\
# file header

protocol p  # the protocol
  title "T"
  status recruiting
  summary \"\"\"
    first line
      indented
  \"\"\"

# before the data
data
  x: number range -1 to 5
    label "X"  # why x
  # before y
  y: one of (a, b)

constant k = 3  # k

define d = x > k and (y = a or x < 0)  # d

inclusion I1 "t"
  registered "r"
  note "n1"
  met when any of [  # opening
    # lead of a
    a "A": x > 1 and y = b,  # after a
    b: y in (a, b)
  ]

# before E1
exclusion E1 "e"
  met when x < 0 or (x > 4 and y = a)

example "ex" {
  x = 1,  # f1
  y = a
} expect eligible

# at the end
"""


def comments(text: str) -> list[str]:
    return sorted(c.rstrip() for c in re.findall(r"#[^\n]*", text))


def test_messy_text_gets_the_canonical_layout() -> None:
    assert format_source(MESSY) == CANONICAL


def test_formatting_keeps_meaning_and_comments_and_is_idempotent() -> None:
    formatted = format_source(MESSY)
    assert without_spans(parse(formatted)) == without_spans(parse(MESSY))
    assert comments(formatted) == comments(MESSY)
    assert format_source(formatted) == formatted


def test_ctd_ild_is_canonical() -> None:
    text = CTD_ILD.read_text(encoding="utf-8")
    assert format_source(text, str(CTD_ILD)) == text


def test_without_spans_compares_trees_by_meaning() -> None:
    one = parse("protocol p inclusion I1 \"t\" met when x > 1 'a'")
    two = parse("protocol p\n\ninclusion I1 \"t\"\n  met when (x > 1 'a')")
    assert one != two
    assert without_spans(one) == without_spans(two)
    assert without_spans(one) != without_spans(
        parse("protocol p inclusion I1 \"t\" met when x > 2 'a'")
    )


def test_long_conditions_break_before_their_operators() -> None:
    text = (
        "protocol p inclusion I1 \"t\" met when age between 20 'a' and 80 'a' and "
        "diagnoses includes any of (dermatomyositis, polymyositis, systemic_sclerosis, "
        "systemic_lupus_erythematosus, rheumatoid_arthritis, sjogren_syndrome)"
    )
    assert format_source(text).splitlines()[2:] == [
        'inclusion I1 "t"',
        "  met when age between 20 'a' and 80 'a'",
        "    and diagnoses includes any of (dermatomyositis, polymyositis, systemic_sclerosis,",
        "                                   systemic_lupus_erythematosus, rheumatoid_arthritis,",
        "                                   sjogren_syndrome)",
    ]


def test_brackets_that_the_grammar_needs_are_kept() -> None:
    text = "protocol p define d = (decline from a to b) + (c - (e - f)) * (g + h)"
    formatted = format_source(text)
    assert "define d = (decline from a to b) + (c - (e - f)) * (g + h)" in formatted
    assert without_spans(parse(formatted)) == without_spans(parse(text))


def test_brackets_the_author_wrote_around_negations_and_mixed_chains_are_kept() -> None:
    text = (
        "protocol p define d = not (meds includes any of (a)) and (not x)"
        " and (x or (y and z)) and ((u)) and (v and w)"
    )
    formatted = format_source(text)
    assert (
        "define d = not (meds includes any of (a)) and (not x) and (x or (y and z)) and u"
        " and (v and w)" in formatted
    )
    assert format_source(formatted) == formatted


def test_brackets_no_one_needs_go() -> None:
    formatted = format_source("protocol p define d = ((u)) and (a > 1) and not b")
    assert "define d = u and a > 1 and not b" in formatted


def test_strings_are_escaped_so_they_read_back() -> None:
    text = 'protocol p title "say \\"hi\\" \\\\ there\\n"'
    formatted = format_source(text)
    assert parse(formatted).header.title == 'say "hi" \\ there\n'


def test_a_syntax_error_is_a_diagnostic() -> None:
    with pytest.raises(CritError):
        format_source("protocol p inclusion I1 met when x")


def test_cli_check_names_the_files_that_would_change(tmp_path: Path) -> None:
    messy, clean = tmp_path / "messy.crit", tmp_path / "clean.crit"
    messy.write_text(MESSY)
    clean.write_text(CANONICAL)
    result = CliRunner().invoke(main, ["fmt", "--check", str(messy), str(clean)])
    assert result.exit_code == 1
    assert f"would reformat {messy}" in result.output
    assert str(clean) not in result.output.replace("file(s)", "")
    assert messy.read_text() == MESSY


def test_cli_diff_shows_what_would_change(tmp_path: Path) -> None:
    messy = tmp_path / "messy.crit"
    messy.write_text("protocol p   define d = a and   b\n")
    result = CliRunner().invoke(main, ["fmt", "--check", "--diff", str(messy)])
    assert result.exit_code == 1
    assert result.stdout == (
        f"--- {messy}\n+++ {messy} (formatted)\n@@ -1 +1,3 @@\n"
        "-protocol p   define d = a and   b\n+protocol p\n+\n+define d = a and b\n"
    )
    assert messy.read_text() == "protocol p   define d = a and   b\n"


def test_cli_rewrites_files_in_place(tmp_path: Path) -> None:
    messy = tmp_path / "messy.crit"
    messy.write_text(MESSY)
    result = CliRunner().invoke(main, ["fmt", str(messy)])
    assert result.exit_code == 0
    assert messy.read_text() == CANONICAL
    assert CliRunner().invoke(main, ["fmt", "--check", str(messy)]).exit_code == 0


def test_cli_check_passes_on_ctd_ild() -> None:
    result = CliRunner().invoke(main, ["fmt", "--check", str(CTD_ILD)])
    assert result.exit_code == 0, result.output


def test_cli_reports_a_file_that_does_not_parse(tmp_path: Path) -> None:
    broken = tmp_path / "broken.crit"
    broken.write_text("protocol p inclusion I1 met when x\n")
    result = CliRunner().invoke(main, ["fmt", str(broken)])
    assert result.exit_code == 1
    assert "error[CRIT001]" in result.output
    assert broken.read_text() == "protocol p inclusion I1 met when x\n"
