"""The smart-meter assets through Dagster: files in a local folder, in GCS (emulator) and in S3 (moto), checks, live
slices."""

from __future__ import annotations

import gzip
import hashlib
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import orjson
import pytest

from synth_platform.assets.common import LIVE_WINDOW_END_TAG, LIVE_WINDOW_START_TAG
from synth_platform.definitions import build_definitions
from synth_platform.domains import load_platform
from synth_platform.sinks.files import BucketResource, window_prefix
from synth_platform.sinks.prefix_writer import MANIFEST
from synth_platform.specs.meters import load_meters
from synth_platform.streams import meters as meter_stream
from synth_platform.streams.meters import manifest_problems, write_readings_window
from synth_platform.world.late_slices import arrives_with, delay_slices, delivered_with, late_count
from synth_platform.world.meter_ids import id_numbers
from synth_platform.world.meters import expected_rows
from synth_platform.world.windows import Window
from synth_platform_tests.config_files import edit_yaml
from synth_platform_tests.gcs_emulator import fail_uploads
from synth_platform_tests.runs import checks_of, checks_passed, run_days, run_request
from synth_platform_tests.s3_server import puts

DAYS = ["2026-03-01", "2026-03-02"]
READINGS_JOB = "meter_readings_only"  # rewrites the readings (their checks run in the step) and nothing else
METERS = 12


def make_defs(config_dir: Path, monkeypatch, bucket_url: str, domains=("meters",), **meters) -> dg.Definitions:
    edit_yaml(config_dir / "world.yaml", domains=list(domains), start_date="2026-02-01")
    edit_yaml(config_dir / "power.yaml", **{"devices.count": 8})
    edit_yaml(config_dir / "meters.yaml", **{"fleet.count": METERS, "interval_seconds": 60,
                                             "output.meters_per_part": 5, **meters})  # fmt: skip
    monkeypatch.setenv("SYNTH_BUCKET_URL", bucket_url)
    defs = build_definitions(load_platform(config_dir))
    readings = dg.define_asset_job(READINGS_JOB, selection=dg.AssetSelection.assets("meter_readings"))
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[readings]))


def snapshot(bucket: BucketResource, prefix: str = "meter_readings/") -> dict[str, str]:
    return {n: hashlib.sha256(bucket.read_bytes(n)).hexdigest() for n in sorted(bucket.list(prefix))}


@pytest.fixture
def local_url(tmp_path: Path) -> str:
    return str(tmp_path / "bucket")


def test_range_run_writes_daily_parts_with_manifests(config_dir, monkeypatch, instance, local_url):
    defs = make_defs(config_dir, monkeypatch, local_url)
    result = run_days(defs, instance, DAYS[0], DAYS[1])
    assert result.success
    bucket = BucketResource(url=local_url)
    names = sorted(bucket.list("meter_readings/"))
    assert names == [
        f"meter_readings/dt={d}/{f}"
        for d in DAYS
        for f in (MANIFEST, "part-00000.ndjson.gz", "part-00001.ndjson.gz", "part-00002.ndjson.gz")
    ]
    platform = load_platform(config_dir)
    for day in DAYS:
        manifest = bucket.manifest(f"meter_readings/dt={day}/")
        assert manifest["rows"] == METERS * 1440 == expected_rows(platform.get("meters"), platform.world.seed,
                                                                   Window.for_day(day))  # fmt: skip
        assert [(f["first"], f["count"]) for f in manifest["files"]] == [(0, 5), (5, 5), (10, 2)]
        lines = gzip.decompress(bucket.read_bytes(f"meter_readings/dt={day}/part-00002.ndjson.gz")).splitlines()
        first, last = orjson.loads(lines[0]), orjson.loads(lines[-1])
        assert len(lines) == 2 * 1440 and first["timestamp"] == f"{day}T00:00:00Z"
        assert last["timestamp"] == f"{day}T23:59:00Z"
        assert set(first) == {"timestamp", "meter_id", "power_kw", "energy_kwh", "voltage"}
    per_day = [m.metadata for m in result.asset_materializations_for_node("meter_readings") if "window" in m.metadata]
    assert [m["rows"].value for m in per_day] == [METERS * 1440] * 2 and [m["files"].value for m in per_day] == [3, 3]
    assert all("preview" in m for m in per_day)
    fleet = bucket.manifest("meter_fleet/")
    assert fleet["rows"] == METERS
    checks = checks_of(result)  # evaluated in the writing steps, over the two days they wrote
    assert {n: c.passed for n, c in checks.items()} == {
        "ids_unique": True, "manifest_matches_objects": True, "row_count": True, "power_agreement": True,
    }  # fmt: skip
    assert checks["row_count"].metadata["rows"].value == 2 * METERS * 1440
    assert checks["row_count"].metadata["scope"].value == "day"
    assert checks["manifest_matches_objects"].metadata["files_checked"].value == 2 * 3


