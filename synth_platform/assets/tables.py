"""Declarative tables wiring: one asset per table of config/tables/*.yaml (foreign-key parents as deps), written
to the table's target (Delta Lake or the SQL database), with key, foreign-key and null-ratio checks."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from synth_platform.assets.common import (
    LIVE_CADENCE_METADATA,
    Stopwatch,
    daily_partitions,
    provenance,
    run_window,
    windows_to_write,
)
from synth_platform.assets.power import database_kind
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.delta import DeltaResource, window_filter
from synth_platform.sinks.sql_schema import sql_table
from synth_platform.specs import PlatformSpec
from synth_platform.specs.loader import spec_hash
from synth_platform.specs.tables import TablesDomain
from synth_platform.world.tables.catalog import CompiledTable
from synth_platform.world.tables.rows import TableWorld
from synth_platform.world.windows import Window

GROUP = "tables"
LIVE_STEP_SECONDS = 60  # append tables stream minute windows
_IN_CHUNK = 5_000


def asset_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["tables", table])


@dataclass(frozen=True)
class TableTarget:
    """Where one table's rows go (its `target:`), and how they are read back for the checks."""

    table: CompiledTable
    schema: pa.Schema
    database: DatabaseResource
    delta: DeltaResource

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def time_column(self) -> str | None:
        return self.table.spec.cadence.time_column if self.table.spec.cadence else None

    @property
    def on_delta(self) -> bool:
        return self.table.spec.target == "delta"

    def describe(self) -> str:
        return (
            f"delta {self.delta.uri(self.name)}" if self.on_delta else f"{self.database.redacted_url} table {self.name}"
        )

    def sql(self) -> sa.Table:
        indexes = [[self.time_column]] if self.time_column else []
        return sql_table(self.name, self.schema, primary_key=self.table.spec.primary_key, indexes=indexes)

    def write(self, batches: Iterable[pa.RecordBatch], window: Window | None) -> tuple[int, int]:
        """Replace the window (or the whole table) with the batches; returns (rows, bytes)."""
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

    def read(self, columns: list[str], window: Window | None = None) -> pa.Table:
        in_window = window is not None and self.time_column is not None
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
            if self.on_delta:
                hits = self.delta.read(self.name, [column], pc.field(column).isin(chunk)).column(0)
            else:
                table = self.sql()
                self.database.ensure_table(table)
                rows = self.database.query(sa.select(table.c[column]).where(table.c[column].in_(chunk.to_pylist())))
                hits = pa.array([r[0] for r in rows], values.type)
            found += pc.count_distinct(hits).as_py()
        return found


def build(platform: PlatformSpec, database_url: str) -> dg.Definitions:
    domain: TablesDomain = platform.get("tables")
    world = TableWorld(domain.catalog, platform.world.seed, platform.world.start_date)
    partitions = daily_partitions(platform.world)
    db_kind = database_kind(database_url)
    assets, checks = [], []
    for table in domain.catalog.tables.values():
        digest = spec_hash(table.spec, table.config, platform.world.seed)
        kinds = {"deltalake"} if table.spec.target == "delta" else {db_kind}
        assets.append(_table_asset(table, world, partitions, digest, kinds))
        checks += _table_checks(table, world, partitions)
    return dg.Definitions(assets=assets, asset_checks=checks)


def _target(table: CompiledTable, world: TableWorld, database: DatabaseResource, delta: DeltaResource) -> TableTarget:
    return TableTarget(table, world.schema(table.name), database, delta)


def _description(table: CompiledTable) -> str:
    spec = table.spec
    policy = {
        "disabled": f"static: {spec.row_count} rows",
        "replace": f"{spec.row_count} rows, rewritten whole on each run",
        "append": f"{spec.row_count} initial rows, then {spec.cadence.rows_per_minute if spec.cadence else 0} rows per "
        "minute in daily partitions",
    }[spec.update_policy]
    return f"{spec.description or spec.table_name} ({policy}; from {table.file.name})"


def _table_asset(
    table: CompiledTable, world: TableWorld, partitions: dg.PartitionsDefinition, digest: str, kinds: set[str]
) -> dg.AssetsDefinition:
    spec, name = table.spec, table.name
    append = spec.is_append
    metadata: dict[str, Any] = {"update_policy": spec.update_policy, "target": spec.target}
    if append and spec.cadence and spec.cadence.enabled:
        metadata[LIVE_CADENCE_METADATA] = LIVE_STEP_SECONDS

    @dg.asset(
        name=name,
        key_prefix=["tables"],
        group_name=GROUP,
        kinds=kinds,
        deps=[asset_key(p) for p in sorted(table.parents)],
        partitions_def=partitions if append else None,
        backfill_policy=dg.BackfillPolicy.single_run() if append else None,
        description=_description(table),
        metadata=metadata,
    )
    def _asset(context: dg.AssetExecutionContext, database: DatabaseResource, delta: DeltaResource):
        clock = Stopwatch()
        target = _target(table, world, database, delta)
        windows: list[Window | None] = list(windows_to_write(context, LIVE_STEP_SECONDS)) if append else [None]
        rows = nbytes = 0
        for i, window in enumerate(windows, 1):
            written, size = target.write(world.batches(name, window), window)
            rows, nbytes = rows + written, nbytes + size
            context.log.info(f"[{i}/{len(windows)}] {window or 'all rows'}: {written} rows to {target.describe()}")
        last = windows[-1] if windows else None
        preview = world.rows(name, world.row_ids(name, last)[:5]) if (last or not append) else None
        return dg.MaterializeResult(
            metadata=provenance(
                seed=world.seed,
                spec_hash=digest,
                window=run_window(context) if append else None,
                rows=rows,
                nbytes=nbytes,
                seconds=clock.seconds,
                target=target.describe(),
                preview=pa.Table.from_batches([preview]) if preview is not None else None,
                windows=dg.MetadataValue.int(len(windows)),
            )  # fmt: skip
        )

    return _asset


