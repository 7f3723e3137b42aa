"""top_devices and device_histograms through Dagster after the power world, in the main job's range run."""

import base64
from datetime import UTC, datetime

import dagster as dg
import pytest

from synth_platform.analytics import report
from synth_platform.analytics.meter_minutes import METER_POWER
from synth_platform.analytics.queries import POWER_USAGE
from synth_platform.analytics.results import as_utc
from synth_platform.definitions import build_definitions
from synth_platform.domains import load_platform
from synth_platform.sinks.database import DatabaseResource
from synth_platform.specs.loader import SpecError
from synth_platform.streams.meters import read_table, window_manifests
from synth_platform.world.meter_ids import id_numbers, id_strings
from synth_platform.world.windows import Window
from synth_platform_tests.config_files import edit_yaml
from synth_platform_tests.runs import run_days

DAYS = ["2026-03-01", "2026-03-02"]


def test_analytics_assets_in_a_range_run(config_dir, sqlite_url, monkeypatch, instance) -> None:
    edit_yaml(config_dir / "world.yaml", domains=["power", "analytics"], start_date="2026-02-01")
    edit_yaml(config_dir / "power.yaml", **{"devices.count": 25, "usage.interval_minutes": 30})
    edit_yaml(config_dir / "analytics.yaml", top_n=4)
    monkeypatch.setenv("SYNTH_DATABASE_URL", sqlite_url)
    defs = build_definitions(load_platform(config_dir))
    assert defs.resolve_job_def("query_load_test") is not None
    result = run_days(defs, instance, DAYS[0], DAYS[1])
    assert result.success

    top = result.asset_materializations_for_node("top_devices")[0].metadata
    text = top["top_power_usage_kwh"].value
    for name in ("all time", "past hour", "past minute", f"day {DAYS[0]}", f"day {DAYS[1]}"):
        assert f"**{name}**" in text
    db = DatabaseResource(url=sqlite_url)
    best = report.top_devices(db, POWER_USAGE, None, 4)
    assert f"| 1 | {best[0].device_id} | {best[0].value} |" in text
    assert text.split("**past hour**")[0].count("\n| ") == 1 + 4  # header + top_n rows (all time)

    hist = result.asset_materializations_for_node("device_histograms")[0].metadata
    window = Window(Window.for_day(DAYS[0]).start, Window.for_day(DAYS[1]).end)
    rows = db.scalar("SELECT COUNT(*) FROM power_usage")
    assert hist["power_usage_kwh_readings"].value == rows
    assert hist["power_usage_kwh_intervals"].value == 2 * 48
    table = hist["histogram_power_usage_kwh"].value.splitlines()
    assert len(table) == 2 + 25  # every device
    readings_col = table[0].split(" | ").index("readings")
    assert sum(int(line.split(" | ")[readings_col]) for line in table[2:]) == rows
    assert isinstance(hist["load_profile_png"], dg.PathMetadataValue)
    png = base64.b64decode(hist["load_profile"].value.split("base64,")[1].rstrip(")"))
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert str(window) == hist["window"].value


