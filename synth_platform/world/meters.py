"""Smart-meter readings: meter i is power-world device i, and each meter-hour carries that device-hour's energy.

A meter reports every `interval_seconds`. The hour's energy (the power world's `hourly_energy_kwh`) is spread over
the hour's slots with `hour_shares(..., stream="meter_slot")`, so a meter-hour's readings sum to the power world's
kWh for that device-hour. Every value is a hash of (seed, meter, time): a block of meters over a window regenerates
alone and equals the same block of a bigger run, so the fleet is produced in bounded chunks of meters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from synth_platform.specs.meters import MetersSpec
from synth_platform.world import seeding
from synth_platform.world.devices import DEVICE_COLUMNS, devices
from synth_platform.world.load_profile import HOUR, hour_shares, hourly_energy_kwh
from synth_platform.world.meter_ids import id_strings
from synth_platform.world.windows import DAY_SECONDS, Window, aligned_steps

QUALITY_GOOD, QUALITY_ZERO = "good", "zero"  # equal width: rendered as fixed-width text


@dataclass(frozen=True)
class Readings:
    """Readings of k meters over one window, as a (meter, slot) grid; `present` drops readings lost in gaps."""

    index: np.ndarray  # (k,) fleet indices
    id_numbers: np.ndarray  # (k,) uint64, see world.meter_ids
    slots: np.ndarray  # (s,) epoch seconds of the reading timestamps
    energy_kwh: np.ndarray  # (k, s), rounded to 6 decimals
    power_kw: np.ndarray  # (k, s), rounded to 4 decimals
    voltage: np.ndarray  # (k, s), rounded to 2 decimals
    present: np.ndarray | None  # (k, s) bool, None when every reading is present
    zero: np.ndarray | None  # (k, s) bool, readings reported as zero (fault); None when that fault is off

    @property
    def rows(self) -> int:
        return int(self.present.sum()) if self.present is not None else self.energy_kwh.size


def slot_starts(spec: MetersSpec, window: Window) -> np.ndarray:
    return np.array(aligned_steps(window, spec.interval_seconds), dtype=np.int64)


def gap_spans(spec: MetersSpec, seed: int, index: np.ndarray, day_start_s: int) -> tuple[np.ndarray, np.ndarray]:
    """[start, end) epoch seconds of each meter's offline stretch that day (empty spans when online all day)."""
    faults = spec.faults
    index = np.asarray(index, dtype=np.int64)
    key = seeding.stream_key(seed, "meters", "gap")
    offline = seeding.uniform(key, index, day_start_s, 0) < faults.gap_probability
    low, high = faults.gap_minutes
    length = (low + (high - low) * seeding.uniform(key, index, day_start_s, 1)) * 60
    start = day_start_s + (seeding.uniform(key, index, day_start_s, 2) * (DAY_SECONDS - length)).astype(np.int64)
    start = np.where(offline, start, day_start_s)
    return start, np.where(offline, start + length.astype(np.int64), day_start_s)


