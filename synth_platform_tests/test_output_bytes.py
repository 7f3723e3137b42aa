"""Output stays byte-identical: one day of every stream, in every target and file format, written through Dagster
from the seed and a small spec, digested and compared with snapshots/output_digests.json. Files are digested byte
for byte (manifests included: they hold no wall-clock time); database and Delta tables as their sorted rows (Delta's
file names and log hold ids and times of their own). A refactoring must leave every digest as it is; a deliberate
change of output rewrites the file with UPDATE_SNAPSHOTS=1 and shows in review."""

import hashlib
import json
import os
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from synth_platform.assets.common import LIVE_WINDOW_END_TAG, LIVE_WINDOW_START_TAG
from synth_platform.definitions import build_definitions
from synth_platform.domains import load_platform
from synth_platform.sinks.delta import DeltaResource
from synth_platform_tests.config_files import edit_yaml
from synth_platform_tests.runs import assets_only, run_days

SNAPSHOT = Path(__file__).parent / "snapshots" / "output_digests.json"
DAY = "2026-03-01"
LIVE = ("2026-03-02T00:10:00+00:00", "2026-03-02T00:20:00+00:00")  # a live slice of the next (open) day
# The three file formats, each with another layout or fault so every encoder path is covered.
METER_VARIANTS = {
    "ndjson.gz": {"output.format": "ndjson.gz", "faults.zero_probability": 0.05, "faults.gap_probability": 0.3},
    "ndjson": {"output.format": "ndjson", "output.layout": "per_meter", "output.record": "wattif"},
    "parquet": {"output.format": "parquet", "output.max_part_mb": 0.01},
}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _rows_digest(rows: list) -> str:
    return _digest(json.dumps(sorted(map(list, rows), key=repr), default=str).encode())


def _files(root: Path, label: str) -> dict[str, str]:
    return {f"{label}/{p.relative_to(root).as_posix()}": _digest(p.read_bytes()) for p in sorted(root.rglob("*"))
            if p.is_file()}  # fmt: skip


def _run(defs: dg.Definitions, instance: dg.DagsterInstance, day: str, tags: dict | None = None) -> None:
    job = dg.define_asset_job("everything", selection=assets_only(defs))
    defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
    assert run_days(defs, instance, day, job="everything", tags=tags).success


def written(config_dir: Path, data: Path, monkeypatch: pytest.MonkeyPatch, instance: dg.DagsterInstance) -> dict:
    """Digest of everything one day of every stream writes."""
    edit_yaml(config_dir / "world.yaml", start_date="2026-02-01")
    edit_yaml(config_dir / "power.yaml", **{"devices.count": 30, "usage.interval_minutes": 15})
    edit_yaml(config_dir / "estore.yaml", **{"catalog.customers": 60, "catalog.products": 20})
    edit_yaml(config_dir / "meters.yaml", **{"fleet.count": 12, "interval_seconds": 60, "output.meters_per_part": 5})
    monkeypatch.delenv("TINYBIRD_TOKEN", raising=False)
    monkeypatch.delenv("SYNTH_DELTA_ROOT", raising=False)
    monkeypatch.delenv("SYNTH_BUCKET_URL", raising=False)
    _run(build_definitions(load_platform(config_dir)), instance, DAY)

    digests = _files(data / "bucket", "bucket/all_domains") | _files(data / "tinybird_outbox", "tinybird_outbox")
    engine = sa.create_engine(f"sqlite:///{data / 'synth.db'}")
    with engine.connect() as conn:
        for name in sorted(sa.inspect(engine).get_table_names()):
            digests[f"database/{name}"] = _rows_digest(conn.execute(sa.text(f"SELECT * FROM {name}")).all())
    delta = DeltaResource(root=str(data / "delta"))
    for name in sorted(p.name for p in (data / "delta").iterdir()):
        table = delta.read(name, None, None)
        digests[f"delta/{name}"] = _rows_digest(list(zip(*table.to_pydict().values(), strict=True)))

    edit_yaml(config_dir / "world.yaml", domains=["meters"])
    meters_yaml = (config_dir / "meters.yaml").read_text()
    for fmt, changes in METER_VARIANTS.items():
        bucket = data / f"bucket-{fmt}"
        monkeypatch.setenv("SYNTH_BUCKET_URL", str(bucket))
        (config_dir / "meters.yaml").write_text(meters_yaml)
        edit_yaml(config_dir / "meters.yaml", **changes)
        defs = build_definitions(load_platform(config_dir))
        _run(defs, instance, DAY)
        _run(defs, instance, LIVE[0][:10], {LIVE_WINDOW_START_TAG: LIVE[0], LIVE_WINDOW_END_TAG: LIVE[1]})
        digests |= _files(bucket, f"bucket/{fmt}")
    return digests


def test_one_day_of_every_stream_is_byte_identical(config_dir, _data_dir, monkeypatch, instance):
    current = json.dumps(written(config_dir, _data_dir, monkeypatch, instance), indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(current)
    assert SNAPSHOT.read_text() == current, "output changed: review, then rerun with UPDATE_SNAPSHOTS=1"
