"""The power world: config/power.yaml; device_metadata and power_usage in the SQL database."""

from datetime import datetime

from synth_platform.analytics.live_tables import expire_rollups
from synth_platform.analytics.queries import POWER_USAGE
from synth_platform.assets import power as assets
from synth_platform.automation.retention import RetentionRule, Targets
from synth_platform.domains.record import Domain
from synth_platform.specs.loader import load
from synth_platform.specs.power import PowerSpec
from synth_platform.streams import power as stream


def retention(spec: PowerSpec) -> list[RetentionRule]:
    def delete(targets: Targets, cutoff: datetime) -> dict[str, int]:
        deleted = stream.delete_before(targets.database, cutoff)
        return {**deleted, **expire_rollups(targets.database, [POWER_USAGE.name], cutoff)}

    return [RetentionRule("power_usage", spec.retention_days, frozenset({"database"}), delete)]


DOMAIN = Domain("power", lambda config: load(PowerSpec, config / "power.yaml"), assets.build, retention)
