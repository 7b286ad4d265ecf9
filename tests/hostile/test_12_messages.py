"""12. Error messages show a shortened value, never the whole of a huge one."""

from __future__ import annotations

from pathlib import Path

from tests.hostile.common import eval_jsonl


def test_a_ten_megabyte_value_gives_a_short_message(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    huge = "x" * 10_000_000
    path.write_text(f'{{"id": "big", "sex": "{huge}"}}\n{{"id": "ok"}}\n', encoding="utf-8")
    results = eval_jsonl(path)
    assert results[0]["status"] == "error"
    assert len(results[0]["error"]) < 300
    assert "(10000002 characters)" in results[0]["error"]
    assert results[1]["status"] == "undetermined"
