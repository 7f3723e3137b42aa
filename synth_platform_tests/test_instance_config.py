"""The instance configs: deploy/local/dagster.yaml (local, copied under DAGSTER_HOME) and deploy/dagster.yaml
against the local PostgreSQL (a scratch database): storage, run queue limits, retries, monitoring, and the live
automation on it."""

from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.instance.ref import InstanceRef

from synth_platform.resources import PROJECT_ROOT
from synth_platform.sinks.database import DatabaseResource
from synth_platform.world.windows import Window
from synth_platform_tests.config_files import LOCAL_INSTANCE_YAML
from synth_platform_tests.live_helpers import (
    Clock,
    at,
    freshness_state,
    live_definitions,
    power_platform,
    rows,
    world_rows,
)
from synth_platform_tests.runs import run_request


def instance_from(config: Path, home: Path) -> dg.DagsterInstance:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(config.read_text())
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def queue_limits(instance: dg.DagsterInstance) -> dict[str, int]:
    config = instance.get_concurrency_config().run_queue_config
    return {"max": config.max_concurrent_runs, **{t["key"]: t["limit"] for t in config.tag_concurrency_limits}}


def test_local_instance_keeps_everything_under_dagster_home(tmp_path):
    home = tmp_path / ".data" / "dagster"
    with instance_from(LOCAL_INSTANCE_YAML, home) as instance:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_retries_enabled and instance.run_retries_max_retries >= 1
        assert instance.run_monitoring_enabled
        assert "FRESHNESS_DAEMON" in instance.get_required_daemon_types()  # evaluates the live streams' policies
        limits = queue_limits(instance)
        assert limits["dagster/backfill"] < limits["max"], "a backfill must leave slots for live runs"
        assert limits["synth/live_stream"] >= 1
        assert Path(instance.root_directory).resolve() == home.resolve()
        with instance.run_storage.connect() as conn:
            assert Path(conn.engine.url.database).resolve().is_relative_to(home.resolve())


@pytest.fixture
def pg_instance(tmp_path, postgres_url, monkeypatch):
    url = sa.make_url(postgres_url)
    env = {"DAGSTER_PG_HOST": url.host, "DAGSTER_PG_PORT": str(url.port or 5432), "DAGSTER_PG_USER": url.username,
           "DAGSTER_PG_PASSWORD": url.password or "", "DAGSTER_PG_DB": url.database}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with instance_from(PROJECT_ROOT / "deploy" / "dagster.yaml", tmp_path / "dagster_home") as instance:
        yield instance


def test_production_instance_stores_runs_cursors_and_events_in_postgres(pg_instance, postgres_url, config_dir):
    instance = pg_instance
    for storage in (instance.run_storage, instance.event_log_storage, instance.schedule_storage):
        assert type(storage).__name__.startswith("Postgres"), storage
    assert instance.run_retries_enabled and instance.run_monitoring_enabled
    assert queue_limits(instance)["dagster/backfill"] < queue_limits(instance)["max"]

    # the live automation on this instance: a sensor tick, its runs, then freshness from the PostgreSQL records
    platform = power_platform(config_dir, devices=15)
    clock = Clock(at("2026-03-05T00:20:30"))
    defs = live_definitions(platform, postgres_url, clock)
    sensor = defs.resolve_sensor_def("live_power_usage_sensor")
    tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def()))
    assert [r.partition_key for r in tick.run_requests] == ["2026-03-05"]  # its two closed windows in one run
    job = defs.resolve_job_def("live_power_usage")
    for request in tick.run_requests:
        assert run_request(job, instance, request).success
    assert "FRESHNESS_DAEMON" in instance.get_required_daemon_types()
    assert freshness_state(defs, instance, dg.AssetKey("power_usage")) == FreshnessState.PASS

    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM runs")).scalar() == 1  # freshness takes no run
            assert conn.execute(sa.text("SELECT COUNT(*) FROM run_tags WHERE key = 'synth/live_stream'")).scalar() == 1
    finally:
        engine.dispose()
    live = Window(at("2026-03-05T00:00"), at("2026-03-05T00:20"))
    assert rows(DatabaseResource(url=postgres_url), live) == world_rows(platform, live)
