"""The MQTT sink's data phase packet by packet, against a scripted broker on loopback: the in-flight bound, packet
ids in flight at most once and reused only after their acknowledgement, DUP re-sends after a lost connection,
PINGREQ while a window waits longer than the keepalive; and the packet encoding itself."""

import numpy as np
import pytest

from synth_platform.sinks.mqtt import MqttResource
from synth_platform.sinks.mqtt_packets import PACKET_IDS, PacketError, PacketIds, read_acks
from synth_platform.streams.telemetry import MessageBlock
from synth_platform_tests.mqtt_broker import ScriptedBroker


def numbered_blocks(count: int, block: int) -> list[MessageBlock]:
    """`count` messages numbered 0.. in blocks; topics of varying length (some not ASCII), and a few payloads long
    enough for 2- and 3-byte remaining lengths."""
    blocks = []
    for start in range(0, count, block):
        numbers = range(start, min(count, start + block))
        payloads = [b'{"n":%d}' % n + (b" " * 20_000 if n % 9_973 == 1 else b" " * 200 if n % 7 == 1 else b"")
                    for n in numbers]  # fmt: skip
        topics = [f"fleet/{n % 13}/readings" if n % 5 else f"zähler/{n % 3}" for n in numbers]
        blocks.append(MessageBlock(payloads, topics))
    return blocks


def number(payload: bytes) -> int:
    return int(payload.split(b"}")[0].split(b":")[1])


def test_the_window_bounds_messages_in_flight_and_ids_are_reused_only_after_their_acknowledgement():
    count, window = 70_000, 4_000  # more messages than packet ids: ids must come round again
    blocks = numbered_blocks(count, 9_000)
    with ScriptedBroker(quiet=0.05) as broker:  # a pause of 50 ms: the publisher has filled its window
        stats = MqttResource(url=f"mqtt://127.0.0.1:{broker.port}").publish(blocks, qos=1, max_in_flight=window)
    sent = broker.published
    assert stats.messages == count == len(sent) and stats.retries == stats.reconnects == 0
    assert [number(p.payload) for p in sent] == list(range(count))  # in order, each once
    expected = [(t, p) for b in blocks for t, p in zip(b.topics, b.payloads, strict=True)]
    assert [(p.topic, p.payload) for p in sent] == expected
    assert all(p.qos == 1 and not p.dup for p in sent)
    assert broker.most_unacknowledged == window  # the window is used, and never exceeded
    assert broker.reused_in_flight == []  # no id sent again before the broker acknowledged it
    ids = [p.packet_id for p in sent]
    assert min(ids) >= 1 and max(ids) <= PACKET_IDS and len(set(ids)) == PACKET_IDS  # every id, then reused


def test_a_lost_connection_re_sends_the_unacknowledged_messages_with_dup_and_their_ids():
    count, window, drop_after = 20_000, 1_000, 5_500
    blocks = numbered_blocks(count, 3_000)
    with ScriptedBroker(drop_after=drop_after) as broker:
        mqtt = MqttResource(url=f"mqtt://127.0.0.1:{broker.port}", backoff_seconds=0.05)
        stats = mqtt.publish(blocks, qos=1, max_in_flight=window)
    first = [p for p in broker.published if p.connection == 1]
    again = [p for p in broker.published if p.connection == 2]
    lost = broker.unacknowledged_at_drop
    assert len(first) == drop_after and 0 < len(lost) <= window and stats.reconnects == 1
    # On the new connection every message in flight comes first, with DUP and its packet id: those the broker
    # had not acknowledged, then those still on their way when the connection broke.
    resent, rest = again[: stats.retries], again[stats.retries :]
    assert all(p.dup for p in resent) and not any(p.dup for p in rest) and not any(p.dup for p in first)
    assert [p.packet_id for p in resent[: len(lost)]] == lost
    assert [p.payload for p in resent[: len(lost)]] == [p.payload for p in first[-len(lost) :]]
    assert not {number(p.payload) for p in resent[len(lost) :]} & {number(p.payload) for p in first}
    assert {number(p.payload) for p in broker.published} == set(range(count))
    assert stats.messages == count and broker.reused_in_flight == []


def test_a_window_waiting_longer_than_the_keepalive_sends_pingreq():
    blocks = numbered_blocks(10, 10)
    with ScriptedBroker(hold=3.5) as broker:  # acknowledgements come after more than half the keepalive
        stats = MqttResource(url=f"mqtt://127.0.0.1:{broker.port}", keepalive_seconds=5).publish(blocks)
    assert stats.messages == 10 and broker.pings >= 1 and len(broker.published) == 10


def test_qos_0_sends_every_message_once_without_packet_ids():
    blocks = numbered_blocks(3_000, 1_000)
    with ScriptedBroker() as broker:
        stats = MqttResource(url=f"mqtt://127.0.0.1:{broker.port}").publish(blocks, qos=0)
    assert stats.messages == 3_000 and [number(p.payload) for p in broker.published] == list(range(3_000))
    assert all(p.qos == 0 and p.packet_id == 0 and not p.dup for p in broker.published)


def test_acknowledgements_are_read_across_packet_boundaries():
    puback = lambda i: b"\x40\x02" + i.to_bytes(2, "big")  # noqa: E731
    data = puback(1) + b"\xd0\x00" + puback(300) + puback(65535) + puback(7)[:3]
    ids, used = read_acks(data)
    assert ids.tolist() == [1, 300, 65535] and used == len(data) - 3
    assert read_acks(b"\x40")[1] == 0
    with pytest.raises(PacketError, match="unexpected packet"):
        read_acks(b"\x30\x05hello")


def test_packet_ids_are_handed_out_in_the_order_they_were_freed():
    ids = PacketIds()
    first = ids.take(PACKET_IDS)
    assert sorted(first.tolist()) == list(range(1, PACKET_IDS + 1)) and ids.free == 0
    with pytest.raises(PacketError):
        ids.take(1)
    ids.give(np.array([500, 3, 65535]))
    assert ids.take(2).tolist() == [500, 3] and ids.free == 1
