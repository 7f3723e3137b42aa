"""Top devices, histograms and the hourly profile computed in SQL equal a brute-force computation in Python, on
SQLite, PostgreSQL and MariaDB; ties are built in on purpose."""

from __future__ import annotations

import bisect
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from synth_platform.analytics import report
from synth_platform.analytics.queries import POWER_USAGE
from synth_platform.sinks.database import DatabaseResource
from synth_platform.streams.power import DEVICE_TABLE, USAGE_TABLE
from synth_platform.world import seeding
from synth_platform.world.devices import DEVICE_SCHEMA
from synth_platform.world.power_usage import POWER_USAGE_SCHEMA
from synth_platform.world.windows import Window

START = datetime(2026, 3, 1, tzinfo=UTC)
DEVICES = 40
HOURS = 48
EDGES = [0.5, 1.0, 2.0, 3.5]
TYPES = ["home", "office", "retail"]
CITIES = ["Austin", "Boston", "Chicago"]


def readings() -> list[tuple[datetime, int, float]]:
    """Values rounded to one decimal (many ties), about 1 in 5 device-hours missing, plus ties made on purpose:
    devices 3 and 4 share the overall maximum, device 4 reaches it twice, devices 10-12 share a day's maximum."""
    key = seeding.stream_key(11, "analytics-test")
    d, h = np.meshgrid(np.arange(1, DEVICES + 1), np.arange(HOURS), indexing="ij")
    values = np.round(seeding.uniform(key, d, h, 0) * 4, 1)
    present = seeding.uniform(key, d, h, 1) > 0.2
    cells = zip(d.ravel(), h.ravel(), values.ravel(), present.ravel(), strict=True)
    rows = {(START + timedelta(hours=int(hh)), int(dd)): float(v) for dd, hh, v, p in cells if p}
    for ts, dev in [(5, 3), (7, 4), (30, 4)]:
        rows[(START + timedelta(hours=ts), dev)] = 9.5
    for dev in (10, 11, 12):
        rows[(START + timedelta(hours=40), dev)] = 7.25
        rows[(START + timedelta(hours=44), dev)] = 7.25
    return sorted((ts, dev, v) for (ts, dev), v in rows.items())


def load(url: str) -> tuple[DatabaseResource, list[tuple[datetime, int, float]]]:
    db = DatabaseResource(url=url)
    for table in (USAGE_TABLE, DEVICE_TABLE):
        db.ensure_table(table)
    data = readings()
    db.replace(USAGE_TABLE, pa.table({"timestamp": [r[0] for r in data], "device_id": [r[1] for r in data],
                                      "power_usage_kwh": [r[2] for r in data]}, schema=POWER_USAGE_SCHEMA))  # fmt: skip
    ids = list(range(1, DEVICES + 2))  # the last device never reports
    db.replace(
        DEVICE_TABLE,
        pa.table(
            {
                "device_id": ids,
                "customer_id": ids,
                "latitude": [0.0] * len(ids),
                "longitude": [0.0] * len(ids),
                "building_type": [TYPES[i % 3] for i in ids],
                "region": ["north"] * len(ids),
                "city": [CITIES[i % 3] for i in ids],
            },
            schema=DEVICE_SCHEMA,
        ),
    )
    return db, data


def brute_top(data, window: Window | None, n: int) -> list[tuple[int, float, datetime]]:
    best: dict[int, tuple[float, datetime]] = {}
    for ts, dev, v in data:
        if window and not (window.start <= ts < window.end):
            continue
        if dev not in best or v > best[dev][0] or (v == best[dev][0] and ts < best[dev][1]):
            best[dev] = (v, ts)
    ranked = sorted(((dev, v, ts) for dev, (v, ts) in best.items()), key=lambda r: (-r[1], r[0], r[2]))
    return ranked[:n]


@pytest.fixture
def loaded(database_url: str):
    return load(database_url)


def test_top_devices_equal_brute_force_in_every_window(loaded) -> None:
    db, data = loaded
    end = report.anchor(db, POWER_USAGE, "latest_reading")
    assert end == max(r[0] for r in data) + timedelta(microseconds=1)
    days = Window(START, START + timedelta(days=2)).days()
    windows = report.named_windows(end, days) + [
        ("ties", Window(START + timedelta(hours=40), START + timedelta(hours=45)))
    ]
    assert [name for name, _ in windows][:3] == ["all time", "past hour", "past minute"]
    for name, window in windows:
        for n in (1, 3, 10, DEVICES + 5):
            got = report.top_devices(db, POWER_USAGE, window, n)
            expected = brute_top(data, window, n)
            assert [(r.device_id, r.value, r.at) for r in got] == expected, (name, n)
            assert len({r.device_id for r in got}) == len(got)  # one row per device
    top = report.top_devices(db, POWER_USAGE, None, 3)
    assert [(r.device_id, r.at.hour) for r in top[:2]] == [(3, 5), (4, 7)]  # tie: lower id first, earliest time
    ties = report.top_devices(db, POWER_USAGE, windows[-1][1], 3)
    assert [(r.device_id, r.at) for r in ties] == [(d, START + timedelta(hours=40)) for d in (10, 11, 12)]


def test_histograms_sum_to_the_row_count_and_match_brute_force(loaded) -> None:
    db, data = loaded
    for window in (None, Window.for_day(START.date()), Window(START, START + timedelta(hours=7))):
        inside = [r for r in data if window is None or window.start <= r[0] < window.end]
        h = report.histograms(db, POWER_USAGE, window, EDGES, devices=list(range(1, DEVICES + 2)))
        assert h.rows == len(inside)
        assert sum(sum(c) for c in h.values.values()) == len(inside)
        expected: dict[int, list[int]] = defaultdict(lambda: [0] * (len(EDGES) + 1))
        for _, dev, v in inside:
            expected[dev][bisect.bisect_right(EDGES, v)] += 1
        assert h.values == dict(expected)
        intervals = len({r[0] for r in inside})
        assert h.intervals == intervals
        for dev in range(1, DEVICES + 2):
            reported = sum(1 for r in inside if r[1] == dev)
            assert h.status[dev] == [reported, intervals - reported]
        table = h.table()
        assert table.num_rows == DEVICES + 1 and sum(table.column("readings").to_pylist()) == len(inside)
        assert table.column_names[1:6] == ["< 0.5", "[0.5, 1)", "[1, 2)", "[2, 3.5)", ">= 3.5"]


def test_hourly_profile_per_building_type_in_utc(loaded) -> None:
    db, data = loaded
    sums: dict[tuple[str, int], list[float]] = defaultdict(list)
    for ts, dev, v in data:
        sums[(TYPES[dev % 3], ts.hour)].append(v)
    profile = report.hourly_profile(db, POWER_USAGE, None, scale=2.0)
    assert set(profile) == set(TYPES)
    for (group, hour), values in sums.items():
        assert profile[group][hour] == pytest.approx(2.0 * sum(values) / len(values))
