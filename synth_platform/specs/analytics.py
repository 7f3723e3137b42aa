"""config/analytics.yaml: top devices, histograms, the Tinybird transfer and the query load test."""

from __future__ import annotations

from typing import Literal

import pydantic

from synth_platform.specs.loader import Spec


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
    upstream: list[str] = pydantic.Field(
        ["estore_events"], description="Assets whose data the pipe reads (lineage in the asset graph)"
    )


class TransfersSpec(Spec):
    """Tinybird pipes pulled into database tables, each an asset; a sensor requests a pull of all of them."""

    interval_seconds: int = pydantic.Field(300, ge=10, le=86_400, description="How often the transfer sensor pulls")
    pipes: list[TransferSpec] = pydantic.Field(default_factory=lambda: [TransferSpec()])

    @pydantic.field_validator("pipes")
    @classmethod
    def _distinct_tables(cls, pipes: list[TransferSpec]) -> list[TransferSpec]:
        tables = [p.table for p in pipes]
        if len(set(tables)) != len(tables):
            raise ValueError(f"two pipes land in the same table ({tables}); each needs its own")
        return pipes


class LoadTestSpec(Spec):
    """A bounded query load: the job stops at duration_seconds or max_requests per target, whichever is first."""

    concurrency: int = pydantic.Field(4, ge=1, le=64, description="Requests in flight at once")
    requests_per_second: float = pydantic.Field(50.0, gt=0, le=10_000, description="Open-loop request rate")
    duration_seconds: float = pydantic.Field(10.0, gt=0, le=3600, description="Longest run per target")
    max_requests: int = pydantic.Field(2_000, ge=1, le=1_000_000, description="Most requests per target")
    targets: list[Literal["database", "tinybird"]] = pydantic.Field(["database", "tinybird"], min_length=1)
    max_period_days: int = pydantic.Field(
        90, ge=1, le=3660, description="Longest period of the city query (readings of one city over a period)"
    )
    allow_remote: bool = pydantic.Field(
        False, description="Load only loopback targets unless true (never load a shared server by accident)"
    )


class AnalyticsSpec(Spec):
    top_n: int = pydantic.Field(10, ge=1, le=1000, description="Devices per top list")
    relative_to: Literal["latest_reading", "now"] = pydantic.Field(
        "latest_reading", description="Past hour/minute end at the newest reading of each feature, or at now"
    )
    histogram_edges: dict[str, list[float]] = pydantic.Field(
        default_factory=dict,
        description="Bucket edges per feature name (a feature left out keeps its default); buckets are (-inf, e0), "
        "[e0, e1), ..., [en, inf)",
    )
    transfer: TransfersSpec = TransfersSpec()
    load_test: LoadTestSpec = LoadTestSpec()

    @pydantic.field_validator("histogram_edges")
    @classmethod
    def _increasing(cls, edges: dict[str, list[float]]) -> dict[str, list[float]]:
        for name, values in edges.items():
            if not values or any(b <= a for a, b in zip(values, values[1:], strict=False)):
                raise ValueError(f"{name}: edges must be a non-empty, strictly increasing list")
        return edges
