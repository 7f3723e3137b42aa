"""Smart-meter wiring: `meter_fleet`, daily `meter_readings` files in the bucket, and their checks.

The readings of a window are produced in blocks of meters by a small thread pool (numpy, the renderer and gzip
release the GIL), in order, with a bounded number of blocks in flight, so memory does not grow with the fleet.
"""

import io
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import dagster as dg
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq
import sqlalchemy as sa

from synth_platform import __version__
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
from synth_platform.sinks.compression import gunzip, gzip_member
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.files import (
    MANIFEST,
    BucketResource,
    Piece,
    PrefixResult,
    slice_window,
    window_prefix,
    write_pieces,
)
from synth_platform.sinks.ndjson import Field, Number, Text, iso_seconds, render
from synth_platform.specs import PlatformSpec
from synth_platform.specs.loader import spec_hash
from synth_platform.specs.meters import MetersSpec
from synth_platform.world.late_slices import arrives_with, delay_slices, delivered_with, late_count
from synth_platform.world.load_profile import HOUR
from synth_platform.world.meter_ids import format_ids, id_numbers, id_strings
from synth_platform.world.meters import (
    QUALITY_GOOD,
    QUALITY_ZERO,
    Readings,
    expected_rows,
    fleet,
    readings,
    slot_starts,
    to_table,
)
from synth_platform.world.power_usage import power_usage
from synth_platform.world.windows import Window

READINGS = "meter_readings"
FLEET = "meter_fleet"
_BLOCK_ROWS = 65_536  # readings generated per block (a few MB of text)
_FLEET_PART = 100_000  # meters per fleet part file
_WORKERS = min(2, os.cpu_count() or 1)

T = TypeVar("T")


