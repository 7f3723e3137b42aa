"""YAML in config/ -> typed specs. Every error names the file, the key path and the reason."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth_platform.specs import analytics, estore, meters, power, tables
from synth_platform.specs.loader import SpecError, load
from synth_platform.specs.world import WorldSpec

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"

# domain name -> loader(config_dir) of its spec; each domain's files are required once it is listed in world.yaml
DOMAIN_LOADERS: dict[str, Callable[[Path], Any]] = {
    "power": lambda d: load(power.PowerSpec, d / "power.yaml"),
    "estore": lambda d: load(estore.EstoreSpec, d / "estore.yaml"),
    "tables": lambda d: tables.load_tables(d / "tables"),
    "meters": lambda d: meters.load_meters(d),
    "analytics": lambda d: load(analytics.AnalyticsSpec, d / "analytics.yaml"),
}


@dataclass(frozen=True)
class PlatformSpec:
    config_dir: Path
    world: WorldSpec
    domains: dict[str, Any] = field(default_factory=dict)

    def get(self, domain: str) -> Any:
        """The domain's spec, or None when world.yaml does not switch it on."""
        return self.domains.get(domain)


def config_dir_from_env() -> Path:
    return Path(os.environ.get("SYNTH_CONFIG_DIR") or DEFAULT_CONFIG_DIR)


def load_platform(config_dir: Path | str | None = None) -> PlatformSpec:
    directory = Path(config_dir) if config_dir is not None else config_dir_from_env()
    if not directory.is_dir():
        raise SpecError(directory, [("", "config directory not found (set SYNTH_CONFIG_DIR)")])
    world = load(WorldSpec, directory / "world.yaml")
    missing = [d for d in world.domains if d not in DOMAIN_LOADERS]
    if missing:
        raise SpecError(directory / "world.yaml", [("domains", f"no loader for {', '.join(missing)} yet")])
    return PlatformSpec(directory, world, {d: DOMAIN_LOADERS[d](directory) for d in world.domains})
