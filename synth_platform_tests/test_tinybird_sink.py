"""The Tinybird client against the Tinybird-compatible test server on loopback, and the outbox default."""

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth_platform.sinks.tinybird import TinybirdError, TinybirdResource, line_batches, to_ndjson
from synth_platform.specs.estore import EstoreSpec
from synth_platform.world.estore import events
from synth_platform.world.windows import Window
from synth_platform_tests.tinybird_server import TinybirdServer

DS = "estore_events"
SPEC = EstoreSpec.model_validate({"catalog": {"customers": 120, "products": 30}, "duplicate_percent": 3})
SEED = 7
DAY = Window.for_day("2026-04-02")


@pytest.fixture(scope="module")
def day_ndjson() -> bytes:
    return to_ndjson(events(SPEC, SEED, DAY))


def client(server: TinybirdServer, tmp_path: Path, **kw) -> TinybirdResource:
    kw.setdefault("backoff_seconds", 0.01)
    return TinybirdResource(api_url=server.url, token=server.token, outbox_dir=str(tmp_path / "outbox"), **kw)


def lines(body: bytes) -> Counter:
    return Counter(body.splitlines())


def stored(server: TinybirdServer) -> Counter:
    """The server's rows as comparable tuples (a multiset, so duplicates count)."""
    return Counter(tuple(sorted((k, str(v)) for k, v in r.items())) for r in server.rows(DS))


def as_stored(body: bytes) -> Counter:
    with TinybirdServer(log_requests=False) as ref:
        ref.datasources[DS].rows.extend(ref.datasources[DS].ingest(body)[0])
        return stored(ref)


def test_events_go_out_as_gzip_batches_under_the_byte_bound(tinybird_server, tmp_path, day_ndjson):
    tb = client(tinybird_server, tmp_path, max_batch_bytes=60_000)
    result = tb.send_events(DS, day_ndjson, DAY)
    posts = [r for r in tinybird_server.requests if r.path == "/v0/events"]
    assert len(posts) == result.requests == result.batches > 3
    assert all(r.headers["content-encoding"] == "gzip" and r.params == {"name": DS, "wait": "true"} for r in posts)
    assert all(r.body_bytes <= 60_000 and r.wire_bytes < r.body_bytes / 2 for r in posts)
    assert sum(r.rows for r in posts) == result.rows == result.successful_rows == len(day_ndjson.splitlines())
    assert result.quarantined_rows == 0 and result.bytes == len(day_ndjson)
    assert stored(tinybird_server) == as_stored(day_ndjson)


