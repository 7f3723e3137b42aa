"""A meter day written in shards (`day_shards: 4`): four shard steps and a manifest step give the files and the
manifest of the one-step day byte for byte; re-running one shard (and the manifest step after it) rewrites only that
shard's files and leaves the day's bytes unchanged; a live slice works the same way."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from synth_platform.assets.common import LIVE_WINDOW_END_TAG, LIVE_WINDOW_START_TAG
from synth_platform.definitions import MAIN_JOB, build_definitions
from synth_platform.domains import load_platform
from synth_platform.domains import meters as meters_domain
from synth_platform.sinks.files import BucketResource
from synth_platform.specs.loader import SpecError, spec_hash
from synth_platform.streams.meters import READINGS, SHARDS, commit_readings_shards, shard_meters
from synth_platform.world.windows import Window
from synth_platform_tests.config_files import edit_yaml
from synth_platform_tests.runs import partition_range

DAY = "2026-03-02"
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}  # steps in the run's process: quicker on a small machine
PREFIX = f"{READINGS}/dt={DAY}/"


def world(config_dir: Path, shards: int, **meters: object) -> None:
    edit_yaml(config_dir / "world.yaml", domains=["meters"], start_date="2026-01-01")
    edit_yaml(
        config_dir / "meters.yaml",
        **{"fleet.count": 45, "interval_seconds": 60, "output.meters_per_part": 5, "day_shards": shards, **meters},
    )


def sharded_job() -> dg.JobDefinition:
    """main_job from SYNTH_CONFIG_DIR, reconstructable so that a subset of its steps can be re-executed. Dagster
    caches what it builds per process, so only one test uses it."""
    return build_definitions().resolve_job_def(MAIN_JOB)


def objects(bucket: BucketResource, prefix: str = f"{READINGS}/") -> dict[str, str]:
    return {n: hashlib.sha256(bucket.read_bytes(n)).hexdigest() for n in sorted(bucket.list(prefix))}


def materialize(config_dir: Path, bucket_dir: Path, instance: dg.DagsterInstance, monkeypatch):
    monkeypatch.setenv("SYNTH_BUCKET_URL", str(bucket_dir))
    job = build_definitions(load_platform(config_dir)).resolve_job_def(MAIN_JOB)
    result = job.execute_in_process(instance=instance, tags=partition_range(DAY))
    assert result.success
    return result


@pytest.fixture
def shared_instance(tmp_path: Path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield instance


def test_sharded_day_equals_the_one_step_day_and_one_shard_reruns_alone(
    tmp_path, config_dir, shared_instance, monkeypatch
):
    world(config_dir, shards=1)
    materialize(config_dir, tmp_path / "one_step", shared_instance, monkeypatch)
    one_step = objects(BucketResource(url=str(tmp_path / "one_step")))

    world(config_dir, shards=4)
    spec = load_platform(config_dir).get("meters")
    assert [(r.start, r.stop) for r in shard_meters(spec)] == [(0, 10), (10, 20), (20, 30), (30, 45)]
    sharded_dir = tmp_path / "sharded"
    monkeypatch.setenv("SYNTH_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("SYNTH_BUCKET_URL", str(sharded_dir))
    run = dg.execute_job(
        dg.reconstructable(sharded_job), shared_instance, run_config=IN_PROCESS, tags=partition_range(DAY)
    )
    assert run.success
    steps = {e.step_key for e in run.all_events if e.event_type_value == "STEP_SUCCESS"}
    assert {f"meter_readings.shard_{i}" for i in range(4)} | {"meter_readings.manifest"} <= steps
    bucket = BucketResource(url=str(sharded_dir))
    assert objects(bucket) == one_step  # part files and manifest, byte for byte
    assert len(one_step) == 10  # 9 parts of 5 meters and the manifest

    # re-run shard 2 (meters 20..29: parts 4 and 5) and the manifest step, as the UI's "re-execute from step" does
    before = {n: os.stat(sharded_dir / n) for n in bucket.list(PREFIX)}
    rerun = dg.execute_job(
        dg.reconstructable(sharded_job),
        shared_instance,
        run_config=IN_PROCESS,
        tags=partition_range(DAY),
        reexecution_options=dg.ReexecutionOptions(
            parent_run_id=run.run_id, step_selection=["meter_readings.shard_2", "meter_readings.manifest"]
        ),
    )
    assert rerun.success
    after = {n: os.stat(sharded_dir / n) for n in bucket.list(PREFIX)}
    rewritten = {
        n for n in after if (after[n].st_ino, after[n].st_mtime_ns) != (before[n].st_ino, before[n].st_mtime_ns)
    }
    assert rewritten == {PREFIX + f"part-{p:05d}.ndjson.gz" for p in (4, 5)} | {PREFIX + "_manifest.json"}
    assert objects(bucket) == one_step


def test_sharded_live_slice_equals_the_one_step_slice(tmp_path, config_dir, shared_instance, monkeypatch):
    live = {LIVE_WINDOW_START_TAG: f"{DAY}T10:00:00+00:00", LIVE_WINDOW_END_TAG: f"{DAY}T10:10:00+00:00"}
    prefixes = {}
    for shards in (1, 3):
        world(config_dir, shards=shards)
        bucket_dir = tmp_path / f"shards{shards}"
        monkeypatch.setenv("SYNTH_CONFIG_DIR", str(config_dir))
        monkeypatch.setenv("SYNTH_BUCKET_URL", str(bucket_dir))
        job = build_definitions().resolve_job_def("live_meter_readings")
        assert job.execute_in_process(instance=shared_instance, partition_key=DAY, tags=live).success
        prefixes[shards] = objects(BucketResource(url=str(bucket_dir)))
    assert prefixes[1] == prefixes[3] and all("slice=100000-101000" in n for n in prefixes[1])


def test_manifest_step_names_a_missing_shard(tmp_path, config_dir, shared_instance, monkeypatch):
    world(config_dir, shards=3)
    materialize(config_dir, tmp_path / "bucket", shared_instance, monkeypatch)
    platform = load_platform(config_dir)
    spec = platform.get("meters")
    bucket = BucketResource(url=str(tmp_path / "bucket"))
    records = sorted(bucket.list(SHARDS))
    assert len(records) == 3 and all(r.startswith(f"{SHARDS}{PREFIX}shard-") for r in records)
    bucket.store.delete([records[1]])
    bucket.store.delete([PREFIX + "_manifest.json"])
    with pytest.raises(ValueError, match=r"shard 1 of 3 was not written"):
        commit_readings_shards(
            bucket, spec, platform.world.seed, Window.for_day(DAY), spec_hash(spec, platform.world.seed)
        )

    # retention deletes the shards' records with their day
    (rule,) = meters_domain.retention(spec)
    deleted = rule.delete(SimpleNamespace(bucket=bucket), datetime(2026, 3, 3, tzinfo=UTC))
    assert deleted[bucket.uri(f"{SHARDS}{READINGS}/")] == 2
    assert bucket.list(SHARDS) == {} and bucket.list(PREFIX) == {}


def test_shards_stay_out_of_the_spec_hash_and_need_whole_parts(config_dir):
    world(config_dir, shards=1)
    one = load_platform(config_dir).get("meters")
    world(config_dir, shards=9)
    nine = load_platform(config_dir).get("meters")
    assert spec_hash(one, 1) == spec_hash(nine, 1)
    world(config_dir, shards=10)
    with pytest.raises(SpecError, match=r"day_shards: 10 shards but only 9 file groups"):
        load_platform(config_dir)
