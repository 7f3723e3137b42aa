"""Run-history retention after a simulated day of live runs (a test clock drives the live sensor through a few
hundred 5-minute windows): only live runs younger than the configured age stay, with their event and compute
logs, and nothing the instance shows changes: materialized partitions, latest materializations, the freshness
state (Dagster's evaluator reads the asset record's last materialization)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.test_utils import freeze_time

from synth_platform.assets.common import LIVE_WINDOW_END_TAG, LIVE_WINDOW_START_TAG
from synth_platform.automation.live import KIND_TAG
from synth_platform.automation.run_history import RUN_HISTORY_JOB
from synth_platform_tests.live_helpers import Clock, at, freshness_state, live_definitions, power_platform
from synth_platform_tests.runs import run_request

USAGE, DEVICES = dg.AssetKey("power_usage"), dg.AssetKey("device_metadata")
LIVE = dg.RunsFilter(tags={KIND_TAG: "live"})


def live_day(defs: dg.Definitions, instance: dg.DagsterInstance, clock: Clock, until: datetime) -> int:
    """Tick the live sensor every 30 minutes of the test clock and run what it requests; returns windows written."""
    sensor, repo = defs.resolve_sensor_def("live_power_usage_sensor"), defs.get_repository_def()
    job = defs.resolve_job_def("live_power_usage")
    cursor, windows = None, 0
    while clock.now <= until:
        data = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor, repository_def=repo))
        cursor = data.cursor
        for request in data.run_requests:
            assert run_request(job, instance, request).success
            start, end = (datetime.fromisoformat(request.tags[t]) for t in (LIVE_WINDOW_START_TAG, LIVE_WINDOW_END_TAG))
            windows += (end - start) // timedelta(minutes=5)
        clock.now += timedelta(minutes=30)
    return windows


def what_the_instance_shows(instance: dg.DagsterInstance) -> dict:
    latest = {k: instance.fetch_materializations(k, limit=1).records[0] for k in (USAGE, DEVICES)}
    return {
        "partitions": instance.get_materialized_partitions(USAGE),
        "latest": {k: (r.storage_id, r.asset_materialization.metadata) for k, r in latest.items()},
    }


def last_materialization(instance: dg.DagsterInstance) -> dg.EventLogEntry:
    """What Dagster's freshness evaluator judges: the asset record's last materialization."""
    (record,) = instance.get_asset_records([USAGE])
    return record.asset_entry.last_materialization


def compute_logs(instance: dg.DagsterInstance, run_id: str) -> Path:
    return Path(instance.root_directory) / "storage" / run_id


def test_purge_keeps_young_runs_and_everything_the_instance_shows(config_dir, sqlite_url, instance):
    platform = power_platform(config_dir, interval_minutes=5, devices=5, initial_cursor=24, max_windows_per_run=6)
    clock = Clock(at("2026-03-01T22:00:30"))
    defs = live_definitions(platform, sqlite_url, clock)
    # a failed live run (its window is outside the partition it names): kept for the failure age
    bad = {LIVE_WINDOW_START_TAG: "2026-03-02T10:00:00+00:00", LIVE_WINDOW_END_TAG: "2026-03-02T10:05:00+00:00"}
    failed = defs.resolve_job_def("live_power_usage").execute_in_process(
        instance=instance, partition_key="2026-03-01", tags=bad, raise_on_error=False
    )
    assert not failed.success
    assert live_day(defs, instance, clock, until=at("2026-03-02T18:00:30")) == 24 + 40 * 6

    runs = sorted(instance.get_run_records(LIVE), key=lambda r: r.create_timestamp)
    succeeded = [r for r in runs if r.dagster_run.status == dg.DagsterRunStatus.SUCCESS]
    assert len(succeeded) == 44
    # what a purge must keep: the runs holding each partition's (and the device table's) latest materialization
    holders = {instance.get_latest_materialization_event(DEVICES).run_id}
    holders |= {
        instance.fetch_materializations(dg.AssetRecordsFilter(USAGE, asset_partitions=[day]), limit=1).records[0].run_id
        for day in ("2026-03-01", "2026-03-02")
    }
    shown = what_the_instance_shows(instance)
    last_write = last_materialization(instance)
    judged_at = datetime.fromtimestamp(last_write.timestamp, UTC) + timedelta(minutes=1)
    with freeze_time(judged_at):
        assert freshness_state(defs, instance, USAGE) == FreshnessState.PASS

    # the purge runs one day after the middle run finished: the first half of the day is older than a day
    middle = succeeded[len(succeeded) // 2]
    cutoff = middle.update_timestamp.astimezone(UTC)
    clock.now = cutoff + timedelta(days=1, microseconds=1)
    assert any(compute_logs(instance, r.dagster_run.run_id).exists() for r in succeeded)
    result = defs.resolve_job_def(RUN_HISTORY_JOB).execute_in_process(instance=instance)
    assert result.success

    kept = {r.dagster_run.run_id for r in instance.get_run_records(LIVE)}
    young = {r.dagster_run.run_id for r in succeeded if r.update_timestamp.astimezone(UTC) > cutoff}
    assert kept == young | holders | {failed.run_id}
    assert len(kept) < len(runs) // 2 + 4
    for record in runs:
        run_id = record.dagster_run.run_id
        if run_id not in kept:
            assert instance.all_logs(run_id) == [] and not compute_logs(instance, run_id).exists()
    (output,) = [e for e in result.all_events if e.is_successful_output]
    assert output.event_specific_data.metadata["deleted_runs"].value == len(runs) - len(kept)

    assert what_the_instance_shows(instance) == shown
    assert last_materialization(instance) == last_write
    with freeze_time(judged_at):
        assert freshness_state(defs, instance, USAGE) == FreshnessState.PASS
