"""A domain outside the package, as a new stream would start: its spec, world, stream and wiring, one record, and
a registration. Importing this package registers it; nothing shared is edited."""

from datetime import datetime

from synth_platform.automation.retention import RetentionRule, Targets
from synth_platform.domains import REGISTRY, Domain
from synth_platform.specs.loader import load
from synth_platform_tests.counter_domain import assets, stream
from synth_platform_tests.counter_domain.spec import CounterSpec


def retention(spec: CounterSpec) -> list[RetentionRule]:
    def delete(targets: Targets, cutoff: datetime) -> dict[str, int]:
        return stream.delete_before(targets.database, cutoff)

    return [RetentionRule("counter_ticks", spec.retention_days, frozenset({"database"}), delete)]


DOMAIN = REGISTRY.register(
    Domain("counter", lambda config: load(CounterSpec, config / "counter.yaml"), assets.build, retention)
)
