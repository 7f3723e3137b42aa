"""Device telemetry: a fleet (the smart meters, or the power devices) reporting each reading as one message, as the
devices themselves would.

A message is the reading's JSON with a deterministic `message_id` (a hash of seed, stream, device and timestamp),
so a collector or subscriber removes QoS 1 redelivery and HTTP retries by id, and a re-sent window carries the same
ids. Payloads are rendered for a whole block of readings at once (the file writer's renderer) and split into lines.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields

import numpy as np
import pyarrow as pa

from synth_platform.pipelining import ordered
from synth_platform.sinks.collector import CollectorResource
from synth_platform.sinks.mqtt import MqttResource
from synth_platform.sinks.ndjson import Number, Text, iso_seconds, render
from synth_platform.sinks.reading_fields import present, reading_fields
from synth_platform.specs.meters import MetersSpec
from synth_platform.specs.power import PowerSpec
from synth_platform.specs.telemetry import TelemetrySpec
from synth_platform.world import seeding
from synth_platform.world.meter_ids import id_strings
from synth_platform.world.meters import READING_COLUMNS, Readings, readings, slot_starts
from synth_platform.world.power_usage import power_usage
from synth_platform.world.windows import Window

STREAM = "meter_readings"
POWER_STREAM = "power_usage"
_BLOCK_READINGS = 32_768  # messages rendered per block
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NIBBLE_SHIFTS = np.arange(60, -1, -4, dtype=np.uint64)


@dataclass(frozen=True)
class MessageBlock:
    """Messages of a block of meters, ordered by (meter, timestamp); `topics` is empty when none were asked for."""

    payloads: list[bytes]
    topics: list[str]

    @property
    def bytes(self) -> int:
        return sum(map(len, self.payloads))


def message_ids(seed: int, stream: str, device: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """16 hex digits per (device, slot) pair of the broadcast arrays, as an (n, 16) byte matrix: the same reading
    always gets the same id, whichever run or target sends it."""
    key = seeding.stream_key(seed, "telemetry", stream)
    h = seeding.hash64(key, np.asarray(device).astype(np.uint64), np.asarray(slot).astype(np.int64))
    return _HEX[(h.reshape(-1, 1) >> _NIBBLE_SHIFTS) & np.uint64(15)]


def payload_lines(data: Readings, spec: MetersSpec, seed: int, ts: np.ndarray) -> list[bytes]:
    """One JSON object per present reading: message_id, meter_id, timestamp, power_kw, energy_kwh, voltage (and
    quality when zero readings are injected)."""
    meter_id, features = reading_fields(data, spec.fleet.id_format)
    message_id = Text("message_id", message_ids(seed, STREAM, data.id_numbers[:, None], data.slots[None, :]))
    fields = [message_id, meter_id, Text("timestamp", ts), *features]
    return render(fields, data.energy_kwh.size, present(data)).split(b"\n")[:-1]


def topics(template: str, data: Readings, spec: MetersSpec) -> list[str]:
    """The topic of each present reading: the template filled per meter, repeated over its readings."""
    names = id_strings(data.id_numbers, spec.fleet.id_format).to_pylist()
    per_meter = np.array(
        [template.format(meter_id=m, device_id=int(i) + 1) for m, i in zip(names, data.index, strict=True)], object
    )
    counts = data.present.sum(axis=1) if data.present is not None else np.full(len(names), len(data.slots))
    return np.repeat(per_meter, counts).tolist()


def message_blocks(
    spec: MetersSpec, seed: int, ids: np.ndarray, window: Window, topic: str | None = None
) -> Iterator[MessageBlock]:
    """Every reading of the fleet in `window` as messages, block by block of meters (generated ahead on a small
    pool, in order); with `topic`, each message's topic from that template."""
    slots = slot_starts(spec, window)
    ts = iso_seconds(slots)
    step = max(1, _BLOCK_READINGS // max(1, len(slots)))

    def job(start: int):
        def run() -> MessageBlock:
            index = np.arange(start, min(start + step, spec.fleet.count))
            data = readings(spec, seed, index, ids[index], window)
            return MessageBlock(payload_lines(data, spec, seed, ts), topics(topic, data, spec) if topic else [])

        return run

    yield from ordered(job(s) for s in range(0, spec.fleet.count, step))


def power_blocks(spec: PowerSpec, seed: int, window: Window, topic: str | None = None) -> Iterator[MessageBlock]:
    """Every power device reading in `window` (the power_usage rows) as messages, one block per usage interval:
    message_id, device_id, timestamp, power_usage_kwh."""
    for step in window.split(spec.usage.interval_seconds):
        usage = power_usage(spec, seed, step)
        device = usage["device_id"].to_numpy()
        slots = usage["timestamp"].cast(pa.int64()).to_numpy() // 1_000_000
        lines = render(
            [
                Text("message_id", message_ids(seed, POWER_STREAM, device, slots)),
                Number("device_id", device.astype(np.float64), 0),
                Text("timestamp", iso_seconds(slots)),
                Number("power_usage_kwh", usage["power_usage_kwh"].to_numpy(), 4),
            ],
            usage.num_rows,
        ).split(b"\n")[:-1]
        names = [topic.format(device_id=int(d)) for d in device] if topic else []
        yield MessageBlock(lines, names)


def message_schema(spec: TelemetrySpec) -> tuple[pa.Schema, dict[str, str]]:
    """The fields of one message (the JSON object's keys in order, as Arrow types) and what each means."""
    message_id = pa.field("message_id", pa.string(), nullable=False)
    ts = pa.field("timestamp", pa.string(), nullable=False)
    described = {
        "message_id": "Deterministic per device and timestamp: a redelivered message repeats it",
        "timestamp": "Time of the reading, ISO 8601 UTC",
    }
    if spec.source == "power":
        device = pa.field("device_id", pa.int64(), nullable=False)
        usage = pa.field("power_usage_kwh", pa.float64(), nullable=False)
        described |= {"device_id": "Power device", "power_usage_kwh": "Energy of the device's usage interval"}
        return pa.schema([message_id, device, ts, usage]), described
    features = [pa.field(name, pa.float64(), nullable=False) for name in ("power_kw", "energy_kwh", "voltage")]
    if spec.meters.faults.zero_probability > 0:  # as `reading_fields` adds it
        features.append(pa.field("quality", pa.string(), nullable=False))
    meter = pa.field("meter_id", pa.string(), nullable=False)
    return pa.schema([message_id, meter, ts, *features]), {**READING_COLUMNS, **described}


def fleet_blocks(
    spec: TelemetrySpec, seed: int, ids: np.ndarray | None, window: Window, topic: str | None = None
) -> Iterator[MessageBlock]:
    """The configured fleet's readings in `window` as messages (`ids`: the meter ids, for the meters)."""
    if spec.source == "power":
        return power_blocks(spec.meters.power, seed, window, topic)
    return message_blocks(spec.meters, seed, ids, window, topic)


@dataclass
class Sent:
    """What sending took: messages and bytes (the JSON payloads); HTTP requests and the batches they carried;
    retries (HTTP: requests repeated; MQTT: messages re-sent after a reconnect) and reconnects (MQTT)."""

    messages: int = 0
    bytes: int = 0
    batches: int = 0
    requests: int = 0
    retries: int = 0
    reconnects: int = 0

    def __iadd__(self, other: Sent) -> Sent:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self


def publish_window(mqtt: MqttResource, spec: TelemetrySpec, seed: int, ids: np.ndarray | None, window: Window) -> Sent:
    """Every reading of the window as one MQTT message on its topic; returns once the broker acknowledged all."""
    blocks = fleet_blocks(spec, seed, ids, window, spec.topic)
    stats = mqtt.publish(blocks, spec.mqtt.qos, spec.mqtt.max_in_flight)
    return Sent(stats.messages, stats.bytes, retries=stats.retries, reconnects=stats.reconnects)


def post_window(
    collector: CollectorResource, spec: TelemetrySpec, seed: int, ids: np.ndarray | None, window: Window
) -> Sent:
    """Every reading of the window POSTed to the collector in batches."""
    payloads = (b.payloads for b in fleet_blocks(spec, seed, ids, window))
    return post_all(collector, payloads, spec.http.body, spec.http.batch_size, spec.http.concurrency)


def batches(payload_blocks: Iterable[list[bytes]], size: int) -> Iterator[list[bytes]]:
    """Consecutive batches of `size` messages (the last may be shorter), across block boundaries."""
    batch: list[bytes] = []
    for block in payload_blocks:
        used = 0
        while used < len(block):
            take = block[used : used + size - len(batch)]
            batch += take
            used += len(take)
            if len(batch) == size:
                yield batch
                batch = []
    if batch:
        yield batch


def post_all(
    collector: CollectorResource, payload_blocks: Iterable[list[bytes]], body: str, batch_size: int, concurrency: int
) -> Sent:
    """POST every message in batches of `batch_size`, `concurrency` requests at once; batches are built only as
    fast as they go out, so memory stays bounded."""
    stats, lock = Sent(), threading.Lock()

    def job(batch: list[bytes]) -> Callable[[], None]:
        def run() -> None:
            requests = collector.post_batch(batch, body)
            with lock:
                stats.messages += len(batch)
                stats.bytes += sum(map(len, batch))
                stats.requests += requests
                stats.retries += requests - 1
                stats.batches += 1

        return run

    for _ in ordered((job(b) for b in batches(payload_blocks, batch_size)), concurrency, 2 * concurrency):
        pass
    return stats
