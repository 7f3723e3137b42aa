"""What the automation's runs do to real data: live windows, the daily close and retention (SQLite)."""

import dagster as dg
import pytest

from synth_platform.assets.common import LIVE_WINDOW_END_TAG, LIVE_WINDOW_START_TAG
from synth_platform.sinks.database import DatabaseResource
from synth_platform.world.power_usage import expected_rows
from synth_platform.world.windows import Window
from synth_platform_tests.config_files import edit_yaml
from synth_platform_tests.live_helpers import HISTORY_JOB, Clock, at, live_definitions, power_platform, rows, world_rows
from synth_platform_tests.runs import run_days, run_request

DAY = "2026-03-02"
USAGE = dg.AssetKey("power_usage")


def run_live(
    defs: dg.Definitions, instance, w: Window, partition: str | None = None, with_devices: bool = False
) -> dg.ExecuteInProcessResult:
    tags = {LIVE_WINDOW_START_TAG: w.start.isoformat(), LIVE_WINDOW_END_TAG: w.end.isoformat()}
    # what a live RunRequest launches: the stream with the checks it evaluates in its step (and its device table
    # in the first run of a fresh deployment)
    keys = {USAGE, dg.AssetKey("device_metadata")} if with_devices else {USAGE}
    checks = {dg.AssetCheckKey(USAGE, name) for name in ("row_count", "unique_keys", "known_devices")}
    job = defs.resolve_job_def("live_power_usage").get_subset(asset_selection=keys, asset_check_selection=checks)
    return job.execute_in_process(instance=instance, partition_key=partition or w.partition_key(), tags=tags)


@pytest.fixture
def platform(config_dir):
    return power_platform(config_dir)


def test_live_run_replaces_exactly_its_window_and_checks_it(platform, sqlite_url, instance):
    defs = live_definitions(platform, sqlite_url, Clock(at("2026-03-03T00:00")))
    db = DatabaseResource(url=sqlite_url)
    first, second = Window(at(f"{DAY}T10:00"), at(f"{DAY}T10:10")), Window(at(f"{DAY}T10:10"), at(f"{DAY}T10:20"))
    result = run_live(defs, instance, first, with_devices=True)
    assert result.success
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()} == {
        "row_count": True, "unique_keys": True, "known_devices": True,
    }  # fmt: skip
    assert run_live(defs, instance, second).success
    assert run_live(defs, instance, first).success  # a retried window replaces itself
    assert rows(db, Window(first.start, second.end)) == world_rows(platform, Window(first.start, second.end))
    assert rows(db, Window.for_day(DAY)) == rows(db, Window(first.start, second.end))  # nothing outside the windows
    with pytest.raises(ValueError, match="outside partition"):
        run_live(defs, instance, Window(at("2026-03-03T10:00"), at("2026-03-03T10:10")), partition=DAY)


def test_daily_close_rewrites_yesterday_identically_and_runs_the_checks(platform, sqlite_url, instance):
    clock = Clock(at("2026-03-03T00:15"))
    defs = live_definitions(platform, sqlite_url, clock)
    db = DatabaseResource(url=sqlite_url)
    live_hour = Window(at(f"{DAY}T06:00"), at(f"{DAY}T07:00"))
    for w in live_hour.split(600):
        assert run_live(defs, instance, w).success
    delivered_live = rows(db, live_hour)

    schedule = defs.resolve_schedule_def("daily_close_schedule")
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=clock.now, repository_def=defs.get_repository_def()
    )
    (request,) = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == DAY and request.run_key == f"daily_close:{DAY}"
    assert set(request.asset_selection) == {dg.AssetKey("power_usage"), dg.AssetKey("device_metadata")}

    result = run_request(defs.resolve_job_def("daily_close"), instance, request)
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"row_count": True, "unique_keys": True, "known_devices": True}  # the domain's whole-day checks
    assert rows(db, live_hour) == delivered_live  # the close equals the union of the live windows
    expected = expected_rows(platform.get("power"), platform.world.seed, Window.for_day(DAY))
    assert len(rows(db, Window.for_day(DAY))) == expected
    (request,) = schedule.evaluate_tick(context).run_requests
    assert request.asset_selection == [dg.AssetKey("power_usage")]  # the device table exists now: not rewritten


def test_daily_close_skips_days_before_the_first_partition(platform, sqlite_url, instance):
    defs = live_definitions(platform, sqlite_url, Clock(at("2026-01-01T00:15")))
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=at("2026-01-01T00:15"), repository_def=defs.get_repository_def()
    )
    data = defs.resolve_schedule_def("daily_close_schedule").evaluate_tick(context)
    assert data.run_requests == [] and "before the first partition" in data.skip_message


def test_retention_deletes_whole_days_older_than_retention(config_dir, sqlite_url, instance):
    edit_yaml(config_dir / "power.yaml", retention_days=3)
    platform = power_platform(config_dir, interval_minutes=60)
    clock = Clock(at("2026-03-05T12:00"))
    defs = live_definitions(platform, sqlite_url, clock)
    assert run_days(defs, instance, "2026-03-01", "2026-03-03", job=HISTORY_JOB).success
    db = DatabaseResource(url=sqlite_url)
    before = {d: len(rows(db, Window.for_day(d))) for d in ("2026-03-01", "2026-03-02", "2026-03-03")}
    assert all(before.values())

    result = defs.resolve_job_def("retention").execute_in_process(instance=instance)
    assert result.success
    after = {d: len(rows(db, Window.for_day(d))) for d in before}
    assert after == {"2026-03-01": 0, "2026-03-02": before["2026-03-02"], "2026-03-03": before["2026-03-03"]}
    (output,) = [e for e in result.all_events if e.is_successful_output]
    deleted = output.event_specific_data.metadata["deleted"].value
    assert list(deleted.values()) == [before["2026-03-01"]]
    assert output.event_specific_data.metadata["cutoff"].value == "2026-03-02T00:00:00+00:00"
