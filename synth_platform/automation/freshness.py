"""Freshness of live streams: the newest event time a stream has delivered, against a multiple of its cadence.

The newest event time is the end of the latest window Dagster recorded as written: a live run's window tags, or
for a partition run the part of the day that had closed when the run started (what `windows_to_write` wrote).
It is read from the instance, so it works the same for every target.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from synth_platform.assets.common import LIVE_WINDOW_END_TAG, closed_part
from synth_platform.automation.live import KIND_TAG, AssetJob, Clock, LiveStream, utc_now
from synth_platform.specs.world import LiveSpec
from synth_platform.world.windows import Window

FRESHNESS_CHECK = "freshness"
FRESHNESS_JOB = "freshness_checks"
_RECENT_RECORDS = 200


def newest_event_time(instance: dg.DagsterInstance, stream: LiveStream, now: datetime) -> datetime | None:
    """End of the newest window written for today or yesterday, None when neither has anything."""
    days = [(now - timedelta(days=d)).strftime("%Y-%m-%d") for d in (0, 1)]
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=stream.key, asset_partitions=days), limit=_RECENT_RECORDS
    ).records
    if not records:
        return None
    run_ids = list({e.run_id for e in records})
    runs = {r.dagster_run.run_id: r for r in instance.get_run_records(dg.RunsFilter(run_ids=run_ids))}
    newest = None
    for record in records:
        run = runs.get(record.run_id)
        if run is None:
            continue
        if LIVE_WINDOW_END_TAG in run.dagster_run.tags:
            end = datetime.fromisoformat(run.dagster_run.tags[LIVE_WINDOW_END_TAG])
        else:
            started = datetime.fromtimestamp(run.start_time or record.timestamp, tz=UTC)
            part = closed_part(Window.for_day(record.partition_key), stream.cadence_seconds, now=started)
            end = part.end if part else None
        if end is not None and (newest is None or end > newest):
            newest = end
    return newest


def freshness_checks(streams: list[LiveStream], live: LiveSpec, clock: Clock = utc_now) -> dg.AssetChecksDefinition:
    by_key = {s.key: s for s in streams}
    specs = [
        dg.AssetCheckSpec(
            FRESHNESS_CHECK,
            asset=s.key,
            description=(
                f"Newest event time lags now by at most {live.freshness_multiple:g} x {s.cadence_seconds}s "
                "(plus the window being written)."
            ),
        )
        for s in streams
    ]

    @dg.multi_asset_check(specs=specs, name="live_freshness", can_subset=True)
    def _freshness(context: dg.AssetCheckExecutionContext):
        now = clock()
        for check_key in context.selected_asset_check_keys:
            stream = by_key[check_key.asset_key]
            allowed = live.freshness_multiple * stream.cadence_seconds
            newest = newest_event_time(context.instance, stream, now)
            lag = (now - newest).total_seconds() if newest else None
            yield dg.AssetCheckResult(
                asset_key=stream.key,
                check_name=FRESHNESS_CHECK,
                passed=lag is not None and lag <= allowed,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "newest_event_time": newest.isoformat() if newest else "nothing written today or yesterday",
                    "lag_seconds": dg.MetadataValue.float(round(lag, 1) if lag is not None else -1.0),
                    "allowed_lag_seconds": dg.MetadataValue.float(allowed),
                },
            )

    return _freshness


def freshness_job(checks: dg.AssetChecksDefinition) -> AssetJob:
    return dg.define_asset_job(
        FRESHNESS_JOB,
        selection=dg.AssetSelection.checks(checks),
        executor_def=dg.in_process_executor,
        tags={KIND_TAG: "freshness"},
        description="Freshness of every live stream (newest event time against its cadence).",
    )
