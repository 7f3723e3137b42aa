"""Power world wiring: device_metadata, daily power_usage and its checks (written by streams/power.py)."""

import dagster as dg

from synth_platform.analytics.live_tables import LiveAnalytics
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
from synth_platform.sinks.database import DatabaseResource
from synth_platform.specs import PlatformSpec
from synth_platform.specs.loader import spec_hash
from synth_platform.specs.power import PowerSpec
from synth_platform.streams.power import (
    USAGE_TABLE,
    duplicate_keys,
    orphan_rows,
    usage_rows,
    write_devices,
    write_power_windows,
)
from synth_platform.world.devices import devices
from synth_platform.world.power_usage import expected_rows, power_usage

GROUP = "power"


def build(platform: PlatformSpec, database_kind: str) -> dg.Definitions:
    spec: PowerSpec = platform.get("power")
    seed = platform.world.seed
    digest = spec_hash(spec, seed)
    partitions = daily_partitions(platform.world)
    step = spec.usage.interval_seconds
    usage_key = dg.AssetKey("power_usage")
    live = LiveAnalytics.for_platform(platform)

    @dg.asset(
        group_name=GROUP,
        kinds={database_kind},
        description="The device fleet: customer, location, building type and region per device.",
    )
    def device_metadata(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
        clock = Stopwatch()
        data = devices(spec, seed)
        result = write_devices(database, data)
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
            )
        )

    @dg.asset(
        group_name=GROUP,
        kinds={database_kind},
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[device_metadata],
        description="Power readings per device and interval from the load profile; one transaction per day.",
        name="power_usage",
        metadata={LIVE_CADENCE_METADATA: step},
    )
    def power_usage_asset(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
        clock = Stopwatch()
        windows = windows_to_write(context, step)
        rows = nbytes = 0
        for i, (window, result) in enumerate(write_power_windows(database, spec, seed, windows), 1):
            rows, nbytes = rows + result.rows, nbytes + result.bytes
            if live is not None:  # keep the top-devices views and histogram tables current
                live.written(database, USAGE_TABLE.name, [window])
            context.log.info(
                f"[{i}/{len(windows)}] {window}: {result.rows} rows, {rows / clock.seconds:,.0f} rows/s so far"
            )
        preview = power_usage(spec, seed, windows[-1]).slice(0, 5) if windows else None
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
            )
        )

    @dg.asset_check(
        asset=usage_key,
        partitions_def=partitions,
        blocking=True,
        description="Rows per checked day equal what the spec generates for it.",
    )
    def row_count(context: dg.AssetCheckExecutionContext, database: DatabaseResource):
        bad, total = [], 0
        for _, w in written_days(context, step):
            expected, actual = expected_rows(spec, seed, w), usage_rows(database, w)
            total += actual
            if actual != expected:
                bad.append(f"{w.partition_key()}: {actual} rows, spec says {expected}")
        return dg.AssetCheckResult(passed=not bad, metadata={"rows": total, "mismatches": markdown_list(bad)})

    @dg.asset_check(
        asset=usage_key, partitions_def=partitions, description="No two readings share (device_id, timestamp)."
    )
    def unique_keys(context: dg.AssetCheckExecutionContext, database: DatabaseResource):
        dupes = duplicate_keys(database, run_window(context))
        return dg.AssetCheckResult(passed=dupes == 0, metadata={"duplicate_keys": dupes})

    @dg.asset_check(
        asset=usage_key,
        partitions_def=partitions,
        additional_deps=[device_metadata],
        description="Every device_id in power_usage exists in device_metadata.",
    )
    def known_devices(context: dg.AssetCheckExecutionContext, database: DatabaseResource):
        orphans = orphan_rows(database, run_window(context))
        return dg.AssetCheckResult(passed=orphans == 0, metadata={"orphan_rows": orphans})

    return dg.Definitions(
        assets=[device_metadata, power_usage_asset],
        asset_checks=[row_count, unique_keys, known_devices],
    )