def ordered(jobs: Iterable[Callable[[], T]], workers: int = _WORKERS, ahead: int = 2 * _WORKERS) -> Iterator[T]:
    """Results of `jobs` in order, computed by `workers` threads with at most `ahead` finished or running."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix="meters")
    pending: deque = deque()
    try:
        for job in jobs:
            pending.append(pool.submit(job))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --- encoding --------------------------------------------------------------------------------------------------


def ndjson_lines(data: Readings, spec: MetersSpec, ts: np.ndarray | None = None) -> bytes:
    """The block's readings as NDJSON, ordered by (meter, timestamp), in the configured record schema, rendered in
    one call (timestamps cycle per meter, ids run per meter); `ts` is `iso_seconds(data.slots)` if known already."""
    ts = iso_seconds(data.slots) if ts is None else ts
    fields: list[Field] = [Text("timestamp", ts)]
    if spec.output.record == "wattif":
        fields.append(Number("reading", data.energy_kwh.reshape(-1), 6))
    else:
        fields += [
            Text("meter_id", format_ids(data.id_numbers, spec.fleet.id_format), every=len(data.slots)),
            Number("power_kw", data.power_kw.reshape(-1), 4),
            Number("energy_kwh", data.energy_kwh.reshape(-1), 6),
            Number("voltage", data.voltage.reshape(-1), 2),
        ]
        if data.zero is not None:
            quality = np.array([list(QUALITY_GOOD.encode()), list(QUALITY_ZERO.encode())], dtype=np.uint8)
            fields.append(Text("quality", quality[data.zero.reshape(-1).astype(np.intp)]))
    keep = data.present.reshape(-1) if data.present is not None else None
    return render(fields, data.energy_kwh.size, keep)


def encode(data: Readings, spec: MetersSpec, ts: np.ndarray | None = None) -> bytes | pa.Table:
    out = spec.output
    if out.format == "parquet":
        return to_table(data, spec.fleet.id_format, out.record)
    lines = ndjson_lines(data, spec, ts)
    return gzip_member(lines, out.gzip_level) if out.format == "ndjson.gz" else lines


@dataclass(frozen=True)
class Block:
    group: str
    start: int
    stop: int


def blocks(spec: MetersSpec, ids: np.ndarray, slots: int) -> Iterator[Block]:
    """Meter blocks in file order: within each part (or each meter's own file), about _BLOCK_ROWS readings."""
    count = spec.fleet.count
    if spec.output.layout == "per_meter":
        names = id_strings(ids, spec.fleet.id_format).to_pylist()
        for i in range(count):
            yield Block(names[i], i, i + 1)
        return
    per_part = spec.output.meters_per_part
    step = max(1, _BLOCK_ROWS // max(1, slots))
    for part_start in range(0, count, per_part):
        part_stop = min(part_start + per_part, count)
        for start in range(part_start, part_stop, step):
            yield Block(f"part-{part_start // per_part:05d}", start, min(start + step, part_stop))


def reading_pieces(spec: MetersSpec, seed: int, ids: np.ndarray, window: Window, stats: dict) -> Iterator[Piece]:
    slots = int(np.ceil(window.seconds / spec.interval_seconds))
    ts = iso_seconds(slot_starts(spec, window))  # shared by every block of the window

    def job(block: Block) -> Callable[[], tuple[Piece, Readings]]:
        def run() -> tuple[Piece, Readings]:
            index = np.arange(block.start, block.stop)
            data = readings(spec, seed, index, ids[block.start : block.stop], window)
            payload = encode(data, spec, ts)
            return Piece(block.group, data.rows, payload, block.start, block.stop - block.start), data

        return run

    for piece, data in ordered(job(b) for b in blocks(spec, ids, slots)):
        stats["zero_readings"] = stats.get("zero_readings", 0) + (int(data.zero.sum()) if data.zero is not None else 0)
        yield piece


def write_readings_window(
    bucket: BucketResource,
    spec: MetersSpec,
    seed: int,
    ids: np.ndarray,
    window: Window,
    digest: str,
    arrived_with: Window | None = None,
) -> PrefixResult | None:
    """Replace one window's files: a whole day replaces dt=D/ (its live slices included), a part of a day its own
    slice=... folder and the slices it covers. None when the day, or a window holding this one, is written already.
    `arrived_with`: the later live window a late slice is delivered with (recorded in its manifest)."""
    prefix = window_prefix(READINGS, window)
    day_prefix = window_prefix(READINGS, Window.for_day(window.start.date()))
    also_remove = []
    if prefix != day_prefix:
        if bucket.manifest(day_prefix) is not None:
            return None  # the whole day is there already, and it holds this window's rows
        folders = {n[len(day_prefix) :].split("/", 1)[0] for n in bucket.list(day_prefix + "slice=")}
        for folder in folders:
            other, other_prefix = slice_window(day_prefix, folder), day_prefix + folder + "/"
            if other is None or other_prefix == prefix:
                continue
            if other.start <= window.start and window.end <= other.end and bucket.manifest(other_prefix) is not None:
                return None  # e.g. a late slice arriving after a partition run wrote the open day up to past it
            if window.start <= other.start and other.end <= window.end:
                also_remove.append(other_prefix)
    # The config's late_slices is the delay range; the count of the window's late slices needs its own key.
    faults: dict = {**spec.faults.model_dump(mode="json"), "late_slice_count": late_count(spec, seed, window)}
    if arrived_with is not None:
        interval = f"{arrived_with.start.isoformat()}/{arrived_with.end.isoformat()}"  # ISO 8601 interval
        faults["late"] = {"delay_slices": delay_slices(spec, seed, window), "arrived_with": interval}
    stats: dict = {}
    with bucket.replace_prefix(prefix, also_remove) as writer:
        write_pieces(
            writer, reading_pieces(spec, seed, ids, window, stats), spec.output.format,
            int(spec.output.max_part_mb * 1_000_000),
        )  # fmt: skip
        full = spec.fleet.count * int(np.ceil(window.seconds / spec.interval_seconds))
        rows = sum(f.rows for f in writer.files)
        return writer.commit(
            {
                "stream": READINGS,
                "window": {"start": window.start.isoformat(), "end": window.end.isoformat()},
                "seed": seed,
                "spec_hash": digest,
                "generator_version": __version__,
                "format": spec.output.format,
                "layout": spec.output.layout,
                "record": spec.output.record,
                "id_format": spec.fleet.id_format,
                "interval_seconds": spec.interval_seconds,
                "meters": spec.fleet.count,
                "faults": {
                    **faults,
                    "missing_readings": full - rows,
                    "zero_readings": stats.get("zero_readings", 0),
                },
            }
        )


def write_fleet(bucket: BucketResource, spec: MetersSpec, seed: int, ids: np.ndarray, digest: str) -> PrefixResult:
    def job(start: int) -> Callable[[], Piece]:
        def run() -> Piece:
            index = np.arange(start, min(start + _FLEET_PART, spec.fleet.count))
            table = fleet(spec, seed, index, ids[index])
            data: bytes | pa.Table = table
            if spec.output.format != "parquet":
                buffer = io.BytesIO()
                pl.from_arrow(table).write_ndjson(buffer)
                data = buffer.getvalue()
                if spec.output.format == "ndjson.gz":
                    data = gzip_member(data, spec.output.gzip_level)
            return Piece(f"part-{start // _FLEET_PART:05d}", table.num_rows, data, start, len(index))

        return run

    with bucket.replace_prefix(f"{FLEET}/") as writer:
        pieces = ordered(job(s) for s in range(0, spec.fleet.count, _FLEET_PART))
        write_pieces(writer, pieces, spec.output.format, int(spec.output.max_part_mb * 1_000_000))
        return writer.commit(
            {"stream": FLEET, "seed": seed, "spec_hash": digest, "generator_version": __version__,
             "format": spec.output.format, "id_format": spec.fleet.id_format, "meters": spec.fleet.count}
        )  # fmt: skip


def read_table(bucket: BucketResource, name: str) -> pa.Table:
    """A data file of the bucket as an Arrow table (NDJSON, gzip NDJSON or Parquet)."""
    raw = bucket.read_bytes(name)
    if name.endswith(".parquet"):
        return pq.read_table(io.BytesIO(raw))
    if name.endswith(".gz"):
        raw = gunzip(raw)
    return pajson.read_json(io.BytesIO(raw), read_options=pajson.ReadOptions(block_size=1 << 24))


# --- checks --------------------------------------------------------------------------------------------------------


def day_manifests(bucket: BucketResource, day: Window) -> tuple[str, list[tuple[str, dict]], dict]:
    """The day prefix, its manifests (prefix, body) in time order, and every object under the day."""
    prefix = window_prefix(READINGS, day)
    objects = bucket.list(prefix)
    found = []
    for name in sorted(n for n in objects if n.endswith("/" + MANIFEST) or n == prefix + MANIFEST):
        manifest_prefix = name[: -len(MANIFEST)]
        body = bucket.manifest(manifest_prefix)
        if body is not None:
            found.append((manifest_prefix, body))
    return prefix, sorted(found, key=lambda pb: pb[1]["window"]["start"]), objects


def power_hours(platform: PlatformSpec, spec: MetersSpec, database: DatabaseResource, device_ids: list[int],
                day: Window) -> tuple[dict[tuple[int, int], float], str]:  # fmt: skip
    """kWh per (device_id, hour start) for whole hours the power world reports, from the power_usage table when
    the power domain is on and has rows for the day, else from the generator (the same function)."""
    parts = HOUR // spec.power.usage.interval_seconds
    table = None
    source = "power_usage generator"
    if platform.get("power") is not None:
        try:
            rows = database.query(
                "SELECT timestamp, device_id, power_usage_kwh FROM power_usage "
                "WHERE timestamp >= :start AND timestamp < :end",
                {"start": day.start, "end": day.end},
            )
        except sa.exc.SQLAlchemyError:
            rows = []
        if rows:
            ts = [r[0] if isinstance(r[0], datetime) else datetime.fromisoformat(r[0]) for r in rows]
            ts = [t if t.tzinfo else t.replace(tzinfo=UTC) for t in ts]
            table = pa.table({"ts": [int(t.timestamp()) for t in ts], "device_id": [int(r[1]) for r in rows],
                              "kwh": [float(r[2]) for r in rows]})  # fmt: skip
            source = f"{database.redacted_url} table power_usage"
    if table is None:
        usage = power_usage(spec.power, platform.world.seed, day)
        ts = usage["timestamp"].cast(pa.int64()).to_numpy() // 1_000_000
        table = pa.table({"ts": ts, "device_id": usage["device_id"], "kwh": usage["power_usage_kwh"]})
    frame = pl.from_arrow(table).filter(pl.col("device_id").is_in(device_ids))
    hours = (
        frame.with_columns(hour=pl.col("ts") - pl.col("ts") % HOUR)
        .group_by("device_id", "hour")
        .agg(pl.col("kwh").sum(), pl.len().alias("n"))
        .filter(pl.col("n") == parts)
    )
    return {(d, h): k for d, h, k in hours.select("device_id", "hour", "kwh").iter_rows()}, source


def build(platform: PlatformSpec) -> dg.Definitions:
    spec: MetersSpec = platform.get("meters")
    seed = platform.world.seed
    digest = spec_hash(spec, seed)
    partitions = daily_partitions(platform.world)
    slice_s = spec.live_slice_seconds

    def fleet_ids() -> np.ndarray:
        return id_numbers(seed, spec.fleet.count, spec.fleet.id_format)

    @dg.asset(
        group_name="meters",
        kinds={"gcs", "file"},
        description="The smart-meter fleet: meter id, and the power-world device, customer and region it measures.",
    )
    def meter_fleet(context: dg.AssetExecutionContext, bucket: BucketResource) -> dg.MaterializeResult:
        clock = Stopwatch()
        ids = fleet_ids()
        result = write_fleet(bucket, spec, seed, ids, digest)
        context.log.info(f"wrote {result.rows} meters in {len(result.files)} files to {bucket.uri(result.prefix)}")
        return dg.MaterializeResult(
            metadata=provenance(
                seed=seed, spec_hash=digest, window=None, rows=result.rows, nbytes=result.bytes,
                seconds=clock.seconds, target=bucket.uri(result.prefix),
                preview=fleet(spec, seed, np.arange(min(5, spec.fleet.count)), ids[:5]),
                files=dg.MetadataValue.int(len(result.files)),
            )
        )  # fmt: skip

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
        group_name="meters",
        kinds={"gcs", "file"},
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
        deps=[meter_fleet],
        description="Readings of every meter every interval, as daily part files under dt=YYYY-MM-DD/ with a "
        "_manifest.json written last; live windows go to slice=HHMMSS-HHMMSS/ folders of the day (a late slice "
        "with a later window).",
        metadata={LIVE_CADENCE_METADATA: slice_s},
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
                seed=seed, spec_hash=digest, window=run_window(context), rows=rows, nbytes=nbytes,
                seconds=clock.seconds, target=bucket.uri(READINGS + "/"), preview=preview,
                files=dg.MetadataValue.int(files), windows=dg.MetadataValue.int(len(windows)),
                prefixes=markdown_list(prefixes), **late_meta,
            )
        )  # fmt: skip

    @dg.asset_check(asset=meter_readings, blocking=True, partitions_def=partitions,
                    description="Every manifest's files exist with its sizes and CRC32C; no object is left outside a "
                    "manifest (a failed or stale write).")  # fmt: skip
    def manifest_matches_objects(context: dg.AssetCheckExecutionContext, bucket: BucketResource):
        problems, checked = [], 0
        for day, _ in written_days(context, slice_s):
            prefix, manifests, objects = day_manifests(bucket, day)
            if not manifests:
                problems.append(f"{bucket.uri(prefix)}: no manifest (missing or incomplete)")
            covered = {p + MANIFEST for p, _ in manifests}
            for manifest_prefix, body in manifests:
                for entry in body["files"]:
                    name = manifest_prefix + entry["name"]
                    covered.add(name)
                    info = objects.get(name)
                    checked += 1
                    if info is None:
                        problems.append(f"{bucket.uri(name)}: listed in the manifest but missing")
                    elif info.size != entry["bytes"] or bucket.checksum(info) != entry["crc32c"]:
                        problems.append(f"{bucket.uri(name)}: size or CRC32C differs from the manifest")
            problems += [f"{bucket.uri(n)}: not in any manifest" for n in sorted(set(objects) - covered)]
        return dg.AssetCheckResult(
            passed=not problems,
            metadata={"files_checked": checked,
                      "problems": markdown_list(problems)},
        )  # fmt: skip

    @dg.asset_check(asset=meter_readings, blocking=True, partitions_def=partitions,
                    description="Rows in each manifest equal what the spec generates for its window, and the "
                    "manifests cover the written part of each day.")  # fmt: skip
    def row_count(context: dg.AssetCheckExecutionContext, bucket: BucketResource):
        problems, total = [], 0
        for day, part in written_days(context, slice_s):
            _, manifests, _ = day_manifests(bucket, day)
            end = day.start
            for manifest_prefix, body in manifests:
                window = Window(*(datetime.fromisoformat(body["window"][k]) for k in ("start", "end")))
                expected = expected_rows(spec, seed, window)
                total += body["rows"]
                if body["rows"] != expected:
                    problems.append(f"{manifest_prefix}: {body['rows']} rows, spec says {expected}")
                if window.start != end:
                    problems.append(f"{manifest_prefix}: starts at {window.start}, previous window ends at {end}")
                end = window.end
            if end < part.end and part.end == day.end:
                problems.append(f"{day.partition_key()}: written up to {end}, the day is closed")
        return dg.AssetCheckResult(
            passed=not problems,
            metadata={"rows": total, "problems": markdown_list(problems)},
        )

    @dg.asset_check(asset=meter_readings, partitions_def=partitions,
                    description="On a sample of meters, each meter-hour's energy equals the power world's kWh for "
                    "that device-hour (within 0.01 kWh).")  # fmt: skip
    def power_agreement(context: dg.AssetCheckExecutionContext, bucket: BucketResource, database: DatabaseResource):
        ids = fleet_ids()
        compared, worst, problems, sources = 0, 0.0, [], set()
        for day, _ in written_days(context, slice_s):
            _, manifests, _ = day_manifests(bucket, day)
            if not manifests:
                problems.append(f"{day.partition_key()}: nothing written")
                continue
            manifest_prefix, body = manifests[0]
            first = body["files"][0]
            shared = min(first["first"] + first["count"], spec.power.devices.count) - first["first"]
            if shared <= 0 or spec.output.record == "wattif":
                continue
            sample = np.unique(np.linspace(first["first"], first["first"] + shared - 1, spec.agreement_sample)
                               .astype(np.int64))  # fmt: skip
            names = [manifest_prefix + f["name"] for f in body["files"] if f["first"] == first["first"]]
            data = pl.from_arrow(pa.concat_tables([read_table(bucket, n) for n in names], promote_options="default"))
            sample_ids = id_strings(ids[sample], spec.fleet.id_format).to_pylist()
            meter_of = dict(zip(sample_ids, sample.tolist(), strict=True))
            window = Window(*(datetime.fromisoformat(body["window"][k]) for k in ("start", "end")))
            faulted = _faulted_hours(spec, seed, sample, ids[sample], window)
            epoch = pl.col("timestamp").dt.epoch("s")
            meter_hours = (
                data.filter(pl.col("meter_id").is_in(list(meter_of)))
                .with_columns(hour=epoch - epoch % HOUR)
                .group_by("meter_id", "hour")
                .agg(pl.col("energy_kwh").sum(), pl.len().alias("n"))
                .filter(pl.col("n") == HOUR // spec.interval_seconds)
            )
            power, source = power_hours(platform, spec, database, [int(i) + 1 for i in sample], day)
            sources.add(source)
            for meter_id, hour, kwh, _n in meter_hours.iter_rows():
                index = meter_of[meter_id]
                if (index, hour) in faulted or (index + 1, hour) not in power:
                    continue
                diff = abs(kwh - power[(index + 1, hour)])
                compared, worst = compared + 1, max(worst, diff)
                if diff > 0.01:
                    problems.append(f"meter {meter_id} (device {index + 1}) hour {hour}: {kwh:.4f} vs "
                                    f"{power[(index + 1, hour)]:.4f} kWh")  # fmt: skip
        return dg.AssetCheckResult(
            passed=not problems,
            metadata={
                "meter_hours_compared": compared,
                "max_abs_diff_kwh": dg.MetadataValue.float(round(worst, 6)),
                "source": ", ".join(sorted(sources)) or "none",
                "problems": markdown_list(problems),
            },
        )

    @dg.asset_check(asset=meter_fleet, blocking=True, description="Meter ids are unique and the fleet is complete.")
    def ids_unique(bucket: BucketResource):
        body = bucket.manifest(f"{FLEET}/")
        if body is None:
            return dg.AssetCheckResult(passed=False, metadata={"problem": "no fleet manifest"})
        ids = pa.concat_arrays(
            [read_table(bucket, f"{FLEET}/{f['name']}")["meter_id"].combine_chunks() for f in body["files"]]
        )
        distinct = len(pa.compute.unique(ids))
        return dg.AssetCheckResult(
            passed=distinct == len(ids) == spec.fleet.count,
            metadata={"meters": len(ids), "distinct_ids": distinct, "expected": spec.fleet.count},
        )

    return dg.Definitions(
        assets=[meter_fleet, meter_readings],
        asset_checks=[manifest_matches_objects, row_count, power_agreement, ids_unique],
    )


def _faulted_hours(spec: MetersSpec, seed: int, index: np.ndarray, ids: np.ndarray, window: Window) -> set:
    """(fleet index, hour start) of meter-hours touched by an injected fault (excluded from the comparison)."""
    if not spec.faults.any:
        return set()
    data = readings(spec, seed, index, ids, window)
    bad = np.zeros(data.energy_kwh.shape, dtype=bool)
    if data.present is not None:
        bad |= ~data.present
    if data.zero is not None:
        bad |= data.zero
    m, s = np.nonzero(bad)
    return {(int(index[i]), int(data.slots[j] - data.slots[j] % HOUR)) for i, j in zip(m, s, strict=True)}
