"""The daily close: after midnight UTC, rewrite yesterday's partition of every daily stream and run its checks.

A backfill of a day writes the same rows as the union of its live windows, so the close changes nothing that was
delivered live; it fills any window the live runs missed and is the run where the day's checks see a whole day.
"""

from datetime import timedelta

import dagster as dg

from synth_platform.automation.live import KIND_TAG, AssetJob, checks_of_assets, unmaterialized
from synth_platform.specs.world import WorldSpec

DAILY_CLOSE_JOB = "daily_close"


def daily_close_job(assets: list[dg.AssetKey]) -> AssetJob:
    """Every daily stream and its dimensions (unpartitioned upstream, written by the close only if missing)."""
    return dg.define_asset_job(
        DAILY_CLOSE_JOB,
        selection=dg.AssetSelection.assets(*assets),
        tags={KIND_TAG: "daily_close"},
        description="Yesterday's partition of every daily stream, each with the checks its step runs over the "
        "whole day.",
    )


def daily_close_schedule(
    job: AssetJob,
    streams: list[dg.AssetKey],
    dims: tuple[dg.AssetKey, ...],
    checks: list[dg.AssetCheckKey],
    world: WorldSpec,
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{DAILY_CLOSE_JOB}_schedule",
        job=job,
        cron_schedule=world.live.daily_close_cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus(world.live.default_status.upper()),
        description="Closes the previous UTC day of every daily stream.",
    )
    def _close(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        day = context.scheduled_execution_time.date() - timedelta(days=1)
        if day < world.start_date:
            return dg.SkipReason(f"{day} is before the first partition ({world.start_date})")
        selected = [*streams, *unmaterialized(context.instance, dims)]  # dimensions only if never written
        return dg.RunRequest(
            run_key=f"{DAILY_CLOSE_JOB}:{day.isoformat()}",
            partition_key=day.isoformat(),
            asset_selection=selected,
            # explicit: the domains' checks of the selected assets; a dimension's own checks go with it (they run
            # in its step)
            asset_check_keys=checks_of_assets(checks, selected),
        )

    return _close
