"""Records of a CSV or NDJSON file found block by block, without a Python loop per record.

A block is a large read that ends on a record boundary (the rest of the read waits for the next block), so memory
is bounded by the block size (or the largest record) however big the file is. NDJSON records end at newlines.
CSV records end at newlines outside quotes: in RFC 4180 a quote opens or closes a quoted field or is half of an
escaped `""`, so a newline is outside quotes exactly when an even number of quotes precede it in the block (one
numpy scan over the quote and newline positions). That holds only if every quote sits where RFC 4180 puts it and
records end in LF or CRLF; a block with a quote inside an unquoted field (`5'10"`, which the csv module keeps as
text), a bare CR line ending, an unterminated quote or a closing quote followed by text is handed, from its first
byte to the end of the file, to the csv module, which reads it exactly as before or reports the error with its
line.
"""

from __future__ import annotations

import codecs
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np

from synth_platform.fileutils.records import FileFormatError, csv_records

Format = Literal["csv", "ndjson"]
DEFAULT_BLOCK_SIZE = 8 << 20
_QUOTE, _LF, _CR = ord('"'), ord("\n"), ord("\r")
_WHITESPACE = np.isin(np.arange(256), [ord(c) for c in " \t\n\r\x0b\x0c"])  # what bytes.strip() removes


@dataclass(frozen=True)
class Block:
    """Records `data[starts[i]:ends[i]]` (line endings included, blank lines left out) of one stretch of a file."""

    data: bytes
    starts: np.ndarray  # int64 offsets into data
    ends: np.ndarray
    first_line: int  # physical line number of data[0]
    stop: int  # file offset after the block's last record, for progress
    universal: bool  # CR alone counts as a line break (CSV, read as text), or only LF (NDJSON, read as bytes)
    lines: np.ndarray | None = None  # each record's line, when the csv module read the block
    fields: list[list[str]] | None = None  # each record's fields, when the csv module read the block

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


def _line_breaks(data: bytes, end: int, universal: bool) -> int:
    """Line breaks in data[:end] as Python counts lines: LF, and for text files also CR and CRLF."""
    lf = data.count(b"\n", 0, end)
    return lf + data.count(b"\r", 0, end) - data.count(b"\r\n", 0, end) if universal else lf


def record_blocks(
    path: Path, fmt: Format, delimiter: str = ",", block_size: int = DEFAULT_BLOCK_SIZE
) -> Iterator[Block]:
    """Blocks of whole records of `path`, in file order. A CSV byte-order mark is skipped (as utf-8-sig does);
    invalid UTF-8 fails with its line."""
    delim = delimiter.encode()
    scannable = fmt == "ndjson" or (len(delim) == 1 and delim not in b'"\r\n')
    with open(path, "rb") as file:
        offset = len(codecs.BOM_UTF8) if fmt == "csv" and file.read(3) == codecs.BOM_UTF8 else 0
        file.seek(offset)
        if not scannable:
            yield from _csv_module_blocks(path, file, delimiter, block_size, offset, 1)
            return
        line, carry, final = 1, b"", False
        while not final:
            chunk = file.read(block_size)
            final = len(chunk) < block_size
            data = carry + chunk if carry else chunk
            if fmt == "csv":
                found = _scan_csv(data, delim[0], final)
                if found is None:  # not RFC 4180 as the scan assumes: the csv module takes over from here
                    yield from _csv_module_blocks(path, file, delimiter, block_size, offset, line)
                    return
            else:
                found = _scan_ndjson(data, final)
            if found is False:  # no record end yet: the record continues in the next read
                carry = data
                continue
            stop, ends, breaks = found
            bad_at, bad = _not_utf8(path, data, stop, line, fmt == "csv")
            if bad is not None:  # the records before the bad one are still delivered, as when read one by one
                ends = ends[ends <= bad_at]
            starts = np.concatenate(([0], ends[:-1]))[: len(ends)].astype(np.int64)
            keep = ~_blank(data, starts, ends, fmt)
            offset += stop
            yield Block(data, starts[keep], ends[keep], line, offset, fmt == "csv")
            if bad is not None:
                raise bad
            line += breaks
            carry = data[stop:]


def split_header(path: Path, blocks: Iterator[Block]) -> tuple[Block, Iterator[Block]]:
    """The block holding the first record (the CSV header: `block.starts[0]`...) and the blocks after it."""
    for block in blocks:
        if len(block):
            return block, itertools.chain([block.without_first()], blocks)
    raise FileFormatError(f"{path}: empty file (a header line is required)")


