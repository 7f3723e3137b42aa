"""Retention: a daily job deleting, in every target of every stream, whole days older than the stream's
`retention_days`. Each stream's rule says which resources it needs and how each target deletes before a cutoff."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import dagster as dg

from synth_platform.automation.live import KIND_TAG
from synth_platform.specs import PlatformSpec
from synth_platform.world.windows import Window

RETENTION_JOB = "retention"

# (resources, cutoff) -> {target description: rows/files/objects deleted}
Delete = Callable[[Any, datetime], dict[str, int]]


@dataclass(frozen=True)
class RetentionRule:
    stream: str
    days: int
    resource_keys: frozenset[str]
    delete: Delete


def cutoff_for(days: int, now: datetime) -> datetime:
    """Start of the oldest kept day: today and the `days` days before it stay."""
    return Window.for_day(now.date()).start - timedelta(days=days)


def _power(spec: Any) -> list[RetentionRule]:
    from synth_platform.assets.power import USAGE_TABLE

    def delete(resources: Any, cutoff: datetime) -> dict[str, int]:
        db = resources.database
        db.ensure_table(USAGE_TABLE)
        return {f"{db.redacted_url} table power_usage": db.delete_before(USAGE_TABLE, "timestamp", cutoff)}

    return [RetentionRule("power_usage", spec.retention_days, frozenset({"database"}), delete)]


def _meters(spec: Any) -> list[RetentionRule]:
    from synth_platform.assets.meters import READINGS

    def delete(resources: Any, cutoff: datetime) -> dict[str, int]:
        return {resources.bucket.uri(f"{READINGS}/"): resources.bucket.delete_before(READINGS, cutoff.date())}

    return [RetentionRule(READINGS, spec.retention_days, frozenset({"bucket"}), delete)]


def _estore(spec: Any) -> list[RetentionRule]:
    from synth_platform.assets.estore import delete_expired

    def delete(resources: Any, cutoff: datetime) -> dict[str, int]:
        return delete_expired(spec, resources.tinybird, resources.database, cutoff)

    return [RetentionRule("estore_events", spec.retention_days, frozenset({"tinybird", "database"}), delete)]


def _tables(domain: Any) -> list[RetentionRule]:
    from synth_platform.assets.tables import expire

    def rule(table: Any) -> RetentionRule:
        def delete(resources: Any, cutoff: datetime) -> dict[str, int]:
            return expire(table, resources.database, resources.delta, cutoff)

        return RetentionRule(table.name, table.spec.retention_days, frozenset({"database", "delta"}), delete)

    tables = domain.catalog.tables.values()
    return [rule(t) for t in tables if t.spec.is_append and t.spec.retention_days]


# domain -> its streams' rules, from the domain's spec
DOMAIN_RULES: dict[str, Callable[[Any], list[RetentionRule]]] = {
    "power": _power,
    "meters": _meters,
    "estore": _estore,
    "tables": _tables,
}


def retention_rules(platform: PlatformSpec) -> list[RetentionRule]:
    return [rule for d in platform.world.domains if d in DOMAIN_RULES for rule in DOMAIN_RULES[d](platform.get(d))]


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


def retention_job(rules: list[RetentionRule], clock: Callable[[], datetime]) -> dg.JobDefinition:
    ops = [_expire_op(rule, clock) for rule in rules]

    @dg.job(name=RETENTION_JOB, tags={KIND_TAG: "retention"}, description="Delete data past each stream's retention.")
    def _retention():
        for op in ops:
            op()

    return _retention
