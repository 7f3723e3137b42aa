"""Target resources, configured from the environment with embedded defaults under SYNTH_DATA_DIR."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.delta import DeltaResource
from synth_platform.sinks.files import BucketResource
from synth_platform.sinks.tinybird import TinybirdResource

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
        "bucket": BucketResource(url=env_or("SYNTH_BUCKET_URL", str(data_dir() / "bucket"))),
        "delta": DeltaResource(root=env_or("SYNTH_DELTA_ROOT", str(data_dir() / "delta"))),
        "tinybird": TinybirdResource(
            api_url=env_or("TINYBIRD_API_URL", "https://api.tinybird.co"),
            token=env_or("TINYBIRD_TOKEN", ""),
            outbox_dir=str(data_dir() / "tinybird_outbox"),
        ),
    }
