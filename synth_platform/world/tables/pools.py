"""Faker values without a Faker call per row.

A call site with constant arguments draws a pool of `pool_size` values once, from a Faker instance seeded by
the site's key; rows index into the pool with a hashed uniform. A call site whose arguments vary by row calls
Faker per row, seeded by (site key, row id). Values of unique columns get the row id worked in, so they stay
unique; uuid4 is built from the row's hash (a bijection of the row id, so never repeated).

Faker runs with a reference instant (clock.py): a pool's values are drawn at its table's reference, per-row calls
at each row's own. Every value comes back through values.plain, so expressions only ever see plain data.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
from faker import Faker

from synth_platform.world import seeding
from synth_platform.world.tables.clock import reference, referenced_faker
from synth_platform.world.tables.values import RowError, Value, from_objects, objects, plain


@functools.lru_cache(maxsize=8)
def faker_for(locale: str | tuple[str, ...]) -> Faker:
    """A Faker to check provider names and arguments against (construction is slow, so shared)."""
    return referenced_faker(Faker(list(locale) if isinstance(locale, tuple) else locale))


class FakerSource:
    """Pools of one locale; pools are cached per call site, so memory is bounded by the spec (sites x pool_size)."""

    def __init__(self, locale: str | tuple[str, ...], pool_size: int, max_value_bytes: int):
        self.fake = referenced_faker(Faker(list(locale) if isinstance(locale, tuple) else locale))
        self.pool_size = pool_size
        self.max_value_bytes = max_value_bytes
        self._pools: dict[tuple[int, str, datetime], np.ndarray] = {}
        self._lock = threading.Lock()  # seeding then drawing must not interleave

    def pool(self, key: np.uint64, provider: str, args: tuple, kwargs: dict, at: datetime) -> np.ndarray:
        cache_key = (int(key), provider, at)
        if cache_key not in self._pools:
            fn = getattr(self.fake, provider)
            with self._lock, reference(at):
                self.fake.seed_instance(int(key))
                values = [plain(fn(*args, **kwargs), self.max_value_bytes) for _ in range(self.pool_size)]
            self._pools[cache_key] = from_objects(values)
        return self._pools[cache_key]

    def per_row(
        self,
        key: np.uint64,
        row_ids: np.ndarray,
        provider: str,
        args: list,
        kwargs: dict,
        at: np.ndarray | datetime,
        check: Callable[[Any, Any], None] | None = None,
    ) -> np.ndarray:
        """One call per row, seeded by (key, row id), at the row's reference instant (`at`: one for all rows or
        datetime64 per row)."""
        n = len(row_ids)
        seeds = seeding.hash64(key, row_ids).tolist()
        columns = [objects(a, n) for a in args]
        named = {k: objects(v, n) for k, v in kwargs.items()}
        instants = [at] * n if isinstance(at, datetime) else [t.replace(tzinfo=UTC) for t in objects(at, n)]
        fn = getattr(self.fake, provider)
        values = []
        with self._lock:
            for i, seed in enumerate(seeds):
                row_args, row_kwargs = [c[i] for c in columns], {k: v[i] for k, v in named.items()}
                try:
                    if check is not None:
                        check(row_args, row_kwargs)
                    with reference(instants[i]):
                        self.fake.seed_instance(seed)
                        values.append(plain(fn(*row_args, **row_kwargs), self.max_value_bytes))
                except Exception as exc:
                    raise RowError(i, exc) from exc
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
