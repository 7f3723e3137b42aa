"""Declarative tables through Dagster into real Delta tables and a real PostgreSQL database."""

from datetime import UTC, datetime

import dagster as dg
import pytest
import yaml

from synth_platform.assets.common import LIVE_WINDOW_END_TAG, LIVE_WINDOW_START_TAG
from synth_platform.definitions import build_definitions
from synth_platform.domains import load_platform
from synth_platform.resources import data_dir
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.delta import DeltaResource
from synth_platform.sinks.files import BucketResource
from synth_platform.streams.tables import expire
from synth_platform.world.tables.rows import TableWorld
from synth_platform.world.windows import Window
from synth_platform_tests.config_files import edit_yaml
from synth_platform_tests.runs import run_days

DAYS = ["2026-03-01", "2026-03-02", "2026-03-03"]
TABLES = ["customers", "products", "orders"]
OUR_CHECKS = {"primary_key_unique", "foreign_keys_resolve", "null_ratio"}


@pytest.fixture(autouse=True)
def _embedded_delta(monkeypatch):
    monkeypatch.delenv("SYNTH_DELTA_ROOT", raising=False)  # Delta tables under each test's SYNTH_DATA_DIR


def configure(config_dir, monkeypatch, target: str, database_url: str | None = None, orders_target: str | None = None):
    edit_yaml(config_dir / "world.yaml", domains=["tables"], start_date="2026-03-01")
    shop = config_dir / "tables" / "shop.yaml"
    spec = yaml.safe_load(shop.read_text())
    for t in spec["tables"]:
        t["target"] = target
        if t["table_name"] == "orders":
            t["cadence"]["rows_per_minute"] = 2
            t["target"] = orders_target or target
    shop.write_text(yaml.safe_dump(spec, sort_keys=False))
    if database_url:
        monkeypatch.setenv("SYNTH_DATABASE_URL", database_url)


def run(defs, instance, first: str, last: str | None = None, tags: dict | None = None):
    """A run over first..last that succeeds with every table check passing."""
    result = run_days(defs, instance, first, last, tags=tags)
    assert result.success
    ours = [c for c in result.get_asset_check_evaluations() if c.check_name in OUR_CHECKS]
    assert ours and all(c.passed for c in ours), [(c.asset_key, c.check_name, c.metadata) for c in ours if not c.passed]
    return result


def _normal(row: dict) -> dict:
    return {k: v.astimezone(UTC) if isinstance(v, datetime) else v for k, v in row.items()}


def snapshot(platform, target_of) -> dict[str, list[dict]]:
    """Every table's rows as the target holds them, ordered by primary key."""
    out = {}
    for name in TABLES:
        table = platform.get("tables").catalog[name]
        key = table.spec.primary_key[0]
        cadence = table.spec.cadence
        data = target_of(name, [*table.columns, *([cadence.time_column] if cadence else [])])
        out[name] = sorted((_normal(r) for r in data), key=lambda r: r[key])
    return out


def delta_rows(name: str, columns: list[str]) -> list[dict]:
    return DeltaResource(root=str(data_dir() / "delta")).read(name, columns).to_pylist()


def expected(platform, days: list[str]) -> dict[str, list[dict]]:
    world = TableWorld(platform.get("tables").catalog, platform.world.seed, platform.world.start_date)
    out = {}
    for name in TABLES:
        key = world.catalog[name].spec.primary_key[0]
        if world.catalog[name].spec.is_append:
            rows = [r for d in days for r in world.table(name, Window.for_day(d)).to_pylist()]
        else:
            rows = world.table(name).to_pylist()
        out[name] = sorted((_normal(r) for r in rows), key=lambda r: r[key])
    return out


def test_rematerializing_into_delta_is_idempotent_and_equals_the_world(config_dir, monkeypatch, instance):
    configure(config_dir, monkeypatch, "delta")
    platform = load_platform(config_dir)
    defs = build_definitions(platform)
    run(defs, instance, DAYS[0], DAYS[1])
    before = snapshot(platform, delta_rows)
    run(defs, instance, DAYS[1])
    assert snapshot(platform, delta_rows) == before
    assert before == expected(platform, DAYS[:2])
    assert len(before["orders"]) == 2 * 1440 * 2


