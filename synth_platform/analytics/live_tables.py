"""Always-current analytics in the SQL target, for dashboards: rollup tables refreshed by every write of a stream,
and views that rank them (or the readings, for the relative windows) whenever they are read.

Tables, one row per feature, UTC day and device (recomputed from the day's readings whenever a window of it is
written, so they stay exact under re-runs and replaced windows):

- `device_daily_top`: the device's maximum that day and the earliest time it reached it;
- `device_histograms`: readings per value bucket (`bucket` 0 = below the first edge; `bucket_label`);
- `device_status`: intervals reported and missing (an interval is a reading time at which any device reported).

Views (`place` 1 = highest; ties by device id, then time):

- `top_devices` (feature, period, place, device_id, value, at): `all time` ranks the daily maxima; `past hour` and
  `past minute` rank the readings in the hour/minute ending at the newest reading of the feature (`relative_to:
  latest_reading`) or at the database's clock (`now`), through the readings' time index;
- `top_devices_daily` (feature, day, place, device_id, value, at).

A view's SQL depends on the features present and on `relative_to`; `analytics_views` keeps a hash of each view's
SQL, so a view is created or replaced only when it changes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pyarrow as pa
import sqlalchemy as sa

from synth_platform.analytics import queries
from synth_platform.analytics.features import features as platform_features
from synth_platform.analytics.features import histogram_edges
from synth_platform.analytics.queries import Feature
from synth_platform.analytics.results import bucket_labels
from synth_platform.analytics.transfer import upsert
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.sql_schema import sql_table
from synth_platform.specs import PlatformSpec
from synth_platform.world.windows import Window

_TIME = pa.timestamp("us", tz="UTC")
_KEY = [
    pa.field("feature", pa.string(), nullable=False),
    pa.field("day", pa.date32(), nullable=False),
    pa.field("device_id", pa.int64(), nullable=False),
]
_metadata = sa.MetaData()
DAILY_TOP = sql_table(
    "device_daily_top",
    pa.schema([*_KEY, pa.field("value", pa.float64()), pa.field("at", _TIME)]),
    primary_key=["feature", "day", "device_id"],
    metadata=_metadata,
)
HISTOGRAMS = sql_table(
    "device_histograms",
    pa.schema(
        [
            *_KEY,
            pa.field("bucket", pa.int32(), nullable=False),
            pa.field("bucket_label", pa.string()),
            pa.field("readings", pa.int64()),
        ]
    ),
    primary_key=["feature", "day", "device_id", "bucket"],
    metadata=_metadata,
)
STATUS = sql_table(
    "device_status",
    pa.schema(
        [*_KEY, pa.field("reported", pa.int64()), pa.field("intervals", pa.int64()), pa.field("missing", pa.int64())]
    ),
    primary_key=["feature", "day", "device_id"],
    metadata=_metadata,
)
VIEWS = sql_table(
    "analytics_views",
    pa.schema([pa.field("name", pa.string(), nullable=False), pa.field("definition_hash", pa.string())]),
    primary_key=["name"],
    metadata=_metadata,
)
TOP_VIEW, DAILY_VIEW = "top_devices", "top_devices_daily"
# What the columns of the views and tables mean (their dagster/column_schema); the names agree across them.
COLUMN_DESCRIPTIONS = {
    "feature": "Which reading is ranked or counted (a feature of config/analytics.yaml)",
    "period": "all time, past hour or past minute (before the newest reading, or now: relative_to)",
    "day": "UTC day",
    "place": "Rank of the device within the feature and period or day; 1 = highest maximum",
    "device_id": "Device",
    "value": "The device's maximum reading",
    "at": "When the device first reached its maximum",
    "bucket": "Value bucket (its edges from config/analytics.yaml)",
    "bucket_label": "The bucket's value range",
    "readings": "Readings of the device in the bucket",
    "reported": "Intervals the device reported",
    "intervals": "Intervals of the day (reading times at which any device reported)",
    "missing": "Intervals the device did not report",
}
RELATIVE = {"past hour": 3600, "past minute": 60}
FLEET_TABLE = "device_metadata"


def _feature_is(table: sa.Table, feature: Feature, day: date) -> sa.ColumnElement[bool]:
    return (table.c.feature == feature.name) & (table.c.day == day)


def refresh_day(db: DatabaseResource, feature: Feature, day: Window, edges: list[float], fleet: bool) -> None:
    """Recompute the feature's rows of one day in the three tables from its readings, in one transaction."""
    d = day.start.date()
    name, when = sa.literal(feature.name, sa.String()), sa.literal(d, sa.Date())
    ranked = queries.ranked_maxima(queries.readings(feature, day).subquery("readings")).subquery("ranked")
    top = sa.select(name, when, ranked.c.device_id, ranked.c.value, ranked.c.at)
    hist = queries.value_histogram(feature, day, edges).subquery("hist")
    label = sa.case(*((hist.c.bucket == i, text) for i, text in enumerate(bucket_labels(edges))))
    buckets = sa.select(name, when, hist.c.device_id, hist.c.bucket, label, hist.c.readings)
    reported = queries.reported_intervals(feature, day).subquery("reported")
    intervals = queries.interval_count(feature, day).scalar_subquery()
    if fleet:  # every device of the fleet has a status, the silent ones missing throughout
        devices = sa.table(FLEET_TABLE, sa.column("device_id", sa.BigInteger()))
        count = sa.func.coalesce(reported.c.reported, 0)
        source = sa.select(devices.c.device_id, count.label("reported")).select_from(
            devices.outerjoin(reported, reported.c.device_id == devices.c.device_id)
        )
    else:
        source = sa.select(reported.c.device_id, reported.c.reported)
    src = source.subquery("src")
    status = sa.select(name, when, src.c.device_id, src.c.reported, intervals, intervals - src.c.reported)
    with db.begin() as conn:
        for table, select in ((DAILY_TOP, top), (HISTOGRAMS, buckets), (STATUS, status)):
            conn.execute(table.delete().where(_feature_is(table, feature, d)))
            conn.execute(table.insert().from_select([c.name for c in table.columns], select))


