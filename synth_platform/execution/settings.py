"""Which executor runs the steps, read from the environment: nothing here imports Celery or Kubernetes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

EXECUTOR_ENV = "SYNTH_EXECUTOR"
BROKER_ENV = "SYNTH_CELERY_BROKER"
BACKEND_ENV = "SYNTH_CELERY_BACKEND"
QUEUE_ENV = "SYNTH_CELERY_QUEUE"
BACKFILL_QUEUE_ENV = "SYNTH_CELERY_BACKFILL_QUEUE"
HEAVY_QUEUE_ENV = "SYNTH_CELERY_HEAVY_QUEUE"
K8S_MAX_CONCURRENT_ENV = "SYNTH_K8S_MAX_CONCURRENT"

EXECUTORS = ("local", "celery", "k8s")
BROKER_SCHEMES = ("amqp", "amqps", "pyamqp", "redis", "rediss")
DEFAULT_QUEUE = "synth"
DEFAULT_BACKEND = "rpc://"  # results travel back over the broker; no second service to run
# Redis re-delivers an unacknowledged task after this long even if its worker is alive; a step (a meter day,
# or one shard of it) must finish well within it. RabbitMQ bounds the same with its consumer_timeout.
REDIS_VISIBILITY_TIMEOUT_S = 12 * 3600


def redact(url: str) -> str:
    """A broker or backend URL with its password replaced by ***."""
    from kombu.utils.url import maybe_sanitize_url  # Celery's own parser; imported only when Celery is used

    return maybe_sanitize_url(url, mask="***")


@dataclass(frozen=True)
class CelerySettings:
    """Where the Celery executor sends steps. `broker` and `backend` may hold passwords: never log them (repr
    shows them redacted); the executor's config names the environment variables instead of the values."""

    broker: str
    backend: str
    queue: str = DEFAULT_QUEUE
    backfill_queue: str = DEFAULT_QUEUE
    heavy_queue: str | None = None

    def __repr__(self) -> str:
        return (
            f"CelerySettings(broker={redact(self.broker)!r}, backend={redact(self.backend)!r}, queue={self.queue!r}, "
            f"backfill_queue={self.backfill_queue!r}, heavy_queue={self.heavy_queue!r})"
        )

    @property
    def queues(self) -> list[str]:
        """Every queue steps may be sent to (what a worker started without -Q listens on)."""
        return list(dict.fromkeys(q for q in (self.queue, self.backfill_queue, self.heavy_queue) if q))

    def celery_config(self) -> dict:
        """Settings of the Celery app, the same in the run that sends steps and in every worker."""
        return {
            "task_default_queue": self.queue,
            # A step is acknowledged once it has finished, so a worker that dies in the middle of one (SIGKILL,
            # OOM, a lost machine) leaves it on the broker and another worker re-runs it; every write replaces
            # its window, so the re-run leaves exactly the expected data.
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 1,  # a worker holds no step it is not running
            "broker_connection_retry_on_startup": True,
            "broker_transport_options": {
                "max_retries": 3,
                "interval_start": 0,
                "interval_step": 0.2,
                "interval_max": 0.5,
                "visibility_timeout": REDIS_VISIBILITY_TIMEOUT_S,
            },
        }


class ExecutionConfigError(ValueError):
    """A bad executor setting in the environment; the message names the variable (and never a password)."""


def executor_kind(environ: Mapping[str, str] = os.environ) -> str:
    kind = (environ.get(EXECUTOR_ENV) or "local").strip().lower()
    if kind not in EXECUTORS:
        raise ExecutionConfigError(f"{EXECUTOR_ENV}={kind!r}: must be one of {', '.join(EXECUTORS)}")
    return kind


def celery_settings(environ: Mapping[str, str] = os.environ) -> CelerySettings:
    """The Celery settings from the environment; an error naming the variable when one is missing or invalid."""
    broker = (environ.get(BROKER_ENV) or "").strip()
    if not broker:
        raise ExecutionConfigError(f"{BROKER_ENV} is not set: the Celery broker URL, e.g. pyamqp://user:pass@host//")
    backend = (environ.get(BACKEND_ENV) or "").strip() or DEFAULT_BACKEND
    scheme = broker.split("://", 1)[0].lower() if "://" in broker else ""
    if scheme not in BROKER_SCHEMES:
        raise ExecutionConfigError(
            f"{BROKER_ENV}={redact(broker)!r}: the scheme must be one of {', '.join(s + '://' for s in BROKER_SCHEMES)}"
        )
    if "://" not in backend:
        raise ExecutionConfigError(f"{BACKEND_ENV}={redact(backend)!r}: not a URL (e.g. rpc:// or redis://host/1)")
    queue = _queue_name(environ, QUEUE_ENV, DEFAULT_QUEUE)
    return CelerySettings(
        broker=broker,
        backend=backend,
        queue=queue,
        backfill_queue=_queue_name(environ, BACKFILL_QUEUE_ENV, queue),
        heavy_queue=_queue_name(environ, HEAVY_QUEUE_ENV, None),
    )


def k8s_max_concurrent(environ: Mapping[str, str] = os.environ) -> int:
    text = (environ.get(K8S_MAX_CONCURRENT_ENV) or "8").strip()
    if not text.isdigit() or int(text) < 1:
        raise ExecutionConfigError(f"{K8S_MAX_CONCURRENT_ENV}={text!r}: must be a whole number of pods >= 1")
    return int(text)


def _queue_name(environ: Mapping[str, str], name: str, default: str | None) -> str | None:
    value = (environ.get(name) or "").strip()
    if not value:
        return default
    if not all(c.isalnum() or c in "-_.:" for c in value):
        raise ExecutionConfigError(f"{name}={value!r}: a queue name is letters, digits and - _ . : only")
    return value
