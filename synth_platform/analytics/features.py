"""Every numeric feature the enabled domains deliver to the SQL target, by name: what top devices and histograms
rank and count. Power usage and the meter minutes are built in; device_telemetry adds one per declared feature."""

from __future__ import annotations

from synth_platform.analytics.meter_minutes import METER_POWER, METER_VOLTAGE
from synth_platform.analytics.queries import POWER_USAGE, Feature
from synth_platform.specs import PlatformSpec
from synth_platform.specs.loader import SpecError
from synth_platform.specs.sensors import STREAM as TELEMETRY
from synth_platform.specs.sensors import SensorsSpec


def sensor_features(spec: SensorsSpec) -> list[Feature]:
    return [
        Feature(name, TELEMETRY, name, fleet=True, edges=tuple(f.default_edges())) for name, f in spec.features.items()
    ]


def features(platform: PlatformSpec) -> list[Feature]:
    """The features of the enabled domains, in a stable order."""
    out: list[Feature] = []
    if platform.get("power") is not None:
        out.append(POWER_USAGE)
    if platform.get("meters") is not None:
        out += [METER_POWER, METER_VOLTAGE]
    if platform.get("sensors") is not None:
        out += sensor_features(platform.get("sensors"))
    return out


BUILT_IN = (POWER_USAGE, METER_POWER, METER_VOLTAGE)


def histogram_edges(platform: PlatformSpec, available: list[Feature]) -> dict[str, list[float]]:
    """Bucket edges per feature: analytics.yaml's, else the feature's default. A name in analytics.yaml that is
    neither built in nor declared in sensors.yaml is an error naming the key (the declared names are only known
    while the sensors domain is on; edges of switched-off domains are kept for when they come back)."""
    configured = platform.get("analytics").histogram_edges
    names = {f.name for f in (*BUILT_IN, *available)}
    unknown = sorted(set(configured) - names) if platform.get("sensors") is not None else []
    if unknown:
        raise SpecError(
            platform.config_dir / "analytics.yaml",
            [
                (f"histogram_edges.{n}", f"no feature {n!r} (built in or declared in sensors.yaml): {sorted(names)}")
                for n in unknown
            ],
        )
    return {f.name: list(configured.get(f.name, f.edges)) for f in available}
