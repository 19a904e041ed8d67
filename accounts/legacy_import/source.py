"""Reading an export file: the encoding (BOM / UTF-8 / CP932, decided before anything is
written), the header, and records numbered by the physical line where each starts. Shared by
migrate-legacy, import-portal-users and import-services."""
from __future__ import annotations

import codecs
import csv
import dataclasses
from collections.abc import Iterator
from pathlib import Path

from .rules import OPTIONAL_COLUMNS, REQUIRED_COLUMNS


class UnreadableFile(Exception):
    """The file cannot be imported at all: nothing is written (exit status 1)."""


def detect_encoding(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """BOM -> utf-8-sig; else strict UTF-8 if the whole file decodes; else CP932; else refuse."""
    path = Path(path)
    with path.open("rb") as fh:
        head = fh.read(4)
    if head.startswith(codecs.BOM_UTF8):
        candidates = ("utf-8-sig",)
    elif head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)) or head.startswith(
            (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise UnreadableFile(f"{path}: UTF-16/UTF-32 files are not supported; "
                             "save the export as UTF-8 or CP932 (Shift_JIS)")
    else:
        candidates = ("utf-8", "cp932")
    failures = []
    for encoding in candidates:
        bad = _first_undecodable(path, encoding, chunk_size)
        if bad is None:
            return encoding
        failures.append(f"{encoding}: byte 0x{bad[1]:02x} on line {bad[0]}")
    names = " nor ".join(c.upper().replace("-SIG", " with BOM") for c in candidates)
    raise UnreadableFile(f"{path}: not {names} ({'; '.join(failures)}); nothing was imported")


def _first_undecodable(path: Path, encoding: str, chunk_size: int):
    """(line, byte) of the first byte that does not decode, or None when the whole file decodes."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    lines_before = 0
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(chunk_size)
            try:
                decoder.decode(chunk, not chunk)
            except UnicodeDecodeError as exc:
                held = len(exc.object) - len(chunk)  # bytes kept back from the previous chunk
                pos = max(exc.start - held, 0)
                return lines_before + chunk[:pos].count(b"\n") + 1, exc.object[exc.start]
            if not chunk:
                return None
            lines_before += chunk.count(b"\n")


@dataclasses.dataclass
class Source:
    """An opened export: its encoding and the column positions of its header."""

    path: Path
    encoding: str
    columns: dict[str, int]
    header_line: int
    header_width: int

    def raw_records(self) -> Iterator[tuple[int, list[str]]]:
        """(line where the record starts, fields) for every non-empty record after the header."""
        with self.path.open("r", encoding=self.encoding, newline="") as fh:
            reader = csv.reader(fh)
            previous_end = 0
            try:
                for record in reader:
                    start, previous_end = previous_end + 1, reader.line_num
                    if start > self.header_line and record and record != [""]:
                        yield start, record
            except csv.Error as exc:
                raise UnreadableFile(f"{self.path}:{previous_end + 1}: not valid CSV: {exc}") from None
            except UnicodeDecodeError as exc:  # the file changed since its encoding was checked
                raise UnreadableFile(f"{self.path}: does not decode as {self.encoding}: {exc}") from None

    def records(self) -> Iterator[tuple[int, dict[str, str] | str]]:
        """(line, column -> value); a record with more fields than the header yields an error text."""
        names = list(self.columns.items())
        width = max(self.columns.values()) + 1
        for start, record in self.raw_records():
            n = len(record)
            if n > self.header_width:
                yield start, f"the row has {n} fields, the header {self.header_width}"
            elif n >= width:
                yield start, {name: record[i] for name, i in names}
            else:
                yield start, {name: record[i] for name, i in names if i < n}


def open_source(path: str | Path, required: tuple[str, ...] = REQUIRED_COLUMNS,
                optional: tuple[str, ...] = OPTIONAL_COLUMNS) -> Source:
    """Check that the file is readable CSV with every required column; raise UnreadableFile.

    ``required``/``optional``: the columns of the import (default: the legacy export's); other
    imports of an operator's CSV (accounts/services.py) read their files through this too.
    """
    path = Path(path)
    if not path.is_file():
        raise UnreadableFile(f"{path}: no such file")
    try:
        encoding = detect_encoding(path)
        with path.open("r", encoding=encoding, newline="") as fh:
            reader = csv.reader(fh)
            header = None
            for record in reader:
                if record and record != [""]:
                    header = record
                    break
            header_line = reader.line_num
    except OSError as exc:
        raise UnreadableFile(f"{path}: cannot be read: {exc.strerror}") from None
    except csv.Error as exc:
        raise UnreadableFile(f"{path}: not valid CSV: {exc}") from None
    if header is None:
        raise UnreadableFile(f"{path}: the file is empty (no header row)")
    columns: dict[str, int] = {}
    for i, raw in enumerate(header):
        name = raw.strip().lower()
        if name in columns and name in required + optional:
            raise UnreadableFile(f"{path}: line {header_line}: column {name!r} appears twice")
        columns.setdefault(name, i)
    missing = [c for c in required if c not in columns]
    if missing:
        raise UnreadableFile(f"{path}: line {header_line}: missing column(s): {', '.join(missing)} "
                             f"(the header must name {', '.join(required)})")
    wanted = {c: columns[c] for c in required + optional if c in columns}
    return Source(path, encoding, wanted, header_line, len(header))


def check_report_path(report_path, source: Source) -> None:
    """Refuse (UnreadableFile) a report that would overwrite the input file."""
    if report_path is not None and Path(report_path).resolve() == source.path.resolve():
        raise UnreadableFile(f"{report_path}: the report would overwrite the input file")

