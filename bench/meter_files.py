"""Smart-meter readings to local NDJSON files, on one fleet and day:
- the project's writer (generation, vectorized rendering, part files, manifest),
- a per-row reference writer as the WattIf seed script does it (a dict per reading, orjson.dumps, one line each),
- the machine's sequential write rate: a plain large-file write of as many bytes.
Both file writers and the plain write end with fsync, so the rates are what reaches the disk.
Targets: writer >= 25x the per-row writer (rows/s), >= 50% of the sequential write rate (bytes/s); peak RSS for
20,000 meters (one day at 10 s, default ndjson.gz) at most 1.3x the peak for 1,000 meters (each in a subprocess).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson

from synth_platform.assets.meters import write_readings_window
from synth_platform.sinks.files import BucketResource
from synth_platform.specs.meters import Fleet, MetersSpec, Output
from synth_platform.world.meter_ids import id_numbers, id_strings
from synth_platform.world.meters import readings
from synth_platform.world.windows import Window

SEED = 1
DAY = Window.for_day("2026-03-02")
METERS = 300  # 2.6M readings for the writer and the plain write
PER_ROW_METERS = 30  # the per-row writer runs on the first meters of the same fleet
RSS_FLEETS = (1_000, 20_000)


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb+") as f:
                os.fsync(f.fileno())


def project_writer(root: Path, spec: MetersSpec) -> tuple[int, int, float]:
    bucket = BucketResource(url=str(root))
    ids = id_numbers(SEED, spec.fleet.count)
    started = time.perf_counter()
    result = write_readings_window(bucket, spec, SEED, ids, DAY, "bench")
    _fsync_tree(root)
    return result.rows, result.bytes, time.perf_counter() - started


def per_row_writer(root: Path, spec: MetersSpec) -> tuple[int, float]:
    """One file per part of the same readings, built the seed script's way: a datetime, a dict, orjson.dumps and a
    write per reading (the values come from the same generator)."""
    ids = id_numbers(SEED, PER_ROW_METERS)
    names = id_strings(ids).to_pylist()
    started = time.perf_counter()
    data = readings(spec, SEED, np.arange(PER_ROW_METERS), ids, DAY)
    rows = 0
    path = root / "part-00000.ndjson"
    with open(path, "wb") as out:
        for m, meter_id in enumerate(names):
            power, energy, volts = data.power_kw[m].tolist(), data.energy_kwh[m].tolist(), data.voltage[m].tolist()
            for s, epoch in enumerate(data.slots.tolist()):
                reading = {
                    "timestamp": datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "meter_id": meter_id,
                    "power_kw": power[s],
                    "energy_kwh": energy[s],
                    "voltage": volts[s],
                }
                out.write(orjson.dumps(reading) + b"\n")
                rows += 1
        out.flush()
        os.fsync(out.fileno())
    return rows, time.perf_counter() - started


def sequential_write(path: Path, nbytes: int) -> float:
    block = np.random.default_rng(0).integers(0, 256, 8 << 20, dtype=np.uint8).tobytes()
    started = time.perf_counter()
    with open(path, "wb", buffering=0) as f:
        left = nbytes
        while left > 0:
            left -= f.write(block[: min(left, len(block))])
        os.fsync(f.fileno())
    return nbytes / (time.perf_counter() - started)


_RSS_CHILD = """
import resource, sys, time
from pathlib import Path
from synth_platform.assets.meters import write_readings_window
from synth_platform.sinks.files import BucketResource
from synth_platform.specs.meters import Fleet, MetersSpec
from synth_platform.world.meter_ids import id_numbers
from synth_platform.world.windows import Window
count, root = int(sys.argv[1]), sys.argv[2]
spec = MetersSpec(fleet=Fleet(count=count))
started = time.perf_counter()
day = Window.for_day("2026-03-02")
result = write_readings_window(BucketResource(url=root), spec, 1, id_numbers(1, count), day, "b")
print(result.rows, result.bytes, time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss(count: int, root: Path) -> tuple[int, int, float, int]:
    out = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, str(count), str(root)], check=True, capture_output=True, text=True
    ).stdout.split()
    shutil.rmtree(root, ignore_errors=True)
    rows, nbytes, seconds, rss_kb = int(out[0]), int(out[1]), float(out[2]), int(out[3])
    return rows, nbytes, seconds, rss_kb


def main() -> bool:
    spec = MetersSpec(fleet=Fleet(count=METERS), output=Output(format="ndjson", max_part_mb=1024))
    with tempfile.TemporaryDirectory(prefix="meter-bench-", dir=os.environ.get("SYNTH_BENCH_DIR")) as tmp:
        root = Path(tmp)
        rows, nbytes, seconds = project_writer(root / "writer", spec)
        writer_rows, writer_bytes = rows / seconds, nbytes / seconds
        print(f"project writer, local NDJSON: {rows:,} rows, {nbytes / 1e6:,.0f} MB in {seconds:.1f}s = "
              f"{writer_rows:,.0f} rows/s, {writer_bytes / 1e6:,.0f} MB/s")  # fmt: skip
        shutil.rmtree(root / "writer")

        (root / "per_row").mkdir()
        ref_rows, ref_seconds = per_row_writer(root / "per_row", spec)
        per_row = ref_rows / ref_seconds
        print(f"per-row dict + orjson.dumps writer: {ref_rows:,} rows in {ref_seconds:.1f}s = {per_row:,.0f} rows/s")

        disk = sequential_write(root / "plain.bin", nbytes)
        print(f"plain sequential write of {nbytes / 1e6:,.0f} MB (+fsync): {disk / 1e6:,.0f} MB/s")
        (root / "plain.bin").unlink()

        rss = {}
        for count in RSS_FLEETS:
            r_rows, r_bytes, r_seconds, rss[count] = peak_rss(count, root / f"rss-{count}")
            print(f"{count:,} meters, one day at 10 s (ndjson.gz): {r_rows:,} rows, {r_bytes / 1e6:,.0f} MB in "
                  f"{r_seconds:.0f}s ({r_rows / r_seconds:,.0f} rows/s), "
                  f"peak RSS {rss[count] / 1024:,.0f} MB")  # fmt: skip

    vs_row, vs_disk = writer_rows / per_row, writer_bytes / disk
    growth = rss[RSS_FLEETS[1]] / rss[RSS_FLEETS[0]]
    ok = vs_row >= 25 and vs_disk >= 0.5 and growth <= 1.3
    print(f"writer / per-row = {vs_row:.1f}x (target >= 25x); writer / sequential write = {vs_disk:.0%} "
          f"(target >= 50%); peak RSS 20,000 / 1,000 meters = {growth:.2f}x (target <= 1.3x)")  # fmt: skip
    print("meter_files: " + ("meets targets" if ok else "BELOW TARGET"))
    return ok
