"""Analytics: top-N in SQL vs fetching the rows into Python (the ad-hoc dashboard script), on PostgreSQL; and the
CSV -> NDJSON converter vs csv.DictReader + json.dumps. Targets: SQL >= 3x, converter >= 1x."""

import csv
import json
import tempfile
import time
from pathlib import Path

from synth_platform.analytics import report
from synth_platform.analytics.queries import POWER_USAGE
from synth_platform.fileutils.csv_to_ndjson import csv_to_ndjson
from synth_platform.fileutils.split import split_file
from synth_platform.sinks.database import DatabaseResource
from synth_platform.specs.power import Devices, PowerSpec, Usage
from synth_platform.streams.power import write_power_windows
from synth_platform.world.windows import Window
from synth_platform_tests.services import POSTGRES_ADMIN_URL, scratch_database

DEVICES, DAYS, CSV_ROWS = 500, 14, 200_000


def _best_of(fn, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def _python_top(db: DatabaseResource, n: int) -> list:
    best: dict[int, tuple[float, object]] = {}
    for ts, dev, v in db.query("SELECT timestamp, device_id, power_usage_kwh FROM power_usage"):
        if dev not in best or v > best[dev][0] or (v == best[dev][0] and ts < best[dev][1]):
            best[dev] = (v, ts)
    return sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))[:n]


def bench_top_n() -> float:
    spec = PowerSpec(devices=Devices(count=DEVICES), usage=Usage(interval_minutes=30))
    days = Window(Window.for_day("2026-01-01").start, Window.for_day(f"2026-01-{DAYS:02d}").end).days()
    with scratch_database(POSTGRES_ADMIN_URL) as url:
        db = DatabaseResource(url=url)
        rows = sum(r.rows for _, r in write_power_windows(db, spec, 1, days))
        sql = _best_of(lambda: report.top_devices(db, POWER_USAGE, None, 10))
        python = _best_of(lambda: _python_top(db, 10))
        assert [r.device_id for r in report.top_devices(db, POWER_USAGE, None, 10)] == [
            d for d, _ in _python_top(db, 10)
        ]
    print(f"top 10 of {rows:,} rows: SQL {sql * 1000:.1f} ms, fetch + Python {python * 1000:.1f} ms "
          f"-> {python / sql:.1f}x")  # fmt: skip
    return python / sql


def bench_converter(folder: Path) -> float:
    src = folder / "in.csv"
    with open(src, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "name", "amount", "active", "note"])
        w.writerows([i, f"Zürich {i % 97}", i * 0.25, i % 2 == 0, 'a, "quoted"\nnote'] for i in range(CSV_ROWS))

    def naive() -> None:
        with open(src, encoding="utf-8", newline="") as f, open(folder / "naive.ndjson", "w", encoding="utf-8") as out:
            for row in csv.DictReader(f):
                row["id"], row["amount"], row["active"] = int(row["id"]), float(row["amount"]), row["active"] == "True"
                out.write(json.dumps(row, ensure_ascii=False) + "\n")

    types = {"id": "int", "name": "string", "amount": "float", "active": "bool", "note": "string"}
    ours = _best_of(lambda: csv_to_ndjson(src, folder / "out.ndjson", types), 2)
    inferred = _best_of(lambda: csv_to_ndjson(src, folder / "out.ndjson"), 1)
    base = _best_of(naive, 2)
    size = src.stat().st_size
    split = _best_of(lambda: split_file(src, folder / "parts", 1_000_000), 2)
    print(
        f"csv-to-ndjson {CSV_ROWS:,} rows: {CSV_ROWS / ours:,.0f} rows/s with a schema, {CSV_ROWS / inferred:,.0f} "
        f"rows/s inferring (two passes); DictReader + json.dumps {CSV_ROWS / base:,.0f} rows/s -> {base / ours:.2f}x"
    )
    print(f"split {size / 1e6:.1f} MB into 1 MB parts: {size / 1e6 / split:.1f} MB/s")  # fmt: skip
    return base / ours


def main() -> bool:
    top = bench_top_n()
    with tempfile.TemporaryDirectory() as d:
        conv = bench_converter(Path(d))
    ok = top >= 3 and conv >= 1.0
    print(f"targets: SQL top-N >= 3x ({top:.1f}x), converter >= 1x ({conv:.2f}x): {'met' if ok else 'NOT met'}")
    return ok
