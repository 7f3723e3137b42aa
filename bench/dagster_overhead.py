"""Dagster's overhead per click: for power_usage launched as `dg launch` does (one partition, then a 7-day range),
the run's wall time (RUN_START to RUN_SUCCESS, what the UI counts) against the time spent in step work (STEP_START
to STEP_SUCCESS); and `make run` end to end on the shipped world, in a scratch DAGSTER_HOME and data folder, with
the CPU time of all its processes (less sensitive than wall time to other load on the machine).
Targets: wall <= 3x step work for both runs, `make run` <= 60 s (after install)."""

import os
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
from dagster._core.instance.ref import InstanceRef

from synth_platform.resources import PROJECT_ROOT

BIN = PROJECT_ROOT / ".venv" / "bin"
LOCAL_INSTANCE = PROJECT_ROOT / "deploy" / "local" / "dagster.yaml"
WALL_TARGET, MAKE_RUN_TARGET = 3.0, 60.0


def session_cpu(session: int) -> dict[int, float]:
    """CPU seconds (user + sys) so far of every process of a session, by pid."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[3]) == session:  # fields after the command: state, ppid, pgrp, session, ..., utime, stime
            found[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / tick
    return found


def measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of a command in a session of its own: CPU is user + sys of every process of the session,
    sampled every 0.1 s (so multiprocessing's fork server and its step processes count, which `time` misses: the
    fork server is never waited for); a process shorter than a sample is missed."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    cpu: dict[int, float] = {}
    while proc.poll() is None:
        cpu.update(session_cpu(proc.pid))
        time.sleep(0.1)
    wall = time.perf_counter() - started
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return wall, sum(cpu.values())


def dg_launch(env: dict[str, str], *args: str) -> None:
    subprocess.run([str(BIN / "dg"), "launch", *args], cwd=PROJECT_ROOT, env=env, check=True, capture_output=True)


def wall_and_work(instance: dg.DagsterInstance) -> tuple[float, float]:
    """(run wall, step work) in seconds of the newest run, from its events."""
    (run,) = instance.get_runs(limit=1)
    at: dict[dg.DagsterEventType, float] = {}
    work = 0.0
    for entry in instance.all_logs(run.run_id):
        kind = entry.dagster_event_type
        if kind in (dg.DagsterEventType.RUN_START, dg.DagsterEventType.RUN_SUCCESS):
            at[kind] = entry.timestamp
        elif kind == dg.DagsterEventType.STEP_START:
            work -= entry.timestamp
        elif kind == dg.DagsterEventType.STEP_SUCCESS:
            work += entry.timestamp
    return at[dg.DagsterEventType.RUN_SUCCESS] - at[dg.DagsterEventType.RUN_START], work


def main() -> bool:
    scratch = Path(tempfile.mkdtemp(prefix="dagster_overhead_"))
    try:
        home = scratch / "home"
        home.mkdir()
        shutil.copy(LOCAL_INSTANCE, home / "dagster.yaml")
        env = {**os.environ, "DAGSTER_HOME": str(home), "SYNTH_DATA_DIR": str(scratch / "data"),
               "VIRTUAL_ENV": str(BIN.parent)}  # fmt: skip
        for name in ("SYNTH_DATABASE_URL", "SYNTH_BUCKET_URL", "SYNTH_CONFIG_DIR"):
            env.pop(name, None)
        today = datetime.now(UTC).date()
        days = [(today - timedelta(days=d)).isoformat() for d in range(9, 1, -1)]
        dg_launch(env, "--assets", "device_metadata")
        ok = True
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            for label, args in (
                ("one partition", ["--partition", days[0]]),
                ("7-day range", ["--partition-range", f"{days[1]}...{days[7]}"]),
            ):
                started = time.perf_counter()
                dg_launch(env, "--assets", "power_usage", *args)
                command = time.perf_counter() - started
                wall, work = wall_and_work(instance)
                ratio = wall / work
                ok &= ratio <= WALL_TARGET
                print(
                    f"power_usage {label}: run wall {wall:.2f}s, step work {work:.2f}s -> {ratio:.2f}x "
                    f"(target <= {WALL_TARGET:g}x); dg launch command {command:.1f}s"
                )
        make_run, cpu = measured(
            ["make", "run", f"DAGSTER_HOME={scratch / 'demo_home'}"],
            {**env, "SYNTH_DATA_DIR": str(scratch / "demo_data")},
        )
        ok &= make_run <= MAKE_RUN_TARGET
        print(f"make run (after install): {make_run:.1f}s (target <= {MAKE_RUN_TARGET:g}s), CPU {cpu:.1f}s user+sys")
        return ok
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