def test_rematerializing_into_postgres_is_idempotent(config_dir, monkeypatch, instance, postgres_url):
    configure(config_dir, monkeypatch, "database", postgres_url)
    platform = load_platform(config_dir)
    defs = build_definitions(platform)
    db = DatabaseResource(url=postgres_url)

    def pg_rows(name: str, columns: list[str]) -> list[dict]:
        return [dict(zip(columns, r, strict=True)) for r in db.query(f"SELECT {', '.join(columns)} FROM {name}")]

    run(defs, instance, DAYS[0], DAYS[1])
    before = snapshot(platform, pg_rows)
    run(defs, instance, DAYS[1])
    run(defs, instance, DAYS[0])
    assert snapshot(platform, pg_rows) == before == expected(platform, DAYS[:2])


def test_range_run_equals_single_days_and_live_windows(config_dir, monkeypatch, instance, tmp_path):
    configure(config_dir, monkeypatch, "delta", orders_target="delta")
    platform = load_platform(config_dir)
    monkeypatch.setenv("SYNTH_DATA_DIR", str(tmp_path / "ranged"))
    run(build_definitions(platform), instance, DAYS[0], DAYS[-1])
    ranged = snapshot(platform, delta_rows)
    monkeypatch.setenv("SYNTH_DATA_DIR", str(tmp_path / "single"))
    single_defs = build_definitions(platform)
    for day in DAYS:
        run(single_defs, instance, day)
    assert snapshot(platform, delta_rows) == ranged
    # a live minute window rewrites only itself, with the same rows
    minute = Window(datetime(2026, 3, 2, 10, 7, tzinfo=UTC), datetime(2026, 3, 2, 10, 8, tzinfo=UTC))
    live = {LIVE_WINDOW_START_TAG: minute.start.isoformat(), LIVE_WINDOW_END_TAG: minute.end.isoformat()}
    run(single_defs, instance, DAYS[1], tags=live)
    assert snapshot(platform, delta_rows) == ranged


def test_orders_declare_live_cadence_and_parents(config_dir, monkeypatch):
    configure(config_dir, monkeypatch, "delta")
    defs = build_definitions(load_platform(config_dir))
    orders = defs.resolve_assets_def(dg.AssetKey(["tables", "orders"]))
    spec = orders.specs_by_key[dg.AssetKey(["tables", "orders"])]
    assert spec.metadata["synth/live_cadence_seconds"] == 60
    assert {d.asset_key for d in spec.deps} == {
        dg.AssetKey(["tables", "customers"]),
        dg.AssetKey(["tables", "products"]),
    }
    assert orders.partitions_def is not None
    assert defs.resolve_assets_def(dg.AssetKey(["tables", "customers"])).partitions_def is None


def test_retention_deletes_rows_before_the_cutoff_from_delta(config_dir, monkeypatch, instance):
    configure(config_dir, monkeypatch, "delta")
    platform = load_platform(config_dir)
    run(build_definitions(platform), instance, DAYS[0], DAYS[1])
    delta = DeltaResource(root=str(data_dir() / "delta"))
    orders = platform.get("tables").catalog["orders"]
    cutoff = Window.for_day(DAYS[1]).start
    database = DatabaseResource(url=f"sqlite:///{data_dir() / 'x.db'}")
    deleted = expire(orders, database, delta, BucketResource(url=str(data_dir() / "bucket")), cutoff)
    assert list(deleted.values()) == [2 * 1440]
    times = delta.read("orders", ["event_time"]).column(0).to_pylist()
    assert len(times) == 2 * 1440 and min(times) == cutoff


def test_delta_roots_in_buckets_keep_their_scheme():
    assert DeltaResource(root="gs://bucket/synth/").uri("orders") == "gs://bucket/synth/orders"
    assert DeltaResource(root="s3://bucket").uri("orders") == "s3://bucket/orders"
