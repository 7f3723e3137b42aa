"""Records of a CSV or NDJSON file found block by block, without a Python loop per record.

A block is a large stretch of the file, mapped into memory rather than read (nothing is copied), that ends on a
record boundary (the next block starts there), so memory is bounded by the block size (or the largest record)
however big the file is. The file must not be truncated meanwhile: a mapped page beyond its end stops the process
(SIGBUS). Record ends are found by one compiled pass (record_scan.py): newlines for NDJSON; for CSV newlines
outside quotes, told by the parity of the quotes before them, which holds only for RFC 4180 quoting with LF or
CRLF line ends. A block with a quote inside an
unquoted field (`5'10"`, which the csv module keeps as text), a bare CR line ending, an unterminated quote or a
closing quote followed by text is handed, from its first byte to the end of the file, to the csv module, which
reads it exactly as before or reports the error with its line.
"""

from __future__ import annotations

import codecs
import io
import itertools
import mmap
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np

from synth_platform.fileutils.record_scan import IRREGULAR, MORE, Scanner
from synth_platform.fileutils.records import FileFormatError, csv_records

Format = Literal["csv", "ndjson"]
DEFAULT_BLOCK_SIZE = 8 << 20


@dataclass(frozen=True)
class Block:
    """Records `data[starts[i]:ends[i]]` (line endings included, blank lines left out) of one stretch of a file."""

    data: bytes | memoryview
    starts: np.ndarray  # int64 offsets into data
    ends: np.ndarray
    first_line: int  # physical line number of data[0]
    stop: int  # file offset after the block's last record, for progress
    universal: bool  # CR alone counts as a line break (CSV, read as text), or only LF (NDJSON, read as bytes)
    lines: np.ndarray | None = None  # each record's line, when the csv module read the block
    fields: list[list[str]] | None = None  # each record's fields, when the csv module read the block
    base: int | None = None  # file offset of data[0] when data is the file's bytes in place (not the csv module's)

    def __len__(self) -> int:
        return len(self.starts)

    def line(self, i: int) -> int:
        """Physical line on which record `i` starts (counted only when an error needs it)."""
        if self.lines is not None:
            return int(self.lines[i])
        return self.first_line + _line_breaks(self.data, int(self.starts[i]), self.universal)

    def without_first(self) -> Block:
        lines = None if self.lines is None else self.lines[1:]
        fields = None if self.fields is None else self.fields[1:]
        return replace(self, starts=self.starts[1:], ends=self.ends[1:], lines=lines, fields=fields)


def _line_breaks(data: bytes | memoryview, end: int, universal: bool) -> int:
    """Line breaks in data[:end] as Python counts lines: LF, and for text files also CR and CRLF."""
    data = bytes(data[:end])  # only for error messages and the csv module's blocks: a copy is fine
    lf = data.count(b"\n", 0, end)
    return lf + data.count(b"\r", 0, end) - data.count(b"\r\n", 0, end) if universal else lf


def record_blocks(
    path: Path, fmt: Format, delimiter: str = ",", block_size: int = DEFAULT_BLOCK_SIZE
) -> Iterator[Block]:
    """Blocks of whole records of `path`, in file order. A CSV byte-order mark is skipped (as utf-8-sig does);
    invalid UTF-8 fails with its line. A path that is not a regular file fails at once (opening a pipe would wait
    for its writer)."""
    if not stat.S_ISREG(path.stat().st_mode):
        raise FileFormatError(f"{path}: not a regular file (a pipe or a device cannot be mapped; save it first)")
    return _record_blocks(path, fmt, delimiter, block_size)


