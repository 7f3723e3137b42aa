"""Query results shaped for people: top lists and histograms as Arrow tables and Markdown."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa


@dataclass(frozen=True)
class TopRow:
    device_id: int
    value: float
    at: datetime


def as_utc(value: datetime | str) -> datetime:
    """Drivers return naive UTC (MySQL, SQLite) or aware (PostgreSQL) datetimes, SQLite text via raw SQL."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def top_rows(rows: Iterable[Sequence]) -> list[TopRow]:
    return [TopRow(int(d), float(v), as_utc(at)) for d, v, at in rows]


def bucket_labels(edges: Sequence[float]) -> list[str]:
    inner = [f"[{a:g}, {b:g})" for a, b in zip(edges, edges[1:], strict=False)]
    return [f"< {edges[0]:g}", *inner, f">= {edges[-1]:g}"]


def histogram_counts(rows: Iterable[Sequence], buckets: int) -> dict[int, list[int]]:
    """(device_id, bucket, readings) rows -> counts per bucket for each device."""
    out: dict[int, list[int]] = {}
    for device, bucket, readings in rows:
        out.setdefault(int(device), [0] * buckets)[int(bucket)] = int(readings)
    return out


def status_counts(rows: Iterable[Sequence], intervals: int, devices: Iterable[int] = ()) -> dict[int, list[int]]:
    """(device_id, reported) rows -> [reported, missing] per device, of the window's `intervals`. Devices listed
    in `devices` but without a reading count as missing throughout."""
    out = {int(d): [0, intervals] for d in devices}
    for device, reported in rows:
        out[int(device)] = [int(reported), intervals - int(reported)]
    return dict(sorted(out.items()))


def top_table(rows: list[TopRow]) -> pa.Table:
    return pa.table(
        {
            "rank": list(range(1, len(rows) + 1)),
            "device_id": [r.device_id for r in rows],
            "max": [r.value for r in rows],
            "at (UTC)": [r.at.strftime("%Y-%m-%d %H:%M:%S") for r in rows],
        }
    )


def histogram_table(
    labels: list[str], values: dict[int, list[int]], status: dict[int, list[int]], intervals: int
) -> pa.Table:
    """One row per device: readings per bucket, their total, and reported / missing intervals."""
    devices = sorted(set(values) | set(status))
    empty = [0] * len(labels)
    columns: dict[str, list] = {"device_id": devices}
    for i, label in enumerate(labels):
        columns[label] = [values.get(d, empty)[i] for d in devices]
    columns["readings"] = [sum(values.get(d, empty)) for d in devices]
    columns["reported"] = [status.get(d, [0, intervals])[0] for d in devices]
    columns["missing"] = [status.get(d, [0, intervals])[1] for d in devices]
    return pa.table(columns)