def _check_windows(context: dg.AssetCheckExecutionContext, table: CompiledTable) -> list[Window | None]:
    return list(run_window(context).days()) if table.spec.is_append else [None]


def _table_checks(
    table: CompiledTable, world: TableWorld, partitions: dg.PartitionsDefinition
) -> list[dg.AssetChecksDefinition]:
    key = asset_key(table.name)
    partitioned = partitions if table.spec.is_append else None
    checks = []
    pk = table.spec.primary_key

    if pk:

        @dg.asset_check(asset=key, name="primary_key_unique", partitions_def=partitioned, blocking=True,
                        description=f"No two rows share the primary key ({', '.join(pk)}).")  # fmt: skip
        def _pk(context: dg.AssetCheckExecutionContext, database: DatabaseResource, delta: DeltaResource):
            target = _target(table, world, database, delta)
            rows = dupes = 0
            for window in _check_windows(context, table):
                data = target.read(pk, window)
                rows += data.num_rows
                dupes += data.num_rows - data.group_by(pk).aggregate([]).num_rows
            return dg.AssetCheckResult(passed=dupes == 0, metadata={"rows": rows, "duplicate_keys": dupes})

        checks.append(_pk)

    fks = table.foreign_keys()
    if fks:

        @dg.asset_check(asset=key, name="foreign_keys_resolve", partitions_def=partitioned, blocking=True,
                        additional_deps=[asset_key(fk.table) for _, fk in fks],
                        description="Every foreign key value exists in its parent's target.")  # fmt: skip
        def _fk(context: dg.AssetCheckExecutionContext, database: DatabaseResource, delta: DeltaResource):
            child = _target(table, world, database, delta)
            orphans: dict[str, int] = {}
            checked = 0
            for column, fk in fks:
                parent = _target(world.catalog[fk.table], world, database, delta)
                for window in _check_windows(context, table):
                    values = pc.unique(child.read([column], window).column(0).combine_chunks().drop_null())
                    found = parent.count_existing(fk.column, values.cast(parent.schema.field(fk.column).type))
                    missing = len(values) - found
                    checked += len(values)
                    orphans[column] = orphans.get(column, 0) + missing
            return dg.AssetCheckResult(
                passed=not any(orphans.values()),
                metadata={"distinct_keys_checked": checked, "orphans": dg.MetadataValue.json(orphans)},
            )

        checks.append(_fk)

    nullable = {c.name: c.spec.null_fraction for c in table.columns.values() if c.spec.null_fraction > 0}
    if nullable:

        @dg.asset_check(asset=key, name="null_ratio", partitions_def=partitioned,
                        description="Null share per column within tolerance of its null_percentage.")  # fmt: skip
        def _nulls(context: dg.AssetCheckExecutionContext, database: DatabaseResource, delta: DeltaResource):
            target = _target(table, world, database, delta)
            columns = list(nullable)
            counts = {c: 0 for c in columns}
            rows = 0
            for window in _check_windows(context, table):
                data = target.read(columns, window)
                rows += data.num_rows
                for c in columns:
                    counts[c] += data.column(c).null_count
            report = {c: null_ratio_report(counts[c], rows, nullable[c]) for c in columns}
            return dg.AssetCheckResult(
                passed=all(r["ok"] for r in report.values()),
                metadata={"rows": rows, "columns": dg.MetadataValue.json(report)},
            )

        checks.append(_nulls)
    return checks


def null_ratio_report(nulls: int, rows: int, expected: float) -> dict[str, Any]:
    """Observed vs expected null share; the tolerance is 4 binomial standard deviations (at least 1 point)."""
    observed = nulls / rows if rows else expected
    tolerance = max(0.01, 4 * float(np.sqrt(expected * (1 - expected) / max(rows, 1))))
    return {"expected": expected, "observed": round(observed, 4), "tolerance": round(tolerance, 4),
            "ok": abs(observed - expected) <= tolerance}  # fmt: skip


def expire(table: CompiledTable, database: DatabaseResource, delta: DeltaResource, cutoff: datetime) -> dict[str, int]:
    """Retention of an append table: delete its rows before the cutoff (on Delta, then vacuum)."""
    time_column = table.spec.cadence.time_column  # type: ignore[union-attr]
    if table.spec.target == "delta":
        deleted = delta.delete_before(table.name, time_column, cutoff)
        delta.vacuum(table.name)
        return {f"delta {delta.uri(table.name)}": deleted}
    if not sa.inspect(database.engine).has_table(table.name):
        return {}
    sql = sa.Table(table.name, sa.MetaData(), sa.Column(time_column, sa.DateTime(timezone=True)))
    return {f"{database.redacted_url} table {table.name}": database.delete_before(sql, time_column, cutoff)}
