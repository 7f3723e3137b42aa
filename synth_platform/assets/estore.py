"""E-store wiring: daily `estore_events` into Tinybird (live windows through the Events API, days replaced through
the Data Sources API), optionally the same events and `estore_totals` in the SQL database, and the checks
(delivered by streams/estore.py)."""

from collections import Counter
from collections.abc import Iterator

import dagster as dg

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
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.tinybird import Delivery, TinybirdResource
from synth_platform.specs import PlatformSpec
from synth_platform.specs.estore import ACTIONS, EstoreSpec
from synth_platform.specs.loader import spec_hash
from synth_platform.streams.estore import action_mix, deliver_windows, delivered_events, write_totals
from synth_platform.world.estore import distinct, events, state_violations
from synth_platform.world.windows import Window

GROUP = "estore"


def build(platform: PlatformSpec, database_kind: str) -> dg.Definitions:
    spec: EstoreSpec = platform.get("estore")
    seed = platform.world.seed
    digest = spec_hash(spec, seed)
    partitions = daily_partitions(platform.world)
    step = spec.micro_batch_seconds
    ds = spec.datasource
    kinds = {"tinybird"} | ({database_kind} if spec.sql.events else set())
    events_key = dg.AssetKey("estore_events")

    # A multi-asset so a run may leave the checks out (live windows do; the daily close runs them).
    @dg.multi_asset(
        name="estore_events",
        specs=[
            dg.AssetSpec(
                events_key,
                group_name=GROUP,
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
        ],
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
        for i, (window, sent) in enumerate(deliver_windows(spec, seed, windows, tinybird, database, live), 1):
            delivered += sent.delivery
            counts.update(sent.actions)
            injected += sent.duplicates
            sql_rows += sent.sql_rows
            context.log.info(
                f"[{i}/{len(windows)}] {window}: {sent.delivery.rows} events, {sent.delivery.requests} requests, "
                f"{sent.delivery.quarantined_rows} quarantined"
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
        yield dg.MaterializeResult(
            asset_key=events_key,
            metadata=provenance(
                seed=seed,
                spec_hash=digest,
                window=Window(windows[0].start, windows[-1].end) if windows else run_window(context),
                rows=delivered.rows,
                nbytes=delivered.bytes,
                seconds=clock.seconds,
                target=tinybird.target(ds),
                preview=events(spec, seed, windows[-1]).slice(0, 5) if windows else None,
                **extra,
            ),
        )
        mix_ok, mix_table = action_mix(spec, counts)
        checks = [
            dg.AssetCheckResult(
                check_name="no_quarantined_rows",
                passed=delivered.quarantined_rows == 0,
                metadata={"quarantined_rows": delivered.quarantined_rows, "successful_rows": delivered.successful_rows},
            ),
            dg.AssetCheckResult(
                check_name="action_mix",
                passed=mix_ok,
                metadata={"distinct_events": sum(counts.values()), "mix": dg.MetadataValue.md(mix_table)},
            ),
        ]
        for check in checks:
            if dg.AssetCheckKey(events_key, check.check_name) in context.selected_asset_check_keys:
                yield check

    @dg.asset_check(
        asset=events_key,
        partitions_def=partitions,
        blocking=True,
        description="On the delivered events of each checked day: cart only after a view, uncart and purchase only "
        "while in the cart, return only after a purchase.",
    )
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

        @dg.asset(
            group_name=GROUP,
            kinds={database_kind},
            partitions_def=partitions,
            backfill_policy=dg.BackfillPolicy.single_run(),
            deps=[events_key],
            metadata={LIVE_CADENCE_METADATA: step},
            description=f"Distinct e-store events per {spec.sql.totals_interval_minutes}-minute interval: views, "
            "carts, uncarts, orders (purchases) and returns.",
        )
        def estore_totals(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
            clock = Stopwatch()
            rows = sum(write_totals(spec, seed, database, w) for w in windows_to_write(context, step))
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
