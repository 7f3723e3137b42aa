"""Overlap generating the next window with writing the current one."""

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def prefetched(produce: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[T, R]]:
    """Yield (item, produce(item)) in order, computing the next result in a background thread while the
    caller consumes the current one. numpy/arrow release the GIL, so generation runs while the target
    ingests; at most two results are held in memory."""
    if not items:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
        pending = pool.submit(produce, items[0])
        for i, item in enumerate(items):
            result = pending.result()
            if i + 1 < len(items):
                pending = pool.submit(produce, items[i + 1])
            yield item, result
