"""Declarative tables delivered: each table's rows written a window (or the whole table) at a time to its target
(Delta Lake, the SQL database, or Parquet files in the bucket), read back for the checks, and expired for
retention."""

import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from synth_platform import __version__
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.delta import DeltaResource, window_filter
from synth_platform.sinks.files import BucketResource, replaced_slices, window_prefix
from synth_platform.sinks.parts import Piece, write_pieces
from synth_platform.sinks.sql_schema import sql_table
from synth_platform.world.tables.catalog import CompiledTable
from synth_platform.world.tables.rows import TableWorld
from synth_platform.world.windows import Window

LIVE_STEP_SECONDS = 60  # append tables stream minute windows
_IN_CHUNK = 5_000
_PARQUET_PART_BYTES = 128_000_000


@dataclass(frozen=True)
class TableTarget:
    """Where one table's rows go (its `target:`), and how they are read back for the checks."""

    table: CompiledTable
    schema: pa.Schema
    database: DatabaseResource
    delta: DeltaResource
    bucket: BucketResource

    @classmethod
    def of(
        cls,
        table: CompiledTable,
        world: TableWorld,
        database: DatabaseResource,
        delta: DeltaResource,
        bucket: BucketResource,
    ):
        return cls(table, world.schema(table.name), database, delta, bucket)

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def time_column(self) -> str | None:
        return self.table.spec.cadence.time_column if self.table.spec.cadence else None

    @property
    def on_delta(self) -> bool:
        return self.table.spec.target == "delta"

    @property
    def on_parquet(self) -> bool:
        return self.table.spec.target == "parquet"

    @property
    def stream(self) -> str:
        """The table's folder in the bucket (Parquet target)."""
        return parquet_stream(self.name)

    def uri(self) -> str | None:
        """The target's address without credentials (a Delta table, a Parquet prefix); None for a database table."""
        if self.on_parquet:
            return self.bucket.uri(self.stream + "/")
        return self.delta.public_uri(self.name) if self.on_delta else None

    def describe(self) -> str:
        if self.on_parquet:
            return f"parquet {self.bucket.uri(self.stream + '/')}"
        return (
            f"delta {self.delta.uri(self.name)}" if self.on_delta else f"{self.database.redacted_url} table {self.name}"
        )

    def sql(self) -> sa.Table:
        indexes = [[self.time_column]] if self.time_column else []
        return sql_table(self.name, self.schema, primary_key=self.table.spec.primary_key, indexes=indexes)

    def write(
        self, batches: Iterable[pa.RecordBatch], window: Window | None, seed: int = 0, digest: str = ""
    ) -> tuple[int, int]:
        """Replace the window (or the whole table) with the batches; returns (rows, bytes). The seed and spec hash
        go into a Parquet table's manifests."""
        if self.on_parquet:
            return self._write_parquet(batches, window, {"seed": seed, "spec_hash": digest})
        if self.on_delta:
            reader = pa.RecordBatchReader.from_batches(self.schema, batches)
            if window is None:
                result = self.delta.replace(self.name, reader)
            else:
                result = self.delta.replace_window(self.name, reader, self.time_column, window)  # type: ignore[arg-type]
            return result.rows, result.bytes
        data = pa.Table.from_batches(list(batches), schema=self.schema)
        table = self.sql()
        self.database.ensure_table(table)
        if window is None:
            written = self.database.replace(table, data)
        else:
            written = self.database.replace_window(table, data, self.time_column, window)  # type: ignore[arg-type]
        return written.rows, written.bytes

    def _write_parquet(
        self, batches: Iterable[pa.RecordBatch], window: Window | None, provenance: dict[str, Any]
    ) -> tuple[int, int]:
        """Files under tables/<name>/ (static) or tables/<name>/dt=D/ (a day; slice=... for a live window), replaced
        a prefix at a time with a manifest written last, as the meter files are: a hive-partitioned dataset."""
        prefix = f"{self.stream}/" if window is None else window_prefix(self.stream, window)
        also_remove = [] if window is None else replaced_slices(self.bucket, self.stream, window)
        if also_remove is None:
            return 0, 0  # the day (or a window holding this one) is written already
        pieces = (Piece("part-00000", b.num_rows, pa.Table.from_batches([b]), 0, b.num_rows) for b in batches)
        span = {"start": window.start.isoformat(), "end": window.end.isoformat()} if window else None
        with self.bucket.replace_prefix(prefix, also_remove) as writer:
            write_pieces(writer, pieces, "parquet", _PARQUET_PART_BYTES)
            result = writer.commit(
                {"stream": self.stream, "window": span, "format": "parquet", "generator_version": __version__,
                 **provenance}
            )  # fmt: skip
        return result.rows, result.bytes

    def _read_parquet(self, columns: list[str], window: Window | None) -> pa.Table:
        day = None if window is None else Window.for_day(window.start.date())
        prefix = f"{self.stream}/" if day is None else window_prefix(self.stream, day)
        names = sorted(n for n in self.bucket.list(prefix) if n.endswith(".parquet"))
        parts = [pq.read_table(io.BytesIO(self.bucket.read_bytes(n)), columns=columns) for n in names]
        schema = pa.schema([self.schema.field(c) for c in columns])
        return pa.concat_tables([p.cast(schema) for p in parts]) if parts else schema.empty_table()

    def read(self, columns: list[str], window: Window | None = None) -> pa.Table:
        in_window = window is not None and self.time_column is not None
        if self.on_parquet:
            data = self._read_parquet([*columns, *([self.time_column] if in_window else [])], window)
            if in_window:
                data = data.filter(window_filter(self.time_column, window)).select(columns)  # type: ignore[arg-type]
            return data
        if self.on_delta:
            where = window_filter(self.time_column, window) if in_window else None  # type: ignore[arg-type]
            return self.delta.read(self.name, columns, where)
        table = self.sql()
        self.database.ensure_table(table)
        query = sa.select(*(table.c[c] for c in columns))
        if in_window:
            time = table.c[self.time_column]
            query = query.where(time >= window.start, time < window.end)  # type: ignore[union-attr]
        rows = self.database.query(query)
        return pa.table({c: pa.array([r[i] for r in rows]) for i, c in enumerate(columns)})

    def count_existing(self, column: str, values: pa.Array) -> int:
        """How many of the distinct `values` exist in `column`: one query per chunk, never the whole table."""
        found = 0
        for start in range(0, len(values), _IN_CHUNK):
            chunk = values.slice(start, _IN_CHUNK)
            if self.on_parquet:
                column_values = self.read([column]).column(0)
                hits = column_values.filter(pc.is_in(column_values, value_set=chunk))
            elif self.on_delta:
                hits = self.delta.read(self.name, [column], pc.field(column).isin(chunk)).column(0)
            else:
                table = self.sql()
                self.database.ensure_table(table)
                rows = self.database.query(sa.select(table.c[column]).where(table.c[column].in_(chunk.to_pylist())))
                hits = pa.array([r[0] for r in rows], values.type)
            found += pc.count_distinct(hits).as_py()
        return found