def ensure_tables(db: DatabaseResource) -> None:
    for table in (DAILY_TOP, HISTOGRAMS, STATUS, VIEWS):
        db.ensure_table(table)


def expire_rollups(db: DatabaseResource, features: list[str], cutoff: datetime) -> dict[str, int]:
    """Delete the rollup rows of the features' days before the cutoff (retention), so "all time" covers exactly
    the readings still delivered: {target: rows deleted}, empty where there are no rollups."""
    if not sa.inspect(db.engine).has_table(DAILY_TOP.name):
        return {}
    with db.begin() as conn:
        deleted = [
            max(conn.execute(t.delete().where(t.c.feature.in_(features), t.c.day < cutoff.date())).rowcount or 0, 0)
            for t in (DAILY_TOP, HISTOGRAMS, STATUS)
        ]
    return {f"{db.redacted_url} analytics rollups": sum(deleted)}


def _now(dialect: str) -> sa.ColumnElement:
    """The database's clock in the form its timestamp columns compare with."""
    if dialect == "postgresql":
        return sa.func.now()
    if dialect in ("mysql", "mariadb"):
        return sa.literal_column("UTC_TIMESTAMP(6)")  # the columns hold naive UTC
    return sa.func.strftime("%Y-%m-%d %H:%M:%f", "now").op("||")("000")  # SQLite text, microseconds


def _minus(value: sa.ColumnElement, seconds: int, dialect: str) -> sa.ColumnElement:
    if dialect == "postgresql":
        return value - sa.literal_column(f"INTERVAL '{int(seconds)} seconds'")
    if dialect in ("mysql", "mariadb"):
        return sa.func.date_sub(value, sa.literal_column(f"INTERVAL {int(seconds)} SECOND"))
    # SQLite keeps 'YYYY-MM-DD HH:MM:SS.ffffff' text: shift the seconds, keep the fraction
    shifted = sa.func.strftime("%Y-%m-%d %H:%M:%S", value, f"-{int(seconds)} seconds")
    return shifted.op("||")(sa.func.substr(value, 20))


def recent(feature: Feature, seconds: int, relative_to: str, dialect: str) -> sa.Select:
    """(device_id, value, at) of the readings of the last `seconds`: after newest - seconds (so the window ends
    just after the newest reading), or in [now - seconds, now)."""
    t = feature.table()
    time = t.c[feature.time_column]
    if relative_to == "now":
        now = _now(dialect)
        where = [time >= _minus(now, seconds, dialect), time < now]
    else:
        newest = sa.select(sa.func.max(time)).scalar_subquery()
        # The upper bound excludes nothing, but it gives PostgreSQL a range to estimate (0.5% of the rows) instead
        # of a third of the table, which on 10M rows made it JIT-compile the plan (~400 ms for a 10 ms query).
        where = [time > _minus(newest, seconds, dialect), time <= newest]
    columns = (
        t.c[feature.device_column].label("device_id"),
        t.c[feature.value_column].label("value"),
        t.c[feature.at].label("at"),
    )
    return sa.select(*columns).where(*where)


def _labelled(select: sa.Select, **constants: str) -> sa.Select:
    ranked = select.subquery()
    head = [sa.literal(v, sa.String()).label(k) for k, v in constants.items()]
    return sa.select(*head, *(c for c in ranked.c if c.name not in constants))


