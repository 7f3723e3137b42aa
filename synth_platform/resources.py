"""Target resources, configured from the environment with embedded defaults under SYNTH_DATA_DIR."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from synth_platform.sinks.database import DatabaseResource

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """Root of the embedded targets (SQLite file, local bucket, Delta tables, Tinybird outbox)."""
    return Path(os.environ.get("SYNTH_DATA_DIR") or PROJECT_ROOT / ".data").resolve()


def env_or(name: str, default: str) -> str | dg.EnvVar:
    """An EnvVar when the variable is set (so the UI shows its source, never its value), else the default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def database_url() -> str:
    return os.environ.get("SYNTH_DATABASE_URL") or f"sqlite:///{data_dir() / 'synth.db'}"


def build_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "database": DatabaseResource(url=env_or("SYNTH_DATABASE_URL", database_url())),
    }
