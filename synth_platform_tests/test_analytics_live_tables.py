"""The always-current top devices and histograms in the SQL target (PostgreSQL, MariaDB, SQLite): after each live
window is written, the views and rollup tables equal a brute-force computation over the delivered rows, for power
usage and a declared sensor feature, with ties; the past minute moves as windows arrive."""

from __future__ import annotations

import bisect
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from synth_platform.analytics import live_tables
from synth_platform.analytics.features import sensor_features
from synth_platform.analytics.live_tables import LiveAnalytics, read_top
from synth_platform.analytics.queries import POWER_USAGE
from synth_platform.analytics.results import as_utc
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.sql_schema import sql_table
from synth_platform.specs.power import Devices, PowerSpec
from synth_platform.specs.sensors import SensorsSpec
from synth_platform.streams.power import DEVICE_TABLE, USAGE_TABLE
from synth_platform.world import seeding
from synth_platform.world.devices import devices
from synth_platform.world.power_usage import POWER_USAGE_SCHEMA
from synth_platform.world.sensors import sensor_readings, sensors_schema
from synth_platform.world.windows import Window
from synth_platform_tests.concurrency import at_once

DEVICES = 12
START = datetime(2026, 3, 1, 22, 30, tzinfo=UTC)  # the windows cross midnight: two days
END = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
POWER_EDGES = [0.5, 1.0, 2.0, 3.5]
TELEMETRY = SensorsSpec(
    interval_seconds=60,
    missing_probability=0.1,
    features={"temperature_c": {"base": 20.0, "daily": {"amplitude": 2.0, "peak": 0}, "noise_sd": 1.5, "decimals": 0}},
).model_copy(update={"power": PowerSpec(devices=Devices(count=DEVICES))})
TEMPERATURE = sensor_features(TELEMETRY)[0]
TELEMETRY_TABLE = sql_table("device_telemetry", sensors_schema(TELEMETRY), ["device_id", "timestamp"], [["timestamp"]])


def power_rows(window: Window) -> pa.Table:
    """One reading per device and minute, rounded to one decimal (many ties), about 1 in 5 missing."""
    minutes = np.arange(window.start_s, window.end_s, 60)
    d, t = np.meshgrid(np.arange(1, DEVICES + 1), minutes, indexing="ij")
    key = seeding.stream_key(3, "live-tables-test")
    keep = seeding.uniform(key, d, t, 1) > 0.2
    values = np.round(seeding.uniform(key, d, t, 0) * 4, 1)
    data = pa.table(
        {
            "timestamp": pa.array(t[keep] * 1_000_000).cast(pa.timestamp("us", tz="UTC")),
            "device_id": d[keep],
            "power_usage_kwh": values[keep],
        },
        schema=POWER_USAGE_SCHEMA,
    )
    return data.sort_by([("timestamp", "ascending"), ("device_id", "ascending")])


def rows_of(table: pa.Table, column: str) -> list[tuple[datetime, int, float]]:
    return list(
        zip(table["timestamp"].to_pylist(), table["device_id"].to_pylist(), table[column].to_pylist(), strict=True)
    )


def brute_top(data, lo: datetime | None = None, hi: datetime | None = None) -> list[tuple[int, float, datetime]]:
    best: dict[int, tuple[float, datetime]] = {}
    for ts, dev, v in data:
        if (lo and ts <= lo) or (hi and ts >= hi):
            continue
        if dev not in best or (-v, ts) < (-best[dev][0], best[dev][1]):
            best[dev] = (v, ts)
    return sorted(((d, v, ts) for d, (v, ts) in best.items()), key=lambda r: (-r[1], r[0], r[2]))


def got(rows) -> list[tuple[int, float, datetime]]:
    return [(int(d), float(v), as_utc(at)) for d, v, at in rows]


