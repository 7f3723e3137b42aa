"""The domain registry: every domain the platform knows, each described once by its record (domains/<name>.py).
Loading the config and building the Definitions iterate it; a domain outside this package (a plug-in, a test)
joins with `REGISTRY.register(domain)`."""

from pathlib import Path

from synth_platform.domains import analytics, estore, meters, power, sensors, tables, telemetry
from synth_platform.domains.record import Domain, Registry
from synth_platform.specs import PlatformSpec, load_world
from synth_platform.specs.loader import SpecError

REGISTRY = Registry()
for _domain in (
    power.DOMAIN,
    tables.DOMAIN,
    estore.DOMAIN,
    analytics.DOMAIN,
    meters.DOMAIN,
    telemetry.DOMAIN,
    sensors.DOMAIN,
):
    REGISTRY.register(_domain)


def load_platform(config_dir: Path | str | None = None) -> PlatformSpec:
    """world.yaml and the spec of every domain it switches on (SYNTH_CONFIG_DIR unless `config_dir` is given)."""
    directory, world = load_world(config_dir)
    unknown = [d for d in world.domains if d not in REGISTRY]
    if unknown:
        known = ", ".join(REGISTRY.names())
        problems = [(f"domains.{world.domains.index(d)}", f"unknown domain {d!r} (known: {known})") for d in unknown]
        raise SpecError(directory / "world.yaml", problems)
    return PlatformSpec(directory, world, {d: REGISTRY[d].load(directory) for d in world.domains})


__all__ = ["REGISTRY", "Domain", "Registry", "load_platform"]
