"""Shared by the live tests: a controllable clock and the power domain's Definitions with automation on it."""

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.loader import LoadingContextForTest
from dagster._daemon.freshness import FreshnessDaemon

from synth_platform import automation
from synth_platform.domains import REGISTRY, load_platform
from synth_platform.sinks.database import DatabaseResource, database_kind
from synth_platform.specs import PlatformSpec
from synth_platform.world.power_usage import power_usage
from synth_platform.world.windows import Window
from synth_platform_tests.config_files import edit_yaml
from synth_platform_tests.runs import assets_only

HISTORY_JOB = "history"


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def power_platform(config_dir: Path, interval_minutes: int = 10, devices: int = 20, **live: object) -> PlatformSpec:
    edit_yaml(
        config_dir / "world.yaml",
        domains=["power"],
        start_date="2026-01-01",
        **{f"live.{k}": v for k, v in {"initial_cursor": "start_of_day", **live}.items()},
    )
    edit_yaml(config_dir / "power.yaml", **{"devices.count": devices, "usage.interval_minutes": interval_minutes})
    return load_platform(config_dir)


def live_definitions(platform: PlatformSpec, url: str, clock: Clock) -> dg.Definitions:
    """What definitions.py assembles for the power domain, with the automation reading `clock`, plus a
    `history` job (every asset, with the checks it evaluates in its step) for partition runs."""
    power = REGISTRY["power"]
    built = power.build(platform, database_kind(url))
    history = dg.define_asset_job(HISTORY_JOB, selection=assets_only(built))
    domains = dg.Definitions.merge(
        built, dg.Definitions(jobs=[history], resources={"database": DatabaseResource(url=url)})
    )
    rules = power.retention(platform.get("power"))
    return automation.build(platform, domains, clock, rules=rules)


def rows(db: DatabaseResource, w: Window) -> list[tuple]:
    found = db.query(
        "SELECT timestamp, device_id, power_usage_kwh FROM power_usage "
        "WHERE timestamp >= :start AND timestamp < :end ORDER BY timestamp, device_id",
        {"start": w.start, "end": w.end},
    )
    return [(str(ts)[:19], int(d), float(k)) for ts, d, k in found]


def world_rows(platform, w: Window) -> list[tuple]:
    table = power_usage(platform.get("power"), platform.world.seed, w).to_pylist()
    out = [(r["timestamp"].strftime("%Y-%m-%d %H:%M:%S"), r["device_id"], r["power_usage_kwh"]) for r in table]
    return sorted(out)


class _Workspace:
    """What the daemon's freshness loop asks of its workspace: a request context holding the asset graph."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance):
        self.graph, self.instance = defs.resolve_asset_graph(), instance

    def create_request_context(self) -> LoadingContextForTest:
        context = LoadingContextForTest(self.instance)
        context.asset_graph = self.graph
        return context


def freshness_state(defs: dg.Definitions, instance: dg.DagsterInstance, key: dg.AssetKey) -> FreshnessState:
    """One iteration of the daemon's freshness loop over `defs` (at Dagster's clock, which `freeze_time` sets), then
    the state it recorded for `key` in the instance."""
    asyncio.run(FreshnessDaemon()._evaluate_assets(_Workspace(defs, instance)))  # noqa: SLF001
    return instance.get_freshness_state_records([key])[key].freshness_state
