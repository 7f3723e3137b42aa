"""The domain record: everything the platform needs to know about a domain, in one place."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import dagster as dg

from synth_platform.automation.retention import RetentionRule
from synth_platform.specs import PlatformSpec

S = TypeVar("S")


def no_retention(spec: object) -> list[RetentionRule]:
    return []


@dataclass(frozen=True)
class Domain(Generic[S]):
    """A domain (power, meters, ...) as the platform sees it.

    - `load`: its spec from the config folder (raising SpecError naming the file, key path and reason);
    - `build`: its Dagster definitions from the loaded platform and the database kind (for the UI's kinds). Its live
      streams are the partitioned assets it marks with `LIVE_CADENCE_METADATA` (assets/common.py): the automation
      gives each a live sensor, a live job and a freshness policy, and every daily asset joins the daily close;
    - `retention`: its streams' retention rules from its spec (what the retention job deletes, where).
    """

    name: str
    load: Callable[[Path], S]
    build: Callable[[PlatformSpec, str], dg.Definitions]
    retention: Callable[[S], list[RetentionRule]] = field(default=no_retention)


class Registry:
    """The domains `world.yaml` may switch on, by name."""

    def __init__(self) -> None:
        self._domains: dict[str, Domain] = {}

    def register(self, domain: Domain) -> Domain:
        known = self._domains.get(domain.name)
        if known is not None and known is not domain:
            raise ValueError(f"a domain named {domain.name!r} is registered already")
        self._domains[domain.name] = domain
        return domain

    def __getitem__(self, name: str) -> Domain:
        return self._domains[name]

    def __contains__(self, name: object) -> bool:
        return name in self._domains

    def __iter__(self) -> Iterator[Domain]:
        return iter(self._domains.values())

    def names(self) -> list[str]:
        return sorted(self._domains)
