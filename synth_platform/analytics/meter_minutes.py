"""Smart-meter readings folded into one row per meter and minute, for SQL analytics.

Why an aggregate instead of the readings: a meter reads every 10 s, so the raw readings are 8,640 rows per meter
and day (8.6 billion a day for a million meters), while top devices needs each meter's maximum and when it
happened, which a minute row keeps exactly (`*_max`, `*_max_at`: the earliest time of the maximum). Histograms of
meter features count one value per meter-minute (its maximum), and a minute counts as reported when the meter
sent any reading in it. Folding is associative, so files of one day (continuation parts included) are folded a few
at a time and the partial results folded again: memory is a few files plus the day's minute rows (1,440 per meter).
"""

from __future__ import annotations

import functools

import numpy as np
import polars as pl
import pyarrow as pa

from synth_platform.analytics.queries import Feature
from synth_platform.pipelining import ordered
from synth_platform.sinks.database import DatabaseResource, WriteResult
from synth_platform.sinks.files import BucketResource
from synth_platform.sinks.sql_schema import sql_table
from synth_platform.streams.meters import read_table, window_manifests
from synth_platform.world.windows import Window

METER_MINUTES_SCHEMA = pa.schema(
    [
        pa.field("minute", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("device_id", pa.int64(), nullable=False),
        pa.field("meter_id", pa.string(), nullable=False),
        pa.field("readings", pa.int64(), nullable=False),
        pa.field("zero_readings", pa.int64(), nullable=False),
        pa.field("power_kw_max", pa.float64(), nullable=False),
        pa.field("power_kw_max_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("voltage_max", pa.float64(), nullable=False),
        pa.field("voltage_max_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
METER_MINUTES_COLUMNS = {
    "minute": "Start of the UTC minute",
    "device_id": "Device the meter belongs to (its place in the fleet)",
    "meter_id": "Meter id as the files spell it",
    "readings": "Readings of the meter in the minute",
    "zero_readings": "Of those, readings flagged zero",
    "power_kw_max": "Highest power in the minute (kW)",
    "power_kw_max_at": "When the meter first reached it",
    "voltage_max": "Highest voltage in the minute (V)",
    "voltage_max_at": "When the meter first reached it",
}
METER_POWER = Feature(
    "meter_power_kw",
    "meter_minutes",
    "power_kw_max",
    "device_id",
    "minute",
    "power_kw_max_at",
    edges=(0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0),
)
METER_VOLTAGE = Feature(
    "meter_voltage_v",
    "meter_minutes",
    "voltage_max",
    "device_id",
    "minute",
    "voltage_max_at",
    edges=(220.0, 225.0, 228.0, 230.0, 232.0, 235.0, 240.0),
)
METER_MINUTES_TABLE = sql_table(
    METER_POWER.table_name, METER_MINUTES_SCHEMA, primary_key=["device_id", "minute"], indexes=[["minute"]]
)


def _first_at_max(value: str) -> pl.Expr:
    return pl.col(f"{value}_max_at").filter(pl.col(f"{value}_max") == pl.col(f"{value}_max").max()).min()


def _fold(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.group_by("meter_id", "minute").agg(
        pl.col("readings").sum(),
        pl.col("zero_readings").sum(),
        pl.col("power_kw_max").max(),
        _first_at_max("power_kw"),
        pl.col("voltage_max").max(),
        _first_at_max("voltage"),
    )


def fold_readings(readings: pa.Table) -> pl.DataFrame:
    """Minute rows of one file of readings (record `meter`: timestamp, meter_id, power_kw, voltage[, quality])."""
    missing = {"timestamp", "meter_id", "power_kw", "voltage"} - set(readings.column_names)
    if missing:
        raise ValueError(
            f"meter readings lack {sorted(missing)}: meter_minutes needs files with `record: meter` (wattif records "
            "carry no meter id per row)"
        )
    frame = pl.from_arrow(readings)
    ts = pl.col("timestamp")
    ts = ts.str.to_datetime(time_zone="UTC") if frame.schema["timestamp"] == pl.String else ts
    zero = (pl.col("quality") == "zero") if "quality" in frame.columns else pl.lit(False)
    frame = frame.select(
        pl.col("meter_id"),
        ts.dt.cast_time_unit("us").dt.convert_time_zone("UTC").alias("ts"),
        pl.col("power_kw").cast(pl.Float64),
        pl.col("voltage").cast(pl.Float64),
        zero.cast(pl.Int64).alias("zero"),
    )
    return _fold(
        frame.select(
            "meter_id",
            pl.col("ts").dt.truncate("1m").alias("minute"),
            pl.lit(1, pl.Int64).alias("readings"),
            pl.col("zero").alias("zero_readings"),
            pl.col("power_kw").alias("power_kw_max"),
            pl.col("ts").alias("power_kw_max_at"),
            pl.col("voltage").alias("voltage_max"),
            pl.col("ts").alias("voltage_max_at"),
        )
    )


def combine(parts: list[pl.DataFrame], meter_ids: pa.Array) -> pa.Table:
    """Fold the parts of a day together and name each meter's power-world device (meter i measures device i+1)."""
    devices = pl.DataFrame({"meter_id": meter_ids, "device_id": np.arange(1, len(meter_ids) + 1, dtype=np.int64)})
    if not parts:
        return METER_MINUTES_SCHEMA.empty_table()
    folded = _fold(pl.concat(parts)).join(devices, on="meter_id", how="left")
    unknown = folded.filter(pl.col("device_id").is_null())
    if unknown.height:
        raise ValueError(f"{unknown.height} meter-minutes of meters outside the fleet, e.g. {unknown['meter_id'][0]}")
    return folded.sort("minute", "device_id").to_arrow().select(METER_MINUTES_SCHEMA.names).cast(METER_MINUTES_SCHEMA)


def fold_day(bucket: BucketResource, meter_ids: pa.Array, day: Window) -> tuple[pa.Table, int]:
    """A day's minute rows from its delivered files, each read and folded on a small pool (Arrow's JSON reader and
    polars release the GIL), and the files read."""
    _, manifests, _ = window_manifests(bucket, day)
    names = [prefix + f["name"] for prefix, body in manifests for f in body["files"]]
    parts = ordered(functools.partial(_fold_file, bucket, name) for name in names)
    return combine(list(parts), meter_ids), len(names)


def _fold_file(bucket: BucketResource, name: str) -> pl.DataFrame:
    return fold_readings(read_table(bucket, name))


def write_day(database: DatabaseResource, data: pa.Table, day: Window) -> WriteResult:
    """Replace a day of meter_minutes with its minute rows."""
    database.ensure_table(METER_MINUTES_TABLE)
    return database.replace_window(METER_MINUTES_TABLE, data, "minute", day)
