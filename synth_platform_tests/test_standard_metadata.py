"""Dagster's standard metadata against the real targets: the analytics assets' dagster/column_schema is the
columns their tables and views hold, dagster/table_name names them, and dagster/uri addresses a Tinybird data
source (the API's data source endpoint, never the token) and a Delta table (never a credential)."""

import dagster as dg
import deltalake
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from synth_platform.definitions import MAIN_JOB, build_definitions
from synth_platform.domains import load_platform
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.delta import DeltaResource
from synth_platform.sinks.tinybird import TinybirdResource
from synth_platform.streams.tables import TableTarget
from synth_platform.world.tables.rows import TableWorld
from synth_platform.world.windows import Window
from synth_platform_tests.config_files import edit_yaml
from synth_platform_tests.runs import run_days

DAY = "2026-03-01"


def latest(instance: dg.DagsterInstance, name: str) -> dict:
    return instance.get_latest_materialization_event(dg.AssetKey(name)).asset_materialization.metadata


def test_analytics_assets_describe_the_columns_their_tables_hold(config_dir, sqlite_url, monkeypatch, instance):
    edit_yaml(config_dir / "world.yaml", domains=["power", "meters", "analytics"], start_date="2026-02-01")
    edit_yaml(config_dir / "power.yaml", **{"devices.count": 6, "usage.interval_minutes": 60})
    edit_yaml(config_dir / "meters.yaml", **{"fleet.count": 4})
    monkeypatch.setenv("SYNTH_DATABASE_URL", sqlite_url)
    defs = build_definitions(load_platform(config_dir))
    assert run_days(defs, instance, DAY).success
    inspector = sa.inspect(DatabaseResource(url=sqlite_url).engine)
    graph = defs.resolve_asset_graph()
    # asset -> the table or view whose columns it declares
    for asset, table in {"meter_minutes": "meter_minutes", "top_devices": "top_devices",
                         "device_histograms": "device_histograms"}.items():  # fmt: skip
        schema = graph.get(dg.AssetKey(asset)).metadata["dagster/column_schema"]
        assert [c.name for c in schema.columns] == [c["name"] for c in inspector.get_columns(table)], asset
        assert all(c.description for c in schema.columns), asset
        assert latest(instance, asset)["dagster/table_name"].value == table  # SQLite: the bare name


def test_a_tinybird_data_source_is_addressed_without_its_token(
    config_dir, sqlite_url, monkeypatch, instance, tinybird_server
):
    edit_yaml(config_dir / "world.yaml", domains=["power", "sensors"], start_date="2026-02-01")
    edit_yaml(config_dir / "power.yaml", **{"devices.count": 4})
    edit_yaml(config_dir / "sensors.yaml", interval_seconds=600, live_window_seconds=600)
    monkeypatch.setenv("SYNTH_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("TINYBIRD_API_URL", tinybird_server.url)
    monkeypatch.setenv("TINYBIRD_TOKEN", tinybird_server.token)
    defs = build_definitions(load_platform(config_dir))
    assert defs.resolve_job_def(MAIN_JOB).execute_in_process(instance=instance, partition_key=DAY).success
    uri = latest(instance, "device_telemetry")["dagster/uri"].value
    assert uri == f"{tinybird_server.url}/v0/datasources/device_readings"
    assert tinybird_server.token not in str(latest(instance, "device_telemetry"))
    answer = httpx.get(uri, headers={"Authorization": f"Bearer {tinybird_server.token}"}).json()
    rows = len(tinybird_server.rows("device_readings"))
    assert answer["name"] == "device_readings" and answer["stats"]["row_count"] == rows > 0


def test_an_outbox_data_source_is_its_folder(tmp_path):
    outbox = TinybirdResource(api_url="https://api.tinybird.co", token="", outbox_dir=str(tmp_path / "outbox"))
    assert outbox.public_uri("device_readings") == (tmp_path / "outbox" / "device_readings").as_uri()


def test_a_delta_table_uri_opens_the_table_and_holds_no_credential(tmp_path):
    delta = DeltaResource(root=str(tmp_path / "delta"))
    delta.replace("orders", pa.table({"id": [1, 2, 3]}))
    assert deltalake.DeltaTable(delta.public_uri("orders")).to_pyarrow_table()["id"].to_pylist() == [1, 2, 3]
    signed = DeltaResource(root="s3://key:secret@bucket/synth")
    assert signed.public_uri("orders") == "s3://bucket/synth/orders"


def test_a_delta_tables_target_uri_is_the_table_it_writes(config_dir, sqlite_url, monkeypatch, instance):
    monkeypatch.delenv("SYNTH_DELTA_ROOT", raising=False)
    edit_yaml(config_dir / "world.yaml", domains=["tables"], start_date="2026-03-01")
    monkeypatch.setenv("SYNTH_DATABASE_URL", sqlite_url)
    platform = load_platform(config_dir)
    defs = build_definitions(platform)
    assert run_days(defs, instance, DAY).success
    domain, res = platform.get("tables"), defs.resources
    world = TableWorld(domain.catalog, platform.world.seed, platform.world.start_date)  # as assets/tables.py builds it
    on_delta = 0
    for name in ("customers", "products", "orders"):  # config/tables/shop.yaml
        table = domain.catalog.tables[name]
        target = TableTarget.of(table, world, res["database"], res["delta"], res["bucket"])
        if not target.on_delta:
            assert target.uri() is None  # a database table: dagster/table_name names it
            continue
        on_delta += 1
        rows = deltalake.DeltaTable(target.uri()).to_pyarrow_dataset().count_rows()
        window = Window.for_day(DAY) if table.spec.is_append else None
        assert rows == len(world.row_ids(name, window)) > 0, name
    assert on_delta


def test_the_fleet_and_the_sensor_readings_describe_the_columns_they_write(config_dir, instance, _data_dir):
    edit_yaml(config_dir / "world.yaml", domains=["power", "meters", "sensors"], start_date="2026-02-01")
    edit_yaml(config_dir / "power.yaml", **{"devices.count": 4})
    edit_yaml(config_dir / "meters.yaml", **{"fleet.count": 4, "output.format": "parquet"})
    edit_yaml(config_dir / "sensors.yaml", interval_seconds=600, live_window_seconds=600)
    defs = build_definitions(load_platform(config_dir))
    assert run_days(defs, instance, DAY).success
    graph = defs.resolve_asset_graph()
    (fleet_file,) = (_data_dir / "bucket" / "meter_fleet").glob("*.parquet")
    fleet = graph.get(dg.AssetKey("meter_fleet")).metadata["dagster/column_schema"]
    assert [(c.name, c.type) for c in fleet.columns] == [(f.name, str(f.type)) for f in pq.read_schema(fleet_file)]
    sensors = graph.get(dg.AssetKey("device_telemetry")).metadata["dagster/column_schema"]
    engine = DatabaseResource(url=f"sqlite:///{_data_dir / 'synth.db'}").engine
    assert [c.name for c in sensors.columns] == [c["name"] for c in sa.inspect(engine).get_columns("device_telemetry")]
    assert all(c.description for c in [*fleet.columns, *sensors.columns])
