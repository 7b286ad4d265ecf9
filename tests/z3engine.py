"""Running the z3 engine from tests: a protocol's formulas read for one record at a time.

Every data element's variable is fixed to the record's value, or to "unknown"
when the record lacks it; the one model left gives every criterion's and
part's value and the status. A value given in another unit is converted
exactly (the Python engine's intake rounds it to 28 digits, which is the
Python engine's business, not the record's).
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import z3

import critlang
from critlang.engines.z3 import ENTRIES, Elements, Encoding, truth
from critlang.records import unit_reading
from critlang.vocab import Truth


def exact_env(protocol: critlang.Protocol, record: Mapping[str, Any]) -> dict[str, Any]:
    """The record as the engines take it in, with values in other units converted exactly."""
    _, env = protocol.intake(record, 1)
    for name, given in record.items():
        kind = protocol.checked.element_types.get(name)
        if isinstance(given, Mapping) and name in env and kind is not None and kind.numeric:
            number = given["value"]
            exact = Fraction(str(number)) if isinstance(number, float) else Fraction(number)
            reading = unit_reading(protocol.checked.elements[name], kind, given["unit"])
            assert isinstance(reading, tuple), reading  # the intake took it: it converts
            scale, offset = reading
            env[name] = exact * scale + offset
    return env


class Z3Engine:
    """A protocol's formulas over elements that may be missing."""

    def __init__(self, protocol: critlang.Protocol, entries: int = ENTRIES) -> None:
        self.protocol = protocol
        self.program = protocol.lowered.program
        self.elements = Elements(self.program.elements, missing=True, entries=entries)
        self.encoding = Encoding(self.program, self.elements)
        self.status = self.encoding.status()

    def model(self, record: Mapping[str, Any]) -> Any:
        env = exact_env(self.protocol, record)
        solver = z3.Solver()
        solver.add(
            *(
                self.elements.holds(name, env.get(name), env.get(f"{name} latest"))
                for name in self.elements.types
            )
        )
        assert solver.check() == z3.sat, record
        return solver.model()

    def values(self, record: Mapping[str, Any]) -> tuple[dict[str, bool | None], str]:
        """Every criterion's and part's value (after applicability), and the status."""
        model = self.model(record)
        out: dict[str, bool | None] = {}
        for criterion in self.program.criteria:
            out[criterion.id] = truth(model, self.encoding.criterion(criterion))
            for part in criterion.parts:
                out[f"{criterion.id}.{part.name}"] = truth(
                    model, self.encoding.condition(part.value)
                )
        return out, self.status.of(model).value

    def words(self, record: Mapping[str, Any]) -> tuple[dict[str, str], str]:
        """Every criterion's and part's word ('not applicable' when it does not apply)."""
        model = self.model(record)

        def value(node: Any) -> bool | None:
            return True if node is None else truth(model, self.encoding.condition(node))

        def word(node: Any, applies: Any) -> str:
            return Truth.of(value(node), value(applies)).value

        out: dict[str, str] = {}
        for criterion in self.program.criteria:
            out[criterion.id] = word(criterion.value, criterion.applies)
            for part in criterion.parts:
                out[f"{criterion.id}.{part.name}"] = word(part.value, part.applies)
        return out, self.status.of(model).value
