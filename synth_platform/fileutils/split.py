"""Split a CSV or NDJSON file into parts of at most `max_bytes`, whole records only, the CSV header in each part.

Records are copied byte for byte (a CSV record with quoted newlines stays one record in one part), so the parts,
minus their repeated headers, concatenate back to the input; only a missing final line ending is added.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from synth_platform.fileutils.records import FileFormatError, Record, atomic_output, csv_records, ndjson_lines

Format = Literal["csv", "ndjson"]
_SUFFIX_FORMATS: dict[str, Format] = {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson"}
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


@dataclass(frozen=True)
class Part:
    path: Path
    records: int
    bytes: int


def parse_size(text: str) -> int:
    """'64MB', '512KiB', '1000' -> bytes (kB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m[2].lower() not in _UNITS:
        raise ValueError(f"{text!r} is not a size (e.g. 64MB, 512KiB, 1000000)")
    size = int(float(m[1]) * _UNITS[m[2].lower()])
    if size < 1:
        raise ValueError(f"size {text!r} must be at least 1 byte")
    return size


def detect_format(path: Path) -> Format:
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise FileFormatError(f"{path}: cannot tell CSV from NDJSON by its name; pass --format csv|ndjson")
    return fmt


def part_path(source: Path, out_dir: Path, index: int) -> Path:
    return out_dir / f"{source.stem}.part-{index:05d}{source.suffix}"


def split_file(
    source: Path, out_dir: Path, max_bytes: int, fmt: Format | None = None, delimiter: str = ","
) -> list[Part]:
    """Write the parts (each renamed into place when complete) and remove stale parts of an earlier split."""
    fmt = fmt or detect_format(source)
    header, records = _records(source, fmt, delimiter)
    head = header.encode() if header else b""
    eol = "\r\n" if header.endswith("\r\n") else "\n"
    parts: list[Part] = []
    pending: list[bytes] = []
    size = len(head)

    def flush() -> None:
        nonlocal size
        path = part_path(source, out_dir, len(parts) + 1)
        with atomic_output(path) as out:
            out.write(head)
            out.writelines(pending)
        parts.append(Part(path, len(pending), size))
        pending.clear()
        size = len(head)

    for r in records:
        data = (r.raw if r.raw.endswith("\n") else r.raw + eol).encode()
        if len(head) + len(data) > max_bytes:
            raise FileFormatError(
                f"{source}: the record on line {r.line} is {len(data)} bytes"
                + (f" (+ {len(head)} bytes of header)" if head else "")
                + f", more than parts of {max_bytes} bytes can hold; raise --max-size"
            )
        if size + len(data) > max_bytes:
            flush()
        pending.append(data)
        size += len(data)
    if pending or not parts:
        flush()  # an input without records still gives one part (the header alone for CSV)
    _remove_stale(source, out_dir, len(parts))
    return parts


def _records(source: Path, fmt: Format, delimiter: str) -> tuple[str, Iterator[Record]]:
    if fmt == "ndjson":
        return "", ndjson_lines(source)
    records = csv_records(source, delimiter)
    header = next(records, None)
    if header is None:
        raise FileFormatError(f"{source}: empty file (a header line is required)")
    raw = header.raw if header.raw.endswith("\n") else header.raw + "\n"
    return raw, records


def _remove_stale(source: Path, out_dir: Path, kept: int) -> None:
    pattern = re.compile(rf"{re.escape(source.stem)}\.part-(\d{{5}}){re.escape(source.suffix)}")
    for f in out_dir.iterdir():
        m = pattern.fullmatch(f.name)
        if m and int(m[1]) > kept:
            f.unlink()