def check_top(db: DatabaseResource, name: str, data) -> dict[str, list]:
    newest = max(r[0] for r in data)
    expected = {
        "all time": brute_top(data),
        "past hour": brute_top(data, newest - timedelta(hours=1)),
        "past minute": brute_top(data, newest - timedelta(minutes=1)),
    }
    for period, rows in expected.items():
        for n in (3, DEVICES):
            assert got(read_top(db, name, period, n)) == rows[:n], (name, period, n)
    for day in {r[0].date() for r in data}:
        w = Window.for_day(day)
        view = db.query(
            f"SELECT place, device_id, value, at FROM top_devices_daily WHERE feature = '{name}' AND "
            f"day = :day ORDER BY place",
            {"day": day},
        )
        assert [p for p, *_ in view] == list(range(1, len(view) + 1))
        assert got(r[1:] for r in view) == brute_top(data, w.start - timedelta(microseconds=1), w.end)
    return expected


def check_histograms(db: DatabaseResource, name: str, data, edges: list[float], fleet: list[int]) -> None:
    for day in {r[0].date() for r in data}:
        inside = [r for r in data if r[0].date() == day]
        expected: dict[tuple[int, int], int] = defaultdict(int)
        for _, dev, v in inside:
            expected[(dev, bisect.bisect_right(edges, v))] += 1
        stored = db.query(
            "SELECT device_id, bucket, readings FROM device_histograms WHERE feature = :f AND day = :d",
            {"f": name, "d": day},
        )
        assert {(int(d), int(b)): int(n) for d, b, n in stored} == dict(expected)
        intervals = len({r[0] for r in inside})
        status = db.query(
            "SELECT device_id, reported, intervals, missing FROM device_status WHERE feature = :f AND day = :d",
            {"f": name, "d": day},
        )
        want = {}
        for dev in fleet:
            reported = len({r[0] for r in inside if r[1] == dev})
            want[dev] = (reported, intervals, intervals - reported)
        assert {int(d): (int(a), int(b), int(c)) for d, a, b, c in status} == want


def test_views_and_rollups_equal_brute_force_as_live_windows_arrive(database_url: str) -> None:
    db = DatabaseResource(url=database_url)
    for table in (USAGE_TABLE, DEVICE_TABLE, TELEMETRY_TABLE):
        db.ensure_table(table)
    fleet = devices(PowerSpec(devices=Devices(count=DEVICES + 1)), 1)  # the last device never reports
    db.replace(DEVICE_TABLE, fleet)
    edges = {POWER_USAGE.name: POWER_EDGES, TEMPERATURE.name: [17.0, 19.0, 20.0, 21.0, 23.0]}
    live = LiveAnalytics((POWER_USAGE, TEMPERATURE), edges, "latest_reading")
    delivered: dict[str, list] = {POWER_USAGE.name: [], TEMPERATURE.name: []}
    minutes: list[list] = []
    for i, window in enumerate(Window(START, END).split(600)):
        power, temps = power_rows(window), sensor_readings(TELEMETRY, 9, window)
        db.replace_window(USAGE_TABLE, power, "timestamp", window)
        live.written(db, USAGE_TABLE.name, [window])
        db.replace_window(TELEMETRY_TABLE, temps, "timestamp", window)
        live.written(db, TELEMETRY_TABLE.name, [window])
        delivered[POWER_USAGE.name] += rows_of(power, POWER_USAGE.name)
        delivered[TEMPERATURE.name] += rows_of(temps, TEMPERATURE.name)
        if i % 4 == 0 or window.end == END:  # checking every window would only repeat the same assertions
            for name, data in delivered.items():
                check_top(db, name, data)
                check_histograms(db, name, data, edges[name], list(range(1, DEVICES + 2)))
            minutes.append(got(read_top(db, POWER_USAGE.name, "past minute", DEVICES)))
    assert all(a != b for a, b in zip(minutes, minutes[1:], strict=False))  # the past minute moved with the windows
    ties = [v for _, v, _ in brute_top(delivered[TEMPERATURE.name])]
    assert len(ties) != len(set(ties))  # the declared feature's ranking really had ties to break

    # a re-run of a window replaces it: the rollups stay exact, nothing doubles
    window = Window(START, START + timedelta(minutes=10))
    db.replace_window(TELEMETRY_TABLE, sensor_readings(TELEMETRY, 9, window), "timestamp", window)
    live.written(db, TELEMETRY_TABLE.name, [window])
    check_histograms(
        db, TEMPERATURE.name, delivered[TEMPERATURE.name], edges[TEMPERATURE.name], list(range(1, DEVICES + 2))
    )
    assert live_tables.ensure_views(db, live.present(db), "latest_reading") == []  # unchanged SQL: left alone


