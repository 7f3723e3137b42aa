"""Each partition's page shows that partition's figures: after a 3-day range run and a single-day run of power_usage
and meter_readings (and a range run of the e-store, a declarative table and sharded meters), every partition's latest
materialization in the instance has its own row count (the rows in the target for that day), its own window and a
preview of that day, with Dagster's standard metadata keys."""

import gzip
import json
import re

import dagster as dg
import deltalake
import pytest
import sqlalchemy as sa

from synth_platform.definitions import build_definitions
from synth_platform.domains import load_platform
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.delta import DeltaResource, window_filter
from synth_platform.sinks.files import BucketResource, window_prefix
from synth_platform.sinks.tinybird import TinybirdResource
from synth_platform.streams.meters import READINGS
from synth_platform.world.windows import Window
from synth_platform_tests.config_files import edit_yaml
from synth_platform_tests.runs import run_days

RANGE, SINGLE = ["2026-03-01", "2026-03-02", "2026-03-03"], "2026-03-05"
USAGE, METERS = dg.AssetKey("power_usage"), dg.AssetKey(READINGS)
EVENTS, TOTALS, ORDERS = dg.AssetKey("estore_events"), dg.AssetKey("estore_totals"), dg.AssetKey(["tables", "orders"])


@pytest.fixture
def defs(config_dir) -> dg.Definitions:
    edit_yaml(config_dir / "world.yaml", domains=["power", "meters"], start_date="2026-01-01")
    edit_yaml(config_dir / "power.yaml", **{"devices.count": 12})
    edit_yaml(config_dir / "meters.yaml", **{"fleet.count": 12})
    return build_definitions(load_platform(config_dir))


def run(defs: dg.Definitions, instance: dg.DagsterInstance, first: str, last: str) -> None:
    """main_job over first..last in one run: every asset with the checks it runs in its step."""
    assert run_days(defs, instance, first, last).success


def latest(instance: dg.DagsterInstance, key: dg.AssetKey, day: str) -> dict:
    (record,) = instance.fetch_materializations(dg.AssetRecordsFilter(key, asset_partitions=[day]), limit=1).records
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def test_each_partition_shows_its_own_rows_window_and_preview(defs, instance, _data_dir):
    run(defs, instance, RANGE[0], RANGE[-1])
    run(defs, instance, SINGLE, SINGLE)
    db = DatabaseResource(url=f"sqlite:///{_data_dir / 'synth.db'}")
    bucket = BucketResource(url=str(_data_dir / "bucket"))
    counts = set()
    for day in [*RANGE, SINGLE]:
        window = Window.for_day(day)
        power = latest(instance, USAGE, day)
        rows = db.scalar(
            "SELECT COUNT(*) FROM power_usage WHERE timestamp >= :start AND timestamp < :end",
            {"start": window.start, "end": window.end},
        )
        assert power["dagster/row_count"] == power["rows"] == rows > 0
        assert power["window"] == str(window) and power["dagster/table_name"] == "power_usage"
        assert _days_in(power["preview"]) == {day}
        assert isinstance(power["seed"], str)  # only measurements are numbers

        meters = latest(instance, METERS, day)
        manifest = bucket.manifest(window_prefix(READINGS, window))
        assert meters["dagster/row_count"] == meters["rows"] == manifest["rows"] > 0
        assert meters["window"] == str(window) and meters["dagster/uri"].rstrip("/").endswith(f"{READINGS}/dt={day}")
        assert _days_in(meters["preview"]) == {day}
        counts.add((rows, manifest["rows"]))
    assert len(counts) > 1  # days differ: no partition shows another's (or the range's) figures

    graph = defs.resolve_asset_graph()
    power_columns = graph.get(USAGE).metadata["dagster/column_schema"].columns
    assert [c.name for c in power_columns] == [c["name"] for c in sa.inspect(db.engine).get_columns("power_usage")]
    assert all(c.description for c in power_columns)
    meter_columns = graph.get(METERS).metadata["dagster/column_schema"].columns
    first_record = _first_record(bucket, Window.for_day(SINGLE))
    assert [c.name for c in meter_columns] == list(first_record)


