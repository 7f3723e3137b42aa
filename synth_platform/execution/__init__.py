"""How runs execute their steps: the local executor by default, Celery workers or Kubernetes pods when
SYNTH_EXECUTOR says so (environment variables in settings.py).

Live windows always run in-process in their own run (automation/live.py): a live step never waits in a broker
queue behind a backfill, and the run queue keeps slots for live runs. The chosen executor applies to every other
job: main_job, the daily close and backfills (Dagster's asset job).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg

from synth_platform.execution.settings import BACKEND_ENV, celery_settings, executor_kind, k8s_max_concurrent

CELERY_QUEUE_TAG = "dagster-celery/queue"  # dagster-celery's op tag (dagster_celery.tags), without importing Celery


def executor_from_env(environ: Mapping[str, str] = os.environ) -> dg.ExecutorDefinition | None:
    """The Definitions' default executor; None keeps the local ones definitions.py chooses."""
    kind = executor_kind(environ)
    if kind == "celery":
        from synth_platform.execution.celery_executor import celery_executor

        return celery_executor(celery_settings(environ), backend_from_env=bool(environ.get(BACKEND_ENV)))
    if kind == "k8s":
        from dagster_k8s import k8s_job_executor

        # Each step in its own pod, with the image, env and secrets of the run pod (the K8sRunLauncher's config).
        return k8s_job_executor.configured({"max_concurrent": k8s_max_concurrent(environ)}, name="k8s")
    return None


def heavy_step_tags(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Op tags of a heavy step (a meter day): its own Celery queue when SYNTH_CELERY_HEAVY_QUEUE is set."""
    if executor_kind(environ) != "celery":
        return {}
    queue = celery_settings(environ).heavy_queue
    return {CELERY_QUEUE_TAG: queue} if queue else {}
