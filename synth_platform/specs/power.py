"""config/power.yaml: the device fleet, its load profiles, and the power_usage stream."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import pydantic

from synth_platform.specs.loader import Spec, SpecError, dividing, load, parse, read_yaml

S = TypeVar("S", bound=Spec)

Hours = tuple[float, ...]


def _hours(*values: float) -> Hours:
    assert len(values) == 24
    return values


class BuildingType(Spec):
    weight: float = pydantic.Field(gt=0, description="Share of devices of this type (relative)")
    base_kw: float = pydantic.Field(gt=0, description="Mean demand in kW at profile factor 1.0")
    weekday: Hours = pydantic.Field(description="24 hourly factors, Monday to Friday (UTC hours)")
    weekend: Hours = pydantic.Field(description="24 hourly factors, Saturday and Sunday")

    @pydantic.field_validator("weekday", "weekend")
    @classmethod
    def _day_of_hours(cls, v: Hours) -> Hours:
        if len(v) != 24:
            raise ValueError(f"needs 24 hourly factors, got {len(v)}")
        if min(v) < 0:
            raise ValueError("factors must be >= 0")
        return v


class Region(Spec):
    weight: float = pydantic.Field(gt=0)
    latitude: tuple[float, float] = pydantic.Field(description="[south, north] in degrees")
    longitude: tuple[float, float] = pydantic.Field(description="[west, east] in degrees")

    @pydantic.model_validator(mode="after")
    def _box(self) -> Region:
        (s, n), (w, e) = self.latitude, self.longitude
        if not (-90 <= s < n <= 90 and -180 <= w < e <= 180):
            raise ValueError("latitude/longitude must be [low, high] within the globe")
        return self


# Each row is a day of 24 hourly factors, kept on two lines so it reads as a day.
# fmt: off
DEFAULT_BUILDING_TYPES = {
    "home": BuildingType(
        weight=0.55,
        base_kw=1.1,
        weekday=_hours(0.45, 0.4, 0.37, 0.35, 0.36, 0.45, 0.85, 1.3, 1.25, 0.8, 0.65, 0.6,
                       0.62, 0.6, 0.6, 0.7, 0.95, 1.4, 1.75, 1.85, 1.7, 1.4, 0.95, 0.6),
        weekend=_hours(0.5, 0.45, 0.4, 0.38, 0.38, 0.4, 0.5, 0.75, 1.05, 1.2, 1.2, 1.15,
                       1.1, 1.0, 0.95, 1.0, 1.15, 1.45, 1.7, 1.75, 1.6, 1.35, 1.0, 0.7),
    ),
    "office": BuildingType(
        weight=0.2,
        base_kw=28.0,
        weekday=_hours(0.25, 0.25, 0.25, 0.25, 0.25, 0.3, 0.5, 0.9, 1.35, 1.5, 1.55, 1.55,
                       1.5, 1.55, 1.55, 1.5, 1.4, 1.1, 0.7, 0.45, 0.35, 0.3, 0.27, 0.25),
        weekend=_hours(0.22, 0.22, 0.22, 0.22, 0.22, 0.22, 0.22, 0.23, 0.25, 0.27, 0.28, 0.28,
                       0.28, 0.28, 0.27, 0.26, 0.25, 0.24, 0.23, 0.22, 0.22, 0.22, 0.22, 0.22),
    ),
    "retail": BuildingType(
        weight=0.15,
        base_kw=16.0,
        weekday=_hours(0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.35, 0.5, 0.8, 1.2, 1.35, 1.4,
                       1.45, 1.45, 1.4, 1.4, 1.45, 1.5, 1.45, 1.3, 1.0, 0.6, 0.4, 0.32),
        weekend=_hours(0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.32, 0.4, 0.7, 1.2, 1.5, 1.6,
                       1.65, 1.65, 1.6, 1.55, 1.5, 1.4, 1.25, 1.0, 0.7, 0.45, 0.35, 0.3),
    ),
    "industrial": BuildingType(
        weight=0.1,
        base_kw=95.0,
        weekday=_hours(0.55, 0.55, 0.55, 0.55, 0.6, 0.8, 1.15, 1.3, 1.3, 1.3, 1.3, 1.25,
                       1.25, 1.3, 1.3, 1.3, 1.25, 1.2, 1.1, 1.05, 1.0, 0.9, 0.7, 0.6),
        weekend=_hours(0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.55, 0.6, 0.65, 0.65, 0.65, 0.65,
                       0.65, 0.65, 0.65, 0.65, 0.6, 0.6, 0.55, 0.55, 0.5, 0.5, 0.5, 0.5),
    ),
}
# fmt: on

DEFAULT_REGIONS = {
    "north": Region(weight=0.3, latitude=(53.0, 55.5), longitude=(-3.0, 0.5)),
    "central": Region(weight=0.45, latitude=(51.3, 53.0), longitude=(-2.5, 0.8)),
    "south": Region(weight=0.25, latitude=(50.2, 51.3), longitude=(-5.0, 1.2)),
}


# The 20 largest US cities, weighted by population (millions, 2020 census).
DEFAULT_CITIES = {
    "New York": 8.34,
    "Los Angeles": 3.82,
    "Chicago": 2.67,
    "Houston": 2.30,
    "Phoenix": 1.64,
    "Philadelphia": 1.58,
    "San Antonio": 1.47,
    "San Diego": 1.38,
    "Dallas": 1.30,
    "Austin": 0.97,
    "San Jose": 0.97,
    "Jacksonville": 0.95,
    "Fort Worth": 0.94,
    "Columbus": 0.91,
    "Charlotte": 0.88,
    "Indianapolis": 0.88,
    "San Francisco": 0.81,
    "Seattle": 0.75,
    "Denver": 0.71,
    "Washington": 0.67,
}


class Devices(Spec):
    count: int = pydantic.Field(100, ge=1, le=10_000_000)
    devices_per_customer: float = pydantic.Field(
        2.5, ge=1.0, le=8.0, description="Mean devices a customer owns (customers own 1 to 8 devices)"
    )


class Usage(Spec):
    interval_minutes: int = pydantic.Field(60, description="Reading interval; must divide an hour")
    min_report_fraction: float = pydantic.Field(
        0.5, ge=0.5, le=1.0, description="Lower bound of the share of devices reporting in an interval"
    )
    noise_sd: float = pydantic.Field(0.12, ge=0, le=1, description="Log-normal multiplicative noise")
    spike_probability: float = pydantic.Field(0.002, ge=0, le=0.2, description="Per device-hour")
    spike_factor: tuple[float, float] = pydantic.Field((2.5, 6.0), description="Spike multiplier range")

    _interval = pydantic.field_validator("interval_minutes")(dividing(60, "minutes", "an hour", "1, 5, 15, 60"))

    @pydantic.field_validator("spike_factor")
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 1.0 <= v[0] <= v[1]:
            raise ValueError("must be [low, high] with 1 <= low <= high")
        return v

    @property
    def interval_seconds(self) -> int:
        return self.interval_minutes * 60


class PowerSpec(Spec):
    devices: Devices = Devices()
    building_types: dict[str, BuildingType] = pydantic.Field(default_factory=lambda: dict(DEFAULT_BUILDING_TYPES))
    regions: dict[str, Region] = pydantic.Field(default_factory=lambda: dict(DEFAULT_REGIONS))
    cities: dict[str, float] = pydantic.Field(
        default_factory=lambda: dict(DEFAULT_CITIES),
        description="City name -> relative weight; each device is in one (the load test queries by city)",
    )
    usage: Usage = Usage()
    retention_days: int = pydantic.Field(100, ge=1, description="power_usage older than this is deleted")

    @pydantic.field_validator("building_types", "regions", "cities")
    @classmethod
    def _not_empty(cls, v: dict) -> dict:
        if not v:
            raise ValueError("needs at least one entry")
        return v

    @pydantic.field_validator("cities")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [name for name, weight in v.items() if not weight > 0 or not name.strip()]
        if bad:
            raise ValueError(f"every city needs a name and a weight > 0: {bad}")
        return v


def load_on_the_fleet(model: type[S], config_dir: Path, name: str) -> S:
    """`<name>.yaml` for a domain of the power world's devices: its spec with `power` filled from power.yaml (never
    from its own file), so both worlds agree on the fleet and its load profile."""
    file = config_dir / f"{name}.yaml"
    data = read_yaml(file) or {}
    if isinstance(data, dict) and "power" in data:
        raise SpecError(file, [("power", "unknown key (the devices and load profile come from power.yaml)")])
    return parse(model, data, file).model_copy(update={"power": load(PowerSpec, config_dir / "power.yaml")})