def test_range_runs_of_the_estore_a_table_and_sharded_meters_show_each_days_own_rows(
    config_dir, instance, _data_dir, monkeypatch
):
    edit_yaml(config_dir / "world.yaml", domains=["meters", "tables", "estore"], start_date="2026-01-01")
    edit_yaml(config_dir / "meters.yaml", **{"fleet.count": 12, "interval_seconds": 60, "output.meters_per_part": 5,
                                             "day_shards": 2})  # fmt: skip
    edit_yaml(config_dir / "estore.yaml", **{"catalog.customers": 40, "catalog.products": 10})
    monkeypatch.delenv("TINYBIRD_TOKEN", raising=False)  # the outbox: one file of events per day
    monkeypatch.delenv("SYNTH_DELTA_ROOT", raising=False)
    platform = load_platform(config_dir)
    defs = build_definitions(platform)
    run(defs, instance, RANGE[0], RANGE[-1])

    db = DatabaseResource(url=f"sqlite:///{_data_dir / 'synth.db'}")
    bucket = BucketResource(url=str(_data_dir / "bucket"))
    outbox = TinybirdResource(outbox_dir=str(_data_dir / "tinybird_outbox"))
    delta = DeltaResource(root=str(_data_dir / "delta"))
    orders_time = platform.get("tables").catalog["orders"].spec.cadence.time_column
    held: dict[str, list[int]] = {}
    for day in RANGE:
        window = Window.for_day(day)
        in_target = {
            EVENTS: len(outbox.outbox_ndjson(EVENTS.path[-1], window).splitlines()),
            TOTALS: db.scalar(
                "SELECT COUNT(*) FROM estore_totals WHERE interval_start >= :start AND interval_start < :end",
                {"start": window.start, "end": window.end},
            ),
            ORDERS: delta.read("orders", ["order_id"], window_filter(orders_time, window)).num_rows,
            METERS: bucket.manifest(window_prefix(READINGS, window))["rows"],
        }
        for key, rows in in_target.items():
            meta = latest(instance, key, day)
            assert meta["dagster/row_count"] == meta["rows"] == rows > 0, (key, day)
            assert meta["window"] == str(window) and "range" not in meta, (key, day)
            held.setdefault(key.to_user_string(), []).append(rows)
        for key in (EVENTS, ORDERS, METERS):
            assert _days_in(latest(instance, key, day)["preview"]) == {day}, key
    assert len(set(held["estore_events"])) > 1  # days differ: no partition shows another's (or the range's)
    # dagster/uri addresses what was written: the outbox folder of the events, the Delta table of the orders
    assert latest(instance, EVENTS, RANGE[0])["dagster/uri"] == outbox.public_uri("estore_events")
    orders_uri = latest(instance, ORDERS, RANGE[0])["dagster/uri"]
    assert deltalake.DeltaTable(orders_uri).to_pyarrow_dataset().count_rows() == sum(held["tables/orders"])

    graph = defs.resolve_asset_graph()
    first_event = json.loads(outbox.outbox_ndjson("estore_events", Window.for_day(RANGE[0])).splitlines()[0])
    event_columns = graph.get(EVENTS).metadata["dagster/column_schema"].columns
    assert [c.name for c in event_columns] == list(first_event) and all(c.description for c in event_columns)
    total_columns = graph.get(TOTALS).metadata["dagster/column_schema"].columns
    assert [c.name for c in total_columns] == [c["name"] for c in sa.inspect(db.engine).get_columns("estore_totals")]
    order_columns = graph.get(ORDERS).metadata["dagster/column_schema"].columns
    assert [c.name for c in order_columns] == delta.read("orders", [c.name for c in order_columns]).column_names


def _days_in(markdown: str) -> set[str]:
    """The UTC days of the timestamps in a preview table."""
    return set(re.findall(r"\b(\d{4}-\d{2}-\d{2})[ T]\d{2}:", markdown))


def _first_record(bucket: BucketResource, day: Window) -> dict:
    manifest = bucket.manifest(window_prefix(READINGS, day))
    name = window_prefix(READINGS, day) + manifest["files"][0]["name"]
    data = bucket.read_bytes(name)
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    return json.loads(data.splitlines()[0])
