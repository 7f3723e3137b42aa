"""device_telemetry wiring: the declared sensor features of the power-world devices, daily and live (written by
streams/sensors.py), its row-count check, and the analytics rollups refreshed after each window."""

from collections.abc import Iterator

import dagster as dg

from synth_platform.analytics.live_tables import LiveAnalytics
from synth_platform.assets.common import (
    LIVE_CADENCE_METADATA,
    LIVE_WINDOW_START_TAG,
    Stopwatch,
    column_schema,
    daily_partitions,
    event_lag,
    markdown_list,
    provenance,
    run_window,
    uri_metadata,
    windows_to_write,
)
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.tinybird import Delivery, TinybirdResource
from synth_platform.specs import PlatformSpec
from synth_platform.specs.loader import spec_hash
from synth_platform.specs.sensors import STREAM, SensorsSpec
from synth_platform.streams.sensors import READINGS_DATASOURCE, rows_in, write_sensor_windows
from synth_platform.world.sensors import expected_rows, sensor_readings, sensors_columns, sensors_schema
from synth_platform.world.windows import Window

GROUP = "sensors"


def build(platform: PlatformSpec, database_kind: str) -> dg.Definitions:
    spec: SensorsSpec = platform.get("sensors")
    seed = platform.world.seed
    digest = spec_hash(spec, seed)
    analytics = LiveAnalytics.for_platform(platform)
    features = ", ".join(f"`{n}`{f' ({f.unit})' if f.unit else ''}" for n, f in spec.features.items())
    tinybird_note = ", and Tinybird's device_readings (one row per feature)" if spec.tinybird else ""

    # A multi-asset so a run may leave the check out (live windows do; the daily close runs it).
    @dg.multi_asset(
        name=STREAM,
        specs=[
            dg.AssetSpec(
                STREAM,
                group_name=GROUP,
                kinds={database_kind, "tinybird"} if spec.tinybird else {database_kind},
                deps=[dg.AssetKey("device_metadata")] if platform.get("power") is not None else [],
                metadata={
                    LIVE_CADENCE_METADATA: spec.live_window_seconds,
                    "dagster/column_schema": column_schema(sensors_schema(spec), sensors_columns(spec)),
                },
                description=f"Sensor readings of every device each {spec.interval_seconds}s: {features}; one "
                f"transaction per window{tinybird_note}.",
            )
        ],
        check_specs=[
            dg.AssetCheckSpec(
                "row_count",
                asset=STREAM,
                blocking=True,
                description="Rows of each written window equal what the spec generates.",
            )
        ],
        can_subset=True,
        partitions_def=daily_partitions(platform.world),
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def device_telemetry(
        context: dg.AssetExecutionContext, database: DatabaseResource, tinybird: TinybirdResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        clock = Stopwatch()
        windows = windows_to_write(context, spec.live_window_seconds)
        live = LIVE_WINDOW_START_TAG in context.run.tags
        rows = nbytes = 0
        delivered = Delivery()
        writes = write_sensor_windows(database, tinybird if spec.tinybird else None, spec, seed, windows, live)
        for i, (window, data, written, sent) in enumerate(writes, 1):
            rows, nbytes = rows + data.num_rows, nbytes + written
            delivered += sent or Delivery()
            if analytics is not None:  # keep the top-devices views and histogram tables current
                analytics.written(database, STREAM, [window])
            context.log.info(f"[{i}/{len(windows)}] {window}: {data.num_rows} rows")
        extra = {"windows": dg.MetadataValue.int(len(windows)), **(event_lag(context, windows[-1]) if windows else {})}
        if spec.tinybird:
            extra["tinybird_rows"] = dg.MetadataValue.int(delivered.rows)
            extra["tinybird_quarantined_rows"] = dg.MetadataValue.int(delivered.quarantined_rows)
            extra["tinybird_target"] = dg.MetadataValue.text(tinybird.target(READINGS_DATASOURCE))
            extra.update(uri_metadata(tinybird.public_uri(READINGS_DATASOURCE)))
        yield dg.MaterializeResult(
            asset_key=STREAM,
            metadata=provenance(
                seed=seed,
                spec_hash=digest,
                window=run_window(context),
                rows=rows,
                nbytes=nbytes,
                seconds=clock.seconds,
                target=f"{database.redacted_url} table {STREAM}",
                preview=sensor_readings(spec, seed, windows[-1]).slice(0, 5) if windows else None,
                **extra,
            ),
        )
        if context.selected_asset_check_keys:
            yield _row_count(database, spec, seed, windows)

    return dg.Definitions(assets=[device_telemetry])


def _row_count(db: DatabaseResource, spec: SensorsSpec, seed: int, windows: list[Window]) -> dg.AssetCheckResult:
    """The rows of each window just written equal what the spec generates for it. It runs in the writing step: a
    separate step would look at the open day later, when more windows have closed than were written."""
    bad, total = [], 0
    for w in windows:
        actual, expected = rows_in(db, spec, w), expected_rows(spec, seed, w)
        total += actual
        if actual != expected:
            bad.append(f"{w}: {actual} rows, spec says {expected}")
    return dg.AssetCheckResult(
        check_name="row_count", passed=not bad, metadata={"rows": total, "mismatches": markdown_list(bad)}
    )
