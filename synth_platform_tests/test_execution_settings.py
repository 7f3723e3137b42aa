"""The executor chosen from the environment: local by default, Celery or Kubernetes on request, clear errors that
name the variable, and the broker password nowhere in the definitions, the executor config or an error."""

import pytest
from dagster._core.snap import JobSnap

from synth_platform.definitions import MAIN_JOB, build_definitions
from synth_platform.domains import load_platform
from synth_platform.execution import CELERY_QUEUE_TAG, executor_from_env, heavy_step_tags
from synth_platform.execution.settings import ExecutionConfigError, celery_settings

SECRET = "s3cr3t-pw"
BROKER = f"pyamqp://synth:{SECRET}@rabbit.internal:5672/synth"


def jobs(monkeypatch, config_dir, **env: str) -> dict:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    defs = build_definitions(load_platform(config_dir))
    names = (MAIN_JOB, "daily_close", "__ASSET_JOB", "live_power_usage")
    return {name: defs.resolve_job_def(name) for name in names}


def test_local_executor_by_default(monkeypatch, config_dir):
    monkeypatch.delenv("SYNTH_EXECUTOR", raising=False)
    found = jobs(monkeypatch, config_dir)
    assert {n: j.executor_def.name for n, j in found.items()} == {
        MAIN_JOB: "multiprocess",  # forked from a preloaded server (definitions.PARALLEL_EXECUTOR)
        "daily_close": "in_process",
        "__ASSET_JOB": "in_process",
        "live_power_usage": "in_process",
    }
    assert heavy_step_tags({}) == {}


def test_celery_for_main_close_and_backfills_live_stays_in_process(monkeypatch, config_dir):
    found = jobs(
        monkeypatch, config_dir, SYNTH_EXECUTOR="celery", SYNTH_CELERY_BROKER=BROKER, SYNTH_CELERY_HEAVY_QUEUE="heavy"
    )
    assert {n: j.executor_def.name for n, j in found.items()} == {
        MAIN_JOB: "celery",
        "daily_close": "celery",
        "__ASSET_JOB": "celery",
        "live_power_usage": "in_process",
    }
    main = found[MAIN_JOB]
    queues = {n.name: n.tags[CELERY_QUEUE_TAG] for n in main.all_node_defs if CELERY_QUEUE_TAG in n.tags}
    assert queues == {"meter_readings": "heavy"}  # only the heavy step goes to its own queue
    # the executor's configured values name the variable (resolved where the executor starts), and the password
    # is nowhere in what Dagster stores of a job
    configured = main.executor_def.config_schema._invoke_user_config_fn({})["config"]
    assert configured["broker"] == {"env": "SYNTH_CELERY_BROKER"}
    for job in found.values():
        assert SECRET not in str(JobSnap.from_job_def(job))


def test_kubernetes_executor(monkeypatch, config_dir):
    found = jobs(monkeypatch, config_dir, SYNTH_EXECUTOR="k8s", SYNTH_K8S_MAX_CONCURRENT="4")
    assert found[MAIN_JOB].executor_def.name == "k8s"
    assert found["live_power_usage"].executor_def.name == "in_process"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SYNTH_EXECUTOR": "dask"}, "SYNTH_EXECUTOR='dask': must be one of local, celery, k8s"),
        ({"SYNTH_EXECUTOR": "celery"}, "SYNTH_CELERY_BROKER is not set"),
        (
            {"SYNTH_EXECUTOR": "celery", "SYNTH_CELERY_BROKER": f"http://u:{SECRET}@host/"},
            "SYNTH_CELERY_BROKER='http://u:***@host/': the scheme must be one of amqp://",
        ),
        (
            {"SYNTH_EXECUTOR": "celery", "SYNTH_CELERY_BROKER": BROKER, "SYNTH_CELERY_QUEUE": "a b"},
            "SYNTH_CELERY_QUEUE='a b': a queue name is letters",
        ),
        ({"SYNTH_EXECUTOR": "k8s", "SYNTH_K8S_MAX_CONCURRENT": "0"}, "SYNTH_K8S_MAX_CONCURRENT='0': must be"),
    ],
)
def test_bad_settings_name_the_variable_never_the_password(env, message):
    with pytest.raises(ExecutionConfigError) as error:
        executor_from_env(env)
    assert str(error.value).startswith(message)
    assert SECRET not in str(error.value)


def test_settings_repr_and_queues_default_to_the_main_queue():
    settings = celery_settings({"SYNTH_CELERY_BROKER": BROKER, "SYNTH_CELERY_BACKEND": f"redis://:{SECRET}@r/1"})
    assert SECRET not in repr(settings)
    assert "pyamqp://synth:***@rabbit.internal:5672/synth" in repr(settings)
    assert settings.queues == ["synth"]
    assert settings.celery_config()["task_acks_late"] is True
