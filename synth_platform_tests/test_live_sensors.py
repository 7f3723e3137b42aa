"""Live sensors evaluated with build_sensor_context on a temp instance: each closed window requested exactly once,
bounded catch-up after downtime, no window skipped or repeated across ticks."""

import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synth_platform.assets.common import LIVE_WINDOW_END_TAG, LIVE_WINDOW_START_TAG
from synth_platform.automation.live import LIVE_STREAM_TAG, LiveStream, batches, due_windows
from synth_platform.domains import load_platform
from synth_platform.specs.loader import SpecError
from synth_platform.world.windows import Window
from synth_platform_tests.config_files import edit_yaml
from synth_platform_tests.live_helpers import Clock, at, live_definitions, power_platform

STREAM = LiveStream(dg.AssetKey("power_usage"), 600)
SENSOR = "live_power_usage_sensor"


@pytest.fixture
def make_sensor(config_dir, sqlite_url):
    """The live sensor of the real power definitions (10-minute windows), with a clock and `live:` settings."""

    def make(clock: Clock, **live: object) -> tuple[dg.SensorDefinition, dg.RepositoryDefinition]:
        defs = live_definitions(power_platform(config_dir, **live), sqlite_url, clock)
        return defs.resolve_sensor_def(SENSOR), defs.get_repository_def()

    return make


def requested_batches(data) -> list[Window]:
    """The window range each run request of a tick covers (one run per batch of contiguous windows)."""
    return [
        Window(
            datetime.fromisoformat(r.tags[LIVE_WINDOW_START_TAG]), datetime.fromisoformat(r.tags[LIVE_WINDOW_END_TAG])
        )
        for r in data.run_requests
    ]


def tick(sensor, instance: dg.DagsterInstance, cursor: str | None):
    """One evaluation as the daemon does it: returns (windows requested, run keys, new cursor, skip message);
    the windows are those the requested runs write, one per cadence step."""
    sensor, repo = sensor
    data = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor, repository_def=repo))
    batches = requested_batches(data)
    for request, batch in zip(data.run_requests, batches, strict=True):
        assert request.partition_key == batch.partition_key()
        assert request.tags["dagster/partition"] == batch.partition_key()
        assert request.run_key == STREAM.run_key(batch)
    windows = [w for batch in batches for w in batch.split(STREAM.cadence_seconds)]
    return windows, [r.run_key for r in data.run_requests], data.cursor, data.skip_message


def test_first_tick_requests_today_up_to_the_last_closed_window(make_sensor, instance):
    clock = Clock(at("2026-03-05T01:07:30"))
    windows, keys, cursor, _ = tick(make_sensor(clock, max_windows_per_tick=12), instance, None)
    assert [w.start for w in windows] == [at("2026-03-05T00:00") + timedelta(minutes=10 * i) for i in range(6)]
    assert all(w.seconds == 600 for w in windows)
    assert keys == [f"power_usage:{windows[0].start.isoformat()}"]  # one run writes the six windows
    assert cursor == at("2026-03-05T01:00").isoformat()


def test_a_never_written_dimension_goes_with_the_first_window_only(make_sensor, instance):
    clock = Clock(at("2026-03-05T00:30:00"))
    sensor = make_sensor(clock, max_windows_per_run=1)
    data = sensor[0].evaluate_tick(dg.build_sensor_context(instance=instance, repository_def=sensor[1]))
    selections = [set(r.asset_selection) for r in data.run_requests]
    usage, devices = dg.AssetKey("power_usage"), dg.AssetKey("device_metadata")
    assert selections == [{usage, devices}, {usage}, {usage}]
    in_step = {dg.AssetCheckKey(usage, n) for n in ("known_devices", "row_count", "unique_keys")}
    assert all(set(r.asset_check_keys) == in_step for r in data.run_requests)  # the checks of its own step


