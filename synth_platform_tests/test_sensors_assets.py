"""device_telemetry through Dagster: a day into the database and Tinybird, and live windows that keep the
top-devices views current for a declared feature without materializing any analytics asset."""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg
import pytest

from synth_platform.analytics.features import features, histogram_edges
from synth_platform.analytics.live_tables import read_top
from synth_platform.analytics.results import as_utc
from synth_platform.assets.common import LIVE_WINDOW_END_TAG, LIVE_WINDOW_START_TAG
from synth_platform.definitions import MAIN_JOB, build_definitions
from synth_platform.domains import load_platform
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.tinybird import TinybirdResource
from synth_platform.specs.loader import SpecError
from synth_platform.world.sensors import sensor_readings
from synth_platform.world.windows import Window
from synth_platform_tests.config_files import edit_yaml

DAY = "2026-03-02"
FEATURE = "temperature_c"


def setup(config_dir, url, monkeypatch, tinybird_server=None):
    edit_yaml(config_dir / "world.yaml", domains=["power", "sensors", "analytics"], start_date="2026-02-01")
    edit_yaml(config_dir / "power.yaml", **{"devices.count": 8})
    edit_yaml(
        config_dir / "sensors.yaml",
        **{
            "features.temperature_c.decimals": 0,  # ties
            "interval_seconds": 60,
            "live_window_seconds": 60,
        },
    )
    monkeypatch.setenv("SYNTH_DATABASE_URL", url)
    if tinybird_server is not None:
        monkeypatch.setenv("TINYBIRD_API_URL", tinybird_server.url)
        monkeypatch.setenv("TINYBIRD_TOKEN", tinybird_server.token)
    platform = load_platform(config_dir)
    return platform, build_definitions(platform)


def table_rows(db: DatabaseResource, feature: str) -> list[tuple[datetime, int, float]]:
    return [
        (as_utc(t), int(d), float(v))
        for t, d, v in db.query(f"SELECT timestamp, device_id, {feature} FROM device_telemetry")
    ]


def brute(rows, after: datetime | None = None) -> list[tuple[int, float, datetime]]:
    best: dict[int, tuple[float, datetime]] = {}
    for ts, dev, v in rows:
        if (after is None or ts > after) and (dev not in best or (-v, ts) < (-best[dev][0], best[dev][1])):
            best[dev] = (v, ts)
    return sorted(((d, v, ts) for d, (v, ts) in best.items()), key=lambda r: (-r[1], r[0], r[2]))


def test_a_day_lands_in_the_database_and_tinybird(
    config_dir, sqlite_url, monkeypatch, instance, tinybird_server
) -> None:
    platform, defs = setup(config_dir, sqlite_url, monkeypatch, tinybird_server)
    spec = platform.get("sensors")
    result = defs.resolve_job_def(MAIN_JOB).execute_in_process(instance=instance, partition_key=DAY)
    assert result.success
    checks = {(e.asset_key.path[-1], e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    assert checks[("device_telemetry", "row_count")] is True
    db = DatabaseResource(url=sqlite_url)
    expected = sensor_readings(spec, platform.world.seed, Window.for_day(DAY))
    stored = db.query("SELECT * FROM device_telemetry ORDER BY timestamp, device_id")
    assert len(stored) == expected.num_rows
    assert [float(r[2]) for r in stored] == expected[FEATURE].to_pylist()
    readings = tinybird_server.rows("device_readings")
    assert len(readings) == expected.num_rows * len(spec.features) and not tinybird_server.quarantine("device_readings")
    cities = {r["device_id"]: r["city"] for r in readings}
    metadata = dict(db.query("SELECT device_id, city FROM device_metadata"))
    assert cities == {d: metadata[d] for d in cities}  # Tinybird's city is device_metadata's

    # the same ranking from the SQL view and from Tinybird's pipe
    rows = table_rows(db, FEATURE)
    view = [(int(d), float(v), as_utc(at)) for d, v, at in read_top(db, FEATURE, "all time", 5)]
    assert view == brute(rows)[:5]
    tb = TinybirdResource(api_url=tinybird_server.url, token=tinybird_server.token, outbox_dir=str(config_dir))
    pipe = tb.query_pipe("top_devices", {"feature": FEATURE, "window": "all", "limit": 5})["data"]
    assert [(r["device_id"], r["value"]) for r in pipe] == [(d, v) for d, v, _ in view]
    hist = db.scalar("SELECT SUM(readings) FROM device_histograms WHERE feature = :f", {"f": FEATURE})
    assert hist == expected.num_rows


def test_live_windows_keep_the_past_minute_current(config_dir, postgres_url, monkeypatch, instance) -> None:
    edit_yaml(config_dir / "sensors.yaml", tinybird=False)
    platform, defs = setup(config_dir, postgres_url, monkeypatch)
    job = defs.resolve_job_def("live_device_telemetry").get_subset(
        asset_selection={dg.AssetKey("device_telemetry"), dg.AssetKey("device_metadata")}, asset_check_selection=set()
    )
    db = DatabaseResource(url=postgres_url)
    start = Window.for_day(DAY).start + timedelta(hours=14)
    answers = []
    for i in range(4):
        w = Window(start + timedelta(minutes=i), start + timedelta(minutes=i + 1))
        tags = {LIVE_WINDOW_START_TAG: w.start.isoformat(), LIVE_WINDOW_END_TAG: w.end.isoformat()}
        result = job.execute_in_process(instance=instance, partition_key=DAY, tags=tags)
        assert result.success
        materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
        assert "top_devices" not in materialized and "device_histograms" not in materialized
        rows = table_rows(db, FEATURE)
        assert max(r[0] for r in rows) == w.start  # one reading time per one-minute window
        minute = [(int(d), float(v), as_utc(at)) for d, v, at in read_top(db, FEATURE, "past minute", 8)]
        assert minute == brute(rows, w.start - timedelta(minutes=1))
        assert {at for _, _, at in minute} == {w.start}
        answers.append(minute)
        hour = [(int(d), float(v), as_utc(at)) for d, v, at in read_top(db, FEATURE, "past hour", 8)]
        assert hour == brute(rows, w.start - timedelta(hours=1))
    assert all(a != b for a, b in zip(answers, answers[1:], strict=False))
    expected = sensor_readings(
        platform.get("sensors"), platform.world.seed, Window(start, start + timedelta(minutes=4))
    )
    stored = sorted(table_rows(db, FEATURE), key=lambda r: (r[0], r[1]))
    assert [r[2] for r in stored] == expected[FEATURE].to_pylist()  # the live windows are the generator's rows


def test_histogram_edges_name_declared_features(config_dir, sqlite_url, monkeypatch) -> None:
    edit_yaml(
        config_dir / "analytics.yaml",
        **{"histogram_edges.current_a": [1.0, 10.0, 100.0], "histogram_edges.tempreature_c": [1.0]},
    )
    with pytest.raises(SpecError) as err:
        setup(config_dir, sqlite_url, monkeypatch)
    assert "analytics.yaml: histogram_edges.tempreature_c: no feature 'tempreature_c' (built in or declared" in str(
        err.value
    )
    edit_yaml(config_dir / "analytics.yaml", histogram_edges={"current_a": [1.0, 10.0, 100.0]})
    platform, _ = setup(config_dir, sqlite_url, monkeypatch)
    edges = histogram_edges(platform, features(platform))
    assert edges["current_a"] == [1.0, 10.0, 100.0] and edges["power_usage_kwh"][0] == 0.25
    assert edges["temperature_c"] == platform.get("sensors").features["temperature_c"].default_edges()
