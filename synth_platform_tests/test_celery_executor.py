"""Backfills on Celery workers through the RabbitMQ server on this machine (SYNTH_EXECUTOR=celery), with a Dagster
instance in PostgreSQL that the run and the workers share (deploy/dagster.yaml on a scratch database).

- Two named workers run a 4-day backfill of power_usage and meter_readings, each meter day in 4 shard steps: both
  run steps (their names are in the run's events), the steps go to the backfill and heavy queues, and the rows and
  files equal the same backfill with the local executor and unsplit days, byte for byte.
- A worker SIGKILLed (with its pool) in the middle of writing a meter day: the broker re-delivers the step to the
  other worker, the run succeeds and the day holds exactly the files of an undisturbed run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from synth_platform.definitions import MAIN_JOB, build_definitions
from synth_platform.domains import load_platform
from synth_platform.execution import CELERY_QUEUE_TAG
from synth_platform.resources import PROJECT_ROOT
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.files import BucketResource
from synth_platform.streams.meters import SHARDS
from synth_platform.world.power_usage import expected_rows
from synth_platform.world.windows import Window
from synth_platform_tests.celery_workers import Worker, start_worker, unique_queue
from synth_platform_tests.config_files import edit_yaml
from synth_platform_tests.mid_write import wait_inside
from synth_platform_tests.services import POSTGRES_ADMIN_URL, dagster_pg_env, rabbitmq_url, scratch_database

pytestmark = pytest.mark.timeout(240)

FIRST, LAST = "2026-03-01", "2026-03-04"
RANGE_TAGS = {"dagster/asset_partition_range_start": FIRST, "dagster/asset_partition_range_end": LAST}
DAGSTER = str(Path(sys.executable).with_name("dagster"))


def small_world(config_dir: Path, domains: list[str], day_shards: int = 1) -> None:
    edit_yaml(config_dir / "world.yaml", domains=domains, start_date="2026-01-01")
    edit_yaml(config_dir / "power.yaml", **{"devices.count": 20, "usage.interval_minutes": 60})
    edit_yaml(
        config_dir / "meters.yaml",
        **{"fleet.count": 40, "interval_seconds": 60, "output.meters_per_part": 10, "day_shards": day_shards},
    )


@pytest.fixture
def celery_env(tmp_path: Path, config_dir: Path, monkeypatch) -> Iterator[dict[str, str]]:
    """The environment of the runs and the workers: the broker, fresh queues, the shared instance in a scratch
    PostgreSQL database, and the targets under tmp_path/celery. Also set in this process (to read the instance)."""
    broker = rabbitmq_url()
    with scratch_database(POSTGRES_ADMIN_URL) as instance_url:
        home = tmp_path / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())
        queue = unique_queue()
        env = {
            "DAGSTER_HOME": str(home),
            **dagster_pg_env(instance_url),
            "SYNTH_CONFIG_DIR": str(config_dir),
            "SYNTH_DATA_DIR": str(tmp_path / "celery"),
            "SYNTH_EXECUTOR": "celery",
            "SYNTH_CELERY_BROKER": broker,
            "SYNTH_CELERY_QUEUE": queue,
            "SYNTH_CELERY_BACKFILL_QUEUE": f"{queue}_backfill",
            "SYNTH_CELERY_HEAVY_QUEUE": f"{queue}_heavy",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield {**os.environ, **env}


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def shared_instance(env: dict[str, str]) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(env["DAGSTER_HOME"]))


def step_hosts(instance: dg.DagsterInstance, run_id: str) -> dict[str, list[str]]:
    """Step key -> the workers that started it, in order, from dagster-celery's engine events (a worker reports
    its event, and the run reports it again with the step's result)."""
    hosts: dict[str, list[str]] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or not event.is_engine_event or "in celery worker" not in (event.message or ""):
            continue
        worker = event.engine_event_data.metadata["Celery worker"].value
        if worker not in hosts.setdefault(event.step_key, []):
            hosts[event.step_key].append(worker)
    return hosts


