"""Meter readings to the Mosquitto broker on 127.0.0.1:1883: the MQTT sink (QoS 1, pipelined with a window of
unacknowledged messages) vs one blocking publish-and-wait per message (paho's `publish(...).wait_for_publish()`
on a kept-alive connection, on a sample), in the same run. Target: sink >= 20x the per-message loop. Each also
prints the CPU this process spent per message (all its threads): the sink's rate is bounded by the broker's own
work per message once the client's is small, so the broker's CPU during the sink's run is printed too (when it
runs on this machine).
"""

import os
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as paho

from synth_platform.sinks.mqtt import MqttResource
from synth_platform.specs.meters import MetersSpec
from synth_platform.streams.telemetry import message_blocks
from synth_platform.world.meter_ids import id_numbers
from synth_platform.world.windows import Window

METERS = 1_000  # x 60 readings of a 10-minute window
PER_MESSAGE_SAMPLE = 5_000
HOST, PORT = "127.0.0.1", 1883
SEED = 1


def broker_cpu_seconds() -> float | None:
    """User + system CPU of the local Mosquitto so far, None when it does not run here."""
    found = subprocess.run(["pgrep", "-x", "mosquitto"], capture_output=True, text=True).stdout.split()
    if not found:
        return None
    fields = Path(f"/proc/{found[0]}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> bool:
    spec = MetersSpec.model_validate({"fleet": {"count": METERS}})
    start = Window.for_day("2026-03-02").start + timedelta(hours=9)
    window = Window(start, start + timedelta(minutes=10))
    topic = f"bench-{uuid.uuid4().hex[:8]}/meters/{{meter_id}}/readings"  # nobody subscribes: the broker drops them
    started = time.perf_counter()
    blocks = list(message_blocks(spec, SEED, id_numbers(SEED, METERS), window, topic))
    messages = sum(len(b.payloads) for b in blocks)
    print(f"generated {messages:,} messages in {time.perf_counter() - started:.1f}s")

    sink = MqttResource(url=f"mqtt://{HOST}:{PORT}")
    started = time.perf_counter()
    sink.publish(blocks[:1], qos=1, max_in_flight=1000)  # loads (after a code change, compiles) the packet kernel
    print(f"warm-up (one block, kernel load): {time.perf_counter() - started:.1f}s, not timed")

    cpu, broker = time.process_time(), broker_cpu_seconds()
    stats = sink.publish(blocks, qos=1, max_in_flight=1000)
    sink_rate, sink_cpu = stats.per_second, (time.process_time() - cpu) / stats.messages
    print(
        f"sink: {sink_rate:,.0f} messages/s ({stats.bytes / stats.seconds / 1e6:.1f} MB/s), QoS 1, all "
        f"acknowledged; {sink_cpu * 1e6:.1f} us of client CPU per message"
    )
    if broker is not None:
        broker = broker_cpu_seconds() - broker
        print(
            f"broker during the sink: {broker / stats.seconds:.0%} of one core, "
            f"{broker / stats.messages * 1e6:.1f} us of its CPU per message"
        )

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:8]}")
    client.connect(HOST, PORT)
    client.loop_start()
    sample = [(t, p) for b in blocks for t, p in zip(b.topics, b.payloads, strict=True)][:PER_MESSAGE_SAMPLE]
    started, cpu = time.perf_counter(), time.process_time()
    for t, p in sample:
        client.publish(t, p, qos=1).wait_for_publish(10)
    per_message_rate = len(sample) / (time.perf_counter() - started)
    per_message_cpu = (time.process_time() - cpu) / len(sample)
    client.disconnect()
    client.loop_stop()
    print(
        f"publish-and-wait per message ({len(sample):,}-message sample): {per_message_rate:,.0f} messages/s; "
        f"{per_message_cpu * 1e6:.1f} us of client CPU per message"
    )

    speedup = sink_rate / per_message_rate
    ok = speedup >= 20
    print(f"sink / per-message = {speedup:.1f}x (target >= 20x)")
    print("mqtt_publish: " + ("meets target" if ok else "BELOW TARGET"))
    return ok
