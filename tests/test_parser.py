from decimal import Decimal
from pathlib import Path

import pytest

from critlang import syntax as s
from critlang.check import check_source
from critlang.diagnostics import CritError
from critlang.parser import parse

ROOT = Path(__file__).resolve().parent.parent
CTD_ILD = ROOT / "protocols" / "ctd_ild.crit"


def test_ctd_ild_parses_with_every_criterion() -> None:
    protocol = parse(CTD_ILD.read_text(), str(CTD_ILD))
    ids = [(c.kind, c.id.text) for c in protocol.criteria]
    assert ids == [("inclusion", f"I{n}") for n in range(1, 6)] + [
        ("exclusion", f"E{n}") for n in range(1, 6)
    ]


def test_ctd_ild_is_clean() -> None:
    checked, diagnostics = check_source(CTD_ILD.read_text(), str(CTD_ILD))
    assert checked is not None
    assert diagnostics == []


def test_quantity_literal_keeps_exact_decimal_and_span() -> None:
    protocol = parse("protocol p\ninclusion I1 \"t\" met when x > 1.40 'mg/dL'", "f.crit")
    condition = protocol.criteria[0].condition
    assert isinstance(condition, s.Compare)
    assert condition.right == s.QuantityLit(
        Decimal("1.40"), "mg/dL", s.Span("f.crit", 2, 31, 2, 43)
    )


def test_syntax_error_is_a_diagnostic_with_position() -> None:
    with pytest.raises(CritError) as raised:
        parse('protocol p\ninclusion I1 "t" met when age > 20 a\n', "f.crit")
    (diagnostic,) = raised.value.diagnostics
    assert (diagnostic.code, diagnostic.span.line, diagnostic.span.column) == ("CRIT001", 2, 36)
    assert diagnostic.hint is not None and "quoted" in diagnostic.hint
