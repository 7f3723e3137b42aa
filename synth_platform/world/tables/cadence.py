"""Row ids and event times of append tables.

An append table starts with `row_count` initial rows (ids start_row_id .. start_row_id+row_count-1), stamped at
the world's start (00:00 UTC of start_date). Then stream row j (j = 0, 1, ...) has id start_row_id+row_count+j and
event time origin + floor(j * 60 s / rows_per_minute): every minute holds exactly rows_per_minute rows, evenly
spread. The rows of any window [a, b) are the stream rows with ceil((a-origin)*R/60s) <= j < ceil((b-origin)*R/60s)
(plus the initial rows when the window holds the origin), so a minute window is computable on its own and a day
is exactly the union of its minute windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synth_platform.world.windows import Window

MINUTE_US = 60_000_000


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class Cadence:
    start_row_id: int
    initial_rows: int
    rows_per_minute: int
    origin_us: int  # world start, microseconds since the epoch

    @property
    def first_stream_id(self) -> int:
        return self.start_row_id + self.initial_rows

    def _stream_index(self, time_us: int) -> int:
        """First stream index whose event time is >= time_us."""
        return _ceil_div(max(time_us - self.origin_us, 0) * self.rows_per_minute, MINUTE_US)

    def row_ids(self, window: Window) -> np.ndarray:
        a, b = window.start_s * 1_000_000, window.end_s * 1_000_000
        stream = np.arange(self._stream_index(a), self._stream_index(b), dtype=np.int64) + self.first_stream_id
        if a <= self.origin_us < b and self.initial_rows:
            return np.concatenate([np.arange(self.start_row_id, self.first_stream_id, dtype=np.int64), stream])
        return stream

    def count(self, window: Window) -> int:
        a, b = window.start_s * 1_000_000, window.end_s * 1_000_000
        initial = self.initial_rows if a <= self.origin_us < b else 0
        return initial + self._stream_index(b) - self._stream_index(a)

    def event_times_us(self, row_ids: np.ndarray) -> np.ndarray:
        j = np.maximum(np.asarray(row_ids, dtype=np.int64) - self.first_stream_id, 0)
        r = self.rows_per_minute
        return self.origin_us + (j // r) * MINUTE_US + ((j % r) * MINUTE_US) // r  # no int64 overflow

    def event_times(self, row_ids: np.ndarray) -> np.ndarray:
        return self.event_times_us(row_ids).astype("datetime64[us]")

    def rows_existing_at(self, times_us: np.ndarray) -> np.ndarray:
        """How many rows (initial + stream) have an event time <= each time (times before the origin: 0)."""
        rel = np.asarray(times_us, dtype=np.int64) - self.origin_us + 1
        r = self.rows_per_minute
        stream = (rel // MINUTE_US) * r + -(-((rel % MINUTE_US) * r) // MINUTE_US)
        return np.where(rel > 0, self.initial_rows + stream, 0)