def _record_blocks(path: Path, fmt: Format, delimiter: str, block_size: int) -> Iterator[Block]:
    delim = delimiter.encode()
    scannable = fmt == "ndjson" or (len(delim) == 1 and delim not in b'"\r\n')
    with open(path, "rb") as file:
        offset = len(codecs.BOM_UTF8) if fmt == "csv" and file.read(3) == codecs.BOM_UTF8 else 0
        if not scannable:
            yield from _csv_module_blocks(path, file, delimiter, block_size, offset, 1)
            return
        size = os.fstat(file.fileno()).st_size
        scan = Scanner(fmt == "csv", delim[0])
        line, length = 1, block_size
        while True:
            data = _mapped(file, offset, min(length, size - offset))
            final = offset + len(data) >= size
            found = scan(data, final)
            if found.state == IRREGULAR:  # the csv module takes over from here
                yield from _csv_module_blocks(path, file, delimiter, block_size, offset, line)
                return
            if found.state == MORE:  # no record end yet: the record continues past this window
                length += block_size
                continue
            ends, bad = found.ends, None
            if not found.utf8:  # the records before the bad one are still delivered, as when read one by one
                bad_at, bad = _not_utf8(path, data, found.stop, line, fmt == "csv")
                ends = ends[ends <= bad_at]
            yield Block(data, found.starts[: len(ends)], ends, line, offset + found.stop, fmt == "csv", base=offset)
            if bad is not None:
                raise bad
            if final:
                return
            line += found.breaks
            offset += found.stop
            length = block_size


def _mapped(file: BinaryIO, offset: int, length: int) -> memoryview | bytes:
    """file[offset:offset + length] mapped into memory, not copied. The mapping lives as long as the view (and
    what was made from it), so only the blocks in flight count in the process's memory."""
    if length <= 0:
        return b""
    start = offset - offset % mmap.ALLOCATIONGRANULARITY
    window = mmap.mmap(file.fileno(), offset + length - start, access=mmap.ACCESS_READ, offset=start)
    if hasattr(mmap, "MADV_WILLNEED"):  # a file not in the page cache is read ahead, not a page per fault
        window.madvise(mmap.MADV_WILLNEED)
    return memoryview(window)[offset - start :]


def split_header(path: Path, blocks: Iterator[Block]) -> tuple[Block, Iterator[Block]]:
    """The block holding the first record (the CSV header: `block.starts[0]`...) and the blocks after it."""
    for block in blocks:
        if len(block):
            return block, itertools.chain([block.without_first()], blocks)
    raise FileFormatError(f"{path}: empty file (a header line is required)")


def _not_utf8(
    path: Path, data: bytes | memoryview, stop: int, first_line: int, universal: bool
) -> tuple[int, FileFormatError]:
    """The offset of the first invalid UTF-8 in data[:stop] (which has some) and the error naming its line."""
    try:
        codecs.utf_8_decode(memoryview(data)[:stop], "strict", True)
    except UnicodeDecodeError as exc:
        line = first_line + _line_breaks(data, exc.start, universal)
        return exc.start, FileFormatError(f"{path}: line {line}: not UTF-8 text: {exc.reason}")
    raise AssertionError("the scan found invalid UTF-8 that Python decodes")


def _csv_module_blocks(
    path: Path, file: BinaryIO, delimiter: str, block_size: int, offset: int, line: int
) -> Iterator[Block]:
    """Blocks read by the csv module from `offset` (a record boundary on `line`) to the end of the file."""
    file.seek(offset)
    text = io.TextIOWrapper(file, encoding="utf-8", newline="")
    raws: list[bytes] = []
    lines: list[int] = []
    fields: list[list[str]] = []
    size = 0

    def block() -> Block:
        ends = np.cumsum([len(r) for r in raws], dtype=np.int64)
        starts = np.concatenate(([0], ends[:-1])).astype(np.int64)
        return Block(b"".join(raws), starts, ends, lines[0], offset + size, True, np.array(lines), fields)

    records = csv_records(path, text, delimiter, line)
    try:
        while True:
            try:
                r = next(records, None)
            except FileFormatError:
                if raws:  # the records before the error are still delivered, as when read one by one
                    yield block()
                raise
            if r is None:
                break
            raw = r.raw.encode()
            raws.append(raw)
            lines.append(r.line)
            fields.append(r.fields)
            size += len(raw)
            if size >= block_size:
                yield block()
                offset, size = offset + size, 0
                raws, lines, fields = [], [], []
        if raws:
            yield block()
    finally:
        text.detach()
