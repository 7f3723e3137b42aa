"""The code location: Definitions built from config/ in one place."""

from __future__ import annotations

import dagster as dg

from synth_platform.assets import power
from synth_platform.resources import build_resources, database_url
from synth_platform.specs import PlatformSpec, load_platform

MAIN_JOB = "main_job"


def build_definitions(platform: PlatformSpec | None = None) -> dg.Definitions:
    platform = platform or load_platform()
    builders = {
        "power": lambda: power.build(platform, database_url()),
    }
    domains = [builders[name]() for name in platform.world.domains if name in builders]
    main_job = dg.define_asset_job(
        MAIN_JOB,
        selection=dg.AssetSelection.all(),
        description="Every asset of the enabled domains; `make run` backfills the demo window with it.",
    )
    return dg.Definitions.merge(*domains, dg.Definitions(jobs=[main_job], resources=build_resources()))


defs = build_definitions()
