"""Analytics wiring: `meter_minutes` (meter files folded into the database), `top_devices` and `device_histograms`
(daily, downstream of the streams), the Tinybird pipes pulled into the database on a sensor, and the
`query_load_test` job."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial

import dagster as dg
import sqlalchemy as sa

from synth_platform.analytics import loadtest, plots, report, transfer
from synth_platform.analytics.features import features as platform_features
from synth_platform.analytics.features import histogram_edges
from synth_platform.analytics.live_tables import COLUMN_DESCRIPTIONS, HISTOGRAMS, TOP_VIEW, LiveAnalytics, view_columns
from synth_platform.analytics.meter_minutes import (
    METER_MINUTES_COLUMNS,
    METER_MINUTES_SCHEMA,
    METER_POWER,
    fold_day,
    write_day,
)
from synth_platform.analytics.queries import POWER_USAGE, Feature
from synth_platform.analytics.results import top_table
from synth_platform.assets.common import (
    IN_FLIGHT,
    Stopwatch,
    column_schema,
    daily_partitions,
    markdown_preview,
    provenance,
    run_window,
)
from synth_platform.pipelining import WORKERS, prefetched
from synth_platform.resources import data_dir
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.files import BucketResource
from synth_platform.sinks.tinybird import TinybirdResource
from synth_platform.specs import PlatformSpec
from synth_platform.specs.analytics import AnalyticsSpec, TransferSpec
from synth_platform.specs.loader import spec_hash
from synth_platform.specs.meters import MetersSpec
from synth_platform.specs.power import PowerSpec
from synth_platform.world import seeding
from synth_platform.world.meter_ids import id_numbers, id_strings
from synth_platform.world.windows import Window, epoch_seconds

LOAD_TEST_JOB = "query_load_test"
TRANSFER_JOB = "tinybird_transfer"
TRANSFER_TAG = "synth/transfer"
METER_MINUTES = METER_POWER.table_name
# meter_minutes and top_devices end the longest chain of main_job (meter files, their minutes, the rankings over
# every stream): when a parallel run has a free slot and several steps ready, these go first.
LONGEST_CHAIN = {"dagster/priority": "5"}


def markdown(table, empty: str = "_no readings in this window_") -> str:
    return markdown_preview(table, table.num_rows) if table.num_rows else empty


def streams(platform: PlatformSpec) -> tuple[list[Feature], list[dg.AssetKey]]:
    """The features the enabled domains deliver to the database, and the assets that deliver them (each feature's
    table is its asset)."""
    features = platform_features(platform)
    return features, [dg.AssetKey(t) for t in dict.fromkeys(f.table_name for f in features)]


def _meter_minutes(platform: PlatformSpec, kinds: set[str], live: LiveAnalytics) -> dg.AssetsDefinition:
    spec: MetersSpec = platform.get("meters")
    seed = platform.world.seed

    @dg.asset(
        name=METER_MINUTES,
        group_name="analytics",
        kinds=kinds,
        partitions_def=daily_partitions(platform.world),
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[dg.AssetKey("meter_readings")],
        op_tags=LONGEST_CHAIN,
        metadata={"dagster/column_schema": column_schema(METER_MINUTES_SCHEMA, METER_MINUTES_COLUMNS)},
        description="The delivered meter files of each day folded into one row per meter and minute (readings, "
        "zero readings, max power and voltage and when they happened), so SQL analytics can rank meters.",
    )
    def meter_minutes(
        context: dg.AssetExecutionContext, bucket: BucketResource, database: DatabaseResource
    ) -> dg.MaterializeResult:
        clock = Stopwatch()
        ids = id_strings(id_numbers(seed, spec.fleet.count, spec.fleet.id_format), spec.fleet.id_format)
        rows = nbytes = files = 0
        data = None
        # the next day's files are read and folded while this one is written
        for day, (data, read) in prefetched(partial(fold_day, bucket, ids), run_window(context).days()):
            result = write_day(database, data, day)
            live.written(database, METER_MINUTES, [day])
            rows, nbytes, files = rows + result.rows, nbytes + result.bytes, files + read
            context.log.info(f"{day.partition_key()}: {read} files -> {result.rows} meter-minutes")
        return dg.MaterializeResult(
            metadata=provenance(
                seed=seed,
                spec_hash=spec_hash(spec, seed),
                window=run_window(context),
                rows=rows,
                nbytes=nbytes,
                seconds=clock.seconds,
                target=f"{database.redacted_url} table {METER_MINUTES}",
                preview=data,
                files_read=dg.MetadataValue.int(files),
                **{"dagster/table_name": database.qualified_name(METER_MINUTES)},
            )
        )

    return meter_minutes


def build(platform: PlatformSpec, database_kind: str) -> dg.Definitions:
    spec: AnalyticsSpec = platform.get("analytics")
    features, upstream = streams(platform)
    partitions = daily_partitions(platform.world)
    kinds = {database_kind}
    power = platform.get("power")
    edges = histogram_edges(platform, features)
    live = LiveAnalytics.for_platform(platform)

    def present(database: DatabaseResource) -> list[Feature]:
        return [f for f in features if report.has_table(database, f.table_name)]

    daily = {
        "group_name": "analytics",
        "kinds": kinds,
        "partitions_def": partitions,
        "backfill_policy": dg.BackfillPolicy.single_run(),
        "deps": upstream,
    }

    @dg.asset(
        **daily,
        op_tags=LONGEST_CHAIN,
        metadata={"dagster/column_schema": column_schema(view_columns(TOP_VIEW), COLUMN_DESCRIPTIONS)},
        description=f"Top {spec.top_n} devices per feature by their maximum reading (and when it happened): all "
        "time, past hour, past minute and each day of the run, computed in SQL. The streams keep the views "
        "`top_devices` and `top_devices_daily` current; this rebuilds the run's days of their rollups.",
    )
    def top_devices(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
        clock = Stopwatch()
        days = run_window(context).days()
        features = present(database)

        # A stream's step refreshes the rollups of what it writes, so the days this run's own steps wrote (main_job,
        # the daily close) are current; the others (written before analytics was switched on) are rebuilt.
        written = written_in_run(context)
        tables = dict.fromkeys(f.table_name for f in features)
        stale = [t for t in tables if any((dg.AssetKey(t), d.partition_key()) not in written for d in days)]
        context.log.info(f"rebuilding the rollups of {stale or 'no table'}; {sorted(set(tables) - set(stale))} current")

        def rebuild() -> None:
            for table in stale:
                live.written(database, table, days)

        def sections(feature: Feature) -> list[str]:
            end = report.anchor(database, feature, spec.relative_to)
            found = []
            for name, window in report.named_windows(end, days):
                rows = report.top_devices(database, feature, window, spec.top_n)
                title = f"**{name}**" + (f" `{window}`" if window else "")
                found.append(f"{title}\n\n{markdown(top_table(rows))}")
            return found

        # The report reads the readings tables, not the rollups, so it runs beside their rebuild (SQLite in WAL
        # mode reads beside its one writer), a feature per thread.
        with ThreadPoolExecutor(1 + WORKERS, thread_name_prefix="top_devices") as pool:
            rebuilt = pool.submit(rebuild)
            reports = list(pool.map(sections, features))
            rebuilt.result()
        metadata: dict[str, object] = {}
        for feature, found in zip(features, reports, strict=True):
            metadata[f"top_{feature.name}"] = dg.MetadataValue.md("\n\n".join(found))
            context.log.info(f"{feature.name}: top {spec.top_n} in {len(found)} windows")
        return dg.MaterializeResult(
            metadata={
                **metadata,
                "top_n": dg.MetadataValue.int(spec.top_n),
                "relative_to": dg.MetadataValue.text(spec.relative_to),
                "window": dg.MetadataValue.text(str(run_window(context))),
                "duration_s": dg.MetadataValue.float(round(clock.seconds, 3)),
                "target": dg.MetadataValue.text(database.redacted_url),
                "dagster/table_name": dg.MetadataValue.text(database.qualified_name(TOP_VIEW)),
            }
        )

    @dg.asset(
        **daily,
        metadata={"dagster/column_schema": column_schema(HISTOGRAMS.columns, COLUMN_DESCRIPTIONS)},
        description="Per device over the run's days: readings per value bucket (edges from config/analytics.yaml) "
        "and status (reported vs missing intervals); the hourly load profile per building type as a plot. Per day, "
        "the streams keep the tables `device_histograms` and `device_status` current.",
    )
    def device_histograms(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
        clock = Stopwatch()
        window = run_window(context)
        metadata: dict[str, object] = {}
        for feature in present(database):
            devices = (
                [r[0] for r in database.query("SELECT device_id FROM device_metadata")]
                if (feature.fleet and report.has_table(database, "device_metadata"))
                else []
            )
            h = report.histograms(database, feature, window, edges[feature.name], devices)
            readings = sum(sum(c) for c in h.values.values())
            if readings != h.rows:
                raise RuntimeError(f"{feature.name}: histogram holds {readings} readings, the window {h.rows}")
            metadata[f"histogram_{feature.name}"] = dg.MetadataValue.md(markdown(h.table()))
            metadata[f"{feature.name}_readings"] = dg.MetadataValue.int(h.rows)
            metadata[f"{feature.name}_intervals"] = dg.MetadataValue.int(h.intervals)
        if POWER_USAGE in present(database) and report.has_table(database, "device_metadata"):
            metadata.update(_load_profile(database, window, 3600 / power.usage.interval_seconds))
        metadata["window"] = dg.MetadataValue.text(str(window))
        metadata["dagster/table_name"] = dg.MetadataValue.text(database.qualified_name(HISTOGRAMS.name))
        metadata["duration_s"] = dg.MetadataValue.float(round(clock.seconds, 3))
        return dg.MaterializeResult(metadata=metadata)

    assets = [top_devices, device_histograms]
    if platform.get("meters") is not None:
        assets.append(_meter_minutes(platform, kinds, live))
    definitions = [dg.Definitions(assets=assets)]
    definitions.append(_transfer(platform, spec, kinds))
    definitions.append(_load_test(platform, spec, features))
    return dg.Definitions.merge(*definitions)


def written_in_run(context: dg.AssetExecutionContext) -> set[tuple[dg.AssetKey, str | None]]:
    """(asset, partition) of every materialization the run has recorded so far."""
    of_type = dg.DagsterEventType.ASSET_MATERIALIZATION
    records = context.instance.get_records_for_run(context.run_id, of_type=of_type).records
    events = (r.event_log_entry.dagster_event for r in records)
    return {(e.asset_key, e.partition) for e in events if e is not None}


def _load_profile(database: DatabaseResource, window: Window, per_hour: float) -> dict[str, object]:
    profile = report.hourly_profile(database, POWER_USAGE, window, scale=per_hour)
    if not profile:
        return {}
    png = plots.load_profile_png(profile, "mean power (kW)")
    path = data_dir() / "analytics" / f"load_profile_{window.start:%Y%m%d}_{window.end:%Y%m%d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return {
        "load_profile": dg.MetadataValue.md(plots.markdown_image(png, "hourly load profile per building type")),
        "load_profile_png": dg.MetadataValue.path(str(path)),
    }


def _watermark(context: dg.AssetExecutionContext, cfg: TransferSpec) -> datetime | None:
    """The newest event time pulled so far, from the asset's last materialization (if it pulled the same pipe)."""
    event = context.instance.get_latest_materialization_event(context.asset_key)
    if event is None or event.asset_materialization is None:
        return None
    meta = event.asset_materialization.metadata
    same = meta.get("pipe") and meta["pipe"].value == cfg.pipe
    value = meta.get("watermark")
    return datetime.fromisoformat(value.value) if same and value and value.value else None


