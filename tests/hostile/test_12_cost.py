"""Cost linear in the input: a long text in a protocol costs about its own size."""

from __future__ import annotations

import tracemalloc

from critlang.check import check_source


def test_a_long_text_costs_about_its_length_in_memory() -> None:
    text = "a" * 2_000_000
    source = (
        f'protocol p\n  title "{text}"\n  summary """{text}\n{text}"""\n'
        'data\n  x: boolean\ninclusion I1 "t"\n  met when x\n'
    )
    tracemalloc.start()
    try:
        checked, diagnostics = check_source(source, "long.crit")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert checked is not None, diagnostics
    # 6 MB of text: the lexer's old patterns kept a group per character (over 1 GB).
    assert peak < 20 * len(source), peak
