"""config/sensors.yaml: numeric sensor features the power-world devices report (device_telemetry)."""

from __future__ import annotations

from pathlib import Path

import pydantic

from synth_platform.specs.loader import Spec, dividing
from synth_platform.specs.power import PowerSpec, load_on_the_fleet

STREAM = "device_telemetry"  # the stream, and its table in the SQL target

# Names a feature cannot take: the stream's own columns, and the features other streams deliver.
RESERVED = frozenset({"timestamp", "device_id", "power_usage_kwh", "meter_power_kw", "meter_voltage_v"})


def _low_high(v: tuple[float, float] | None) -> tuple[float, float] | None:
    if v is not None and not v[0] <= v[1]:
        raise ValueError("must be [low, high] with low <= high")
    return v


class Cycle(Spec):
    """A cosine that peaks at `peak` (an hour of the UTC day, or a day of the year) with this amplitude."""

    amplitude: float = pydantic.Field(0.0, ge=0, description="Half the distance from trough to peak")
    peak: float = pydantic.Field(0.0, ge=0, description="UTC hour (0-24) or day of year (0-366) of the maximum")


class Spikes(Spec):
    probability: float = pydantic.Field(0.0, ge=0, le=0.5, description="Chance per reading")
    size: tuple[float, float] = pydantic.Field((0.0, 0.0), description="[low, high] added to the value")

    _ordered = pydantic.field_validator("size")(_low_high)


class Stuck(Spec):
    probability: float = pydantic.Field(0.0, ge=0, le=0.5, description="Chance per device-hour")


class FeatureSpec(Spec):
    unit: str = pydantic.Field("", max_length=32, description="Unit shown next to the name, e.g. degC")
    base: float | None = pydantic.Field(None, description="Mean value of every device")
    range: tuple[float, float] | None = pydantic.Field(
        None, description="[low, high]: each device's mean is drawn uniformly from it (instead of `base`)"
    )
    daily: Cycle = pydantic.Field(Cycle(), description="Daily cycle: amplitude, peak = UTC hour of the maximum")
    seasonal: Cycle = pydantic.Field(Cycle(), description="Yearly cycle: amplitude, peak = day of year")
    device_offset_sd: float = pydantic.Field(0.0, ge=0, description="Per-device constant offset (normal, sd)")
    noise_sd: float = pydantic.Field(0.0, ge=0, description="Per-reading normal noise")
    load: float = pydantic.Field(0.0, description="Added per kW of the device's power usage in that hour")
    spikes: Spikes = Spikes()
    stuck: Stuck = pydantic.Field(Stuck(), description="A stuck device-hour repeats the hour's first value")
    limits: tuple[float, float] | None = pydantic.Field(None, description="[low, high] values are clipped to")
    decimals: int = pydantic.Field(2, ge=0, le=6, description="Values are rounded to this many decimals")

    _ordered = pydantic.field_validator("range", "limits")(_low_high)

    @pydantic.model_validator(mode="after")
    def _one_level(self) -> FeatureSpec:
        if (self.base is None) == (self.range is None):
            raise ValueError("needs exactly one of `base` (a value) or `range` ([low, high])")
        if self.daily.peak > 24 or self.seasonal.peak > 366:
            raise ValueError("daily.peak is an hour (0-24), seasonal.peak a day of the year (0-366)")
        return self

    def default_edges(self, buckets: int = 8) -> list[float]:
        """Histogram edges when analytics.yaml names none: evenly over the spread the spec implies."""
        low, high = self.range if self.range is not None else (self.base, self.base)
        spread = self.daily.amplitude + self.seasonal.amplitude + 2 * self.device_offset_sd + 2 * self.noise_sd
        low, high = low - spread, high + spread
        if self.limits is not None:
            low, high = max(low, self.limits[0]), min(high, self.limits[1])
        if high <= low:
            high = low + 1.0
        step = (high - low) / buckets
        return [round(low + step * i, 6) for i in range(1, buckets)]


class SensorsSpec(Spec):
    interval_seconds: int = pydantic.Field(60, description="One reading per device per interval; divides an hour")
    live_window_seconds: int = pydantic.Field(
        60, ge=1, description="Length of a live window: whole intervals, divides a day"
    )
    missing_probability: float = pydantic.Field(
        0.02, ge=0, le=0.9, description="Chance a device sends nothing in an interval (reported vs missing)"
    )
    features: dict[str, FeatureSpec] = pydantic.Field(min_length=1, description="Feature name -> its shape")
    retention_days: int = pydantic.Field(30, ge=1, description="device_telemetry older than this is deleted")
    tinybird: bool = pydantic.Field(
        True, description="Also deliver to Tinybird's device_readings (one row per reading and feature)"
    )
    # The devices and their load profile: filled from config/power.yaml by the loader, never from sensors.yaml.
    power: PowerSpec = PowerSpec()

    _interval = pydantic.field_validator("interval_seconds")(dividing(3600, "seconds", "an hour", "10, 60, 300"))
    _window = pydantic.field_validator("live_window_seconds")(dividing(86_400, "seconds", "a day", "60, 300, 600"))

    @pydantic.field_validator("features")
    @classmethod
    def _names(cls, features: dict[str, FeatureSpec]) -> dict[str, FeatureSpec]:
        for name in features:
            if not name.isidentifier() or not name.islower() or len(name) > 48:
                raise ValueError(f"{name!r}: a feature name is a lowercase identifier (a column name), <= 48 chars")
            if name in RESERVED:
                raise ValueError(f"{name!r}: the name is taken ({', '.join(sorted(RESERVED))})")
        return features

    @pydantic.model_validator(mode="after")
    def _windows_hold_intervals(self) -> SensorsSpec:
        if self.live_window_seconds % self.interval_seconds:
            raise ValueError("live_window_seconds must be a whole number of intervals")
        return self


def load_sensors(config_dir: Path) -> SensorsSpec:
    return load_on_the_fleet(SensorsSpec, config_dir, "sensors")
