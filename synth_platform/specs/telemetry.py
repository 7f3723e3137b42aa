"""config/telemetry.yaml: the meter fleet acting as devices, publishing each reading live over MQTT and/or POSTing
batches to an HTTP collector. The readings are the meters domain's (config/meters.yaml), loaded even when the
meters domain is not switched on; where they go (broker, collector URL, credentials) comes from the environment."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Literal

import pydantic

from synth_platform.specs.loader import Spec, SpecError, parse, read_yaml
from synth_platform.specs.meters import MetersSpec, load_meters

TOPIC_FIELDS = ("meter_id", "device_id")


class MqttDelivery(Spec):
    enabled: bool = pydantic.Field(False, description="Publish each reading to the broker at SYNTH_MQTT_URL")
    topic: str = pydantic.Field(
        "meters/{meter_id}/readings", description="Topic per reading; fields {meter_id} and {device_id}"
    )
    qos: Literal[0, 1] = pydantic.Field(1, description="1: the broker acknowledges every message (redelivery dedups)")
    max_in_flight: int = pydantic.Field(1000, ge=1, le=65_535, description="Unacknowledged messages at most")
    backfill: bool = pydantic.Field(False, description="Also publish the readings of partition runs (history)")

    @pydantic.field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        names = [name for _, name, _, _ in string.Formatter().parse(v) if name is not None]
        unknown = sorted({n for n in names if n not in TOPIC_FIELDS})
        if unknown:
            raise ValueError(f"unknown field {{{unknown[0]}}}: a topic may use {{meter_id}} and {{device_id}}")
        if not v or "+" in v or "#" in v:
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
    mqtt: MqttDelivery = MqttDelivery()
    http: HttpDelivery = HttpDelivery()
    # Filled from config/meters.yaml by the loader, never from telemetry.yaml.
    meters: MetersSpec = MetersSpec()


def load_telemetry(config_dir: Path) -> TelemetrySpec:
    file = config_dir / "telemetry.yaml"
    data = read_yaml(file) or {}
    if isinstance(data, dict) and "meters" in data:
        raise SpecError(file, [("meters", "unknown key (the fleet and its readings come from meters.yaml)")])
    spec = parse(TelemetrySpec, data, file)
    return spec.model_copy(update={"meters": load_meters(config_dir)})
