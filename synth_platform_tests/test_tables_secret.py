"""A secret planted in the environment (and as the database password) never comes out: a spec trying every allowed
route of the expression language is materialized into Delta, PostgreSQL and Parquet, and the secret is in no
output file, table, metadata, event log or captured output; the refused routes' load errors do not hold it."""

from __future__ import annotations

import shutil

import pyarrow.dataset as ds
import pytest
import sqlalchemy as sa
import yaml

from synth_platform.definitions import MAIN_JOB, build_definitions
from synth_platform.domains import load_platform
from synth_platform.resources import data_dir
from synth_platform.sinks.delta import DeltaResource
from synth_platform.specs.loader import SpecError
from synth_platform_tests.config_files import edit_yaml
from synth_platform_tests.test_tables_hostile import AT_LOAD, EVALUATE, HELPERS, SECRET


def _columns(routes):
    return [{"column_name": "id", "data": "row_id", "is_primary_key": True}] + [
        {"column_name": f"r{i}", "data": data} for i, data in enumerate(routes)
    ]


@pytest.fixture
def hostile_config(config_dir, monkeypatch):
    monkeypatch.setenv("HOSTILE_SECRET", SECRET)
    monkeypatch.delenv("SYNTH_DELTA_ROOT", raising=False)
    edit_yaml(config_dir / "world.yaml", domains=["tables"], start_date="2026-03-01")
    shutil.rmtree(config_dir / "tables")
    (config_dir / "tables").mkdir()
    (config_dir / "tables" / "helpers.py").write_text(HELPERS)
    routes = [*EVALUATE, "f'{fake.name()!r:>30}|{row_id!a}|{fake.date_time():%Y}'", "'{n}'.format(n=fake.email())"]
    spec = {
        "version": 1,
        "config": {"python_import": ["helpers"], "pool_size": 20},
        "tables": [
            {"table_name": "h_delta", "row_count": 15, "target": "delta", "columns": _columns(routes)},
            {"table_name": "h_sql", "row_count": 15, "target": "database", "columns": _columns(routes)},
            {"table_name": "h_files", "row_count": 3, "cadence": {"rows_per_minute": 1}, "target": "parquet",
             "columns": _columns(routes)},
        ],
    }  # fmt: skip
    (config_dir / "tables" / "hostile.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return config_dir


def test_planted_secret_appears_nowhere(hostile_config, instance, postgres_url, capfd, monkeypatch):
    monkeypatch.setenv("SYNTH_DATABASE_URL", postgres_url.replace("postgres@", f"postgres:{SECRET}@", 1))
    defs = build_definitions(load_platform(hostile_config))
    tags = {"dagster/asset_partition_range_start": "2026-03-01", "dagster/asset_partition_range_end": "2026-03-01"}
    result = defs.resolve_job_def(MAIN_JOB).execute_in_process(instance=instance, tags=tags)
    assert result.success
    seen: list[str] = []
    root = data_dir()
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files) and any(p.name == "_manifest.json" for p in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path  # manifests, logs, raw files
    delta = DeltaResource(root=str(root / "delta"))
    seen.append(repr(delta.read("h_delta", None).to_pylist()))  # decompressed, value by value
    seen.append(repr(ds.dataset(root / "bucket" / "tables" / "h_files", partitioning="hive").to_table().to_pylist()))
    with sa.create_engine(postgres_url).connect() as conn:
        seen.append(repr(conn.execute(sa.text("SELECT * FROM h_sql")).fetchall()))
    assert all(len(text) > 1000 for text in seen)
    for record in instance.get_records_for_run(result.run_id).records:
        seen.append(repr(record.event_log_entry))  # messages, metadata, check results
    captured = capfd.readouterr()
    seen += [captured.out, captured.err]
    for text in seen:
        assert SECRET not in text


@pytest.mark.parametrize(("data", "message"), AT_LOAD)
def test_refused_routes_fail_loading_without_the_secret(hostile_config, data, message):
    spec = yaml.safe_load((hostile_config / "tables" / "hostile.yaml").read_text())
    spec["tables"][0]["columns"].append({"column_name": "bad", "data": data})
    (hostile_config / "tables" / "hostile.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(SpecError) as err:
        build_definitions(load_platform(hostile_config))
    assert message in str(err.value) and SECRET not in str(err.value) and SECRET not in repr(err.value)
