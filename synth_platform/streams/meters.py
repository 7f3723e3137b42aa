"""Meter readings and the meter fleet as bucket files: encoding, block layout, writing a window or the fleet, reading
files back, and what the checks compare.

The readings of a window are produced in blocks of meters by a small thread pool (numpy, the renderer and gzip
release the GIL), in order, with a bounded number of blocks in flight, so memory does not grow with the fleet.
"""

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq
import sqlalchemy as sa

from synth_platform import __version__
from synth_platform.pipelining import ordered
from synth_platform.sinks.compression import gunzip, gzip_member
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.files import BucketResource, replaced_slices, window_prefix
from synth_platform.sinks.ndjson import Field, Number, Text, iso_seconds, render
from synth_platform.sinks.parts import Piece, write_pieces
from synth_platform.sinks.prefix_writer import MANIFEST, FileEntry, PrefixResult
from synth_platform.sinks.reading_fields import present, reading_fields
from synth_platform.specs import PlatformSpec
from synth_platform.specs.meters import MetersSpec
from synth_platform.world.late_slices import delay_slices, late_count
from synth_platform.world.load_profile import HOUR
from synth_platform.world.meter_ids import id_strings
from synth_platform.world.meters import (
    Readings,
    expected_rows,
    fleet,
    readings,
    slot_starts,
    to_table,
)
from synth_platform.world.power_usage import power_usage
from synth_platform.world.windows import Window, from_epoch

READINGS = "meter_readings"
FLEET = "meter_fleet"
_BLOCK_ROWS = 65_536  # readings generated per block (a few MB of text)
_FLEET_PART = 100_000  # meters per fleet part file


# --- encoding --------------------------------------------------------------------------------------------------


def ndjson_lines(data: Readings, spec: MetersSpec, ts: np.ndarray | None = None) -> bytes:
    """The block's readings as NDJSON, ordered by (meter, timestamp), in the configured record schema, rendered in
    one call (timestamps cycle per meter, ids run per meter); `ts` is `iso_seconds(data.slots)` if known already."""
    ts = iso_seconds(data.slots) if ts is None else ts
    fields: list[Field] = [Text("timestamp", ts)]
    if spec.output.record == "wattif":
        fields.append(Number("reading", data.energy_kwh.reshape(-1), 6))
    else:
        meter_id, features = reading_fields(data, spec.fleet.id_format)
        fields += [meter_id, *features]
    return render(fields, data.energy_kwh.size, present(data))


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


def reading_pieces(
    spec: MetersSpec, seed: int, ids: np.ndarray, window: Window, stats: dict, meters: range | None = None
) -> Iterator[Piece]:
    """The window's pieces in file order; with `meters` (a shard's range, on file-group boundaries) only theirs."""
    slots = int(np.ceil(window.seconds / spec.interval_seconds))
    ts = iso_seconds(slot_starts(spec, window))  # shared by every block of the window

    def job(block: Block) -> Callable[[], tuple[Piece, Readings]]:
        def run() -> tuple[Piece, Readings]:
            index = np.arange(block.start, block.stop)
            data = readings(spec, seed, index, ids[block.start : block.stop], window)
            payload = encode(data, spec, ts)
            return Piece(block.group, data.rows, payload, block.start, block.stop - block.start), data

        return run

    chosen = (b for b in blocks(spec, ids, slots) if meters is None or b.start in meters)
    for piece, data in ordered(job(b) for b in chosen):
        stats["zero_readings"] = stats.get("zero_readings", 0) + (int(data.zero.sum()) if data.zero is not None else 0)
        yield piece


