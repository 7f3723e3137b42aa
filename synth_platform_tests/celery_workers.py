"""Celery worker processes for tests and benchmarks: named, on queues of their own, each in its own process group
so that killing one is like losing its machine (the pool children die with it)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from synth_platform.resources import PROJECT_ROOT

WORKER_APP = "synth_platform.execution.worker"
# A worker with a `preamble` (a test's patch of a sink) runs it, then what `celery -A ... worker` runs.
_WORKER_MAIN = f"from {WORKER_APP} import app\napp.worker_main(sys.argv[1:])\n"


def unique_queue(prefix: str = "synth_test") -> str:
    """A queue name no other test run uses, so parallel runs on one broker never take each other's steps."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@dataclass
class Worker:
    node: str  # the Celery node name steps report, e.g. "a-synth_test_1234@host"
    proc: subprocess.Popen
    log: Path

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while f"{self.node} ready." not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker {self.node} did not start:\n{self.output()[-3000:]}")
            time.sleep(0.2)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once, as if its machine were lost."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # warm shutdown: finish the current step, take no more
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def start_worker(
    name: str, queues: list[str], env: Mapping[str, str], log_dir: Path, concurrency: int = 1, preamble: str = ""
) -> Worker:
    """A worker consuming `queues` (`-c concurrency` pool processes), with the environment of the runs. Its node
    name carries the first queue's (unique) name: node names are unique on a broker."""
    node = f"{name}-{queues[0]}@{socket.gethostname()}"
    log = log_dir / f"worker-{name}.log"
    args = [
        "worker",
        "-Q",
        ",".join(queues),
        "-n",
        node,
        "-c",
        str(concurrency),
        "-l",
        "INFO",
        "--without-gossip",
        "--without-mingle",
    ]
    if preamble:
        command = [sys.executable, "-c", f"import sys\n{preamble}\n{_WORKER_MAIN}", *args]
    else:
        command = [sys.executable, "-m", "celery", "-A", WORKER_APP, *args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Worker(node, proc, log)
