"""config/telemetry.yaml: a fleet acting as devices, publishing each reading live over MQTT and/or POSTing batches to
an HTTP collector: the smart meters of config/meters.yaml (`source: meters`) or the power devices of
config/power.yaml (`source: power`), loaded even when those domains are not switched on. Where the messages go
(broker, collector URL, credentials) comes from the environment."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Literal

import pydantic

from synth_platform.specs.loader import Spec, SpecError, parse, read_yaml
from synth_platform.specs.meters import MetersSpec, load_meters

Source = Literal["meters", "power"]
TOPIC_FIELDS: dict[str, tuple[str, ...]] = {"meters": ("meter_id", "device_id"), "power": ("device_id",)}
DEFAULT_TOPICS = {"meters": "meters/{meter_id}/readings", "power": "devices/{device_id}/usage"}


class MqttDelivery(Spec):
    enabled: bool = pydantic.Field(False, description="Publish each reading to the broker at SYNTH_MQTT_URL")
    topic: str | None = pydantic.Field(
        None,
        description="Topic per reading: fields {meter_id} and {device_id} (power: {device_id}); default "
        "meters/{meter_id}/readings, for power devices/{device_id}/usage",
    )
    qos: Literal[0, 1] = pydantic.Field(1, description="1: the broker acknowledges every message (redelivery dedups)")
    max_in_flight: int = pydantic.Field(1000, ge=1, le=65_535, description="Unacknowledged messages at most")
    backfill: bool = pydantic.Field(False, description="Also publish the readings of partition runs (history)")

    @pydantic.field_validator("topic")
    @classmethod
    def _topic(cls, v: str | None) -> str | None:
        if v is not None and (not v or "+" in v or "#" in v):
            raise ValueError("must be a non-empty topic without the wildcards + and #")
        return v


class HttpDelivery(Spec):
    enabled: bool = pydantic.Field(
        False, description="POST batches of readings to the collector at SYNTH_COLLECTOR_URL"
    )
    body: Literal["ndjson", "json"] = pydantic.Field(
        "ndjson", description="ndjson: one reading per line; json: one JSON array per batch"
    )
    batch_size: int = pydantic.Field(5000, ge=1, le=1_000_000, description="Readings per request")
    concurrency: int = pydantic.Field(4, ge=1, le=64, description="Requests in flight at once")
    backfill: bool = pydantic.Field(False, description="Also POST the readings of partition runs (history)")


class TelemetrySpec(Spec):
    source: Source = pydantic.Field(
        "meters", description="meters: every meter reading (meters.yaml); power: every power device reading"
    )
    mqtt: MqttDelivery = MqttDelivery()
    http: HttpDelivery = HttpDelivery()
    # Filled from config/meters.yaml (which carries config/power.yaml) by the loader, never from telemetry.yaml.
    meters: MetersSpec = MetersSpec()

    @pydantic.field_validator("mqtt")
    @classmethod
    def _topic_fields(cls, v: MqttDelivery, info: pydantic.ValidationInfo) -> MqttDelivery:
        source = info.data.get("source", "meters")
        names = [name for _, name, _, _ in string.Formatter().parse(v.topic or "") if name is not None]
        unknown = sorted({n for n in names if n not in TOPIC_FIELDS[source]})
        if unknown:
            allowed = " and ".join(f"{{{n}}}" for n in TOPIC_FIELDS[source])
            raise ValueError(f"topic: unknown field {{{unknown[0]}}}: a {source} topic may use {allowed}")
        return v

    @property
    def topic(self) -> str:
        return self.mqtt.topic or DEFAULT_TOPICS[self.source]

    @property
    def cadence_seconds(self) -> int:
        """How often the fleet reports, i.e. the live window: a meters live slice, a power usage interval."""
        return self.meters.live_slice_seconds if self.source == "meters" else self.meters.power.usage.interval_seconds


def load_telemetry(config_dir: Path) -> TelemetrySpec:
    file = config_dir / "telemetry.yaml"
    data = read_yaml(file) or {}
    if isinstance(data, dict) and "meters" in data:
        raise SpecError(file, [("meters", "unknown key (the fleet and its readings come from meters.yaml)")])
    spec = parse(TelemetrySpec, data, file)
    return spec.model_copy(update={"meters": load_meters(config_dir)})
