"""Scale-out on this machine: a meter backfill through Celery workers (the RabbitMQ broker here) against the local
executor, and what one step costs to go through the broker.

- Backfill: DAYS days of meter_readings (METERS meters at 10 s; the asset alone, its checks are not timed), one run
  per day as Dagster's backfill launches them (a process per run, all days at once), with the local executor, then
  with SYNTH_EXECUTOR=celery and 1, then 2 fresh worker processes (`celery -A synth_platform.execution.worker worker
  -c 1`, started before the clock). Prints wall time, readings/s and the ratio to the local executor; the files of
  every mode must be identical.
- Per-step overhead: a chain of STEPS no-op steps (each waits for the previous one) with the in-process executor,
  the local multiprocess executor and through one Celery worker; overhead per step = extra time / STEPS.
The Dagster instance is deploy/dagster.yaml on a scratch PostgreSQL database, shared by runs and workers.
Targets: identical files in every mode; broker overhead below 2 s per step.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
from dagster._core.instance.ref import InstanceRef

from synth_platform.domains import load_platform
from synth_platform.execution import executor_from_env
from synth_platform.resources import PROJECT_ROOT
from synth_platform.specs import DEFAULT_CONFIG_DIR
from synth_platform.world.meters import expected_rows
from synth_platform.world.windows import Window
from synth_platform_tests.celery_workers import Worker, start_worker, unique_queue
from synth_platform_tests.config_files import edit_yaml
from synth_platform_tests.services import POSTGRES_ADMIN_URL, RABBITMQ_URL, dagster_pg_env, scratch_database

METERS = int(os.environ.get("SCALE_OUT_METERS", "400"))
DAYS = [f"2026-03-{d:02d}" for d in range(1, 5)]
STEPS = 4


@dg.op(ins={"after": dg.In(dg.Nothing)})
def noop() -> None:
    """A step that does nothing: its time is the executor's."""


def chain_job(executor_def: dg.ExecutorDefinition | None = None) -> dg.JobDefinition:
    @dg.job(name="noop_chain", executor_def=executor_def or dg.multiprocess_executor)
    def chain():
        last = noop.alias("step_0")()
        for i in range(1, STEPS):
            last = noop.alias(f"step_{i}")(last)

    return chain


def celery_chain() -> dg.JobDefinition:
    """The chain on the executor SYNTH_EXECUTOR picks (Celery here); workers rebuild it by this name."""
    return chain_job(executor_from_env())


def local_chain() -> dg.JobDefinition:
    return chain_job()


def timed_chain(job_fn, instance: dg.DagsterInstance) -> float:
    started = time.perf_counter()
    assert dg.execute_job(dg.reconstructable(job_fn), instance=instance).success
    return time.perf_counter() - started


def readings_job() -> dg.JobDefinition:
    """meter_readings without its checks, on the executor SYNTH_EXECUTOR picks; workers rebuild it by this name."""
    from synth_platform.definitions import build_definitions

    job = dg.define_asset_job("bench_readings", selection=dg.AssetSelection.assets("meter_readings").without_checks())
    return dg.Definitions.merge(build_definitions(), dg.Definitions(jobs=[job])).resolve_job_def("bench_readings")


def run_day(day: str) -> None:
    """One run of one day, in its own process (what the run launcher starts for each run of a backfill)."""
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(dg.reconstructable(readings_job), instance, tags={"dagster/partition": day})
    sys.exit(0 if result.success else 1)


