"""The counter's ticks in a window: a pure function of (seed, spec, window)."""

import numpy as np
import pyarrow as pa

from synth_platform.world import seeding
from synth_platform.world.windows import Window, aligned_steps
from synth_platform_tests.counter_domain.spec import CounterSpec

TICK_SCHEMA = pa.schema(
    [pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False), pa.field("value", pa.int64(), False)]
)


def ticks(spec: CounterSpec, seed: int, window: Window) -> pa.Table:
    seconds = np.asarray(aligned_steps(window, 60 // spec.ticks_per_minute), dtype=np.int64)
    values = seeding.hash64(seeding.stream_key(seed, "counter", "value"), seconds) % np.uint64(1000)
    timestamps = pa.array(seconds * 1_000_000).cast(TICK_SCHEMA.field("timestamp").type)
    return pa.table([timestamps, values.astype(np.int64)], schema=TICK_SCHEMA)