def test_a_failing_blocking_check_fails_the_writing_step(config_dir, monkeypatch, instance, local_url):
    defs = make_defs(config_dir, monkeypatch, local_url)
    monkeypatch.setattr(meter_stream, "expected_rows", lambda *_: 1)  # the spec now asks for other rows
    result = run_days(defs, instance, DAYS[0], raise_on_error=False)
    assert not result.success  # row_count is blocking
    assert checks_passed(result) == {
        "ids_unique": True, "manifest_matches_objects": True, "row_count": False, "power_agreement": True,
    }  # fmt: skip


def test_rematerializing_gives_the_same_bytes_and_removes_stale_files(config_dir, monkeypatch, instance, local_url):
    defs = make_defs(config_dir, monkeypatch, local_url)
    assert run_days(defs, instance, DAYS[0]).success
    bucket = BucketResource(url=local_url)
    before = snapshot(bucket)
    stale = Path(local_url) / "meter_readings" / f"dt={DAYS[0]}" / "part-00009.ndjson.gz"
    stale.write_bytes(b"left over")
    problems, _ = manifest_problems(bucket, [Window.for_day(DAYS[0])])  # what manifest_matches_objects reports
    assert problems == [f"{bucket.uri(f'meter_readings/dt={DAYS[0]}/part-00009.ndjson.gz')}: not in any manifest"]
    result = run_days(defs, instance, DAYS[0])
    assert snapshot(bucket) == before and not stale.exists()
    assert checks_passed(result)["manifest_matches_objects"] is True


@pytest.mark.parametrize("file_format", ["ndjson", "ndjson.gz", "parquet"])
def test_the_same_seed_and_day_give_the_same_bytes(file_format, config_dir, tmp_path):
    edit_yaml(config_dir / "meters.yaml", **{"fleet.count": METERS, "output.format": file_format,
                                             "output.meters_per_part": 5})  # fmt: skip
    spec = load_meters(config_dir)
    ids = id_numbers(7, METERS)
    buckets = [BucketResource(url=str(tmp_path / f"b{i}")) for i in range(2)]
    for bucket in buckets:  # separate processes would do the same: nothing depends on run order or threads
        write_readings_window(bucket, spec, 7, ids, Window.for_day(DAYS[1]), "h")
    first, second = (snapshot(b) for b in buckets)
    assert first == second and len(first) == 4
    other = BucketResource(url=str(tmp_path / "other-seed"))
    write_readings_window(other, spec, 8, id_numbers(8, METERS), Window.for_day(DAYS[1]), "h")
    assert snapshot(other).keys() == first.keys() and snapshot(other) != first


def test_agreement_with_power_usage_in_the_database(config_dir, monkeypatch, instance, local_url):
    edit_yaml(config_dir / "power.yaml", **{"usage.interval_minutes": 20})
    defs = make_defs(config_dir, monkeypatch, local_url, domains=("power", "meters"))
    assert run_days(defs, instance, DAYS[0]).success
    result = run_days(defs, instance, DAYS[0], job=READINGS_JOB)  # power_usage is in the database now
    evaluation = next(e for e in result.get_asset_check_evaluations() if e.check_name == "power_agreement")
    assert evaluation.passed
    assert evaluation.metadata["meter_hours_compared"].value > 8 * 24 // 4
    assert "table power_usage" in evaluation.metadata["source"].value
    assert evaluation.metadata["max_abs_diff_kwh"].value <= 0.01