def test_meter_minutes_from_the_delivered_files_feed_top_devices(config_dir, sqlite_url, monkeypatch, instance) -> None:
    edit_yaml(config_dir / "world.yaml", domains=["power", "meters", "analytics"], start_date="2026-02-01")
    edit_yaml(config_dir / "power.yaml", **{"devices.count": 12})
    faults = {"faults.zero_probability": 0.01, "faults.gap_probability": 0.3}
    edit_yaml(config_dir / "meters.yaml", **{"fleet.count": 12, "output.meters_per_part": 5, **faults})
    edit_yaml(config_dir / "analytics.yaml", top_n=5)
    monkeypatch.setenv("SYNTH_DATABASE_URL", sqlite_url)
    platform = load_platform(config_dir)
    defs = build_definitions(platform)
    result = run_days(defs, instance, DAYS[0])
    assert result.success

    # brute force over the delivered files: per meter-minute readings, zeros, max power and its first time
    bucket = defs.resources["bucket"]
    _, manifests, _ = window_manifests(bucket, Window.for_day(DAYS[0]))
    fleet = {m: i + 1 for i, m in enumerate(_fleet_ids(platform))}
    best: dict[tuple[int, datetime], list] = {}
    for prefix, body in manifests:
        for f in body["files"]:
            for r in read_table(bucket, prefix + f["name"]).to_pylist():
                ts = r["timestamp"] if isinstance(r["timestamp"], datetime) else datetime.fromisoformat(r["timestamp"])
                ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts
                key = (fleet[r["meter_id"]], ts.replace(second=0))
                cell = best.setdefault(key, [0, 0, -1.0, None])
                cell[0] += 1
                cell[1] += r.get("quality") == "zero"
                if r["power_kw"] > cell[2]:
                    cell[2], cell[3] = r["power_kw"], ts
    db = DatabaseResource(url=sqlite_url)
    stored = db.query(
        "SELECT device_id, minute, readings, zero_readings, power_kw_max, power_kw_max_at FROM meter_minutes"
    )
    assert len(stored) == len(best) and sum(r[2] for r in stored) == sum(c[0] for c in best.values())
    for device, minute, readings, zeros, power, at in stored:
        assert best[(device, as_utc(minute))] == [readings, zeros, power, as_utc(at)]

    per_device: dict[int, tuple[float, datetime]] = {}
    for (device, _), (_, _, power, at) in best.items():
        if device not in per_device or (-power, at) < (-per_device[device][0], per_device[device][1]):
            per_device[device] = (power, at)
    expected = sorted(per_device.items(), key=lambda kv: (-kv[1][0], kv[0], kv[1][1]))[:5]
    got = report.top_devices(db, METER_POWER, None, 5)
    assert [(r.device_id, r.value, r.at) for r in got] == [(d, v, at) for d, (v, at) in expected]
    top = result.asset_materializations_for_node("top_devices")[0].metadata
    assert f"| 1 | {got[0].device_id} | {got[0].value} |" in top["top_meter_power_kw"].value
    assert "top_meter_voltage_v" in top
    hist = result.asset_materializations_for_node("device_histograms")[0].metadata
    assert hist["meter_power_kw_readings"].value == len(best)


def _fleet_ids(platform) -> list[str]:
    spec = platform.get("meters")
    return id_strings(id_numbers(platform.world.seed, spec.fleet.count, spec.fleet.id_format),
                      spec.fleet.id_format).to_pylist()  # fmt: skip


def test_bad_analytics_config_names_file_and_key(config_dir) -> None:
    edit_yaml(config_dir / "world.yaml", domains=["power", "analytics"])
    edit_yaml(config_dir / "analytics.yaml", **{"histogram_edges.power_usage_kwh": [2, 1], "load_test.concurrency": 0})
    with pytest.raises(SpecError) as err:
        load_platform(config_dir)
    text = str(err.value)
    assert "analytics.yaml: histogram_edges: power_usage_kwh: edges must be a non-empty, strictly increasing" in text
    assert "analytics.yaml: load_test.concurrency: Input should be greater than or equal to 1" in text


def test_top_devices_rebuilds_only_the_rollups_its_run_did_not_write(config_dir, sqlite_url, monkeypatch, instance):
    edit_yaml(config_dir / "world.yaml", domains=["power"], start_date="2026-02-01")
    edit_yaml(config_dir / "power.yaml", **{"devices.count": 9, "usage.interval_minutes": 30})
    monkeypatch.setenv("SYNTH_DATABASE_URL", sqlite_url)
    assert run_days(build_definitions(load_platform(config_dir)), instance, DAYS[0]).success  # no analytics yet
    db = DatabaseResource(url=sqlite_url)
    daily_top = "SELECT COUNT(*) FROM device_daily_top WHERE feature = 'power_usage_kwh' AND day = :day"

    edit_yaml(config_dir / "world.yaml", domains=["power", "analytics"])
    defs = build_definitions(load_platform(config_dir))
    alone = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={dg.AssetKey("top_devices")})
    result = alone.execute_in_process(instance=instance, partition_key=DAYS[0])
    assert result.success and "rebuilding the rollups of ['power_usage']" in logged(instance, result.run_id)
    assert db.scalar(daily_top, {"day": DAYS[0]}) == 9  # each device's maximum of the day

    result = run_days(defs, instance, DAYS[1])  # the stream's own step refreshed its rollups
    assert result.success and "rebuilding the rollups of no table" in logged(instance, result.run_id)
    assert db.scalar(daily_top, {"day": DAYS[1]}) == 9


def logged(instance, run_id: str) -> str:
    return "\n".join(e.user_message for e in instance.all_logs(run_id))
