"""Analytics: top-N in SQL vs fetching the rows into Python (the ad-hoc dashboard script), on PostgreSQL.
Target: SQL >= 3x. (The file utilities have their own bench, `fileutils`.)"""

import time

from synth_platform.analytics import report
from synth_platform.analytics.queries import POWER_USAGE
from synth_platform.sinks.database import DatabaseResource
from synth_platform.specs.power import Devices, PowerSpec, Usage
from synth_platform.streams.power import write_power_windows
from synth_platform.world.windows import Window
from synth_platform_tests.services import POSTGRES_ADMIN_URL, scratch_database

DEVICES, DAYS = 500, 14


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


def main() -> bool:
    top = bench_top_n()
    ok = top >= 3
    print(f"target: SQL top-N >= 3x ({top:.1f}x): {'met' if ok else 'NOT met'}")
    return ok