def test_relative_windows_can_follow_the_database_clock(database_url: str) -> None:
    db = DatabaseResource(url=database_url)
    db.ensure_table(USAGE_TABLE)
    now = datetime.now(UTC).replace(microsecond=0)
    cells = [
        (now - timedelta(seconds=20), 1, 5.0),
        (now - timedelta(seconds=20), 2, 3.0),
        (now - timedelta(seconds=100), 3, 9.0),
        (now - timedelta(minutes=30), 4, 10.0),
        (now - timedelta(hours=2), 5, 50.0),
        (now + timedelta(hours=1), 6, 99.0),
    ]
    columns = dict(zip(POWER_USAGE_SCHEMA.names, zip(*cells, strict=True), strict=True))
    db.replace(USAGE_TABLE, pa.table(columns, schema=POWER_USAGE_SCHEMA))
    live = LiveAnalytics((POWER_USAGE,), {POWER_USAGE.name: POWER_EDGES}, "now")
    live.written(db, USAGE_TABLE.name, [Window(now - timedelta(hours=3), now + timedelta(hours=2))])
    assert [r[0] for r in read_top(db, POWER_USAGE.name, "past minute", 10)] == [1, 2]
    assert [r[0] for r in read_top(db, POWER_USAGE.name, "past hour", 10)] == [4, 3, 1, 2]
    assert [r[0] for r in read_top(db, POWER_USAGE.name, "all time", 2)] == [6, 5]
    # switching back to the newest reading replaces the view
    assert live_tables.ensure_views(db, [POWER_USAGE], "latest_reading") == ["top_devices"]
    assert [r[0] for r in read_top(db, POWER_USAGE.name, "past minute", 10)] == [6]
    assert sa.inspect(db.engine).has_table("device_daily_top")


def test_day_helpers() -> None:
    w = Window(datetime(2026, 3, 1, 23, 50, tzinfo=UTC), datetime(2026, 3, 2, 0, 0, tzinfo=UTC))
    assert live_tables._dates(w) == [date(2026, 3, 1)]
    assert live_tables._dates(Window(w.start, w.end + timedelta(seconds=1))) == [date(2026, 3, 1), date(2026, 3, 2)]


def test_retention_expires_the_rollups_of_deleted_days(database_url: str) -> None:
    db = DatabaseResource(url=database_url)
    assert live_tables.expire_rollups(db, [POWER_USAGE.name], START) == {}  # no rollups yet: nothing to report
    db.ensure_table(USAGE_TABLE)
    window = Window(START, END)  # crosses midnight: two days
    data = power_rows(window)
    db.replace(USAGE_TABLE, data)
    live = LiveAnalytics((POWER_USAGE,), {POWER_USAGE.name: POWER_EDGES}, "latest_reading")
    live.written(db, USAGE_TABLE.name, [window])
    second_day = Window.for_day(END.date()).start
    db.delete_before(USAGE_TABLE, "timestamp", second_day)
    (deleted,) = live_tables.expire_rollups(db, [POWER_USAGE.name], second_day).values()
    assert deleted > 0
    kept = [r for r in rows_of(data, POWER_USAGE.name) if r[0] >= second_day]
    assert got(read_top(db, POWER_USAGE.name, "all time", DEVICES)) == brute_top(kept)
    assert db.scalar("SELECT COUNT(*) FROM device_histograms WHERE day < :d", {"d": second_day.date()}) == 0


def test_parallel_writers_replace_the_views_at_once(database_url: str) -> None:
    """main_job writes power and sensors in parallel steps, and each may find the views stale: writers replacing
    the same view at the same moment all succeed and leave one working view."""
    db = DatabaseResource(url=database_url)
    db.ensure_table(USAGE_TABLE)
    errors: list[BaseException] = []
    for _ in range(4):
        live_tables.ensure_tables(db)
        with db.begin() as conn:
            conn.execute(sa.delete(live_tables.VIEWS))  # every writer now finds both views stale
        errors += at_once(lambda: live_tables.ensure_views(db, [POWER_USAGE], "latest_reading"))
    assert errors == []
    assert read_top(db, POWER_USAGE.name, "all time", 3) == []
