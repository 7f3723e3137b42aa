"""config/meters.yaml: the smart-meter fleet, its readings and how they are laid out as files in the bucket.

Meter i is device i of the power world, so the meters spec carries the power spec (config/power.yaml) even when
the power domain is not switched on: building types, load profiles and regions come from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pydantic

from synth_platform.specs.loader import Spec, dividing
from synth_platform.specs.power import PowerSpec, load_on_the_fleet

IdFormat = Literal["mac", "mac8"]
FileFormat = Literal["ndjson", "ndjson.gz", "parquet"]


class Fleet(Spec):
    count: int = pydantic.Field(100, ge=1, le=10_000_000, description="Meters; meter i is power-world device i")
    id_format: IdFormat = pydantic.Field(
        "mac", description="mac: AA:BB:CC:DD:EE:FF from a 48-bit space; mac8: MAC%08d (WattIf compatible)"
    )


class Voltage(Spec):
    nominal: float = pydantic.Field(230.0, ge=100, le=480, description="Nominal voltage in V")
    meter_sd: float = pydantic.Field(1.5, ge=0, le=10, description="Spread of a meter's own offset, V")
    reading_jitter: float = pydantic.Field(0.6, ge=0, le=10, description="Per-reading jitter amplitude, V")


class Faults(Spec):
    gap_probability: float = pydantic.Field(
        0.0, ge=0, le=1, description="Chance a meter is offline for one stretch of a day (its readings are missing)"
    )
    gap_minutes: tuple[int, int] = pydantic.Field((5, 180), description="[shortest, longest] offline stretch")
    zero_probability: float = pydantic.Field(
        0.0, ge=0, le=0.5, description="Chance a reading reports zero power and energy (quality=zero)"
    )
    late_probability: float = pydantic.Field(
        0.0, ge=0, le=1, description="Chance a live slice's files arrive late, with a later live window"
    )
    late_slices: tuple[int, int] = pydantic.Field(
        (1, 6), description="[fewest, most] live windows later that a late slice arrives"
    )

    @pydantic.field_validator("gap_minutes", "late_slices")
    @classmethod
    def _range(cls, v: tuple[int, int], info: pydantic.ValidationInfo) -> tuple[int, int]:
        unit, limit = ("minutes", 1440) if info.field_name == "gap_minutes" else ("live windows", 144)
        if not 1 <= v[0] <= v[1] <= limit:
            raise ValueError(f"must be [low, high] {unit} with 1 <= low <= high <= {limit}")
        return v

    @property
    def any(self) -> bool:
        """Some fault changes the readings themselves (late files only delay their delivery)."""
        return self.gap_probability > 0 or self.zero_probability > 0


class Output(Spec):
    format: FileFormat = pydantic.Field("ndjson.gz", description="ndjson, ndjson.gz or parquet")
    layout: Literal["parts", "per_meter"] = pydantic.Field(
        "parts", description="parts: part files of meters_per_part meters; per_meter: one file per meter"
    )
    record: Literal["meter", "wattif"] = pydantic.Field(
        "meter",
        description='meter: timestamp, meter_id, power_kw, energy_kwh, voltage; wattif: {"timestamp", '
        '"reading"} (one file per meter)',
    )
    meters_per_part: int = pydantic.Field(1000, ge=1, le=1_000_000)
    max_part_mb: float = pydantic.Field(256.0, gt=0, description="A part larger than this continues in the next")
    gzip_level: int = pydantic.Field(
        1, ge=0, le=3, description="ISA-L level, 0 fastest to 3 smallest; 1 compresses the readings about 8x"
    )

    @pydantic.model_validator(mode="after")
    def _wattif_per_meter(self) -> Output:
        if self.record == "wattif" and self.layout != "per_meter":
            raise ValueError("record: wattif has no meter_id, so it needs layout: per_meter")
        return self


class MetersSpec(Spec):
    fleet: Fleet = Fleet()
    interval_seconds: int = pydantic.Field(10, description="One reading per meter per interval; divides 3600")
    voltage: Voltage = Voltage()
    faults: Faults = Faults()
    output: Output = Output()
    live_slice_minutes: int = pydantic.Field(10, ge=1, le=1440, description="Length of a live window (one slice)")
    agreement_sample: int = pydantic.Field(20, ge=1, le=1000, description="Meters compared with power_usage")
    retention_days: int = pydantic.Field(30, ge=1, description="Days of readings kept in the bucket")
    # How a day is executed, not what it holds: left out of the spec hash, so a sharded day's bytes (manifest
    # included) are those of the unsplit day.
    day_shards: int = pydantic.Field(
        1, ge=1, le=1024, exclude=True, description="Steps a window's files are written in, plus one manifest step"
    )
    # Filled from config/power.yaml by the loader, never from meters.yaml.
    power: PowerSpec = PowerSpec()

    _interval = pydantic.field_validator("interval_seconds")(dividing(3600, "seconds", "an hour", "10, 15, 60, 900"))
    _slice = pydantic.field_validator("live_slice_minutes")(dividing(1440, "minutes", "a day", "1, 5, 10, 15, 30, 60"))

    @pydantic.model_validator(mode="after")
    def _slices_hold_readings(self) -> MetersSpec:
        if self.live_slice_seconds % self.interval_seconds:
            raise ValueError("live_slice_minutes must be a whole number of reading intervals")
        if self.day_shards > self.file_groups:
            raise ValueError(
                f"day_shards: {self.day_shards} shards but only {self.file_groups} file groups (a shard writes whole "
                "part files, or whole meters with layout: per_meter)"
            )
        return self

    @property
    def file_groups(self) -> int:
        """Part files of a window (before any split past max_part_mb), or meters with layout: per_meter."""
        if self.output.layout == "per_meter":
            return self.fleet.count
        return -(-self.fleet.count // self.output.meters_per_part)

    @property
    def live_slice_seconds(self) -> int:
        return self.live_slice_minutes * 60


def load_meters(config_dir: Path) -> MetersSpec:
    return load_on_the_fleet(MetersSpec, config_dir, "meters")
