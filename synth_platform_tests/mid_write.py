"""Stopping a run or a worker in the middle of a write so that a test can kill it there: the process patches a sink
to hang at a chosen point after saying so in a signal file, and the test waits for that file before it kills."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import synth_platform.sinks.prefix_writer as prefix_writer


def hang(signal_file: Path) -> None:
    """Say that the write is under way, then wait to be killed."""
    signal_file.write_text("inside the write")
    time.sleep(600)


def hang_in_second_part(prefix: str, signal_file: Path) -> None:
    """Patch the prefix writer: under `prefix`, the first part file is written whole, the second one gets a partial
    record and then the process hangs with it open (no manifest)."""
    open_file = prefix_writer.PrefixWriter.open

    @contextmanager
    def second_part_hangs(self, name):
        with open_file(self, name) as staged:
            if self.prefix.startswith(prefix) and self.files:
                staged.write(b'{"partial": ')
                hang(signal_file)
            yield staged

    prefix_writer.PrefixWriter.open = second_part_hangs


def wait_inside(signal_file: Path, proc: subprocess.Popen, timeout: float, log: Callable[[], str] = lambda: "") -> None:
    """Wait until the process (its output piped as text) is inside the write; fail if it exits first or never gets
    there (with the end of `log`, e.g. a worker's output, to show why)."""
    deadline = time.monotonic() + timeout
    while not signal_file.exists():
        assert proc.poll() is None, f"the process exited early: {proc.stdout.read()[-4000:]}"
        assert time.monotonic() < deadline, f"the process never reached the write:\n{log()[-3000:]}"
        time.sleep(0.2)
