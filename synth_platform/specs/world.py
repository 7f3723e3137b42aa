"""config/world.yaml: the seed, the calendar and which domains are switched on."""

from __future__ import annotations

from datetime import date
from typing import Literal

import pydantic

from synth_platform.specs.loader import Spec

Domain = Literal["power", "meters", "tables", "estore", "analytics"]


class WorldSpec(Spec):
    seed: int = pydantic.Field(ge=0, lt=2**63, description="Root of every random draw")
    start_date: date = pydantic.Field(description="First daily partition (UTC)")
    demo_days: int = pydantic.Field(7, ge=1, le=366, description="Days `make run` backfills, ending today")
    domains: list[Domain] = pydantic.Field(min_length=1)

    @pydantic.field_validator("domains")
    @classmethod
    def _unique(cls, domains: list[str]) -> list[str]:
        if len(set(domains)) != len(domains):
            raise ValueError("a domain is listed twice")
        return domains
