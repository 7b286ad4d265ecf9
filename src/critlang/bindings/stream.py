"""FHIR files in, one patient's entries at a time out, in bounded memory.

A bulk export is split by resource type (`Patient.ndjson`,
`Observation.ndjson`, ...), so a patient's resources are spread over every
file. They are grouped in two passes (docs/architecture.md):

1. every file is read once, line by line; a resource becomes a few small
   entry tuples (`fhir.Reader`), hashed by patient into one of K partitions.
   With K = 1 (input up to `partition_bytes`) the partition stays in memory;
   otherwise each partition's entries are appended to its own temporary file
   in `marshal` batches.
2. partition by partition, the entries are read back and grouped by patient.

Memory is therefore bounded by one partition (about `partition_bytes` of
input, of which only the bound resources' entries are kept), whatever the
input size. Whole files of a resource type the binding does not read are
skipped unopened, and a line of a type it does read is parsed only if it
holds one of the binding's codes as text, or does not hold `"code":{"coding":[`
as FHIR servers write it (so that a resource without a code is reported);
other lines cannot feed an element and are not parsed.

Bundles (`.json`: a Bundle or a single resource) are read whole, one file at a
time; their `urn:uuid:` references are resolved through the Bundle's fullUrls.
Any of these files may be gzipped (`.ndjson.gz`, `.json.gz`).

Medication resources name no patient: before anything else, the Medication
files (`Medication.ndjson`, ...) are read into a table of each Medication's
codes, which the medication resources that reference one are matched through.
"""

from __future__ import annotations

import gzip
import io
import json
import marshal
import re
import tempfile
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from critlang.bindings.fhir import MEDICATION_TYPES, R4_TYPES, Entry, Reader
from critlang.records import MAX_LINE_BYTES, printable

PARTITION_BYTES = 256 * 2**20  # input bytes per partition
_FLUSH = 50_000  # entries buffered (over all partitions) before they are spilled
_CHUNK = 2**20  # bytes of NDJSON scanned at once
_TYPE_OF_FILE = re.compile(r"^([A-Z][A-Za-z]+)(?:[.\-_][0-9A-Za-z_\-]*)?\.ndjson(?:\.gz)?$")
_SUFFIXES = (".ndjson", ".json", ".ndjson.gz", ".json.gz")
# What goes wrong reading a file: the system's errors, and a gzip file cut short or corrupt.
_READ_ERRORS = (OSError, EOFError, zlib.error)


class FhirInputError(ValueError):
    """A FHIR input that cannot be read at all (no such folder, no FHIR files)."""


def _decoder() -> Callable[[bytes], Any]:
    """msgspec's JSON decoder with exact decimals when installed; else the standard library's."""
    try:
        import msgspec
    except ImportError:
        return lambda data: json.loads(data, parse_float=Decimal)
    return msgspec.json.Decoder(float_hook=Decimal).decode


def _decode_errors() -> tuple[type[Exception], ...]:
    try:
        import msgspec
    except ImportError:
        return (ValueError, RecursionError)
    return (ValueError, RecursionError, msgspec.DecodeError)