def _scan_csv(data: bytes, delim: int, final: bool) -> tuple[int, np.ndarray, int] | bool | None:
    """(block end, record ends, line breaks before the end) of CSV bytes starting on a record boundary; False when
    no record ends in them yet; None when the bytes are not RFC 4180 as the quote-parity scan needs them."""
    a = np.frombuffer(data, np.uint8)
    n = len(a)
    quotes = np.flatnonzero(a == _QUOTE) if b'"' in data else np.empty(0, np.int64)
    lf = np.flatnonzero(a == _LF)
    ends = lf[(np.searchsorted(quotes, lf) & 1) == 0] + 1 if len(quotes) else lf + 1
    if final:
        if len(quotes) % 2:
            return None  # unterminated quote: the csv module names the record's line
        stop = n
        if n and (not len(ends) or ends[-1] != n):
            ends = np.append(ends, n)  # the last record has no line ending
    elif len(ends):
        stop = int(ends[-1])
    else:
        return False
    quotes = quotes[: np.searchsorted(quotes, stop)]
    if len(quotes) and not _quotes_in_place(a, quotes, delim):
        return None
    breaks = int(np.searchsorted(lf, stop))
    if data.find(b"\r", 0, stop) >= 0:
        cr = np.flatnonzero(a[:stop] == _CR)
        bare = cr[(cr + 1 >= n) | (a[np.minimum(cr + 1, n - 1)] != _LF)]  # a CR not followed by LF
        if len(bare) and not ((np.searchsorted(quotes, bare) & 1) == 1).all():
            return None  # outside quotes it ends a record for the csv module
        breaks += len(bare)  # inside quotes it is text, and a line break for the line numbers
    return stop, ends.astype(np.int64), breaks


def _quotes_in_place(a: np.ndarray, quotes: np.ndarray, delim: int) -> bool:
    """Every opening quote starts a field (or is the second half of `""`), every other quote is followed by a
    quote, the delimiter, a line ending or the end of the file."""
    opening, closing = quotes[0::2], quotes[1::2]
    before = a[np.maximum(opening - 1, 0)]
    ok = (opening == 0) | (before == delim) | (before == _LF) | (before == _CR)
    ok[1:] |= closing[: len(opening) - 1] == opening[1:] - 1
    after_pos = closing + 1
    after = a[np.minimum(after_pos, len(a) - 1)]
    fine = (after_pos >= len(a)) | (after == _QUOTE) | (after == delim) | (after == _LF) | (after == _CR)
    return bool(ok.all() and fine.all())


def _scan_ndjson(data: bytes, final: bool) -> tuple[int, np.ndarray, int] | bool:
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == _LF) + 1
    breaks = len(ends)
    if final:
        if data and not data.endswith(b"\n"):
            ends = np.append(ends, len(data))
        return len(data), ends.astype(np.int64), breaks
    return (int(ends[-1]), ends.astype(np.int64), breaks) if len(ends) else False


def _blank(data: bytes, starts: np.ndarray, ends: np.ndarray, fmt: Format) -> np.ndarray:
    """Lines that are not records: empty ones for CSV (as csv.reader sees them), whitespace-only ones for NDJSON."""
    a = np.frombuffer(data, np.uint8)
    if not len(starts):
        return np.zeros(0, bool)
    lengths = ends - starts
    if fmt == "csv":
        first = a[starts]
        return (a[ends - 1] == _LF) & ((lengths == 1) | ((lengths == 2) & (first == _CR)))
    blank = _WHITESPACE[a[starts]]
    for i in np.flatnonzero(blank):  # only lines starting with whitespace are looked at one by one
        blank[i] = not data[starts[i] : ends[i]].strip()
    return blank


def _not_utf8(
    path: Path, data: bytes, stop: int, first_line: int, universal: bool
) -> tuple[int, FileFormatError | None]:
    """The offset of the first invalid UTF-8 in data[:stop] and the error naming its line, if there is one."""
    try:
        codecs.utf_8_decode(memoryview(data)[:stop], "strict", True)
    except UnicodeDecodeError as exc:
        line = first_line + _line_breaks(data, exc.start, universal)
        return exc.start, FileFormatError(f"{path}: line {line}: not UTF-8 text: {exc.reason}")
    return stop, None


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
