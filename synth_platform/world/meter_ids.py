"""Meter ids: unique, drawn from a large id space, a function of (seed, fleet index) alone.

Meter i draws candidate numbers hash(seed, i, attempt) for attempt = 0, 1, ... and takes the first one the Bloom
filter has not seen. Indices are resolved in order, so the first N ids of a larger fleet are exactly the ids of a
fleet of N. The filter has a fixed capacity (independent of the fleet size, which keeps that promise even for its
rare false positives, which only skip a candidate) and a fixed memory of about 36 MB for up to 10M meters. It has
no false negatives, so a duplicate is always rejected.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import rbloom

from synth_platform.specs.meters import IdFormat
from synth_platform.world import seeding

MAX_FLEET = 10_000_000
_FALSE_POSITIVE_RATE = 1e-6
_VECTOR_ATTEMPTS = 4  # candidates drawn per meter up front; more are drawn one by one (rare)
_CHUNK = 262_144
_SPACE = {"mac": 1 << 48, "mac8": 100_000_000}
_MIX = 0x9E3779B97F4A7C15F39CC0605CEDC835
_MASK128 = (1 << 128) - 1


def _bloom_hash(number: int) -> int:
    # rbloom wants a signed 128-bit hash; Python's own hash() is not stable across processes for every type.
    return ((number * _MIX) & _MASK128) - (1 << 127)


def _candidates(key: np.uint64, index: np.ndarray, attempts: np.ndarray, space: int) -> np.ndarray:
    return seeding.hash64(key, index, attempts) % np.uint64(space)


def _next_free(key: np.uint64, i: int, options: list[int], seen: rbloom.Bloom, space: int) -> int:
    for c in options[1:]:
        if c not in seen:
            return c
    attempt = len(options)
    while True:
        c = int(_candidates(key, np.int64(i), np.int64(attempt), space))
        if c not in seen:
            return c
        attempt += 1


def id_numbers(seed: int, count: int, id_format: IdFormat = "mac") -> np.ndarray:
    """The id numbers of meters 0..count-1 (uint64; see `format_ids`)."""
    if not 0 <= count <= MAX_FLEET:
        raise ValueError(f"fleet size {count} is outside 0..{MAX_FLEET:,}")
    space = _SPACE[id_format]
    key = seeding.stream_key(seed, "meters", "id", id_format)
    seen = rbloom.Bloom(MAX_FLEET, _FALSE_POSITIVE_RATE, hash_func=_bloom_hash)
    out = np.empty(count, dtype=np.uint64)
    for start in range(0, count, _CHUNK):
        index = np.arange(start, min(start + _CHUNK, count), dtype=np.int64)
        drawn = _candidates(key, index[:, None], np.arange(_VECTOR_ATTEMPTS), space).tolist()
        chosen = []
        for i, options in zip(index.tolist(), drawn, strict=True):
            number = options[0]
            if number in seen:
                number = _next_free(key, i, options, seen, space)
            seen.add(number)
            chosen.append(number)
        out[start : start + len(chosen)] = chosen
    return out


def format_ids(numbers: np.ndarray, id_format: IdFormat = "mac") -> np.ndarray:
    """Fixed-width ASCII ids as a (n, width) uint8 matrix: AA:BB:CC:DD:EE:FF or MAC%08d."""
    numbers = np.asarray(numbers, dtype=np.uint64)
    if id_format == "mac":
        hex_digits = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)
        out = np.full((len(numbers), 17), ord(":"), dtype=np.uint8)
        for byte in range(6):
            value = (numbers >> np.uint64(8 * (5 - byte))) & np.uint64(0xFF)
            out[:, 3 * byte] = hex_digits[(value >> np.uint64(4)).astype(np.intp)]
            out[:, 3 * byte + 1] = hex_digits[(value & np.uint64(0xF)).astype(np.intp)]
        return out
    out = np.empty((len(numbers), 11), dtype=np.uint8)
    out[:, :3] = np.frombuffer(b"MAC", dtype=np.uint8)
    rest = numbers.copy()
    for pos in range(10, 2, -1):
        out[:, pos] = (rest % np.uint64(10)).astype(np.uint8) + ord("0")
        rest //= np.uint64(10)
    return out


def id_strings(numbers: np.ndarray, id_format: IdFormat = "mac") -> pa.Array:
    matrix = format_ids(numbers, id_format)
    width = matrix.shape[1]
    offsets = pa.py_buffer(np.arange(0, (len(matrix) + 1) * width, width, dtype=np.int32).tobytes())
    return pa.Array.from_buffers(pa.string(), len(matrix), [None, offsets, pa.py_buffer(matrix.tobytes())])
