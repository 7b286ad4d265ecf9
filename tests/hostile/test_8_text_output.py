"""8. The text output shows ids, titles and labels as they are written, never as markup."""

from __future__ import annotations

from pathlib import Path

from tests.hostile.common import cli

MARKUP = Path(__file__).parent / "markup.crit"


def test_markup_and_escape_sequences_are_shown_as_text(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text(
        '{"id": "pt[x]", "rr": 20}\n{"id": "pt[y]", "rr": 40}\n'
        '{"id": "esc\\u001b[31mred\\u202e", "rr": 1}\n',
        encoding="utf-8",
    )
    result = cli("eval", str(MARKUP), str(path))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "pt[x]: eligible" in out and "pt[y]: ineligible" in out
    assert "I1 Breathing [mg/dL] :smile:" in out
    assert "Respiratory rate [/min] 20 /min is less than 30 /min" in out
    assert "esc\\u001b[31mred\\u202e: eligible" in out
    assert "\x1b" not in out and "\u202e" not in out
    assert out.rstrip().splitlines()[-1] == "3 record(s): 2 eligible, 1 ineligible"


def test_errors_are_shown_as_text_too(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text('{"id": "[bold]x[/]", "rr": "[red]fast[/red]"}\n', encoding="utf-8")
    result = cli("eval", str(MARKUP), str(path))
    assert result.exit_code == 2
    assert "[bold]x[/]: error" in result.stdout
    assert '"[red]fast[/red]"' in result.stdout


def test_each_reason_is_said_once(tmp_path: Path) -> None:
    from tests.hostile.common import CTD, jsonl, patient

    path = tmp_path / "records.jsonl"
    path.write_bytes(jsonl([patient("p1")]))
    out = cli("eval", str(CTD), str(path)).stdout
    assert out.count("Pregnant: no") == 1  # E3's part a, not repeated on the E3 row
    assert out.count("Breastfeeding: no") == 1
