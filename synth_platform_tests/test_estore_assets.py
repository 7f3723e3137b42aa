"""estore_events and estore_totals through Dagster: into the Tinybird test server, the outbox and real databases."""

import shutil
from collections import Counter
from datetime import UTC, datetime

import dagster as dg
import pytest

from synth_platform.assets.common import LIVE_WINDOW_END_TAG, LIVE_WINDOW_START_TAG
from synth_platform.definitions import build_definitions
from synth_platform.domains import load_platform
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.tinybird import TinybirdResource, to_ndjson
from synth_platform.streams.estore import delete_expired
from synth_platform.world.estore import action_counts, distinct, duplicates, events
from synth_platform.world.windows import Window
from synth_platform_tests.config_files import edit_yaml
from synth_platform_tests.runs import checks_of, run_days
from synth_platform_tests.tinybird_server import DEFINITIONS, TinybirdServer

DAYS = ["2026-03-02", "2026-03-03"]
DS = "estore_events"


def estore_defs(config_dir, monkeypatch, database_url: str, server: TinybirdServer | None) -> dg.Definitions:
    edit_yaml(config_dir / "world.yaml", domains=["estore"], start_date="2026-03-01")
    edit_yaml(config_dir / "estore.yaml", **{"catalog.customers": 80, "catalog.products": 25})
    monkeypatch.setenv("SYNTH_DATABASE_URL", database_url)
    if server is not None:
        monkeypatch.setenv("TINYBIRD_API_URL", server.url)
        monkeypatch.setenv("TINYBIRD_TOKEN", server.token)
    else:
        monkeypatch.delenv("TINYBIRD_TOKEN", raising=False)
    return build_definitions(load_platform(config_dir))


def world(config_dir, day: str):
    return events_in(config_dir, Window.for_day(day))


def events_in(config_dir, window: Window):
    platform = load_platform(config_dir)
    return events(platform.get("estore"), platform.world.seed, window)


def server_rows(server: TinybirdServer) -> Counter:
    return Counter(r["event_id"] for r in server.rows(DS))


def test_history_replaces_days_through_the_data_sources_api(config_dir, monkeypatch, sqlite_url, instance,
                                                           tinybird_server):  # fmt: skip
    defs = estore_defs(config_dir, monkeypatch, sqlite_url, tinybird_server)
    result = run_days(defs, instance, *DAYS)
    assert result.success
    expected = [world(config_dir, d) for d in DAYS]
    assert server_rows(tinybird_server) == Counter(e for t in expected for e in t.column("event_id").to_pylist())
    imports = [r for r in tinybird_server.requests if r.path == "/v0/datasources"]
    assert [r.params["mode"] for r in imports] == ["replace", "replace"]  # one import per day

    # the run's result holds the range totals; each day's own figures follow as that partition's materialization
    logged = [m.metadata for m in result.asset_materializations_for_node(DS)]
    ranged, per_day = [m for m in logged if "range" in m], [m for m in logged if "range" not in m]
    assert {m["range_rows"].value for m in ranged} == {sum(t.num_rows for t in expected)}
    assert sum(duplicates(t) for t in expected) > 0
    for day, meta, day_events in zip(DAYS, per_day, expected, strict=True):
        counts = Counter(action_counts(distinct(day_events)))
        assert meta["window"].value == str(Window.for_day(day))
        assert {a: meta[f"events_{a}"].value for a in counts} == dict(counts)
        assert meta["duplicates_injected"].value == duplicates(day_events)
        assert meta["requests"].value == 1 and meta["quarantined_rows"].value == 0
        assert meta["successful_rows"].value == meta["rows"].value == day_events.num_rows
        assert meta["bytes"].value == len(to_ndjson(day_events))
        assert tinybird_server.token not in str(meta)
    checks = checks_of(result)
    assert {n: c.passed for n, c in checks.items()} == {"no_quarantined_rows": True, "action_mix": True,
                                                        "state_rules": True}  # fmt: skip
    assert checks["state_rules"].metadata["delivered_distinct_events"].value == sum(
        distinct(t).num_rows for t in expected
    )

    # re-running a day replaces it: still every event exactly as often as the world emits it
    assert run_days(defs, instance, DAYS[1], DAYS[1]).success
    assert server_rows(tinybird_server) == Counter(e for t in expected for e in t.column("event_id").to_pylist())


def test_live_windows_use_the_events_api_and_the_close_leaves_no_duplicates(config_dir, monkeypatch, sqlite_url,
                                                                           instance, tinybird_server):  # fmt: skip
    defs = estore_defs(config_dir, monkeypatch, sqlite_url, tinybird_server)
    live = defs.resolve_job_def("live_estore_events")
    day = Window.for_day(DAYS[0])
    windows = list(day.split(3600))[8:11]
    for w in [*windows, windows[0]]:  # the first window twice, as a retried live run would
        tags = {LIVE_WINDOW_START_TAG: w.start.isoformat(), LIVE_WINDOW_END_TAG: w.end.isoformat()}
        assert live.execute_in_process(instance=instance, partition_key=DAYS[0], tags=tags).success
    posts = [r for r in tinybird_server.requests if r.path == "/v0/events"]
    platform = load_platform(config_dir)
    spec, seed = platform.get("estore"), platform.world.seed
    # each tagged hour is a batch of one-minute windows, each sent on its own (an empty minute sends nothing)
    sent = [m for w in [*windows, windows[0]] for m in w.split(spec.micro_batch_seconds) if events(spec, seed, m)]
    assert len(posts) == len(sent) and all(r.headers["content-encoding"] == "gzip" for r in posts)
    first = events(platform.get("estore"), platform.world.seed, windows[0])
    assert (
        sum(server_rows(tinybird_server).values())
        == sum(r.rows for r in posts)
        == first.num_rows + sum(events(platform.get("estore"), platform.world.seed, w).num_rows for w in windows)
    )

    assert run_days(defs, instance, DAYS[0], DAYS[0]).success  # the daily close of the day
    assert server_rows(tinybird_server) == Counter(world(config_dir, DAYS[0]).column("event_id").to_pylist())