def test_live_slices_then_the_whole_day(config_dir, monkeypatch, instance, local_url):
    defs = make_defs(config_dir, monkeypatch, local_url, live_slice_minutes=10,
                     **{"faults.gap_probability": 0.5, "faults.zero_probability": 0.01})  # fmt: skip
    day = Window.for_day(DAYS[0])
    bucket = BucketResource(url=local_url)
    platform = load_platform(config_dir)
    spec, seed = platform.get("meters"), platform.world.seed
    for start, end in (("00:00", "00:10"), ("00:10", "00:20")):
        tags = {LIVE_WINDOW_START_TAG: f"{DAYS[0]}T{start}:00+00:00", LIVE_WINDOW_END_TAG: f"{DAYS[0]}T{end}:00+00:00"}
        live = run_days(defs, instance, DAYS[0], job="live_meter_readings", tags=tags)
        checks = checks_of(live)  # on the slice just written
        assert all(c.passed for c in checks.values()) and {"row_count", "manifest_matches_objects"} <= set(checks)
        assert checks["row_count"].metadata["scope"].value == "window"
        written = Window(*(datetime.fromisoformat(t) for t in tags.values()))
        assert checks["row_count"].metadata["rows"].value == expected_rows(spec, seed, written) > 0
    slices = sorted({n.split("/")[2] for n in bucket.list(f"meter_readings/dt={DAYS[0]}/slice=")})
    assert slices == ["slice=000000-001000", "slice=001000-002000"]
    sliced = [bucket.manifest(f"meter_readings/dt={DAYS[0]}/{s}/") for s in slices]
    first_20 = Window(day.start, day.start.replace(minute=20))
    assert sum(m["rows"] for m in sliced) == expected_rows(spec, seed, first_20)
    live_lines = b"".join(gzip.decompress(bucket.read_bytes(f"meter_readings/dt={DAYS[0]}/{s}/part-0000{p}.ndjson.gz"))
                          for p in range(3) for s in slices)  # fmt: skip

    whole_day = run_days(defs, instance, DAYS[0])  # the whole day replaces its slices
    assert whole_day.success and all(checks_passed(whole_day).values())
    assert not bucket.list(f"meter_readings/dt={DAYS[0]}/slice=")
    manifest = bucket.manifest(f"meter_readings/dt={DAYS[0]}/")
    assert manifest["rows"] == expected_rows(spec, seed, day)
    assert manifest["faults"]["missing_readings"] > 0 and manifest["faults"]["zero_readings"] > 0
    day_lines = b"".join(gzip.decompress(bucket.read_bytes(f"meter_readings/dt={DAYS[0]}/part-0000{p}.ndjson.gz"))
                         for p in range(3))  # fmt: skip
    early = {line for line in day_lines.splitlines() if orjson.loads(line)["timestamp"] < f"{DAYS[0]}T00:20"}
    assert early == set(live_lines.splitlines())  # the backfill equals the union of the live windows


def slice_folders(bucket: BucketResource, day: str) -> set[str]:
    return {n.split("/")[2] for n in bucket.list(f"meter_readings/dt={day}/slice=")}


def folder(window: Window) -> str:
    return window_prefix("meter_readings", window).split("/")[2]


def data_files(bucket: BucketResource, prefix: str) -> dict[str, bytes]:
    return {n[len(prefix) :]: bucket.read_bytes(n) for n in sorted(bucket.list(prefix)) if not n.endswith(MANIFEST)}


