"""Automation over the assembled domains: live sensors, the daily close, retention (data and live run history) and
freshness.

Built from the merged Definitions, so a stream joins by declaring `LIVE_CADENCE_METADATA` on its asset (live sensor,
freshness policy); daily partitioned assets join the daily close; the retention rules come from the domain records.
"""

from collections.abc import Sequence

import dagster as dg

from synth_platform.assets.common import daily_partitions
from synth_platform.automation.close import daily_close_job, daily_close_schedule
from synth_platform.automation.freshness import with_freshness
from synth_platform.automation.live import Clock, dimensions, live_job, live_sensor, live_streams, utc_now
from synth_platform.automation.retention import RetentionRule, retention_job
from synth_platform.automation.run_history import run_history_job
from synth_platform.specs import PlatformSpec


def build(
    platform: PlatformSpec, domains: dg.Definitions, clock: Clock = utc_now, rules: Sequence[RetentionRule] = ()
) -> dg.Definitions:
    """The domains' definitions with the automation added: live streams carry a freshness policy."""
    live = platform.world.live
    status = dg.DefaultScheduleStatus(live.default_status.upper())
    graph = domains.resolve_asset_graph()
    jobs: list = []
    sensors: list[dg.SensorDefinition] = []
    schedules: list[dg.ScheduleDefinition] = []

    streams = live_streams(graph)
    for stream in streams:
        job = live_job(stream)
        jobs.append(job)
        sensors.append(live_sensor(stream, job, live, platform.world.start_date, clock))

    daily = daily_partitions(platform.world)
    closing = [n.key for n in graph.asset_nodes if n.is_materializable and n.partitions_def == daily]
    if closing:
        dims = dimensions(graph, closing)
        checks_to_run = dg.AssetSelection.checks_for_assets(*closing, *dims).resolve_checks(graph)  # domains' own
        job = daily_close_job([*closing, *dims])
        jobs.append(job)
        schedules.append(daily_close_schedule(job, closing, dims, sorted(checks_to_run), platform.world))

    if streams:
        job = run_history_job(live.purge_live_runs_after_days, clock)
        jobs.append(job)
        schedules.append(_schedule("live_run_history_schedule", job, live.run_history_cron, status))

    if rules:
        job = retention_job(rules, clock)
        jobs.append(job)
        schedules.append(_schedule("retention_schedule", job, live.retention_cron, status))
    automated = dg.Definitions(jobs=jobs, sensors=sensors, schedules=schedules)
    return dg.Definitions.merge(with_freshness(domains, streams, live), automated)


def _schedule(name: str, job: object, cron: str, status: dg.DefaultScheduleStatus) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=name, job=job, cron_schedule=cron, execution_timezone="UTC", default_status=status
    )
