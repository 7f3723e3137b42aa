"""E-store wiring: daily `estore_events` into Tinybird (live windows through the Events API, days replaced through
the Data Sources API), optionally the same events and `estore_totals` in the SQL database, checks and retention."""

import io
import math
from collections import Counter
from collections.abc import Iterator
from datetime import datetime

import dagster as dg
import polars as pl
import pyarrow as pa
import sqlalchemy as sa

from synth_platform.assets.common import (
    LIVE_CADENCE_METADATA,
    LIVE_WINDOW_START_TAG,
    Stopwatch,
    daily_partitions,
    markdown_list,
    provenance,
    run_window,
    windows_to_write,
    written_days,
)
from synth_platform.assets.power import database_kind
from synth_platform.pipelining import prefetched
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.sql_schema import sql_table
from synth_platform.sinks.tinybird import Delivery, TinybirdResource, to_ndjson
from synth_platform.specs import PlatformSpec
from synth_platform.specs.estore import ACTIONS, EstoreSpec
from synth_platform.specs.loader import spec_hash
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


def mix_allowance(spec: EstoreSpec, weight: float, events_seen: int) -> float:
    """Allowed |share - weight| for one action: the configured tolerance plus sampling noise (3 sigma, events
    clustered ~4 per journey), so a short live window is not judged like a whole day."""
    return spec.mix_tolerance + 3 * math.sqrt(weight * (1 - weight) * 4 / max(events_seen, 1))


def mix_result(spec: EstoreSpec, counts: Counter) -> dg.AssetCheckResult:
    total = sum(counts.values())
    rows, passed = [], True
    for action, weight in spec.weights.normalised().items():
        share = counts[action] / total if total else 0.0
        allowed = mix_allowance(spec, weight, total)
        ok = abs(share - weight) <= allowed
        passed &= ok or total == 0
        verdict = "ok" if ok else "OFF"
        rows.append(f"| {action} | {counts[action]} | {share:.3f} | {weight:.3f} | ±{allowed:.3f} | {verdict} |")
    table = "| action | events | share | weight | allowed | |\n|---|---|---|---|---|---|\n" + "\n".join(rows)
    return dg.AssetCheckResult(
        check_name="action_mix", passed=passed, metadata={"distinct_events": total, "mix": dg.MetadataValue.md(table)}
    )


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


