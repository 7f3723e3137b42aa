"""YAML in config/ -> typed specs. Every error names the file, the key path and the reason.

Which domains exist, and how each loads its spec, is the domain registry's business (synth_platform/domains);
this package holds the specs themselves and the world every domain shares."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth_platform.specs.loader import SpecError, load
from synth_platform.specs.world import WorldSpec

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


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


def load_world(config_dir: Path | str | None = None) -> tuple[Path, WorldSpec]:
    """The config folder (SYNTH_CONFIG_DIR unless given) and its world.yaml."""
    directory = Path(config_dir) if config_dir is not None else config_dir_from_env()
    if not directory.is_dir():
        raise SpecError(directory, [("", "config directory not found (set SYNTH_CONFIG_DIR)")])
    return directory, load(WorldSpec, directory / "world.yaml")
