"""Delta tables on S3 (moto's server on loopback) through delta-rs with the storage options the platform passes."""

from datetime import timedelta

from synth_platform.sinks.delta import DeltaConflict, DeltaResource
from synth_platform.specs.power import PowerSpec
from synth_platform.world.power_usage import power_usage
from synth_platform.world.windows import Window
from synth_platform_tests.concurrency import at_once
from synth_platform_tests.s3_server import S3Server

SPEC = PowerSpec.model_validate({"devices": {"count": 30}})
DAYS = [Window.for_day(f"2026-03-0{d}") for d in (1, 2, 3)]
TABLE = "power_usage"
COUNT = {d: power_usage(SPEC, 1, d).num_rows for d in DAYS}


def delta_on(s3: S3Server) -> DeltaResource:
    return DeltaResource(root=f"s3://{s3.bucket}/lake", endpoint_url=s3.endpoint, region="us-east-1")


def rows(delta: DeltaResource, window: Window) -> list[dict]:
    from synth_platform.sinks.delta import window_filter

    table = delta.read(TABLE, ["timestamp", "device_id", "power_usage_kwh"], window_filter("timestamp", window))
    return sorted(table.to_pylist(), key=lambda r: (r["timestamp"], r["device_id"]))


def test_the_options_name_the_endpoint_plain_http_region_and_put_if_absent(s3):
    options = delta_on(s3).options
    assert options == {"conditional_put": "etag", "AWS_ENDPOINT_URL": s3.endpoint, "AWS_ALLOW_HTTP": "true",
                       "AWS_REGION": "us-east-1"}  # fmt: skip
    assert DeltaResource(root="/tmp/lake").options is None


def test_replacing_a_window_twice_gives_identical_rows_and_leaves_others(s3):
    delta = delta_on(s3)
    for day in DAYS:
        delta.replace_window(TABLE, power_usage(SPEC, 1, day), "timestamp", day)
    before = {d.partition_key(): rows(delta, d) for d in DAYS}
    assert [len(before[d.partition_key()]) for d in DAYS] == [COUNT[d] for d in DAYS]
    for _ in range(2):
        result = delta.replace_window(TABLE, power_usage(SPEC, 1, DAYS[1]), "timestamp", DAYS[1])
        assert result.rows == COUNT[DAYS[1]]
        assert {d.partition_key(): rows(delta, d) for d in DAYS} == before
    expected = power_usage(SPEC, 1, DAYS[1]).select(["timestamp", "device_id", "power_usage_kwh"])
    assert rows(delta, DAYS[1]) == sorted(expected.to_pylist(), key=lambda r: (r["timestamp"], r["device_id"]))
    assert any(k.startswith("lake/power_usage/_delta_log/") for k in s3.keys("lake/"))  # really on S3


def test_retention_deletes_days_and_vacuum_removes_their_files(s3):
    delta = delta_on(s3)
    for day in DAYS:
        delta.replace_window(TABLE, power_usage(SPEC, 1, day), "timestamp", day)
    data_files = {k for k in s3.keys("lake/power_usage/") if k.endswith(".parquet")}
    assert delta.delete_before(TABLE, "timestamp", DAYS[2].start) == COUNT[DAYS[0]] + COUNT[DAYS[1]]
    assert rows(delta, Window(DAYS[0].start, DAYS[1].end)) == [] and len(rows(delta, DAYS[2])) == COUNT[DAYS[2]]
    removed = delta.vacuum(TABLE, retention_hours=0)
    left = {k for k in s3.keys("lake/power_usage/") if k.endswith(".parquet")}
    assert removed >= 1 and left < data_files and len(data_files - left) == removed
    assert len(rows(delta, DAYS[2])) == COUNT[DAYS[2]]  # what is kept still reads


def test_two_writers_of_one_window_are_serialized_or_one_fails_cleanly(s3):
    delta = delta_on(s3)
    delta.replace_window(TABLE, power_usage(SPEC, 1, DAYS[0]), "timestamp", DAYS[0])
    window = Window(DAYS[0].start + timedelta(hours=6), DAYS[0].start + timedelta(hours=12))
    data = power_usage(SPEC, 1, window)
    written: list[int] = []
    failures = at_once(lambda: written.append(delta.replace_window(TABLE, data, "timestamp", window).rows), threads=2)
    assert len(written) + len(failures) == 2 and data.num_rows in written  # at least one wrote
    for failed in failures:
        assert isinstance(failed, DeltaConflict), failed
        assert "another writer committed first" in str(failed) and "re-run" in str(failed)
    # either way the table holds the window exactly once: no lost or doubled commit
    assert len(rows(delta, window)) == data.num_rows
    assert len(rows(delta, DAYS[0])) == COUNT[DAYS[0]]
    # and re-running the loser afterwards is fine
    delta.replace_window(TABLE, data, "timestamp", window)
    assert len(rows(delta, DAYS[0])) == COUNT[DAYS[0]]
