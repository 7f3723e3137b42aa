# The code location image. The same image runs the code server (user deployment), every run pod the
# K8sRunLauncher starts, every step pod of k8s_job_executor and, with SYNTH_EXECUTOR=celery, the Celery workers.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/home \
    SYNTH_CONFIG_DIR=/opt/synth/app/config \
    SYNTH_DATA_DIR=/opt/synth/data \
    NUMBA_CACHE_DIR=/opt/synth/numba-cache

RUN groupadd --system --gid 10001 synth \
    && useradd --system --uid 10001 --gid synth --home-dir /opt/synth --shell /usr/sbin/nologin synth

WORKDIR /opt/synth/app
COPY pyproject.toml README.md workspace.yaml ./
COPY synth_platform ./synth_platform
COPY config ./config

# dumb-init (a static binary in its wheel) is PID 1: it forwards SIGTERM to Dagster and Celery and reaps children.
# The NDJSON renderer is compiled here (numba, ~2 s per process otherwise) into NUMBA_CACHE_DIR, which stays
# writable by the runtime user: numba adds an entry there if a node's CPU differs from the build machine's.
RUN pip install --no-cache-dir dumb-init==1.2.5.post1 . \
    && mkdir -p "$DAGSTER_HOME" "$SYNTH_DATA_DIR" "$NUMBA_CACHE_DIR" \
    && python -c "import numpy as np; from synth_platform.sinks.ndjson import Number, Text, render; \
fields = [Text('t', np.frombuffer(b'ab', dtype=np.uint8).reshape(2, 1)), Number('n', np.arange(2.0), 2)]; \
render(fields, 2); render(fields, 2, np.ones(2, dtype=bool))" \
    && chown -R synth:synth "$DAGSTER_HOME" "$SYNTH_DATA_DIR" "$NUMBA_CACHE_DIR"

# Numeric, so Kubernetes can check runAsNonRoot without reading /etc/passwd.
USER 10001:10001
EXPOSE 3030

# The Helm chart and the K8s launchers pass the whole command as args ("dagster api grpc ...", "dagster api
# execute_run ..."), so the entrypoint only wraps it; run alone, the image serves the code location.
ENTRYPOINT ["dumb-init", "--"]
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "3030", "-m", "synth_platform.definitions"]
