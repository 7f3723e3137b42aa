"""HTTP delivery against a collector on loopback: batches, 429 with Retry-After, 5xx retried, other 4xx not."""

import math
from datetime import timedelta

import pytest

from synth_platform.assets.common import LIVE_WINDOW_END_TAG, LIVE_WINDOW_START_TAG
from synth_platform.definitions import build_definitions
from synth_platform.sinks.collector import CollectorError, CollectorResource
from synth_platform.streams.telemetry import post_all
from synth_platform.world.windows import Window
from synth_platform_tests.collector_server import CollectorServer
from synth_platform_tests.telemetry_helpers import DAY, expected_readings, telemetry_platform

_NINE = Window.for_day(DAY).start + timedelta(hours=9)
WINDOW = Window(_NINE, _NINE + timedelta(minutes=10))
BATCH = 500


@pytest.mark.parametrize("body", ["ndjson", "json"])
def test_a_live_window_arrives_once_through_429_and_500(body, config_dir, monkeypatch, instance):
    platform = telemetry_platform(
        config_dir, **{"mqtt.enabled": False, "http.enabled": True, "http.body": body, "http.batch_size": BATCH,
                       "http.concurrency": 2}
    )  # fmt: skip
    expected = expected_readings(platform, WINDOW)
    script = [(429, {"Retry-After": "1"}, b"slow down"), (500, {}, b"collector restarting")]
    with CollectorServer(script=script) as server:
        monkeypatch.setenv("SYNTH_COLLECTOR_URL", server.url)
        defs = build_definitions(platform)
        tags = {LIVE_WINDOW_START_TAG: WINDOW.start.isoformat(), LIVE_WINDOW_END_TAG: WINDOW.end.isoformat()}
        result = defs.resolve_job_def("live_telemetry_http").execute_in_process(
            instance=instance, partition_key=DAY, tags=tags
        )
    assert result.success
    batches = math.ceil(len(expected) / BATCH)
    assert set(server.accepted.values()) == {1} and len(server.accepted) == len(expected)  # each reading once
    assert {(m["meter_id"], m["timestamp"]) for m in server.bodies} == expected  # exactly the window
    assert [s.status for s in server.seen].count(200) == batches
    content_type = {"ndjson": "application/x-ndjson", "json": "application/json"}[body]
    assert {s.content_type for s in server.seen} == {content_type}
    assert {s.messages for s in server.seen} == {BATCH} or len(expected) % BATCH  # full batches but the last
    limited = next(s for s in server.seen if s.status == 429)
    retry = next(s for s in server.seen if s.first_id == limited.first_id and s.at > limited.at)
    assert retry.at - limited.at >= 0.95  # Retry-After: 1 was honoured
    meta = result.asset_materializations_for_node("telemetry_http")[0].metadata
    assert meta["messages"].value == len(expected)
    assert meta["requests"].value == batches + 2 and meta["retries"].value == 2


def payloads(n: int) -> list[list[bytes]]:
    return [[b'{"message_id":"m%05d","meter_id":"X","timestamp":"2026-03-02T00:00:00Z"}' % i for i in range(n)]]


def test_a_400_is_reported_at_once_without_retry_or_token():
    token = "collector-secret-991"
    echo = b"rejected: unknown meter (auth was Bearer collector-secret-991)"
    with CollectorServer(script=[(400, {}, echo)]) as server:
        collector = CollectorResource(url=server.url, token=token, backoff_seconds=0.01)
        with pytest.raises(CollectorError) as failure:
            post_all(collector, payloads(10), "ndjson", batch_size=10, concurrency=1)
    assert len(server.seen) == 1 and server.seen[0].authorization == f"Bearer {token}"
    message = str(failure.value)
    assert failure.value.status == 400 and "HTTP 400" in message and "not retried" in message
    assert "unknown meter" in message and token not in message and "***" in message


def test_persistent_5xx_gives_up_after_its_attempts():
    with CollectorServer(script=[(503, {}, b"down")] * 3) as server:
        collector = CollectorResource(url=server.url, max_attempts=3, backoff_seconds=0.01)
        with pytest.raises(CollectorError, match=r"HTTP 503 .*gave up after 3 attempts"):
            post_all(collector, payloads(5), "json", batch_size=5, concurrency=1)
    assert [s.status for s in server.seen] == [503, 503, 503] and not server.accepted


def test_batches_span_blocks_and_keep_order():
    with CollectorServer() as server:
        stats = post_all(CollectorResource(url=server.url), payloads(7) * 3, "ndjson", batch_size=4, concurrency=3)
    assert stats.batches == math.ceil(21 / 4) == len(server.seen) and stats.messages == 21
    assert sorted(s.messages for s in server.seen) == [1, 4, 4, 4, 4, 4]
    assert sum(server.accepted.values()) == 21
