"""Starting the same action on several threads at one instant, as parallel steps of one run do."""

from __future__ import annotations

import threading
from collections.abc import Callable


def at_once(action: Callable[[], object], threads: int = 6) -> list[BaseException]:
    """Run `action` on `threads` threads released together by a barrier; the exceptions they raised."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            action()
        except BaseException as exc:  # noqa: BLE001 - returned to the test, which asserts on them
            errors.append(exc)

    started = [threading.Thread(target=run) for _ in range(threads)]
    for t in started:
        t.start()
    for t in started:
        t.join()
    return errors