def test_row_bound_splits_batches_too(tinybird_server, tmp_path, day_ndjson):
    result = client(tinybird_server, tmp_path, max_batch_rows=500).send_events(DS, day_ndjson, DAY)
    assert result.requests == -(-result.rows // 500)
    assert all(r.rows <= 500 for r in tinybird_server.requests)


def test_429_waits_as_long_as_retry_after_says(tinybird_server, tmp_path, day_ndjson):
    tinybird_server.fail_next(1, 429, retry_after=0.8)
    result = client(tinybird_server, tmp_path).send_events(DS, day_ndjson[:5000].rsplit(b"\n", 1)[0] + b"\n", DAY)
    first, second = tinybird_server.requests
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.8
    assert result.retries == 1 and result.requests == 2


def test_rate_limit_headers_pace_the_client_and_nothing_is_lost(tmp_path, day_ndjson):
    with TinybirdServer(rate_limit=3, rate_window_seconds=0.5) as server:
        result = client(server, tmp_path, max_batch_bytes=80_000, backoff_seconds=5).send_events(DS, day_ndjson, DAY)
        limited = [r for r in server.requests if r.status == 429]
        assert limited, "the test needs the rate limit to bite"
        assert result.retries == len(limited) and result.requests == len(server.requests)
        # X-RateLimit-Reset, not the 5 s backoff, decided the waits
        assert server.requests[-1].at - server.requests[0].at < 5
        assert stored(server) == as_stored(day_ndjson)


def test_5xx_are_retried_with_backoff(tinybird_server, tmp_path, day_ndjson):
    tinybird_server.fail_next(2, 503)
    tinybird_server.fail_next(1, 500)
    result = client(tinybird_server, tmp_path, backoff_seconds=0.05).send_events(DS, day_ndjson, DAY)
    statuses = [r.status for r in tinybird_server.requests]
    assert statuses == [503, 503, 500, 200] and result.retries == 3
    gaps = [b.at - a.at for a, b in zip(tinybird_server.requests, tinybird_server.requests[1:], strict=False)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2  # doubling
    assert stored(tinybird_server) == as_stored(day_ndjson)


def test_persistent_5xx_gives_up_with_a_clear_error(tinybird_server, tmp_path, day_ndjson):
    tinybird_server.fail_next(10, 500)
    with pytest.raises(TinybirdError) as err:
        client(tinybird_server, tmp_path, max_attempts=3).send_events(DS, day_ndjson, DAY)
    assert err.value.status == 500 and "gave up after 3 attempts" in str(err.value)
    assert len(tinybird_server.requests) == 3


def test_403_is_not_retried_and_the_token_stays_secret(tinybird_server, tmp_path, day_ndjson):
    secret = "p.secret-token-value"
    tb = TinybirdResource(api_url=tinybird_server.url, token=secret, outbox_dir=str(tmp_path))
    with pytest.raises(TinybirdError) as err:
        tb.send_events(DS, day_ndjson, DAY)
    assert err.value.status == 403 and len(tinybird_server.requests) == 1
    message = str(err.value)
    assert "HTTP 403" in message and "TINYBIRD_TOKEN" in message and "Events API append to estore_events" in message
    assert secret not in message and secret not in tb.target(DS)
    assert all(secret not in json.dumps(r.__dict__) for r in tinybird_server.requests)


def test_404_unknown_data_source_is_not_retried(tinybird_server, tmp_path, day_ndjson):
    with pytest.raises(TinybirdError) as err:
        client(tinybird_server, tmp_path).send_events("no_such_source", day_ndjson, DAY)
    assert err.value.status == 404 and "does not exist" in str(err.value) and len(tinybird_server.requests) == 1


def test_413_splits_the_batch_until_it_fits(tmp_path, day_ndjson):
    with TinybirdServer(max_request_bytes=40_000) as server:
        result = client(server, tmp_path, max_batch_bytes=150_000).send_events(DS, day_ndjson, DAY)
        refused = [r for r in server.requests if r.status == 413]
        accepted = [r for r in server.requests if r.status == 200]
        assert refused and all(r.body_bytes <= 40_000 for r in accepted)
        assert result.requests == len(server.requests) and result.successful_rows == result.rows
        assert stored(server) == as_stored(day_ndjson)  # every row once, none twice


def test_a_single_event_over_the_limit_fails_clearly(tmp_path):
    with TinybirdServer(max_request_bytes=100) as server:
        big = json.dumps({"event_id": "x" * 200}).encode() + b"\n"
        with pytest.raises(TinybirdError, match="cannot be split"):
            client(server, tmp_path).send_events(DS, big, DAY)


def test_quarantined_rows_are_counted(tinybird_server, tmp_path, day_ndjson):
    good = day_ndjson.splitlines()[:50]
    row = json.loads(good[0])
    bad = [
        json.dumps({**row, "quantity": "three"}).encode(),
        json.dumps({k: v for k, v in row.items() if k != "event_id"}).encode(),
        json.dumps({**row, "timestamp": "yesterday"}).encode(),
        b"{not json",
    ]
    result = client(tinybird_server, tmp_path).send_events(DS, b"\n".join(good + bad) + b"\n", DAY)
    assert (result.successful_rows, result.quarantined_rows) == (50, 4)
    assert len(tinybird_server.quarantine(DS)) == 4 and len(tinybird_server.rows(DS)) == 50


def test_replacing_a_day_after_live_appends_leaves_no_duplicates(tinybird_server, tmp_path, day_ndjson):
    tb = client(tinybird_server, tmp_path)
    next_day = Window.for_day("2026-04-03")
    other = to_ndjson(events(SPEC, SEED, next_day))
    tb.replace(DS, other, next_day)
    windows = list(DAY.split(6 * 3600))
    for w in windows[:3]:  # three live windows of the day arrive through the Events API...
        tb.send_events(DS, to_ndjson(events(SPEC, SEED, w)), w)
    tb.send_events(DS, to_ndjson(events(SPEC, SEED, windows[0])), windows[0])  # ...one of them twice (a retry)
    for _ in range(2):  # ...then the day is replaced, twice
        result = tb.replace(DS, day_ndjson, DAY)
        assert stored(tinybird_server) == as_stored(day_ndjson + other)
    replace = tinybird_server.requests[-1]
    assert replace.path == "/v0/datasources" and replace.params["mode"] == "replace"
    assert replace.params["replace_condition"] == (
        "timestamp >= '2026-04-02 00:00:00' AND timestamp < '2026-04-03 00:00:00'"
    )
    assert result.requests == 1 and result.rows == len(day_ndjson.splitlines())


def test_range_pipe_pages_through_distinct_events(tinybird_server, tmp_path, day_ndjson):
    tb = client(tinybird_server, tmp_path)
    tb.send_events(DS, day_ndjson, DAY)
    tb.send_events(DS, day_ndjson, DAY)  # everything twice: FINAL keeps one row per event_id
    rows = list(tb.pipe_rows("estore_events_range", {"start": "2026-04-02T06:00:00Z", "end": "2026-04-02T18:00:00Z"},
                             page_size=700))  # fmt: skip
    expected = events(SPEC, SEED, next(DAY.split(6 * 3600)))
    ids = [r["event_id"] for r in rows]
    assert len(ids) == len(set(ids)) > 700
    assert all("2026-04-02 06:00:00" <= r["timestamp"] < "2026-04-02 18:00:00" for r in rows)
    assert not set(ids) & set(expected.column("event_id").to_pylist())  # 00-06h is outside the range
    assert [r["timestamp"] for r in rows] == sorted(r["timestamp"] for r in rows)
    answer = tb.query_pipe("estore_events_range", {"limit": 3})
    assert answer["rows"] == 3 and [m["name"] for m in answer["meta"]][:2] == ["event_id", "timestamp"]


def test_without_a_token_the_outbox_gets_the_same_bytes(tmp_path, day_ndjson):
    tb = TinybirdResource(outbox_dir=str(tmp_path / "outbox"))
    assert tb.uses_outbox
    windows = list(DAY.split(3600))
    for w in windows[:2]:
        tb.send_events(DS, to_ndjson(events(SPEC, SEED, w)), w)
    folder = tmp_path / "outbox" / DS / "2026-04-02"
    assert sorted(f.name for f in folder.iterdir()) == ["000000-010000.ndjson", "010000-020000.ndjson"]
    result = tb.replace(DS, day_ndjson, DAY)  # the day replaces its windows' files
    assert [f.name for f in folder.iterdir()] == ["000000-240000.ndjson"]
    assert tb.outbox_ndjson(DS, DAY) == day_ndjson and result.rows == len(day_ndjson.splitlines())
    assert (tmp_path / "outbox" / DS / "2026-04-02" / "000000-240000.ndjson").read_bytes() == day_ndjson

    later = Window.for_day("2026-04-05")
    tb.replace(DS, b"", later)
    assert tb.delete_before(DS, later.start) == 1  # retention drops the older day, keeps the cutoff's day
    assert [d.name for d in (tmp_path / "outbox" / DS).iterdir()] == ["2026-04-05"]


def test_default_resource_writes_to_the_outbox_under_the_data_dir(_data_dir, day_ndjson):
    from synth_platform.resources import build_resources

    tb = build_resources()["tinybird"]
    assert tb.uses_outbox and Path(tb.outbox_dir) == _data_dir.resolve() / "tinybird_outbox"


def test_data_sources_import_is_gzip_multipart(tinybird_server, tmp_path, day_ndjson):
    tb = client(tinybird_server, tmp_path)
    tb.import_ndjson(DS, day_ndjson, mode="append")
    request = tinybird_server.requests[-1]
    assert request.params == {"name": DS, "mode": "append", "format": "ndjson"}
    assert request.body_bytes == len(day_ndjson) and request.wire_bytes < len(day_ndjson) / 2
    assert len(tinybird_server.rows(DS)) == len(day_ndjson.splitlines())


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 300), min_size=1, max_size=60),
    max_bytes=st.integers(1, 2000),
    max_rows=st.integers(1, 20),
    trailing=st.booleans(),
)
def test_line_batches_keep_whole_lines_within_bounds(sizes, max_bytes, max_rows, trailing):
    body = b"\n".join(b"x" * n for n in sizes) + (b"\n" if trailing else b"")
    batches = [bytes(b) for b in line_batches(body, max_bytes, max_rows)]
    assert b"".join(batches) == body
    for b in batches:
        n = b.count(b"\n") + (0 if b.endswith(b"\n") else 1)
        assert n <= max_rows and (len(b) <= max_bytes or n == 1)


def test_gzip_on_the_wire_decodes_to_the_ndjson(day_ndjson):
    from synth_platform.sinks.compression import gzip_member

    assert gzip.decompress(gzip_member(day_ndjson)) == day_ndjson
