"""A terminology: which codes descend from which, for `"CODE" and descendants` in code lists.

critlang holds no terminology of its own. An evaluation may be given one as a
file of (ancestor, descendant) pairs, a transitive closure or only the
parent-child links (both read the same: descendants are followed to the end),
in CSV or Parquet:

    ancestor,descendant
    snomed:328383001,snomed:197321007

or with a `system` column and bare codes. Lowering asks it two things: does it
know a code at all (`knows`), and which codes descend from it (`descendants`).
A root the terminology does not name is not decided by it: membership stays
unknown, as with no terminology (docs/language.md, "Hierarchies").
"""

from __future__ import annotations

import csv
import functools
import importlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from critlang import codes


class TerminologyError(ValueError):
    """A terminology file that cannot be read: the message names the file, row and value."""


@attrs.frozen(eq=False)
class Terminology:
    """Child codes of each code (`system:code`), and the file they came from."""

    children: Mapping[str, frozenset[str]]
    known: frozenset[str]
    source: str = "<terminology>"

    def knows(self, code: str) -> bool:
        """The terminology names `code` (as an ancestor or a descendant)."""
        return code in self.known

    def descendants(self, root: str) -> frozenset[str]:
        """Every code below `root`, followed to the end (`root` itself excluded)."""
        found: set[str] = set()
        stack = [root]
        while stack:
            for child in self.children.get(stack.pop(), ()):
                if child not in found:
                    found.add(child)
                    stack.append(child)
        found.discard(root)
        return frozenset(found)


def terminology_of(pairs: Iterable[tuple[str, str]], source: str = "<terminology>") -> Terminology:
    """A terminology from (ancestor, descendant) pairs, each `system:code` (ValueError if not)."""
    normal = functools.lru_cache(maxsize=None)(codes.coded_value)
    return _terminology(((normal(a), normal(d)) for a, d in pairs), source)


def _terminology(pairs: Iterable[tuple[str, str]], source: str) -> Terminology:
    """A terminology from pairs already in the form `codes.coded_value` gives."""
    children: dict[str, set[str]] = {}
    known: set[str] = set()
    for up, down in pairs:
        known.update((up, down))
        if up != down:
            children.setdefault(up, set()).add(down)
    return Terminology({k: frozenset(v) for k, v in children.items()}, frozenset(known), source)


def read_terminology(path: str | Path) -> Terminology:
    """Read a closure file (.csv or .parquet); TerminologyError names the row that is wrong."""
    file = Path(path)
    try:
        rows = list(_rows(file))
    except OSError as error:
        raise TerminologyError(f"{file}: cannot read the terminology: {error.strerror}") from None
    # Ancestors repeat row after row: each text is checked once.
    normal = functools.lru_cache(maxsize=None)(codes.coded_value)
    pairs: list[tuple[str, str]] = []
    for number, row in rows:
        system = _text(row.get("system")) or None
        ancestor, descendant = _text(row.get("ancestor")), _text(row.get("descendant"))
        for column, text in (("ancestor", ancestor), ("descendant", descendant)):
            if not text:
                raise TerminologyError(f"{file}: row {number}: no {column}")
        try:
            pairs.append((normal(ancestor, system), normal(descendant, system)))
        except ValueError as error:
            raise TerminologyError(f"{file}: row {number}: {error}") from None
    return _terminology(pairs, str(file))


def _rows(file: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    if file.suffix.lower() == ".parquet":
        try:
            pq = importlib.import_module("pyarrow.parquet")
        except ImportError:
            raise TerminologyError(
                f"{file}: reading Parquet needs pyarrow: pip install 'critlang[sql]'"
            ) from None
        try:
            table = pq.read_table(file)
        except Exception as error:  # pyarrow raises many kinds; the message is what matters
            raise TerminologyError(f"{file}: not a Parquet file: {error}") from None
        _columns(file, table.column_names)
        for number, row in enumerate(table.to_pylist(), start=1):
            yield number, row
        return
    with file.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        _columns(file, reader.fieldnames or [])
        for number, row in enumerate(reader, start=2):
            yield number, row


def _columns(file: Path, names: Iterable[str]) -> None:
    missing = sorted({"ancestor", "descendant"} - set(names))
    if missing:
        raise TerminologyError(
            f"{file}: a terminology has the columns ancestor and descendant "
            f"(and optionally system); {' and '.join(missing)} "
            + ("is missing" if len(missing) == 1 else "are missing")
        )


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()
