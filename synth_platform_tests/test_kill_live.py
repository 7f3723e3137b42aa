"""A live run SIGKILLed in the middle of writing its window (PostgreSQL: COPY half done, transaction open; bucket:
one part file written, the next one open, no manifest); the retry, re-executed from failure as the run-retry daemon
does, leaves exactly the window's rows."""

import gzip
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from synth_platform.assets.common import LIVE_WINDOW_END_TAG, LIVE_WINDOW_START_TAG
from synth_platform.domains import load_platform
from synth_platform.resources import PROJECT_ROOT
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.files import BucketResource, window_prefix
from synth_platform.streams.meters import READINGS
from synth_platform.world.meters import expected_rows
from synth_platform.world.windows import Window
from synth_platform_tests.config_files import LOCAL_INSTANCE_YAML, edit_yaml
from synth_platform_tests.live_helpers import at, power_platform, rows, world_rows
from synth_platform_tests.mid_write import wait_inside

pytestmark = pytest.mark.timeout(180)

WINDOW = Window(at("2026-03-02T10:00"), at("2026-03-02T11:00"))
TAGS = {
    LIVE_WINDOW_START_TAG: WINDOW.start.isoformat(),
    LIVE_WINDOW_END_TAG: WINDOW.end.isoformat(),
    "dagster/partition": WINDOW.partition_key(),
}

# The run process: the real live job, with its sink wrapped so that the write stops halfway through the window
# (database: half the COPY into power_usage, inside the open transaction; bucket: the first part file of the meter
# window written, the second one open), says so, and waits to be killed.
RUNNER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import dagster as dg
    import synth_platform.sinks.database as database
    from synth_platform_tests import test_kill_live
    from synth_platform_tests.mid_write import hang, hang_in_second_part

    signal_file, target = Path(sys.argv[1]), sys.argv[2]

    copy = database._copy_postgres

    def half_then_hang(conn, table, data):
        if table.name != "power_usage":
            return copy(conn, table, data)
        copy(conn, table, data.slice(0, data.num_rows // 2))
        hang(signal_file)

    if target == "database":
        database._copy_postgres = half_then_hang
    else:
        hang_in_second_part("meter_readings/", signal_file)
    job = getattr(test_kill_live, f"live_{target}_job")
    with dg.DagsterInstance.get() as instance:
        dg.execute_job(dg.reconstructable(job), instance=instance, tags=test_kill_live.TAGS)
    """
)


def live_database_job() -> dg.JobDefinition:
    from synth_platform.definitions import build_definitions

    return build_definitions().resolve_job_def("live_power_usage")


def live_bucket_job() -> dg.JobDefinition:
    from synth_platform.definitions import build_definitions

    return build_definitions().resolve_job_def("live_meter_readings")


def test_killed_mid_write_then_retried_leaves_exactly_the_window(tmp_path, config_dir, postgres_url, monkeypatch):
    platform = power_platform(config_dir, interval_minutes=10, devices=40)
    instance_env(tmp_path, config_dir, monkeypatch, SYNTH_DATABASE_URL=postgres_url)
    db = DatabaseResource(url=postgres_url)
    signal_file = tmp_path / "inside_write"

    proc = start_run(signal_file, "database")
    open_copy = db.scalar(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND state = 'idle in transaction' AND query LIKE 'COPY power_usage %'"
    )
    assert open_copy == 1, "the run should be killed inside its open COPY into power_usage"
    kill(proc)
    assert rows(db, WINDOW) == []  # the half-written window was never visible and is rolled back
    retry("live_power_usage", live_database_job)
    assert rows(db, Window.for_day(WINDOW.partition_key())) == world_rows(platform, WINDOW)


def test_killed_mid_file_write_then_retried_leaves_exactly_the_window_in_the_bucket(
    tmp_path, config_dir, monkeypatch, _data_dir
):
    edit_yaml(config_dir / "world.yaml", domains=["meters"], start_date="2026-01-01")
    edit_yaml(config_dir / "meters.yaml", **{"fleet.count": 40, "output.meters_per_part": 10, "live_slice_minutes": 60})
    platform = load_platform(config_dir)
    spec = platform.get("meters")
    instance_env(tmp_path, config_dir, monkeypatch)
    bucket = BucketResource(url=str(_data_dir / "bucket"))
    prefix = window_prefix(READINGS, WINDOW)

    kill(start_run(tmp_path / "inside_write", "bucket"))
    assert bucket.manifest(prefix) is None  # no manifest over a half-written window
    assert len(bucket.list(prefix)) == 1, "killed after its first part file"
    retry("live_meter_readings", live_bucket_job)

    manifest = bucket.manifest(prefix)
    assert manifest["rows"] == expected_rows(spec, platform.world.seed, WINDOW) > 0
    objects = set(bucket.list(prefix))
    assert objects == {prefix + f["name"] for f in manifest["files"]} | {prefix + "_manifest.json"}
    lines = sum(gzip.decompress(bucket.read_bytes(f"{prefix}{f['name']}")).count(b"\n") for f in manifest["files"])
    assert lines == manifest["rows"]


def instance_env(tmp_path: Path, config_dir: Path, monkeypatch, **extra: str) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(LOCAL_INSTANCE_YAML.read_text())
    for name, value in {"DAGSTER_HOME": str(home), "SYNTH_CONFIG_DIR": str(config_dir), **extra}.items():
        monkeypatch.setenv(name, value)


def start_run(signal_file: Path, target: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(signal_file), target], cwd=PROJECT_ROOT, env=os.environ.copy(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    wait_inside(signal_file, proc, timeout=90)
    return proc


def kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def retry(job_name: str, job) -> None:
    """What follows a dead run worker: the code server reports the run failed, then the run-retry daemon
    re-executes it from failure with the parent's tags (so, its window)."""
    with dg.DagsterInstance.get() as instance:
        (killed,) = instance.get_runs(dg.RunsFilter(job_name=job_name))
        assert killed.status == dg.DagsterRunStatus.STARTED  # what a dead run worker leaves behind
        instance.report_run_failed(killed)
        result = dg.execute_job(
            dg.reconstructable(job),
            instance=instance,
            tags=killed.tags,
            reexecution_options=dg.ReexecutionOptions.from_failure(killed.run_id, instance),
        )
        assert result.success
        assert result.dagster_run.tags[LIVE_WINDOW_START_TAG] == WINDOW.start.isoformat()