def submitted_queues(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """Step key -> the queue dagster-celery sent it to."""
    found = {}
    for record in instance.all_logs(run_id):
        message = record.dagster_event.message if record.dagster_event else ""
        if (message or "").startswith("Submitting celery task for step"):
            found[record.step_key] = message.rsplit('to queue "', 1)[1].rstrip('".')
    return found


def files_of(data_dir: Path, prefix: str = "") -> dict[str, bytes]:
    """The bucket's objects under `prefix`, as the bucket lists them (a killed writer's hidden temp file is no
    object; the sink removes it once it is old enough that no live writer can own it)."""
    bucket = BucketResource(url=str(data_dir / "bucket"))
    return {name: bucket.read_bytes(name) for name in sorted(bucket.list(prefix))}


def table_rows(url: str) -> dict[str, list[tuple]]:
    db = DatabaseResource(url=url)
    return {
        "device_metadata": db.query("SELECT * FROM device_metadata ORDER BY device_id"),
        "power_usage": db.query("SELECT * FROM power_usage ORDER BY timestamp, device_id"),
    }


def test_two_workers_backfill_equals_the_local_executor(celery_env, workers, tmp_path, config_dir, monkeypatch):
    small_world(config_dir, ["power", "meters"], day_shards=4)
    queue = celery_env["SYNTH_CELERY_QUEUE"]
    with scratch_database(POSTGRES_ADMIN_URL) as celery_db, scratch_database(POSTGRES_ADMIN_URL) as local_db:
        env = {**celery_env, "SYNTH_DATABASE_URL": celery_db}
        # each worker serves both queues a backfill uses; nothing listens on the default queue
        workers += [start_worker(n, [f"{queue}_backfill", f"{queue}_heavy"], env, tmp_path) for n in ("a", "b")]
        for worker in workers:
            worker.wait_ready()
        backfill = {**RANGE_TAGS, "dagster/backfill": "celery-test"}
        run = subprocess.run(
            [
                DAGSTER,
                "job",
                "execute",
                "-m",
                "synth_platform.definitions",
                "-j",
                MAIN_JOB,
                "--tags",
                json.dumps(backfill),
            ],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]

        with shared_instance(env) as instance:
            (record,) = instance.get_run_records()
            assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
            hosts = step_hosts(instance, record.dagster_run.run_id)
            queues = submitted_queues(instance, record.dagster_run.run_id)
        shards = {f"meter_readings.shard_{i}" for i in range(4)}
        assert {"power_usage", "meter_readings.manifest", "device_metadata", "meter_fleet", *shards} <= set(hosts)
        assert {h for ran_on in hosts.values() for h in ran_on} == {w.node for w in workers}, hosts
        assert {queues.pop(step) for step in shards} == {f"{queue}_heavy"}
        assert set(queues.values()) == {f"{queue}_backfill"}

        # the same backfill with the local executor and one-step days, in this process, into other targets
        small_world(config_dir, ["power", "meters"], day_shards=1)
        monkeypatch.delenv("SYNTH_EXECUTOR")
        monkeypatch.setenv("SYNTH_DATA_DIR", str(tmp_path / "local"))
        monkeypatch.setenv("SYNTH_DATABASE_URL", local_db)
        with dg.instance_for_test() as local_instance:
            job = build_definitions(load_platform(config_dir)).resolve_job_def(MAIN_JOB)
            assert job.execute_in_process(instance=local_instance, tags=RANGE_TAGS).success

        local_rows, celery_rows = table_rows(local_db), table_rows(celery_db)
    platform = load_platform(config_dir)
    days = Window(Window.for_day(FIRST).start, Window.for_day(LAST).end).days()
    assert len(local_rows["power_usage"]) == sum(
        expected_rows(platform.get("power"), platform.world.seed, d) for d in days
    )
    assert celery_rows == local_rows
    local_files, celery_files = files_of(tmp_path / "local"), files_of(tmp_path / "celery")
    records = [n for n in celery_files if n.startswith(SHARDS)]  # the shards' records, kept beside the stream
    assert len(records) == 4 * 4
    for name in records:
        del celery_files[name]
    assert sum(n.startswith(f"meter_readings/dt={d}/") for n in local_files for d in ("2026-03-01", LAST)) == 10
    assert celery_files == local_files


# Worker "a" stops in the middle of writing the meter day (its first part file written, the second one open), says
# so, and waits to be killed. Run before Celery starts, so the pool children inherit it.
HANG_IN_SECOND_PART = (
    "from pathlib import Path\n"
    "from synth_platform_tests.mid_write import hang_in_second_part\n"
    "hang_in_second_part('meter_readings/', Path({signal_file!r}))\n"
)


def test_worker_killed_mid_step_the_step_is_redelivered(celery_env, workers, tmp_path, config_dir, monkeypatch):
    small_world(config_dir, ["meters"])
    env = {**celery_env, "SYNTH_CELERY_HEAVY_QUEUE": ""}  # one queue: the step must be able to move to worker b
    queue, signal_file, day = celery_env["SYNTH_CELERY_QUEUE"], tmp_path / "inside_write", "2026-03-02"
    doomed = start_worker(
        "a", [queue], env, tmp_path, preamble=HANG_IN_SECOND_PART.format(signal_file=str(signal_file))
    )
    workers.append(doomed)
    doomed.wait_ready()
    run = subprocess.Popen(
        [
            DAGSTER,
            "asset",
            "materialize",
            "-m",
            "synth_platform.definitions",
            "--select",
            "meter_readings",
            "--partition",
            day,
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_inside(signal_file, run, timeout=120, log=doomed.output)
        assert list(files_of(tmp_path / "celery", f"meter_readings/dt={day}/")) == [
            f"meter_readings/dt={day}/part-00000.ndjson.gz"
        ]  # killed after its first part file, before the manifest
        survivor = start_worker("b", [queue], env, tmp_path)
        workers.append(survivor)
        survivor.wait_ready()
        doomed.kill()
        output, _ = run.communicate(timeout=150)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, output[-4000:]

    with shared_instance(env) as instance:
        (record,) = instance.get_run_records()
        assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        assert step_hosts(instance, record.dagster_run.run_id)["meter_readings"] == [doomed.node, survivor.node]

    # exactly the files of an undisturbed run of the day (the killed worker's partial part is gone)
    monkeypatch.delenv("SYNTH_EXECUTOR")
    monkeypatch.setenv("SYNTH_DATA_DIR", str(tmp_path / "local"))
    with dg.instance_for_test() as local_instance:
        defs = build_definitions(load_platform(config_dir))
        assert dg.materialize(
            [defs.get_assets_def("meter_readings")],
            instance=local_instance,
            partition_key=day,
            resources=defs.resources,
        ).success
    prefix = f"meter_readings/dt={day}/"
    assert files_of(tmp_path / "celery", prefix) == files_of(tmp_path / "local", prefix)
    assert len(files_of(tmp_path / "celery", prefix)) == 5  # 4 parts and the manifest


def test_queue_tag_is_dagster_celerys():
    from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG

    assert CELERY_QUEUE_TAG == DAGSTER_CELERY_QUEUE_TAG
