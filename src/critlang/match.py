"""Matching across trials: each patient against every protocol, and the data worth collecting.

A site runs many trials at once. For each patient, `match` gives every
trial's status and the data still missing for it; for a population, it
ranks the data elements by how many undetermined patients each would help
settle, per trial and overall.

An element *settles* an undetermined patient's status for a trial when it
is the only element that patient is missing there: once it is known, every
criterion left unknown has all its inputs. An element is *needed* by every
undetermined patient whose missing data include it, alone or with others.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from critlang.evaluate import Protocol, Result
from critlang.records import Row
from critlang.vocab import Outcome


@attrs.frozen
class TrialStatus:
    """One patient against one trial."""

    trial: str
    status: str
    missing: tuple[str, ...]
    error: str | None = None


@attrs.frozen
class PatientMatch:
    """One patient against every trial, in the order the trials were given."""

    id: str
    trials: tuple[TrialStatus, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "trials": [
                {"trial": t.trial, "status": t.status, "missing": list(t.missing)}
                | ({"error": t.error} if t.error is not None else {})
                for t in self.trials
            ],
        }


@attrs.frozen
class ElementRank:
    """How much knowing one data element would settle, for one trial or overall."""

    element: str
    settles: int  # undetermined patients for whom it is the only missing element
    needed: int  # undetermined patients whose missing data include it


@attrs.frozen
class TrialSummary:
    trial: str
    title: str
    statuses: Mapping[str, int]
    ranking: tuple[ElementRank, ...]


@attrs.frozen
class Population:
    """A population matched against several trials."""

    patients: int
    trials: tuple[TrialSummary, ...]
    overall: tuple[ElementRank, ...]

    def to_dict(self) -> dict[str, Any]:
        def ranks(ranking: Sequence[ElementRank]) -> list[dict[str, Any]]:
            return [attrs.asdict(rank) for rank in ranking]

        return {
            "patients": self.patients,
            "trials": [
                {
                    "trial": t.trial,
                    "title": t.title,
                    "statuses": dict(t.statuses),
                    "ranking": ranks(t.ranking),
                }
                for t in self.trials
            ],
            "overall": ranks(self.overall),
        }


def match_records(
    protocols: Sequence[Protocol], records: Iterable[Mapping[str, Any]]
) -> Iterator[PatientMatch]:
    """Every record (a mapping, as `Protocol.evaluate` takes) against every protocol."""
    for position, record in enumerate(records, start=1):
        row = [(position, record)]
        yield _patient(protocols, [next(iter(p.screen(row))) for p in protocols])


def match_streams(
    protocols: Sequence[Protocol], streams: Sequence[Iterable[Row]]
) -> Iterator[PatientMatch]:
    """The same records read once for each protocol (a CSV cell is typed by each data
    dictionary), screened side by side; a record a trial cannot read is its error there."""
    screened = [p.screen(stream) for p, stream in zip(protocols, streams, strict=True)]
    for results in zip(*screened, strict=True):
        yield _patient(protocols, list(results))


def _patient(protocols: Sequence[Protocol], results: list[Result]) -> PatientMatch:
    return PatientMatch(
        results[0].id,
        tuple(
            TrialStatus(p.name, r.status, r.missing, r.error)
            for p, r in zip(protocols, results, strict=True)
        ),
    )


class Tally:
    """The population view, added up one patient at a time (memory flat in the patients)."""

    def __init__(self, protocols: Sequence[Protocol]) -> None:
        self.protocols = protocols
        self.patients = 0
        self.statuses = {p.name: Counter[str]() for p in protocols}
        self.settles = {p.name: Counter[str]() for p in protocols}
        self.needed = {p.name: Counter[str]() for p in protocols}

    def add(self, patient: PatientMatch) -> None:
        self.patients += 1
        for trial in patient.trials:
            self.statuses[trial.trial][trial.status] += 1
            if trial.status != Outcome.UNDETERMINED:
                continue
            self.needed[trial.trial].update(trial.missing)
            if len(trial.missing) == 1:
                self.settles[trial.trial][trial.missing[0]] += 1

    def population(self) -> Population:
        summaries = tuple(
            TrialSummary(
                p.name,
                p.checked.protocol.header.title or p.name,
                {o.value: self.statuses[p.name][o.value] for o in Outcome},
                _ranking(self.settles[p.name], self.needed[p.name]),
            )
            for p in self.protocols
        )
        settles: Counter[str] = Counter()
        needed: Counter[str] = Counter()
        for p in self.protocols:
            settles.update(self.settles[p.name])
            needed.update(self.needed[p.name])
        return Population(self.patients, summaries, _ranking(settles, needed))


def _ranking(settles: Counter[str], needed: Counter[str]) -> tuple[ElementRank, ...]:
    ranks = [ElementRank(name, settles[name], needed[name]) for name in needed]
    # Most settled first, then most needed, then by name so that the order is stable.
    return tuple(sorted(ranks, key=lambda r: (-r.settles, -r.needed, r.element)))


# ---- output ---------------------------------------------------------------------------


def text_lines(patient: PatientMatch) -> list[str]:
    """One patient in plain text: a line per trial with the data still to collect."""
    lines = [f"{patient.id}"]
    for trial in patient.trials:
        line = f"  {trial.trial}: {trial.status}"
        if trial.error is not None:
            line += f" ({trial.error})"
        elif trial.missing:
            line += f"; to collect: {', '.join(trial.missing)}"
        lines.append(line)
    return lines


def population_lines(population: Population) -> list[str]:
    """The ranking of data to collect, per trial and overall, in plain text."""
    lines = [f"{population.patients} patient(s)"]
    for trial in population.trials:
        counts = ", ".join(f"{n} {status}" for status, n in trial.statuses.items() if n)
        lines.append(f"{trial.trial} ({trial.title}): {counts or 'none'}")
        lines += _rank_lines(trial.ranking)
    lines.append("all trials:")
    lines += _rank_lines(population.overall)
    return lines


def _rank_lines(ranking: Sequence[ElementRank]) -> list[str]:
    if not ranking:
        return ["  nothing to collect: no patient is undetermined"]
    return [
        f"  {rank.element}: settles {rank.settles}, needed by {rank.needed} undetermined"
        for rank in ranking
    ]


def render_html(population: Population, patients: Sequence[PatientMatch]) -> str:
    """A self-contained page: the ranking per trial and overall, and every patient's statuses."""
    from critlang.pages import page  # only the HTML page needs templates

    return page("match.html.j2", population=population, patients=patients)
