"""Running jobs in tests: a range of daily partitions in one run, what a tick requested, and what its checks
said."""

import dagster as dg

from synth_platform.definitions import MAIN_JOB


def assets_only(defs: dg.Definitions) -> dg.AssetSelection:
    """Every asset of `defs`, with only the checks an asset evaluates in its own step (check_specs of an asset that
    cannot be subset: a job with the asset cannot leave them out); no separate checks."""
    in_step = [
        key
        for assets in defs.assets or []
        if isinstance(assets, dg.AssetsDefinition) and not assets.can_subset
        for key in assets.check_keys
        if key.asset_key in assets.keys
    ]
    return dg.AssetSelection.all().without_checks() | dg.AssetSelection.checks(*in_step)


def partition_range(first: str, last: str | None = None) -> dict[str, str]:
    """The run tags of one run over the days first..last (one day without `last`)."""
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last or first}


def run_days(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    first: str,
    last: str | None = None,
    job: str = MAIN_JOB,
    tags: dict[str, str] | None = None,
    **kw: object,
) -> dg.ExecuteInProcessResult:
    """Execute `job` in process over first..last (plus `tags`, e.g. a live window)."""
    tags = {**partition_range(first, last), **(tags or {})}
    return defs.resolve_job_def(job).execute_in_process(instance=instance, tags=tags, **kw)


def run_request(
    job: dg.JobDefinition, instance: dg.DagsterInstance, request: dg.RunRequest
) -> dg.ExecuteInProcessResult:
    """Execute in process what a sensor or schedule tick requested of `job`: its assets and checks, its partition
    and its tags, as the daemon would launch it."""
    subset = job.get_subset(
        asset_selection=set(request.asset_selection), asset_check_selection=set(request.asset_check_keys)
    )
    return subset.execute_in_process(instance=instance, partition_key=request.partition_key, tags=request.tags)


def checks_of(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    """The checks a run evaluated, by name."""
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def checks_passed(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {name: e.passed for name, e in checks_of(result).items()}
