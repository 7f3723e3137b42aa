"""Faker values without a Faker call per row.

A call site with constant arguments draws a pool of `pool_size` values once, from a Faker instance seeded by
the site's key; rows index into the pool with a hashed uniform. A call site whose arguments vary by row calls
Faker per row, seeded by (site key, row id). Values of unique columns get the row id worked in, so they stay
unique; uuid4 is built from the row's hash (a bijection of the row id, so never repeated).
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import numpy as np
from faker import Faker

from synth_platform.world import seeding
from synth_platform.world.tables.values import Value, from_objects, objects


@functools.lru_cache(maxsize=8)
def faker_for(locale: str | tuple[str, ...]) -> Faker:
    """A Faker to check provider names against (construction is slow, so shared)."""
    return Faker(list(locale) if isinstance(locale, tuple) else locale)


class FakerSource:
    """Pools of one locale; pools are cached per call site, so memory is bounded by the spec (sites x pool_size)."""

    def __init__(self, locale: str | tuple[str, ...], pool_size: int):
        self.fake = Faker(list(locale) if isinstance(locale, tuple) else locale)
        self.pool_size = pool_size
        self._pools: dict[tuple[int, str], np.ndarray] = {}
        self._lock = threading.Lock()  # seeding then drawing must not interleave

    def pool(self, key: np.uint64, provider: str, args: tuple, kwargs: dict) -> np.ndarray:
        cache_key = (int(key), provider)
        if cache_key not in self._pools:
            fn = getattr(self.fake, provider)
            with self._lock:
                self.fake.seed_instance(int(key))
                values = [fn(*args, **kwargs) for _ in range(self.pool_size)]
            self._pools[cache_key] = from_objects(values)
        return self._pools[cache_key]

    def per_row(self, key: np.uint64, row_ids: np.ndarray, provider: str, args: list, kwargs: dict) -> np.ndarray:
        n = len(row_ids)
        seeds = seeding.hash64(key, row_ids).tolist()
        columns = [objects(a, n) for a in args]
        named = {k: objects(v, n) for k, v in kwargs.items()}
        fn = getattr(self.fake, provider)
        values = []
        with self._lock:
            for i, seed in enumerate(seeds):
                self.fake.seed_instance(seed)
                values.append(fn(*(c[i] for c in columns), **{k: v[i] for k, v in named.items()}))
        return from_objects(values)


def uuid4_values(key: np.uint64, row_ids: np.ndarray) -> np.ndarray:
    high, low = seeding.hash64(key, row_ids, 0), seeding.hash64(key, row_ids)
    # version 4 and the RFC 4122 variant bits, as uuid.uuid4() sets them
    high = (high & np.uint64(0xFFFFFFFFFFFF0FFF)) | np.uint64(0x4000)
    low = (low & np.uint64(0x3FFFFFFFFFFFFFFF)) | np.uint64(0x8000000000000000)
    text = [f"{h:016x}{lo:016x}" for h, lo in zip(high.tolist(), low.tolist(), strict=True)]
    return from_objects([f"{t[:8]}-{t[8:12]}-{t[12:16]}-{t[16:20]}-{t[20:]}" for t in text])


def with_row_id(values: Value, row_ids: np.ndarray) -> Value:
    """Strings made unique by the row id: local.ID@domain for e-mail addresses, VALUE-ID otherwise.
    Non-string values are left as they are."""
    if not isinstance(values, np.ndarray) or values.dtype != object:
        return values
    out: list[Any] = []
    for v, rid in zip(values.tolist(), row_ids.tolist(), strict=True):
        if not isinstance(v, str):
            out.append(v)
        elif "@" in v:
            local, _, domain = v.rpartition("@")
            out.append(f"{local}.{rid}@{domain}")
        else:
            out.append(f"{v}-{rid}")
    return from_objects(out)
