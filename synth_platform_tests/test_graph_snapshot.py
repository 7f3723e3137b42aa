"""The shipped code location's shape: an accidental change to keys, partitions, checks, freshness policies, jobs,
schedules or sensors shows up in review as a diff of snapshots/definitions.json (UPDATE_SNAPSHOTS=1 rewrites it)."""

import json
import os
from pathlib import Path

import dagster as dg

from synth_platform.definitions import build_definitions
from synth_platform.domains import load_platform
from synth_platform.specs import DEFAULT_CONFIG_DIR

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def policy_windows(policy: dg.FreshnessPolicy | None) -> dict | None:
    if policy is None:
        return None
    warn = policy.warn_window.to_timedelta().total_seconds() if policy.warn_window else None
    return {"fail_s": policy.fail_window.to_timedelta().total_seconds(), "warn_s": warn}


def shape() -> dict:
    defs = build_definitions(load_platform(DEFAULT_CONFIG_DIR))
    graph = defs.resolve_asset_graph()
    assets = {}
    for node in sorted(graph.asset_nodes, key=lambda n: n.key.to_user_string()):
        assets[node.key.to_user_string()] = {
            "partitions": type(node.partitions_def).__name__ if node.partitions_def else None,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "checks": sorted(k.name for k in node.check_keys),
            "freshness": policy_windows(node.freshness_policy),
        }
    repo = defs.get_repository_def()
    return {
        "assets": assets,
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        "schedules": {s.name: s.cron_schedule for s in sorted(repo.schedule_defs, key=lambda s: s.name)},
        "sensors": sorted(s.name for s in repo.sensor_defs),
    }


def test_definitions_match_the_snapshot():
    current = json.dumps(shape(), indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(current)
    assert SNAPSHOT.read_text() == current, "definitions changed: review, then rerun with UPDATE_SNAPSHOTS=1"
