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
"""

from __future__ import annotations

import json
import marshal
import re
import tempfile
import zlib
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from critlang.bindings.fhir import MEDICATION_TYPES, R4_TYPES, Entry, Reader
from critlang.records import MAX_LINE_BYTES, printable

PARTITION_BYTES = 256 * 2**20  # input bytes per partition
_FLUSH = 20_000  # entries buffered per partition before a spill
_TYPE_OF_FILE = re.compile(r"^([A-Z][A-Za-z]+)(?:[.\-_][0-9A-Za-z_\-]*)?\.ndjson$")


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
        self.lines = 0  # NDJSON lines seen
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
            (p for p in path.iterdir() if p.is_file() and p.name.endswith((".ndjson", ".json"))),
            key=lambda p: (_file_type(p) != "Patient", p.name),
        )
        if not found:
            raise FhirInputError(
                f"{path}: no .ndjson or .json files (a FHIR bulk export or Bundles)"
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
            wanted.append(file)
        total = sum(f.stat().st_size for f in wanted)
        count = max(1, -(-total // self.partition_bytes))
        if count == 1:
            groups: dict[str, list[Entry]] = {}
            for entry in self._entries(wanted):
                groups.setdefault(entry[0], []).append(entry)
            yield from _named(groups)
            return
        with tempfile.TemporaryDirectory(prefix="critlang-fhir-") as folder:
            spills = [Path(folder) / f"part{i}" for i in range(count)]
            buffers: list[list[Entry]] = [[] for _ in range(count)]
            handles = [p.open("wb") for p in spills]
            try:
                for entry in self._entries(wanted):
                    index = zlib.crc32(entry[0].encode("utf-8", "surrogatepass")) % count
                    buffer = buffers[index]
                    buffer.append(entry)
                    if len(buffer) >= _FLUSH:
                        marshal.dump(buffer, handles[index])
                        buffer.clear()
                for index, buffer in enumerate(buffers):
                    if buffer:
                        marshal.dump(buffer, handles[index])
                    buffer.clear()
            finally:
                for handle in handles:
                    handle.close()
            for spill in spills:
                groups = {}
                with spill.open("rb") as stored:
                    for batch in _batches(stored):
                        for entry in batch:
                            groups.setdefault(entry[0], []).append(entry)
                spill.unlink()
                yield from _named(groups)

    def _entries(self, files: list[Path]) -> Iterator[Entry]:
        for file in files:
            try:
                if file.name.endswith(".ndjson"):
                    yield from self._ndjson(file)
                else:
                    yield from self._bundle(file)
            except OSError as error:
                self.problems.append(f"{file}: cannot be read ({error.strerror or error})")

    def _ndjson(self, file: Path) -> Iterator[Entry]:
        kind = _file_type(file)
        # A line of a type the binding reads, holding none of its codes, feeds no element.
        needles = self.reader.needles() if kind in self.reader.types and kind != "Patient" else ()
        type_mark = f'"{kind}"'.encode() if kind else b""
        field = "medicationCodeableConcept" if kind in MEDICATION_TYPES else "code"
        coded = (f'"{field}":{{"coding":['.encode(), f'"{field}": {{"coding": ['.encode())
        entries = self.reader.entries
        with file.open("rb") as handle:
            for number, line in enumerate(_lines(handle), start=1):
                self.lines += 1
                if line is None:
                    self.problems.append(
                        f"{file}:{number}: a line longer than {MAX_LINE_BYTES} bytes"
                    )
                    continue
                if needles and type_mark in line and (coded[0] in line or coded[1] in line):
                    for needle in needles:
                        if needle in line:
                            break
                    else:
                        continue
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
                for entry in entries(resource):
                    if entry[0]:
                        yield entry
                    else:
                        self.problems.append(f"{file}:{number}: {entry[10] or 'no patient'}")

    def _bundle(self, file: Path) -> Iterator[Entry]:
        data = file.read_bytes()
        try:
            bundle = self.decode(data)
        except self.errors as error:
            self.problems.append(f"{file}: not JSON ({printable(str(error))[:80]})")
            return
        resources: list[Any]
        patient_of: dict[str, str] = {}
        if isinstance(bundle, dict) and bundle.get("resourceType") == "Bundle":
            items = bundle.get("entry")
            items = items if isinstance(items, list) else []
            resources = []
            for item in items:
                resource = item.get("resource") if isinstance(item, dict) else None
                if resource is None:
                    continue
                resources.append(resource)
                full = item.get("fullUrl")
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
            for entry in self.reader.entries(resource, patient_of):
                if entry[0]:
                    yield entry
                else:
                    self.problems.append(f"{file}: entry {number}: {entry[10] or 'no patient'}")


def _file_type(file: Path) -> str | None:
    match = _TYPE_OF_FILE.match(file.name)
    return match.group(1) if match else None


def _lines(handle: IO[bytes]) -> Iterator[bytes | None]:
    """Lines, None for one longer than the limit (the rest of it skipped)."""
    while True:
        line = handle.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while True:
                rest = handle.readline(MAX_LINE_BYTES)
                if not rest or rest.endswith(b"\n"):
                    break
            yield None
            continue
        yield line


def _batches(handle: IO[bytes]) -> Iterator[list[Entry]]:
    while True:
        try:
            yield marshal.load(handle)
        except EOFError:
            return


def _named(groups: dict[str, list[Entry]]) -> Iterator[tuple[str, list[Entry]]]:
    # In the order patients were first named: the Patient files are read first.
    yield from groups.items()
