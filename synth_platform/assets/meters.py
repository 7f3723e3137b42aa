"""Smart-meter wiring: `meter_fleet`, daily `meter_readings` files in the bucket, and their checks (the files are
written and read by streams/meters.py)."""

from collections.abc import Callable, Iterator

import dagster as dg
import numpy as np
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
    markdown_list,
    partition_results,
    provenance,
    windows_to_write,
)
from synth_platform.execution import heavy_step_tags
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.files import BUCKET_KIND, BucketResource
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
from synth_platform.world.meters import FLEET_COLUMNS, READING_COLUMNS, fleet, reading_schema, readings, to_table
from synth_platform.world.windows import Window

GROUP = "meters"
# "bucket" stands for the store SYNTH_BUCKET_URL names; the definitions show it as gcs, s3 or file.
KINDS = {BUCKET_KIND}


def build(platform: PlatformSpec) -> dg.Definitions:
    spec: MetersSpec = platform.get("meters")
    seed = platform.world.seed
    digest = spec_hash(spec, seed)
    partitions = daily_partitions(platform.world)
    slice_s = spec.live_slice_seconds

    def fleet_ids() -> np.ndarray:
        return id_numbers(seed, spec.fleet.count, spec.fleet.id_format)

    def fleet_sample() -> pa.Table:
        """One meter of the fleet (its columns, as the files hold them)."""
        return fleet(spec, seed, np.arange(1), id_numbers(seed, 1, spec.fleet.id_format))

    fleet_key, readings_key = dg.AssetKey(FLEET), dg.AssetKey(READINGS)

    @dg.asset(
        group_name=GROUP,
        kinds=KINDS,
        description="The smart-meter fleet: meter id, and the power-world device, customer and region it measures.",
        metadata={"dagster/column_schema": column_schema(fleet_sample().schema, FLEET_COLUMNS)},
        check_specs=[
            dg.AssetCheckSpec(
                "ids_unique",
                asset=fleet_key,
                blocking=True,
                description="Meter ids are unique and the fleet is complete (evaluated in the step that writes it).",
            )
        ],
    )
    def meter_fleet(context: dg.AssetExecutionContext, bucket: BucketResource):
        clock = Stopwatch()
        ids = fleet_ids()
        result = write_fleet(bucket, spec, seed, ids, digest)
        context.log.info(f"wrote {result.rows} meters in {len(result.files)} files to {bucket.uri(result.prefix)}")
        preview = fleet(spec, seed, np.arange(min(5, spec.fleet.count)), ids[:5])
        yield dg.MaterializeResult(
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
        yield ids_unique(bucket)

    def ids_unique(bucket: BucketResource) -> dg.AssetCheckResult:
        counts = fleet_id_counts(bucket)
        if counts is None:
            return dg.AssetCheckResult(check_name="ids_unique", passed=False, metadata={"problem": "no fleet manifest"})
        meters, distinct = counts
        return dg.AssetCheckResult(
            check_name="ids_unique",
            passed=distinct == meters == spec.fleet.count,
            metadata={
                "meters": meters,
                "distinct_ids": distinct,
                "expected": spec.fleet.count,
                **check_scope(False, [None]),
            },
        )

    # Evaluated in the step that writes meter_readings (the manifest step when sharded), over the windows it wrote.
    reading_checks = [
        dg.AssetCheckSpec(
            "manifest_matches_objects",
            asset=readings_key,
            blocking=True,
            description="Under each written day (or live slice) every manifest's files exist with its sizes and "
            "CRC32C; no object is left outside a manifest (a failed or stale write).",
        ),
        dg.AssetCheckSpec(
            "row_count",
            asset=readings_key,
            blocking=True,
            description="Rows in each manifest of a written day (or live slice) equal what the spec generates for "
            "its window, and the manifests cover the written window without gaps.",
        ),
        dg.AssetCheckSpec(
            "power_agreement",
            asset=readings_key,
            description="On a sample of meters, each meter-hour's energy equals the power world's kWh for that "
            "device-hour (within 0.01 kWh). A partition run compares its whole days; a live run the hours of the "
            "slices it wrote, read together with the day's earlier slices of those hours, so only hours complete "
            "in the files count.",
        ),
    ]

    def check_readings(
        context: dg.AssetExecutionContext | dg.OpExecutionContext,
        bucket: BucketResource,
        database: DatabaseResource,
        tally: Tally,
        ids: np.ndarray,
    ) -> Iterator[dg.AssetCheckResult]:
        """The selected reading checks over the windows the step just wrote: live slices, or days (`ids`: the
        fleet's meter ids, which the writing step has already drawn)."""
        selected = {k.name for k in context.selected_asset_check_keys}
        windows = [w for written in tally.partitions.values() for w in written.windows]
        scope = check_scope(is_live(context), windows)
        if "manifest_matches_objects" in selected:
            problems, checked = manifest_problems(bucket, windows)
            yield dg.AssetCheckResult(
                asset_key=readings_key,
                check_name="manifest_matches_objects",
                passed=not problems,
                metadata={"files_checked": checked, **scope, "problems": markdown_list(problems)},
            )
        if "row_count" in selected:
            problems, total = row_count_problems(bucket, spec, seed, windows)
            yield dg.AssetCheckResult(
                asset_key=readings_key,
                check_name="row_count",
                passed=not problems,
                metadata={"rows": total, **scope, "problems": markdown_list(problems)},
            )
        if "power_agreement" in selected:
            found = power_agreement(platform, spec, bucket, database, ids, windows)
            yield dg.AssetCheckResult(
                asset_key=readings_key,
                check_name="power_agreement",
                passed=not found.problems,
                metadata={
                    "meter_hours_compared": found.compared,
                    "max_abs_diff_kwh": dg.MetadataValue.float(round(found.worst, 6)),
                    "source": ", ".join(sorted(found.sources)) or "none",
                    **scope,
                    "problems": markdown_list(found.problems),
                },
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
                for window, _ in run_windows(context)[0]:
                    files = write_readings_shard(bucket, spec, seed, ids, window, digest, shard)
                    written = "held by a written day or window; skipped" if files is None else f"{len(files)} files"
                    context.log.info(f"{window}, meters {meters.start:,}..{meters.stop - 1:,}: {written}")

            return write_shard

        check_outs = [c.get_python_identifier() for c in reading_checks]

        @dg.op(
            name="manifest",
            ins={f"shard_{i}": dg.In(dg.Nothing) for i in range(spec.day_shards)},
            out={"result": dg.Out(dg.Nothing), **{o: dg.Out(dg.Nothing, is_required=False) for o in check_outs}},
            description="After every shard: each window's manifest, listing the shards' files in order; then the "
            "reading checks over the windows written.",
        )
        def write_manifests(context: dg.OpExecutionContext, bucket: BucketResource, database: DatabaseResource):
            tally, metadata, late_meta = write_windows(
                context, bucket, lambda w, late: commit_readings_shards(bucket, spec, seed, w, digest, late)
            )
            # the op's output is the asset's result: a run's result (range totals on a range) becomes its Output
            for event in partition_results(context, tally, metadata, readings_key, late_meta, spec_digest=digest):
                is_result = isinstance(event, dg.MaterializeResult)
                yield dg.Output(None, "result", metadata=event.metadata) if is_result else event
            yield from check_readings(context, bucket, database, tally, fleet_ids())

        @dg.graph_asset(
            name=READINGS,
            ins={"fleet": dg.AssetIn(FLEET, dagster_type=dg.Nothing)},
            check_specs=reading_checks,
            **attributes,
        )
        def meter_readings(fleet):
            shards = [shard_op(i)(fleet) for i in range(spec.day_shards)]
            result, *checks = write_manifests(**{f"shard_{i}": done for i, done in enumerate(shards)})
            return {"result": result, **dict(zip(check_outs, checks, strict=True))}

        return meter_readings

    def live_delivery(context: dg.AssetExecutionContext, batch: list[Window]) -> tuple[list[tuple], dict]:
        """(slice, live window it arrives with) for each window of a live batch: the late slices due with it, then
        the window itself unless it is late; logged, and named in the metadata."""
        plan, held, late = [], [], []
        for live in batch:
            delivered = delivered_with(spec, seed, live)
            if live not in delivered:
                held.append(str(live))
                due = arrives_with(spec, seed, live)
                context.log.info(
                    f"slice {live} held back: late by {delay_slices(spec, seed, live)} slices, arrives with "
                    + (f"slice {due}" if due is not None else "the daily close (due after the day's last slice)")
                )
            for w in delivered:
                if w != live:
                    late.append(str(w))
                    context.log.info(f"delivering late slice {w} (due with window {live})")
                plan.append((w, live if w != live else None))
        meta = {"late_held": dg.MetadataValue.text("\n".join(held) or "none"), "late_delivered": markdown_list(late)}
        return plan, meta

    def run_windows(context: dg.OpExecutionContext) -> tuple[list[tuple[Window, Window | None]], dict]:
        """(window, live window it arrives with) for each window a run writes, and its late-delivery metadata."""
        windows = windows_to_write(context, slice_s)
        if not is_live(context):  # lateness is a live-delivery fault; partitions are on time
            return [(w, None) for w in windows], {}
        return live_delivery(context, windows)

    def write_windows(
        context: dg.OpExecutionContext,
        bucket: BucketResource,
        write: Callable[[Window, Window | None], PrefixResult | None],
    ) -> tuple[Tally, Callable[[Written], dict], dict]:
        """Write (or, sharded, commit) each window of the run with `write(window, arrived_with)`; returns what was
        written per partition, the metadata of a partition, and the run's late-delivery metadata."""
        plan, late_meta = run_windows(context)
        tally = Tally()
        files: dict[str, int] = {}
        prefixes: dict[str, list[str]] = {}
        for i, (window, arrived_with) in enumerate(plan, 1):
            result = write(window, arrived_with)
            if result is None:
                context.log.info(f"[{i}/{len(plan)}] {window}: held by a written day or window; skipped")
                continue
            written = tally.add(window, result.rows, result.bytes)
            day = window.partition_key()
            files[day] = files.get(day, 0) + len(result.files)
            prefixes.setdefault(day, []).append(bucket.uri(result.prefix))
            context.log.info(
                f"[{i}/{len(plan)}] {window}: {result.rows:,} readings in {len(result.files)} files "
                f"({result.bytes / 1e6:,.1f} MB), {written.rows / max(written.seconds, 1e-9):,.0f} rows/s"
            )

        def metadata(written: Written) -> dict:
            day = written.windows[0].partition_key()
            # the first meter's id without the whole fleet's: the first ids of a fleet do not depend on its size
            first = readings(spec, seed, np.arange(1), id_numbers(seed, 1, spec.fleet.id_format), written.windows[0])
            return provenance(
                seed=seed,
                spec_hash=digest,
                window=written.window,
                rows=written.rows,
                nbytes=written.nbytes,
                seconds=written.seconds,
                target=bucket.uri(READINGS + "/"),
                preview=to_table(first, spec.fleet.id_format, spec.output.record).slice(0, 5),
                files=dg.MetadataValue.int(files[day]),
                windows=dg.MetadataValue.int(len(written.windows)),
                prefixes=markdown_list(prefixes[day]),
                **{"dagster/uri": dg.MetadataValue.text(bucket.uri(f"{READINGS}/dt={day}/"))},
                **late_meta,
            )

        return tally, metadata, late_meta

    readings_attributes = {
        "group_name": GROUP,
        "kinds": KINDS,
        "partitions_def": partitions,
        "backfill_policy": dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
        "metadata": {
            LIVE_CADENCE_METADATA: slice_s,
            "dagster/column_schema": column_schema(reading_schema(spec), READING_COLUMNS),
        },
        "description": "Readings of every meter every interval, as daily part files under dt=YYYY-MM-DD/ with a "
        "_manifest.json written last; live windows go to slice=HHMMSS-HHMMSS/ folders of the day (a late slice "
        "with a later window).",
    }

    if spec.day_shards == 1:

        @dg.asset(**readings_attributes, deps=[meter_fleet], op_tags=heavy_step_tags(), check_specs=reading_checks)
        def meter_readings(context: dg.AssetExecutionContext, bucket: BucketResource, database: DatabaseResource):
            ids = fleet_ids()
            tally, metadata, late_meta = write_windows(
                context, bucket, lambda w, late: write_readings_window(bucket, spec, seed, ids, w, digest, late)
            )
            yield from partition_results(context, tally, metadata, when_empty=late_meta, spec_digest=digest)
            yield from check_readings(context, bucket, database, tally, ids)

    else:
        meter_readings = sharded_readings(readings_attributes, write_windows)

    return dg.Definitions(assets=[meter_fleet, meter_readings])