def _pulled(cfg: TransferSpec, kinds: set[str]) -> dg.AssetsDefinition:
    @dg.asset(
        name=cfg.table,
        group_name="analytics",
        kinds=kinds | {"tinybird"},
        deps=[dg.AssetKey(u) for u in cfg.upstream],
        tags={TRANSFER_TAG: "true"},
        description=f"Tinybird pipe `{cfg.pipe}` pulled into table `{cfg.table}`: incremental on `{cfg.time_column}` "
        f"(watermark in this asset's metadata), {cfg.page_size} rows per page, upserted on {cfg.key}.",
    )
    def pulled(context: dg.AssetExecutionContext, database: DatabaseResource, tinybird: TinybirdResource):
        clock = Stopwatch()
        watermark = _watermark(context, cfg)
        if watermark and not report.has_table(database, cfg.table):
            context.log.warning(f"table {cfg.table} is gone: pulling from {cfg.start} again")
            watermark = None
        meta: dict[str, object] = {"pipe": dg.MetadataValue.text(cfg.pipe)}
        if tinybird.uses_outbox:
            context.log.warning("no TINYBIRD_TOKEN: there is no Tinybird endpoint to pull from; nothing pulled")
            meta["watermark"] = dg.MetadataValue.text(watermark.isoformat() if watermark else "")
            meta["skipped"] = dg.MetadataValue.text("no Tinybird token (outbox mode)")
            return dg.MaterializeResult(metadata=meta)
        result = transfer.pull(tinybird, database, cfg, watermark)
        count = sa.select(sa.func.count()).select_from(sa.table(cfg.table))
        exists = report.has_table(database, cfg.table)
        total = database.scalar(count) if exists else 0
        if exists:  # the columns the pipe delivered, as the database holds them
            columns = sa.Table(cfg.table, sa.MetaData(), autoload_with=database.engine).columns
            meta["dagster/column_schema"] = column_schema(columns, transfer.column_descriptions(cfg))
            meta["dagster/table_name"] = dg.MetadataValue.text(database.qualified_name(cfg.table))
        context.log.info(f"{result.rows} rows in {result.pages} pages from {result.start} to {result.end}")
        meta.update(
            {
                "watermark": dg.MetadataValue.text(result.watermark.isoformat() if result.watermark else ""),
                "pulled_from": dg.MetadataValue.text(result.start.isoformat()),
                "pulled_until": dg.MetadataValue.text(result.end.isoformat()),
                "rows": dg.MetadataValue.int(result.rows),
                "pages": dg.MetadataValue.int(result.pages),
                "table_rows": dg.MetadataValue.int(int(total or 0)),
                "duration_s": dg.MetadataValue.float(round(clock.seconds, 3)),
                "target": dg.MetadataValue.text(f"{database.redacted_url} table {cfg.table}"),
                "source": dg.MetadataValue.text(f"{tinybird.api_url} pipe {cfg.pipe}"),
            }
        )
        return dg.MaterializeResult(metadata=meta)

    return pulled


