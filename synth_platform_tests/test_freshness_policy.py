"""Freshness of live streams is Dagster's freshness policy, evaluated by the daemon: each live stream carries it,
a user's materialization (the asset job the UI launches, with every check of the asset) judges no wall clock, and
the state the daemon's evaluator records goes PASS after a live write, WARN and FAIL as time passes without one."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.test_utils import freeze_time

from synth_platform.automation.freshness import freshness_policy
from synth_platform.automation.live import LiveStream
from synth_platform.domains import load_platform
from synth_platform.specs.loader import SpecError
from synth_platform.world.windows import Window
from synth_platform_tests.config_files import edit_yaml
from synth_platform_tests.live_helpers import (
    HISTORY_JOB,
    Clock,
    at,
    freshness_state,
    live_definitions,
    power_platform,
)
from synth_platform_tests.runs import run_days
from synth_platform_tests.test_live_runs import USAGE, run_live

DOMAIN_CHECKS = {"row_count", "unique_keys", "known_devices"}


def test_each_live_stream_carries_its_freshness_policy(config_dir, sqlite_url):
    defs = live_definitions(power_platform(config_dir, interval_minutes=10), sqlite_url, Clock(at("2026-03-05T00:00")))
    policy = defs.resolve_asset_graph().get(USAGE).freshness_policy
    assert policy.fail_window.to_timedelta() == timedelta(minutes=30)  # freshness_multiple 3 x the 10-minute cadence
    assert policy.warn_window.to_timedelta() == timedelta(minutes=20)  # one window earlier
    assert defs.resolve_asset_graph().get(dg.AssetKey("device_metadata")).freshness_policy is None  # not live

    edit_yaml(config_dir / "world.yaml", **{"live.freshness_multiple": 1.5})
    defs = live_definitions(power_platform(config_dir, interval_minutes=1), sqlite_url, Clock(at("2026-03-05")))
    policy = defs.resolve_asset_graph().get(USAGE).freshness_policy
    assert policy.fail_window.to_timedelta() == timedelta(seconds=90) and policy.warn_window is None  # warn < 1 min
    # a 10-second stream: Dagster's floor of a minute
    short = freshness_policy(LiveStream(USAGE, 10), load_platform(config_dir).world.live)
    assert short.fail_window.to_timedelta() == timedelta(minutes=1) and short.warn_window is None


def test_a_user_materialization_runs_no_freshness_check(config_dir, sqlite_url, instance):
    defs = live_definitions(power_platform(config_dir), sqlite_url, Clock(at("2026-03-05T00:00")))
    graph = defs.resolve_asset_graph()
    assert {k.name for k in graph.asset_check_keys if k.asset_key == USAGE} == DOMAIN_CHECKS
    # what the UI launches on Materialize: the implicit asset job with the asset and every check of it
    job = defs.resolve_implicit_job_def_def_for_assets([USAGE]).get_subset(
        asset_selection={USAGE}, asset_check_selection=set(graph.asset_check_keys) & graph.get(USAGE).check_keys
    )
    result = job.execute_in_process(instance=instance, partition_key="2026-03-04")
    assert result.success
    assert {e.check_name for e in result.get_asset_check_evaluations()} == DOMAIN_CHECKS


def test_freshness_state_follows_the_latest_write(config_dir, sqlite_url, instance):
    defs = live_definitions(power_platform(config_dir), sqlite_url, Clock(at("2026-03-05T10:00:30")))
    with freeze_time(at("2026-03-05T10:00:30")):
        assert freshness_state(defs, instance, USAGE) == FreshnessState.UNKNOWN  # nothing written yet
        assert run_live(defs, instance, Window(at("2026-03-05T09:50"), at("2026-03-05T10:00"))).success
        assert freshness_state(defs, instance, USAGE) == FreshnessState.PASS
    with freeze_time(at("2026-03-05T10:20:29")):
        assert freshness_state(defs, instance, USAGE) == FreshnessState.PASS
    with freeze_time(at("2026-03-05T10:20:30")):  # two windows without a write
        assert freshness_state(defs, instance, USAGE) == FreshnessState.WARN
    with freeze_time(at("2026-03-05T10:30:30")):  # three
        assert freshness_state(defs, instance, USAGE) == FreshnessState.FAIL
        assert run_live(defs, instance, Window(at("2026-03-05T10:00"), at("2026-03-05T10:10"))).success
        assert freshness_state(defs, instance, USAGE) == FreshnessState.PASS


def test_a_config_that_still_sets_freshness_cron_fails_clearly(config_dir):
    edit_yaml(config_dir / "world.yaml", **{"live.freshness_cron": "*/10 * * * *"})
    with pytest.raises(SpecError, match=r"live: freshness_cron is no longer a setting: freshness is Dagster's "):
        load_platform(config_dir)


def test_a_live_materialization_reports_its_event_lag(config_dir, sqlite_url, instance):
    defs = live_definitions(power_platform(config_dir), sqlite_url, Clock(at("2026-03-05T10:00:30")))
    batch = Window(at("2026-03-05T09:40"), at("2026-03-05T10:00"))
    before = datetime.now(UTC)
    assert run_live(defs, instance, batch).success
    after = datetime.now(UTC)
    meta = instance.get_latest_materialization_event(USAGE).asset_materialization.metadata
    assert isinstance(meta["event_lag_s"], dg.FloatMetadataValue)  # numeric: the Plots tab draws it
    assert (before - batch.end).total_seconds() <= meta["event_lag_s"].value <= (after - batch.end).total_seconds()

    assert run_days(defs, instance, "2026-03-04", job=HISTORY_JOB).success  # a backfill writes the past on purpose
    assert "event_lag_s" not in instance.get_latest_materialization_event(USAGE).asset_materialization.metadata