def test_late_slices_arrive_with_a_later_live_window(config_dir, monkeypatch, instance, local_url, tmp_path):
    defs = make_defs(config_dir, monkeypatch, local_url, live_slice_minutes=10,
                     **{"faults.late_probability": 0.3, "faults.late_slices": [1, 3],
                        "faults.gap_probability": 0.5})  # fmt: skip
    platform = load_platform(config_dir)
    spec, seed = platform.get("meters"), platform.world.seed
    day = Window.for_day(DAYS[0])
    windows = list(day.split(spec.live_slice_seconds))[:8]
    plan = [delivered_with(spec, seed, w) for w in windows]
    held = [w for w, delivered in zip(windows, plan, strict=True) if w not in delivered]
    assert any(arrives_with(spec, seed, w) in windows for w in held)  # precondition: a held slice arrives in view
    bucket = BucketResource(url=local_url)
    delivered: set[Window] = set()
    for window, due in zip(windows, plan, strict=True):
        tags = {LIVE_WINDOW_START_TAG: window.start.isoformat(), LIVE_WINDOW_END_TAG: window.end.isoformat()}
        result = run_days(defs, instance, DAYS[0], job="live_meter_readings", tags=tags)
        assert result.success and all(checks_passed(result).values())  # what arrived: on time and late slices
        delivered |= set(due)
        assert slice_folders(bucket, DAYS[0]) == {folder(w) for w in delivered}  # a held slice is absent until due
        meta = result.asset_materializations_for_node("meter_readings")[0].metadata
        assert meta["late_held"].value == ("none" if window in due else str(window))
        late = [w for w in due if w != window]
        assert meta["late_delivered"].value == ("\n".join(f"- {w}" for w in late) if late else "none")
        for w in late:
            body = bucket.manifest(window_prefix("meter_readings", w))
            delay = (window.start_s - w.start_s) // spec.live_slice_seconds
            assert delay == delay_slices(spec, seed, w) and 1 <= delay <= 3
            arrived = f"{window.start.isoformat()}/{window.end.isoformat()}"
            assert body["faults"]["late"] == {"delay_slices": delay, "arrived_with": arrived}
            assert body["faults"]["late_slice_count"] == 1
    assert delivered == {w for w in windows if arrives_with(spec, seed, w) in windows}
    on_time = BucketResource(url=str(tmp_path / "on-time"))
    ids = id_numbers(seed, METERS, spec.fleet.id_format)
    for w in held:  # what arrives late is what an on-time write of the window gives
        if w in delivered:
            write_readings_window(on_time, spec, seed, ids, w, "h")
            prefix = window_prefix("meter_readings", w)
            assert data_files(bucket, prefix) == data_files(on_time, prefix) != {}
    live_lines = b"".join(gzip.decompress(raw) for w in sorted(delivered)
                          for raw in data_files(bucket, window_prefix("meter_readings", w)).values())  # fmt: skip

    whole_day = run_days(defs, instance, DAYS[0])  # the whole day replaces its slices
    assert whole_day.success and all(checks_passed(whole_day).values())
    assert not slice_folders(bucket, DAYS[0])
    manifest = bucket.manifest(f"meter_readings/dt={DAYS[0]}/")
    assert manifest["rows"] == expected_rows(spec, seed, day)
    assert manifest["faults"]["late_slice_count"] == late_count(spec, seed, day) > 0
    assert manifest["faults"]["late_slices"] == [1, 3] and "late" not in manifest["faults"]  # config, on time
    day_lines = b"".join(gzip.decompress(raw) for raw in data_files(bucket, f"meter_readings/dt={DAYS[0]}/").values())
    covered = {(w.start.isoformat().replace("+00:00", "Z"), w.end.isoformat().replace("+00:00", "Z"))
               for w in delivered}  # fmt: skip
    early = {line for line in day_lines.splitlines()
             if any(lo <= orjson.loads(line)["timestamp"] < hi for lo, hi in covered)}  # fmt: skip
    assert early == set(live_lines.splitlines())  # the backfill equals the union of the delivered live slices


def test_a_late_slice_already_held_by_a_written_window_is_skipped(config_dir, tmp_path):
    edit_yaml(config_dir / "meters.yaml", **{"fleet.count": METERS, "faults.late_probability": 1.0})
    spec = load_meters(config_dir)
    ids = id_numbers(7, METERS)
    bucket = BucketResource(url=str(tmp_path / "bucket"))
    day = Window.for_day(DAYS[1])
    hour = Window(day.start, day.start + timedelta(hours=1))  # a partition run of the open day at 01:0x
    assert write_readings_window(bucket, spec, 7, ids, hour, "h") is not None
    late = list(hour.split(spec.live_slice_seconds))[-1]
    arrival = arrives_with(spec, 7, late)
    assert arrival is not None and arrival.start >= hour.end
    assert write_readings_window(bucket, spec, 7, ids, late, "h", arrived_with=arrival) is None
    assert slice_folders(bucket, DAYS[1]) == {folder(hour)}  # no second copy of the slice's rows
    assert bucket.manifest(window_prefix("meter_readings", hour))["faults"]["late_slice_count"] == 6


