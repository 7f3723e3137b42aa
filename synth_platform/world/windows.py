"""UTC time windows and daily partition keys."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

DAY_SECONDS = 86_400
PARTITION_FORMAT = "%Y-%m-%d"


def utc(value: datetime) -> datetime:
    """Reject naive datetimes instead of guessing their zone; normalise aware ones to UTC."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()} is ambiguous; pass a timezone-aware UTC value")
    return value.astimezone(UTC)


def epoch_seconds(value: datetime) -> int:
    return int(utc(value).timestamp())


@dataclass(frozen=True, order=True)
class Window:
    """Half-open [start, end) in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", utc(self.start))
        object.__setattr__(self, "end", utc(self.end))
        if self.end <= self.start:
            raise ValueError(f"empty window {self.start.isoformat()} .. {self.end.isoformat()}")

    @classmethod
    def for_day(cls, day: date | str) -> Window:
        if isinstance(day, str):
            day = parse_partition_key(day)
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return cls(start, start + timedelta(days=1))

    @property
    def start_s(self) -> int:
        return epoch_seconds(self.start)

    @property
    def end_s(self) -> int:
        return epoch_seconds(self.end)

    @property
    def seconds(self) -> int:
        return self.end_s - self.start_s

    def days(self) -> list[Window]:
        """The day windows this window covers; it must be aligned to whole UTC days."""
        if self.start_s % DAY_SECONDS or self.end_s % DAY_SECONDS:
            raise ValueError(f"window {self} is not aligned to whole UTC days")
        return [Window.for_day(d) for d in _day_range(self.start.date(), self.end.date())]

    def split(self, step_seconds: int) -> Iterator[Window]:
        """Consecutive sub-windows of step_seconds, aligned to the epoch (as live windows are)."""
        if step_seconds <= 0:
            raise ValueError("step_seconds must be positive")
        first = self.start_s - self.start_s % step_seconds
        for s in range(first, self.end_s, step_seconds):
            yield Window(from_epoch(max(s, self.start_s)), from_epoch(min(s + step_seconds, self.end_s)))

    def partition_key(self) -> str:
        return self.start.strftime(PARTITION_FORMAT)

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


def from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def parse_partition_key(key: str) -> date:
    try:
        return datetime.strptime(key, PARTITION_FORMAT).date()
    except ValueError:
        raise ValueError(f"bad partition key {key!r}: expected a UTC day as YYYY-MM-DD") from None


def _day_range(first: date, end: date) -> Iterator[date]:
    d = first
    while d < end:
        yield d
        d += timedelta(days=1)


def aligned_steps(window: Window, step_seconds: int) -> range:
    """Epoch seconds of the step starts that fall inside the window (step-aligned to the epoch)."""
    first = -(-window.start_s // step_seconds) * step_seconds
    return range(first, window.end_s, step_seconds)
