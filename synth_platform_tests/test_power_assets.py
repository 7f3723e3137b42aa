"""The power world through Dagster into real SQLite, PostgreSQL and MariaDB."""

import hashlib
from datetime import UTC, datetime

import dagster as dg
import pytest
import sqlalchemy as sa

from synth_platform.definitions import build_definitions
from synth_platform.domains import load_platform
from synth_platform.sinks.database import DatabaseResource
from synth_platform.world.power_usage import expected_rows, power_usage
from synth_platform.world.windows import Window
from synth_platform_tests.config_files import edit_yaml
from synth_platform_tests.runs import checks_passed, run_days

DAYS = ["2026-03-01", "2026-03-02", "2026-03-03"]
CHECKS_JOB = "power_usage_with_checks"


def make_defs(config_dir, url, monkeypatch) -> dg.Definitions:
    edit_yaml(config_dir / "world.yaml", domains=["power"], start_date="2026-02-01")
    edit_yaml(config_dir / "power.yaml", **{"devices.count": 30, "usage.interval_minutes": 20})
    monkeypatch.setenv("SYNTH_DATABASE_URL", url)
    defs = build_definitions(load_platform(config_dir))
    checks = dg.define_asset_job(  # power_usage with the checks it evaluates in its step
        CHECKS_JOB,
        selection=dg.AssetSelection.assets("power_usage").without_checks()
        | dg.AssetSelection.checks(
            *(
                dg.AssetCheckKey(dg.AssetKey("power_usage"), name)
                for name in ("row_count", "unique_keys", "known_devices")
            )
        ),
    )
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[checks]))


@pytest.fixture
def power_defs(config_dir, database_url, monkeypatch) -> dg.Definitions:
    return make_defs(config_dir, database_url, monkeypatch)


def checksum(db: DatabaseResource) -> tuple[int, str]:
    rows = db.query("SELECT timestamp, device_id, power_usage_kwh FROM power_usage ORDER BY timestamp, device_id")
    digest = hashlib.sha256()
    for ts, device, kwh in rows:
        ts = ts if isinstance(ts, datetime) else datetime.fromisoformat(ts)
        ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
        digest.update(f"{ts.isoformat()}|{device}|{kwh!r}\n".encode())
    return len(rows), digest.hexdigest()


def spec_checksum(platform, days: list[str]) -> tuple[int, str]:
    digest, n = hashlib.sha256(), 0
    for day in days:
        for row in power_usage(platform.get("power"), platform.world.seed, Window.for_day(day)).to_pylist():
            digest.update(f"{row['timestamp'].isoformat()}|{row['device_id']}|{row['power_usage_kwh']!r}\n".encode())
            n += 1
    return n, digest.hexdigest()


def test_rematerializing_a_partition_leaves_identical_rows(power_defs, config_dir, database_url, instance):
    db = DatabaseResource(url=database_url)
    assert run_days(power_defs, instance, DAYS[0], DAYS[1]).success
    before = checksum(db)
    assert run_days(power_defs, instance, DAYS[1]).success
    assert checksum(db) == before
    platform = load_platform(config_dir)
    assert before == spec_checksum(platform, DAYS[:2])  # exactly the world's rows, other day untouched
    assert before[0] == sum(
        expected_rows(platform.get("power"), platform.world.seed, Window.for_day(d)) for d in DAYS[:2]
    )


def test_range_run_equals_single_days(power_defs, config_dir, database_url, instance):
    db = DatabaseResource(url=database_url)
    result = run_days(power_defs, instance, DAYS[0], DAYS[-1])
    assert result.success
    ranged = checksum(db)
    materializations = result.asset_materializations_for_node("power_usage")
    per_day = {m.partition: m.metadata for m in materializations if "window" in m.metadata}
    assert sorted(per_day) == DAYS and sum(m["rows"].value for m in per_day.values()) == ranged[0]
    assert {m.metadata["range_rows"].value for m in materializations if "range_rows" in m.metadata} == {ranged[0]}
    db.query("SELECT 1")  # connection sanity before wiping
    with db.begin() as conn:
        conn.execute(sa.text("DELETE FROM power_usage"))
    for day in DAYS:
        assert run_days(power_defs, instance, day).success
    assert checksum(db) == ranged == spec_checksum(load_platform(config_dir), DAYS)


