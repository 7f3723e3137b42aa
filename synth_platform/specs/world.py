"""config/world.yaml: the seed, the calendar and which domains are switched on."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

import pydantic

from synth_platform.specs.loader import Spec


def _cron(value: str) -> str:
    from dagster._utils.schedules import is_valid_cron_string  # the same parser the schedules use

    if not is_valid_cron_string(value):
        raise ValueError(f"{value!r} is not a cron expression (5 fields, e.g. '15 0 * * *')")
    return value


class LiveRunAges(Spec):
    """How long a live run stays in Dagster's run history, by outcome (days)."""

    success: float = pydantic.Field(1.0, gt=0, le=3650, description="Days a successful live run is kept")
    failure: float = pydantic.Field(7.0, gt=0, le=3650, description="Days a failed or canceled live run is kept")


class LiveSpec(Spec):
    """Near-real-time delivery: the live sensors, the daily close, retention and freshness."""

    @pydantic.model_validator(mode="before")
    @classmethod
    def _no_freshness_cron(cls, data: Any) -> Any:
        if isinstance(data, dict) and "freshness_cron" in data:
            raise ValueError(
                "freshness_cron is no longer a setting: freshness is Dagster's freshness policy on each live stream, "
                "evaluated by the daemon (freshness_multiple sets its window); remove the key"
            )
        return data

    default_status: Literal["running", "stopped"] = pydantic.Field(
        "running", description="Whether the live sensors and schedules run as soon as the daemon starts"
    )
    min_interval_seconds: int = pydantic.Field(
        10, ge=5, le=3600, description="How often each live sensor is evaluated (the daemon loops every 5 s)"
    )
    max_windows_per_tick: int = pydantic.Field(
        120, ge=1, le=10000, description="Windows one sensor evaluation requests at most (bounded catch-up)"
    )
    max_windows_per_run: int = pydantic.Field(
        30, ge=1, le=1000, description="Contiguous windows of one day a live run writes at most (catch-up batches)"
    )
    max_runs_in_flight: int = pydantic.Field(
        8, ge=1, le=1000, description="No new windows while this many live runs of the stream are queued or running"
    )
    initial_cursor: Literal["start_of_day"] | int = pydantic.Field(
        "start_of_day",
        description="Where a new sensor starts: the start of today (UTC), or N to request only the last N windows",
    )
    freshness_multiple: float = pydantic.Field(
        3.0,
        gt=1,
        le=1000,
        description="A stream's freshness fails after this x its cadence (at least a minute) without a write",
    )
    daily_close_cron: str = pydantic.Field("15 0 * * *", description="When yesterday is closed (UTC)")
    retention_cron: str = pydantic.Field("45 0 * * *", description="When expired data is deleted (UTC)")
    purge_live_runs_after_days: LiveRunAges = LiveRunAges()
    run_history_cron: str = pydantic.Field("30 * * * *", description="When old live runs are deleted (UTC)")

    @pydantic.field_validator("initial_cursor")
    @classmethod
    def _positive(cls, v: str | int) -> str | int:
        if isinstance(v, int) and v < 1:
            raise ValueError("must be 'start_of_day' or a number of windows >= 1")
        return v

    _crons = pydantic.field_validator("daily_close_cron", "retention_cron", "run_history_cron")(_cron)


class TargetsSpec(Spec):
    """Operational knobs per target; their types and bounds are the resources' own (checked in resources.py)."""

    bucket: dict[str, Any] = pydantic.Field(default_factory=dict, description="staging, upload workers, retries")
    delta: dict[str, Any] = pydantic.Field(default_factory=dict, description="storage_options of delta-rs")
    database: dict[str, Any] = pydantic.Field(default_factory=dict, description="connection retries, pool size")
    tinybird: dict[str, Any] = pydantic.Field(default_factory=dict, description="batch sizes, concurrency, retries")


class WorldSpec(Spec):
    seed: int = pydantic.Field(ge=0, lt=2**63, description="Root of every random draw")
    start_date: date = pydantic.Field(description="First daily partition (UTC)")
    demo_days: int = pydantic.Field(7, ge=1, le=366, description="Days `make run` backfills, ending today")
    domains: list[str] = pydantic.Field(min_length=1, description="Domains switched on, by registered name")
    owners: list[str] = pydantic.Field(
        [], description="Owners of every asset, as Dagster shows them: e-mail addresses or team:<name>"
    )
    live: LiveSpec = LiveSpec()
    targets: TargetsSpec = TargetsSpec()

    @pydantic.field_validator("owners")
    @classmethod
    def _owners(cls, owners: list[str]) -> list[str]:
        for owner in owners:
            if not (owner.startswith("team:") and len(owner) > 5) and "@" not in owner:
                raise ValueError(f"{owner!r} is neither an e-mail address nor team:<name>")
        return owners

    @pydantic.field_validator("domains")
    @classmethod
    def _unique(cls, domains: list[str]) -> list[str]:
        if len(set(domains)) != len(domains):
            raise ValueError("a domain is listed twice")
        return domains
