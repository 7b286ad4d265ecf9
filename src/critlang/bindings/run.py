"""Screening from FHIR: files → entries per patient → records → the protocol, with sources cited."""

from __future__ import annotations

import datetime
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import attrs

from critlang.bindings.assemble import Assembled, Assembler, Cited
from critlang.bindings.binding import Section
from critlang.bindings.fhir import Reader
from critlang.bindings.stream import PARTITION_BYTES, Source
from critlang.evaluate import Protocol, Result, failed
from critlang.records import printable
from critlang.report import WRITERS, TextWriter, Writer


@attrs.frozen
class SourcedResult(Result):
    """A result with the source of every bound element's value and the patient's data problems."""

    sources: dict[str, Cited] = attrs.field(factory=dict)
    problems: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, result: Result, sources: dict[str, Cited], problems: Sequence[str]
    ) -> SourcedResult:
        """`result`, with where each bound value came from and the patient's data problems."""
        given = {field.name: getattr(result, field.name) for field in attrs.fields(Result)}
        return cls(**given, sources=sources, problems=tuple(problems))

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["sources"] = {name: cited.to_dict() for name, cited in self.sources.items()}
        out["problems"] = list(self.problems)
        return out


class FhirScreen:
    """Screens every patient under a FHIR path; `source` keeps the counts for the report."""

    def __init__(
        self,
        protocol: Protocol,
        section: Section,
        path: Path,
        as_of: datetime.date | None,
        partition_bytes: int = PARTITION_BYTES,
    ) -> None:
        self.protocol = protocol
        self.assembler = Assembler(section, protocol.checked, as_of)
        self.source = Source(path, Reader(section, as_of), partition_bytes)
        self.patients_with_problems = 0
        self.problem_count = 0

    def records(self) -> Iterator[Assembled]:
        for patient, entries in self.source.patients():
            assembled = self.assembler.assemble(patient, entries)
            if assembled.problems:
                self.patients_with_problems += 1
                self.problem_count += len(assembled.problems)
            yield assembled

    def results(self) -> Iterator[SourcedResult]:
        protocol = self.protocol
        # Values come out of the binding converted and checked; a history goes through
        # record intake, which owns how entries are held.
        direct = all(t.kind != "history" for t in protocol.checked.element_types.values())
        for assembled in self.records():
            if direct:
                try:
                    result = protocol.explain(assembled.patient, assembled.env())
                except (ArithmeticError, ValueError, RecursionError) as error:
                    result = failed(assembled.patient, error)
            else:
                (result,) = protocol.screen([(1, assembled.record)])
            yield SourcedResult.of(result, assembled.sources, assembled.problems)

    def report(self) -> list[str]:
        """Lines for the end of a run: what was read, skipped and found wrong."""
        source = self.source
        lines = [
            f"FHIR: {source.resources} resource(s) parsed from "
            f"{len(source.files) - len(source.skipped_files)} file(s)"
            + (
                f"; {len(source.skipped_files)} file(s) of types the binding does not read "
                "were skipped"
                if source.skipped_files
                else ""
            )
        ]
        if self.problem_count:
            lines.append(
                f"data problems: {self.problem_count} in {self.patients_with_problems} "
                "patient(s), listed with each patient's result"
            )
        if source.problems:
            lines.append(f"{len(source.problems)} problem(s) that name no patient:")
            lines.extend(f"  {printable(p)}" for p in source.problems[:50])
            if len(source.problems) > 50:
                lines.append(f"  ... and {len(source.problems) - 50} more")
        return lines


class SourcedTextWriter(TextWriter):
    """The text table, then each value's source and the patient's data problems."""

    def format(self, result: Result) -> str:
        text = super().format(result)
        if not isinstance(result, SourcedResult):
            return text
        buffer = io.StringIO()
        for name, cited in result.sources.items():
            buffer.write(f"  {printable(name)}: {printable(cited.words())}\n")
        for problem in result.problems:
            buffer.write(f"  problem: {printable(problem)}\n")
        body = text.rstrip("\n")
        return f"{body}\n{buffer.getvalue()}\n"


def writer(fmt: str, out: TextIO, protocol: Protocol) -> Writer:
    if fmt == "text":
        return SourcedTextWriter(out, protocol)
    return WRITERS[fmt](out, protocol)