def duplicate_keys(target: TableTarget, key: list[str], windows: list[Window | None]) -> tuple[int, int]:
    """(rows read, rows sharing a primary key with an earlier row) over the windows."""
    rows = dupes = 0
    for window in windows:
        data = target.read(key, window)
        rows += data.num_rows
        dupes += data.num_rows - data.group_by(key).aggregate([]).num_rows
    return rows, dupes


def orphans(
    child: TableTarget, parent_of: dict[str, TableTarget], windows: list[Window | None]
) -> tuple[int, dict[str, int]]:
    """(distinct foreign key values checked, values missing from the parent per column) over the windows."""
    missing: dict[str, int] = {}
    checked = 0
    for column, fk in child.table.foreign_keys():
        parent = parent_of[fk.table]
        for window in windows:
            values = pc.unique(child.read([column], window).column(0).combine_chunks().drop_null())
            found = parent.count_existing(fk.column, values.cast(parent.schema.field(fk.column).type))
            checked += len(values)
            missing[column] = missing.get(column, 0) + len(values) - found
    return checked, missing


def null_ratios(target: TableTarget, expected: dict[str, float], windows: list[Window | None]) -> tuple[int, dict]:
    """(rows read, observed vs expected null share per column) over the windows."""
    columns = list(expected)
    counts = dict.fromkeys(columns, 0)
    rows = 0
    for window in windows:
        data = target.read(columns, window)
        rows += data.num_rows
        for c in columns:
            counts[c] += data.column(c).null_count
    return rows, {c: null_ratio_report(counts[c], rows, expected[c]) for c in columns}


def null_ratio_report(nulls: int, rows: int, expected: float) -> dict[str, Any]:
    """Observed vs expected null share; the tolerance is 4 binomial standard deviations (at least 1 point)."""
    observed = nulls / rows if rows else expected
    tolerance = max(0.01, 4 * float(np.sqrt(expected * (1 - expected) / max(rows, 1))))
    return {
        "expected": expected,
        "observed": round(observed, 4),
        "tolerance": round(tolerance, 4),
        "ok": abs(observed - expected) <= tolerance,
    }


def parquet_stream(table: str) -> str:
    return f"tables/{table}"


def expire(
    table: CompiledTable, database: DatabaseResource, delta: DeltaResource, bucket: BucketResource, cutoff: datetime
) -> dict[str, int]:
    """Retention of an append table: delete its rows before the cutoff (on Delta, then vacuum; Parquet: whole
    days before the cutoff's day)."""
    time_column = table.spec.cadence.time_column  # type: ignore[union-attr]
    if table.spec.target == "parquet":
        stream = parquet_stream(table.name)
        return {f"parquet {bucket.uri(stream + '/')}": bucket.delete_before(stream, cutoff.date())}
    if table.spec.target == "delta":
        deleted = delta.delete_before(table.name, time_column, cutoff)
        delta.vacuum(table.name)
        return {f"delta {delta.uri(table.name)}": deleted}
    if not sa.inspect(database.engine).has_table(table.name):
        return {}
    sql = sa.Table(table.name, sa.MetaData(), sa.Column(time_column, sa.DateTime(timezone=True)))
    return {f"{database.redacted_url} table {table.name}": database.delete_before(sql, time_column, cutoff)}
