"""Retention: a daily job deleting, in every target of every stream, whole days older than the stream's
`retention_days`. Each stream's rule (from its domain's record) says which resources it needs and how each
target deletes before a cutoff."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import dagster as dg

from synth_platform.automation.live import KIND_TAG
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.delta import DeltaResource
from synth_platform.sinks.files import BucketResource
from synth_platform.sinks.tinybird import TinybirdResource
from synth_platform.world.windows import Window

RETENTION_JOB = "retention"


class Targets(Protocol):
    """The op's resources, of which a rule uses those it names in `resource_keys`."""

    database: DatabaseResource
    bucket: BucketResource
    delta: DeltaResource
    tinybird: TinybirdResource


# (resources, cutoff) -> {target description: rows/files/objects deleted}
Delete = Callable[[Targets, datetime], dict[str, int]]


@dataclass(frozen=True)
class RetentionRule:
    stream: str
    days: int
    resource_keys: frozenset[str]
    delete: Delete


def cutoff_for(days: int, now: datetime) -> datetime:
    """Start of the oldest kept day: today and the `days` days before it stay."""
    return Window.for_day(now.date()).start - timedelta(days=days)


def _expire_op(rule: RetentionRule, clock: Callable[[], datetime]) -> dg.OpDefinition:
    @dg.op(
        name=f"expire_{rule.stream}",
        required_resource_keys=set(rule.resource_keys),
        description=f"Delete {rule.stream} older than {rule.days} days in each of its targets.",
    )
    def _expire(context: dg.OpExecutionContext) -> None:
        cutoff = cutoff_for(rule.days, clock())
        deleted = rule.delete(context.resources, cutoff)
        for target, n in deleted.items():
            context.log.info(f"{rule.stream}: deleted {n} before {cutoff.isoformat()} in {target}")
        context.add_output_metadata(
            {"cutoff": cutoff.isoformat(), "deleted": dg.MetadataValue.json(deleted), "retention_days": rule.days}
        )

    return _expire


def retention_job(rules: Sequence[RetentionRule], clock: Callable[[], datetime]) -> dg.JobDefinition:
    ops = [_expire_op(rule, clock) for rule in rules]

    @dg.job(name=RETENTION_JOB, tags={KIND_TAG: "retention"}, description="Delete data past each stream's retention.")
    def _retention():
        for op in ops:
            op()

    return _retention
