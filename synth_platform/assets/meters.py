"""Smart-meter wiring: `meter_fleet`, daily `meter_readings` files in the bucket, and their checks (the files are
written and read by streams/meters.py)."""

from collections.abc import Callable

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
from synth_platform.sinks.prefix_writer import PrefixResult
from synth_platform.specs import PlatformSpec
from synth_platform.specs.loader import spec_hash
from synth_platform.specs.meters import MetersSpec
from synth_platform.streams.meters import (
    FLEET,
    READINGS,
    commit_readings_shards,
    fleet_id_counts,
    manifest_problems,
    power_agreement,
    row_count_problems,
    shard_meters,
    write_fleet,
    write_readings_shard,
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

    def sharded_readings(attributes: dict, write_windows: Callable) -> dg.AssetsDefinition:
        """meter_readings as day_shards shard steps (each writes its part files of the run's windows) and one
        manifest step after them, so a big day spreads over workers; the files are those of the one-step asset."""

        def shard_op(shard: int) -> dg.OpDefinition:
            meters = shard_meters(spec)[shard]

            @dg.op(
                name=f"shard_{shard}",
                ins={"fleet": dg.In(dg.Nothing)},
                out=dg.Out(dg.Nothing),
                tags=heavy_step_tags(),
                description=f"Part files of meters {meters.start:,} to {meters.stop - 1:,} for each window of the run.",
            )
            def write_shard(context: dg.OpExecutionContext, bucket: BucketResource) -> None:
                ids = fleet_ids()
                for window in run_windows(context)[0]:
                    files = write_readings_shard(bucket, spec, seed, ids, window, digest, shard)
                    written = "held by a written day or window; skipped" if files is None else f"{len(files)} files"
                    context.log.info(f"{window}, meters {meters.start:,}..{meters.stop - 1:,}: {written}")

            return write_shard

        @dg.op(
            name="manifest",
            ins={f"shard_{i}": dg.In(dg.Nothing) for i in range(spec.day_shards)},
            out=dg.Out(dg.Nothing),
            description="After every shard: each window's manifest, listing the shards' files in order.",
        )
        def write_manifests(context: dg.OpExecutionContext, bucket: BucketResource) -> None:
            metadata = write_windows(
                context, bucket, lambda w, late: commit_readings_shards(bucket, spec, seed, w, digest, late)
            )
            context.add_output_metadata(metadata)

        @dg.graph_asset(name=READINGS, ins={"fleet": dg.AssetIn(FLEET, dagster_type=dg.Nothing)}, **attributes)
        def meter_readings(fleet):
            shards = [shard_op(i)(fleet) for i in range(spec.day_shards)]
            return write_manifests(**{f"shard_{i}": done for i, done in enumerate(shards)})

        return meter_readings

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

    def run_windows(context: dg.OpExecutionContext) -> tuple[list[Window], Window | None, dict]:
        """The windows a run writes, the live window if it is a live run, and its late-delivery metadata."""
        windows = windows_to_write(context, slice_s)
        if LIVE_WINDOW_START_TAG not in context.run.tags:  # lateness is a live-delivery fault; partitions are on time
            return windows, None, {}
        delivered, late_meta = live_delivery(context, windows[0])
        return delivered, windows[0], late_meta

    def write_windows(
        context: dg.OpExecutionContext,
        bucket: BucketResource,
        write: Callable[[Window, Window | None], PrefixResult | None],
    ) -> dict:
        """Write (or, sharded, commit) each window of the run with `write(window, arrived_with)`; the
        materialization's metadata."""
        clock = Stopwatch()
        windows, live, late_meta = run_windows(context)
        rows = nbytes = files = 0
        prefixes = []
        for i, window in enumerate(windows, 1):
            result = write(window, live if live is not None and window != live else None)
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
            # the first meter's id without the whole fleet's: the first ids of a fleet do not depend on its size
            first = readings(spec, seed, np.arange(1), id_numbers(seed, 1, spec.fleet.id_format), windows[0])
            preview = to_table(first, spec.fleet.id_format, spec.output.record).slice(0, 5)
        return provenance(
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

    readings_attributes = {
        "group_name": GROUP,
        "kinds": KINDS,
        "partitions_def": partitions,
        "backfill_policy": dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
        "metadata": {LIVE_CADENCE_METADATA: slice_s},
        "description": "Readings of every meter every interval, as daily part files under dt=YYYY-MM-DD/ with a "
        "_manifest.json written last; live windows go to slice=HHMMSS-HHMMSS/ folders of the day (a late slice "
        "with a later window).",
    }

    if spec.day_shards == 1:

        @dg.asset(**readings_attributes, deps=[meter_fleet], op_tags=heavy_step_tags())
        def meter_readings(context: dg.AssetExecutionContext, bucket: BucketResource) -> dg.MaterializeResult:
            ids = fleet_ids()
            metadata = write_windows(
                context, bucket, lambda w, late: write_readings_window(bucket, spec, seed, ids, w, digest, late)
            )
            return dg.MaterializeResult(metadata=metadata)

    else:
        meter_readings = sharded_readings(readings_attributes, write_windows)

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