def test_gcs_bucket_idempotent_and_upload_failure(config_dir, monkeypatch, instance, gcs_bucket_url):
    monkeypatch.setenv("SYNTH_DATA_DIR", str(config_dir.parent / "data"))
    defs = make_defs(config_dir, monkeypatch, gcs_bucket_url, **{"output.layout": "per_meter",
                                                                 "output.record": "wattif"})  # fmt: skip
    assert run_days(defs, instance, DAYS[0]).success
    bucket = BucketResource(url=gcs_bucket_url)
    before = snapshot(bucket)
    assert len(before) == METERS + 1
    one = next(n for n in before if n.endswith(".ndjson.gz"))
    assert set(orjson.loads(gzip.decompress(bucket.read_bytes(one)).splitlines()[0])) == {"timestamp", "reading"}
    again = run_days(defs, instance, DAYS[0])
    assert snapshot(bucket) == before
    assert all(checks_passed(again).values())

    victim = one.rsplit("/", 1)[1].removesuffix(".ndjson.gz")
    with fail_uploads(victim):
        failed = run_days(defs, instance, DAYS[0], raise_on_error=False)
    assert not failed.success
    assert bucket.manifest(f"meter_readings/dt={DAYS[0]}/") is None  # incomplete, never a manifest over a gap
    problems, _ = manifest_problems(bucket, [Window.for_day(DAYS[0])])  # what manifest_matches_objects says
    assert any(p.endswith("no manifest (missing or incomplete)") for p in problems)
    assert run_days(defs, instance, DAYS[0]).success  # the retry completes the day
    assert snapshot(bucket) == before


def test_s3_bucket_idempotent_manifest_last_and_upload_failure(config_dir, monkeypatch, instance, s3):
    url = f"s3://{s3.bucket}/data"
    defs = make_defs(config_dir, monkeypatch, url)
    with puts() as stored:
        both = run_days(defs, instance, DAYS[0], DAYS[1])
    assert all(checks_passed(both).values()) and len(checks_of(both)) == 4
    bucket = BucketResource(url=url)
    before = snapshot(bucket)
    assert {n.split("/")[1] for n in before} == {f"dt={d}" for d in DAYS} and len(before) == 2 * 4
    for day in DAYS:  # each day's manifest is stored after every file it lists
        names = [k for k in stored if f"/dt={day}/" in k]
        assert names[-1].endswith(MANIFEST) and len(names) == 4
    assert run_days(defs, instance, DAYS[0]).success
    assert snapshot(bucket) == before  # re-written identically

    with puts(refuse="part-00001") as stored:
        failed = run_days(defs, instance, DAYS[0], raise_on_error=False)
    assert not failed.success and any(k.startswith("refused:") for k in stored)
    assert not any(k.endswith(f"/dt={DAYS[0]}/{MANIFEST}") for k in stored)
    assert bucket.manifest(f"meter_readings/dt={DAYS[0]}/") is None  # never a manifest over missing objects
    assert run_days(defs, instance, DAYS[0]).success  # the retry completes the day
    assert snapshot(bucket) == before

    assert bucket.delete_before("meter_readings", Window.for_day(DAYS[1]).start.date()) == 4  # retention
    assert {n.split("/")[1] for n in bucket.list("meter_readings/")} == {f"dt={DAYS[1]}"}


def test_the_daily_close_evaluates_the_whole_day_and_the_fleet_check_only_with_the_fleet(
    config_dir, monkeypatch, instance, local_url
):
    defs = make_defs(config_dir, monkeypatch, local_url)
    schedule = defs.resolve_schedule_def("daily_close_schedule")
    fleet_check = dg.AssetCheckKey(dg.AssetKey("meter_fleet"), "ids_unique")
    for first in (True, False):  # the fleet is written (with its check) only while it has never been materialized
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=at_close(DAYS[1]), repository_def=defs.get_repository_def()
        )
        (request,) = schedule.evaluate_tick(context).run_requests
        assert request.partition_key == DAYS[0] and (fleet_check in request.asset_check_keys) == first
        result = run_request(defs.resolve_job_def("daily_close"), instance, request)
        checks = checks_of(result)
        assert all(c.passed for c in checks.values()) and ("ids_unique" in checks) == first
        assert checks["row_count"].metadata["scope"].value == "day"
        assert checks["row_count"].metadata["rows"].value == METERS * 1440
        assert checks["power_agreement"].metadata["meter_hours_compared"].value > 0


def at_close(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T00:15:00+00:00")
