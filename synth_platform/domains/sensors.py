"""Sensor features: config/sensors.yaml; the device_telemetry stream into the SQL database and Tinybird."""

from datetime import datetime

from synth_platform.analytics.live_tables import expire_rollups
from synth_platform.assets import sensors as assets
from synth_platform.automation.retention import RetentionRule, Targets
from synth_platform.domains.record import Domain
from synth_platform.specs.sensors import STREAM, SensorsSpec, load_sensors
from synth_platform.streams import sensors as stream


def retention(spec: SensorsSpec) -> list[RetentionRule]:
    def delete(targets: Targets, cutoff: datetime) -> dict[str, int]:
        deleted = stream.delete_before(targets.database, targets.tinybird, spec, cutoff)
        return {**deleted, **expire_rollups(targets.database, list(spec.features), cutoff)}

    return [RetentionRule(STREAM, spec.retention_days, frozenset({"database", "tinybird"}), delete)]


DOMAIN = Domain("sensors", load_sensors, assets.build, retention)
