"""Power world wiring: device_metadata, daily power_usage and its checks (retention: automation/retention.py)."""

from collections.abc import Iterator

import dagster as dg
import sqlalchemy as sa

from synth_platform.assets.common import (
    LIVE_CADENCE_METADATA,
    Stopwatch,
    daily_partitions,
    markdown_list,
    provenance,
    run_window,
    windows_to_write,
    written_days,
)
from synth_platform.pipelining import prefetched
from synth_platform.sinks.database import DatabaseResource, WriteResult
from synth_platform.sinks.sql_schema import sql_table
from synth_platform.specs import PlatformSpec
from synth_platform.specs.loader import spec_hash
from synth_platform.specs.power import PowerSpec
from synth_platform.world.devices import DEVICE_SCHEMA, devices
from synth_platform.world.power_usage import POWER_USAGE_SCHEMA, expected_rows, power_usage
from synth_platform.world.windows import Window

_metadata = sa.MetaData()
DEVICE_TABLE = sql_table("device_metadata", DEVICE_SCHEMA, primary_key=["device_id"], metadata=_metadata)
USAGE_TABLE = sql_table(
    "power_usage", POWER_USAGE_SCHEMA, primary_key=["device_id", "timestamp"], indexes=[["timestamp"]],
    metadata=_metadata,
)  # fmt: skip


def database_kind(url: str) -> str:
    backend = sa.make_url(url).get_backend_name()
    return {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}.get(backend, backend)


def write_power_windows(
    db: DatabaseResource, spec: PowerSpec, seed: int, windows: list[Window]
) -> Iterator[tuple[Window, WriteResult]]:
    """Replace each window of power_usage in its own transaction, generating the next while writing."""
    db.ensure_table(USAGE_TABLE)
    for window, data in prefetched(lambda w: power_usage(spec, seed, w), windows):
        yield window, db.replace_window(USAGE_TABLE, data, "timestamp", window)


def build(platform: PlatformSpec, database_url: str) -> dg.Definitions:
    spec: PowerSpec = platform.get("power")
    seed = platform.world.seed
    digest = spec_hash(spec, seed)
    partitions = daily_partitions(platform.world)
    kinds = {database_kind(database_url)}

    @dg.asset(
        group_name="power",
        kinds=kinds,
        description="The device fleet: customer, location, building type and region per device.",
    )
    def device_metadata(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
        clock = Stopwatch()
        data = devices(spec, seed)
        database.ensure_table(DEVICE_TABLE)
        result = database.replace(DEVICE_TABLE, data)
        context.log.info(f"wrote {result.rows} devices to {database.redacted_url}")
        return dg.MaterializeResult(
            metadata=provenance(
                seed=seed,
                spec_hash=digest,
                window=None,
                rows=result.rows,
                nbytes=result.bytes,
                seconds=clock.seconds,
                target=f"{database.redacted_url} table device_metadata",
                preview=data,
            )  # fmt: skip
        )

    @dg.asset(
        group_name="power",
        kinds=kinds,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[device_metadata],
        description="Power readings per device and interval from the load profile; one transaction per day.",
        name="power_usage",
        metadata={LIVE_CADENCE_METADATA: spec.usage.interval_seconds},
    )
    def power_usage_asset(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
        clock = Stopwatch()
        windows = windows_to_write(context, spec.usage.interval_seconds)
        rows = nbytes = 0
        for i, (window, result) in enumerate(write_power_windows(database, spec, seed, windows), 1):
            rows, nbytes = rows + result.rows, nbytes + result.bytes
            context.log.info(
                f"[{i}/{len(windows)}] {window}: {result.rows} rows, {rows / clock.seconds:,.0f} rows/s so far"
            )
        last = windows[-1] if windows else None
        preview = power_usage(spec, seed, last).slice(0, 5) if last else None
        return dg.MaterializeResult(
            metadata=provenance(
                seed=seed,
                spec_hash=digest,
                window=run_window(context),
                rows=rows,
                nbytes=nbytes,
                seconds=clock.seconds,
                target=f"{database.redacted_url} table power_usage",
                preview=preview,
                windows=dg.MetadataValue.int(len(windows)),
            )  # fmt: skip
        )

    @dg.asset_check(asset=dg.AssetKey("power_usage"), partitions_def=partitions, blocking=True,
                    description="Rows per checked day equal what the spec generates for it.")  # fmt: skip
    def row_count(context: dg.AssetCheckExecutionContext, database: DatabaseResource):
        bad, total = [], 0
        for _, w in written_days(context, spec.usage.interval_seconds):
            expected = expected_rows(spec, seed, w)
            actual = _count(database, w)
            total += actual
            if actual != expected:
                bad.append(f"{w.partition_key()}: {actual} rows, spec says {expected}")
        return dg.AssetCheckResult(
            passed=not bad,
            metadata={"rows": total, "mismatches": markdown_list(bad)},
        )

    @dg.asset_check(asset=dg.AssetKey("power_usage"), partitions_def=partitions,
                    description="No two readings share (device_id, timestamp).")  # fmt: skip
    def unique_keys(context: dg.AssetCheckExecutionContext, database: DatabaseResource):
        w = run_window(context)
        dupes = database.scalar(
            "SELECT COUNT(*) FROM (SELECT device_id, timestamp FROM power_usage "
            "WHERE timestamp >= :start AND timestamp < :end GROUP BY device_id, timestamp HAVING COUNT(*) > 1) d",
            {"start": w.start, "end": w.end},
        )
        return dg.AssetCheckResult(passed=dupes == 0, metadata={"duplicate_keys": int(dupes)})

    @dg.asset_check(asset=dg.AssetKey("power_usage"), partitions_def=partitions, additional_deps=[device_metadata],
                    description="Every device_id in power_usage exists in device_metadata.")  # fmt: skip
    def known_devices(context: dg.AssetCheckExecutionContext, database: DatabaseResource):
        w = run_window(context)
        orphans = database.scalar(
            "SELECT COUNT(*) FROM power_usage p LEFT JOIN device_metadata d ON d.device_id = p.device_id "
            "WHERE p.timestamp >= :start AND p.timestamp < :end AND d.device_id IS NULL",
            {"start": w.start, "end": w.end},
        )
        return dg.AssetCheckResult(passed=orphans == 0, metadata={"orphan_rows": int(orphans)})

    return dg.Definitions(
        assets=[device_metadata, power_usage_asset],
        asset_checks=[row_count, unique_keys, known_devices],
    )


def _count(database: DatabaseResource, w: Window) -> int:
    return int(
        database.scalar(
            "SELECT COUNT(*) FROM power_usage WHERE timestamp >= :start AND timestamp < :end",
            {"start": w.start, "end": w.end},
        )
    )
