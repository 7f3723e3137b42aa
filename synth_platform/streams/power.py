"""The power world in the SQL database: device_metadata and power_usage written a window at a time, read back
for the checks, and expired for retention."""

from collections.abc import Iterator
from datetime import datetime

import pyarrow as pa
import sqlalchemy as sa

from synth_platform.pipelining import prefetched
from synth_platform.sinks.database import DatabaseResource, WriteResult
from synth_platform.sinks.sql_schema import sql_table
from synth_platform.specs.power import PowerSpec
from synth_platform.world.devices import DEVICE_SCHEMA
from synth_platform.world.power_usage import POWER_USAGE_SCHEMA, power_usage
from synth_platform.world.windows import Window

_metadata = sa.MetaData()
DEVICE_TABLE = sql_table("device_metadata", DEVICE_SCHEMA, primary_key=["device_id"], metadata=_metadata)
USAGE_TABLE = sql_table(
    "power_usage",
    POWER_USAGE_SCHEMA,
    primary_key=["device_id", "timestamp"],
    indexes=[["timestamp"]],
    metadata=_metadata,
)


def write_devices(db: DatabaseResource, data: pa.Table) -> WriteResult:
    """Replace device_metadata with the fleet `data` (world/devices.py)."""
    db.ensure_table(DEVICE_TABLE)
    return db.replace(DEVICE_TABLE, data)


def write_power_windows(
    db: DatabaseResource, spec: PowerSpec, seed: int, windows: list[Window]
) -> Iterator[tuple[Window, WriteResult]]:
    """Replace each window of power_usage in its own transaction, generating the next while writing."""
    db.ensure_table(USAGE_TABLE)
    for window, data in prefetched(lambda w: power_usage(spec, seed, w), windows):
        yield window, db.replace_window(USAGE_TABLE, data, "timestamp", window)


def _count(db: DatabaseResource, sql: str, w: Window) -> int:
    return int(db.scalar(sql, {"start": w.start, "end": w.end}))


def usage_rows(db: DatabaseResource, w: Window) -> int:
    return _count(db, "SELECT COUNT(*) FROM power_usage WHERE timestamp >= :start AND timestamp < :end", w)


def duplicate_keys(db: DatabaseResource, w: Window) -> int:
    """(device_id, timestamp) pairs that occur more than once in the window."""
    return _count(
        db,
        "SELECT COUNT(*) FROM (SELECT device_id, timestamp FROM power_usage WHERE timestamp >= :start AND "
        "timestamp < :end GROUP BY device_id, timestamp HAVING COUNT(*) > 1) d",
        w,
    )


def orphan_rows(db: DatabaseResource, w: Window) -> int:
    """Readings in the window whose device_id is not in device_metadata."""
    return _count(
        db,
        "SELECT COUNT(*) FROM power_usage p LEFT JOIN device_metadata d ON d.device_id = p.device_id "
        "WHERE p.timestamp >= :start AND p.timestamp < :end AND d.device_id IS NULL",
        w,
    )


def delete_before(db: DatabaseResource, cutoff: datetime) -> dict[str, int]:
    """Retention: power_usage rows before the cutoff, {target: rows deleted}."""
    db.ensure_table(USAGE_TABLE)
    return {f"{db.redacted_url} table power_usage": db.delete_before(USAGE_TABLE, "timestamp", cutoff)}
