"""power_usage rows for a window: which devices report in each interval, and what they report."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from synth_platform.specs.power import PowerSpec
from synth_platform.world import seeding
from synth_platform.world.devices import device_ids
from synth_platform.world.load_profile import HOUR, hour_shares, hourly_energy_kwh
from synth_platform.world.windows import Window, aligned_steps

POWER_USAGE_SCHEMA = pa.schema(
    [
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("device_id", pa.int64(), nullable=False),
        pa.field("power_usage_kwh", pa.float64(), nullable=False),
    ]
)
POWER_USAGE_COLUMNS = {
    "timestamp": "Start of the reading's interval (UTC)",
    "device_id": "Device that reported (device_metadata.device_id)",
    "power_usage_kwh": "Energy used in the interval, from the load profile of the device's building type",
}


def interval_starts(spec: PowerSpec, window: Window) -> np.ndarray:
    return np.array(aligned_steps(window, spec.usage.interval_seconds), dtype=np.int64)


def reporting_counts(spec: PowerSpec, seed: int, starts: np.ndarray) -> np.ndarray:
    """How many devices report in each interval: at least min_report_fraction of the fleet."""
    n = spec.devices.count
    low = spec.usage.min_report_fraction
    frac = low + (1.0 - low) * seeding.uniform(seeding.stream_key(seed, "power", "report_fraction"), starts)
    return np.clip(np.ceil(n * frac).astype(np.int64), int(np.ceil(n * low)), n)


def expected_rows(spec: PowerSpec, seed: int, window: Window) -> int:
    return int(reporting_counts(spec, seed, interval_starts(spec, window)).sum())


def power_usage(spec: PowerSpec, seed: int, window: Window) -> pa.Table:
    """Readings with timestamps in `window`, ordered by (timestamp, device_id)."""
    starts = interval_starts(spec, window)
    index = np.arange(spec.devices.count, dtype=np.int64)
    if len(starts) == 0:
        return POWER_USAGE_SCHEMA.empty_table()

    # The k devices with the lowest scores report; scores are per (device, interval), so a window's subset
    # does not depend on which other intervals are generated with it.
    scores = seeding.uniform(seeding.stream_key(seed, "power", "report"), index[None, :], starts[:, None])
    counts = reporting_counts(spec, seed, starts)
    threshold = np.take_along_axis(np.sort(scores, axis=1), (counts - 1)[:, None], axis=1)
    t_idx, d_idx = np.nonzero(scores <= threshold)

    ts = starts[t_idx]
    hour = ts - ts % HOUR
    dev = index[d_idx]
    kwh = hourly_energy_kwh(spec, seed, dev, hour)
    parts = HOUR // spec.usage.interval_seconds
    if parts > 1:
        shares = hour_shares(seed, dev, hour, parts, "power_interval")
        kwh = kwh * shares[np.arange(len(ts)), (ts % HOUR) // spec.usage.interval_seconds]

    return pa.table(
        {
            "timestamp": pa.array(ts * 1_000_000, type=pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "device_id": device_ids(dev),
            "power_usage_kwh": np.round(kwh, 4),
        },
        schema=POWER_USAGE_SCHEMA,
    )
