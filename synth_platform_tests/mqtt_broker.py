"""MQTT test helpers: the shared Mosquitto on 127.0.0.1:1883, a private Mosquitto per test (for restarts and
passwords, so the shared one is never stopped), a subscriber that records what arrives, and a scripted broker that
records what a publisher sends packet by packet."""

from __future__ import annotations

import getpass
import select
import shutil
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson

from synth_platform_tests.services import free_port, reachable, unavailable

SHARED = ("127.0.0.1", 1883)


def require_shared_broker() -> tuple[str, int]:
    if not reachable(*SHARED):
        unavailable("Mosquitto on 127.0.0.1:1883", "connection refused (`.ci/run` starts it with `mosquitto -d`)")
    return SHARED


class Mosquitto:
    """A broker of our own on a free loopback port with persistence in a temp folder: it keeps a persistent
    subscriber's session and queued messages across `restart()`. `users` switches on password authentication."""

    def __init__(self, folder: Path, users: dict[str, str] | None = None, tls: bool = False):
        if shutil.which("mosquitto") is None:
            unavailable("mosquitto", "the mosquitto binary is not installed")
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        lines = [f"listener {self.port} 127.0.0.1", "persistence true", f"persistence_location {folder}/",
                 "max_queued_messages 0", f"user {getpass.getuser()}"]  # fmt: skip
        # `user`: run as root, mosquitto would switch to its own user, which cannot write our temp folder
        if users:
            passwords = folder / "passwords"
            for i, (user, password) in enumerate(users.items()):
                subprocess.run(
                    ["mosquitto_passwd", *(["-c"] if i == 0 else []), "-b", str(passwords), user, password], check=True
                )
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        self.ca_file: Path | None = None
        if tls:  # a CA of our own and a certificate for 127.0.0.1 signed by it
            self.ca_file, cert, key = write_certificates(folder)
            lines += [f"cafile {self.ca_file}", f"certfile {cert}", f"keyfile {key}"]
        self.config = folder / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while not reachable("127.0.0.1", self.port, 0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto on port {self.port} did not start (exit {self.process.poll()})")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # a clean stop saves the persistence file
            self.process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 it signed: (ca.pem, server.pem, server.key)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject: str, key, issuer: str, signer, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("synth test CA", ca_key, "synth test CA", ca_key, ca=True)
    server = certificate("127.0.0.1", server_key, "synth test CA", ca_key, ca=False)
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


class Subscriber:
    """mosquitto_sub with QoS 1 and a persistent session, so a broker restart loses nothing; records every (topic,
    payload) that arrives, redeliveries included. A broker drops QoS 1 messages for a subscriber that is more than
    its in-flight window plus max_queued_messages (1,000 by default) behind, and a pipelined publisher gets that far
    ahead within milliseconds: the subscriber speaks MQTT 5 to ask for an in-flight window of 65,535 (its receive
    maximum). The session is made before `__enter__` returns (nothing published afterwards is missed) and removed
    on exit, so the shared broker keeps no state of ours."""

    def __init__(self, host: str, port: int, topic: str):
        self.received: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.topic = topic
        self.command = ["mosquitto_sub", "-h", host, "-p", str(port), "-i", f"synth-test-{uuid.uuid4().hex[:10]}",
                        "-q", "1", "-t", topic,
                        "-V", "mqttv5", "-D", "connect", "receive-maximum", "65535"]  # fmt: skip
        self.process: subprocess.Popen | None = None
        self.reader: threading.Thread | None = None

    def _read(self) -> None:
        for line in self.process.stdout:
            topic, _, payload = line.rstrip(b"\n").partition(b" ")
            with self.lock:
                self.received.append((topic.decode(), orjson.loads(payload)))

    def ids(self) -> set[str]:
        with self.lock:
            return {body["message_id"] for _, body in self.received}

    def wait_for(self, distinct: int, timeout: float = 60.0) -> set[str]:
        """The distinct message ids seen once `distinct` arrived (or the timeout passed), after a short quiet
        spell so that late redeliveries are counted too."""
        deadline = time.monotonic() + timeout
        while len(self.ids()) < distinct and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        return self.ids()

    def _start(self) -> None:
        self.process = subprocess.Popen([*self.command, "-c", "-v"], stdout=subprocess.PIPE)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.reader.join(10)

    def reconnect(self) -> None:
        """Resume the session (mosquitto_sub does not reconnect by itself after a broker restart); what the
        broker queued for it meanwhile arrives then."""
        self._stop()
        self._start()

    def __enter__(self) -> Subscriber:
        if shutil.which("mosquitto_sub") is None:
            unavailable("mosquitto_sub", "the mosquitto clients are not installed")
        subprocess.run([*self.command, "-c", "-E"], check=True, timeout=10)  # the session, subscribed
        self._start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()
        subprocess.run([*self.command, "-E"], timeout=10, capture_output=True)  # a clean session drops ours


@dataclass(frozen=True)
class Publish:
    connection: int  # 1 for the first connection, 2 after a reconnect, ...
    dup: bool
    qos: int
    packet_id: int
    topic: str
    payload: bytes


class ScriptedBroker:
    """A minimal MQTT 3.1.1 broker on loopback, for what Mosquitto does not show: how many messages a publisher
    leaves unacknowledged at once, which packet ids it has in flight, its DUP flags and PINGREQs. It acknowledges
    the unacknowledged PUBLISHes, newest first, whenever the publisher has sent nothing for `quiet` seconds (so a
    publisher that waits for acknowledgements gets them a window at a time); `hold` keeps the first
    acknowledgements back that long; `drop_after` closes the first connection, unacknowledged, after that many
    PUBLISHes."""

    def __init__(self, quiet: float = 0.02, hold: float = 0.0, drop_after: int | None = None):
        self.quiet, self.hold, self.drop_after = quiet, hold, drop_after
        self.published: list[Publish] = []
        self.most_unacknowledged = 0
        self.reused_in_flight: list[int] = []  # packet ids that came again while still unacknowledged
        self.unacknowledged_at_drop: list[int] = []
        self.pings = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)  # accept() wakes up to see `stopping`: closing the socket would not wake it
        self.stopping = threading.Event()
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> ScriptedBroker:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(10)
        self.server.close()

    def _serve(self) -> None:
        connection = 0
        while not self.stopping.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            connection += 1
            with conn:
                self._session(conn, connection)

    def _session(self, conn: socket.socket, connection: int) -> None:
        buf, unacked, in_flight, started = bytearray(), [], set(), time.monotonic()
        while True:
            packet = _take_packet(buf)
            if packet is None:
                if not select.select([conn], [], [], self.quiet if unacked else 5.0)[0]:
                    if unacked and time.monotonic() - started >= self.hold:
                        conn.sendall(b"".join(b"\x40\x02" + i.to_bytes(2, "big") for i in reversed(unacked)))
                        unacked.clear()
                        in_flight.clear()
                    continue
                data = conn.recv(1 << 16)
                if not data:
                    return
                buf += data
                continue
            kind, flags, body = packet
            if kind == 1:  # CONNECT
                conn.sendall(b"\x20\x02\x00\x00")
            elif kind == 3:  # PUBLISH
                qos, size = (flags >> 1) & 3, int.from_bytes(body[:2], "big")
                packet_id = int.from_bytes(body[2 + size : 4 + size], "big") if qos else 0
                if packet_id in in_flight:
                    self.reused_in_flight.append(packet_id)
                payload = bytes(body[2 + size + (2 if qos else 0) :])
                self.published.append(
                    Publish(connection, bool(flags & 8), qos, packet_id, body[2 : 2 + size].decode(), payload)
                )
                if qos:
                    unacked.append(packet_id)
                    in_flight.add(packet_id)
                    self.most_unacknowledged = max(self.most_unacknowledged, len(unacked))
                if connection == 1 and len(self.published) == self.drop_after:
                    self.unacknowledged_at_drop = list(unacked)
                    return
            elif kind == 12:  # PINGREQ
                self.pings += 1
                conn.sendall(b"\xd0\x00")
            elif kind == 14:  # DISCONNECT
                return


def _take_packet(buf: bytearray) -> tuple[int, int, bytes] | None:
    """(packet type, flags, body) of the complete packet at the start of `buf`, removed from it; None if the
    packet is not complete yet."""
    size, shift, at = 0, 0, 1
    while True:
        if at >= len(buf):
            return None
        size |= (buf[at] & 0x7F) << shift
        shift += 7
        at += 1
        if not buf[at - 1] & 0x80:
            break
    if len(buf) < at + size:
        return None
    packet = (buf[0] >> 4, buf[0] & 0x0F, bytes(buf[at : at + size]))
    del buf[: at + size]
    return packet
