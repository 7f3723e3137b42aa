"""SQL builders for top devices, histograms and the hourly load profile, as SQLAlchemy Core statements.

Core binds every value (windows, N, bucket edges) as a parameter and renders each dialect's spelling (LIMIT,
quoting of `timestamp`, EXTRACT/STRFTIME). ROW_NUMBER() needs PostgreSQL, MySQL 8 / MariaDB 10.2, SQLite 3.25.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from synth_platform.world.windows import Window


@dataclass(frozen=True)
class Feature:
    """A numeric reading per device over time, as delivered to a table."""

    name: str
    table_name: str
    value_column: str
    device_column: str = "device_id"
    time_column: str = "timestamp"
    at_column: str | None = None  # when the value happened, if not the row's time (e.g. the max inside a minute)
    fleet: bool = False  # its devices are the power world's fleet (device_metadata): the silent ones count as missing
    edges: tuple[float, ...] = ()  # default histogram bucket edges (config/analytics.yaml may override them)

    @property
    def at(self) -> str:
        return self.at_column or self.time_column

    def table(self) -> sa.TableClause:
        time_type = sa.DateTime(timezone=True)  # aware UTC binds; PostgreSQL columns are timestamptz
        return sa.table(
            self.table_name,
            sa.column(self.device_column, sa.BigInteger()),
            sa.column(self.value_column, sa.Double()),
            *(sa.column(c, time_type) for c in dict.fromkeys([self.time_column, self.at])),
        )


POWER_USAGE = Feature(
    "power_usage_kwh", "power_usage", "power_usage_kwh", fleet=True, edges=(0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
)


def _in_window(t: sa.TableClause, feature: Feature, window: Window | None) -> list[sa.ColumnElement[bool]]:
    time_col = t.c[feature.time_column]
    return [] if window is None else [time_col >= window.start, time_col < window.end]


def ranked_maxima(rows: sa.Subquery, groups: list[str] = ()) -> sa.Select:
    """Rank the devices of `rows` (columns device_id, value, at and the `groups` columns) within each group: one row
    per device and group with its maximum and the earliest time it reached it, and its place (1 = highest; ties
    by device id, then time), so equal inputs give equal lists. Unordered: callers order what they read."""
    group = [rows.c[g] for g in groups]
    best = sa.select(
        *group,
        rows.c.device_id,
        rows.c.value,
        rows.c.at,
        sa.func.row_number()
        .over(partition_by=[*group, rows.c.device_id], order_by=(rows.c.value.desc(), rows.c.at.asc()))
        .label("rn"),
    ).subquery("best")
    order = (best.c.value.desc(), best.c.device_id.asc(), best.c.at.asc())
    place = sa.func.row_number(type_=sa.Integer).over(partition_by=[best.c[g] for g in groups] or None, order_by=order)
    return sa.select(
        *(best.c[g] for g in groups), place.label("place"), best.c.device_id, best.c.value, best.c.at
    ).where(best.c.rn == 1)


def readings(feature: Feature, window: Window | None = None) -> sa.Select:
    """(device_id, value, at) of every reading of the feature in the window (None: all time)."""
    t = feature.table()
    return sa.select(
        t.c[feature.device_column].label("device_id"),
        t.c[feature.value_column].label("value"),
        t.c[feature.at].label("at"),
    ).where(*_in_window(t, feature, window))


def top_devices(feature: Feature, window: Window | None, n: int | None) -> sa.Select:
    """The n devices (None: all) with the highest reading in the window (None: all time), one row per device: its
    maximum and the earliest time it reached it. Ordered by value, ties by device id, then time."""
    ranked = ranked_maxima(readings(feature, window).subquery("readings")).subquery("ranked")
    return sa.select(ranked.c.device_id, ranked.c.value, ranked.c.at).order_by(ranked.c.place).limit(n)


def latest_time(feature: Feature) -> sa.Select:
    t = feature.table()
    return sa.select(sa.func.max(t.c[feature.time_column]))


def bucket_index(value: sa.ColumnElement, edges: list[float]) -> sa.ColumnElement[int]:
    """0 for value < edges[0], i for edges[i-1] <= value < edges[i], len(edges) for value >= edges[-1]."""
    return sa.case(*((value < sa.literal(e, sa.Double()), i) for i, e in enumerate(edges)), else_=len(edges))


def value_histogram(feature: Feature, window: Window | None, edges: list[float]) -> sa.Select:
    """(device_id, bucket, readings) for every non-empty bucket of every device."""
    t = feature.table()
    device = t.c[feature.device_column]
    bucket = bucket_index(t.c[feature.value_column], edges).label("bucket")
    return (
        sa.select(device.label("device_id"), bucket, sa.func.count().label("readings"))
        .where(*_in_window(t, feature, window))
        .group_by(device, bucket)
        .order_by(device, bucket)
    )


def reported_intervals(feature: Feature, window: Window | None) -> sa.Select:
    """(device_id, reported) per device, and the window's intervals: distinct reading times any device reported."""
    t = feature.table()
    device = t.c[feature.device_column]
    return (
        sa.select(device.label("device_id"), sa.func.count(sa.distinct(t.c[feature.time_column])).label("reported"))
        .where(*_in_window(t, feature, window))
        .group_by(device)
        .order_by(device)
    )


def interval_count(feature: Feature, window: Window | None) -> sa.Select:
    t = feature.table()
    return sa.select(sa.func.count(sa.distinct(t.c[feature.time_column]))).where(*_in_window(t, feature, window))


def hour_of_day(column: sa.ColumnElement, dialect: str) -> sa.ColumnElement[int]:
    """UTC hour of a timestamp. PostgreSQL extracts from timestamptz in the session's zone, so convert first."""
    if dialect == "postgresql":
        column = sa.func.timezone("UTC", column)
    return sa.cast(sa.extract("hour", column), sa.Integer)


def hourly_profile(
    feature: Feature, devices_table: str, group_column: str, window: Window | None, dialect: str
) -> sa.Select:
    """(group, hour, mean value, readings): the mean reading per UTC hour of day for each device group."""
    t = feature.table()
    meta = sa.table(devices_table, sa.column("device_id", sa.BigInteger()), sa.column(group_column, sa.String()))
    hour = hour_of_day(t.c[feature.time_column], dialect).label("hour")
    group = meta.c[group_column].label("grp")
    return (
        sa.select(group, hour, sa.func.avg(t.c[feature.value_column]).label("mean"), sa.func.count().label("readings"))
        .select_from(t.join(meta, meta.c.device_id == t.c[feature.device_column]))
        .where(*_in_window(t, feature, window))
        .group_by(group, hour)
        .order_by(group, hour)
    )


def row_count(feature: Feature, window: Window | None) -> sa.Select:
    t = feature.table()
    return sa.select(sa.func.count()).select_from(t).where(*_in_window(t, feature, window))
