"""Smart meters: config/meters.yaml (with the devices of config/power.yaml); the fleet and daily reading files in
the bucket."""

from datetime import datetime

from synth_platform.assets import meters as assets
from synth_platform.automation.retention import RetentionRule, Targets
from synth_platform.domains.record import Domain
from synth_platform.specs.meters import MetersSpec, load_meters
from synth_platform.streams.meters import READINGS, SHARDS


def retention(spec: MetersSpec) -> list[RetentionRule]:
    def delete(targets: Targets, cutoff: datetime) -> dict[str, int]:
        bucket, day = targets.bucket, cutoff.date()
        # the days' files, then the records of their shards (when days are written in shards)
        return {
            bucket.uri(f"{READINGS}/"): bucket.delete_before(READINGS, day),
            bucket.uri(f"{SHARDS}{READINGS}/"): bucket.delete_before(SHARDS + READINGS, day),
        }

    return [RetentionRule(READINGS, spec.retention_days, frozenset({"bucket"}), delete)]


DOMAIN = Domain("meters", load_meters, lambda platform, _database_kind: assets.build(platform), retention)
