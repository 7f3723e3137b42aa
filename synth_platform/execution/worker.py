"""The Celery app workers run: `celery -A synth_platform.execution.worker worker -Q <queue>` (or
`dagster-celery worker start -A synth_platform.execution.worker -q <queue>`), with the same SYNTH_CELERY_* and
target variables as the runs. Each worker imports the code location when it runs its first step."""

from synth_platform.execution.celery_executor import worker_app
from synth_platform.execution.settings import celery_settings

app = worker_app(celery_settings())
