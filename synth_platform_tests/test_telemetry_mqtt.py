"""MQTT delivery against Mosquitto: the shared broker on 127.0.0.1:1883 for live windows, a private broker for a
restart in the middle of a window and for passwords."""

import threading
import uuid
from datetime import timedelta

import dagster as dg
import pytest

from synth_platform.assets.common import LIVE_WINDOW_END_TAG, LIVE_WINDOW_START_TAG
from synth_platform.definitions import build_definitions
from synth_platform.sinks.mqtt import MqttError, MqttResource
from synth_platform.specs.meters import MetersSpec
from synth_platform.streams.telemetry import MessageBlock, message_blocks
from synth_platform.world.meter_ids import id_numbers
from synth_platform.world.power_usage import power_usage
from synth_platform.world.windows import Window
from synth_platform_tests.config_files import edit_yaml
from synth_platform_tests.mqtt_broker import Mosquitto, Subscriber, require_shared_broker
from synth_platform_tests.services import free_port
from synth_platform_tests.telemetry_helpers import DAY, expected_readings, telemetry_platform

WINDOW = Window(
    Window.for_day(DAY).start + timedelta(hours=9), Window.for_day(DAY).start + timedelta(hours=9, minutes=10)
)


def live_tags(w: Window) -> dict[str, str]:
    return {LIVE_WINDOW_START_TAG: w.start.isoformat(), LIVE_WINDOW_END_TAG: w.end.isoformat()}


def test_a_live_window_publishes_each_of_its_readings_once_on_its_topic(config_dir, monkeypatch, instance):
    host, port = require_shared_broker()
    root = f"synth-test-{uuid.uuid4().hex[:8]}"
    platform = telemetry_platform(config_dir, **{"mqtt.topic": root + "/meters/{meter_id}/readings"})
    monkeypatch.setenv("SYNTH_MQTT_URL", f"mqtt://{host}:{port}")
    defs = build_definitions(platform)
    expected = expected_readings(platform, WINDOW)
    with Subscriber(host, port, f"{root}/#") as sub:
        live = defs.resolve_job_def("live_telemetry_mqtt")
        result = live.execute_in_process(instance=instance, partition_key=DAY, tags=live_tags(WINDOW))
        assert result.success
        ids = sub.wait_for(len(expected))
        first = list(sub.received)
        # the same window again (a retried live run): the very same message ids
        assert live.execute_in_process(instance=instance, partition_key=DAY, tags=live_tags(WINDOW)).success
        assert sub.wait_for(len(expected) + 1, timeout=3) == ids
        # a partition run (history, the daily close) publishes nothing while mqtt.backfill is false
        count = len(sub.received)
        assert (
            defs.resolve_implicit_global_asset_job_def()
            .execute_in_process(instance=instance, partition_key=DAY, asset_selection=[dg.AssetKey("telemetry_mqtt")])
            .success
        )
        assert len(sub.wait_for(len(expected) + 1, timeout=2)) == len(expected) and len(sub.received) == count

    by_id = {body["message_id"]: (topic, body) for topic, body in first}
    assert len(ids) == len(expected) == len(by_id)  # one id per reading
    assert {(b["meter_id"], b["timestamp"]) for _, b in by_id.values()} == expected  # exactly the window
    assert all(topic == f"{root}/meters/{b['meter_id']}/readings" for topic, b in by_id.values())
    # dagster/column_schema describes each message: its keys in order
    schema = defs.resolve_asset_graph().get(dg.AssetKey("telemetry_mqtt")).metadata["dagster/column_schema"]
    assert [c.name for c in schema.columns] == ["message_id", "meter_id", "timestamp", "power_kw", "energy_kwh",
                                                "voltage"]  # fmt: skip
    assert all(list(body) == [c.name for c in schema.columns] for _, body in by_id.values())
    meta = result.asset_materializations_for_node("telemetry_mqtt")[0].metadata
    assert meta["messages"].value == len(expected) and meta["bytes"].value > 0 and meta["retries"].value == 0
    assert "messages_per_s" in meta and meta["window"].value == str(WINDOW)


def test_a_broker_restart_in_the_middle_of_a_window_loses_nothing(tmp_path):
    platform_seed, meters = 7, 300
    spec = MetersSpec.model_validate({"fleet": {"count": meters}})
    ids = id_numbers(platform_seed, meters)
    with Mosquitto(tmp_path) as broker, Subscriber("127.0.0.1", broker.port, "restart/#") as sub:
        restarted = threading.Event()

        def blocks():
            for block in message_blocks(spec, platform_seed, ids, WINDOW, "restart/{meter_id}"):
                half = len(block.payloads) // 2
                yield MessageBlock(block.payloads[:half], block.topics[:half])
                broker.restart()  # with messages of the first half still unacknowledged
                sub.reconnect()
                restarted.set()
                yield MessageBlock(block.payloads[half:], block.topics[half:])

        total = meters * len(range(WINDOW.start_s, WINDOW.end_s, spec.interval_seconds))
        mqtt = MqttResource(url=f"mqtt://127.0.0.1:{broker.port}", backoff_seconds=0.1, ack_timeout_seconds=60)
        stats = mqtt.publish(blocks(), qos=1, max_in_flight=2000)
        received = sub.wait_for(total, timeout=60)
    assert restarted.is_set() and stats.reconnects >= 1
    assert stats.messages == total and len(received) == total  # every reading, each id once after de-duplication
    assert len(sub.received) >= total  # redelivered copies are allowed, missing ones are not


