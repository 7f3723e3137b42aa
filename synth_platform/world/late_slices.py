"""Late files: a live slice of the meter readings whose files arrive with a later live window of the same day.

A slice is an aligned window of `live_slice_seconds`. Whether it is late, and by how many slices, is a hash of
(seed, slice start), so what any live window delivers is known without the runs before it. A slice due after its
day's last slice is not delivered live: the daily close, which writes the whole day, delivers it.
"""

from __future__ import annotations

import numpy as np

from synth_platform.specs.meters import MetersSpec
from synth_platform.world import seeding
from synth_platform.world.windows import DAY_SECONDS, Window, aligned_steps, from_epoch


def delays(spec: MetersSpec, seed: int, starts: np.ndarray) -> np.ndarray:
    """Delay in slices (0: on time) of the slices starting at epoch seconds `starts`."""
    faults = spec.faults
    starts = np.asarray(starts, dtype=np.int64)
    if faults.late_probability == 0:
        return np.zeros(starts.shape, dtype=np.int64)
    key = seeding.stream_key(seed, "meters", "late")
    low, high = faults.late_slices
    late = seeding.uniform(key, starts, 0) < faults.late_probability
    return np.where(late, low + (seeding.uniform(key, starts, 1) * (high - low + 1)).astype(np.int64), 0)


def slice_index(spec: MetersSpec, window: Window) -> int | None:
    """The window's position among its day's slices, None unless it is exactly one aligned slice."""
    step = spec.live_slice_seconds
    if window.seconds != step or window.start_s % step:
        return None
    return window.start_s % DAY_SECONDS // step


def delay_slices(spec: MetersSpec, seed: int, window: Window) -> int:
    """How many live windows late the window's files arrive; 0 for anything but one aligned slice."""
    if slice_index(spec, window) is None:
        return 0
    return int(delays(spec, seed, np.array([window.start_s]))[0])


def arrives_with(spec: MetersSpec, seed: int, window: Window) -> Window | None:
    """The live window whose run delivers `window` (itself when on time); None when it is due after the day's
    last slice and only the daily close delivers it."""
    start = window.start_s + delay_slices(spec, seed, window) * spec.live_slice_seconds
    if start >= window.start_s - window.start_s % DAY_SECONDS + DAY_SECONDS:
        return None
    return Window(from_epoch(start), from_epoch(start + window.seconds))


def delivered_with(spec: MetersSpec, seed: int, window: Window) -> list[Window]:
    """The slices whose files arrive when live window `window` closes, oldest first: earlier slices of the day
    that are due now, then `window` itself unless it is late. A window that is not one aligned slice (a partial
    catch-up window after a cadence change) is delivered as it is."""
    index = slice_index(spec, window)
    if index is None:
        return [window]
    step = spec.live_slice_seconds
    # Only the last `high` slices can be due now; the window itself is due now exactly when its delay is 0.
    starts = window.start_s - step * np.arange(min(spec.faults.late_slices[1], index), -1, -1, dtype=np.int64)
    due = starts[starts + delays(spec, seed, starts) * step == window.start_s]
    return [Window(from_epoch(s), from_epoch(s + step)) for s in due.tolist()]


def late_count(spec: MetersSpec, seed: int, window: Window) -> int:
    """How many whole slices inside `window` are late when delivered live."""
    step = spec.live_slice_seconds
    starts = np.array(aligned_steps(window, step), dtype=np.int64)
    return int(np.count_nonzero(delays(spec, seed, starts[starts + step <= window.end_s])))