def _transfer(platform: PlatformSpec, spec: AnalyticsSpec, kinds: set[str]) -> dg.Definitions:
    """One asset per pipe, a job pulling them all, and a sensor requesting that job every `interval_seconds`."""
    if not spec.transfer.pipes:
        return dg.Definitions()
    interval = spec.transfer.interval_seconds
    assets = [_pulled(cfg, kinds) for cfg in spec.transfer.pipes]
    job = dg.define_asset_job(
        TRANSFER_JOB,
        selection=dg.AssetSelection.assets(*assets),
        tags={TRANSFER_TAG: "true"},
        description="Pull every configured Tinybird pipe into its database table (watermark + upserts).",
    )

    @dg.sensor(
        name=f"{TRANSFER_JOB}_sensor",
        job=job,
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus(platform.world.live.default_status.upper()),
        description=f"Requests a pull of every Tinybird pipe each {interval}s, none while one is queued or running.",
    )
    def transfer_sensor(
        context: dg.SensorEvaluationContext, tinybird: TinybirdResource
    ) -> dg.RunRequest | dg.SkipReason:
        if tinybird.uses_outbox:  # a run would only record "skipped": keep the run history for real pulls
            return dg.SkipReason("no Tinybird token (outbox mode): nothing to pull")
        running = context.instance.get_runs_count(dg.RunsFilter(tags={TRANSFER_TAG: "true"}, statuses=IN_FLIGHT))
        if running:
            return dg.SkipReason(f"{running} transfer run(s) still queued or running")
        slot = epoch_seconds(datetime.now(UTC)) // interval  # one run per interval, however often it is evaluated
        return dg.RunRequest(run_key=f"{TRANSFER_JOB}:{slot * interval}")

    return dg.Definitions(assets=assets, jobs=[job], sensors=[transfer_sensor])


