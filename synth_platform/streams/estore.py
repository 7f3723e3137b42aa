"""E-store events delivered: windows to Tinybird (Events API live, Data Sources API replace for history, or the
outbox), the distinct events and per-interval totals to the SQL database, read back for the checks, expired."""

import io
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import polars as pl
import pyarrow as pa
import sqlalchemy as sa

from synth_platform.pipelining import prefetched
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.sql_schema import sql_table
from synth_platform.sinks.tinybird import Delivery, TinybirdResource, to_ndjson
from synth_platform.specs.estore import EstoreSpec
from synth_platform.world.estore import (
    EVENT_SCHEMA,
    TOTALS_SCHEMA,
    action_counts,
    distinct,
    duplicates,
    events,
    state_violations,
    totals,
)
from synth_platform.world.windows import Window, from_epoch

RANGE_PIPE = "estore_events_range"  # tinybird/estore_events_range.pipe
_SQL_EVENT_SCHEMA = EVENT_SCHEMA.set(1, pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False))

_metadata = sa.MetaData()
EVENTS_TABLE = sql_table(
    "estore_events", _SQL_EVENT_SCHEMA, primary_key=["event_id"], indexes=[["timestamp"]], metadata=_metadata
)
TOTALS_TABLE = sql_table("estore_totals", TOTALS_SCHEMA, primary_key=["interval_start"], metadata=_metadata)


@dataclass(frozen=True)
class WindowDelivery:
    """One window delivered: what Tinybird (or the outbox) took, the distinct events per action, the injected
    duplicates and the rows of the SQL copy."""

    delivery: Delivery
    actions: Counter
    duplicates: int
    sql_rows: int


def deliver_windows(
    spec: EstoreSpec,
    seed: int,
    windows: list[Window],
    tinybird: TinybirdResource,
    database: DatabaseResource,
    live: bool,
) -> Iterator[tuple[Window, WindowDelivery]]:
    """Each window's events: a live window appended through the Events API, else replaced in Tinybird (a day
    import with a replace condition); with `sql.events` the distinct events replace the window in SQL. The next
    window is generated while one is sent."""

    def generate(window: Window) -> tuple[pa.Table, bytes]:
        table = events(spec, seed, window)
        return table, to_ndjson(table)

    if spec.sql.events:
        database.ensure_table(EVENTS_TABLE)
    for window, (table, body) in prefetched(generate, windows):
        send = tinybird.send_events if live else tinybird.replace
        result = send(spec.datasource, body, window)
        clean = distinct(table)
        sql_rows = 0
        if spec.sql.events:
            sql_rows = database.replace_window(EVENTS_TABLE, clean.cast(_SQL_EVENT_SCHEMA), "timestamp", window).rows
        yield window, WindowDelivery(result, Counter(action_counts(clean)), duplicates(table), sql_rows)


def write_totals(spec: EstoreSpec, seed: int, database: DatabaseResource, window: Window) -> int:
    """Replace estore_totals for the intervals the window touches; an interval is recomputed whole, from its start
    up to the window's end. Returns the rows written."""
    interval = spec.sql.totals_interval_minutes * 60
    database.ensure_table(TOTALS_TABLE)
    span = Window(from_epoch(window.start_s - window.start_s % interval), window.end)
    col = TOTALS_TABLE.c.interval_start
    data = totals(events(spec, seed, span), interval)
    return database.replace(TOTALS_TABLE, data, (col >= span.start) & (col < span.end)).rows


def mix_allowance(spec: EstoreSpec, weight: float, events_seen: int) -> float:
    """Allowed |share - weight| for one action: the configured tolerance plus sampling noise (3 sigma, events
    clustered ~4 per journey), so a short live window is not judged like a whole day."""
    return spec.mix_tolerance + 3 * math.sqrt(weight * (1 - weight) * 4 / max(events_seen, 1))


