"""The table-faker streaming server's documented examples load unchanged and stream; its defaults hold here
(cadence without update_policy appends, rows_per_minute 60) and copy_from_fk takes either argument order."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import dagster as dg
import pytest

from synth_platform.assets.common import LIVE_WINDOW_END_TAG, LIVE_WINDOW_START_TAG
from synth_platform.definitions import build_definitions
from synth_platform.domains import load_platform
from synth_platform.resources import data_dir
from synth_platform.sinks.delta import DeltaResource, window_filter
from synth_platform.specs.loader import SpecError
from synth_platform.world.tables.rows import TableWorld
from synth_platform.world.windows import Window
from synth_platform_tests.config_files import edit_yaml
from synth_platform_tests.runs import checks_of
from synth_platform_tests.tables_helpers import domain, table, world

QUICK_START = """\
version: 1
config:
  locale: en_US
  seed: 42
tables:
  - table_name: person
    row_count: 100
    update_policy: append
    cadence:
      rows_per_minute: 60
      enabled: true
    columns:
      - column_name: id
        data: row_id
        is_primary_key: true
      - column_name: email
        data: fake.email()
"""
FK_WORKFLOW = """\
version: 1
config:
  locale: en_US
  seed: 42
tables:
  - table_name: customers
    update_policy: append
    cadence:
      rows_per_minute: 10
    columns:
      - {column_name: id, data: row_id, is_primary_key: true}
      - {column_name: email, data: 'fake.email()'}
  - table_name: orders
    update_policy: append
    cadence:
      rows_per_minute: 50  # More orders than customers
    columns:
      - {column_name: order_id, data: row_id, is_primary_key: true}
      - {column_name: customer_id, data: 'foreign_key("customers", "id")'}
      - {column_name: customer_email, data: 'copy_from_fk("customer_id", "customers", "email")'}
"""
MINUTE = Window(datetime(2026, 3, 2, 10, 7, tzinfo=UTC), datetime(2026, 3, 2, 10, 8, tzinfo=UTC))


@pytest.fixture
def server_config(config_dir):
    edit_yaml(config_dir / "world.yaml", domains=["tables"], start_date="2026-03-01")
    shutil.rmtree(config_dir / "tables")
    (config_dir / "tables").mkdir()
    (config_dir / "tables" / "quick_start.yaml").write_text(QUICK_START)
    (config_dir / "tables" / "fk_workflow.yaml").write_text(FK_WORKFLOW)
    return config_dir


def test_documented_examples_load_and_stream_a_minute(server_config, instance, monkeypatch):
    monkeypatch.delenv("SYNTH_DELTA_ROOT", raising=False)
    platform = load_platform(server_config)
    catalog = platform.get("tables").catalog
    assert {n: (t.spec.update_policy, t.spec.cadence.rows_per_minute) for n, t in catalog.tables.items()} == {
        "person": ("append", 60), "customers": ("append", 10), "orders": ("append", 50)
    }  # fmt: skip
    defs = build_definitions(platform)
    tags = {LIVE_WINDOW_START_TAG: MINUTE.start.isoformat(), LIVE_WINDOW_END_TAG: MINUTE.end.isoformat()}
    results = {}
    for name in catalog.tables:
        job = defs.resolve_job_def(f"live_tables__{name}")
        results[name] = job.execute_in_process(instance=instance, partition_key="2026-03-02", tags=tags)
        assert results[name].success
    # Only this minute was written, so orders reference customers of earlier minutes that the target lacks: the
    # live batch reports them as a warning and the stream goes on.
    fk = checks_of(results["orders"])["foreign_keys_resolve"]
    assert not fk.passed and fk.severity == dg.AssetCheckSeverity.WARN
    assert sum(fk.metadata["orphans"].value.values()) > 0
    delta = DeltaResource(root=str(data_dir() / "delta"))
    rows = {n: delta.read(n, None, window_filter("event_time", MINUTE)).to_pylist() for n in catalog.tables}
    assert {n: len(r) for n, r in rows.items()} == {"person": 60, "customers": 10, "orders": 50}
    tables = TableWorld(catalog, platform.world.seed, platform.world.start_date)
    parents = tables.column("customers", "email", [r["customer_id"] for r in rows["orders"]]).tolist()
    assert [r["customer_email"] for r in rows["orders"]] == parents
    assert all(r["customer_email"] and "@" in r["customer_email"] for r in rows["orders"])


def _shop(copy: str, parent_name: str = "customers") -> list[dict]:
    parent = table(parent_name, {"id": {"data": "row_id", "is_primary_key": True}, "email": "fake.email()"}, rows=20)
    child = table(
        "orders",
        {"id": {"data": "row_id", "is_primary_key": True}, "customer_id": f"foreign_key('{parent_name}', 'id')",
         "mail": copy},
        rows=50,
    )  # fmt: skip
    return [parent, child]


@pytest.mark.parametrize(
    "copy",
    [
        "copy_from_fk('customers', 'customer_id', 'email')",  # table-faker 1.11
        "copy_from_fk('customer_id', 'customers', 'email')",  # the streaming server
        "copy_from_fk(fk_column='customer_id', parent_table='customers', attribute='email')",
    ],
)
def test_copy_from_fk_takes_either_order(tmp_path, copy):
    w = world(tmp_path, _shop(copy))
    orders = w.table("orders").to_pydict()
    assert orders["mail"] == w.column("customers", "email", orders["customer_id"]).tolist()


def test_copy_from_fk_with_names_fitting_both_orders_is_an_error(tmp_path):
    tables = _shop("copy_from_fk('customer_id', 'customer_id', 'email')", parent_name="customer_id")
    tables[1]["columns"][1]["data"] = "foreign_key('customer_id', 'id')"
    with pytest.raises(SpecError, match=r"'customer_id' and 'customer_id' are each a table and a column.*name them"):
        domain(tmp_path, tables)


def test_cadence_without_policy_appends_and_neither_is_static(tmp_path):
    cols = {"id": {"data": "row_id", "is_primary_key": True}}
    d = domain(tmp_path, [table("a", cols, cadence={}), table("s", cols)])
    assert d.catalog["a"].spec.update_policy == "append" and d.catalog["a"].spec.cadence.rows_per_minute == 60
    assert d.catalog["s"].spec.update_policy == "disabled" and d.catalog["s"].spec.cadence is None


@pytest.mark.parametrize("policy", ["disabled", "replace"])
def test_cadence_on_a_static_table_fails_at_load_naming_it(tmp_path, policy):
    cols = {"id": {"data": "row_id", "is_primary_key": True}}
    with pytest.raises(SpecError, match=rf"tables\.0: table 'lookup' has a cadence but update_policy {policy}"):
        domain(tmp_path, [table("lookup", cols, update_policy=policy, cadence={"rows_per_minute": 5})])
