"""config/analytics.yaml: top devices, histograms, the Tinybird transfer and the query load test."""

from __future__ import annotations

from typing import Literal

import pydantic

from synth_platform.specs.loader import Spec

FEATURES = ("power_usage_kwh", "meter_power_kw", "meter_voltage_v")
DEFAULT_EDGES = {
    "power_usage_kwh": [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0],
    "meter_power_kw": [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0],
    "meter_voltage_v": [220.0, 225.0, 228.0, 230.0, 232.0, 235.0, 240.0],
}


class TransferSpec(Spec):
    """A Tinybird pipe endpoint pulled into a database table, incrementally on its event time."""

    pipe: str = pydantic.Field("estore_events_range", pattern=r"^\w+$", description="Pipe with start/end/limit/offset")
    table: str = pydantic.Field("estore_events_pulled", pattern=r"^\w+$", description="Database table to upsert into")
    key: list[str] = pydantic.Field(["event_id"], min_length=1, description="Columns that identify a row")
    time_column: str = pydantic.Field("timestamp", description="Event time the watermark follows")
    page_size: int = pydantic.Field(10_000, ge=1, le=1_000_000, description="Rows per request (limit)")
    lookback_seconds: int = pydantic.Field(
        300, ge=0, description="Re-read this much before the watermark, for late events (upserts make it safe)"
    )
    start: str = pydantic.Field("1970-01-01T00:00:00Z", description="Where the first pull starts (ISO 8601)")


class LoadTestSpec(Spec):
    """A bounded query load: the job stops at duration_seconds or max_requests per target, whichever is first."""

    concurrency: int = pydantic.Field(4, ge=1, le=64, description="Requests in flight at once")
    requests_per_second: float = pydantic.Field(50.0, gt=0, le=10_000, description="Open-loop request rate")
    duration_seconds: float = pydantic.Field(10.0, gt=0, le=3600, description="Longest run per target")
    max_requests: int = pydantic.Field(2_000, ge=1, le=1_000_000, description="Most requests per target")
    targets: list[Literal["database", "tinybird"]] = pydantic.Field(["database", "tinybird"], min_length=1)
    allow_remote: bool = pydantic.Field(
        False, description="Load only loopback targets unless true (never load a shared server by accident)"
    )


class AnalyticsSpec(Spec):
    top_n: int = pydantic.Field(10, ge=1, le=1000, description="Devices per top list")
    relative_to: Literal["latest_reading", "now"] = pydantic.Field(
        "latest_reading", description="Past hour/minute end at the newest reading of each feature, or at now"
    )
    histogram_edges: dict[Literal[FEATURES], list[float]] = pydantic.Field(  # type: ignore[valid-type]
        default_factory=lambda: dict(DEFAULT_EDGES),
        description="Bucket edges per feature (a feature left out keeps its default); buckets are (-inf, e0), "
        "[e0, e1), ..., [en, inf)",
    )
    transfer: TransferSpec = TransferSpec()
    load_test: LoadTestSpec = LoadTestSpec()

    @pydantic.field_validator("histogram_edges")
    @classmethod
    def _increasing(cls, edges: dict[str, list[float]]) -> dict[str, list[float]]:
        for name, values in edges.items():
            if not values or any(b <= a for a, b in zip(values, values[1:], strict=False)):
                raise ValueError(f"{name}: edges must be a non-empty, strictly increasing list")
        return {**DEFAULT_EDGES, **edges}
