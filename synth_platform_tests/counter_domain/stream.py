"""The counter delivered: a window of ticks replaced in the SQL database; expired for retention."""

from datetime import datetime

from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.sql_schema import sql_table
from synth_platform.world.windows import Window
from synth_platform_tests.counter_domain.spec import CounterSpec
from synth_platform_tests.counter_domain.world import TICK_SCHEMA, ticks

TABLE = sql_table("counter_ticks", TICK_SCHEMA, primary_key=["timestamp"])


def write_window(db: DatabaseResource, spec: CounterSpec, seed: int, window: Window) -> int:
    db.ensure_table(TABLE)
    return db.replace_window(TABLE, ticks(spec, seed, window), "timestamp", window).rows


def delete_before(db: DatabaseResource, cutoff: datetime) -> dict[str, int]:
    db.ensure_table(TABLE)
    return {"counter_ticks": db.delete_before(TABLE, "timestamp", cutoff)}
