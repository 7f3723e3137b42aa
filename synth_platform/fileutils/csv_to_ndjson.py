"""CSV -> NDJSON in constant memory: every data row becomes one JSON object, typed by a schema or by inference."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import BinaryIO

import orjson

from synth_platform.fileutils.csv_types import ColumnType, Inference, ValueMismatch, converter
from synth_platform.fileutils.records import FileFormatError, Record, atomic_output, csv_records


@dataclass(frozen=True)
class Converted:
    rows: int
    bytes: int
    types: dict[str, ColumnType]


def header_and_rows(source: Path, delimiter: str) -> tuple[list[str], Iterator[Record]]:
    records = csv_records(source, delimiter)
    header = next(records, None)
    if header is None:
        raise FileFormatError(f"{source}: empty file (a header line is required)")
    names = header.fields
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes or "" in names:
        raise FileFormatError(
            f"{source}: header line {header.line}: column names must be unique and non-empty, got "
            f"{', '.join(repr(n) for n in dupes) or 'an empty name'}"
        )
    return names, _same_width(source, names, records)


def _same_width(source: Path, names: list[str], records: Iterator[Record]) -> Iterator[Record]:
    for r in records:
        if len(r.fields) != len(names):
            raise FileFormatError(f"{source}: line {r.line}: {len(r.fields)} fields, the header has {len(names)}")
        yield r


def infer_types(source: Path, delimiter: str = ",", rows: int | None = None) -> dict[str, ColumnType]:
    """Types that fit every value of the file (or of its first `rows` rows): one extra pass, constant memory."""
    names, records = header_and_rows(source, delimiter)
    inference = Inference(names)
    for r in islice(records, rows):
        inference.observe(r.fields)
    return inference.types()


def csv_to_ndjson(
    source: Path,
    target: Path | None,
    types: dict[str, ColumnType] | None = None,
    *,
    delimiter: str = ",",
    infer_rows: int | None = None,
    empty_as_null: bool = False,
) -> Converted:
    """Convert `source` to NDJSON at `target` (stdout when None), written atomically. Without `types`, they are
    inferred first (from the whole file, or its first `infer_rows` rows). A value that does not fit its type
    fails the conversion with its line and column: a row is never dropped or silently re-typed."""
    hint = "fix the value or the schema"
    if types is None:
        types = infer_types(source, delimiter, infer_rows)
        hint = "declare its type with --schema" + (" or drop --infer-rows" if infer_rows is not None else "")
    names, records = header_and_rows(source, delimiter)
    missing, extra = [n for n in names if n not in types], [n for n in types if n not in names]
    if missing or extra:
        raise FileFormatError(
            f"{source}: the schema does not match the header: "
            + "; ".join(
                p
                for p in (
                    f"not in the schema: {missing}" if missing else "",
                    f"not in the file: {extra}" if extra else "",
                )
                if p
            )
        )
    columns = [(n, converter(types[n], empty_as_null)) for n in names]
    rows = written = 0
    with _output(target) as out:
        for r in records:
            obj = {}
            for (name, convert), value in zip(columns, r.fields, strict=True):
                try:
                    obj[name] = convert(value)
                except ValueMismatch as exc:
                    raise FileFormatError(
                        f"{source}: line {r.line}, column {name!r} ({types[name]}): {exc}; {hint}"
                    ) from None
            line = orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)
            out.write(line)
            rows += 1
            written += len(line)
    return Converted(rows, written, dict(types))


@contextmanager
def _output(target: Path | None) -> Iterator[BinaryIO]:
    if target is None:
        with nullcontext(sys.stdout.buffer) as out:
            yield out
            out.flush()
    else:
        with atomic_output(target) as out:
            yield out
