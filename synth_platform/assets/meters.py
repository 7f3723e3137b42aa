"""Smart-meter wiring: `meter_fleet`, daily `meter_readings` files in the bucket, and their checks (the files are
written and read by streams/meters.py)."""

import dagster as dg
import numpy as np

from synth_platform.assets.common import (
    LIVE_CADENCE_METADATA,
    LIVE_WINDOW_START_TAG,
    Stopwatch,
    daily_partitions,
    markdown_list,
    provenance,
    run_window,
    windows_to_write,
    written_days,
)
from synth_platform.execution import heavy_step_tags
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.files import BucketResource
from synth_platform.specs import PlatformSpec
from synth_platform.specs.loader import spec_hash
from synth_platform.specs.meters import MetersSpec
from synth_platform.streams.meters import (
    READINGS,
    fleet_id_counts,
    manifest_problems,
    power_agreement,
    row_count_problems,
    write_fleet,
    write_readings_window,
)
from synth_platform.world.late_slices import arrives_with, delay_slices, delivered_with
from synth_platform.world.meter_ids import id_numbers
from synth_platform.world.meters import fleet, readings, to_table
from synth_platform.world.windows import Window

GROUP = "meters"
KINDS = {"gcs", "file"}


def build(platform: PlatformSpec) -> dg.Definitions:
    spec: MetersSpec = platform.get("meters")
    seed = platform.world.seed
    digest = spec_hash(spec, seed)
    partitions = daily_partitions(platform.world)
    slice_s = spec.live_slice_seconds

    def fleet_ids() -> np.ndarray:
        return id_numbers(seed, spec.fleet.count, spec.fleet.id_format)

    @dg.asset(
        group_name=GROUP,
        kinds=KINDS,
        description="The smart-meter fleet: meter id, and the power-world device, customer and region it measures.",
    )
    def meter_fleet(context: dg.AssetExecutionContext, bucket: BucketResource) -> dg.MaterializeResult:
        clock = Stopwatch()
        ids = fleet_ids()
        result = write_fleet(bucket, spec, seed, ids, digest)
        context.log.info(f"wrote {result.rows} meters in {len(result.files)} files to {bucket.uri(result.prefix)}")
        preview = fleet(spec, seed, np.arange(min(5, spec.fleet.count)), ids[:5])
        return dg.MaterializeResult(
            metadata=provenance(
                seed=seed,
                spec_hash=digest,
                window=None,
                rows=result.rows,
                nbytes=result.bytes,
                seconds=clock.seconds,
                target=bucket.uri(result.prefix),
                preview=preview,
                files=dg.MetadataValue.int(len(result.files)),
            )
        )

    def live_delivery(context: dg.AssetExecutionContext, live: Window) -> tuple[list[Window], dict]:
        """The slices a live run writes (late ones due now, then its own window unless that is late), logged."""
        delivered = delivered_with(spec, seed, live)
        held = "none"
        if live not in delivered:
            held, due = str(live), arrives_with(spec, seed, live)
            context.log.info(
                f"slice {live} held back: late by {delay_slices(spec, seed, live)} slices, arrives with "
                + (f"slice {due}" if due is not None else "the daily close (due after the day's last slice)")
            )
        late = [str(w) for w in delivered if w != live]
        for w in late:
            context.log.info(f"delivering late slice {w} (due with this window)")
        return delivered, {"late_held": dg.MetadataValue.text(held), "late_delivered": markdown_list(late)}

    @dg.asset(
        group_name=GROUP,
        kinds=KINDS,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
        deps=[meter_fleet],
        description="Readings of every meter every interval, as daily part files under dt=YYYY-MM-DD/ with a "
        "_manifest.json written last; live windows go to slice=HHMMSS-HHMMSS/ folders of the day (a late slice "
        "with a later window).",
        metadata={LIVE_CADENCE_METADATA: slice_s},
        op_tags=heavy_step_tags(),
    )
    def meter_readings(context: dg.AssetExecutionContext, bucket: BucketResource) -> dg.MaterializeResult:
        clock = Stopwatch()
        windows = windows_to_write(context, slice_s)
        live, late_meta = None, {}
        if LIVE_WINDOW_START_TAG in context.run.tags:  # lateness is a live-delivery fault; partition runs are on time
            live = windows[0]
            windows, late_meta = live_delivery(context, live)
        ids = fleet_ids()
        rows = nbytes = files = 0
        prefixes = []
        for i, window in enumerate(windows, 1):
            arrived_with = live if live is not None and window != live else None
            result = write_readings_window(bucket, spec, seed, ids, window, digest, arrived_with)
            if result is None:
                context.log.info(f"[{i}/{len(windows)}] {window}: held by a written day or window; skipped")
                continue
            rows, nbytes, files = rows + result.rows, nbytes + result.bytes, files + len(result.files)
            prefixes.append(bucket.uri(result.prefix))
            context.log.info(
                f"[{i}/{len(windows)}] {window}: {result.rows:,} readings in {len(result.files)} files "
                f"({result.bytes / 1e6:,.1f} MB), {rows / clock.seconds:,.0f} rows/s so far"
            )
        preview = None
        if windows:
            first = readings(spec, seed, np.arange(1), ids[:1], windows[0])
            preview = to_table(first, spec.fleet.id_format, spec.output.record).slice(0, 5)
        return dg.MaterializeResult(
            metadata=provenance(
                seed=seed,
                spec_hash=digest,
                window=run_window(context),
                rows=rows,
                nbytes=nbytes,
                seconds=clock.seconds,
                target=bucket.uri(READINGS + "/"),
                preview=preview,
                files=dg.MetadataValue.int(files),
                windows=dg.MetadataValue.int(len(windows)),
                prefixes=markdown_list(prefixes),
                **late_meta,
            )
        )

    @dg.asset_check(
        asset=meter_readings,
        blocking=True,
        partitions_def=partitions,
        description="Every manifest's files exist with its sizes and CRC32C; no object is left outside a manifest "
        "(a failed or stale write).",
    )
    def manifest_matches_objects(context: dg.AssetCheckExecutionContext, bucket: BucketResource):
        problems, checked = manifest_problems(bucket, [day for day, _ in written_days(context, slice_s)])
        return dg.AssetCheckResult(
            passed=not problems, metadata={"files_checked": checked, "problems": markdown_list(problems)}
        )

    @dg.asset_check(
        asset=meter_readings,
        blocking=True,
        partitions_def=partitions,
        description="Rows in each manifest equal what the spec generates for its window, and the manifests cover "
        "the written part of each day.",
    )
    def row_count(context: dg.AssetCheckExecutionContext, bucket: BucketResource):
        problems, total = row_count_problems(bucket, spec, seed, written_days(context, slice_s))
        return dg.AssetCheckResult(passed=not problems, metadata={"rows": total, "problems": markdown_list(problems)})

    @dg.asset_check(
        asset=meter_readings,
        name="power_agreement",
        partitions_def=partitions,
        description="On a sample of meters, each meter-hour's energy equals the power world's kWh for that "
        "device-hour (within 0.01 kWh).",
    )
    def power_agreement_check(
        context: dg.AssetCheckExecutionContext, bucket: BucketResource, database: DatabaseResource
    ):
        days = [day for day, _ in written_days(context, slice_s)]
        found = power_agreement(platform, spec, bucket, database, fleet_ids(), days)
        return dg.AssetCheckResult(
            passed=not found.problems,
            metadata={
                "meter_hours_compared": found.compared,
                "max_abs_diff_kwh": dg.MetadataValue.float(round(found.worst, 6)),
                "source": ", ".join(sorted(found.sources)) or "none",
                "problems": markdown_list(found.problems),
            },
        )

    @dg.asset_check(asset=meter_fleet, blocking=True, description="Meter ids are unique and the fleet is complete.")
    def ids_unique(bucket: BucketResource):
        counts = fleet_id_counts(bucket)
        if counts is None:
            return dg.AssetCheckResult(passed=False, metadata={"problem": "no fleet manifest"})
        meters, distinct = counts
        return dg.AssetCheckResult(
            passed=distinct == meters == spec.fleet.count,
            metadata={"meters": meters, "distinct_ids": distinct, "expected": spec.fleet.count},
        )

    return dg.Definitions(
        assets=[meter_fleet, meter_readings],
        asset_checks=[manifest_matches_objects, row_count, power_agreement_check, ids_unique],
    )
