"""Part files of a prefix: pieces of rows (NDJSON bytes or Arrow tables) written in order into files named by
their group (a part of K meters, or one meter), a group continuing in a new file before one would pass the size
limit. Each file records the range of entities it holds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from synth_platform.sinks.prefix_writer import FileEntry, PrefixWriter, StagedFile


@dataclass(frozen=True)
class Piece:
    """Rows of one file group (a part of K meters, or one meter): NDJSON bytes (gzip members for ndjson.gz) or
    an Arrow table, covering `count` entities (meters) from fleet index `first`."""

    group: str
    rows: int
    data: bytes | memoryview | pa.Table
    first: int
    count: int


EXTENSIONS = {"ndjson": ".ndjson", "ndjson.gz": ".ndjson.gz", "parquet": ".parquet"}


def file_name(group: str, seq: int, extension: str) -> str:
    """group.ext, then group-001.ext, ... when a group continues past the size limit."""
    return f"{group}{extension}" if seq == 0 else f"{group}-{seq:03d}{extension}"


def write_pieces(writer: PrefixWriter, pieces: Iterable[Piece], file_format: str, max_bytes: int) -> list[FileEntry]:
    """Write pieces in order into files named by group (`file_name`); a group continues in a new file before one
    would pass `max_bytes` (Parquet: estimated from the file's previous row group). Each file records the range
    of entities it holds (`first`, `count`)."""
    parts = _Parts(writer, EXTENSIONS[file_format], max_bytes)
    try:
        for piece in pieces:
            parts.add(piece)
    except BaseException as exc:
        parts.abort(exc)
        raise
    parts.close()
    return parts.files


class _Parts:
    def __init__(self, writer: PrefixWriter, extension: str, max_bytes: int):
        self.writer, self.extension, self.max_bytes = writer, extension, max_bytes
        self.files: list[FileEntry] = []
        self.group: str | None = None
        self.seq = 0
        self.opened: Any = None  # the writer.open(...) context manager of the current file
        self.staged: StagedFile | None = None
        self.parquet: pq.ParquetWriter | None = None
        self.last_row_group = 0

    def add(self, piece: Piece) -> None:
        if piece.group != self.group:
            self._start(piece.group, 0)
        elif self._full(piece):
            self._start(piece.group, self.seq + 1)
        staged = self.staged
        if isinstance(piece.data, pa.Table):
            if self.parquet is None:
                self.parquet = pq.ParquetWriter(_CrcSink(staged), piece.data.schema, compression="zstd")
            before = staged.bytes
            self.parquet.write_table(piece.data, row_group_size=max(1, piece.data.num_rows))
            self.last_row_group = staged.bytes - before
        else:
            staged.write(piece.data)
        staged.rows += piece.rows
        staged.extra.setdefault("first", piece.first)
        staged.extra["count"] = staged.extra.get("count", 0) + piece.count

    def _full(self, piece: Piece) -> bool:
        size = self.staged.bytes
        if isinstance(piece.data, pa.Table):
            return self.parquet is not None and size + self.last_row_group > self.max_bytes
        return size > 0 and size + len(piece.data) > self.max_bytes

    def _start(self, group: str, seq: int) -> None:
        self.close()
        self.group, self.seq = group, seq
        self.opened = self.writer.open(file_name(group, seq, self.extension))
        self.staged = self.opened.__enter__()

    def close(self) -> None:
        if self.opened is None:
            return
        if self.parquet is not None:
            self.parquet.close()
        opened, self.opened, self.parquet, self.last_row_group = self.opened, None, None, 0
        opened.__exit__(None, None, None)
        self.files.append(self.writer.files[-1])

    def abort(self, exc: BaseException) -> None:
        if self.opened is not None:
            opened, self.opened = self.opened, None
            opened.__exit__(type(exc), exc, exc.__traceback__)


class _CrcSink:
    """A file-like target for ParquetWriter that goes through StagedFile.write (bytes and CRC counted)."""

    def __init__(self, staged: StagedFile):
        self.staged = staged
        self.closed = False

    def write(self, data: bytes) -> int:
        self.staged.write(data)
        return len(data)

    def tell(self) -> int:
        return self.staged.bytes

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True
