"""The counter's wiring: one daily asset that declares its live cadence."""

import dagster as dg

from synth_platform.assets.common import LIVE_CADENCE_METADATA, daily_partitions, windows_to_write
from synth_platform.sinks.database import DatabaseResource
from synth_platform.specs import PlatformSpec
from synth_platform_tests.counter_domain.stream import write_window

CADENCE_SECONDS = 60


def build(platform: PlatformSpec, database_kind: str) -> dg.Definitions:
    spec, seed = platform.get("counter"), platform.world.seed

    @dg.asset(
        group_name="counter",
        kinds={database_kind},
        partitions_def=daily_partitions(platform.world),
        metadata={LIVE_CADENCE_METADATA: CADENCE_SECONDS},
    )
    def counter_ticks(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
        rows = sum(write_window(database, spec, seed, w) for w in windows_to_write(context, CADENCE_SECONDS))
        return dg.MaterializeResult(metadata={"rows": rows})

    return dg.Definitions(assets=[counter_ticks])
