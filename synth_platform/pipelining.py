"""Overlapping generation with writing: a window prefetched while the previous one is written, and blocks of a
window computed by a small pool in order. numpy, arrow, the NDJSON renderer and gzip release the GIL, so the
threads run at once; both helpers bound how many results are held, so memory stays flat."""

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

WORKERS = min(2, os.cpu_count() or 1)


def prefetched(produce: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[T, R]]:
    """Yield (item, produce(item)) in order, computing the next result in a background thread while the
    caller consumes the current one; at most two results are held in memory."""
    if not items:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
        pending = pool.submit(produce, items[0])
        for i, item in enumerate(items):
            result = pending.result()
            if i + 1 < len(items):
                pending = pool.submit(produce, items[i + 1])
            yield item, result


def ordered(jobs: Iterable[Callable[[], T]], workers: int = WORKERS, ahead: int = 2 * WORKERS) -> Iterator[T]:
    """Results of `jobs` in order, computed by `workers` threads with at most `ahead` finished or running."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix="blocks")
    pending: deque = deque()
    try:
        for job in jobs:
            pending.append(pool.submit(job))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
