"""dagster-celery's executor, with one addition: the queue a step goes to also depends on its run.

dagster-celery routes a step by its op tag `dagster-celery/queue`, which is the same in every run of an asset. So a
meter day (tagged when SYNTH_CELERY_HEAVY_QUEUE is set) goes to the heavy queue, and every other step to its run's
queue: backfill runs (tagged `dagster/backfill` by Dagster) to the backfill queue, other runs to the default one.
"""

from __future__ import annotations

import dagster as dg
from celery import Celery
from dagster._core.execution.retries import RetryMode
from dagster_celery.executor import CELERY_CONFIG, CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task
from kombu import Queue

from synth_platform.execution.settings import BACKEND_ENV, BROKER_ENV, CelerySettings

BACKFILL_TAG = "dagster/backfill"


class RoutedCeleryExecutor(CeleryExecutor):
    def __init__(self, backfill_queue: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.backfill_queue = backfill_queue

    def execute(self, plan_context, execution_plan):
        # Dagster creates an executor per run, so the run's queue can be set on it: dagster-celery reads the app's
        # task_default_queue (from config_source) for every step without a queue tag.
        if self.backfill_queue and BACKFILL_TAG in plan_context.dagster_run.tags:
            self.config_source.task_default_queue = self.backfill_queue
        return super().execute(plan_context, execution_plan)


@dg.executor(
    name="celery",
    config_schema={
        **CELERY_CONFIG,
        "backfill_queue": dg.Field(
            dg.Noneable(str), is_required=False, default_value=None, description="Queue of backfill runs' steps."
        ),
    },
    requirements=dg.multiple_process_executor_requirements(),
)
def routed_celery_executor(init_context: dg.InitExecutorContext) -> RoutedCeleryExecutor:
    config = init_context.executor_config
    return RoutedCeleryExecutor(
        backfill_queue=config.get("backfill_queue"),
        broker=config.get("broker"),
        backend=config.get("backend"),
        include=config.get("include"),
        config_source=config.get("config_source"),
        retries=RetryMode.from_config(config["retries"]),
    )


def celery_executor(settings: CelerySettings, backend_from_env: bool) -> dg.ExecutorDefinition:
    """The executor for the settings. The broker (and a backend given in the environment) stay environment
    references in the config, resolved where the executor starts, so no password is stored with a run."""
    return routed_celery_executor.configured(
        {
            "broker": {"env": BROKER_ENV},
            "backend": {"env": BACKEND_ENV} if backend_from_env else settings.backend,
            "config_source": settings.celery_config(),
            "backfill_queue": settings.backfill_queue,
        },
        name="celery",
    )


def worker_app(settings: CelerySettings) -> Celery:
    """The Celery app of a worker: dagster-celery's step task, the same settings as the executor, and every
    configured queue declared (a worker started without -Q listens on all of them)."""
    executor = CeleryExecutor.for_cli(
        broker=settings.broker, backend=settings.backend, config_source=settings.celery_config()
    )
    app = make_app(executor.app_args())
    app.conf.task_queues = [Queue(name) for name in settings.queues]
    create_task(app)
    return app
