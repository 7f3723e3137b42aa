"""`make run`'s command: the demo window of every asset through Dagster, recorded in the instance."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from synth_platform.domains import load_platform
from synth_platform_tests.config_files import LOCAL_INSTANCE_YAML

REPO = Path(__file__).resolve().parents[1]


def test_demo_backfills_the_demo_window_into_embedded_targets(tmp_path, _data_dir):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(LOCAL_INSTANCE_YAML.read_text())
    env = {**os.environ, "DAGSTER_HOME": str(home), "SYNTH_DATA_DIR": str(_data_dir)}
    env.pop("SYNTH_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "synth_platform", "demo"], cwd=REPO, env=env, capture_output=True, text=True, timeout=540
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # quiet: no Python warning, and no logged warning but the one saying there is no Tinybird to pull from
    noise = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if "Warning:" in line or (" - WARNING - " in line and "no TINYBIRD_TOKEN" not in line)
    ]
    assert noise == []
    assert f"Data is under {_data_dir}" in done.stdout
    assert f"bucket files  {_data_dir / 'bucket'}" in done.stdout
    assert f"SQL database  sqlite:///{_data_dir / 'synth.db'}" in done.stdout

    world = load_platform().world
    today = datetime.now(UTC).date()
    first = today - timedelta(days=world.demo_days - 1)
    engine = sa.create_engine(f"sqlite:///{_data_dir / 'synth.db'}")
    with engine.connect() as conn:
        days = conn.execute(sa.text("SELECT DISTINCT substr(timestamp, 1, 10) FROM power_usage ORDER BY 1")).scalars()
        assert list(days) == [(first + timedelta(days=i)).isoformat() for i in range(world.demo_days)]
        newest = conn.execute(sa.text("SELECT MAX(timestamp) FROM power_usage")).scalar()
    assert datetime.fromisoformat(newest).replace(tzinfo=UTC) <= datetime.now(UTC), "nothing from the future"

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_run_records()
        assert [r.dagster_run.job_name for r in runs] == ["main_job"]
        assert runs[0].dagster_run.status == dg.DagsterRunStatus.SUCCESS
        assert runs[0].dagster_run.tags["dagster/asset_partition_range_end"] == today.isoformat()
