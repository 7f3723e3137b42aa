"""E-store events: config/estore.yaml; events into Tinybird (and optionally the SQL database)."""

from datetime import datetime

from synth_platform.assets import estore as assets
from synth_platform.automation.retention import RetentionRule, Targets
from synth_platform.domains.record import Domain
from synth_platform.specs.estore import EstoreSpec
from synth_platform.specs.loader import load
from synth_platform.streams.estore import delete_expired


def retention(spec: EstoreSpec) -> list[RetentionRule]:
    def delete(targets: Targets, cutoff: datetime) -> dict[str, int]:
        return delete_expired(spec, targets.tinybird, targets.database, cutoff)

    return [RetentionRule("estore_events", spec.retention_days, frozenset({"tinybird", "database"}), delete)]


DOMAIN = Domain("estore", lambda config: load(EstoreSpec, config / "estore.yaml"), assets.build, retention)
