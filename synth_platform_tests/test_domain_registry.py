"""A domain registered from outside the package (synth_platform_tests/counter_domain) gets everything a shipped
domain gets: its spec loaded from config/, its assets, a live sensor and job, the daily close, a freshness
policy and retention, all through the one registry."""

from dataclasses import replace

import pytest
import yaml

from synth_platform.definitions import build_definitions
from synth_platform.domains import REGISTRY, load_platform
from synth_platform.sinks.database import DatabaseResource
from synth_platform.specs.loader import SpecError
from synth_platform.world.windows import Window
from synth_platform_tests.config_files import edit_yaml
from synth_platform_tests.counter_domain import DOMAIN
from synth_platform_tests.counter_domain.world import ticks
from synth_platform_tests.runs import run_days

DAY = "2026-03-01"


@pytest.fixture
def counter_config(config_dir, sqlite_url, monkeypatch):
    edit_yaml(config_dir / "world.yaml", domains=["counter"], start_date="2026-02-01")
    (config_dir / "counter.yaml").write_text(yaml.safe_dump({"ticks_per_minute": 4, "retention_days": 7}))
    monkeypatch.setenv("SYNTH_DATABASE_URL", sqlite_url)
    return config_dir


def test_a_registered_domain_is_loaded_built_and_automated(counter_config, sqlite_url, instance):
    assert REGISTRY["counter"] is DOMAIN
    platform = load_platform(counter_config)
    assert platform.get("counter").ticks_per_minute == 4
    defs = build_definitions(platform)
    repo = defs.get_repository_def()
    assert [n.key.to_user_string() for n in defs.resolve_asset_graph().asset_nodes] == ["counter_ticks"]
    assert {s.name for s in repo.sensor_defs} == {"live_counter_ticks_sensor"}
    assert {s.name for s in repo.schedule_defs} == {
        "daily_close_schedule",
        "retention_schedule",
        "live_run_history_schedule",
    }
    assert [n.name for n in defs.resolve_job_def("retention").nodes] == ["expire_counter_ticks"]

    assert run_days(defs, instance, DAY).success
    db = DatabaseResource(url=sqlite_url)
    written = db.query("SELECT value FROM counter_ticks ORDER BY timestamp")
    expected = ticks(platform.get("counter"), platform.world.seed, Window.for_day(DAY))
    assert [r[0] for r in written] == expected["value"].to_pylist()
    assert len(written) == 4 * 1440

    result = defs.resolve_job_def("retention").execute_in_process(instance=instance)  # the day is months old
    assert result.success
    assert db.scalar("SELECT COUNT(*) FROM counter_ticks") == 0


def test_world_yaml_names_only_registered_domains(counter_config):
    edit_yaml(counter_config / "world.yaml", domains=["counter", "weather"])
    with pytest.raises(SpecError, match=r"domains.1: unknown domain 'weather' \(known: analytics, counter, "):
        load_platform(counter_config)


def test_a_name_is_registered_once():
    with pytest.raises(ValueError, match="'counter' is registered already"):
        REGISTRY.register(replace(DOMAIN))
    assert REGISTRY.register(DOMAIN) is DOMAIN  # registering the same record again is harmless
