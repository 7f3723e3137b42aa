"""Live runs report what they wrote: the materialization names the batch of windows the run wrote (not the whole
day), the checks evaluated inside the asset's step are recorded for the written partition (never "not evaluated"),
and a window that delivered nothing says so, with no preview of other rows."""

from datetime import datetime, timedelta

import dagster as dg

from synth_platform import automation
from synth_platform.assets.common import LIVE_WINDOW_END_TAG, LIVE_WINDOW_START_TAG
from synth_platform.definitions import build_definitions
from synth_platform.domains import REGISTRY, load_platform
from synth_platform.resources import build_resources
from synth_platform.sinks.database import DatabaseResource
from synth_platform.specs import PlatformSpec
from synth_platform.world.estore import events
from synth_platform.world.windows import Window
from synth_platform_tests.config_files import edit_yaml
from synth_platform_tests.live_helpers import Clock, at, live_definitions, power_platform, rows
from synth_platform_tests.runs import run_request

DAY = "2026-03-02"
TAGS = (LIVE_WINDOW_START_TAG, LIVE_WINDOW_END_TAG)


def clocked_definitions(platform: PlatformSpec, clock: Clock) -> dg.Definitions:
    """What definitions.py assembles for the platform's domains, with the live sensors reading `clock`."""
    built = [REGISTRY[name].build(platform, "sqlite") for name in platform.world.domains]
    resources = build_resources(platform.world.targets, platform.config_dir / "world.yaml")
    domains = dg.Definitions.merge(*built, dg.Definitions(resources=resources))
    return automation.build(platform, domains, clock)


def latest(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict:
    record = instance.fetch_materializations(dg.AssetRecordsFilter(key, asset_partitions=[DAY]), limit=1).records[0]
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def test_a_live_batch_names_its_window_and_evaluates_its_checks(config_dir, sqlite_url, instance):
    clock = Clock(at(f"{DAY}T12:00:30"))
    defs = live_definitions(power_platform(config_dir, initial_cursor=3), sqlite_url, clock)
    sensor = defs.resolve_sensor_def("live_power_usage_sensor")
    (request,) = sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def())
    ).run_requests
    batch = Window(at(f"{DAY}T11:30"), at(f"{DAY}T12:00"))
    assert (request.tags[LIVE_WINDOW_START_TAG], request.tags[LIVE_WINDOW_END_TAG]) == (
        batch.start.isoformat(),
        batch.end.isoformat(),
    )
    result = run_request(defs.resolve_job_def("live_power_usage"), instance, request)
    assert result.success

    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {"row_count", "unique_keys", "known_devices"}
    assert all(e.passed for e in evaluations.values())
    keys = [dg.AssetCheckKey(dg.AssetKey("power_usage"), name) for name in evaluations]
    recorded = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    assert {k.name for k in recorded} == set(evaluations)  # what the Checks tab shows: evaluated

    meta = latest(instance, dg.AssetKey("power_usage"))
    assert meta["window"] == str(batch) and meta["windows"] == 3
    assert meta["dagster/row_count"] == len(rows(DatabaseResource(url=sqlite_url), batch)) > 0
    assert f"{DAY} 11:30" in meta["preview"]


def test_a_window_that_delivers_nothing_says_so(config_dir, instance):
    edit_yaml(config_dir / "world.yaml", domains=["estore"], start_date="2026-03-01")
    edit_yaml(config_dir / "estore.yaml", **{"catalog.customers": 20, "catalog.products": 5})
    platform = load_platform(config_dir)
    spec, seed = platform.get("estore"), platform.world.seed
    step = timedelta(seconds=spec.micro_batch_seconds)
    minutes = (Window(at(f"{DAY}T00:00") + step * i, at(f"{DAY}T00:00") + step * (i + 1)) for i in range(1440))
    empty = next(w for w in minutes if events(spec, seed, w).num_rows == 0)
    defs = build_definitions(platform)
    job = defs.resolve_job_def("live_estore_events")
    tags = {LIVE_WINDOW_START_TAG: empty.start.isoformat(), LIVE_WINDOW_END_TAG: empty.end.isoformat()}
    result = job.execute_in_process(instance=instance, partition_key=DAY, tags=tags)
    assert result.success

    meta = latest(instance, dg.AssetKey("estore_events"))
    assert meta["window"] == str(empty) and meta["dagster/row_count"] == 0
    assert meta["preview"].startswith("nothing written")
    evaluated = {e.check_name for e in result.get_asset_check_evaluations()}
    assert "no_quarantined_rows" in evaluated


def test_live_runs_of_meters_a_table_and_the_estore_evaluate_every_check_on_their_windows(
    config_dir, instance, monkeypatch
):
    edit_yaml(config_dir / "world.yaml", domains=["meters", "tables", "estore"], start_date="2026-03-01",
              **{"live.initial_cursor": 3})  # fmt: skip
    edit_yaml(config_dir / "meters.yaml", **{"fleet.count": 12, "interval_seconds": 60, "output.meters_per_part": 5})
    edit_yaml(config_dir / "estore.yaml", **{"catalog.customers": 40, "catalog.products": 10})
    monkeypatch.delenv("TINYBIRD_TOKEN", raising=False)
    monkeypatch.delenv("SYNTH_DELTA_ROOT", raising=False)
    platform = load_platform(config_dir)
    defs = clocked_definitions(platform, Clock(at(f"{DAY}T12:00:30")))
    graph = defs.resolve_asset_graph()
    context = dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def())
    batches: dict[dg.AssetKey, tuple[Window, str]] = {}
    for sensor in defs.sensors:
        for request in sensor.evaluate_tick(context).run_requests:
            result = run_request(defs.resolve_job_def(sensor.job_name), instance, request)
            assert result.success
            batch = Window(*(datetime.fromisoformat(request.tags[t]) for t in TAGS))
            for key in request.asset_selection:
                batches[key] = (batch, result.run_id)

    streams = {dg.AssetKey("meter_readings"), dg.AssetKey(["tables", "orders"]), dg.AssetKey("estore_events")}
    assert streams <= set(batches)
    for key, (batch, run_id) in batches.items():
        # every check of the asset but the wall-clock freshness check, which has its own schedule
        keys = [k for k in graph.get(key).check_keys if k.name != "freshness"]
        partitions = [DAY] if graph.get(key).is_partitioned else None
        (materialized,) = instance.fetch_materializations(
            dg.AssetRecordsFilter(key, asset_partitions=partitions), limit=1
        ).records
        assert materialized.run_id == run_id  # so the UI counts the run's checks as the partition's
        recorded = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
        assert set(recorded) == set(keys), key  # the Checks tab shows each of them evaluated
        for check, record in recorded.items():
            evaluation = record.event.dagster_event.asset_check_evaluation_data
            assert record.run_id == run_id and evaluation.passed, check
            meta = {k: v.value for k, v in evaluation.metadata.items()}
            if graph.get(key).is_partitioned:
                # the windows written (power_agreement reads back from the start of their hours)
                checked = _windows(meta["checked"])
                assert meta["scope"] == "window" and checked, check
                assert all(w.partition_key() == DAY for w in checked) and checked[-1].end == batch.end, check
            else:  # a dimension written with the first window: the whole table
                assert meta["scope"] == "table", check
        if key in streams:
            assert latest(instance, key)["window"] == str(batch)


def _windows(markdown: str) -> list[Window]:
    """The windows of a `checked` list ("- [start, end)" lines)."""
    spans = (line.removeprefix("- [").removesuffix(")").split(", ") for line in markdown.splitlines() if "[" in line)
    return [Window(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in spans]