def shard_meters(spec: MetersSpec) -> list[range]:
    """The fleet ranges of a window's `day_shards` shards: contiguous runs of whole file groups (part files, or
    meters with layout: per_meter), in file order, as even as the groups allow."""
    per_group = 1 if spec.output.layout == "per_meter" else spec.output.meters_per_part
    groups, shards = spec.file_groups, spec.day_shards
    bounds = [min(spec.fleet.count, (groups * i // shards) * per_group) for i in range(shards + 1)]
    return [range(bounds[i], bounds[i + 1]) for i in range(shards)]


# --- writing -------------------------------------------------------------------------------------------------------


def window_target(bucket: BucketResource, window: Window) -> tuple[str, list[str]] | None:
    """Where a window's files go and the slice folders its write replaces; None when its rows are written already."""
    also_remove = replaced_slices(bucket, READINGS, window)
    return None if also_remove is None else (window_prefix(READINGS, window), also_remove)


def readings_manifest(
    spec: MetersSpec, seed: int, window: Window, digest: str, rows: int, zero_readings: int, arrived_with: Window | None
) -> dict:
    """A window's manifest (without its file list, which the prefix writer adds)."""
    # The config's late_slices is the delay range; the count of the window's late slices needs its own key.
    faults: dict = {**spec.faults.model_dump(mode="json"), "late_slice_count": late_count(spec, seed, window)}
    if arrived_with is not None:
        interval = f"{arrived_with.start.isoformat()}/{arrived_with.end.isoformat()}"  # ISO 8601 interval
        faults["late"] = {"delay_slices": delay_slices(spec, seed, window), "arrived_with": interval}
    full = spec.fleet.count * int(np.ceil(window.seconds / spec.interval_seconds))
    return {
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
        "faults": {**faults, "missing_readings": full - rows, "zero_readings": zero_readings},
    }


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
    target = window_target(bucket, window)
    if target is None:
        return None
    prefix, also_remove = target
    stats: dict = {}
    max_bytes = int(spec.output.max_part_mb * 1_000_000)
    with bucket.replace_prefix(prefix, also_remove) as writer:
        write_pieces(writer, reading_pieces(spec, seed, ids, window, stats), spec.output.format, max_bytes)
        rows = sum(f.rows for f in writer.files)
        return writer.commit(
            readings_manifest(spec, seed, window, digest, rows, stats.get("zero_readings", 0), arrived_with)
        )


# A window written in shards: each shard step writes the files of its meters and records them (a small JSON under
# _shards/, outside the stream's folders); the manifest step lists every shard's files, removes what none of them
# wrote and writes the manifest, which is the unsplit window's byte for byte. The records stay, so one shard can be
# re-run and the manifest written again; retention deletes them with their day.
SHARDS = "_shards/"


def shard_record_name(prefix: str, shard: int, shards: int) -> str:
    return f"{SHARDS}{prefix}shard-{shard:04d}-of-{shards:04d}.json"


def write_readings_shard(
    bucket: BucketResource, spec: MetersSpec, seed: int, ids: np.ndarray, window: Window, digest: str, shard: int
) -> list[FileEntry] | None:
    """Write shard `shard` of a window (its meters' part files, replacing them; the window's manifest is removed
    until the manifest step writes it again). None when the window's rows are written already."""
    target = window_target(bucket, window)
    if target is None:
        return None
    prefix, _ = target
    stats: dict = {}
    max_bytes = int(spec.output.max_part_mb * 1_000_000)
    meters = shard_meters(spec)[shard]
    with bucket.replace_prefix(prefix) as writer:
        pieces = reading_pieces(spec, seed, ids, window, stats, meters)
        files = write_pieces(writer, pieces, spec.output.format, max_bytes)
        writer.finish()
    record = {
        "shard": shard,
        "shards": spec.day_shards,
        "meters": [meters.start, meters.stop],
        "spec_hash": digest,
        "window": {"start": window.start.isoformat(), "end": window.end.isoformat()},
        "zero_readings": stats.get("zero_readings", 0),
        "files": [f.as_json() for f in files],
    }
    bucket.store.put_bytes(shard_record_name(prefix, shard, spec.day_shards), orjson.dumps(record))
    return files


def commit_readings_shards(
    bucket: BucketResource, spec: MetersSpec, seed: int, window: Window, digest: str, arrived_with: Window | None = None
) -> PrefixResult | None:
    """The manifest step of a sharded window: every shard's files in order, stale files and covered slices removed,
    then the manifest. None when the window's rows are written already; an error naming the shard whose record is
    missing or from another spec."""
    target = window_target(bucket, window)
    if target is None:
        return None
    prefix, also_remove = target
    files: list[FileEntry] = []
    zero_readings = 0
    for shard in range(spec.day_shards):
        name = shard_record_name(prefix, shard, spec.day_shards)
        try:
            record = orjson.loads(bucket.read_bytes(name))
        except FileNotFoundError:
            raise ValueError(f"{bucket.uri(prefix)}: shard {shard} of {spec.day_shards} was not written") from None
        if record["spec_hash"] != digest:
            raise ValueError(f"{bucket.uri(name)}: written for another spec ({record['spec_hash']}); re-run shard")
        zero_readings += record["zero_readings"]
        files += [FileEntry.from_json(f) for f in record["files"]]
    with bucket.replace_prefix(prefix, also_remove) as writer:
        writer.adopt(files)
        rows = sum(f.rows for f in files)
        return writer.commit(readings_manifest(spec, seed, window, digest, rows, zero_readings, arrived_with))


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
            {
                "stream": FLEET,
                "seed": seed,
                "spec_hash": digest,
                "generator_version": __version__,
                "format": spec.output.format,
                "id_format": spec.fleet.id_format,
                "meters": spec.fleet.count,
            }
        )


# --- reading back --------------------------------------------------------------------------------------------------


def read_table(bucket: BucketResource, name: str) -> pa.Table:
    """A data file of the bucket as an Arrow table (NDJSON, gzip NDJSON or Parquet)."""
    raw = bucket.read_bytes(name)
    if name.endswith(".parquet"):
        return pq.read_table(io.BytesIO(raw))
    if name.endswith(".gz"):
        raw = gunzip(raw)
    return pajson.read_json(io.BytesIO(raw), read_options=pajson.ReadOptions(block_size=1 << 24))


def window_manifests(bucket: BucketResource, window: Window) -> tuple[str, list[tuple[str, dict]], dict]:
    """The prefix of a day (dt=D/) or of a live slice (its slice=... folder), the manifests under it (prefix, body)
    in time order, and every object under it."""
    prefix = window_prefix(READINGS, window)
    objects = bucket.list(prefix)
    found = []
    for name in sorted(n for n in objects if n.endswith("/" + MANIFEST) or n == prefix + MANIFEST):
        manifest_prefix = name[: -len(MANIFEST)]
        body = bucket.manifest(manifest_prefix)
        if body is not None:
            found.append((manifest_prefix, body))
    return prefix, sorted(found, key=lambda pb: pb[1]["window"]["start"]), objects


def manifest_window(body: dict) -> Window:
    return Window(*(datetime.fromisoformat(body["window"][k]) for k in ("start", "end")))


# --- what the checks compare ---------------------------------------------------------------------------------------


def manifest_problems(bucket: BucketResource, windows: list[Window]) -> tuple[list[str], int]:
    """Under each written window's prefix (a day, or a live slice): files listed in a manifest but missing or
    different (size, CRC32C), objects outside every manifest, no manifest at all; and how many listed files were
    checked."""
    problems, checked = [], 0
    for window in windows:
        prefix, manifests, objects = window_manifests(bucket, window)
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
    return problems, checked


def row_count_problems(
    bucket: BucketResource, spec: MetersSpec, seed: int, windows: list[Window]
) -> tuple[list[str], int]:
    """Under each written window's prefix (a day, or a live slice): manifests whose rows differ from the spec's
    for their window, gaps between them, a window not covered to its end; and the rows the manifests hold."""
    problems, total = [], 0
    for written in windows:
        _, manifests, _ = window_manifests(bucket, written)
        end = written.start
        for manifest_prefix, body in manifests:
            window = manifest_window(body)
            expected = expected_rows(spec, seed, window)
            total += body["rows"]
            if body["rows"] != expected:
                problems.append(f"{manifest_prefix}: {body['rows']} rows, spec says {expected}")
            if window.start != end:
                problems.append(f"{manifest_prefix}: starts at {window.start}, previous window ends at {end}")
            end = window.end
        if end < written.end:
            problems.append(f"{written}: written only up to {end}")
    return problems, total


@dataclass
class Agreement:
    """Meter-hours compared with the power world, the largest difference, and where the power side came from."""

    compared: int = 0
    worst: float = 0.0
    problems: list[str] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)


def hour_spans(windows: list[Window]) -> list[Window]:
    """The windows widened back to the start of their first hour and merged where they meet, so a live slice is
    compared together with the slices before it in its hour (a day stays itself)."""
    spans: list[Window] = []
    for w in sorted(windows, key=lambda w: w.start_s):
        start_s = w.start_s - w.start_s % HOUR
        if spans and spans[-1].end_s >= start_s and spans[-1].partition_key() == w.partition_key():
            spans[-1] = Window(spans[-1].start, max(spans[-1].end, w.end))
        else:
            spans.append(Window(from_epoch(start_s), w.end))
    return spans


def power_agreement(
    platform: PlatformSpec,
    spec: MetersSpec,
    bucket: BucketResource,
    database: DatabaseResource,
    ids: np.ndarray,
    windows: list[Window],
) -> Agreement:
    """On a sample of meters of the first part, each whole meter-hour written in the windows' hours (see
    `hour_spans`) against the power world's kWh for that device-hour (meter-hours touched by a fault, and hours
    not yet complete in the files, are skipped)."""
    seed = platform.world.seed
    found = Agreement()
    for span in hour_spans(windows):
        _, manifests, _ = window_manifests(bucket, Window.for_day(span.start.date()))
        manifests = [(p, b) for p, b in manifests if overlaps(manifest_window(b), span)]
        if not manifests:
            found.problems.append(f"{span}: nothing written")
            continue
        first = manifests[0][1]["files"][0]
        shared = min(first["first"] + first["count"], spec.power.devices.count) - first["first"]
        if shared <= 0 or spec.output.record == "wattif":
            continue
        sample = np.unique(
            np.linspace(first["first"], first["first"] + shared - 1, spec.agreement_sample).astype(np.int64)
        )
        names = [p + f["name"] for p, body in manifests for f in body["files"] if f["first"] == first["first"]]
        data = pl.from_arrow(pa.concat_tables([read_table(bucket, n) for n in names], promote_options="default"))
        sample_ids = id_strings(ids[sample], spec.fleet.id_format).to_pylist()
        meter_of = dict(zip(sample_ids, sample.tolist(), strict=True))
        faulted = faulted_hours(spec, seed, sample, ids[sample], span)
        epoch = pl.col("timestamp").dt.epoch("s")
        meter_hours = (
            data.filter(pl.col("meter_id").is_in(list(meter_of)) & (epoch >= span.start_s) & (epoch < span.end_s))
            .with_columns(hour=epoch - epoch % HOUR)
            .group_by("meter_id", "hour")
            .agg(pl.col("energy_kwh").sum(), pl.len().alias("n"))
            .filter(pl.col("n") == HOUR // spec.interval_seconds)
        )
        power, source = power_hours(platform, spec, database, [int(i) + 1 for i in sample], span)
        found.sources.add(source)
        for meter_id, hour, kwh, _n in meter_hours.iter_rows():
            index = meter_of[meter_id]
            if (index, hour) in faulted or (index + 1, hour) not in power:
                continue
            diff = abs(kwh - power[(index + 1, hour)])
            found.compared, found.worst = found.compared + 1, max(found.worst, diff)
            if diff > 0.01:
                expected = power[(index + 1, hour)]
                found.problems.append(
                    f"meter {meter_id} (device {index + 1}) hour {hour}: {kwh:.4f} vs {expected:.4f} kWh"
                )
    return found


def overlaps(a: Window, b: Window) -> bool:
    return a.start < b.end and b.start < a.end


def power_hours(
    platform: PlatformSpec, spec: MetersSpec, database: DatabaseResource, device_ids: list[int], window: Window
) -> tuple[dict[tuple[int, int], float], str]:
    """kWh per (device_id, hour start) for whole hours the power world reports, from the power_usage table when
    the power domain is on and has rows in the window, else from the generator (the same function)."""
    parts = HOUR // spec.power.usage.interval_seconds
    table = None
    source = "power_usage generator"
    if platform.get("power") is not None:
        try:
            rows = database.query(
                "SELECT timestamp, device_id, power_usage_kwh FROM power_usage "
                "WHERE timestamp >= :start AND timestamp < :end",
                {"start": window.start, "end": window.end},
            )
        except sa.exc.SQLAlchemyError:
            rows = []
        if rows:
            ts = [r[0] if isinstance(r[0], datetime) else datetime.fromisoformat(r[0]) for r in rows]
            ts = [t if t.tzinfo else t.replace(tzinfo=UTC) for t in ts]
            table = pa.table(
                {
                    "ts": [int(t.timestamp()) for t in ts],
                    "device_id": [int(r[1]) for r in rows],
                    "kwh": [float(r[2]) for r in rows],
                }
            )
            source = f"{database.redacted_url} table power_usage"
    if table is None:
        usage = power_usage(spec.power, platform.world.seed, window)
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


def faulted_hours(spec: MetersSpec, seed: int, index: np.ndarray, ids: np.ndarray, window: Window) -> set:
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


def fleet_id_counts(bucket: BucketResource) -> tuple[int, int] | None:
    """(meters, distinct ids) of the written fleet; None when it has no manifest."""
    body = bucket.manifest(f"{FLEET}/")
    if body is None:
        return None
    ids = pa.concat_arrays(
        [read_table(bucket, f"{FLEET}/{f['name']}")["meter_id"].combine_chunks() for f in body["files"]]
    )
    return len(ids), len(pc.unique(ids))
