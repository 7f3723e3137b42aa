"""An ordered, bounded parallel map: block work (parse, check, render) runs on threads, results come back in
file order, and at most `jobs + 1` items are in flight, so memory stays bounded whatever the file size. Errors
come in file order too, so the first bad line of a file is the one reported."""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

In = TypeVar("In")
Out = TypeVar("Out")
_END = object()


def ordered_map(fn: Callable[[In], Out], items: Iterable[In], jobs: int) -> Iterator[Out]:
    if jobs <= 1:
        yield from map(fn, items)
        return
    pool = ThreadPoolExecutor(jobs, thread_name_prefix="fileutils")
    pending: deque[Future[Out]] = deque()
    items = iter(items)
    try:
        while True:
            try:
                item = next(items, _END)
            except Exception:  # items read before the failing one come first, as in a serial run
                while pending:
                    yield pending.popleft().result()
                raise
            if item is _END:
                break
            pending.append(pool.submit(fn, item))
            if len(pending) > jobs:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # never join from a finalizer; running work just ends


def prefetch(items: Iterator[In], depth: int = 2) -> Iterator[In]:
    """`items`, produced on a thread up to `depth` ahead (reading and scanning the next block while this one is
    written); an error is raised where its item would have come."""
    ready: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

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
            ready.put((_END, None))
        except BaseException as exc:  # handed to the consumer
            ready.put((_END, exc))

    thread = threading.Thread(target=produce, name="fileutils-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
