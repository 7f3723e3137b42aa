"""Counter-based randomness: every draw is a hash of (seed, stream, column, entity, time).

A value never depends on which other values were drawn before it, so any slice of the world
(one device, one hour, one live window) regenerates alone and equals the same slice of a bigger run.
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TWO_POW_53 = float(2**53)


def stream_key(seed: int, *names: str | int) -> np.uint64:
    """A 64-bit key for a named stream/column, stable across processes and platforms."""
    text = "\x1f".join([str(seed), *map(str, names)]).encode()
    return np.uint64(int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little"))


def _splitmix(x: np.ndarray) -> np.ndarray:
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def hash64(key: np.uint64, *parts: np.ndarray | int) -> np.ndarray:
    """Mix a key with integer arrays (broadcast together) into uniformly distributed uint64s.

    Each part costs one splitmix round at the broadcast shape reached so far, so pass entity-level parts
    first and the finest (e.g. the time slot) last: the early rounds then run on small arrays."""
    with np.errstate(over="ignore"):
        h = np.asarray(key, dtype=np.uint64)
        for part in parts:
            h = _splitmix(h ^ np.asarray(part).astype(np.uint64, copy=False))
        return h


def uniform(key: np.uint64, *parts: np.ndarray | int) -> np.ndarray:
    """Floats in [0, 1) with 53 random bits."""
    return (hash64(key, *parts) >> np.uint64(11)).astype(np.float64) / _TWO_POW_53


def _halves(key: np.uint64, *parts: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """The high and low 32-bit halves of each hash: two draws for the price of one mixing round."""
    h = hash64(key, *parts)
    halves = np.ascontiguousarray(h).reshape(*np.shape(h), 1).view(np.uint32)  # [low, high] on little-endian
    return (halves[..., 1], halves[..., 0]) if sys.byteorder == "little" else (halves[..., 0], halves[..., 1])


def normal(key: np.uint64, *parts: np.ndarray | int) -> np.ndarray:
    """Standard normals by Box-Muller over the two halves of one hash."""
    high, low = _halves(key, *parts)
    u1 = (high.astype(np.float64) + 1.0) / 2.0**32  # (0, 1], safe for log
    u2 = low.astype(np.float64) / 2.0**32
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def triangular(key: np.uint64, *parts: np.ndarray | int) -> np.ndarray:
    """Floats in [-1, 1) with a triangular density (sd 1/sqrt(6)): the sum of the two halves of one hash. A bounded
    jitter at a fraction of a normal's cost (no log or cos), for draws made once per reading."""
    high, low = _halves(key, *parts)
    return np.add(high, low, dtype=np.float64) / 2.0**32 - 1.0


def integers(key: np.uint64, high: int, *parts: np.ndarray | int) -> np.ndarray:
    """Integers in [0, high) (multiply-shift on 53 bits; bias is negligible for high << 2**53)."""
    return (uniform(key, *parts) * high).astype(np.int64)


def choice(key: np.uint64, weights: np.ndarray, *parts: np.ndarray | int) -> np.ndarray:
    """Indices into `weights` drawn with those (unnormalised) probabilities."""
    cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
    return np.searchsorted(cdf / cdf[-1], uniform(key, *parts), side="right").clip(0, len(cdf) - 1)


def generator(key: np.uint64, *parts: int) -> np.random.Generator:
    """A numpy Generator for one entity or window, for draws that need a whole distribution at once."""
    return np.random.Generator(np.random.PCG64(int(hash64(key, *parts))))
