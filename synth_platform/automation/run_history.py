"""Run-history retention: live runs are many and small, so a scheduled job deletes old ones (successful after
`purge_live_runs_after_days.success`, failed or canceled after `.failure`) with their event logs and compute logs.

Dagster OSS purges ticks, not runs. What the UI shows must not change when runs go: a run that holds the latest
materialization (or the latest attempt) of any asset partition it wrote is kept whatever its age. Materialized
partitions and watermarks kept in an asset's latest metadata therefore never depend on a deleted run, nor does the
freshness state: Dagster's evaluator reads the asset record's last materialization, which a purge never deletes.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta

import dagster as dg

from synth_platform.automation.live import KIND_TAG, Clock
from synth_platform.specs.world import LiveRunAges

RUN_HISTORY_JOB = "live_run_history"
LIVE_KIND = "live"
_WRITES = {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED}
_OUTCOMES = {
    "success": [dg.DagsterRunStatus.SUCCESS],
    "failure": [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED],
}


def expired_live_runs(instance: dg.DagsterInstance, ages: LiveRunAges, now: datetime) -> list[str]:
    """Ids of finished live runs last updated longer ago than their outcome's age."""
    found = []
    for outcome, statuses in _OUTCOMES.items():
        before = now - timedelta(days=getattr(ages, outcome))
        records = instance.get_run_records(
            dg.RunsFilter(tags={KIND_TAG: LIVE_KIND}, statuses=statuses, updated_before=before)
        )
        found += [r.dagster_run.run_id for r in records]
    return found


def holders_of_latest(instance: dg.DagsterInstance, run_ids: Iterable[str]) -> set[str]:
    """The runs among `run_ids` whose write of some asset partition is that partition's latest materialization
    or latest attempt: deleting them would change what the instance reports for the partition."""
    written: set[tuple[dg.AssetKey, str | None]] = set()
    for run_id in run_ids:
        for record in instance.get_records_for_run(run_id, of_type=_WRITES).records:
            event = record.event_log_entry.dagster_event
            written.add((event.asset_key, event.partition))
    latest: set[str] = set()
    for key, partition in written:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None), limit=1
        ).records
        latest.update(r.run_id for r in records)
        planned = instance.get_latest_planned_materialization_info(key, partition)
        if planned is not None:
            latest.add(planned.run_id)
    return latest & set(run_ids)


def purge_live_runs(instance: dg.DagsterInstance, ages: LiveRunAges, now: datetime) -> tuple[int, int]:
    """Delete expired live runs, their events and their compute logs; returns (deleted, kept as latest)."""
    expired = expired_live_runs(instance, ages, now)
    keep = holders_of_latest(instance, expired)
    for run_id in expired:
        if run_id not in keep:
            instance.delete_run(run_id)
            instance.compute_log_manager.delete_logs(prefix=[run_id])
    return len(expired) - len(keep), len(keep)


def run_history_job(ages: LiveRunAges, clock: Clock) -> dg.JobDefinition:
    @dg.op(
        name="purge_live_runs",
        description=f"Delete live runs older than {ages.success:g} days (successful) or {ages.failure:g} days "
        "(failed), with their event and compute logs, keeping any run that holds a partition's latest write.",
    )
    def _purge(context: dg.OpExecutionContext) -> None:
        deleted, kept = purge_live_runs(context.instance, ages, clock())
        context.log.info(f"deleted {deleted} live runs; kept {kept} old ones holding a partition's latest write")
        context.add_output_metadata({"deleted_runs": deleted, "kept_as_latest": kept})

    @dg.job(
        name=RUN_HISTORY_JOB,
        tags={KIND_TAG: "run_history"},
        executor_def=dg.in_process_executor,
        description="Delete old live runs from the run history (Dagster keeps every run otherwise).",
    )
    def _job():
        _purge()

    return _job
