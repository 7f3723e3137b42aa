"""device_telemetry in the SQL database (one column per feature) and in Tinybird's `device_readings` (one row per
reading and feature, with the device's city): written a window at a time, counted for the check, expired for
retention."""

from collections.abc import Iterator
from datetime import datetime

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from synth_platform.pipelining import prefetched
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.sql_schema import sql_table
from synth_platform.sinks.tinybird import Delivery, TinybirdResource, to_ndjson
from synth_platform.specs.sensors import STREAM, SensorsSpec
from synth_platform.world.devices import city_index
from synth_platform.world.sensors import sensor_readings, sensors_schema
from synth_platform.world.windows import Window

READINGS_DATASOURCE = "device_readings"  # tinybird/device_readings.datasource
_READING = pa.schema(
    [
        pa.field("timestamp", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("device_id", pa.int64(), nullable=False),
        pa.field("city", pa.string(), nullable=False),
        pa.field("feature", pa.string(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
    ]
)


def sensors_table(spec: SensorsSpec) -> sa.Table:
    return sql_table(STREAM, sensors_schema(spec), primary_key=["device_id", "timestamp"], indexes=[["timestamp"]])


def long_form(spec: SensorsSpec, seed: int, data: pa.Table) -> pa.Table:
    """One row per reading and feature, with the device's city: what Tinybird's device_readings holds."""
    index = data["device_id"].to_numpy() - 1  # device i + 1 is fleet index i
    cities = pa.array(np.array(list(spec.power.cities), dtype=object)[city_index(spec.power, seed, index)], pa.string())
    parts = [
        pa.table(
            {
                "timestamp": data["timestamp"].cast(_READING.field("timestamp").type),
                "device_id": data["device_id"],
                "city": cities,
                "feature": pa.array([name] * data.num_rows, pa.string()),
                "value": data[name],
            },
            schema=_READING,
        )
        for name in spec.features
    ]
    return pa.concat_tables(parts)


def write_sensor_windows(
    db: DatabaseResource,
    tinybird: TinybirdResource | None,
    spec: SensorsSpec,
    seed: int,
    windows: list[Window],
    live: bool,
) -> Iterator[tuple[Window, pa.Table, int, Delivery | None]]:
    """Replace each window in the database and, given `tinybird`, in device_readings (by condition, or as events
    for a live window), generating the next while writing: (window, rows, database bytes, Tinybird delivery)."""
    table = sensors_table(spec)
    db.ensure_table(table)
    for window, data in prefetched(lambda w: sensor_readings(spec, seed, w), windows):
        written = db.replace_window(table, data, "timestamp", window)
        delivered = None
        if tinybird is not None:
            body = to_ndjson(long_form(spec, seed, data))
            send = tinybird.send_events if live else tinybird.replace
            delivered = send(READINGS_DATASOURCE, body, window)
        yield window, data, written.bytes, delivered


def rows_in(db: DatabaseResource, spec: SensorsSpec, window: Window) -> int:
    table = sensors_table(spec)
    count = sa.select(sa.func.count()).select_from(table)
    return int(db.scalar(count.where(table.c.timestamp >= window.start, table.c.timestamp < window.end)))


def delete_before(
    db: DatabaseResource, tinybird: TinybirdResource, spec: SensorsSpec, cutoff: datetime
) -> dict[str, int]:
    """Retention: rows before the cutoff in the table and (when delivered there) in Tinybird."""
    table = sensors_table(spec)
    db.ensure_table(table)
    deleted = {f"{db.redacted_url} table {STREAM}": db.delete_before(table, "timestamp", cutoff)}
    if spec.tinybird:
        deleted[tinybird.target(READINGS_DATASOURCE)] = tinybird.delete_before(READINGS_DATASOURCE, cutoff)
    return deleted