def test_quarantined_rows_fail_the_blocking_check(config_dir, monkeypatch, sqlite_url, instance, tmp_path):
    schema = tmp_path / "tinybird"
    shutil.copytree(DEFINITIONS, schema)
    source = schema / "estore_events.datasource"
    source.write_text(source.read_text().replace("`quantity` Int32", "`quantity` String"))  # a schema drift
    with TinybirdServer(definitions=schema) as server:
        defs = estore_defs(config_dir, monkeypatch, sqlite_url, server)
        result = run_days(defs, instance, DAYS[0], DAYS[0], raise_on_error=False)
        check = checks_of(result)["no_quarantined_rows"]
        assert not check.passed and check.metadata["quarantined_rows"].value == len(server.quarantine(DS)) > 0
        meta = result.asset_materializations_for_node(DS)[0].metadata
        assert meta["quarantined_rows"].value == check.metadata["quarantined_rows"].value


def test_state_rules_check_reads_what_was_delivered(config_dir, monkeypatch, sqlite_url, instance, tinybird_server):
    defs = estore_defs(config_dir, monkeypatch, sqlite_url, tinybird_server)
    live = defs.resolve_job_def("live_estore_events")
    batch = list(Window.for_day(DAYS[0]).split(3600))[9]  # the second hour of the 08:00-10:00 journey slot

    def deliver() -> dg.ExecuteInProcessResult:
        tags = {LIVE_WINDOW_START_TAG: batch.start.isoformat(), LIVE_WINDOW_END_TAG: batch.end.isoformat()}
        return live.execute_in_process(instance=instance, partition_key=DAYS[0], tags=tags, raise_on_error=False)

    # the stream starts mid-slot: the journeys' earlier events were never delivered, and that breaks no rule
    check = checks_of(deliver())["state_rules"]
    assert check.passed and check.metadata["scope"].value == "window"
    assert check.metadata["delivered_distinct_events"].value == distinct(events_in(config_dir, batch)).num_rows > 0
    # a purchase of a product the customer never put in the cart, found in the target when the batch is retried
    row = dict(tinybird_server.rows(DS)[0])
    bogus = dict(row, event_id="f" * 32, customer_id=10_000, action="purchase")
    tinybird_server.datasources[DS].rows.append(bogus)
    result = deliver()
    check = checks_of(result)["state_rules"]
    assert not check.passed and check.metadata["violations"].value == 1
    assert "customer 10000" in check.metadata["examples"].value
    assert not result.success  # blocking
    assert run_days(defs, instance, DAYS[0], DAYS[0]).success  # replacing the day removes it


def test_without_a_token_history_lands_in_the_outbox_and_passes_the_checks(config_dir, monkeypatch, sqlite_url,
                                                                           instance, _data_dir):  # fmt: skip
    defs = estore_defs(config_dir, monkeypatch, sqlite_url, None)
    result = run_days(defs, instance, *DAYS)
    assert result.success and all(c.passed for c in checks_of(result).values())
    outbox = TinybirdResource(outbox_dir=str(_data_dir / "tinybird_outbox"))
    for day in DAYS:
        assert outbox.outbox_ndjson(DS, Window.for_day(day)) == to_ndjson(world(config_dir, day))
    meta = result.asset_materializations_for_node(DS)[-1].metadata  # the last day's own
    assert meta["delivery"].value == "outbox" and "tinybird_outbox" in meta["target"].value

    platform = load_platform(config_dir)
    removed = delete_expired(
        platform.get("estore"), outbox, DatabaseResource(url=sqlite_url), datetime(2026, 3, 3, tzinfo=UTC)
    )
    assert list(removed.values()) == [1, distinct(world(config_dir, DAYS[0])).num_rows]


def test_totals_in_the_database_match_the_events(config_dir, monkeypatch, database_url, instance, tinybird_server):
    defs = estore_defs(config_dir, monkeypatch, database_url, tinybird_server)
    assert run_days(defs, instance, *DAYS).success
    db = DatabaseResource(url=database_url)
    column = {"view": "views", "cart": "carts", "uncart": "uncarts", "purchase": "orders", "return": "returns"}
    from_events: Counter = Counter()
    for ts, action in db.query("SELECT timestamp, action FROM estore_events"):
        ts = ts if isinstance(ts, datetime) else datetime.fromisoformat(ts)
        from_events[(ts.strftime("%Y-%m-%d %H"), column[action])] += 1
    assert sum(from_events.values()) == sum(distinct(world(config_dir, d)).num_rows for d in DAYS)
    from_totals: Counter = Counter()
    for row in db.query("SELECT interval_start, views, carts, uncarts, orders, returns FROM estore_totals"):
        start = row[0] if isinstance(row[0], datetime) else datetime.fromisoformat(row[0])
        for name, value in zip(column.values(), row[1:], strict=True):
            if value:
                from_totals[(start.strftime("%Y-%m-%d %H"), name)] += value
    assert from_totals == from_events


@pytest.mark.parametrize("key", ["estore_events", "estore_totals"])
def test_streams_declare_their_live_cadence(config_dir, monkeypatch, sqlite_url, key):
    defs = estore_defs(config_dir, monkeypatch, sqlite_url, None)
    node = defs.resolve_asset_graph().get(dg.AssetKey(key))
    assert node.metadata["synth/live_cadence_seconds"] == 60
