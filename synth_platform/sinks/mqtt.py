"""MQTT target: messages published to a broker (SYNTH_MQTT_URL) with QoS 1, the way a device fleet would.

Publishing is pipelined: up to `max_in_flight` messages wait for their PUBACK at once, so the rate is set by the
broker's throughput, not by a round trip per message. paho-mqtt opens the connection (TLS, credentials, the
broker's answer); the messages themselves go out as whole blocks of encoded packets on paho's socket (see
`_Session`). Every unacknowledged message is re-sent with its packet id and the DUP flag after a reconnect, which
is retried with a doubling delay. `publish` returns once the broker acknowledged every message, or fails naming how
many it did not. Credentials come from the environment and never appear in messages; TLS with `mqtts://`.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
import uuid
from collections import deque
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import dagster as dg
import numpy as np
import paho.mqtt.client as paho
from pydantic import Field

from synth_platform.sinks.mqtt_packets import PACKET_IDS, PINGREQ, PacketError, PacketIds, Packets, read_acks

_PORTS = {"mqtt": 1883, "mqtts": 8883}


class MqttError(RuntimeError):
    """The broker could not be reached, refused the connection, or did not acknowledge every message."""


class Messages(Protocol):
    payloads: list[bytes]
    topics: list[str]


@dataclass
class PublishStats:
    messages: int = 0
    bytes: int = 0
    seconds: float = 0.0
    reconnects: int = 0
    retries: int = 0  # messages re-sent after a reconnect (QoS 1 redelivery)

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


class MqttResource(dg.ConfigurableResource):
    """An MQTT broker: SYNTH_MQTT_URL, SYNTH_MQTT_USERNAME, SYNTH_MQTT_PASSWORD, SYNTH_MQTT_CA_CERTS."""

    url: str = Field("mqtt://127.0.0.1:1883", description="mqtt://host[:port], or mqtts://host[:port] for TLS")
    username: str = Field("", description="Broker user (empty: anonymous)")
    password: str = Field("", description="Broker password; never logged")
    ca_certs: str = Field("", description="CA bundle to verify the broker's TLS certificate (default: system CAs)")
    keepalive_seconds: int = Field(30, ge=5, description="MQTT keepalive")
    connect_attempts: int = Field(5, ge=1, description="Tries to reach the broker before a publish fails")
    backoff_seconds: float = Field(0.5, ge=0, description="First wait between connection attempts; doubles")
    max_backoff_seconds: float = Field(10.0, gt=0, description="Longest wait between reconnection attempts")
    ack_timeout_seconds: float = Field(
        120.0, gt=0, description="Longest wait for an acknowledgement (across reconnects) before the publish fails"
    )

    @property
    def address(self) -> tuple[str, int, bool]:
        """(host, port, tls) from the URL; credentials belong in their own variables, never in the URL."""
        parts = urlsplit(self.url)
        if parts.scheme not in _PORTS or not parts.hostname:
            raise MqttError("SYNTH_MQTT_URL must look like mqtt://host[:port] or mqtts://host[:port]")
        if parts.username or parts.password:
            raise MqttError("SYNTH_MQTT_URL must not hold credentials: use SYNTH_MQTT_USERNAME / SYNTH_MQTT_PASSWORD")
        return parts.hostname, parts.port or _PORTS[parts.scheme], parts.scheme == "mqtts"

    @property
    def target(self) -> str:
        host, port, tls = self.address
        return f"{'mqtts' if tls else 'mqtt'}://{host}:{port}"

    def publish(self, blocks: Iterable[Messages], qos: int = 1, max_in_flight: int = 1000) -> PublishStats:
        """Publish every (topic, payload) of `blocks`, at most `max_in_flight` unacknowledged; returns when the
        broker acknowledged them all."""
        session = _Session(self, qos, max_in_flight)
        started = time.perf_counter()
        try:
            session.connect()
            for block in blocks:
                session.send(block)
            session.drain()
        finally:
            session.close()
        stats = session.stats
        stats.seconds = time.perf_counter() - started
        return stats


class _Session:
    """One connection for one publish call, all in the publishing thread. paho opens the connection (TCP or TLS,
    credentials, the broker's CONNACK or its refusal) and opens it again after a loss; the data phase then runs on
    paho's socket without paho, because paho spends about 0.1 ms of Python per message (one packet object, one
    send, three reads per acknowledgement), which caps it near 10,000 messages/s. Here a block's packets are
    encoded in one pass and written in large sends, acknowledgements are read in bulk, and a packet id is in flight
    at most once (see `mqtt_packets`)."""

    def __init__(self, resource: MqttResource, qos: int, max_in_flight: int):
        if not 1 <= max_in_flight <= PACKET_IDS:
            raise MqttError(f"max_in_flight must be 1 to {PACKET_IDS:,}, got {max_in_flight}")
        self.resource = resource
        self.host, self.port, tls = resource.address
        self.qos = qos
        self.max_in_flight = max_in_flight
        # refill the window in runs of at least this many messages, not one send per acknowledgement
        self.run = max(1, max_in_flight // 8)
        self.stats = PublishStats()
        self.ids = PacketIds()
        size = PACKET_IDS + 1
        self.in_flight = np.zeros(size, np.bool_)  # by packet id
        self.block_of = np.zeros(size, np.int64)  # by packet id: the serial of its message's block
        self.index_of = np.zeros(size, np.int64)  # by packet id: its message's index in that block
        self.blocks: dict[int, list] = {}  # serial -> [Packets, messages of it in flight]
        self.serial = 0  # of the last block sent
        self.pending = 0
        self.out: deque[memoryview | bytes] = deque()  # packets queued for the socket
        self.received = b""  # the start of a packet not complete yet
        self.sock: Any = None
        self.low_water = 1  # SO_RCVLOWAT of the socket: bytes to arrive before it counts as readable
        self.connected = False
        self.refused: str | None = None
        self.last_progress = self.last_sent = time.monotonic()  # of the last acknowledgement or connection
        client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=f"synth-platform-{uuid.uuid4().hex[:12]}",
            protocol=paho.MQTTv311,
            clean_session=True,
        )
        if resource.username:
            client.username_pw_set(resource.username, resource.password or None)
        if tls:
            client.tls_set(ca_certs=resource.ca_certs or None, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self.client = client

    @property
    def where(self) -> str:
        return f"MQTT broker {self.host}:{self.port}"

    def connect(self) -> None:
        delay = self.resource.backoff_seconds
        for attempt in range(1, self.resource.connect_attempts + 1):
            try:
                self.client.connect(self.host, self.port, self.resource.keepalive_seconds)
                if self._handshake():
                    return
                failure = "no answer (CONNACK) from the broker"
            except (OSError, ssl.SSLError) as exc:
                failure = _reason(exc)
            if attempt == self.resource.connect_attempts:
                raise MqttError(f"{self.where} unreachable after {attempt} attempts: {failure}") from None
            time.sleep(delay)
            delay *= 2

    def send(self, block: Messages) -> None:
        """Queue the block's messages, in runs as the in-flight window frees up, writing and reading meanwhile."""
        try:
            packets = Packets(block.topics, block.payloads, self.qos)
        except PacketError as exc:
            raise MqttError(f"{self.where}: {exc}") from None
        count = len(packets)
        self.stats.messages += count
        self.stats.bytes += packets.payload_bytes
        if not self.qos:  # nothing to acknowledge: written as it is (lost with a lost connection, as QoS 0 is)
            self.out.append(packets.view(0, count))
            while self.out:
                self._pump()
            return
        self.serial += 1
        serial = self.serial
        first = 0
        while first < count:
            room, wanted = self.max_in_flight - self.pending, min(self.run, count - first)
            if room < wanted:
                self._pump(wanted - room)
                continue
            stop = min(count, first + self.max_in_flight - self.pending)
            ids = self.ids.take(stop - first)
            packets.number(first, ids)
            self.in_flight[ids] = True
            self.block_of[ids] = serial
            self.index_of[ids] = np.arange(first, stop)
            self.blocks.setdefault(serial, [packets, 0])[1] += stop - first
            self.pending += stop - first
            self.out.append(packets.view(first, stop))
            first = stop
            self._pump()

    def drain(self) -> None:
        while self.pending or self.out:
            self._pump(self.pending)

    def close(self) -> None:
        if self.connected and not self.out:  # not after a packet cut short
            with suppress(Exception):
                self.client.disconnect()  # paho writes DISCONNECT on the socket it opened, then closes it
        if self.sock is not None:
            self.sock.close()

    def _handshake(self) -> bool:
        """Wait for the broker's CONNACK through paho, then take its socket; False if the connection broke
        first. Fails on a refused connection."""
        self.connected = False
        while not self.connected:
            rc = self.client.loop(0.1)
            if self.refused is not None:
                hint = _HINTS.get(self.refused, "")
                raise MqttError(f"{self.where} refused the connection: {self.refused}{hint}")
            if rc != paho.MQTT_ERR_SUCCESS:
                return False
            if time.monotonic() - self.last_progress > self.resource.ack_timeout_seconds:
                return False
        self.sock = self.client.socket()  # non-blocking, as paho leaves it
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.low_water = 1
        self.last_progress = self.last_sent = time.monotonic()
        return True

    def _pump(self, acks: int = 0) -> None:
        """Write what the socket takes and read every acknowledgement that arrived, after waiting (up to 1 ms)
        for the socket to take more or for `acks` acknowledgements to be there. Sends PINGREQ when idle for half
        the keepalive; reconnects on a lost connection; fails when nothing is acknowledged for
        ack_timeout_seconds."""
        now = time.monotonic()
        if self.pending and now - self.last_progress > self.resource.ack_timeout_seconds:
            raise MqttError(
                f"{self.where}: {self.pending} of {self.stats.messages} messages not acknowledged and no progress "
                f"for {self.resource.ack_timeout_seconds}s"
            )
        if not self.out and now - self.last_sent > self.resource.keepalive_seconds / 2:
            self.out.append(PINGREQ)
        try:
            if acks or self.out:
                if acks and 4 * acks != self.low_water:
                    # woken once that many acknowledgements (4 bytes each) arrived, not for every few: each
                    # wake-up costs CPU the broker, often on the same cores, could use
                    self.low_water = 4 * acks
                    self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, self.low_water)
                if _QUICKACK is not None:
                    # A broker with Nagle's algorithm on (Mosquitto's default) holds its next acknowledgements
                    # until we acknowledge the TCP segment of the last ones, which the kernel delays by up to
                    # 40 ms: acknowledge it now, and again every millisecond while waiting.
                    self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
                select.select([self.sock] if acks else [], [self.sock] if self.out else [], [], 0.001)
            self._write()
            self._read()
        except (OSError, EOFError):
            self._reconnect()

    def _write(self) -> None:
        """Write queued packets until the socket takes no more."""
        with suppress(*_WOULD_BLOCK):
            while self.out:
                sent = self.sock.send(self.out[0])
                self.last_sent = time.monotonic()
                if sent < len(self.out[0]):
                    self.out[0] = self.out[0][sent:]
                    return
                self.out.popleft()

    def _read(self) -> None:
        """Read all that arrived (which also empties TLS's buffer of decrypted bytes), then take the
        acknowledgements in it at once."""
        chunks, closed = [self.received], False
        with suppress(*_WOULD_BLOCK):
            while data := self.sock.recv(_READ_SIZE):
                chunks.append(data)
            closed = True
        data = b"".join(chunks)
        try:
            acked, used = read_acks(data)
        except PacketError as exc:
            raise MqttError(f"{self.where}: {exc}") from None
        self.received = data[used:]
        if len(acked):
            self._acknowledged(acked)
        if closed:
            raise EOFError("the broker closed the connection")

    def _acknowledged(self, ids: np.ndarray) -> None:
        ids = np.unique(ids)
        ids = ids[self.in_flight[ids]]  # an id acknowledged twice counts once
        self.in_flight[ids] = False
        self.ids.give(ids)
        self.pending -= len(ids)
        self.last_progress = time.monotonic()
        owners = self.block_of[ids]
        for serial in np.unique(owners).tolist():
            entry = self.blocks[serial]
            entry[1] -= int(np.count_nonzero(owners == serial))
            if not entry[1]:
                del self.blocks[serial]  # every message of it acknowledged: its buffer can go

    def _reconnect(self) -> None:
        """Connect again with a doubling delay (paho), then re-send every unacknowledged message with its packet
        id and the DUP flag, in the order they first went out."""
        self.sock = None
        self.connected = False
        self.out.clear()  # a packet cut short is re-sent whole below
        self.received = b""
        delay = self.resource.backoff_seconds
        while True:
            if time.monotonic() - self.last_progress > self.resource.ack_timeout_seconds:
                raise MqttError(
                    f"{self.where}: connection lost with {self.pending} of {self.stats.messages} messages not "
                    f"acknowledged, and not back within {self.resource.ack_timeout_seconds}s"
                )
            time.sleep(delay)
            delay = min(max(delay * 2, 0.1), self.resource.max_backoff_seconds)
            try:
                self.client.reconnect()
                if self._handshake():
                    break
            except (OSError, ssl.SSLError):
                continue
        self.stats.reconnects += 1
        ids = np.flatnonzero(self.in_flight)
        self.stats.retries += len(ids)
        order = np.lexsort((self.index_of[ids], self.block_of[ids]))
        blocks, index = self.block_of[ids][order], self.index_of[ids][order]
        # runs of consecutive messages of one block go out as one piece of its buffer
        breaks = np.flatnonzero((np.diff(blocks) != 0) | (np.diff(index) != 1)) + 1
        for run_blocks, run in zip(np.split(blocks, breaks), np.split(index, breaks), strict=True):
            if len(run):
                packets = self.blocks[int(run_blocks[0])][0]
                packets.mark_resent(run)
                self.out.append(packets.view(int(run[0]), int(run[-1]) + 1))

    # --- paho callbacks (called from client.loop while connecting, in this thread) ---------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self.refused = str(reason)
            return
        self.connected = True

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.connected = False


# A non-blocking socket that cannot take or give more now; TLS may need the other direction first.
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_READ_SIZE = 1 << 18
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only

_HINTS = {
    "Not authorized": " (check SYNTH_MQTT_USERNAME and SYNTH_MQTT_PASSWORD)",
    "Bad user name or password": " (check SYNTH_MQTT_USERNAME and SYNTH_MQTT_PASSWORD)",
}


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