def build(platform: PlatformSpec, database_url: str) -> dg.Definitions:
    spec: EstoreSpec = platform.get("estore")
    seed = platform.world.seed
    digest = spec_hash(spec, seed)
    partitions = daily_partitions(platform.world)
    step = spec.micro_batch_seconds
    ds = spec.datasource
    sql_kind = database_kind(database_url)
    kinds = {"tinybird"} | ({sql_kind} if spec.sql.events else set())

    def generate(window: Window) -> tuple[pa.Table, bytes]:
        table = events(spec, seed, window)
        return table, to_ndjson(table)

    events_key = dg.AssetKey("estore_events")

    # A multi-asset so a run may leave the checks out (live windows do; the daily close runs them).
    @dg.multi_asset(
        name="estore_events",
        specs=[
            dg.AssetSpec(
                events_key,
                group_name="estore",
                kinds=kinds,
                metadata={LIVE_CADENCE_METADATA: step},
                description="E-store events (view/cart/uncart/purchase/return) into Tinybird: live windows through "
                "the Events API, whole days replaced through the Data Sources API; injected duplicates share their "
                "event_id.",
            )
        ],
        check_specs=[
            dg.AssetCheckSpec(
                "no_quarantined_rows",
                asset=events_key,
                blocking=True,
                description="Tinybird quarantined none of the delivered rows.",
            ),
            dg.AssetCheckSpec(
                "action_mix",
                asset=events_key,
                description="Each action's share of distinct events is within tolerance of its weight.",
            ),
        ],  # fmt: skip
        can_subset=True,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def estore_events(
        context: dg.AssetExecutionContext, tinybird: TinybirdResource, database: DatabaseResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        if events_key not in context.selected_asset_keys:
            raise dg.Failure(
                "no_quarantined_rows and action_mix are evaluated while estore_events is delivered: "
                "materialize the partition to run them"
            )
        clock = Stopwatch()
        windows = windows_to_write(context, step)
        live = LIVE_WINDOW_START_TAG in context.run.tags
        delivered, counts, injected, sql_rows = Delivery(), Counter(), 0, 0
        if spec.sql.events:
            database.ensure_table(EVENTS_TABLE)
        for i, (window, (table, body)) in enumerate(prefetched(generate, windows), 1):
            result = tinybird.send_events(ds, body, window) if live else tinybird.replace(ds, body, window)
            delivered += result
            counts.update(action_counts(distinct(table)))
            injected += duplicates(table)
            if spec.sql.events:
                clean = distinct(table).cast(_SQL_EVENT_SCHEMA)
                sql_rows += database.replace_window(EVENTS_TABLE, clean, "timestamp", window).rows
            context.log.info(
                f"[{i}/{len(windows)}] {window}: {result.rows} events, {result.requests} requests, "
                f"{result.quarantined_rows} quarantined"
            )
        via = "Events API" if live else "Data Sources API replace"
        extra = {
            **{f"events_{a}": dg.MetadataValue.int(counts[a]) for a in ACTIONS},
            "duplicates_injected": dg.MetadataValue.int(injected),
            "requests": dg.MetadataValue.int(delivered.requests),
            "retries": dg.MetadataValue.int(delivered.retries),
            "wire_bytes": dg.MetadataValue.int(delivered.wire_bytes),
            "successful_rows": dg.MetadataValue.int(delivered.successful_rows),
            "quarantined_rows": dg.MetadataValue.int(delivered.quarantined_rows),
            "delivery": dg.MetadataValue.text("outbox" if tinybird.uses_outbox else via),
            "windows": dg.MetadataValue.int(len(windows)),
        }
        if spec.sql.events:
            extra["sql_rows"] = dg.MetadataValue.int(sql_rows)
        quarantine = dg.AssetCheckResult(
            check_name="no_quarantined_rows",
            passed=delivered.quarantined_rows == 0,
            metadata={"quarantined_rows": delivered.quarantined_rows, "successful_rows": delivered.successful_rows},
        )
        yield dg.MaterializeResult(
            asset_key=events_key,
            metadata=provenance(
                seed=seed,
                spec_hash=digest,
                window=run_window(context),
                rows=delivered.rows,
                nbytes=delivered.bytes,
                seconds=clock.seconds,
                target=tinybird.target(ds),
                preview=events(spec, seed, windows[-1]).slice(0, 5) if windows else None,
                **extra,
            ),
        )
        for check in (quarantine, mix_result(spec, counts)):
            if dg.AssetCheckKey(events_key, check.check_name) in context.selected_asset_check_keys:
                yield check

    @dg.asset_check(asset=events_key, partitions_def=partitions, blocking=True,
                    description="On the delivered events of each checked day: cart only after a view, uncart and "
                    "purchase only while in the cart, return only after a purchase.")  # fmt: skip
    def state_rules(context: dg.AssetCheckExecutionContext, tinybird: TinybirdResource) -> dg.AssetCheckResult:
        bad, notes, delivered, expected = 0, [], 0, 0
        for _, part in written_days(context, step):
            table = delivered_events(tinybird, ds, part)
            count, found = state_violations(table)
            bad, notes = bad + count, notes + found
            delivered += distinct(table).num_rows
            expected += distinct(events(spec, seed, part)).num_rows
        return dg.AssetCheckResult(
            passed=bad == 0,
            metadata={
                "violations": bad,
                "delivered_distinct_events": delivered,
                "generated_distinct_events": expected,
                "examples": markdown_list(notes, limit=20),
            },
        )

    assets: list = [estore_events]
    if spec.sql.totals:
        interval = spec.sql.totals_interval_minutes * 60

        @dg.asset(
            group_name="estore",
            kinds={sql_kind},
            partitions_def=partitions,
            backfill_policy=dg.BackfillPolicy.single_run(),
            deps=[events_key],
            metadata={LIVE_CADENCE_METADATA: step},
            description=f"Distinct e-store events per {spec.sql.totals_interval_minutes}-minute interval: views, "
            "carts, uncarts, orders (purchases) and returns.",
        )
        def estore_totals(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
            clock = Stopwatch()
            database.ensure_table(TOTALS_TABLE)
            rows = 0
            for window in windows_to_write(context, step):
                # an interval is recomputed whole, from its start up to the window's end
                span = Window(from_epoch(window.start_s - window.start_s % interval), window.end)
                col = TOTALS_TABLE.c.interval_start
                data = totals(events(spec, seed, span), interval)
                rows += database.replace(TOTALS_TABLE, data, (col >= span.start) & (col < span.end)).rows
            return dg.MaterializeResult(
                metadata=provenance(
                    seed=seed,
                    spec_hash=digest,
                    window=run_window(context),
                    rows=rows,
                    nbytes=0,
                    seconds=clock.seconds,
                    target=f"{database.redacted_url} table estore_totals",
                )
            )

        assets.append(estore_totals)

    return dg.Definitions(assets=assets, asset_checks=[state_rules])


def delete_expired(
    spec: EstoreSpec, tinybird: TinybirdResource, database: DatabaseResource, cutoff: datetime
) -> dict[str, int]:
    """Retention of estore_events in each of its targets (for the retention job): outbox days or a Tinybird
    delete job, and the SQL copy when enabled. Returns {target: days or rows removed}."""
    removed = {tinybird.target(spec.datasource): tinybird.delete_before(spec.datasource, cutoff)}
    if spec.sql.events:
        database.ensure_table(EVENTS_TABLE)
        rows = database.delete_before(EVENTS_TABLE, "timestamp", cutoff)
        removed[f"{database.redacted_url} table estore_events"] = rows
    return removed
