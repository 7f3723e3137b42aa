"""The compiled pass behind `sinks.mqtt_packets.Packets` (numba): a block's MQTT PUBLISH packets written into one
buffer. Kept apart from `mqtt_packets` so a process that never publishes does not load the compiler."""

import numba


@numba.njit(cache=True, nogil=True, boundscheck=False)
def encode_publishes(out, starts, first_byte, topics, topic_at, payloads, payload_at, remaining):
    """Each message's packet at its start: fixed header, remaining length (7 bits a byte, low first), topic length
    and topic, a packet id left to `Packets.number` (QoS 1: the 2 bytes between topic and payload), payload."""
    for i in range(len(starts) - 1):
        at = starts[i]
        out[at] = first_byte
        at += 1
        left = remaining[i]
        while left > 0x7F:
            out[at] = (left & 0x7F) | 0x80
            left >>= 7
            at += 1
        out[at] = left
        at += 1
        size = topic_at[i + 1] - topic_at[i]
        out[at] = size >> 8
        out[at + 1] = size & 0xFF
        at += 2
        out[at : at + size] = topics[topic_at[i] : topic_at[i + 1]]
        size = payload_at[i + 1] - payload_at[i]
        # the payload ends the packet; with QoS 1 the packet id sits just before it
        out[starts[i + 1] - size : starts[i + 1]] = payloads[payload_at[i] : payload_at[i + 1]]
