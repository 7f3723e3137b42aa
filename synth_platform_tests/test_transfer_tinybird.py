"""A Tinybird pipe pulled into SQLite, PostgreSQL and MariaDB through the Tinybird test server: several pages, a
watermark that survives a restart, upserts without duplicates, retries on 429/5xx, no silent truncation."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import orjson
import pytest
import sqlalchemy as sa

from synth_platform.analytics import transfer
from synth_platform.definitions import build_definitions
from synth_platform.domains import load_platform
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.tinybird import TinybirdResource
from synth_platform.specs.analytics import TransferSpec
from synth_platform_tests.config_files import edit_yaml

T0 = datetime(2026, 3, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 2, tzinfo=UTC)
PIPE = "estore_events_range"


def events(first: int, count: int, price: float = 9.5) -> list[dict]:
    # two events per second: equal timestamps make the pipe's (timestamp, event_id) order matter
    return [
        {"event_id": f"e{i:06d}", "timestamp": (T0 + timedelta(seconds=i // 2)).isoformat().replace("+00:00", "Z"),
         "customer_id": i % 7, "product_id": i % 11, "action": "view", "price": price, "quantity": 1,
         "session_id": f"s{i // 5}"}
        for i in range(first, first + count)
    ]  # fmt: skip


def send(tb: TinybirdResource, rows: list[dict]) -> None:
    tb.import_ndjson("estore_events", b"".join(orjson.dumps(r) + b"\n" for r in rows))


def client(server, tmp_path: Path) -> TinybirdResource:
    return TinybirdResource(api_url=server.url, token=server.token, outbox_dir=str(tmp_path / "outbox"),
                            backoff_seconds=0.01)  # fmt: skip


def table_rows(db: DatabaseResource, table: str = "estore_events_pulled") -> dict[str, tuple]:
    rows = db.query(f"SELECT event_id, price, customer_id FROM {table} ORDER BY event_id")
    assert len(rows) == len({r[0] for r in rows})
    return {r[0]: (float(r[1]), int(r[2])) for r in rows}


def pipe_starts(server) -> list[str]:
    return [r.params["start"] for r in server.requests if r.path.endswith(f"{PIPE}.json") and r.params["offset"] == "0"]


def test_pull_pages_upserts_and_resumes(tinybird_server, database_url, tmp_path) -> None:
    tb, db = client(tinybird_server, tmp_path), DatabaseResource(url=database_url)
    spec = TransferSpec(page_size=50, lookback_seconds=10)
    send(tb, events(0, 230))
    first = transfer.pull(tb, db, spec, None, now=NOW)
    assert (first.rows, first.pages) == (230, 5)
    assert first.watermark == T0 + timedelta(seconds=114)
    assert table_rows(db) == {e["event_id"]: (9.5, e["customer_id"]) for e in events(0, 230)}

    # new events, and a correction of one already pulled but inside the lookback (ReplacingMergeTree keeps the last)
    send(tb, events(230, 120) + events(225, 1, price=1.25))
    tinybird_server.fail_next(1, 503)
    tinybird_server.fail_next(1, 429, retry_after=0.01)
    second = transfer.pull(tb, db, spec, first.watermark, now=NOW)
    assert pipe_starts(tinybird_server)[-1] == "2026-03-01T00:01:44.000000Z"  # watermark - lookback
    assert second.rows == 120 + 22  # the new rows and the 22 rows (11 s) at/after watermark - lookback, not everything
    rows = table_rows(db)
    assert len(rows) == 350 and rows["e000225"] == (1.25, 225 % 7)
    assert second.watermark == T0 + timedelta(seconds=174)

    again = transfer.pull(tb, db, spec, second.watermark, now=NOW)  # nothing new: only the lookback is re-read
    assert again.watermark == second.watermark and len(table_rows(db)) == 350


def test_a_capped_endpoint_fails_instead_of_truncating(tinybird_server, sqlite_url, tmp_path, monkeypatch) -> None:
    tb, db = client(tinybird_server, tmp_path), DatabaseResource(url=sqlite_url)
    send(tb, events(0, 120))
    answer = tinybird_server._pipe

    def capped(name: str, params: dict[str, str]) -> dict:  # an endpoint that never answers more than 40 rows
        return answer(name, {**params, "limit": str(min(int(params["limit"]), 40))})

    monkeypatch.setattr(tinybird_server, "_pipe", capped)
    with pytest.raises(transfer.TransferError, match=r"answered 40 rows at offset 0 \(limit 50\) but says at least "
                       r"120 rows match: it caps its answers; lower transfer.page_size"):  # fmt: skip
        transfer.pull(tb, db, TransferSpec(page_size=50), None, now=NOW)
    assert transfer.pull(tb, db, TransferSpec(page_size=40), None, now=NOW).rows == 120


def test_transfer_asset_keeps_its_watermark_across_a_restart(tinybird_server, config_dir, sqlite_url, tmp_path,
                                                             monkeypatch) -> None:  # fmt: skip
    edit_yaml(config_dir / "world.yaml", domains=["power", "analytics"], start_date="2026-02-01")
    edit_yaml(config_dir / "analytics.yaml", **{"transfer.pipes": [{"page_size": 64, "lookback_seconds": 0}]})
    monkeypatch.setenv("SYNTH_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("TINYBIRD_API_URL", tinybird_server.url)
    monkeypatch.setenv("TINYBIRD_TOKEN", tinybird_server.token)
    tb, db = client(tinybird_server, tmp_path), DatabaseResource(url=sqlite_url)
    home = tmp_path / "dagster_home"
    home.mkdir()
    key = dg.AssetKey("estore_events_pulled")

    def materialize() -> dict:
        with dg.instance_for_test(temp_dir=str(home)) as instance:  # a new process would see the same storage
            defs = build_definitions(load_platform(config_dir))
            job = defs.resolve_implicit_global_asset_job_def()
            result = job.execute_in_process(instance=instance, asset_selection=[key])
            assert result.success
            return result.asset_materializations_for_node("estore_events_pulled")[0].metadata

    send(tb, events(0, 200))
    first = materialize()
    assert (first["rows"].value, first["pages"].value, first["table_rows"].value) == (200, 4, 200)
    assert first["watermark"].value == (T0 + timedelta(seconds=99)).isoformat()

    send(tb, events(200, 100))
    second = materialize()  # restarted: new instance object, new definitions
    assert pipe_starts(tinybird_server)[-1] == "2026-03-01T00:01:39.000000Z"
    assert second["rows"].value == 100 + 2  # the two events at the watermark second are re-read, not duplicated
    assert second["table_rows"].value == 300 and len(table_rows(db)) == 300
    assert "token" not in str(second) and tinybird_server.token not in str(second)
    # dagster/column_schema: the columns the pulled table holds, its own ones described
    columns = second["dagster/column_schema"].value.columns
    assert [c.name for c in columns] == [c["name"] for c in sa.inspect(db.engine).get_columns("estore_events_pulled")]
    assert {c.name for c in columns if c.description} == {"event_id", "timestamp"}  # the upsert key, the time column
    assert second["dagster/table_name"].value == "estore_events_pulled"


def test_the_transfer_sensor_pulls_every_pipe_on_its_interval(
    tinybird_server, config_dir, sqlite_url, tmp_path, monkeypatch, instance
) -> None:
    """Two pipes (the same endpoint into two tables with different pages) pulled by sensor ticks: each tick's run
    advances both watermarks, nothing is pulled twice, and no tick starts a pull while one is in flight."""
    pipes = [{"page_size": 64, "lookback_seconds": 0}, {"table": "estore_events_copy", "page_size": 500}]
    edit_yaml(config_dir / "world.yaml", domains=["power", "analytics"], start_date="2026-02-01")
    edit_yaml(config_dir / "analytics.yaml", **{"transfer.pipes": pipes, "transfer.interval_seconds": 60})
    monkeypatch.setenv("SYNTH_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("TINYBIRD_API_URL", tinybird_server.url)
    monkeypatch.setenv("TINYBIRD_TOKEN", tinybird_server.token)
    tb, db = client(tinybird_server, tmp_path), DatabaseResource(url=sqlite_url)
    defs = build_definitions(load_platform(config_dir))
    sensor = defs.resolve_sensor_def("tinybird_transfer_sensor")
    assert sensor.minimum_interval_seconds == 60
    job = defs.resolve_job_def("tinybird_transfer")

    def tick() -> dict[str, dict]:
        with dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources) as context:
            requests = sensor.evaluate_tick(context).run_requests
        assert len(requests) == 1 and requests[0].run_key.startswith("tinybird_transfer:")
        result = job.execute_in_process(instance=instance, tags={"synth/transfer": "true"})
        assert result.success
        events_ = [e.materialization for e in result.get_asset_materialization_events()]
        return {m.asset_key.path[-1]: m.metadata for m in events_}

    send(tb, events(0, 200))
    first = tick()
    assert {k: (m["rows"].value, m["table_rows"].value) for k, m in first.items()} == {
        "estore_events_pulled": (200, 200),
        "estore_events_copy": (200, 200),
    }
    send(tb, events(200, 100))
    second = tick()
    assert second["estore_events_pulled"]["rows"].value == 100 + 2  # from the watermark's second on, no lookback
    assert second["estore_events_pulled"]["watermark"].value == (T0 + timedelta(seconds=149)).isoformat()
    assert second["estore_events_copy"]["watermark"].value == (T0 + timedelta(seconds=149)).isoformat()
    for table in ("estore_events_pulled", "estore_events_copy"):
        assert len(table_rows(db, table)) == 300  # upserted: the re-read rows did not duplicate

    # a transfer run still in flight holds the next tick back
    run = instance.create_run_for_job(job, tags={"synth/transfer": "true"})  # created, never launched
    with dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources) as context:
        skipped = sensor.evaluate_tick(context)
    assert not skipped.run_requests and "still queued or running" in skipped.skip_message
    assert run.status == dg.DagsterRunStatus.NOT_STARTED

    # without a token (outbox mode) there is nothing to pull: the sensor skips instead of filling the run history
    monkeypatch.delenv("TINYBIRD_TOKEN")
    outbox_defs = build_definitions(load_platform(config_dir))
    with dg.build_sensor_context(
        instance=instance, definitions=outbox_defs, resources=outbox_defs.resources
    ) as context:
        idle = outbox_defs.resolve_sensor_def("tinybird_transfer_sensor").evaluate_tick(context)
    assert not idle.run_requests and "outbox" in idle.skip_message
