"""Declarative tables wiring: one asset per table of config/tables/*.yaml (foreign-key parents as deps), written
to the table's target (Delta Lake, the SQL database or Parquet files in the bucket) by streams/tables.py, with key,
foreign-key and null-ratio checks evaluated in the writing step."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pyarrow as pa

from synth_platform.assets.common import (
    LIVE_CADENCE_METADATA,
    Stopwatch,
    Tally,
    Written,
    check_scope,
    column_schema,
    daily_partitions,
    is_live,
    partition_results,
    provenance,
    uri_metadata,
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
    assets = []
    for table in domain.catalog.tables.values():
        digest = spec_hash(table.spec, table.config, platform.world.seed)
        kinds = {KINDS.get(table.spec.target, database_kind)}
        assets.append(_table_asset(table, world, partitions, digest, kinds))
    return dg.Definitions(assets=assets)


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
        check_specs=_check_specs(table),
    )
    def _asset(
        context: dg.AssetExecutionContext, database: DatabaseResource, delta: DeltaResource, bucket: BucketResource
    ):
        target = TableTarget.of(table, world, database, delta, bucket)

        def provenance_of(window: Window | None, rows: int, nbytes: int, seconds: float, windows: list) -> dict:
            """Metadata of what was written, previewing the first rows of its first window."""
            first = world.rows(name, world.row_ids(name, windows[0])[:5]) if rows else None
            return provenance(
                seed=world.seed,
                spec_hash=digest,
                window=window,
                rows=rows,
                nbytes=nbytes,
                seconds=seconds,
                target=target.describe(),
                preview=pa.Table.from_batches([first]) if first is not None else None,
                windows=dg.MetadataValue.int(len(windows)),
                **uri_metadata(target.uri()),
            )

        if not append:
            clock = Stopwatch()
            rows, nbytes = target.write(world.batches(name, None), None, world.seed, digest)
            context.log.info(f"all rows: {rows} rows to {target.describe()}")
            yield dg.MaterializeResult(metadata=provenance_of(None, rows, nbytes, clock.seconds, [None]))
            yield from _check_results(context, table, world, target, [None])
            return
        windows = windows_to_write(context, LIVE_STEP_SECONDS)
        tally = Tally()
        for i, window in enumerate(windows, 1):
            written, size = target.write(world.batches(name, window), window, world.seed, digest)
            tally.add(window, written, size)
            context.log.info(f"[{i}/{len(windows)}] {window}: {written} rows to {target.describe()}")

        def metadata(written: Written) -> dict:
            return provenance_of(written.window, written.rows, written.nbytes, written.seconds, written.windows)

        yield from partition_results(context, tally, metadata, spec_digest=digest)
        yield from _check_results(context, table, world, target, [w.window for w in tally.partitions.values()])

    return _asset


def _nullable(table: CompiledTable) -> dict[str, float]:
    return {c.name: c.spec.null_fraction for c in table.columns.values() if c.spec.null_fraction > 0}


def _check_specs(table: CompiledTable) -> list[dg.AssetCheckSpec]:
    """The table's checks, evaluated in the step that writes it over what it just wrote: the batch of a live run,
    the days of a partition run, the whole table when it is not partitioned."""
    key = asset_key(table.name)
    specs = []
    pk = table.spec.primary_key
    if pk:
        specs.append(
            dg.AssetCheckSpec(
                "primary_key_unique",
                asset=key,
                blocking=True,
                description=f"No two rows of the written window share the primary key ({', '.join(pk)}).",
            )
        )
    if table.foreign_keys():
        specs.append(
            dg.AssetCheckSpec(
                "foreign_keys_resolve",
                asset=key,
                blocking=True,
                additional_deps=sorted({asset_key(fk.table) for _, fk in table.foreign_keys()}, key=str),
                description=(
                    "Every foreign key value of the written window exists in its parent's target. A live batch "
                    "reports orphans as a warning (its parents may be in days never backfilled); a partition run "
                    "or the daily close fails on them."
                ),
            )
        )
    if _nullable(table):
        specs.append(
            dg.AssetCheckSpec(
                "null_ratio",
                asset=key,
                description="Null share per column of the written window within tolerance of its null_percentage.",
            )
        )
    return specs


def _check_results(
    context: dg.AssetExecutionContext,
    table: CompiledTable,
    world: TableWorld,
    target: TableTarget,
    windows: list[Window | None],
) -> Iterator[dg.AssetCheckResult]:
    selected = {k.name for k in context.selected_asset_check_keys}
    scope = check_scope(is_live(context), windows)
    if "primary_key_unique" in selected:
        rows, dupes = duplicate_keys(target, table.spec.primary_key, windows)
        yield dg.AssetCheckResult(
            check_name="primary_key_unique",
            passed=dupes == 0,
            metadata={"rows": rows, "duplicate_keys": dupes, **scope},
        )
    if "foreign_keys_resolve" in selected:
        parents = {fk.table for _, fk in table.foreign_keys()}
        parent_of = {
            p: TableTarget.of(world.catalog[p], world, target.database, target.delta, target.bucket) for p in parents
        }
        checked, missing = orphans(target, parent_of, windows)
        # A stream started without its history references parents that were never written: warn, don't stop it.
        severity = dg.AssetCheckSeverity.WARN if is_live(context) else dg.AssetCheckSeverity.ERROR
        yield dg.AssetCheckResult(
            check_name="foreign_keys_resolve",
            passed=not any(missing.values()),
            severity=severity,
            metadata={"distinct_keys_checked": checked, "orphans": dg.MetadataValue.json(missing), **scope},
        )
    if "null_ratio" in selected:
        rows, report = null_ratios(target, _nullable(table), windows)
        yield dg.AssetCheckResult(
            check_name="null_ratio",
            passed=all(r["ok"] for r in report.values()),
            metadata={"rows": rows, "columns": dg.MetadataValue.json(report), **scope},
        )
