"""device_telemetry's generator: deterministic, a backfill equals the union of its live windows, and the declared
shapes show in the data (daily peak hour, load dependence, spikes, stuck hours, limits)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from synth_platform.specs.loader import SpecError, parse
from synth_platform.specs.power import Devices, PowerSpec
from synth_platform.specs.sensors import SensorsSpec, load_sensors
from synth_platform.world.power_usage import power_usage
from synth_platform.world.sensors import expected_rows, sensor_readings
from synth_platform.world.windows import Window
from synth_platform_tests.config_files import edit_yaml

DAY = Window.for_day("2026-03-02")


def spec(**features: dict) -> SensorsSpec:
    power = PowerSpec(devices=Devices(count=30))
    features = features or {
        "temperature_c": {
            "base": 21.0,
            "daily": {"amplitude": 3.0, "peak": 15},
            "device_offset_sd": 1.0,
            "noise_sd": 0.2,
            "spikes": {"probability": 0.001, "size": [8, 15]},
            "stuck": {"probability": 0.01},
        },
        "current_a": {"base": 0.2, "load": 4.35, "noise_sd": 0.05, "limits": [0, 1000]},
    }
    return SensorsSpec(interval_seconds=60, features=features).model_copy(update={"power": power})


def test_same_seed_and_window_give_the_same_bytes() -> None:
    s = spec()
    a, b = sensor_readings(s, 7, DAY), sensor_readings(s, 7, DAY)
    assert a.equals(b) and a.num_rows == expected_rows(s, 7, DAY)
    assert a.column_names == ["timestamp", "device_id", "temperature_c", "current_a"]
    assert 0.95 * 30 * 1440 < a.num_rows < 30 * 1440  # about 2% of device-intervals are missing
    assert not sensor_readings(s, 8, DAY).equals(a)


def test_a_backfill_equals_the_union_of_live_windows() -> None:
    s = spec()
    hours = Window(DAY.start, DAY.start.replace(hour=3))
    live = pa.concat_tables(sensor_readings(s, 7, w) for w in hours.split(60))
    assert live.equals(sensor_readings(s, 7, hours))
    day = pa.concat_tables(sensor_readings(s, 7, w) for w in DAY.split(3600))
    assert day.equals(sensor_readings(s, 7, DAY))


def test_the_daily_cycle_peaks_at_the_configured_hour() -> None:
    for peak in (4, 15):
        s = spec(temperature_c={"base": 20.0, "daily": {"amplitude": 3.0, "peak": peak}, "noise_sd": 0.5})
        data = sensor_readings(s, 3, DAY)
        # buckets centred on the whole hours (h - 30 min .. h + 30 min), so the peak's is the highest, not tied
        hours = ((data["timestamp"].cast(pa.int64()).to_numpy() + 1_800_000_000) // 3_600_000_000) % 24
        means = np.bincount(hours, weights=data["temperature_c"].to_numpy()) / np.bincount(hours)
        assert int(np.argmax(means)) == peak
        assert means.max() - means.min() == pytest.approx(6.0, abs=0.3)  # twice the amplitude


def test_a_load_dependent_feature_follows_power_usage() -> None:
    s = spec()
    data = sensor_readings(s, 5, DAY)
    usage = power_usage(s.power, 5, DAY)  # hourly readings: kWh in the hour = mean kW
    kw = {
        (int(t.timestamp()), d): v for t, d, v in zip(*(usage[c].to_pylist() for c in usage.column_names), strict=True)
    }
    ts = data["timestamp"].cast(pa.int64()).to_numpy() // 1_000_000
    devices = data["device_id"].to_numpy()
    pairs = [
        (kw[(t - t % 3600, d)], a)
        for t, d, a in zip(ts, devices, data["current_a"].to_numpy(), strict=True)
        if (t - t % 3600, d) in kw
    ]
    x, y = np.array(pairs).T
    assert len(pairs) > 10_000 and np.corrcoef(x, y)[0, 1] > 0.99
    assert np.polyfit(x, y, 1)[0] == pytest.approx(4.35, rel=0.01)
    temperature = data["temperature_c"].to_numpy()[: len(x)]
    assert abs(np.corrcoef(x, temperature)[0, 1]) < 0.3  # a feature without load does not follow it


def test_spikes_stuck_hours_and_limits() -> None:
    plain = {"base": 10.0, "daily": {"amplitude": 2.0, "peak": 12}, "noise_sd": 1.0}
    base = sensor_readings(spec(x=plain), 1, DAY)["x"].to_numpy()
    spiked = sensor_readings(spec(x={**plain, "spikes": {"probability": 0.5, "size": [20, 20]}}), 1, DAY)[
        "x"
    ].to_numpy()
    jumps = np.round(spiked - base, 6)
    assert set(np.unique(jumps)) == {0.0, 20.0} and 0.45 < (jumps == 20).mean() < 0.55

    stuck = sensor_readings(spec(x={**plain, "stuck": {"probability": 0.5}}), 1, DAY)
    frame = stuck.to_pandas()
    frame["hour"] = frame["timestamp"].dt.floor("h")
    distinct = frame.groupby(["device_id", "hour"])["x"].nunique()
    share = (distinct == 1).mean()
    assert 0.4 < share < 0.6  # stuck device-hours repeat one value, the others vary (noise sd 1)
    first = frame.sort_values("timestamp").groupby(["device_id", "hour"])["x"].first()
    hourly = sensor_readings(spec(x=plain), 1, DAY).to_pandas()
    at_hour = hourly[hourly["timestamp"].dt.minute == 0].set_index(["device_id", "timestamp"])["x"]
    for key in distinct[distinct == 1].index[:50]:  # the repeated value is the hour's first instant's
        if key in at_hour.index:
            assert first[key] == at_hour[key]

    clipped = sensor_readings(spec(x={**plain, "limits": [9.0, 11.0], "decimals": 1}), 1, DAY)["x"].to_numpy()
    assert clipped.min() == 9.0 and clipped.max() == 11.0 and np.all(np.round(clipped, 1) == clipped)


def test_range_gives_each_device_its_own_level() -> None:
    data = sensor_readings(spec(h={"range": [35, 60]}), 2, Window(DAY.start, DAY.start.replace(hour=1)))
    levels = {d: v for d, v in zip(data["device_id"].to_pylist(), data["h"].to_pylist(), strict=True)}
    assert len(set(levels.values())) == 30 and all(35 <= v <= 60 for v in levels.values())


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ({"t": {"base": 1.0, "range": [0, 2]}}, "features.t: needs exactly one of `base`"),
        ({"t": {}}, "features.t: needs exactly one of `base`"),
        ({"power_usage_kwh": {"base": 1.0}}, "features: 'power_usage_kwh': the name is taken"),
        ({"Bad-Name": {"base": 1.0}}, "features: 'Bad-Name': a feature name is a lowercase identifier"),
        ({"t": {"base": 1.0, "limits": [5, 1]}}, "features.t.limits: must be [low, high]"),
        ({"t": {"base": 1.0}, "interval_seconds": 7}, "interval_seconds: must be a whole number of seconds that"),
        ({"t": {"base": 1.0}, "live_window_seconds": 90}, "<top level>: live_window_seconds must be a whole number of"),
    ],
)
def test_bad_features_name_the_key(features: dict, message: str) -> None:
    top = {k: features.pop(k) for k in list(features) if k.endswith("_seconds")}
    with pytest.raises(SpecError) as err:
        parse(SensorsSpec, {"features": features, **top}, "sensors.yaml")
    assert f"sensors.yaml: {message}" in str(err.value)


def test_telemetry_takes_its_devices_from_power_yaml(config_dir) -> None:
    edit_yaml(config_dir / "power.yaml", **{"devices.count": 7})
    assert load_sensors(config_dir).power.devices.count == 7
    edit_yaml(config_dir / "sensors.yaml", **{"power.devices.count": 3})
    with pytest.raises(SpecError, match=r"sensors.yaml: power: unknown key \(the devices and load profile come"):
        load_sensors(config_dir)
