"""Overlapping generation with writing: a window prefetched while the previous one is written, and blocks of a
window computed by a small pool in order. numpy, arrow, the NDJSON renderer and gzip release the GIL, so the
threads run at once; both helpers bound how many results are held, so memory stays flat."""

import os
import queue
import threading
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
    """Results of `jobs` in order, computed by `workers` threads with at most `ahead` finished or running. When
    taking the next job fails, the results of the jobs taken before it come first, as in a serial loop."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix="blocks")
    pending: deque = deque()
    jobs = iter(jobs)
    try:
        while True:
            try:
                job = next(jobs, None)
            except Exception:
                while pending:
                    yield pending.popleft().result()
                raise
            if job is None:
                break
            pending.append(pool.submit(job))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        # not waiting: a generator closed by the garbage collector may be closed on one of these threads
        pool.shutdown(wait=False, cancel_futures=True)


def read_ahead(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """`items`, taken on a thread up to `depth` ahead of the caller (the next block read and scanned while this one
    is used); an error is raised where its item would have come."""
    ready: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        ready.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put((end, None))
        except BaseException as exc:  # handed to the caller
            ready.put((end, exc))

    threading.Thread(target=produce, name="read-ahead", daemon=True).start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is end:
                return
            yield item
    finally:
        stop.set()
