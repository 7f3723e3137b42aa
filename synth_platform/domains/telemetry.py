"""Device telemetry: config/telemetry.yaml (with the fleet of config/meters.yaml); each meter reading sent live over
MQTT and/or to an HTTP collector. Nothing is stored, so there is nothing to retain."""

from synth_platform.assets import telemetry as assets
from synth_platform.domains.record import Domain
from synth_platform.specs.telemetry import load_telemetry

DOMAIN = Domain("telemetry", load_telemetry, lambda platform, _database_kind: assets.build(platform))
