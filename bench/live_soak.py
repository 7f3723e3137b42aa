"""Live soak under the real daemon: a 10-second stream for at least 5 minutes (LIVE_SOAK_SECONDS to change).

Runs `dagster-daemon run` on a temp DAGSTER_HOME with the project's dagster.yaml and a temp config in which the
e-store event stream has 10-second micro-batches (the only stream whose cadence goes below a minute). Prints windows
requested and written, missing and duplicate windows, and the lag from a window's end to its rows being visible
(the run's materialization event, recorded after the sink committed). Target: no missing or duplicate windows and
p95 lag within 3x the cadence.

Each window is a run and each run a process: the daemon's sensor loop (5 s), the run queue (dequeued every second,
dagster.yaml) and the run worker's start-up (importing the code location) make up most of the lag. Live jobs use the
in-process executor so a run is one process, not two.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import numpy as np
from dagster._core.instance.ref import InstanceRef

from synth_platform.assets.common import LIVE_WINDOW_END_TAG, LIVE_WINDOW_START_TAG
from synth_platform.automation.live import LIVE_STREAM_TAG
from synth_platform.resources import PROJECT_ROOT
from synth_platform.specs import DEFAULT_CONFIG_DIR
from synth_platform_tests.config_files import edit_yaml

CADENCE = 10
STREAM = "estore_events"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> bool:
    soak = int(os.environ.get("LIVE_SOAK_SECONDS", "300"))
    with tempfile.TemporaryDirectory(prefix="live_soak_", ignore_cleanup_errors=True) as tmp:
        root = Path(tmp)
        config = root / "config"
        shutil.copytree(DEFAULT_CONFIG_DIR, config)
        edit_yaml(config / "world.yaml", domains=["estore"], **{
            "live.initial_cursor": 1, "live.min_interval_seconds": 5, "live.max_windows_per_tick": 6,
            "live.max_runs_in_flight": 6,
        })  # fmt: skip
        edit_yaml(config / "estore.yaml", micro_batch_seconds=CADENCE, **{
            "catalog.customers": 200, "catalog.products": 50, "sql.events": False, "sql.totals": False,
        })  # fmt: skip
        home = root / "dagster_home"
        home.mkdir()
        shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
        env = {**os.environ, "DAGSTER_HOME": str(home), "SYNTH_CONFIG_DIR": str(config),
               "SYNTH_DATA_DIR": str(root / "data")}  # fmt: skip
        for name in ("SYNTH_DATABASE_URL", "TINYBIRD_TOKEN"):
            env.pop(name, None)

        daemon_bin = str(Path(sys.executable).parent / "dagster-daemon")
        log = (root / "daemon.log").open("wb")
        started = datetime.now(UTC)
        daemon = subprocess.Popen(
            [daemon_bin, "run", "-w", "workspace.yaml"], cwd=PROJECT_ROOT, env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        print(f"soaking {soak}s at a {CADENCE}s cadence ({STREAM}) under dagster-daemon ...", flush=True)
        try:
            time.sleep(soak)
        finally:
            stopped = datetime.now(UTC)
            os.killpg(daemon.pid, signal.SIGINT)
            try:
                daemon.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
            log.close()

        os.environ["DAGSTER_HOME"] = str(home)
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            return report(instance, started, stopped, root / "daemon.log")


def report(instance: dg.DagsterInstance, started: datetime, stopped: datetime, log: Path) -> bool:
    runs = instance.get_runs(dg.RunsFilter(tags={LIVE_STREAM_TAG: STREAM}))
    requested: dict[datetime, int] = {}
    ok_runs: dict[str, datetime] = {}
    for run in runs:
        start = datetime.fromisoformat(run.tags[LIVE_WINDOW_START_TAG])
        if "dagster/parent_run_id" not in run.tags:  # retries re-run a request, they are not new requests
            requested[start] = requested.get(start, 0) + 1
        if run.status == dg.DagsterRunStatus.SUCCESS:
            ok_runs[run.run_id] = datetime.fromisoformat(run.tags[LIVE_WINDOW_END_TAG])
    records = instance.fetch_materializations(dg.AssetKey(STREAM), limit=10_000).records
    visible = {r.run_id: r.timestamp for r in records if r.run_id in ok_runs}
    written = {ok_runs[run_id] for run_id in visible}
    lags = [ts - ok_runs[run_id].timestamp() for run_id, ts in visible.items()]

    if not requested:
        print(f"no live window was requested; daemon log tail:\n{log.read_text(errors='replace')[-3000:]}")
        return False
    first = min(requested)
    # every window that closed at least 3 cadences before the daemon stopped must have been written
    due_end = int(stopped.timestamp()) - 3 * CADENCE
    due = [
        datetime.fromtimestamp(s + CADENCE, UTC) for s in range(int(first.timestamp()), due_end - CADENCE + 1, CADENCE)
    ]
    missing = [w for w in due if w not in written]
    duplicates = sorted(w for w, n in requested.items() if n > 1)
    p50, p95 = percentile(lags, 50), percentile(lags, 95)
    retried = sum(1 for r in runs if "dagster/parent_run_id" in r.tags)
    failed = sum(1 for r in runs if r.status == dg.DagsterRunStatus.FAILURE)

    print(f"soak            {(stopped - started).total_seconds():.0f}s, cadence {CADENCE}s, stream {STREAM}")
    print(f"windows         requested {len(requested)}, written {len(written)}, due {len(due)}")
    print(f"missing         {len(missing)}  duplicates {len(duplicates)}  failed runs {failed}  retries {retried}")
    print(f"lag (visible - window end)  p50 {p50:.1f}s  p95 {p95:.1f}s  max {max(lags, default=float('nan')):.1f}s")
    print(f"p95 / cadence   {p95 / CADENCE:.2f}x (target <= 3x)")
    ok = bool(due) and not missing and not duplicates and p95 <= 3 * CADENCE
    for run in runs:
        if run.status == dg.DagsterRunStatus.FAILURE:
            ended = instance.get_run_record_by_id(run.run_id).end_time or stopped.timestamp()
            when = "stopped with the daemon" if ended >= stopped.timestamp() else "failed while the daemon ran"
            print(f"failed run      {run.run_id[:8]} for the window ending {run.tags[LIVE_WINDOW_END_TAG]} ({when})")
    if not ok and missing:
        print(f"first missing windows (end): {[w.isoformat() for w in missing[:5]]}")
    return ok
