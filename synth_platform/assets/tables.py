"""Declarative tables wiring: one asset per table of config/tables/*.yaml (foreign-key parents as deps), written
to the table's target (Delta Lake, the SQL database or Parquet files in the bucket) by streams/tables.py, with key,
foreign-key and null-ratio checks."""

from typing import Any

import dagster as dg
import pyarrow as pa

from synth_platform.assets.common import (
    LIVE_CADENCE_METADATA,
    Stopwatch,
    column_schema,
    daily_partitions,
    provenance,
    run_window,
    windows_to_write,
)
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.delta import DeltaResource
from synth_platform.sinks.files import BucketResource
from synth_platform.specs import PlatformSpec
from synth_platform.specs.loader import spec_hash
from synth_platform.streams.tables import LIVE_STEP_SECONDS, TableTarget, duplicate_keys, null_ratios, orphans
from synth_platform.world.tables.catalog import CompiledTable, TablesDomain
from synth_platform.world.tables.rows import TableWorld
from synth_platform.world.windows import Window

GROUP = "tables"
KINDS = {"delta": "deltalake", "parquet": "parquet"}  # else the database's kind


def asset_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["tables", table])


def build(platform: PlatformSpec, database_kind: str) -> dg.Definitions:
    domain: TablesDomain = platform.get("tables")
    world = TableWorld(domain.catalog, platform.world.seed, platform.world.start_date)
    partitions = daily_partitions(platform.world)
    assets, checks = [], []
    for table in domain.catalog.tables.values():
        digest = spec_hash(table.spec, table.config, platform.world.seed)
        kinds = {KINDS.get(table.spec.target, database_kind)}
        assets.append(_table_asset(table, world, partitions, digest, kinds))
        checks += _table_checks(table, world, partitions)
    return dg.Definitions(assets=assets, asset_checks=checks)


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
    descriptions = {c.column_name: c.description for c in spec.columns if c.description}
    if spec.cadence is not None:
        descriptions.setdefault(spec.cadence.time_column, "Event time of the row (UTC)")
    metadata: dict[str, Any] = {
        "update_policy": spec.update_policy,
        "target": spec.target,
        "dagster/column_schema": column_schema(world.schema(name), descriptions),
    }
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
    def _asset(
        context: dg.AssetExecutionContext, database: DatabaseResource, delta: DeltaResource, bucket: BucketResource
    ):
        clock = Stopwatch()
        target = TableTarget.of(table, world, database, delta, bucket)
        windows: list[Window | None] = list(windows_to_write(context, LIVE_STEP_SECONDS)) if append else [None]
        rows = nbytes = 0
        for i, window in enumerate(windows, 1):
            written, size = target.write(world.batches(name, window), window, world.seed, digest)
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
            )
        )

    return _asset


def _table_checks(
    table: CompiledTable, world: TableWorld, partitions: dg.PartitionsDefinition
) -> list[dg.AssetChecksDefinition]:
    key = asset_key(table.name)
    partitioned = partitions if table.spec.is_append else None
    checks = []

    def windows(context: dg.AssetCheckExecutionContext) -> list[Window | None]:
        return list(run_window(context).days()) if table.spec.is_append else [None]

    pk = table.spec.primary_key
    if pk:

        @dg.asset_check(
            asset=key,
            name="primary_key_unique",
            partitions_def=partitioned,
            blocking=True,
            description=f"No two rows share the primary key ({', '.join(pk)}).",
        )
        def _pk(
            context: dg.AssetCheckExecutionContext,
            database: DatabaseResource,
            delta: DeltaResource,
            bucket: BucketResource,
        ):
            target = TableTarget.of(table, world, database, delta, bucket)
            rows, dupes = duplicate_keys(target, pk, windows(context))
            return dg.AssetCheckResult(passed=dupes == 0, metadata={"rows": rows, "duplicate_keys": dupes})

        checks.append(_pk)

    parents = sorted({fk.table for _, fk in table.foreign_keys()})
    if parents:

        @dg.asset_check(
            asset=key,
            name="foreign_keys_resolve",
            partitions_def=partitioned,
            blocking=True,
            additional_deps=[asset_key(fk.table) for _, fk in table.foreign_keys()],
            description="Every foreign key value exists in its parent's target.",
        )
        def _fk(
            context: dg.AssetCheckExecutionContext,
            database: DatabaseResource,
            delta: DeltaResource,
            bucket: BucketResource,
        ):
            parent_of = {p: TableTarget.of(world.catalog[p], world, database, delta, bucket) for p in parents}
            child = TableTarget.of(table, world, database, delta, bucket)
            checked, missing = orphans(child, parent_of, windows(context))
            return dg.AssetCheckResult(
                passed=not any(missing.values()),
                metadata={"distinct_keys_checked": checked, "orphans": dg.MetadataValue.json(missing)},
            )

        checks.append(_fk)

    nullable = {c.name: c.spec.null_fraction for c in table.columns.values() if c.spec.null_fraction > 0}
    if nullable:

        @dg.asset_check(
            asset=key,
            name="null_ratio",
            partitions_def=partitioned,
            description="Null share per column within tolerance of its null_percentage.",
        )
        def _nulls(
            context: dg.AssetCheckExecutionContext,
            database: DatabaseResource,
            delta: DeltaResource,
            bucket: BucketResource,
        ):
            target = TableTarget.of(table, world, database, delta, bucket)
            rows, report = null_ratios(target, nullable, windows(context))
            return dg.AssetCheckResult(
                passed=all(r["ok"] for r in report.values()),
                metadata={"rows": rows, "columns": dg.MetadataValue.json(report)},
            )

        checks.append(_nulls)
    return checks
