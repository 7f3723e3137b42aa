"""Streaming CSV and NDJSON records, each with the exact text it came from, one record in memory at a time."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


class FileFormatError(ValueError):
    """Input that cannot be read as declared; the message names the file and the line."""


@dataclass(frozen=True)
class Record:
    line: int  # first physical line of the record (1-based)
    fields: list[str]
    raw: str  # the record's text as in the file, line ending(s) included


def csv_records(path: Path, delimiter: str = ",") -> Iterator[Record]:
    """Records of a UTF-8 CSV file (a byte-order mark is dropped); blank lines are not records.

    csv.reader pulls physical lines only until a record is complete, so the lines consumed since the previous
    record are exactly this record's text, quoted newlines included: the splitter writes them back unchanged.
    """
    raw: list[str] = []
    line_no = 0
    first = 1
    with open(path, encoding="utf-8-sig", newline="") as file:

        def lines() -> Iterator[str]:
            nonlocal line_no
            for line in file:
                line_no += 1
                raw.append(line)
                yield line

        reader = csv.reader(lines(), delimiter=delimiter, strict=True)
        try:
            for fields in reader:
                if fields:
                    yield Record(first, fields, "".join(raw))
                raw.clear()
                first = line_no + 1
        except csv.Error as exc:
            raise FileFormatError(f"{path}: record starting on line {first}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise FileFormatError(f"{path}: not UTF-8 text after line {line_no}: {exc.reason}") from None


def ndjson_lines(path: Path) -> Iterator[Record]:
    """Non-blank lines of an NDJSON file as raw text (not parsed: a splitter has no reason to)."""
    with open(path, "rb") as file:
        for line_no, line in enumerate(file, 1):
            if line.strip():
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise FileFormatError(f"{path}: line {line_no}: not UTF-8 text: {exc.reason}") from None
                yield Record(line_no, [], text)


@contextmanager
def atomic_output(target: Path) -> Iterator[BinaryIO]:
    """Write to a temp file beside the target and rename it into place, so a failed run leaves no half file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb", buffering=1 << 20) as out:
            yield out
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
