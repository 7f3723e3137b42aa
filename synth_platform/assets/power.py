"""Power world wiring: device_metadata, daily power_usage and its checks (written by streams/power.py)."""

from datetime import timedelta

import dagster as dg
import sqlalchemy as sa

from synth_platform.analytics.live_tables import LiveAnalytics
from synth_platform.assets.common import (
    LIVE_CADENCE_METADATA,
    Stopwatch,
    Tally,
    Written,
    check_scope,
    column_schema,
    daily_partitions,
    is_live,
    markdown_list,
    partition_results,
    provenance,
    windows_to_write,
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
from synth_platform.world.devices import DEVICE_COLUMNS, DEVICE_SCHEMA, devices
from synth_platform.world.power_usage import POWER_USAGE_COLUMNS, POWER_USAGE_SCHEMA, expected_rows, power_usage
from synth_platform.world.windows import Window

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
        metadata={"dagster/column_schema": column_schema(DEVICE_SCHEMA, DEVICE_COLUMNS)},
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
                **{"dagster/table_name": database.qualified_name("device_metadata")},
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
        metadata={
            LIVE_CADENCE_METADATA: step,
            "dagster/column_schema": column_schema(POWER_USAGE_SCHEMA, POWER_USAGE_COLUMNS),
        },
        # Evaluated in the asset's step over what it just wrote (a live batch, or whole days); row_count blocks.
        # Not partitioned: a range run evaluates them once over its days, and each result belongs to the
        # materialization it follows (a partitioned check would be planned per day and left "skipped").
        check_specs=[
            dg.AssetCheckSpec(
                "row_count",
                asset=usage_key,
                blocking=True,
                description="Rows of each written window (a live batch or a day) equal what the spec generates.",
            ),
            dg.AssetCheckSpec(
                "unique_keys",
                asset=usage_key,
                description="No two readings of a written window share (device_id, timestamp).",
            ),
            dg.AssetCheckSpec(
                "known_devices",
                asset=usage_key,
                additional_deps=[device_metadata],
                description="Every device_id written exists in device_metadata.",
            ),
        ],
    )
    def power_usage_asset(context: dg.AssetExecutionContext, database: DatabaseResource):
        windows = windows_to_write(context, step)
        tally = Tally()
        for i, (window, result) in enumerate(write_power_windows(database, spec, seed, windows), 1):
            written = tally.add(window, result.rows, result.bytes)
            if live is not None:  # keep the top-devices views and histogram tables current
                live.written(database, USAGE_TABLE.name, [window])
            context.log.info(f"[{i}/{len(windows)}] {window}: {result.rows} rows ({written.rows} in its partition)")
        table = database.qualified_name("power_usage")

        def metadata(written: Written) -> dict[str, object]:
            first = written.window
            sample = Window(first.start, min(first.end, first.start + timedelta(seconds=step)))
            return provenance(
                seed=seed,
                spec_hash=digest,
                window=written.window,
                rows=written.rows,
                nbytes=written.nbytes,
                seconds=written.seconds,
                target=f"{database.redacted_url} table power_usage",
                preview=power_usage(spec, seed, sample).slice(0, 5),
                windows=dg.MetadataValue.int(len(written.windows)),
                **{"dagster/table_name": table},
            )

        yield from partition_results(context, tally, metadata, spec_digest=digest)
        yield from usage_checks(context, database, [w.window for w in tally.partitions.values()])

    def usage_checks(context: dg.AssetExecutionContext, database: DatabaseResource, written: list[Window]):
        selected = {k.name for k in context.selected_asset_check_keys}
        scope = check_scope(is_live(context), written)
        if "row_count" in selected:
            bad, total = [], 0
            for w in written:
                expected, actual = expected_rows(spec, seed, w), usage_rows(database, w)
                total += actual
                if actual != expected:
                    bad.append(f"{w}: {actual} rows, spec says {expected}")
            yield dg.AssetCheckResult(
                check_name="row_count",
                passed=not bad,
                metadata={"rows": total, **scope, "mismatches": markdown_list(bad)},
            )
        if "unique_keys" in selected:
            dupes = sum(duplicate_keys(database, w) for w in written)
            yield dg.AssetCheckResult(
                check_name="unique_keys", passed=dupes == 0, metadata={"duplicate_keys": dupes, **scope}
            )
        if "known_devices" in selected:
            if sa.inspect(database.engine).has_table("device_metadata"):
                orphans, note = sum(orphan_rows(database, w) for w in written), "checked"
            else:  # never materialized: every reading is an orphan
                orphans, note = sum(usage_rows(database, w) for w in written), "device_metadata does not exist"
            yield dg.AssetCheckResult(
                check_name="known_devices",
                passed=orphans == 0,
                metadata={"orphan_rows": orphans, **scope, "device_table": note},
            )

    return dg.Definitions(assets=[device_metadata, power_usage_asset])
