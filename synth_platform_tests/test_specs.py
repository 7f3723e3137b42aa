"""Invalid config fails Definitions loading with one message naming file, key path and reason."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from synth_platform.domains import load_platform
from synth_platform.specs.loader import SpecError
from synth_platform_tests.config_files import edit_yaml

DAGSTER = str(Path(sys.executable).parent / "dagster")
REPO = Path(__file__).resolve().parents[1]


def test_shipped_config_loads(config_dir):
    platform = load_platform(config_dir)
    assert platform.world.domains[0] == "power"
    assert platform.get("power").devices.count == 100


@pytest.mark.parametrize(
    ("file", "changes", "expected"),
    [
        ("power.yaml", {"usage.interval_minutes": 7}, "power.yaml: usage.interval_minutes: must be a whole number"),
        ("power.yaml", {"devices.count": "many"}, "power.yaml: devices.count: Input should be a valid integer"),
        ("power.yaml", {"devices.colour": "red"}, "power.yaml: devices.colour: unknown key"),
        ("power.yaml", {"usage.min_report_fraction": 0.3}, "usage.min_report_fraction: Input should be greater"),
        ("power.yaml", {"spike_factor": [1, 2]}, "power.yaml: spike_factor: unknown key"),
        ("power.yaml", {"building_types": {"home": {"weight": 1, "base_kw": 1, "weekday": [1] * 23,
                                                    "weekend": [1] * 24}}},
         "building_types.home.weekday: needs 24 hourly factors, got 23"),
        ("world.yaml", {"domains": ["power", "power"]}, "world.yaml: domains: a domain is listed twice"),
        ("world.yaml", {"domains": ["weather"]}, "world.yaml: domains.0: unknown domain 'weather' (known: analytics"),
        ("world.yaml", {"start_date": "yesterday"}, "world.yaml: start_date: Input should be a valid date"),
        ("meters.yaml", {"faults.late_slices": [4, 2]},
         "meters.yaml: faults.late_slices: must be [low, high] live windows with 1 <= low <= high"),
        ("meters.yaml", {"faults.late_slices": [0, 3]}, "meters.yaml: faults.late_slices: must be"),
        ("meters.yaml", {"faults.late_slices": [1, 145]}, "meters.yaml: faults.late_slices: must be"),
        ("meters.yaml", {"faults.late_probability": 1.5}, "meters.yaml: faults.late_probability: Input should be"),
    ],
)  # fmt: skip
def test_invalid_values_name_file_key_and_reason(config_dir, file, changes, expected):
    edit_yaml(config_dir / file, **changes)
    with pytest.raises(SpecError) as err:
        load_platform(config_dir)
    assert expected in str(err.value)
    assert str(config_dir / file) in str(err.value)


def test_missing_file_and_broken_yaml(config_dir):
    (config_dir / "power.yaml").unlink()
    with pytest.raises(SpecError, match=r"power\.yaml: <top level>: file not found"):
        load_platform(config_dir)
    (config_dir / "power.yaml").write_text("devices:\n  count: [1,\n")
    with pytest.raises(SpecError, match=r"power\.yaml: line 3, column 1: invalid YAML"):
        load_platform(config_dir)
    with pytest.raises(SpecError, match="config directory not found"):
        load_platform(config_dir / "nope")


def _validate(config_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SYNTH_CONFIG_DIR": str(config_dir)}
    return subprocess.run(
        [DAGSTER, "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def test_dagster_validate_passes_on_shipped_config_and_fails_on_broken(config_dir):
    ok = _validate(config_dir)
    assert ok.returncode == 0, ok.stderr[-2000:]
    edit_yaml(config_dir / "power.yaml", **{"usage.noise_sd": "loud"})
    broken = _validate(config_dir)
    assert broken.returncode != 0
    assert "power.yaml: usage.noise_sd: Input should be a valid number" in broken.stdout + broken.stderr


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"mqtt.topic": "m/{serial}"}, "mqtt: topic: unknown field {serial}: a meters topic may use {meter_id} and"),
        ({"source": "power", "mqtt.topic": "m/{meter_id}"}, "mqtt: topic: unknown field {meter_id}: a power topic"),
        ({"source": "weather"}, "source: Input should be 'meters' or 'power'"),
        ({"mqtt.topic": "meters/+/readings"}, "mqtt.topic: must be a non-empty topic without the wildcards + and #"),
        ({"mqtt.qos": 2}, "mqtt.qos: Input should be 0 or 1"),
        ({"http.body": "xml"}, "http.body: Input should be 'ndjson' or 'json'"),
        ({"http.batch_size": 0}, "http.batch_size: Input should be greater than or equal to 1"),
        ({"meters": {"fleet": {"count": 3}}}, "meters: unknown key (the fleet and its readings come from meters.yaml)"),
    ],
)  # fmt: skip
def test_invalid_telemetry_names_file_key_and_reason(config_dir, changes, expected):
    edit_yaml(config_dir / "world.yaml", domains=["telemetry"])
    edit_yaml(config_dir / "telemetry.yaml", **changes)
    with pytest.raises(SpecError) as err:
        load_platform(config_dir)
    assert f"{config_dir / 'telemetry.yaml'}: {expected}" in str(err.value)
