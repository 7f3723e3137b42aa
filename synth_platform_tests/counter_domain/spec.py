"""config/counter.yaml: how often the counter ticks and how long ticks are kept."""

import pydantic

from synth_platform.specs.loader import Spec


class CounterSpec(Spec):
    ticks_per_minute: int = pydantic.Field(2, ge=1, le=60, description="Ticks per minute, evenly spaced")
    retention_days: int = pydantic.Field(30, ge=1, description="Days of ticks kept")
