"""tinybird/top_devices.pipe and city_readings.pipe through the Tinybird test server: the answers' shape, each
parameter's effect, and bad parameters answered with 400."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from synth_platform.sinks.tinybird import TinybirdError, TinybirdResource

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
CITIES = ["Austin", "Boston", "Chicago"]


def reading(minute: float, device: int, feature: str, value: float) -> dict:
    ts = (T0 + timedelta(minutes=minute)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"timestamp": ts, "device_id": device, "city": CITIES[device % 3], "feature": feature, "value": value}


def rows() -> list[dict]:
    out = [reading(m, d, "temperature_c", float((d * 7 + m) % 11)) for m in range(0, 120, 5) for d in range(1, 9)]
    out += [reading(m, d, "power_usage_kwh", 1.0 + d) for m in (0, 60) for d in range(1, 5)]
    out.append(reading(119, 5, "temperature_c", 30.0))  # the newest reading: device 5 tops every window
    out.append(reading(119, 6, "temperature_c", 30.0))  # a tie with it, broken by device id
    out.append(reading(30, 2, "temperature_c", 40.0))  # all time only
    return out


@pytest.fixture
def tb(tinybird_server, tmp_path: Path) -> TinybirdResource:
    client = TinybirdResource(
        api_url=tinybird_server.url, token=tinybird_server.token, outbox_dir=str(tmp_path / "outbox"), max_attempts=1
    )
    client.import_ndjson("device_readings", b"".join(orjson.dumps(r) + b"\n" for r in rows()))
    client.import_ndjson("device_readings", orjson.dumps(rows()[0]) + b"\n")  # a re-sent reading: FINAL keeps one
    return client


def brute(feature: str, after: datetime | None, limit: int) -> list[tuple[int, float, str]]:
    best: dict[int, tuple[float, datetime]] = {}
    for r in rows():
        ts = datetime.fromisoformat(r["timestamp"])
        if r["feature"] != feature or (after and ts <= after):
            continue
        if r["device_id"] not in best or (-r["value"], ts) < (-best[r["device_id"]][0], best[r["device_id"]][1]):
            best[r["device_id"]] = (r["value"], ts)
    ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0], kv[1][1]))[:limit]
    return [(d, v, ts.strftime("%Y-%m-%d %H:%M:%S.000")) for d, (v, ts) in ranked]


def test_top_devices_pipe_answers_per_feature_window_and_limit(tb: TinybirdResource) -> None:
    answer = tb.query_pipe("top_devices", {"feature": "temperature_c", "window": "hour", "limit": 3})
    assert [(m["name"], m["type"]) for m in answer["meta"]] == [
        ("device_id", "Int64"),
        ("city", "String"),
        ("value", "Float64"),
        ("at", "DateTime64(3, 'UTC')"),
    ]
    assert answer["rows"] == 3 and answer["rows_before_limit_at_least"] == 8
    newest = T0 + timedelta(minutes=119)
    windows = [("all", None), ("hour", newest - timedelta(hours=1)), ("minute", newest - timedelta(minutes=1))]
    for window, after in windows:
        for limit in (1, 3, 20):
            data = tb.query_pipe("top_devices", {"feature": "temperature_c", "window": window, "limit": limit})["data"]
            assert [(r["device_id"], r["value"], r["at"]) for r in data] == brute("temperature_c", after, limit)
            assert all(r["city"] == CITIES[r["device_id"] % 3] for r in data)
    top = tb.query_pipe("top_devices", {"feature": "temperature_c", "window": "minute"})["data"]
    assert [r["device_id"] for r in top] == [5, 6]  # the tie: lower id first
    assert tb.query_pipe("top_devices", {"feature": "temperature_c"})["data"][0]["device_id"] == 2  # default: all
    power = tb.query_pipe("top_devices", {"feature": "power_usage_kwh", "window": "hour"})["data"]
    assert [(r["device_id"], r["value"]) for r in power] == [(4, 5.0), (3, 4.0), (2, 3.0), (1, 2.0)]
    day = tb.query_pipe("top_devices", {"feature": "temperature_c", "window": "day", "day": "2026-03-01"})["data"]
    assert [r["device_id"] for r in day] == [d for d, _, _ in brute("temperature_c", None, 10)]  # the rows' one day
    other = {"feature": "temperature_c", "window": "day", "day": "2026-03-02"}
    assert tb.query_pipe("top_devices", other)["data"] == []
    assert (
        tb.query_pipe("top_devices", {"feature": "temperature_c", "window": "minute", "relative_to": "now"})["data"]
        == []
    )  # 2026 is not now


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"window": "hour"}, "feature is required"),
        ({"feature": "temperature_c", "window": "week"}, "window must be all, hour, minute or day"),
        ({"feature": "temperature_c", "window": "day"}, "window=day needs day=YYYY-MM-DD"),
        ({"feature": "temperature_c", "relative_to": "later"}, "relative_to must be latest_reading or now"),
        ({"feature": "temperature_c", "limit": "ten"}, "is not an Int32"),
    ],
)
def test_top_devices_pipe_rejects_bad_parameters(tb: TinybirdResource, params: dict, message: str) -> None:
    with pytest.raises(TinybirdError, match=message) as err:
        tb.query_pipe("top_devices", params)
    assert "400" in str(err.value)


def test_city_readings_pipe_filters_a_city_and_a_period(tb: TinybirdResource) -> None:
    start, end = T0 + timedelta(minutes=30), T0 + timedelta(minutes=90)
    params = {"city": "Boston", "start": start.isoformat(), "end": end.isoformat(), "limit": 1000}
    data = tb.query_pipe("city_readings", params)["data"]
    expected = [r for r in rows() if r["city"] == "Boston" and start <= datetime.fromisoformat(r["timestamp"]) < end]
    assert len(data) == len(expected) > 0 and {r["city"] for r in data} == {"Boston"}
    assert [r["timestamp"] for r in data] == sorted(r["timestamp"] for r in data)
    with pytest.raises(TinybirdError, match="Missing required parameter"):
        tb.query_pipe("city_readings", {"start": start.isoformat()})
