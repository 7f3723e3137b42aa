"""MQTT target: messages published to a broker (SYNTH_MQTT_URL) through paho-mqtt, the way a device fleet would.

Publishing is pipelined: up to `max_in_flight` messages wait for their PUBACK at once, so the rate is set by the
broker's throughput, not by a round trip per message. paho keeps every unacknowledged QoS 1 message and re-sends it
(DUP) after a reconnect, which this module retries with a doubling delay. `publish` returns once the broker
acknowledged every message, or fails naming how many it did not. Credentials come from the environment and never
appear in messages; TLS with `mqtts://`.
"""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import dagster as dg
import paho.mqtt.client as paho
from pydantic import Field

_PORTS = {"mqtt": 1883, "mqtts": 8883}


# A QoS 1 message paho could not send (no connection, or it broke while writing) stays queued and goes out, again
# if need be, after the reconnect.
_QUEUED = (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN, paho.MQTT_ERR_CONN_LOST)


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
                for topic, payload in zip(block.topics, block.payloads, strict=True):
                    session.send(topic, payload)
            session.drain()
        finally:
            session.close()
        stats = session.stats
        stats.seconds = time.perf_counter() - started
        return stats


class _Session:
    """One connection for one publish call, driven from the publishing thread: paho writes each message straight
    to the socket and this loop reads the acknowledgements when the in-flight window is full (a network thread
    would cost a wake-up and a lock hand-off per message)."""

    def __init__(self, resource: MqttResource, qos: int, max_in_flight: int):
        self.resource = resource
        self.host, self.port, tls = resource.address
        self.qos = qos
        self.max_in_flight = max_in_flight
        self.stats = PublishStats()
        self.pending = 0
        self.connected = self.ever_connected = False
        self.refused: str | None = None
        self.last_progress = time.monotonic()  # of the last acknowledgement or connection
        client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=f"synth-platform-{uuid.uuid4().hex[:12]}",
            protocol=paho.MQTTv311,
            clean_session=True,
        )
        # Unbounded inside paho (0), bounded by this session's window: paho's own bound rescans every queued
        # message on each acknowledgement, quadratic in the window.
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        if resource.username:
            client.username_pw_set(resource.username, resource.password or None)
        if tls:
            client.tls_set(ca_certs=resource.ca_certs or None, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self.client = client

    @property
    def where(self) -> str:
        return f"MQTT broker {self.host}:{self.port}"

    def connect(self) -> None:
        delay = self.resource.backoff_seconds
        for attempt in range(1, self.resource.connect_attempts + 1):
            try:
                self.client.connect(self.host, self.port, self.resource.keepalive_seconds)
                break
            except (OSError, ssl.SSLError) as exc:
                if attempt == self.resource.connect_attempts:
                    raise MqttError(f"{self.where} unreachable after {attempt} attempts: {_reason(exc)}") from None
                time.sleep(delay)
                delay *= 2
        while not self.connected:
            self._pump(0.1)

    def send(self, topic: str, payload: bytes) -> None:
        while self.pending >= self.max_in_flight:
            self._pump(0.05)
        info = self.client.publish(topic, payload, qos=self.qos)
        if info.rc not in _QUEUED:
            raise MqttError(f"{self.where}: publish to {topic} failed: {paho.error_string(info.rc)}")
        self.pending += self.qos > 0
        self.stats.messages += 1
        self.stats.bytes += len(payload)

    def drain(self) -> None:
        while self.pending:
            self._pump(0.05)

    def close(self) -> None:
        with suppress(Exception):
            self.client.disconnect()
        self.client.loop(0.01)

    def _pump(self, timeout: float) -> None:
        """Read acknowledgements for up to `timeout`; on a lost connection, reconnect with a doubling delay.
        Fails on a refused connection or when nothing is acknowledged for ack_timeout_seconds."""
        rc = self.client.loop(timeout)
        if self.refused is not None:
            hint = _HINTS.get(self.refused, "")
            raise MqttError(f"{self.where} refused the connection: {self.refused}{hint}")
        if time.monotonic() - self.last_progress > self.resource.ack_timeout_seconds:
            raise MqttError(
                f"{self.where}: {self.pending} of {self.stats.messages} messages not acknowledged and no progress "
                f"for {self.resource.ack_timeout_seconds}s"
            )
        if rc == paho.MQTT_ERR_SUCCESS:
            return
        delay = self.resource.backoff_seconds
        while time.monotonic() - self.last_progress <= self.resource.ack_timeout_seconds:
            time.sleep(delay)
            delay = min(max(delay * 2, 0.1), self.resource.max_backoff_seconds)
            try:
                self.client.reconnect()  # unacknowledged messages are re-sent once the broker accepts us
                return
            except (OSError, ssl.SSLError):
                continue

    # --- paho callbacks (called from _pump, in this thread) ----------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self.refused = str(reason)
            return
        if self.ever_connected:
            self.stats.reconnects += 1
            self.stats.retries += self.pending
        self.connected = self.ever_connected = True
        self.last_progress = time.monotonic()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.connected = False

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        if self.qos > 0:
            self.pending -= 1
        self.last_progress = time.monotonic()


_HINTS = {
    "Not authorized": " (check SYNTH_MQTT_USERNAME and SYNTH_MQTT_PASSWORD)",
    "Bad user name or password": " (check SYNTH_MQTT_USERNAME and SYNTH_MQTT_PASSWORD)",
}


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
