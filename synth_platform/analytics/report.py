"""Running the analytics queries against a database and shaping what comes back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import sqlalchemy as sa

from synth_platform.analytics import queries
from synth_platform.analytics.queries import Feature
from synth_platform.analytics.results import (
    TopRow,
    as_utc,
    bucket_labels,
    histogram_counts,
    histogram_table,
    status_counts,
    top_rows,
)
from synth_platform.sinks.database import DatabaseResource
from synth_platform.world.windows import Window

_EPSILON = timedelta(microseconds=1)  # the databases keep microseconds: end just after the newest reading


def has_table(database: DatabaseResource, name: str) -> bool:
    return sa.inspect(database.engine).has_table(name)


def has_column(database: DatabaseResource, table: str, column: str) -> bool:
    inspector = sa.inspect(database.engine)
    return inspector.has_table(table) and column in {c["name"] for c in inspector.get_columns(table)}


def anchor(
    database: DatabaseResource, feature: Feature, relative_to: str, now: datetime | None = None
) -> datetime | None:
    """Where "past hour" and "past minute" end: just after the newest reading, or now. None for an empty table."""
    if relative_to == "now":
        return now or datetime.now(UTC)
    latest = database.scalar(queries.latest_time(feature))
    return as_utc(latest) + _EPSILON if latest is not None else None


def named_windows(end: datetime | None, days: list[Window]) -> list[tuple[str, Window | None]]:
    out: list[tuple[str, Window | None]] = [("all time", None)]
    if end is not None:
        out += [
            ("past hour", Window(end - timedelta(hours=1), end)),
            ("past minute", Window(end - timedelta(minutes=1), end)),
        ]
    return out + [(f"day {d.partition_key()}", d) for d in days]


def top_devices(database: DatabaseResource, feature: Feature, window: Window | None, n: int) -> list[TopRow]:
    return top_rows(database.query(queries.top_devices(feature, window, n)))


@dataclass(frozen=True)
class Histograms:
    labels: list[str]
    values: dict[int, list[int]]  # device -> readings per bucket
    status: dict[int, list[int]]  # device -> [reported, missing] intervals
    intervals: int
    rows: int  # readings in the window, counted independently of the histogram

    def table(self) -> pa.Table:
        return histogram_table(self.labels, self.values, self.status, self.intervals)


def histograms(
    database: DatabaseResource, feature: Feature, window: Window | None, edges: list[float], devices: list[int] = ()
) -> Histograms:
    """Per device: readings per value bucket, and reported vs missing intervals (an interval is a reading time at
    which any device reported; a device that reported nothing in the window is missing throughout)."""
    values = histogram_counts(database.query(queries.value_histogram(feature, window, edges)), len(edges) + 1)
    intervals = int(database.scalar(queries.interval_count(feature, window)) or 0)
    status = status_counts(database.query(queries.reported_intervals(feature, window)), intervals, devices)
    rows = int(database.scalar(queries.row_count(feature, window)) or 0)
    return Histograms(bucket_labels(edges), values, status, intervals, rows)


def hourly_profile(
    database: DatabaseResource, feature: Feature, window: Window | None, scale: float = 1.0
) -> dict[str, list[float | None]]:
    """Mean reading (times `scale`) per UTC hour of day for each building type."""
    stmt = queries.hourly_profile(feature, "device_metadata", "building_type", window, database.dialect)
    profile: dict[str, list[float | None]] = {}
    for group, hour, mean, _ in database.query(stmt):
        profile.setdefault(str(group), [None] * 24)[int(hour)] = float(mean) * scale
    return profile
