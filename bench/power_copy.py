"""power_usage into PostgreSQL: the sink (generation included) vs a bare COPY of pre-rendered text vs one
INSERT per commit (the Streamer approach). Targets: sink >= 0.7x bare COPY, >= 100x per-row."""

import time

import pyarrow as pa

from synth_platform.assets.power import USAGE_TABLE, write_power_windows
from synth_platform.sinks.database import DatabaseResource, render_csv
from synth_platform.specs.power import Devices, PowerSpec, Usage
from synth_platform.world.power_usage import power_usage
from synth_platform.world.windows import Window
from synth_platform_tests.services import POSTGRES_ADMIN_URL, scratch_database

DAYS = 30
DEVICES = 1_000
PER_ROW_SAMPLE = 3_000
SEED = 1


def _fresh_table(db: DatabaseResource) -> None:
    with db.begin() as conn:
        USAGE_TABLE.drop(conn, checkfirst=True)
    db.ensure_table(USAGE_TABLE)


def main() -> bool:
    spec = PowerSpec(devices=Devices(count=DEVICES), usage=Usage(interval_minutes=10))
    days = Window(Window.for_day("2026-01-01").start, Window.for_day("2026-01-30").end).days()
    assert len(days) == DAYS
    with scratch_database(POSTGRES_ADMIN_URL) as url:
        db = DatabaseResource(url=url)

        _fresh_table(db)
        started = time.perf_counter()
        rows = sum(result.rows for _, result in write_power_windows(db, spec, SEED, days))
        sink_rate = rows / (time.perf_counter() - started)
        print(f"sink (generate + COPY, one transaction per day): {rows:,} rows, {sink_rate:,.0f} rows/s")

        data = pa.concat_tables(power_usage(spec, SEED, day) for day in days)
        text = render_csv(data)  # the very bytes the sink sends
        _fresh_table(db)
        raw = db.engine.raw_connection()
        try:
            started = time.perf_counter()
            with (
                raw.driver_connection.cursor() as cur,
                cur.copy(
                    "COPY power_usage (timestamp, device_id, power_usage_kwh) FROM STDIN WITH (FORMAT csv)"
                ) as copy,
            ):
                copy.write(text)
            raw.commit()
            copy_rate = rows / (time.perf_counter() - started)
            print(f"bare COPY FROM STDIN of pre-rendered text: {copy_rate:,.0f} rows/s")

            _fresh_table(db)
            sample = data.slice(0, PER_ROW_SAMPLE).to_pylist()
            raw.driver_connection.autocommit = True
            started = time.perf_counter()
            with raw.driver_connection.cursor() as cur:
                for r in sample:
                    cur.execute(
                        "INSERT INTO power_usage (timestamp, device_id, power_usage_kwh) VALUES (%s, %s, %s)",
                        (r["timestamp"], r["device_id"], r["power_usage_kwh"]),
                    )
            per_row_rate = len(sample) / (time.perf_counter() - started)
            print(f"one INSERT per commit ({len(sample):,}-row sample): {per_row_rate:,.0f} rows/s")
        finally:
            raw.close()

    vs_copy, vs_row = sink_rate / copy_rate, sink_rate / per_row_rate
    ok = vs_copy >= 0.7 and vs_row >= 100
    print(f"sink / bare COPY = {vs_copy:.2f}x (target >= 0.7x); sink / per-row = {vs_row:.0f}x (target >= 100x)")
    print("power_copy: " + ("meets targets" if ok else "BELOW TARGET"))
    return ok