def test_initial_cursor_can_start_at_the_last_windows(make_sensor, instance):
    clock = Clock(at("2026-03-05T13:07:30"))
    windows, _, _, _ = tick(make_sensor(clock, initial_cursor=2), instance, None)
    assert windows == [
        Window(at("2026-03-05T12:40"), at("2026-03-05T12:50")),
        Window(at("2026-03-05T12:50"), at("2026-03-05T13:00")),
    ]


def test_a_window_is_requested_once_and_only_after_it_closed(make_sensor, instance):
    clock = Clock(at("2026-03-05T00:20:00"))
    sensor = make_sensor(clock)
    windows, _, cursor, _ = tick(sensor, instance, None)
    assert len(windows) == 2
    for seconds in (0, 1, 299, 599):  # the next window [00:20, 00:30) is still open
        clock.now = at("2026-03-05T00:20:00") + timedelta(seconds=seconds)
        again, _, cursor, skip = tick(sensor, instance, cursor)
        assert again == [] and "no window closed" in skip
    clock.now = at("2026-03-05T00:30:00")
    windows, _, cursor, _ = tick(sensor, instance, cursor)
    assert windows == [Window(at("2026-03-05T00:20"), at("2026-03-05T00:30"))]


def test_catch_up_after_downtime_is_bounded_per_tick_and_gapless_across_midnight(make_sensor, instance):
    clock = Clock(at("2026-03-05T23:00:00"))
    sensor = make_sensor(clock, max_windows_per_tick=50, max_runs_in_flight=1000)
    cursor = at("2026-03-05T22:00").isoformat()
    clock.now = at("2026-03-07T03:05:00")  # 29 hours of downtime: 174 windows
    seen, keys, ticks = [], [], 0
    while True:
        windows, run_keys, cursor, _ = tick(sensor, instance, cursor)
        if not windows:
            break
        ticks += 1
        assert len(windows) <= 50 and len(run_keys) <= 3  # 50 windows: at most 30 per run, split at midnight
        seen += windows
        keys += run_keys
    assert ticks == 4 and len(seen) == 174 and len(keys) == 9
    assert len(set(keys)) == len(keys)
    assert seen[0].start == at("2026-03-05T22:00") and seen[-1].end == at("2026-03-07T03:00")
    assert all(a.end == b.start for a, b in zip(seen, seen[1:], strict=False))  # contiguous: nothing skipped
    assert {w.partition_key() for w in seen} == {"2026-03-05", "2026-03-06", "2026-03-07"}


def add_stream_runs(instance: dg.DagsterInstance, count: int, status: dg.DagsterRunStatus) -> None:
    """`count` runs of the stream in the instance with `status`, as the sensor would find them."""
    for _ in range(count):
        run = dg.DagsterRun(
            job_name=STREAM.job_name, run_id=str(uuid.uuid4()), status=status, tags={LIVE_STREAM_TAG: STREAM.name}
        )
        instance.add_run(run)


def test_no_new_windows_while_the_stream_has_runs_in_flight(make_sensor, instance):
    clock = Clock(at("2026-03-05T02:00:00"))
    sensor = make_sensor(clock, max_windows_per_tick=12, max_windows_per_run=5, max_runs_in_flight=5)
    add_stream_runs(instance, 3, dg.DagsterRunStatus.NOT_STARTED)
    windows, keys, cursor, _ = tick(sensor, instance, None)
    assert len(keys) == 2 and len(windows) == 10  # 5 runs allowed in flight, 3 already waiting to start
    assert cursor == at("2026-03-05T01:40").isoformat()  # the rest waits for a later tick
    add_stream_runs(instance, 2, dg.DagsterRunStatus.STARTED)
    windows, _, cursor2, skip = tick(sensor, instance, cursor)
    assert windows == [] and "queued or running" in skip and cursor2 in (None, cursor)


def test_a_stream_behind_by_several_windows_catches_up_in_one_run(make_sensor, instance):
    clock = Clock(at("2026-03-05T10:00:00"))
    sensor = make_sensor(clock, initial_cursor=8)
    windows, keys, cursor, _ = tick(sensor, instance, None)
    assert keys == [f"power_usage:{at('2026-03-05T08:40').isoformat()}"] and len(windows) == 8
    assert windows == list(Window(at("2026-03-05T08:40"), at("2026-03-05T10:00")).split(600))
    assert cursor == at("2026-03-05T10:00").isoformat()