def _load_test(platform: PlatformSpec, spec: AnalyticsSpec, features: list[Feature]) -> dg.Definitions:
    cfg = spec.load_test
    seed = platform.world.seed
    fleet = platform.get("power") or getattr(platform.get("sensors") or platform.get("meters"), "power", None)
    cities = list((fleet or PowerSpec()).cities)

    @dg.op(
        description=f"Bounded query load per target ({cfg.targets}): {cfg.concurrency} in flight, "
        f"{cfg.requests_per_second:g} req/s, at most {cfg.duration_seconds:g}s and {cfg.max_requests} requests."
    )
    def run_query_load(context: dg.OpExecutionContext, database: DatabaseResource, tinybird: TinybirdResource):
        results: list[loadtest.LoadResult] = []
        skipped: dict[str, str] = {}
        run_seed = int(seeding.stream_key(seed, "loadtest", context.run_id))  # new draws each run
        for target in cfg.targets:
            if target == "database":
                if not features or not report.has_table(database, features[0].table_name):
                    skipped[target] = "no delivered readings in the database"
                    continue
                loadtest.require_loopback("database", database.url, cfg.allow_remote)
                with_city = report.has_column(database, "device_metadata", "city")
                request = loadtest.database_requests(
                    database, features[0], run_seed, cities if with_city else [], cfg.max_period_days
                )
            else:
                if tinybird.uses_outbox:
                    skipped[target] = "no TINYBIRD_TOKEN (outbox mode)"
                    continue
                if not spec.transfer.pipes:
                    skipped[target] = "no pipe configured (transfer.pipes)"
                    continue
                loadtest.require_loopback("tinybird", tinybird.api_url, cfg.allow_remote)
                once = TinybirdResource(
                    api_url=tinybird.api_url,
                    token=tinybird.token,
                    outbox_dir=tinybird.outbox_dir,
                    max_attempts=1,
                    timeout_seconds=30,
                )
                pipe = spec.transfer.pipes[0]
                span = transfer.pipe_span(once, pipe)
                request = loadtest.tinybird_requests(once, pipe.pipe, span, run_seed, cities, cfg.max_period_days)
            context.log.info(f"loading {target} ...")
            result = loadtest.run_load(target, request, cfg)
            context.log.info(f"{target}: {result.summary()}")
            results.append(result)
        return dg.Output(None, metadata=_load_metadata(results, skipped))

    @dg.job(name=LOAD_TEST_JOB, description="Query latency of the database and Tinybird under a bounded load.")
    def query_load_test() -> None:
        run_query_load()

    return dg.Definitions(jobs=[query_load_test])


def _load_metadata(results: list[loadtest.LoadResult], skipped: dict[str, str]) -> dict[str, object]:
    meta: dict[str, object] = {}
    lines = ["| target | requests | errors | p50 ms | p95 ms | p99 ms | throughput req/s | seconds |", "|" + "---|" * 8]
    for r in results:
        s = r.summary()
        lines.append(f"| {r.target} | " + " | ".join(str(v) for v in s.values()) + " |")
        for name, value in s.items():
            is_float = isinstance(value, float)
            meta[f"{r.target}/{name}"] = dg.MetadataValue.float(value) if is_float else dg.MetadataValue.int(int(value))
        if r.error_samples:
            meta[f"{r.target}/error_samples"] = dg.MetadataValue.md("\n".join(f"- `{e}`" for e in r.error_samples))
    lines += [f"| {t} | skipped: {why} |" + " |" * 6 for t, why in skipped.items()]
    meta["summary"] = dg.MetadataValue.md("\n".join(lines))
    if any(r.latencies_ms for r in results):
        png = plots.latency_png({r.target: r.latencies_ms for r in results})
        meta["latency_plot"] = dg.MetadataValue.md(plots.markdown_image(png, "latency per target"))
    return meta
