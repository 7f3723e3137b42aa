"""CSV -> NDJSON in bounded memory: every data row becomes one JSON object, typed by a schema or by inference.

Blocks of whole records (blocks.py) are parsed by pyarrow's CSV reader into string columns, typed a column at a
time (csv_types.py) and rendered into NDJSON lines (kernels.py), on `jobs` threads, written in file order. Blocks
the csv module read (irregular quoting) arrive already split into fields. A block pyarrow cannot parse (a row with the
wrong number of fields) is read again by the csv module, which names the line.
"""

from __future__ import annotations

import functools
import io
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv

from synth_platform.fileutils import kernels
from synth_platform.fileutils.blocks import DEFAULT_BLOCK_SIZE, Block, record_blocks, split_header
from synth_platform.fileutils.csv_types import ColumnType, Inference, ValueMismatch, json_column
from synth_platform.fileutils.progress import progress
from synth_platform.fileutils.records import FileFormatError, Record, atomic_output, csv_records
from synth_platform.pipelining import ordered, read_ahead
from synth_platform.sinks.writeback import Writeback

In = TypeVar("In")
Out = TypeVar("Out")

# Inference keeps parsed blocks up to this size, so a file that fits is parsed once; a bigger one twice.
_KEEP_BYTES = 64 << 20


@dataclass(frozen=True)
class Converted:
    rows: int
    bytes: int
    types: dict[str, ColumnType]


@dataclass(frozen=True)
class _Reader:
    source: Path
    delimiter: str
    names: list[str]
    block_size: int
    jobs: int

    def blocks(self) -> Iterator[Block]:
        return header_and_blocks(self.source, self.delimiter, self.block_size)[1]

    def parsed(self, blocks: Iterable[Block]) -> Iterator[Parsed]:
        return _in_order(self.parse, blocks, self.jobs)

    def parse(self, block: Block) -> Parsed:
        """The block's records as a table of string columns (up to a row with the wrong number of fields)."""
        if block.fields is not None:
            return self._from_fields(block, block.fields, block.lines.tolist())
        if not len(block):
            return self._from_fields(block, [], [])
        text = memoryview(block.data)[int(block.starts[0]) : int(block.ends[-1])]
        try:
            table = pa_csv.read_csv(
                pa.BufferReader(pa.py_buffer(text)),
                read_options=pa_csv.ReadOptions(
                    column_names=self.names, use_threads=False, block_size=max(len(text), 1 << 16)
                ),
                parse_options=pa_csv.ParseOptions(delimiter=self.delimiter, newlines_in_values=True),
                convert_options=pa_csv.ConvertOptions(
                    column_types=dict.fromkeys(self.names, pa.string()), check_utf8=False
                ),  # blocks.py checked it
            )
        except pa.ArrowInvalid:
            table = None
        if table is None or table.num_rows != len(block):  # the csv module reads it and names the bad line
            records = list(
                csv_records(self.source, io.StringIO(bytes(text).decode(), newline=""), self.delimiter, block.line(0))
            )
            return self._from_fields(block, [r.fields for r in records], [r.line for r in records])
        return Parsed(block, table.combine_chunks())

    def _from_fields(self, block: Block, fields: list[list[str]], lines: list[int]) -> Parsed:
        error = None
        for i, (row, line) in enumerate(zip(fields, lines, strict=True)):
            if len(row) != len(self.names):
                error = FileFormatError(
                    f"{self.source}: line {line}: {len(row)} fields, the header has {len(self.names)}"
                )
                fields = fields[:i]
                break
        columns = list(zip(*fields, strict=True)) or [()] * len(self.names)
        return Parsed(block, pa.table([pa.array(c, pa.string()) for c in columns], names=self.names), error)


@dataclass(frozen=True)
class Parsed:
    """A block's rows as string columns, and the error of the row after them when one had the wrong width."""

    block: Block
    table: pa.Table
    error: FileFormatError | None = None


def _in_order(fn: Callable[[In], Out], items: Iterable[In], jobs: int) -> Iterator[Out]:
    """fn over items on `jobs` threads, results (and errors) in file order, `jobs + 1` blocks in flight at most."""
    return ordered((functools.partial(fn, item) for item in items), workers=jobs, ahead=jobs + 1)


def header_and_blocks(source: Path, delimiter: str, block_size: int) -> tuple[Record, Iterator[Block]]:
    first, blocks = split_header(source, read_ahead(record_blocks(source, "csv", delimiter, block_size)))
    if first.fields is not None:
        header = Record(first.line(0), first.fields[0], "")
    else:
        raw = bytes(first.data[int(first.starts[0]) : int(first.ends[0])]).decode()
        header = next(csv_records(source, io.StringIO(raw, newline=""), delimiter, first.line(0)))
    names = header.fields
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes or "" in names:
        raise FileFormatError(
            f"{source}: header line {header.line}: column names must be unique and non-empty, got "
            f"{', '.join(repr(n) for n in dupes) or 'an empty name'}"
        )
    return header, blocks


def infer_types(
    source: Path, delimiter: str = ",", rows: int | None = None, *, block_size: int = DEFAULT_BLOCK_SIZE, jobs: int = 1
) -> dict[str, ColumnType]:
    """Types that fit every value of the file (or of its first `rows` rows), in bounded memory."""
    header, blocks = header_and_blocks(source, delimiter, block_size)
    reader = _Reader(source, delimiter, header.fields, block_size, jobs)
    return _infer(reader, blocks, rows, False)[0]


