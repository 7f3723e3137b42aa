"""device_telemetry rows for a window: the declared sensor features of every power-world device (spec.power).

A feature's value at (device, time) is its device's level (base, or drawn from a range, plus a per-device offset),
a daily and a seasonal cosine, an optional term per kW of the device's power usage in that hour (the load profile of
world/load_profile.py, so a load-dependent feature follows power_usage), normal noise and rare spikes. A stuck
device-hour repeats the value of the hour's first instant. Every draw hashes (seed, feature, device, time), so a
window's rows never depend on which other windows are generated: a backfill equals the union of live windows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from synth_platform.specs.sensors import FeatureSpec, SensorsSpec
from synth_platform.world import seeding
from synth_platform.world.devices import device_ids
from synth_platform.world.load_profile import HOUR, hourly_energy_kwh
from synth_platform.world.windows import DAY_SECONDS, Window, aligned_steps

_YEAR_DAYS = 365.2425


def sensors_columns(spec: SensorsSpec) -> dict[str, str]:
    """Column descriptions: each feature's name with its unit."""
    features = {n: f"Feature {n}" + (f", {f.unit}" if f.unit else "") for n, f in spec.features.items()}
    return {"timestamp": "Time of the reading (UTC)", "device_id": "Device that reported", **features}


def sensors_schema(spec: SensorsSpec) -> pa.Schema:
    return pa.schema(
        [
            pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("device_id", pa.int64(), nullable=False),
            *(pa.field(name, pa.float64(), nullable=False) for name in spec.features),
        ]
    )


def day_of_year(epoch_s: np.ndarray) -> np.ndarray:
    """Fractional days since 1 January (UTC) of each instant's year."""
    seconds = np.asarray(epoch_s, dtype="datetime64[s]")
    return (seconds - seconds.astype("datetime64[Y]")).astype(np.int64) / DAY_SECONDS


def feature_values(
    feature: FeatureSpec, name: str, seed: int, index: np.ndarray, t: np.ndarray, kw: np.ndarray | None
) -> np.ndarray:
    """Values of one feature for devices `index` at instants `t` (arrays broadcast; `kw`: the device-hour's
    power usage, needed when the feature depends on load)."""

    def key(column: str) -> np.uint64:
        return seeding.stream_key(seed, "sensors", name, column)

    if feature.range is not None:
        low, high = feature.range
        level = low + (high - low) * seeding.uniform(key("level"), index)
    else:
        level = np.full(np.shape(index), feature.base, dtype=np.float64)
    value = level + feature.device_offset_sd * seeding.normal(key("offset"), index)
    hours = (t % DAY_SECONDS) / HOUR
    value = value + feature.daily.amplitude * np.cos(2 * np.pi * (hours - feature.daily.peak) / 24)
    season = (day_of_year(t) - feature.seasonal.peak) / _YEAR_DAYS
    value = value + feature.seasonal.amplitude * np.cos(2 * np.pi * season)
    if feature.load:
        value = value + feature.load * kw
    if feature.noise_sd:
        value = value + feature.noise_sd * seeding.normal(key("noise"), index, t)
    if feature.spikes.probability:
        low, high = feature.spikes.size
        spiking = seeding.uniform(key("spike"), index, t) < feature.spikes.probability
        value = value + np.where(spiking, low + (high - low) * seeding.uniform(key("spike_size"), index, t), 0.0)
    if feature.limits is not None:
        value = np.clip(value, *feature.limits)
    return np.round(value, feature.decimals)


def sensor_readings(spec: SensorsSpec, seed: int, window: Window) -> pa.Table:
    """Readings with timestamps in `window`, ordered by (timestamp, device_id); a device misses an interval with
    `missing_probability`."""
    schema = sensors_schema(spec)
    starts, sent = _sent(spec, seed, window)
    if len(starts) == 0:
        return schema.empty_table()
    t_idx, dev = np.nonzero(sent)
    ts = starts[t_idx]
    hour = ts - ts % HOUR
    kw = hourly_energy_kwh(spec.power, seed, dev, hour) if any(f.load for f in spec.features.values()) else None
    columns = {}
    for name, feature in spec.features.items():
        at = ts
        if feature.stuck.probability:
            stuck = seeding.uniform(seeding.stream_key(seed, "sensors", name, "stuck"), dev, hour)
            at = np.where(stuck < feature.stuck.probability, hour, ts)
        columns[name] = feature_values(feature, name, seed, dev, at, kw)
    return pa.table(
        {
            "timestamp": pa.array(ts * 1_000_000, type=pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "device_id": device_ids(dev),
            **columns,
        },
        schema=schema,
    )


def _sent(spec: SensorsSpec, seed: int, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """The window's interval starts, and [interval, device index] whether that device reports then."""
    starts = np.array(aligned_steps(window, spec.interval_seconds), dtype=np.int64)
    index = np.arange(spec.power.devices.count, dtype=np.int64)
    draw = seeding.uniform(seeding.stream_key(seed, "sensors", "missing"), index[None, :], starts[:, None])
    return starts, draw >= spec.missing_probability


def expected_rows(spec: SensorsSpec, seed: int, window: Window) -> int:
    return int(_sent(spec, seed, window)[1].sum())