def _slots_between(low: np.ndarray, high: np.ndarray, step: int) -> np.ndarray:
    """How many multiples of `step` lie in [low, high)."""
    return np.maximum(0, -(-high // step) - -(-low // step))


def expected_rows(spec: MetersSpec, seed: int, window: Window, chunk: int = 1_000_000) -> int:
    """Readings the fleet reports in `window`: every slot of every meter, minus gap slots (chunked by meters)."""
    slots = len(slot_starts(spec, window))
    total = spec.fleet.count * slots
    if spec.faults.gap_probability == 0:
        return total
    for day in Window(window.start, window.end).split(DAY_SECONDS):
        for start in range(0, spec.fleet.count, chunk):
            index = np.arange(start, min(start + chunk, spec.fleet.count))
            gs, ge = gap_spans(spec, seed, index, day.start_s - day.start_s % DAY_SECONDS)
            lo, hi = np.maximum(gs, day.start_s), np.minimum(ge, day.end_s)
            total -= int(_slots_between(lo, np.maximum(lo, hi), spec.interval_seconds).sum())
    return total


def readings(spec: MetersSpec, seed: int, index: np.ndarray, id_numbers: np.ndarray, window: Window) -> Readings:
    """Readings of meters `index` (with their ids) at every slot in `window`; the window stays inside one day."""
    index = np.asarray(index, dtype=np.int64)
    slots = slot_starts(spec, window)
    hours = np.unique(slots - slots % HOUR)
    parts = HOUR // spec.interval_seconds
    hourly = hourly_energy_kwh(spec.power, seed, index[:, None], hours[None, :])  # (k, h)
    shares = hour_shares(seed, index[:, None], hours[None, :], parts, "meter_slot")  # (k, h, parts)
    if len(slots) == len(hours) * parts:  # whole hours: the (k, h, parts) grid is the (k, s) grid
        energy = (hourly[:, :, None] * shares).reshape(len(index), -1)
    else:
        hour_pos = np.searchsorted(hours, slots - slots % HOUR)
        slot_pos = (slots % HOUR) // spec.interval_seconds
        energy = hourly[:, hour_pos] * shares[:, hour_pos, slot_pos]  # (k, s)

    zero = None
    if spec.faults.zero_probability > 0:
        zero = seeding.uniform(seeding.stream_key(seed, "meters", "zero"), index[:, None], slots) < (
            spec.faults.zero_probability
        )
        energy = np.where(zero, 0.0, energy)

    present = None
    if spec.faults.gap_probability > 0:
        gs, ge = gap_spans(spec, seed, index, window.start_s - window.start_s % DAY_SECONDS)
        present = ~((slots[None, :] >= gs[:, None]) & (slots[None, :] < ge[:, None]))
        present = None if present.all() else present

    return Readings(
        index=index,
        id_numbers=np.asarray(id_numbers, dtype=np.uint64),
        slots=slots,
        energy_kwh=np.round(energy, 6),
        power_kw=np.round(energy * (HOUR / spec.interval_seconds), 4),
        voltage=np.round(_voltage(spec, seed, index, slots), 2),
        present=present,
        zero=zero,
    )


def _voltage(spec: MetersSpec, seed: int, index: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Nominal, plus the meter's own offset, plus a triangular jitter per reading."""
    v = spec.voltage
    offset = v.meter_sd * seeding.normal(seeding.stream_key(seed, "meters", "voltage_offset"), index)
    jitter = v.reading_jitter * seeding.triangular(seeding.stream_key(seed, "meters", "voltage"), index[:, None], slots)
    return v.nominal + offset[:, None] + jitter


READING_COLUMNS = {
    "timestamp": "Time of the reading (UTC), one per interval",
    "meter_id": "Meter that reported (meter_fleet.meter_id)",
    "power_kw": "The interval's energy as a rate",
    "energy_kwh": "Energy of the interval; per meter-hour it sums to the power world's kWh of the device-hour",
    "voltage": "Supply voltage",
    "quality": "good, or zero for an injected zero reading",
    "reading": "Energy of the interval, kWh (wattif record)",
}


def reading_schema(spec: MetersSpec) -> pa.Schema:
    """The columns `to_table` gives for this spec's record and faults."""
    ts = pa.field("timestamp", pa.timestamp("s", tz="UTC"), nullable=False)
    if spec.output.record == "wattif":
        return pa.schema([ts, pa.field("reading", pa.float64(), nullable=False)])
    fields = [ts, pa.field("meter_id", pa.string(), nullable=False)]
    fields += [pa.field(name, pa.float64(), nullable=False) for name in ("power_kw", "energy_kwh", "voltage")]
    if spec.faults.zero_probability > 0:
        fields.append(pa.field("quality", pa.string(), nullable=False))
    return pa.schema(fields)


def to_table(data: Readings, id_format: str, record: str = "meter") -> pa.Table:
    """The readings as rows ordered by (meter, timestamp): the meter or the wattif record schema."""
    k, s = data.energy_kwh.shape
    keep = data.present.ravel() if data.present is not None else slice(None)
    ts = pa.array(np.tile(data.slots, k)[keep], type=pa.int64()).cast(pa.timestamp("s", tz="UTC"))
    if record == "wattif":
        return pa.table({"timestamp": ts, "reading": data.energy_kwh.ravel()[keep]})
    ids = id_strings(data.id_numbers, id_format).take(pa.array(np.repeat(np.arange(k), s)[keep]))
    columns = {
        "timestamp": ts,
        "meter_id": ids,
        "power_kw": data.power_kw.ravel()[keep],
        "energy_kwh": data.energy_kwh.ravel()[keep],
        "voltage": data.voltage.ravel()[keep],
    }
    if data.zero is not None:
        columns["quality"] = np.where(data.zero.ravel()[keep], QUALITY_ZERO, QUALITY_GOOD)
    return pa.table(columns)


FLEET_COLUMNS = {"meter_id": "Meter id (the readings' meter_id)", **DEVICE_COLUMNS}


def fleet(spec: MetersSpec, seed: int, index: np.ndarray, id_numbers: np.ndarray) -> pa.Table:
    """meter_fleet rows: each meter's id and the power-world device, customer, building and region it measures."""
    device = devices(spec.power, seed, index).drop_columns(["city"])  # the meter files keep their columns
    return pa.Table.from_arrays(
        [id_strings(id_numbers, spec.fleet.id_format), *device.columns], names=["meter_id", *device.column_names]
    )
