"""The deterministic core: hashing, windows, the device fleet, the load profile and power_usage."""

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth_platform.specs.power import Devices, PowerSpec, Usage
from synth_platform.world import seeding
from synth_platform.world.devices import devices
from synth_platform.world.load_profile import hourly_energy_kwh
from synth_platform.world.power_usage import expected_rows, power_usage
from synth_platform.world.windows import Window, parse_partition_key

SEED = 7
INTERVALS = [1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60]


def test_hashing_is_stable_and_order_independent():
    key = seeding.stream_key(SEED, "s", "c")
    whole = seeding.uniform(key, np.arange(1000))
    assert np.array_equal(whole[500:], seeding.uniform(key, np.arange(500, 1000)))
    assert np.array_equal(whole[::-1], seeding.uniform(key, np.arange(1000)[::-1]))
    assert seeding.stream_key(SEED, "s", "c") != seeding.stream_key(SEED + 1, "s", "c")
    assert 0.45 < whole.mean() < 0.55
    normals = seeding.normal(key, np.arange(100_000))
    assert abs(normals.mean()) < 0.02 and abs(normals.std() - 1) < 0.02


def test_windows_split_days_and_reject_bad_input():
    day = Window.for_day("2026-03-29")
    assert day.seconds == 86_400 and day.partition_key() == "2026-03-29"
    assert [w.seconds for w in day.split(600)] == [600] * 144
    assert Window(day.start, day.end.replace(day=31)).days()[-1].partition_key() == "2026-03-30"
    with pytest.raises(ValueError, match="bad partition key '2026-13-01'"):
        parse_partition_key("2026-13-01")
    with pytest.raises(ValueError, match="naive datetime"):
        Window(datetime(2026, 1, 1), datetime(2026, 1, 2))
    with pytest.raises(ValueError, match="not aligned to whole UTC days"):
        Window(day.start.replace(hour=1), day.end).days()


@settings(max_examples=25, deadline=None)
@given(
    day=st.dates(min_value=parse_partition_key("2020-01-01"), max_value=parse_partition_key("2030-12-31")),
    interval=st.sampled_from(INTERVALS),
    live_minutes=st.sampled_from([1, 5, 10, 30, 60, 120, 360, 1440]),
)
def test_day_equals_union_of_live_windows(day, interval, live_minutes):
    spec = PowerSpec(devices=Devices(count=40), usage=Usage(interval_minutes=interval))
    window = Window.for_day(day)
    whole = power_usage(spec, SEED, window)
    parts = pa.concat_tables([power_usage(spec, SEED, w) for w in window.split(live_minutes * 60)])
    assert whole.equals(parts)
    assert whole.num_rows == expected_rows(spec, SEED, window)


def test_at_least_half_the_devices_report_in_every_interval():
    spec = PowerSpec(devices=Devices(count=101), usage=Usage(interval_minutes=15, min_report_fraction=0.5))
    table = power_usage(spec, SEED, Window.for_day("2026-05-04"))
    per_interval = np.unique(table["timestamp"].to_numpy(), return_counts=True)[1]
    assert len(per_interval) == 96
    assert per_interval.min() >= 51
    assert per_interval.min() < 101, "a subset reports, not always everyone"


def test_same_seed_same_rows_other_seed_other_rows():
    spec = PowerSpec()
    w = Window.for_day("2026-02-02")
    assert power_usage(spec, SEED, w).equals(power_usage(spec, SEED, w))
    assert not power_usage(spec, SEED, w).equals(power_usage(spec, SEED + 1, w))


def test_device_attributes_do_not_depend_on_fleet_size():
    small = devices(PowerSpec(devices=Devices(count=50)), SEED)
    large = devices(PowerSpec(devices=Devices(count=5000)), SEED)
    assert large.slice(0, 50).equals(small)
    customers = large["customer_id"].to_numpy()
    per_customer = np.unique(customers, return_counts=True)[1]
    assert per_customer.max() > 1 and 1.8 < per_customer.mean() < 3.2  # shared customers, mean ~2.5
    assert set(large["building_type"].to_pylist()) == {"home", "office", "retail", "industrial"}


def _mean_profile(spec: PowerSpec, building: str, weekend: bool) -> np.ndarray:
    fleet = devices(spec, SEED)
    index = np.nonzero(fleet["building_type"].to_numpy(zero_copy_only=False) == building)[0]
    # four weeks of Mondays (2026-01-05) or Saturdays (2026-01-10), hour by hour
    first = datetime(2026, 1, 10 if weekend else 5, tzinfo=UTC).timestamp()
    hours = (first + np.arange(4)[:, None] * 7 * 86_400 + np.arange(24)[None, :] * 3600).astype(np.int64)
    energy = hourly_energy_kwh(spec, SEED, index[:, None, None], hours[None, :, :])
    return energy.mean(axis=(0, 1))


def test_load_profile_has_its_shape():
    spec = PowerSpec(devices=Devices(count=2000))
    office, office_weekend = _mean_profile(spec, "office", False), _mean_profile(spec, "office", True)
    assert 9 <= office.argmax() <= 16, "offices peak in working hours"
    assert office[9:17].mean() > 3 * office[0:5].mean()
    assert office_weekend.mean() < 0.4 * office.mean(), "offices are quiet at weekends"
    home = _mean_profile(spec, "home", False)
    assert 17 <= home.argmax() <= 21, "homes peak in the evening"
    assert home[6:9].max() > 1.5 * home[10:15].mean(), "homes have a morning peak"
    assert home[2:5].mean() < 0.5 * home[17:21].mean()
