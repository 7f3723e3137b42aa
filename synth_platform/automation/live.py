"""Live delivery: one sensor per stream that declares a cadence, requesting every closed window exactly once.

The sensor cursor (kept by Dagster) is the end of the last requested window. Each evaluation takes the windows
that closed since then, oldest first and at most `max_windows_per_tick`, and requests them in batches: one run per
run of contiguous windows of one day, at most `max_windows_per_run` each, so after downtime the stream catches up in
a few runs with no gap in event time (the run still replaces each window on its own). The run key names the stream
and the batch start; since batches are contiguous from the cursor, a start is never requested twice, and Dagster
drops a repeated run key anyway.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition as AssetJob

from synth_platform.assets.common import IN_FLIGHT, LIVE_CADENCE_METADATA, LIVE_WINDOW_END_TAG, LIVE_WINDOW_START_TAG
from synth_platform.specs.world import LiveSpec
from synth_platform.world.windows import DAY_SECONDS, Window, epoch_seconds, from_epoch

LIVE_STREAM_TAG = "synth/live_stream"
KIND_TAG = "synth/kind"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LiveStream:
    """An asset that declared its live cadence (the window length) in its metadata."""

    key: dg.AssetKey
    cadence_seconds: int
    dimensions: tuple[dg.AssetKey, ...] = ()  # unpartitioned upstream assets, written once if never materialized
    checks: tuple[dg.AssetCheckKey, ...] = ()  # evaluated inside the asset's step (check_specs), per batch
    dimension_checks: tuple[dg.AssetCheckKey, ...] = ()  # the dimensions' own, in their steps when written

    @property
    def name(self) -> str:
        return self.key.to_user_string()

    @property
    def job_name(self) -> str:
        return f"live_{self.key.to_python_identifier()}"

    def run_key(self, window: Window) -> str:
        return f"{self.name}:{window.start.isoformat()}"


def dimensions(graph: Any, keys: Iterable[dg.AssetKey]) -> tuple[dg.AssetKey, ...]:
    """The unpartitioned materializable assets upstream of `keys` (a fleet, a device table) in a resolved graph."""
    upstream = dg.AssetSelection.assets(*keys).upstream().resolve(graph)
    found = (k for k in upstream if graph.get(k).is_materializable and not graph.get(k).is_partitioned)
    return tuple(sorted(found, key=lambda k: k.to_user_string()))


def in_step_checks(graph: Any, keys: Iterable[dg.AssetKey]) -> tuple[dg.AssetCheckKey, ...]:
    """The checks the assets `keys` declare on themselves (check_specs): evaluated in the step that writes them,
    so a run of the asset carries them."""
    keys = set(keys)
    found = {k for key in keys for k in graph.assets_def_for_key(key).check_keys if k.asset_key in keys}
    return tuple(sorted(found, key=str))


def checks_of_assets(checks: Iterable[dg.AssetCheckKey], keys: Iterable[dg.AssetKey]) -> list[dg.AssetCheckKey]:
    """The checks among `checks` that belong to one of `keys`: what a run request selecting `keys` asks for."""
    keys = set(keys)
    return [k for k in checks if k.asset_key in keys]


def unmaterialized(instance: dg.DagsterInstance, keys: Iterable[dg.AssetKey]) -> list[dg.AssetKey]:
    return [k for k in keys if instance.get_latest_materialization_event(k) is None]


def live_streams(graph: Any) -> list[LiveStream]:
    """The live streams of a resolved asset graph."""
    streams = []
    for node in graph.asset_nodes:
        cadence = node.metadata.get(LIVE_CADENCE_METADATA)
        if cadence is None:
            continue
        cadence = int(getattr(cadence, "value", cadence))
        if cadence <= 0 or not node.is_partitioned:
            raise ValueError(f"{node.key.to_user_string()}: a live stream needs a partitioned asset and a cadence > 0")
        dims = dimensions(graph, [node.key])
        streams.append(
            LiveStream(node.key, cadence, dims, in_step_checks(graph, [node.key]), in_step_checks(graph, dims))
        )
    return sorted(streams, key=lambda s: s.name)


def due_windows(cursor_s: int, now_s: int, cadence_s: int, limit: int) -> list[Window]:
    """Closed windows from the cursor on, oldest first, at most `limit`. Windows are epoch-aligned steps of the
    cadence and never cross midnight (each belongs to one daily partition); an unaligned cursor (the cadence
    changed) first gets the partial window up to the next step."""
    windows: list[Window] = []
    start = cursor_s
    while len(windows) < limit:
        end = min(start - start % cadence_s + cadence_s, start - start % DAY_SECONDS + DAY_SECONDS)
        if end > now_s:
            break
        windows.append(Window(from_epoch(start), from_epoch(end)))
        start = end
    return windows


def batches(windows: list[Window], size: int) -> list[Window]:
    """Contiguous windows merged into runs of at most `size` windows, never across midnight (one partition each)."""
    merged: list[Window] = []
    count = 0
    for w in windows:
        last = merged[-1] if merged else None
        if last and count < size and last.end == w.start and last.partition_key() == w.partition_key():
            merged[-1], count = Window(last.start, w.end), count + 1
        else:
            merged.append(w)
            count = 1
    return merged


def first_cursor(live: LiveSpec, cadence_s: int, now_s: int, first_day: date) -> int:
    """Where a sensor without a cursor starts: today 00:00 UTC, or N windows before the last closed one;
    never before the first partition."""
    if live.initial_cursor == "start_of_day":
        cursor = now_s - now_s % DAY_SECONDS
    else:
        cursor = now_s - now_s % cadence_s - live.initial_cursor * cadence_s
    return max(cursor, epoch_seconds(Window.for_day(first_day).start))


def live_job(stream: LiveStream) -> AssetJob:
    # In-process executor: a live run is one small step, so a second process per step would only add latency.
    # Only the checks the assets evaluate in their own steps, over what they wrote (the freshness check judges
    # the wall clock and has its own schedule).
    # The stream's dimensions are in the job so that a fresh deployment writes them with its first window.
    return dg.define_asset_job(
        stream.job_name,
        selection=dg.AssetSelection.assets(stream.key, *stream.dimensions).without_checks()
        | dg.AssetSelection.checks(*stream.checks, *stream.dimension_checks),
        executor_def=dg.in_process_executor,
        tags={KIND_TAG: "live", LIVE_STREAM_TAG: stream.name},
        description=f"One live window of {stream.name}, requested by its sensor.",
    )


def live_sensor(
    stream: LiveStream,
    job: AssetJob,
    live: LiveSpec,
    first_day: date,
    clock: Clock = utc_now,
) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{stream.job_name}_sensor",
        job=job,
        minimum_interval_seconds=live.min_interval_seconds,
        default_status=dg.DefaultSensorStatus(live.default_status.upper()),
        description=(
            f"Requests each closed {stream.cadence_seconds}s window of {stream.name} once, oldest first "
            f"(at most {live.max_windows_per_tick} per evaluation, up to {live.max_windows_per_run} contiguous "
            "windows per run); the cursor is the end of the last window."
        ),
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        now_s = epoch_seconds(clock())
        if context.cursor:
            cursor_s = epoch_seconds(datetime.fromisoformat(context.cursor))
        else:
            cursor_s = first_cursor(live, stream.cadence_seconds, now_s, first_day)
        in_flight = context.instance.get_runs_count(
            dg.RunsFilter(tags={LIVE_STREAM_TAG: stream.name}, statuses=IN_FLIGHT)
        )
        budget = live.max_runs_in_flight - in_flight
        if budget <= 0:
            return dg.SkipReason(f"{in_flight} live runs of {stream.name} are queued or running; waiting for them")
        windows = due_windows(cursor_s, now_s, stream.cadence_seconds, live.max_windows_per_tick)
        runs = batches(windows, live.max_windows_per_run)[:budget]
        cursor = from_epoch(runs[-1].end_s if runs else cursor_s).isoformat()
        if not runs:
            return dg.SensorResult(skip_reason=f"no window closed since {cursor}", cursor=cursor)
        missing = unmaterialized(context.instance, stream.dimensions)
        first_checks = [*stream.checks, *checks_of_assets(stream.dimension_checks, missing)]
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=stream.run_key(w),
                    partition_key=w.partition_key(),
                    asset_selection=[stream.key, *(missing if i == 0 else [])],
                    # explicit: a subset run would add every check
                    asset_check_keys=first_checks if i == 0 else list(stream.checks),
                    tags={LIVE_WINDOW_START_TAG: w.start.isoformat(), LIVE_WINDOW_END_TAG: w.end.isoformat()},
                )
                for i, w in enumerate(runs)
            ],
            cursor=cursor,
        )

    return _sensor