def _infer(
    reader: _Reader, blocks: Iterator[Block], rows: int | None, show_progress: bool
) -> tuple[dict[str, ColumnType], Iterator[Parsed]]:
    """The inferred types, and the parsed blocks to convert: those kept while inferring, then the rest of the same
    parse (when inference stopped after `rows` rows), or a new parse (when the kept blocks outgrew the budget)."""
    inference = Inference(reader.names)

    def check(block: Block) -> tuple[Parsed, list[set[ColumnType]]]:
        parsed = reader.parse(block)
        return parsed, inference.fitting(parsed.table)

    kept: list[Parsed] = []
    kept_bytes, seen, complete = 0, 0, True
    stream = _in_order(check, blocks, reader.jobs)
    with progress(reader.source, "inferring types", show_progress) as bar:
        for parsed, fitting in stream:
            table = parsed.table
            if rows is not None and seen + table.num_rows > rows:  # the last block looked at, in part
                fitting = inference.fitting(table.slice(0, rows - seen))
            inference.observe(fitting)
            seen += table.num_rows
            if parsed.error is not None and (rows is None or seen < rows):
                raise parsed.error
            bar.update(parsed.block.stop - bar.n)
            if complete and kept_bytes + table.nbytes <= _KEEP_BYTES:
                kept.append(parsed)
                kept_bytes += table.nbytes
            else:
                complete, kept = False, []
            if rows is not None and seen >= rows:
                break
    if complete:
        return inference.types(), _chain(kept, (p for p, _ in stream))
    stream.close()
    return inference.types(), reader.parsed(reader.blocks())


def _chain(kept: list[Parsed], rest: Iterator[Parsed]) -> Iterator[Parsed]:
    kept.reverse()
    while kept:  # handed over one by one, so converted blocks are freed as the conversion goes
        yield kept.pop()
    yield from rest


def csv_to_ndjson(
    source: Path,
    target: Path | None,
    types: dict[str, ColumnType] | None = None,
    *,
    delimiter: str = ",",
    infer_rows: int | None = None,
    empty_as_null: bool = False,
    block_size: int = DEFAULT_BLOCK_SIZE,
    jobs: int = 1,
    show_progress: bool = False,
) -> Converted:
    """Convert `source` to NDJSON at `target` (stdout when None), written atomically. Without `types`, they are
    inferred (from the whole file, or its first `infer_rows` rows). A value that does not fit its type fails the
    conversion with its line and column: a row is never dropped or silently re-typed."""
    header, blocks = header_and_blocks(source, delimiter, block_size)
    names = header.fields
    reader = _Reader(source, delimiter, names, block_size, jobs)
    hint, checked = "fix the value or the schema", False
    if types is None:
        types, parsed = _infer(reader, blocks, infer_rows, show_progress)
        hint = "declare its type with --schema" + (" or drop --infer-rows" if infer_rows is not None else "")
        checked = infer_rows is None  # inference saw every value fit its column's type
    else:
        _check_schema(source, names, types)
        parsed = reader.parsed(blocks)
    keys = [orjson.dumps(n) + b":" for n in names]
    literals = [b"{" + keys[0], *(b"," + k for k in keys[1:]), b"}\n"]

    def render(parsed: Parsed) -> tuple[Block, int, np.ndarray | None]:
        block, table = parsed.block, parsed.table
        columns: list[tuple[pa.Array, int]] = []
        misfits: list[tuple[int, int, str]] = []
        for i, (name, column) in enumerate(zip(names, table.columns, strict=True)):
            try:
                columns.append(json_column(column.combine_chunks(), types[name], empty_as_null, checked))
            except ValueMismatch as exc:
                misfits.append((exc.row, i, f"{name!r} ({types[name]}): {exc}"))
        if misfits:  # the first bad row, and in it the first bad column, as a row-by-row reading meets them
            row, _, what = min(misfits)
            raise FileFormatError(f"{source}: line {block.line(row)}, column {what}; {hint}")
        if parsed.error is not None:
            raise parsed.error
        if not table.num_rows:
            return block, 0, None
        return block, table.num_rows, kernels.render(columns, literals)

    rows = written = 0
    with _output(target) as out, progress(source, "converting", show_progress) as bar:
        writeback = Writeback(out) if target is not None else None
        for block, n, text in _in_order(render, parsed, jobs):
            if text is not None:
                out.write(text)
                written += len(text)
                if writeback is not None:
                    writeback.grew(written)
            rows += n
            bar.update(block.stop - bar.n)
    return Converted(rows, written, dict(types))


def _check_schema(source: Path, names: list[str], types: dict[str, ColumnType]) -> None:
    missing, extra = [n for n in names if n not in types], [n for n in types if n not in names]
    if missing or extra:
        problems = [f"not in the schema: {missing}" if missing else "", f"not in the file: {extra}" if extra else ""]
        raise FileFormatError(f"{source}: the schema does not match the header: " + "; ".join(p for p in problems if p))


@contextmanager
def _output(target: Path | None) -> Iterator[BinaryIO]:
    if target is None:
        with nullcontext(sys.stdout.buffer) as out:
            yield out
            out.flush()
    else:
        with atomic_output(target) as out:
            yield out
