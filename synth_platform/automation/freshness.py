"""Freshness of live streams: Dagster's own freshness policy on each stream, evaluated by the daemon.

A policy is not a check: no run evaluates it, so a materialization launched from the UI (which adds every check of
the asset) never judges the wall clock, and a past-day backfill never fails on it. The daemon's freshness loop
compares the time since the asset's latest materialization with the windows below and records PASS / WARN / FAIL,
which the UI shows beside the asset. The latest materialization is the one the asset record keeps, so the state
does not depend on runs that the run-history purge deletes.
"""

from datetime import timedelta

import dagster as dg

from synth_platform.automation.live import LiveStream
from synth_platform.specs.world import LiveSpec

# Dagster refuses windows under a minute; a stream with a short cadence fails after a minute without a write.
MIN_WINDOW_SECONDS = 60


def freshness_policy(stream: LiveStream, live: LiveSpec) -> dg.FreshnessPolicy:
    """Fail after `freshness_multiple` cadences (at least a minute) without a write; warn one cadence earlier
    when that is still a minute or more."""
    fail = max(MIN_WINDOW_SECONDS, live.freshness_multiple * stream.cadence_seconds)
    warn = fail - stream.cadence_seconds
    return dg.FreshnessPolicy.time_window(
        fail_window=timedelta(seconds=fail),
        warn_window=timedelta(seconds=warn) if warn >= MIN_WINDOW_SECONDS else None,
    )


def with_freshness(domains: dg.Definitions, streams: list[LiveStream], live: LiveSpec) -> dg.Definitions:
    """The domains' definitions with each live stream carrying its freshness policy."""
    policies = {s.key: freshness_policy(s, live) for s in streams}

    def attach(spec: dg.AssetSpec) -> dg.AssetSpec:
        policy = policies.get(spec.key)
        return dg.apply_freshness_policy(spec, policy) if policy else spec

    return domains.map_asset_specs(func=attach) if policies else domains