def top_view(present: list[Feature], relative_to: str, dialect: str) -> sa.Select:
    daily = sa.select(DAILY_TOP.c.feature, DAILY_TOP.c.device_id, DAILY_TOP.c.value, DAILY_TOP.c.at).subquery("d")
    all_time = queries.ranked_maxima(daily, ["feature"]).subquery("all_time")
    parts = [
        sa.select(
            all_time.c.feature,
            sa.literal("all time", sa.String()).label("period"),
            all_time.c.place,
            all_time.c.device_id,
            all_time.c.value,
            all_time.c.at,
        )
    ]
    for feature in present:
        for period, seconds in RELATIVE.items():
            ranked = queries.ranked_maxima(recent(feature, seconds, relative_to, dialect).subquery("recent"))
            parts.append(_labelled(ranked, feature=feature.name, period=period))
    return sa.union_all(*parts)


def daily_view() -> sa.Select:
    rows = sa.select(
        DAILY_TOP.c.feature, DAILY_TOP.c.day, DAILY_TOP.c.device_id, DAILY_TOP.c.value, DAILY_TOP.c.at
    ).subquery("d")
    return queries.ranked_maxima(rows, ["feature", "day"])


def view_columns(name: str) -> sa.ColumnCollection:
    """The columns of a view: its SQL depends on the features present, its columns do not."""
    return (top_view([], "now", "") if name == TOP_VIEW else daily_view()).selected_columns


def _sql(select: sa.Executable, engine: sa.Engine) -> str:
    return str(select.compile(engine, compile_kwargs={"literal_binds": True}))


def ensure_views(db: DatabaseResource, present: list[Feature], relative_to: str) -> list[str]:
    """Create or replace the views whose SQL changed; the names of those (re)created."""
    ensure_tables(db)
    wanted = {
        TOP_VIEW: _sql(top_view(present, relative_to, db.dialect), db.engine),
        DAILY_VIEW: _sql(daily_view(), db.engine),
    }
    hashes = {name: hashlib.sha256(sql.encode()).hexdigest() for name, sql in wanted.items()}
    stored = dict(db.query(sa.select(VIEWS.c.name, VIEWS.c.definition_hash)))
    changed = [name for name in wanted if stored.get(name) != hashes[name]]
    for name in changed:
        _replace_view(db, name, wanted[name])
        upsert(db, VIEWS, pa.table({"name": [name], "definition_hash": [hashes[name]]}))
    return changed


def _replace_view(db: DatabaseResource, name: str, sql: str, attempts: int = 5) -> None:
    """DROP + CREATE of one view. Parallel steps (main_job writes power and sensors at once) may replace the same
    view at the same moment, and DDL is not transactional on SQLite or MySQL: the loser of that race retries."""
    quoted = db.engine.dialect.identifier_preparer.quote(name)
    for attempt in range(1, attempts + 1):
        try:
            with db.begin() as conn:
                conn.execute(sa.text(f"DROP VIEW IF EXISTS {quoted}"))
                conn.execute(sa.text(f"CREATE VIEW {quoted} AS {sql}"))
            return
        except sa.exc.DBAPIError:
            if attempt == attempts:
                raise
            time.sleep(0.1 * attempt)


def read_top(db: DatabaseResource, feature: str, period: str, n: int) -> list[sa.Row]:
    """(device_id, value, at) of the first n places of a period of the `top_devices` view."""
    view = sa.table(TOP_VIEW, *(sa.column(c) for c in ("feature", "period", "place", "device_id", "value", "at")))
    stmt = (
        sa.select(view.c.device_id, view.c.value, view.c.at)
        .where(view.c.feature == feature, view.c.period == period, view.c.place <= n)
        .order_by(view.c.place)
    )
    return db.query(stmt)


@dataclass(frozen=True)
class LiveAnalytics:
    """What a stream's write refreshes: the features of its table, their edges, and how windows are anchored."""

    features: tuple[Feature, ...]
    edges: dict[str, list[float]]
    relative_to: str

    @classmethod
    def for_platform(cls, platform: PlatformSpec) -> LiveAnalytics | None:
        """None when the analytics domain is off."""
        spec = platform.get("analytics")
        if spec is None:
            return None
        available = platform_features(platform)
        return cls(tuple(available), histogram_edges(platform, available), spec.relative_to)

    def present(self, db: DatabaseResource) -> list[Feature]:
        inspector = sa.inspect(db.engine)
        return [f for f in self.features if inspector.has_table(f.table_name)]

    def written(self, db: DatabaseResource, table_name: str, windows: Iterable[Window]) -> None:
        """Refresh the days the windows of `table_name` touched, and the views (when the features changed)."""
        days = sorted({Window.for_day(d) for w in windows for d in _dates(w)})
        ensure_tables(db)
        fleet = sa.inspect(db.engine).has_table(FLEET_TABLE)
        for feature in (f for f in self.features if f.table_name == table_name):
            for day in days:
                refresh_day(db, feature, day, self.edges[feature.name], feature.fleet and fleet)
        ensure_views(db, self.present(db), self.relative_to)


def _dates(window: Window) -> list[date]:
    first, last = window.start.date(), (window.end - timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
