"""Split a CSV or NDJSON file into parts of at most `max_bytes`, whole records only, the CSV header in each part.

Records are copied byte for byte (a CSV record with quoted newlines stays one record in one part), so the parts,
minus their repeated headers, concatenate back to the input; only a missing final line ending is added. Records
come in blocks (blocks.py, which maps the file rather than reading it) and each part takes as many whole records
as fit (a binary search over the block's cumulative record sizes). A run of adjacent records is a byte range of
the input, copied into the part by the kernel (range_copy.py), so the data never passes through Python; only
records the csv module read (irregular quoting) are written from memory.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from synth_platform.fileutils.blocks import DEFAULT_BLOCK_SIZE, Block, Format, record_blocks, split_header
from synth_platform.fileutils.progress import progress
from synth_platform.fileutils.range_copy import RangeCopier, write_all
from synth_platform.fileutils.records import FileFormatError, atomic_output
from synth_platform.pipelining import read_ahead
from synth_platform.sinks.writeback import Writeback

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


# a piece of a part: bytes in memory, or (offset, length) of the source, copied by the kernel
Piece = memoryview | tuple[int, int]


class _Parts:
    """The part being filled (open as an atomic output) and the parts already complete. Parts are written
    through their file descriptor: ranges of the source are copied by the kernel (range_copy.py), the header and
    the csv module's records from memory."""

    def __init__(self, source: Path, out_dir: Path, head: bytes, copier: RangeCopier):
        self.source, self.out_dir, self.head, self.copier = source, out_dir, head, copier
        self.done: list[Part] = []
        self._output: AbstractContextManager[BinaryIO] | None = None
        self._fd = -1
        self._writeback: Writeback | None = None
        self.size = self.records = 0

    def write(self, pieces: list[Piece], nbytes: int, records: int) -> None:
        if self._output is None:
            self._output = atomic_output(part_path(self.source, self.out_dir, len(self.done) + 1))
            out = self._output.__enter__()
            self._fd, self._writeback = out.fileno(), Writeback(out)
            write_all(self._fd, self.head)
            self.size, self.records = len(self.head), 0
        for piece in pieces:
            if isinstance(piece, tuple):
                self.copier.copy(self._fd, *piece)
            else:
                write_all(self._fd, piece)
        self.size += nbytes
        self.records += records
        self._writeback.grew(self.size)

    def close(self) -> None:
        if self._output is not None:
            # synced before the rename, so a part in place is on disk; its writeback began as it grew
            os.fsync(self._fd)
            self._output.__exit__(None, None, None)
            self.done.append(Part(part_path(self.source, self.out_dir, len(self.done) + 1), self.records, self.size))
            self._output = None

    def abort(self, exc: BaseException) -> None:
        if self._output is not None:
            self._output.__exit__(type(exc), exc, exc.__traceback__)  # the half part is deleted, never renamed

    @property
    def room(self) -> int:
        return self.size if self._output is not None else len(self.head)


def split_file(
    source: Path,
    out_dir: Path,
    max_bytes: int,
    fmt: Format | None = None,
    delimiter: str = ",",
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    show_progress: bool = False,
) -> list[Part]:
    """Write the parts (each renamed into place when complete) and remove stale parts of an earlier split."""
    fmt = fmt or detect_format(source)
    head, blocks = _header(source, fmt, read_ahead(record_blocks(source, fmt, delimiter, block_size)))
    eol = b"\r\n" if head.endswith(b"\r\n") else b"\n"
    with open(source, "rb") as src, progress(source, "split", show_progress) as bar:
        parts = _Parts(source, out_dir, head, RangeCopier(source, src.fileno()))
        try:
            for block in blocks:
                _pack(source, block, parts, max_bytes, eol)
                bar.update(block.stop - bar.n)
        except BaseException as exc:
            parts.abort(exc)
            raise
        if parts.records or not parts.done:
            parts.write([], 0, 0)  # an input without records still gives one part (the header alone for CSV)
        parts.close()
    _remove_stale(source, out_dir, len(parts.done))
    return parts.done


def _pack(source: Path, block: Block, parts: _Parts, max_bytes: int, eol: bytes) -> None:
    a = np.frombuffer(block.data, np.uint8)
    # a record without a line ending (the file's last, or one the csv module ended at a bare CR) gets `eol`
    unended = a[block.ends - 1] != ord("\n") if len(block) else np.zeros(0, bool)
    lengths = block.ends - block.starts + unended * len(eol)
    too_big = np.flatnonzero(lengths > max_bytes - len(parts.head))
    n = int(too_big[0]) if len(too_big) else len(block)
    cumulative = np.cumsum(lengths[:n])
    # runs of records written as one slice end where a blank line was left out or a line ending is added
    gaps = np.flatnonzero(block.starts[1:n] != block.ends[: n - 1]) + 1 if n else np.empty(0, np.int64)
    breaks = np.union1d(gaps, np.flatnonzero(unended[:n]) + 1)
    data = memoryview(block.data)
    i = 0
    while i < n:
        base = int(cumulative[i - 1]) if i else 0
        j = int(np.searchsorted(cumulative, base + max_bytes - parts.room, "right"))
        if j == i:  # the next record does not fit in this part
            parts.close()
            continue
        cuts = [i, *breaks[np.searchsorted(breaks, i, "right") : np.searchsorted(breaks, j, "left")].tolist(), j]
        pieces: list[Piece] = []
        for lo, hi in itertools.pairwise(cuts):
            start, end = int(block.starts[lo]), int(block.ends[hi - 1])
            pieces.append(data[start:end] if block.base is None else (block.base + start, end - start))
            if unended[hi - 1]:
                pieces.append(memoryview(eol))
        parts.write(pieces, int(cumulative[j - 1]) - base, j - i)
        i = j
    if n < len(block):
        head = f" (+ {len(parts.head)} bytes of header)" if parts.head else ""
        raise FileFormatError(
            f"{source}: the record on line {block.line(n)} is {lengths[n]} bytes{head}, more than parts of "
            f"{max_bytes} bytes can hold; raise --max-size"
        )


def _header(source: Path, fmt: Format, blocks: Iterator[Block]) -> tuple[bytes, Iterator[Block]]:
    """The CSV header record (its own text, LF added if the file ends right after it) and the blocks after it."""
    if fmt == "ndjson":
        return b"", blocks
    first, blocks = split_header(source, blocks)
    raw = bytes(first.data[int(first.starts[0]) : int(first.ends[0])])
    return (raw if raw.endswith(b"\n") else raw + b"\n"), blocks


def _remove_stale(source: Path, out_dir: Path, kept: int) -> None:
    pattern = re.compile(rf"{re.escape(source.stem)}\.part-(\d{{5}}){re.escape(source.suffix)}")
    for f in out_dir.iterdir():
        m = pattern.fullmatch(f.name)
        if m and int(m[1]) > kept:
            f.unlink()
