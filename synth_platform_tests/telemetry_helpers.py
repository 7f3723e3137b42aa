"""Shared by the telemetry tests: a config with the telemetry domain on, and what the world says a window holds."""

from pathlib import Path

import numpy as np

from synth_platform.domains import load_platform
from synth_platform.specs import PlatformSpec
from synth_platform.world.meter_ids import id_numbers
from synth_platform.world.meters import readings, to_table
from synth_platform.world.windows import Window
from synth_platform_tests.config_files import edit_yaml

DAY = "2026-03-02"


def telemetry_platform(config_dir: Path, meters: int = 40, **telemetry: object) -> PlatformSpec:
    edit_yaml(config_dir / "world.yaml", domains=["telemetry"], start_date="2026-03-01")
    edit_yaml(config_dir / "meters.yaml", **{"fleet.count": meters, "live_slice_minutes": 10})
    edit_yaml(config_dir / "telemetry.yaml", **telemetry)
    return load_platform(config_dir)


def expected_readings(platform: PlatformSpec, window: Window) -> set[tuple[str, str]]:
    """(meter_id, timestamp) of every reading the fleet reports in the window, from the generator itself."""
    spec = platform.get("telemetry").meters
    seed = platform.world.seed
    ids = id_numbers(seed, spec.fleet.count, spec.fleet.id_format)
    table = to_table(readings(spec, seed, np.arange(spec.fleet.count), ids, window), spec.fleet.id_format)
    stamps = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in table["timestamp"].to_pylist()]
    return set(zip(table["meter_id"].to_pylist(), stamps, strict=True))