class Source:
    """The FHIR files under a path, read into per-patient entries; counts what it skipped."""

    def __init__(self, path: Path, reader: Reader, partition_bytes: int = PARTITION_BYTES) -> None:
        self.path = path
        self.reader = reader
        self.partition_bytes = partition_bytes
        self.problems: list[str] = []  # problems that name no patient: file:line and why
        self.skipped_files: list[str] = []
        self.resources = 0  # resources read (parsed)
        self.decode = _decoder()
        self.errors = _decode_errors()
        self.files = self._files()

    def _files(self) -> list[Path]:
        path = self.path
        if path.is_file():
            return [path]
        if not path.is_dir():
            raise FhirInputError(f"{path}: no such file or folder")
        # Patient files first: patients come out in the order they name them.
        found = sorted(
            (p for p in path.iterdir() if p.is_file() and p.name.endswith(_SUFFIXES)),
            key=lambda p: (_file_type(p) != "Patient", p.name),
        )
        if not found:
            raise FhirInputError(
                f"{path}: no .ndjson or .json files, gzipped or not (a FHIR bulk export or Bundles)"
            )
        return found

    def patients(self) -> Iterator[tuple[str, list[Entry]]]:
        """(patient id, entries) for every patient any file names, one partition at a time."""
        wanted = []
        for file in self.files:
            kind = _file_type(file)
            if kind is not None and kind in R4_TYPES and kind not in self.reader.types:
                self.skipped_files.append(file.name)
                continue
            if kind == "Medication":
                self._medications(file)
                continue
            wanted.append(file)
        total = sum(_size(f) for f in wanted)
        count = max(1, -(-total // self.partition_bytes))
        if count == 1:
            groups: defaultdict[str, list[Entry]] = defaultdict(list)
            for entry in self._entries(wanted):
                groups[entry[0]].append(entry)
            yield from _named(groups)
            return
        with tempfile.TemporaryDirectory(prefix="critlang-fhir-") as folder:
            spills = [Path(folder) / f"part{i}" for i in range(count)]
            buffers: list[list[Entry]] = [[] for _ in range(count)]
            handles = [p.open("wb") for p in spills]
            buffered = 0
            try:
                for entry in self._entries(wanted):
                    index = zlib.crc32(entry[0].encode("utf-8", "surrogatepass")) % count
                    buffers[index].append(entry)
                    buffered += 1
                    if buffered >= _FLUSH:
                        # However many partitions, no more than _FLUSH entries wait.
                        _spill(buffers, handles)
                        buffered = 0
                _spill(buffers, handles)
            finally:
                for handle in handles:
                    handle.close()
            for spill in spills:
                groups = defaultdict(list)
                with spill.open("rb") as stored:
                    for batch in _batches(stored):
                        for entry in batch:
                            groups[entry[0]].append(entry)
                spill.unlink()
                yield from _named(groups)

    def _entries(self, files: list[Path]) -> Iterator[Entry]:
        for file in files:
            try:
                if file.name.endswith((".ndjson", ".ndjson.gz")):
                    yield from self._ndjson(file)
                else:
                    yield from self._bundle(file)
            except _READ_ERRORS as error:
                self._unreadable(file, error)

    def _unreadable(self, file: Path, error: Exception) -> None:
        why = getattr(error, "strerror", None) or str(error) or type(error).__name__
        self.problems.append(f"{file}: cannot be read ({printable(why)[:80]})")

    def _medications(self, file: Path) -> None:
        """Read a file of Medication resources into the reader's table of their codes."""
        try:
            for number, line in self._lines(file):
                if not line.strip():
                    continue
                try:
                    resource = self.decode(line)
                except self.errors as error:
                    self.problems.append(
                        f"{file}:{number}: not JSON ({printable(str(error))[:80]})"
                    )
                    continue
                self.resources += 1
                problem = self.reader.add_medication(resource)
                if problem is not None:
                    self.problems.append(f"{file}:{number}: {problem}")
        except _READ_ERRORS as error:
            self._unreadable(file, error)

    def _lines(self, file: Path) -> Iterator[tuple[int, bytes]]:
        with _open(file) as handle:
            for number, line in enumerate(handle, start=1):
                if len(line) > MAX_LINE_BYTES:
                    self.problems.append(f"{file}:{number}: longer than {MAX_LINE_BYTES} bytes")
                    continue
                yield number, line

    def _ndjson(self, file: Path) -> Iterator[Entry]:
        kind = _file_type(file) or ""
        scan = _Scan.of(self.reader, kind) if kind in self.reader.types else None
        number = 0  # lines before the chunk
        with _open(file) as handle:
            while True:
                chunk = handle.read(_CHUNK)
                if not chunk:
                    return
                if not chunk.endswith(b"\n"):
                    chunk += handle.readline()
                lines = chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
                if scan is not None and scan.uniform(chunk, lines):
                    for offset, line in scan.matching(chunk):
                        # Line numbers are counted only when a problem names one.
                        where = _Where(number, chunk, offset)
                        yield from self._line(file, where, line, None)
                else:
                    for offset, line in _numbered(chunk):
                        yield from self._line(file, number + offset, line, scan)
                number += lines

    def _line(
        self, file: Path, number: int | _Where, line: bytes, scan: _Scan | None
    ) -> list[Entry]:
        if scan is not None and scan.skippable(line):
            return []
        if len(line) > MAX_LINE_BYTES:
            self.problems.append(f"{file}:{number}: longer than {MAX_LINE_BYTES} bytes")
            return []
        if not line.strip():
            return []
        try:
            resource = self.decode(line)
        except self.errors as error:
            self.problems.append(f"{file}:{number}: not JSON ({printable(str(error))[:80]})")
            return []
        self.resources += 1
        entries = self.reader.entries(resource)
        for entry in entries:
            if not entry[0]:
                break
        else:
            return entries
        for entry in entries:
            if not entry[0]:
                self.problems.append(f"{file}:{number}: {entry[10] or 'no patient'}")
        return [entry for entry in entries if entry[0]]

    def _bundle(self, file: Path) -> Iterator[Entry]:
        with _open(file) as handle:
            data = handle.read()
        try:
            bundle = self.decode(data)
        except self.errors as error:
            self.problems.append(f"{file}: not JSON ({printable(str(error))[:80]})")
            return
        resources: list[Any]
        patient_of: dict[str, str] = {}
        medications: dict[str, tuple[list[str], bool]] = {}
        if isinstance(bundle, dict) and bundle.get("resourceType") == "Bundle":
            items = bundle.get("entry")
            items = items if isinstance(items, list) else []
            resources = []
            for item in items:
                resource = item.get("resource") if isinstance(item, dict) else None
                if resource is None:
                    continue
                full = item.get("fullUrl")
                if isinstance(resource, dict) and resource.get("resourceType") == "Medication":
                    self._bundled_medication(file, resource, full, medications)
                    continue
                resources.append(resource)
                if (
                    isinstance(resource, dict)
                    and resource.get("resourceType") == "Patient"
                    and isinstance(full, str)
                    and isinstance(resource.get("id"), str)
                ):
                    patient_of[full] = resource["id"]
                    patient_of[f"Patient/{resource['id']}"] = resource["id"]
        else:
            resources = [bundle]
        for number, resource in enumerate(resources, start=1):
            self.resources += 1
            for entry in self.reader.entries(resource, patient_of, medications):
                if entry[0]:
                    yield entry
                else:
                    self.problems.append(f"{file}: entry {number}: {entry[10] or 'no patient'}")

    def _bundled_medication(
        self,
        file: Path,
        resource: dict[str, Any],
        full: Any,
        table: dict[str, tuple[list[str], bool]],
    ) -> None:
        """A Bundle's Medication: known by its fullUrl and as Medication/id in that Bundle only."""
        self.resources += 1
        url = full if isinstance(full, str) else None
        problem = self.reader.add_medication(resource, url, into=table)
        if problem is not None:
            self.problems.append(f"{file}: {problem}")


def _open(file: Path) -> io.BufferedIOBase:
    if file.name.endswith(".gz"):
        return gzip.open(file, "rb")
    return file.open("rb")


def _size(file: Path) -> int:
    """The bytes a file holds once decompressed (as a gzip file's trailer says), for partitions."""
    size = file.stat().st_size
    if not file.name.endswith(".gz") or size < 18:
        return size
    try:
        with file.open("rb") as handle:
            handle.seek(-4, 2)
            said = int.from_bytes(handle.read(4), "little")
    except OSError:
        return size * 4
    # The trailer holds the size modulo 2**32 (of the last member only): never less than
    # the compressed size times a ratio NDJSON always reaches.
    return max(said, size * 4)


def _file_type(file: Path) -> str | None:
    match = _TYPE_OF_FILE.match(file.name)
    return match.group(1) if match else None


class _Scan:
    """Finds the lines of an NDJSON chunk that hold one of the binding's codes, without parsing.

    A line of the file's type that holds `"code":{"coding":[` and none of the
    binding's codes as `"code":"..."` feeds no element and is skipped. When a
    whole chunk is uniform (every line starts with the file's type, as servers
    write it, and holds a coding, and no `\\u` escape), only the lines one
    regular-expression pass finds are even split out; otherwise each line is
    checked alone, and anything unusual is parsed (and reported).
    """

    def __init__(self, kind: str, codes: frozenset[bytes], prefixes: tuple[bytes, ...]) -> None:
        field = "medicationCodeableConcept" if kind in MEDICATION_TYPES else "code"
        self.start = f'{{"resourceType":"{kind}"'.encode()
        self.coded = f'"{field}":{{"coding":['.encode()
        self.coded_spaced = f'"{field}": {{"coding": ['.encode()
        self.mark = f'"{kind}"'.encode()
        words = [re.escape(c) + b'"' for c in sorted(codes)] + [re.escape(p) for p in prefixes]
        # Nothing to find: a pattern that never matches.
        alternatives = b"|".join(words) or b"(?!)"
        self.pattern = re.compile(rb'"code"\s*:\s*"(?:' + alternatives + rb")")

    @classmethod
    def of(cls, reader: Reader, kind: str) -> _Scan | None:
        if kind == "Patient":
            return None
        codes, prefixes = reader.wanted(kind)
        return cls(kind, codes, prefixes)

    def uniform(self, chunk: bytes, lines: int) -> bool:
        starts = chunk.count(b"\n" + self.start) + chunk.startswith(self.start)
        return starts == lines and chunk.count(self.coded) >= lines and not _escaped(chunk)

    def matching(self, chunk: bytes) -> Iterator[tuple[int, bytes]]:
        """(offset in the chunk, line) of each line with a match, in order."""
        last = -1
        for match in self.pattern.finditer(chunk):
            start = chunk.rfind(b"\n", 0, match.start()) + 1
            if start <= last:
                continue
            end = chunk.find(b"\n", match.end())
            end = len(chunk) if end < 0 else end + 1
            last = start
            yield start, chunk[start:end]

    def skippable(self, line: bytes) -> bool:
        """A line of this type, coded, and holding none of the codes: it feeds nothing."""
        return (
            self.mark in line
            and (self.coded in line or self.coded_spaced in line)
            and not _escaped(line)
            and self.pattern.search(line) is None
        )


def _escaped(data: bytes) -> bool:
    """Whether `data` holds a JSON `\\u` escape (which could spell a code another way).

    A backslash is looked for first: a one-byte search is many times faster than a
    two-byte one, and most exports have no backslash at all.
    """
    return b"\\" in data and b"\\u" in data


class _Where:
    """A line's number, counted when shown."""

    __slots__ = ("before", "chunk", "offset")

    def __init__(self, before: int, chunk: bytes, offset: int) -> None:
        self.before, self.chunk, self.offset = before, chunk, offset

    def __str__(self) -> str:
        return str(self.before + self.chunk.count(b"\n", 0, self.offset) + 1)


def _numbered(chunk: bytes) -> Iterator[tuple[int, bytes]]:
    """Each line with its number; only \\n ends a line, as in NDJSON."""
    start = 0
    number = 0
    while start < len(chunk):
        end = chunk.find(b"\n", start)
        end = len(chunk) if end < 0 else end + 1
        number += 1
        yield number, chunk[start:end]
        start = end


def _spill(buffers: list[list[Entry]], handles: Sequence[IO[bytes]]) -> None:
    for buffer, handle in zip(buffers, handles, strict=True):
        if buffer:
            marshal.dump(buffer, handle)
            buffer.clear()


def _batches(handle: IO[bytes]) -> Iterator[list[Entry]]:
    while True:
        try:
            yield marshal.load(handle)
        except EOFError:
            return


def _named(groups: dict[str, list[Entry]]) -> Iterator[tuple[str, list[Entry]]]:
    # In the order patients were first named: the Patient files are read first.
    yield from groups.items()
