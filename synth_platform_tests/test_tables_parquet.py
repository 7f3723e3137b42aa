"""`target: parquet`: daily Parquet files under the bucket with the meter files' manifest and replace protocol,
read back as a hive-partitioned dataset (pyarrow.dataset, polars) with the world's rows, byte-identical when
re-materialized."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import orjson
import polars as pl
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import yaml

from synth_platform.assets.common import LIVE_WINDOW_END_TAG, LIVE_WINDOW_START_TAG
from synth_platform.definitions import MAIN_JOB, build_definitions
from synth_platform.domains import load_platform
from synth_platform.resources import data_dir
from synth_platform.sinks.files import BucketResource
from synth_platform.world.tables.rows import TableWorld
from synth_platform.world.windows import Window
from synth_platform_tests.config_files import edit_yaml

DAYS = ["2026-03-01", "2026-03-02"]
OUR_CHECKS = {"primary_key_unique", "foreign_keys_resolve", "null_ratio"}


def _configure(config_dir):
    edit_yaml(config_dir / "world.yaml", domains=["tables"], start_date="2026-03-01")
    shop = config_dir / "tables" / "shop.yaml"
    spec = yaml.safe_load(shop.read_text())
    for t in spec["tables"]:
        t["target"] = "parquet"
        if t["table_name"] == "orders":
            t["cadence"]["rows_per_minute"] = 2
    shop.write_text(yaml.safe_dump(spec, sort_keys=False))
    return load_platform(config_dir)


def _run(defs, instance, first, last=None, tags=None):
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last or first,
            **(tags or {})}  # fmt: skip
    result = defs.resolve_job_def(MAIN_JOB).execute_in_process(instance=instance, tags=tags)
    assert result.success
    ours = [c for c in result.get_asset_check_evaluations() if c.check_name in OUR_CHECKS]
    assert ours and all(c.passed for c in ours), [(c.check_name, c.metadata) for c in ours if not c.passed]


def _manifests(root):
    return {p.relative_to(root).as_posix(): orjson.loads(p.read_bytes())["files"] for p in root.rglob("_manifest.json")}


def _world_rows(platform, name):
    world = TableWorld(platform.get("tables").catalog, platform.world.seed, platform.world.start_date)
    if world.catalog[name].spec.is_append:
        return [r for d in DAYS for r in world.table(name, Window.for_day(d)).to_pylist()]
    return world.table(name).to_pylist()


def _key(row):
    return next(iter(row.values()))


def test_parquet_tables_round_trip_as_a_hive_dataset(config_dir, instance):
    platform = _configure(config_dir)
    defs = build_definitions(platform)
    _run(defs, instance, DAYS[0], DAYS[1])
    root = data_dir() / "bucket" / "tables"
    assert sorted(p.relative_to(root).as_posix() for p in (root / "orders").rglob("*")) == [
        "orders/dt=2026-03-01", "orders/dt=2026-03-01/_manifest.json", "orders/dt=2026-03-01/part-00000.parquet",
        "orders/dt=2026-03-02", "orders/dt=2026-03-02/_manifest.json", "orders/dt=2026-03-02/part-00000.parquet",
    ]  # fmt: skip
    orders = ds.dataset(root / "orders", format="parquet", partitioning="hive").to_table()
    assert orders.column("dt").to_pylist().count("2026-03-01") == 2 * 1440
    expected = sorted(_world_rows(platform, "orders"), key=_key)
    assert sorted(orders.drop_columns(["dt"]).to_pylist(), key=_key) == expected
    lazy = pl.scan_parquet(str(root / "orders" / "**" / "*.parquet"), hive_partitioning=True).collect()
    assert lazy.height == orders.num_rows and set(lazy.columns) == set(orders.column_names)
    customers = ds.dataset(root / "customers", format="parquet").to_table().to_pylist()
    assert sorted(customers, key=_key) == sorted(_world_rows(platform, "customers"), key=_key)

    manifests = _manifests(root)
    _run(defs, instance, DAYS[1])  # re-materialized: same files, same bytes, same rows
    assert _manifests(root) == manifests
    again = ds.dataset(root / "orders", format="parquet", partitioning="hive").to_table()
    assert sorted(again.to_pylist(), key=_key) == sorted(orders.to_pylist(), key=_key)


def test_live_windows_are_slices_a_day_write_replaces(config_dir, instance):
    platform = _configure(config_dir)
    defs = build_definitions(platform)
    job = defs.resolve_job_def("live_tables__orders")
    minute = Window(datetime(2026, 3, 2, 10, 7, tzinfo=UTC), datetime(2026, 3, 2, 10, 8, tzinfo=UTC))
    tags = {LIVE_WINDOW_START_TAG: minute.start.isoformat(), LIVE_WINDOW_END_TAG: minute.end.isoformat()}
    assert job.execute_in_process(instance=instance, partition_key=DAYS[1], tags=tags).success
    day = data_dir() / "bucket" / "tables" / "orders" / "dt=2026-03-02"
    live = ds.dataset(day.parent, format="parquet", partitioning="hive").to_table()
    assert live.num_rows == 2 and set(live.column("slice").to_pylist()) == {"100700-100800"}
    _run(defs, instance, DAYS[1])
    assert not list(day.glob("slice=*")) and (day / "_manifest.json").exists()
    # the day is written: the same live window again adds nothing
    assert job.execute_in_process(instance=instance, partition_key=DAYS[1], tags=tags).success
    assert not list(day.glob("slice=*"))


def test_parquet_tables_in_gcs(config_dir, instance, monkeypatch, gcs_bucket_url):
    monkeypatch.setenv("SYNTH_BUCKET_URL", gcs_bucket_url)
    platform = _configure(config_dir)
    defs = build_definitions(platform)
    _run(defs, instance, DAYS[0])
    bucket = BucketResource(url=gcs_bucket_url)
    names = sorted(bucket.list("tables/orders/"))
    assert names == ["tables/orders/dt=2026-03-01/_manifest.json", "tables/orders/dt=2026-03-01/part-00000.parquet"]
    manifest = bucket.manifest("tables/orders/dt=2026-03-01/")
    rows = pq.read_table(io.BytesIO(bucket.read_bytes(names[1]))).to_pylist()
    assert manifest["rows"] == len(rows) == 2 * 1440 and manifest["format"] == "parquet"
    assert sorted(rows, key=_key) == sorted(_world_rows(platform, "orders")[: 2 * 1440], key=_key)
    _run(defs, instance, DAYS[0])
    assert bucket.manifest("tables/orders/dt=2026-03-01/")["files"] == manifest["files"]  # same bytes (CRC32C)
