"""E-store wiring: daily `estore_events` into Tinybird (live windows through the Events API, days replaced through
the Data Sources API), optionally the same events and `estore_totals` in the SQL database, and the checks
(delivered by streams/estore.py)."""

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import dagster as dg

from synth_platform.assets.common import (
    LIVE_CADENCE_METADATA,
    Tally,
    Written,
    check_scope,
    column_schema,
    daily_partitions,
    is_live,
    markdown_list,
    partition_results,
    provenance,
    uri_metadata,
    windows_to_write,
)
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.tinybird import Delivery, TinybirdResource
from synth_platform.specs import PlatformSpec
from synth_platform.specs.estore import ACTIONS, EstoreSpec
from synth_platform.specs.loader import spec_hash
from synth_platform.streams.estore import (
    WindowDelivery,
    action_mix,
    deliver_windows,
    replay_delivered,
    write_totals,
)
from synth_platform.world.estore import (
    EVENT_COLUMNS,
    EVENT_SCHEMA,
    TOTALS_COLUMNS,
    TOTALS_SCHEMA,
    events,
)
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

    # The checks are evaluated in the delivering step over what it delivered: a live batch, or whole days.
    # A multi-asset that can be subset, so a run may still leave a check out.
    @dg.multi_asset(
        name="estore_events",
        specs=[
            dg.AssetSpec(
                events_key,
                group_name=GROUP,
                kinds=kinds,
                metadata={
                    LIVE_CADENCE_METADATA: step,
                    "dagster/column_schema": column_schema(EVENT_SCHEMA, EVENT_COLUMNS),
                },
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
                description="Each action's share of the distinct events delivered is within tolerance of its weight.",
            ),
            dg.AssetCheckSpec(
                "state_rules",
                asset=events_key,
                blocking=True,
                description="On the delivered events read back (a live batch, or whole days; a batch that starts "
                "inside a journey slot is replayed after the world's events of the slot before it): cart only after "
                "a view, uncart and purchase only while in the cart, return only after a purchase.",
            ),
        ],
        can_subset=True,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def estore_events(
        context: dg.AssetExecutionContext, tinybird: TinybirdResource, database: DatabaseResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetMaterialization | dg.AssetCheckResult]:
        if events_key not in context.selected_asset_keys:
            raise dg.Failure(
                "the e-store checks are evaluated while estore_events is delivered: materialize the partition to "
                "run them"
            )
        windows = windows_to_write(context, step)
        live = is_live(context)
        tally, sent_by_day = Tally(), defaultdict(Sent)
        for i, (window, sent) in enumerate(deliver_windows(spec, seed, windows, tinybird, database, live), 1):
            tally.add(window, sent.delivery.rows, sent.delivery.bytes)
            sent_by_day[window.partition_key()].add(sent)
            context.log.info(
                f"[{i}/{len(windows)}] {window}: {sent.delivery.rows} events, {sent.delivery.requests} requests, "
                f"{sent.delivery.quarantined_rows} quarantined"
            )
        via = "outbox" if tinybird.uses_outbox else "Events API" if live else "Data Sources API replace"

        def metadata(written: Written) -> dict[str, object]:
            sent = sent_by_day[written.windows[0].partition_key()]
            extra = {
                **{f"events_{a}": dg.MetadataValue.int(sent.actions[a]) for a in ACTIONS},
                "duplicates_injected": dg.MetadataValue.int(sent.duplicates),
                "requests": dg.MetadataValue.int(sent.delivery.requests),
                "retries": dg.MetadataValue.int(sent.delivery.retries),
                "wire_bytes": dg.MetadataValue.int(sent.delivery.wire_bytes),
                "successful_rows": dg.MetadataValue.int(sent.delivery.successful_rows),
                "quarantined_rows": dg.MetadataValue.int(sent.delivery.quarantined_rows),
                "delivery": dg.MetadataValue.text(via),
                "windows": dg.MetadataValue.int(len(written.windows)),
            }
            if spec.sql.events:
                extra["sql_rows"] = dg.MetadataValue.int(sent.sql_rows)
            return provenance(
                seed=seed,
                spec_hash=digest,
                window=written.window,
                rows=written.rows,
                nbytes=written.nbytes,
                seconds=written.seconds,
                target=tinybird.target(ds),
                preview=events(spec, seed, written.windows[-1]).slice(0, 5),
                **uri_metadata(tinybird.public_uri(ds)),
                **extra,
            )

        yield from partition_results(context, tally, metadata, events_key, spec_digest=digest)
        selected = {k.name for k in context.selected_asset_check_keys}
        written = [w.window for w in tally.partitions.values()]
        scope = check_scope(live, written)
        total = Sent()
        for sent in sent_by_day.values():
            total.add(sent)
        if "no_quarantined_rows" in selected:
            yield dg.AssetCheckResult(
                check_name="no_quarantined_rows",
                passed=total.delivery.quarantined_rows == 0,
                metadata={
                    "quarantined_rows": total.delivery.quarantined_rows,
                    "successful_rows": total.delivery.successful_rows,
                    **scope,
                },
            )
        if "action_mix" in selected:
            mix_ok, mix_table = action_mix(spec, total.actions)
            yield dg.AssetCheckResult(
                check_name="action_mix",
                passed=mix_ok,
                metadata={
                    "distinct_events": sum(total.actions.values()),
                    "mix": dg.MetadataValue.md(mix_table),
                    **scope,
                },
            )
        if "state_rules" in selected:
            yield state_rules(tinybird, written, live)

    def state_rules(tinybird: TinybirdResource, written: list[Window], live: bool) -> dg.AssetCheckResult:
        replays = [replay_delivered(spec, seed, tinybird, w) for w in written]
        return dg.AssetCheckResult(
            check_name="state_rules",
            passed=not any(r.violations for r in replays),
            metadata={
                "violations": sum(r.violations for r in replays),
                "delivered_distinct_events": sum(r.delivered for r in replays),
                "generated_distinct_events": sum(r.generated for r in replays),
                **check_scope(live, written),
                "examples": markdown_list([e for r in replays for e in r.examples], limit=20),
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
            metadata={
                LIVE_CADENCE_METADATA: step,
                "dagster/column_schema": column_schema(TOTALS_SCHEMA, TOTALS_COLUMNS),
            },
            description=f"Distinct e-store events per {spec.sql.totals_interval_minutes}-minute interval: views, "
            "carts, uncarts, orders (purchases) and returns.",
        )
        def estore_totals(context: dg.AssetExecutionContext, database: DatabaseResource):
            tally = Tally()
            for window in windows_to_write(context, step):
                tally.add(window, write_totals(spec, seed, database, window), 0)
            table = database.qualified_name("estore_totals")

            def metadata(written: Written) -> dict[str, object]:
                return provenance(
                    seed=seed,
                    spec_hash=digest,
                    window=written.window,
                    rows=written.rows,
                    nbytes=0,
                    seconds=written.seconds,
                    target=f"{database.redacted_url} table estore_totals",
                    **{"dagster/table_name": table},
                )

            yield from partition_results(context, tally, metadata, spec_digest=digest)

        assets.append(estore_totals)

    return dg.Definitions(assets=assets)


@dataclass
class Sent:
    """What a run delivered into one partition, summed over its windows."""

    delivery: Delivery = field(default_factory=Delivery)
    actions: Counter = field(default_factory=Counter)
    duplicates: int = 0
    sql_rows: int = 0

    def add(self, sent: "WindowDelivery | Sent") -> None:
        self.delivery += sent.delivery
        self.actions.update(sent.actions)
        self.duplicates += sent.duplicates
        self.sql_rows += sent.sql_rows
