"""The code location: Definitions built in one place, from config/ and the domain registry."""

from __future__ import annotations

import os
import warnings

import dagster as dg

from synth_platform import automation
from synth_platform.automation.close import DAILY_CLOSE_JOB
from synth_platform.domains import REGISTRY, load_platform
from synth_platform.execution import executor_from_env
from synth_platform.resources import build_resources, database_url
from synth_platform.sinks.database import database_kind
from synth_platform.sinks.files import BUCKET_KIND, bucket_kind
from synth_platform.specs import PlatformSpec

MAIN_JOB = "main_job"

# Deliberate uses: backfill policies and partitioned checks are beta/preview in 1.13, and main_job and the daily
# close mix the single-run and per-day backfill policies on purpose: both are launched over explicit partitions
# (`make run` over the demo range, the close over one day), never as a backfill that would split by policy.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings(
    "ignore", message=f"Asset job ({MAIN_JOB}|{DAILY_CLOSE_JOB}) materializes assets with varying BackfillPolicies"
)


# main_job runs every domain at once: its step processes fork from a server that has already imported the code
# location and the instance's storage modules (which `import dagster` leaves out and every step needs: half a
# second each), so a step starts in milliseconds instead of re-importing Dagster, pyarrow and the domains (seconds
# each on a small machine). Everything else (a partition materialized from the UI or `dg launch`, a backfill
# run, the daily close) runs its steps in the run's own process: an asset's checks run inside its step, so a
# partition is one step and a second process would only add start-up time.
PARALLEL_EXECUTOR = dg.multiprocess_executor.configured(
    {
        "start_method": {
            "forkserver": {
                "preload_modules": ["synth_platform.definitions", "dagster._core.storage.base_storage", "upath"]
            }
        }
    }
)


def for_people(defs: dg.Definitions, owners: list[str]) -> dg.Definitions:
    """A domain's assets with what the UI shows beside them: a link to the source of each asset, the owners
    configured in world.yaml, and the kind of the bucket actually configured (file for a local folder)."""
    bucket = bucket_kind(os.environ.get("SYNTH_BUCKET_URL", ""))

    def person_facing(spec: dg.AssetSpec) -> dg.AssetSpec:
        kinds = {bucket if k == BUCKET_KIND else k for k in spec.kinds}
        return spec.replace_attributes(owners=owners, kinds=kinds)

    assets = dg.with_source_code_references(list(defs.assets or []))
    return dg.Definitions(
        assets=assets,
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        schedules=defs.schedules,
        sensors=defs.sensors,
        resources=defs.resources,
    ).map_asset_specs(func=person_facing)


def build_definitions(platform: PlatformSpec | None = None) -> dg.Definitions:
    platform = platform or load_platform()
    resources = build_resources(platform.world.targets, platform.config_dir / "world.yaml")  # settings fail first
    kind = database_kind(database_url())
    domains = [REGISTRY[name] for name in platform.world.domains]
    built = [for_people(domain.build(platform, kind), platform.world.owners) for domain in domains]
    assembled = dg.Definitions.merge(*built, dg.Definitions(resources=resources))
    rules = [rule for domain in domains for rule in domain.retention(platform.get(domain.name))]
    automated = automation.build(platform, assembled, rules=rules)
    distributed = executor_from_env()
    main_job = dg.define_asset_job(
        MAIN_JOB,
        executor_def=None if distributed else PARALLEL_EXECUTOR,
        selection=dg.AssetSelection.all(),
        description="Every asset of the enabled domains with their checks; `make run` backfills the demo window.",
    )
    # The default executor of every job that does not set one: the daily close, backfills, a partition from the UI.
    # Local: in the run's process. SYNTH_EXECUTOR picks Celery or Kubernetes (main_job then uses it too).
    return dg.Definitions.merge(
        automated, dg.Definitions(jobs=[main_job], executor=distributed or dg.in_process_executor)
    )


defs = build_definitions()