def test_a_wrong_password_fails_clearly_without_the_password(tmp_path):
    with Mosquitto(tmp_path, users={"meter-fleet": "right-horse-battery"}) as broker:
        url = f"mqtt://127.0.0.1:{broker.port}"
        spec_blocks = []
        secret = "wrong-staple-4711"
        with pytest.raises(MqttError) as failure:
            MqttResource(url=url, username="meter-fleet", password=secret).publish(spec_blocks)
        message = str(failure.value)
        assert "refused" in message and "SYNTH_MQTT_PASSWORD" in message and f"127.0.0.1:{broker.port}" in message
        assert secret not in message and secret not in repr(failure.value.__cause__)
        # the right password gets through the same broker
        assert MqttResource(url=url, username="meter-fleet", password="right-horse-battery").publish([]).messages == 0


def test_an_unreachable_broker_fails_after_its_attempts():
    mqtt = MqttResource(url=f"mqtt://127.0.0.1:{free_port()}", connect_attempts=2, backoff_seconds=0.01)
    with pytest.raises(MqttError, match="unreachable after 2 attempts"):
        mqtt.publish([])


def test_credentials_in_the_url_are_refused_without_echoing_them():
    with pytest.raises(MqttError) as failure:
        MqttResource(url="mqtt://user:hunter2@127.0.0.1:1883").publish([])
    assert "hunter2" not in str(failure.value) and "SYNTH_MQTT_PASSWORD" in str(failure.value)


def test_tls_with_the_broker_s_ca_and_a_clear_failure_without_it(tmp_path):
    with Mosquitto(tmp_path, tls=True) as broker:
        url = f"mqtts://127.0.0.1:{broker.port}"
        spec = MetersSpec.model_validate({"fleet": {"count": 3}})
        blocks = list(message_blocks(spec, 1, id_numbers(1, 3), WINDOW, "tls/{meter_id}"))
        stats = MqttResource(url=url, ca_certs=str(broker.ca_file)).publish(blocks)
        assert stats.messages == 3 * 60 and stats.reconnects == 0
        # the system CAs do not know this broker's certificate: refused before a byte of data is sent
        with pytest.raises(MqttError, match=r"unreachable after 1 attempts: SSLCertVerificationError"):
            MqttResource(url=url, connect_attempts=1).publish(blocks)


def test_power_devices_publish_each_usage_reading_of_a_window_once(config_dir, monkeypatch, instance):
    host, port = require_shared_broker()
    root = f"synth-test-{uuid.uuid4().hex[:8]}"
    edit_yaml(config_dir / "power.yaml", **{"devices.count": 30, "usage.interval_minutes": 15})
    platform = telemetry_platform(config_dir, source="power", **{"mqtt.topic": root + "/devices/{device_id}/usage"})
    monkeypatch.setenv("SYNTH_MQTT_URL", f"mqtt://{host}:{port}")
    window = Window(WINDOW.start, WINDOW.start + timedelta(minutes=15))
    usage = power_usage(platform.get("telemetry").meters.power, platform.world.seed, window)
    expected = {(r["device_id"], r["timestamp"].strftime("%Y-%m-%dT%H:%M:%SZ"), r["power_usage_kwh"])
                for r in usage.to_pylist()}  # fmt: skip
    with Subscriber(host, port, f"{root}/#") as sub:
        defs = build_definitions(platform)
        live = defs.resolve_job_def("live_telemetry_mqtt")
        assert live.execute_in_process(instance=instance, partition_key=DAY, tags=live_tags(window)).success
        ids = sub.wait_for(len(expected))
    by_id = {body["message_id"]: (topic, body) for topic, body in sub.received}
    schema = defs.resolve_asset_graph().get(dg.AssetKey("telemetry_mqtt")).metadata["dagster/column_schema"]
    assert all(list(body) == [c.name for c in schema.columns] for _, body in by_id.values())
    assert all(isinstance(body["device_id"], int) for _, body in by_id.values())
    assert len(ids) == len(expected) == usage.num_rows
    assert {(b["device_id"], b["timestamp"], b["power_usage_kwh"]) for _, b in by_id.values()} == expected
    assert all(topic == f"{root}/devices/{b['device_id']}/usage" for topic, b in by_id.values())