def test_batches_are_bounded_contiguous_and_split_at_midnight():
    days = Window(at("2026-03-05T22:00"), at("2026-03-06T02:00"))
    windows = list(days.split(1800))
    merged = batches(windows, 3)
    assert merged == [
        Window(at("2026-03-05T22:00"), at("2026-03-05T23:30")),
        Window(at("2026-03-05T23:30"), at("2026-03-06T00:00")),
        Window(at("2026-03-06T00:00"), at("2026-03-06T01:30")),
        Window(at("2026-03-06T01:30"), at("2026-03-06T02:00")),
    ]
    assert [w for b in merged for w in b.split(1800)] == windows


def test_windows_never_cross_midnight_and_unaligned_cursors_realign():
    cadence = 7 * 3600  # does not divide a day: the last window of each day is cut at midnight
    windows = due_windows(
        int(at("2026-03-05T00:00").timestamp()), int(at("2026-03-06T08:00").timestamp()), cadence, 100
    )
    assert all(w.start.date() == (w.end - timedelta(microseconds=1)).date() for w in windows)
    assert all(a.end == b.start for a, b in zip(windows, windows[1:], strict=False))
    unaligned = due_windows(int(at("2026-03-05T00:25").timestamp()), int(at("2026-03-05T01:00").timestamp()), 1200, 10)
    assert unaligned == [
        Window(at("2026-03-05T00:25"), at("2026-03-05T00:40")),
        Window(at("2026-03-05T00:40"), at("2026-03-05T01:00")),
    ]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(gaps=st.lists(st.integers(min_value=0, max_value=6 * 3600), min_size=1, max_size=25), limit=st.integers(1, 8))
def test_any_tick_schedule_requests_every_window_exactly_once(make_sensor, gaps, limit):
    clock = Clock(at("2026-03-05T00:00:00"))
    sensor = make_sensor(clock, max_windows_per_tick=limit, max_runs_in_flight=1000)
    with dg.instance_for_test() as instance:
        cursor, seen = None, []
        for gap in [*gaps, 0, 0]:
            clock.now += timedelta(seconds=gap)
            windows, _, cursor, _ = tick(sensor, instance, cursor)
            seen += windows
        while windows:  # drain what the bound left for later ticks
            windows, _, cursor, _ = tick(sensor, instance, cursor)
            seen += windows
        closed = int(clock.now.timestamp()) // 600 * 600
        expected = list(Window(at("2026-03-05T00:00"), datetime.fromtimestamp(closed, UTC)).split(600)) if closed > int(
            at("2026-03-05T00:00").timestamp()) else []  # fmt: skip
        assert seen == expected


@pytest.mark.parametrize("status", ["running", "stopped"])
def test_default_status_comes_from_config(make_sensor, status):
    sensor, repo = make_sensor(Clock(at("2026-03-05T00:00:00")), default_status=status)
    assert {s.default_status for s in repo.schedule_defs} == {dg.DefaultScheduleStatus(status.upper())}
    assert sensor.default_status == dg.DefaultSensorStatus(status.upper())


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("daily_close_cron", "every night", "is not a cron expression"),
        ("initial_cursor", 0, "must be 'start_of_day' or a number of windows >= 1"),
        ("min_interval_seconds", 1, "greater than or equal to 5"),
        ("default_status", "paused", "'running' or 'stopped'"),
    ],
)
def test_a_bad_live_setting_names_file_key_and_reason(config_dir, key, value, reason):
    edit_yaml(config_dir / "world.yaml", **{f"live.{key}": value})
    with pytest.raises(SpecError) as error:
        load_platform(config_dir)
    assert str(config_dir / "world.yaml") in str(error.value)
    assert f"live.{key}" in str(error.value) and reason in str(error.value)
