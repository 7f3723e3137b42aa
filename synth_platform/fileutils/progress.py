"""A progress bar over the bytes of the input, drawn only when stderr is a terminal (quiet in pipes, logs, CI)."""

from __future__ import annotations

import sys
from pathlib import Path

from tqdm import tqdm


def progress(source: Path, what: str, enabled: bool = True) -> tqdm:
    return tqdm(
        total=source.stat().st_size,
        desc=what,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        leave=False,
        file=sys.stderr,
        disable=not (enabled and sys.stderr.isatty()),
    )