def backfill(env: dict[str, str]) -> float:
    """Every day's run at once, as a backfill launches them; seconds until the last one finished."""
    started = time.perf_counter()
    command = [sys.executable, "-c", "import sys; from bench.scale_out import run_day; run_day(sys.argv[1])"]
    runs = [
        subprocess.Popen([*command, day], cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for day in DAYS
    ]
    for day, run in zip(DAYS, runs, strict=True):
        output, _ = run.communicate()
        if run.returncode:
            raise RuntimeError(f"the run of {day} failed:\n{output.decode(errors='replace')[-3000:]}")
    return time.perf_counter() - started


def files_of(bucket: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(bucket)): p.read_bytes()
        for p in sorted(bucket.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def main() -> bool:
    with tempfile.TemporaryDirectory(prefix="scale_out_") as tmp, scratch_database(POSTGRES_ADMIN_URL) as pg:
        root = Path(tmp)
        config = root / "config"
        shutil.copytree(DEFAULT_CONFIG_DIR, config)
        edit_yaml(config / "world.yaml", domains=["meters"], start_date="2026-01-01")
        edit_yaml(config / "meters.yaml", **{"fleet.count": METERS, "interval_seconds": 10})
        platform = load_platform(config)
        rows = sum(expected_rows(platform.get("meters"), platform.world.seed, Window.for_day(d)) for d in DAYS)
        home = root / "dagster_home"
        home.mkdir()
        shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
        queue = unique_queue("synth_bench")
        instance_env = {"DAGSTER_HOME": str(home), **dagster_pg_env(pg)}
        base = {
            **os.environ,
            **instance_env,
            "SYNTH_CONFIG_DIR": str(config),
            "SYNTH_CELERY_BROKER": RABBITMQ_URL,
            "SYNTH_CELERY_QUEUE": queue,
        }
        for name in (
            "SYNTH_DATABASE_URL",
            "SYNTH_BUCKET_URL",
            "SYNTH_EXECUTOR",
            "SYNTH_CELERY_HEAVY_QUEUE",
            "SYNTH_CELERY_BACKFILL_QUEUE",
        ):
            base.pop(name, None)
        os.environ.update(instance_env)
        print(f"backfill: {len(DAYS)} days x {METERS:,} meters at 10 s = {rows:,} readings, one run per day")

        results: dict[str, float] = {}
        outputs: dict[str, dict[str, bytes]] = {}
        workers: list[Worker] = []
        try:
            for mode, count in (("local executor", 0), ("celery, 1 worker", 1), ("celery, 2 workers", 2)):
                env = {**base, "SYNTH_DATA_DIR": str(root / f"data-{count}")}
                if count:  # fresh workers: a worker's targets are those of its environment
                    env["SYNTH_EXECUTOR"] = "celery"
                    while workers:
                        workers.pop().stop()
                    workers = [start_worker(f"w{i}-{count}", [queue], env, root) for i in range(count)]
                    for worker in workers:
                        worker.wait_ready()
                results[mode] = backfill(env)
                outputs[mode] = files_of(root / f"data-{count}" / "bucket")
                print(
                    f"  {mode:<18} {results[mode]:6.1f} s  {rows / results[mode]:>12,.0f} readings/s  "
                    f"{results['local executor'] / results[mode]:.2f}x the local executor",
                    flush=True,
                )

            # per-step overhead, with the first worker still up (the second one stopped)
            workers.pop().stop()
            os.environ.update({k: base[k] for k in ("SYNTH_CELERY_BROKER", "SYNTH_CELERY_QUEUE")})
            with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
                in_process = _in_process_chain(instance)
                multiprocess = timed_chain(local_chain, instance)
                os.environ["SYNTH_EXECUTOR"] = "celery"
                celery = timed_chain(celery_chain, instance)
                os.environ.pop("SYNTH_EXECUTOR")
        finally:
            for worker in workers:
                worker.stop()
        per_step = (celery - in_process) / STEPS
        print(
            f"per step ({STEPS} chained no-op steps): in-process {in_process / STEPS * 1000:.0f} ms, "
            f"multiprocess {multiprocess / STEPS * 1000:.0f} ms, celery {celery / STEPS * 1000:.0f} ms; "
            f"broker overhead {per_step * 1000:.0f} ms per step"
        )

    identical = all(files == outputs["local executor"] for files in outputs.values())
    ok = identical and per_step < 2.0
    print(
        f"targets: identical files in every mode ({'yes' if identical else 'NO'}), broker overhead < 2 s per step "
        f"({per_step:.2f} s): {'met' if ok else 'NOT met'}"
    )
    return ok


def _in_process_chain(instance: dg.DagsterInstance) -> float:
    started = time.perf_counter()
    assert chain_job(dg.in_process_executor).execute_in_process(instance=instance).success
    return time.perf_counter() - started
