"""Energy per device-hour from the load profile: building type x weekday/weekend x hour, noise, spikes.

This is the single definition of "how much a device uses in an hour". The power world reports it (split
into sub-hour intervals), and the smart-meter fleet spreads the same energy over its 10-second readings,
so the two worlds agree on every device-hour they share.
"""

from __future__ import annotations

import numpy as np

from synth_platform.specs.power import PowerSpec
from synth_platform.world import seeding
from synth_platform.world.devices import building_type_index, device_scale

HOUR = 3600
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)


def is_weekend(epoch_s: np.ndarray) -> np.ndarray:
    return (np.asarray(epoch_s) // 86_400 + _EPOCH_WEEKDAY) % 7 >= 5


def profile_table(spec: PowerSpec) -> np.ndarray:
    """Factors indexed [building type, weekend?, hour of day]."""
    return np.array([[b.weekday, b.weekend] for b in spec.building_types.values()], dtype=np.float64)


def profile_factor(spec: PowerSpec, type_idx: np.ndarray, epoch_s: np.ndarray) -> np.ndarray:
    hour_of_day = (np.asarray(epoch_s) % 86_400) // HOUR
    return profile_table(spec)[type_idx, is_weekend(epoch_s).astype(np.int64), hour_of_day]


def hourly_energy_kwh(spec: PowerSpec, seed: int, index: np.ndarray, hour_s: np.ndarray) -> np.ndarray:
    """kWh used by device `index` in the hour starting at epoch second `hour_s` (arrays broadcast)."""
    index = np.asarray(index, dtype=np.int64)
    hour_s = np.asarray(hour_s, dtype=np.int64)
    usage = spec.usage
    type_idx = building_type_index(spec, seed, index)
    base_kw = np.array([b.base_kw for b in spec.building_types.values()])[type_idx] * device_scale(seed, index)
    sd = usage.noise_sd
    noise = np.exp(sd * seeding.normal(seeding.stream_key(seed, "power", "noise"), index, hour_s) - sd * sd / 2)
    spiking = seeding.uniform(seeding.stream_key(seed, "power", "spike"), index, hour_s) < usage.spike_probability
    low, high = usage.spike_factor
    size = low + (high - low) * seeding.uniform(seeding.stream_key(seed, "power", "spike_size"), index, hour_s)
    spike = np.where(spiking, size, 1.0)
    return base_kw * profile_factor(spec, type_idx, hour_s) * noise * spike


def hour_shares(seed: int, index: np.ndarray, hour_s: np.ndarray, parts: int, stream: str) -> np.ndarray:
    """Weights (summing to 1 over the last axis) that split each device-hour into `parts` slices.

    `stream` names the consumer (power intervals, meter slots) so each gets its own within-hour texture
    while the hourly total stays shared. The texture is a bounded jitter of +-20% (sd about 8%) per slice; it is
    drawn once per meter reading, so it uses the cheap triangular draw.
    """
    index = np.asarray(index, dtype=np.int64)[..., None]
    hour_s = np.asarray(hour_s, dtype=np.int64)[..., None]
    jitter = seeding.triangular(seeding.stream_key(seed, "power", "shares", stream), index, hour_s, np.arange(parts))
    weights = 1.0 + 0.2 * jitter
    return weights / weights.sum(axis=-1, keepdims=True)