def test_table_keys_and_types(power_defs, database_url, instance):
    assert run_days(power_defs, instance, DAYS[0]).success
    insp = sa.inspect(DatabaseResource(url=database_url).engine)
    assert set(insp.get_pk_constraint("power_usage")["constrained_columns"]) == {"device_id", "timestamp"}
    assert any(ix["column_names"] == ["timestamp"] for ix in insp.get_indexes("power_usage"))
    ts_type = next(c["type"] for c in insp.get_columns("power_usage") if c["name"] == "timestamp")
    assert isinstance(ts_type, sa.DateTime)
    if database_url.startswith("postgresql"):
        assert ts_type.timezone, "PostgreSQL stores timestamptz"


def test_checks_pass_on_good_data_and_fail_on_broken(power_defs, database_url, instance):
    # the checks run in power_usage's step, over what it just wrote
    assert checks_passed(run_days(power_defs, instance, DAYS[0])) == {
        "row_count": True, "unique_keys": True, "known_devices": True,
    }  # fmt: skip
    db = DatabaseResource(url=database_url)
    first = db.scalar("SELECT MIN(device_id) FROM device_metadata")
    with db.begin() as conn:  # a device someone deleted: its readings are orphans when the day is rewritten
        conn.execute(sa.text("DELETE FROM device_metadata WHERE device_id = :d"), {"d": first})
    results = checks_passed(run_days(power_defs, instance, DAYS[0], job=CHECKS_JOB, raise_on_error=False))
    assert results == {"row_count": True, "unique_keys": True, "known_devices": False}


def test_row_and_duplicate_checks_fail_when_the_table_does_not_keep_what_was_written(
    config_dir, sqlite_url, monkeypatch, instance
):
    power_defs = make_defs(config_dir, sqlite_url, monkeypatch)
    db = DatabaseResource(url=sqlite_url)
    with db.begin() as conn:  # a table someone created by hand, without the key, and a trigger doubling a device
        conn.execute(sa.text("CREATE TABLE power_usage (timestamp DATETIME, device_id BIGINT, power_usage_kwh FLOAT)"))
        conn.execute(
            sa.text(
                "CREATE TRIGGER doubled AFTER INSERT ON power_usage WHEN NEW.device_id = 1 BEGIN "
                "INSERT INTO power_usage VALUES (NEW.timestamp, NEW.device_id, NEW.power_usage_kwh); END"
            )
        )
    result = run_days(power_defs, instance, DAYS[0], raise_on_error=False)
    assert not result.success  # row_count is blocking
    assert checks_passed(result) == {"row_count": False, "unique_keys": False, "known_devices": True}


def test_materialization_metadata_has_provenance_and_no_password(config_dir, postgres_url, monkeypatch, instance):
    # trust auth ignores the password, so it can be set to prove it never shows
    url = sa.make_url(postgres_url).set(password="s3cret-pw").render_as_string(hide_password=False)
    result = run_days(make_defs(config_dir, url, monkeypatch), instance, DAYS[0])
    meta = result.asset_materializations_for_node("power_usage")[0].metadata
    for key in ("rows", "bytes", "duration_s", "rows_per_s", "target", "seed", "spec_hash", "window", "preview"):
        assert key in meta, key
    assert meta["target"].value.startswith("postgresql+psycopg://postgres:***@127.0.0.1")
    assert meta["window"].value.startswith("[2026-03-01T00:00:00+00:00")
    assert meta["rows"].value > 0 and meta["rows_per_s"].value > 0
    logs = " ".join(str(e) for e in instance.all_logs(result.run_id))
    assert "s3cret-pw" not in logs and "s3cret-pw" not in str(meta)
