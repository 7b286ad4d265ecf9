"""The phrasebook's recipes (docs/phrasebook.md) are one protocol that checks cleanly."""

from __future__ import annotations

import re
from pathlib import Path

from critlang.check import check_source
from critlang.pipeline import compile_source

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "phrasebook.md"


def phrasebook_protocol() -> str:
    blocks = re.findall(r"```crit\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)
    return "\n".join(blocks)


def test_every_recipe_checks_without_a_diagnostic() -> None:
    checked, diagnostics = check_source(phrasebook_protocol(), "phrasebook.md")
    assert checked is not None
    assert [str(d) for d in diagnostics] == []


def test_recipes_screen_a_patient() -> None:
    protocol = compile_source(phrasebook_protocol(), "phrasebook.md")
    result = protocol.evaluate(
        {
            "birth_date": "1960-05-01",
            "sex": "male",
            "pregnant": False,
            "breastfeeding": False,
            "medications": [
                {
                    "start": "2026-01-01",
                    "end": None,
                    "code": "atc:L04AA06",
                    "dose": 2000,
                    "unit": "mg/d",
                }
            ],
        },
        as_of="2026-11-29",
    )
    values = {c.id: c.value for c in result.criteria}
    assert values["I1"] is True
    assert values["I2"] is True  # applies only to women who could become pregnant
    assert values["E1"] is False
    assert values["I11"] is True  # mycophenolate for more than 12 weeks, still taken
    assert values["E10"] is False  # complete list, no biologic
    assert values["I3"] is None  # lung function not recorded
    assert result.status == "undetermined"