def action_mix(spec: EstoreSpec, counts: Counter) -> tuple[bool, str]:
    """Whether every action's share of the distinct events is within its allowance, and a markdown table."""
    total = sum(counts.values())
    rows, passed = [], True
    for action, weight in spec.weights.normalised().items():
        share = counts[action] / total if total else 0.0
        allowed = mix_allowance(spec, weight, total)
        ok = abs(share - weight) <= allowed
        passed &= ok or total == 0
        verdict = "ok" if ok else "OFF"
        rows.append(f"| {action} | {counts[action]} | {share:.3f} | {weight:.3f} | ±{allowed:.3f} | {verdict} |")
    return passed, "| action | events | share | weight | allowed | |\n|---|---|---|---|---|---|\n" + "\n".join(rows)


def delivered_events(tinybird: TinybirdResource, datasource: str, window: Window) -> pa.Table:
    """What the target holds for a window: the outbox files, or the range pipe (FINAL) in Tinybird."""
    if tinybird.uses_outbox:
        body = tinybird.outbox_ndjson(datasource, Window.for_day(window.start.date()))
        frame = pl.read_ndjson(io.BytesIO(body)) if body else None
        fmt = "%Y-%m-%dT%H:%M:%S%.3fZ"
    else:
        params = {"start": window.start.isoformat(), "end": window.end.isoformat()}
        rows = list(tinybird.pipe_rows(RANGE_PIPE, params))
        frame = pl.DataFrame(rows) if rows else None
        fmt = "%Y-%m-%d %H:%M:%S%.3f"
    if frame is None:
        return EVENT_SCHEMA.empty_table()
    frame = frame.with_columns(pl.col("timestamp").str.to_datetime(fmt, time_unit="ms", time_zone="UTC"))
    frame = frame.filter((pl.col("timestamp") >= window.start) & (pl.col("timestamp") < window.end))
    return frame.to_arrow().select(["event_id", "timestamp", "customer_id", "product_id", "action"])


_REPLAYED = ["event_id", "timestamp", "customer_id", "product_id", "action"]


@dataclass(frozen=True)
class Replay:
    """The state rules replayed over a window's delivered events: violations, up to 20 examples, and the distinct
    events delivered and generated for the window."""

    violations: int
    examples: list[str]
    delivered: int
    generated: int


def replay_delivered(spec: EstoreSpec, seed: int, tinybird: TinybirdResource, window: Window) -> Replay:
    """Replay the window's delivered events after the world's events of its journey slot before the window. A
    journey never leaves its slot and the world keeps the rules, so that is the state at the window's start
    whatever was delivered before it (a live stream may start mid-slot); violations can only be delivered events."""
    slot_s = spec.journeys.slot_seconds
    slot_start = from_epoch(window.start_s - window.start_s % slot_s)
    schema = pa.schema([EVENT_SCHEMA.field(c) for c in _REPLAYED])
    delivered = delivered_events(tinybird, spec.datasource, window).select(_REPLAYED).cast(schema)
    generated = events(spec, seed, window)
    before = (
        [events(spec, seed, Window(slot_start, window.start)).select(_REPLAYED)] if slot_start < window.start else []
    )
    violations, examples = state_violations(pa.concat_tables([*before, delivered]))
    return Replay(violations, examples, distinct(delivered).num_rows, distinct(generated).num_rows)


def delete_expired(
    spec: EstoreSpec, tinybird: TinybirdResource, database: DatabaseResource, cutoff: datetime
) -> dict[str, int]:
    """Retention of estore_events in each of its targets: outbox days or a Tinybird delete job, and the SQL copy
    when enabled. Returns {target: days or rows removed}."""
    removed = {tinybird.target(spec.datasource): tinybird.delete_before(spec.datasource, cutoff)}
    if spec.sql.events:
        database.ensure_table(EVENTS_TABLE)
        rows = database.delete_before(EVENTS_TABLE, "timestamp", cutoff)
        removed[f"{database.redacted_url} table estore_events"] = rows
    return removed
