"""MQTT 3.1.1 packets of the publishing data phase: PUBLISH packets encoded a block at a time, and the broker's
PUBACK and PINGRESP packets read in bulk.

A block's packets are one buffer, written by one compiled pass (`mqtt_kernel`). The packet ids are filled in
only when a run of messages goes out (an id is free again only after its acknowledgement), and a re-sent message
gets its DUP flag in the same buffer: no Python object and no copy per message.
"""

from __future__ import annotations

import numpy as np

PINGREQ = b"\xc0\x00"
_PUBLISH, _DUP, _QOS1 = 0x30, 0x08, 0x02
_PUBACK, _PINGRESP = 0x40, 0xD0
MAX_REMAINING = 268_435_455  # the largest remaining length four bytes can encode
PACKET_IDS = 65_535  # ids 1..65535; 0 is not a packet id


class PacketError(ValueError):
    """A message that does not fit in an MQTT packet, or bytes from the broker that are not a PUBACK/PINGRESP."""


class Packets:
    """The PUBLISH packets of one block of messages, in order, in one buffer."""

    def __init__(self, topics: list[str], payloads: list[bytes], qos: int):
        count = len(payloads)
        if len(topics) != count:
            raise PacketError(f"{len(topics)} topics for {count} payloads")
        joined = "".join(topics)
        if joined.isascii():  # the usual case: one encode, lengths in characters are lengths in bytes
            topic_bytes, topic_len = joined.encode(), np.fromiter(map(len, topics), np.int64, count)
        else:
            encoded = [t.encode() for t in topics]
            topic_bytes, topic_len = b"".join(encoded), np.fromiter(map(len, encoded), np.int64, count)
        payload_len = np.fromiter(map(len, payloads), np.int64, count)
        if count and (topic_len.min() == 0 or topic_len.max() > 0xFFFF):
            raise PacketError("every topic must be 1 to 65535 bytes long")
        remaining = 2 + topic_len + (2 if qos else 0) + payload_len
        if count and remaining.max() > MAX_REMAINING:
            raise PacketError(f"a message of {int(payload_len.max()):,} bytes is over MQTT's packet size limit")
        size = 1 + (1 + (remaining > 0x7F) + (remaining > 0x3FFF) + (remaining > 0x1FFFFF)) + remaining
        self.starts = np.zeros(count + 1, np.int64)
        np.cumsum(size, out=self.starts[1:])
        self.buffer = np.empty(int(self.starts[-1]), np.uint8)
        # where each packet's id goes: its last 2 bytes before the payload
        self.id_at = self.starts[1:] - payload_len - 2 if qos else None
        self.payload_bytes = int(payload_len.sum())
        from synth_platform.sinks import mqtt_kernel  # loads numba: only processes that publish pay for it

        mqtt_kernel.encode_publishes(
            self.buffer,
            self.starts,
            _PUBLISH | (_QOS1 if qos else 0),
            np.frombuffer(topic_bytes, np.uint8),
            _offsets(topic_len),
            np.frombuffer(b"".join(payloads), np.uint8),
            _offsets(payload_len),
            remaining,
        )

    def __len__(self) -> int:
        return len(self.starts) - 1

    def number(self, first: int, ids: np.ndarray) -> None:
        """Give messages first, first + 1, ... the packet ids `ids`."""
        at = self.id_at[first : first + len(ids)]
        self.buffer[at] = ids >> 8
        self.buffer[at + 1] = ids & 0xFF

    def mark_resent(self, index: np.ndarray) -> None:
        """Set the DUP flag of these messages: they go out again with the same packet id."""
        self.buffer[self.starts[index]] |= _DUP

    def view(self, first: int, stop: int) -> memoryview:
        """The packets of messages first .. stop - 1, as they go on the wire."""
        return memoryview(self.buffer)[self.starts[first] : self.starts[stop]]


def read_acks(data: bytes) -> tuple[np.ndarray, int]:
    """The packet ids acknowledged by the complete packets at the start of `data` (PUBACKs; PINGRESPs are
    skipped), and how many bytes those packets take; an incomplete packet at the end waits for more bytes."""
    buf = np.frombuffer(data, np.uint8)
    acked, at = [], 0
    while len(buf) - at >= 2:
        kind = int(buf[at])
        if kind == _PINGRESP and buf[at + 1] == 0:
            at += 2
        elif kind == _PUBACK and buf[at + 1] == 2:
            rows = buf[at : at + (len(buf) - at) // 4 * 4].reshape(-1, 4)
            if not len(rows):
                break
            other = np.flatnonzero((rows[:, 0] != _PUBACK) | (rows[:, 1] != 2))
            run = rows[: other[0] if len(other) else len(rows)]
            acked.append(run[:, 2].astype(np.int64) << 8 | run[:, 3])
            at += 4 * len(run)
        else:
            raise PacketError(f"unexpected packet from the broker (first bytes {bytes(buf[at : at + 4]).hex()})")
    return (np.concatenate(acked) if acked else np.empty(0, np.int64)), at


class PacketIds:
    """Free packet ids, handed out in the order they were freed: an id is used again only after the broker
    acknowledged its last message, whatever order the acknowledgements come in."""

    def __init__(self) -> None:
        self._ring = np.arange(1, PACKET_IDS + 1, dtype=np.int64)
        self._head = 0
        self.free = PACKET_IDS

    def take(self, count: int) -> np.ndarray:
        if count > self.free:
            raise PacketError(f"{count} packet ids asked for, {self.free} free")
        ids = self._ring[(self._head + np.arange(count)) % PACKET_IDS]
        self._head = (self._head + count) % PACKET_IDS
        self.free -= count
        return ids

    def give(self, ids: np.ndarray) -> None:
        self._ring[(self._head + self.free + np.arange(len(ids))) % PACKET_IDS] = ids
        self.free += len(ids)


def _offsets(lengths: np.ndarray) -> np.ndarray:
    out = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=out[1:])
    return out
