"""CSV records as Python's csv module reads them, each with the exact text it came from; and atomic output files."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator
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


def csv_records(path: Path, text: Iterable[str], delimiter: str = ",", first_line: int = 1) -> Iterator[Record]:
    """Records of CSV text read as by `open(path, newline="")` from `first_line` on; blank lines are not records.

    csv.reader pulls physical lines only until a record is complete, so the lines consumed since the previous
    record are exactly this record's text, quoted newlines included: the splitter writes them back unchanged.
    This is the reference reading; blocks.py finds the same records without a Python loop per record.
    """
    raw: list[str] = []
    line_no = first_line - 1
    first = first_line

    def lines() -> Iterator[str]:
        nonlocal line_no
        for line in text:
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
