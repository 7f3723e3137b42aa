"""The query load test: bounded in requests and time, percentiles from real requests, bound parameters only,
loopback targets unless allowed; and the Dagster job reporting it."""

import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from synth_platform.analytics import loadtest
from synth_platform.analytics.queries import POWER_USAGE
from synth_platform.analytics.results import as_utc
from synth_platform.definitions import build_definitions
from synth_platform.domains import load_platform
from synth_platform.sinks.tinybird import TinybirdResource
from synth_platform.specs.analytics import LoadTestSpec
from synth_platform.world.windows import Window
from synth_platform_tests.config_files import edit_yaml
from synth_platform_tests.test_analytics_queries import CITIES, load
from synth_platform_tests.test_transfer_tinybird import T0, client, events, send


@pytest.mark.parametrize("url_fixture", ["sqlite_url", "postgres_url"])
def test_database_load_is_bounded_and_binds_its_parameters(url_fixture, request) -> None:
    db, _ = load(request.getfixturevalue(url_fixture))
    statements: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append((statement, parameters))

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        spec = LoadTestSpec(concurrency=4, requests_per_second=400, duration_seconds=30, max_requests=120)
        request = loadtest.database_requests(db, POWER_USAGE, seed=5, cities=CITIES, max_period_days=1)
        result = loadtest.run_load("database", request, spec)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    assert result.requests == 120 and result.errors == 0  # bounded by count, long before the 30 s
    assert len(result.latencies_ms) == 120 and result.seconds < 30
    assert 0 < result.percentile(50) <= result.percentile(95) <= result.percentile(99) <= max(result.latencies_ms)
    load_statements = [(s, p) for s, p in statements if "power_usage" in s and "max(" not in s.lower()]
    assert len(load_statements) == 120
    # randomized values travel as parameters: 120 requests share three statement texts (top-N, device, city)
    assert len({s for s, _ in load_statements}) == 3
    assert all(p for _, p in load_statements)
    city = [p for s, p in load_statements if "device_metadata" in s]
    assert 20 < len(city) < 60 and {c for p in city for c in CITIES if c in str(p)} == set(CITIES)


@pytest.mark.parametrize("url_fixture", ["sqlite_url", "postgres_url", "mariadb_url"])
def test_the_city_query_reads_one_city_over_the_period(url_fixture, request) -> None:
    db, data = load(request.getfixturevalue(url_fixture))
    window = Window(data[0][0] + timedelta(hours=3), data[0][0] + timedelta(hours=30))
    for city in CITIES:
        got = [(as_utc(t), int(d), float(v)) for t, d, v in db.query(loadtest.city_readings(POWER_USAGE, city, window))]
        expected = [r for r in data if CITIES[r[1] % 3] == city and window.start <= r[0] < window.end]
        assert sorted(got) == sorted(expected) and len(got) > 100, city
        assert [t for t, _, _ in got] == sorted(t for t, _, _ in got)


def test_tinybird_load_is_bounded_in_time_and_counts_errors(tinybird_server, tmp_path) -> None:
    tb = client(tinybird_server, tmp_path)
    send(tb, events(0, 500))
    once = TinybirdResource(api_url=tb.api_url, token=tb.token, outbox_dir=tb.outbox_dir, max_attempts=1)
    tinybird_server.fail_next(5, 503)
    before = len(tinybird_server.requests)
    spec = LoadTestSpec(concurrency=3, requests_per_second=40, duration_seconds=1.5, max_requests=10_000)
    started = time.perf_counter()
    request = loadtest.tinybird_requests(
        once, "estore_events_range", Window(T0, T0 + timedelta(minutes=5)), seed=3, cities=CITIES
    )
    result = loadtest.run_load("tinybird", request, spec)
    assert time.perf_counter() - started < 1.5 + 1.0
    assert result.requests == len(tinybird_server.requests) - before  # every counted request reached the server
    assert 50 <= result.requests <= 61  # 40/s for 1.5 s, open loop
    assert result.errors == 5 and "503" in result.error_samples[0]
    assert result.summary()["p99_ms"] >= result.summary()["p50_ms"] > 0
    windows = {(r.params["start"], r.params["end"], r.params["limit"]) for r in tinybird_server.requests[before:]}
    assert len(windows) > result.requests * 0.9  # randomized parameters
    city = [r.params["city"] for r in tinybird_server.requests[before:] if r.path.endswith("/city_readings.json")]
    assert 0.3 * result.requests < len(city) < 0.7 * result.requests and set(city) == set(CITIES)


def test_remote_targets_are_refused_unless_allowed() -> None:
    assert loadtest.is_loopback_host("127.0.0.1") and loadtest.is_loopback_host("localhost")
    assert loadtest.is_loopback_host(None)  # SQLite file
    with pytest.raises(loadtest.RemoteTarget, match=r"database is on 203.0.113.9.*allow_remote: true"):
        loadtest.require_loopback("database", "postgresql+psycopg://u:secret@203.0.113.9/db", allow_remote=False)
    with pytest.raises(loadtest.RemoteTarget, match=r"tinybird is on api.tinybird.co"):
        loadtest.require_loopback("tinybird", "https://api.tinybird.co", allow_remote=False)
    loadtest.require_loopback("database", "postgresql+psycopg://u@203.0.113.9/db", allow_remote=True)


def test_load_test_job_reports_percentiles_and_a_plot(tinybird_server, config_dir, sqlite_url, tmp_path,
                                                      monkeypatch, instance) -> None:  # fmt: skip
    load(sqlite_url)
    send(client(tinybird_server, tmp_path), events(0, 300))
    edit_yaml(config_dir / "world.yaml", domains=["power", "analytics"], start_date="2026-02-01")
    edit_yaml(config_dir / "analytics.yaml", **{"load_test.duration_seconds": 1.0, "load_test.requests_per_second": 60,
                                                "load_test.max_requests": 40})  # fmt: skip
    monkeypatch.setenv("SYNTH_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("TINYBIRD_API_URL", tinybird_server.url)
    monkeypatch.setenv("TINYBIRD_TOKEN", tinybird_server.token)
    defs = build_definitions(load_platform(config_dir))
    result = defs.resolve_job_def("query_load_test").execute_in_process(instance=instance)
    assert result.success
    [output] = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    meta = output.event_specific_data.metadata
    for target in ("database", "tinybird"):
        assert meta[f"{target}/requests"].value == 40 and meta[f"{target}/errors"].value == 0
        assert 0 < meta[f"{target}/p50_ms"].value <= meta[f"{target}/p95_ms"].value <= meta[f"{target}/p99_ms"].value
    assert "| database | 40 | 0 |" in meta["summary"].value
    assert "data:image/png;base64," in meta["latency_plot"].value
