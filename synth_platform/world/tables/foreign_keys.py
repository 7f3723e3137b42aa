"""Choosing parent rows in O(1) per child row, from hashed uniforms: no lookups, no state.

Parents are addressed by index 0..count-1 (parent row id = parent start_row_id + index); `count` is how many
parent rows exist when the child row happens, so it may differ per child row.
- uniform: every existing parent equally likely.
- zipf: P(index i) ~ 1/(i+1)^param (table-faker's default param 1.2), the earliest parents most popular; drawn
  by inverting the continuous power law's CDF.
- weighted_parent: P(parent) ~ weights[str(parent's parent_attr)] (unlisted values weigh 1.0, as in
  table-faker), by rejection sampling: a uniform candidate is accepted with probability weight / max weight.
- is_unique: a keyed permutation of the parent indices, indexed by the child's ordinal: no parent twice.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from synth_platform.world import seeding

MAX_REJECTION_ROUNDS = 2_000


def uniform_index(u: np.ndarray, counts: np.ndarray | int) -> np.ndarray:
    return np.minimum((u * counts).astype(np.int64), np.asarray(counts) - 1)


def zipf_index(u: np.ndarray, counts: np.ndarray | int, param: float) -> np.ndarray:
    n1 = np.asarray(counts, dtype=np.float64) + 1.0
    if abs(param - 1.0) < 1e-9:
        x = n1**u
    else:
        s = 1.0 - param
        x = (1.0 + u * (n1**s - 1.0)) ** (1.0 / s)
    return np.clip(np.floor(x).astype(np.int64) - 1, 0, np.asarray(counts) - 1)


def weighted_index(
    key: np.uint64,
    row_ids: np.ndarray,
    counts: np.ndarray | int,
    weight_of: Callable[[np.ndarray], np.ndarray],
    max_weight: float,
) -> np.ndarray:
    """Rejection sampling; each round re-draws only the rows still rejected, with the round in the hash."""
    counts = np.broadcast_to(np.asarray(counts, dtype=np.int64), row_ids.shape)
    chosen = np.full(len(row_ids), -1, dtype=np.int64)
    pending = np.arange(len(row_ids))
    for round_ in range(MAX_REJECTION_ROUNDS):
        if not len(pending):
            return chosen
        ids = row_ids[pending]
        candidates = uniform_index(seeding.uniform(key, ids, round_, 0), counts[pending])
        accept = seeding.uniform(key, ids, round_, 1) * max_weight < weight_of(candidates)
        chosen[pending[accept]] = candidates[accept]
        pending = pending[~accept]
    raise ValueError(
        f"weighted_parent: {len(pending)} rows found no parent in {MAX_REJECTION_ROUNDS} rounds "
        "(do the parents' values have positive weights?)"
    )


def permuted_index(key: np.uint64, ordinals: np.ndarray, size: int) -> np.ndarray:
    """A keyed bijection of [0, size): a Feistel network on the next even bit width, cycle-walked."""
    if len(ordinals) and (ordinals.min() < 0 or ordinals.max() >= size):
        raise ValueError(f"is_unique: row ordinal {int(ordinals.max())} has no unused parent among {size}")
    bits = max(2, int(size - 1).bit_length())
    bits += bits % 2
    half = bits // 2
    mask = np.uint64((1 << half) - 1)

    def feistel(x: np.ndarray) -> np.ndarray:
        left, right = x >> np.uint64(half), x & mask
        for r in range(4):
            left, right = right, left ^ (seeding.hash64(key, r, right) & mask)
        return (left << np.uint64(half)) | right

    x = feistel(np.asarray(ordinals, dtype=np.uint64))
    outside = x >= size
    while outside.any():
        x[outside] = feistel(x[outside])
        outside = x >= size
    return x.astype(np.int64)
