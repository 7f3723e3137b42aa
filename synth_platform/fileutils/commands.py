"""The `csv-to-ndjson` and `split` subcommands of `python -m synth_platform`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from synth_platform.fileutils.blocks import DEFAULT_BLOCK_SIZE
from synth_platform.fileutils.csv_to_ndjson import csv_to_ndjson
from synth_platform.fileutils.csv_types import load_schema
from synth_platform.fileutils.records import FileFormatError
from synth_platform.fileutils.split import parse_size, split_file
from synth_platform.specs.loader import SpecError


def register(commands: argparse._SubParsersAction) -> None:
    convert = commands.add_parser(
        "csv-to-ndjson",
        help="convert a CSV file to NDJSON (one JSON object per row), typed by a schema or inference",
        description="Convert a CSV file (header line first, RFC 4180 quoting, UTF-8) to NDJSON in bounded memory, "
        "block by block. Every data row becomes one object; quoted commas and newlines stay inside their field. "
        "Column types (string, int, float, bool) come from --schema, else they are inferred from every row (a "
        "second read unless the file fits in 64 MB). Empty fields of typed columns are null. A value that does not "
        "fit its type fails with its line. A progress bar shows on a terminal.",
    )
    convert.add_argument("source", type=Path, help="CSV file")
    convert.add_argument("-o", "--output", type=Path, help="NDJSON file to write (default: stdout)")
    convert.add_argument("--schema", type=Path, help="YAML/JSON file `columns: {name: string|int|float|bool}`")
    convert.add_argument("--infer-rows", type=int, metavar="N", help="infer types from the first N rows only")
    convert.add_argument("--delimiter", default=",", help="field separator (default ',')")
    convert.add_argument("--empty-as-null", action="store_true", help="empty string fields become null too")
    convert.add_argument(
        "--jobs",
        type=_positive,
        default=1,
        metavar="N",
        help="blocks parsed and rendered at once, on N threads (default 1)",
    )
    _block_size_option(convert)
    convert.set_defaults(func=_convert)

    split = commands.add_parser(
        "split",
        help="split a CSV or NDJSON file into parts under a maximum size",
        description="Split a CSV or NDJSON file into OUT_DIR/<name>.part-00001<suffix>, ... each at most --max-size "
        "bytes. Records are never split (a CSV record with quoted newlines stays whole) and every CSV part starts "
        "with the header. Streams in bounded memory; stale parts of an earlier split are removed. A progress bar "
        "shows on a terminal.",
    )
    split.add_argument("source", type=Path, help="CSV (.csv) or NDJSON (.ndjson/.jsonl) file")
    split.add_argument("out_dir", type=Path, help="folder for the parts (created if missing)")
    split.add_argument("--max-size", required=True, type=_size, help="largest part, e.g. 64MB, 512KiB, 1000000")
    split.add_argument("--format", choices=["csv", "ndjson"], help="when the file name does not tell")
    split.add_argument("--delimiter", default=",", help="CSV field separator (default ',')")
    _block_size_option(split)
    split.set_defaults(func=_split)


def _block_size_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--block-size",
        type=_size,
        default=DEFAULT_BLOCK_SIZE,
        metavar="SIZE",
        help="bytes read at a time, e.g. 8MiB (the default); memory grows with it",
    )


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _convert(args: argparse.Namespace) -> int:
    try:
        types = load_schema(args.schema) if args.schema else None
        result = csv_to_ndjson(
            args.source,
            args.output,
            types,
            delimiter=args.delimiter,
            infer_rows=args.infer_rows,
            empty_as_null=args.empty_as_null,
            block_size=args.block_size,
            jobs=args.jobs,
            show_progress=True,
        )
    except (FileFormatError, SpecError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    typed = ", ".join(f"{n}: {t}" for n, t in result.types.items())
    where = args.output or "stdout"
    print(f"{result.rows} rows, {result.bytes} bytes -> {where} ({typed})", file=sys.stderr)
    return 0


def _split(args: argparse.Namespace) -> int:
    try:
        parts = split_file(
            args.source,
            args.out_dir,
            args.max_size,
            args.format,
            args.delimiter,
            block_size=args.block_size,
            show_progress=True,
        )
    except (FileFormatError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for p in parts:
        print(f"{p.path}\t{p.records} records\t{p.bytes} bytes")
    print(f"{sum(p.records for p in parts)} records in {len(parts)} parts", file=sys.stderr)
    return 0
