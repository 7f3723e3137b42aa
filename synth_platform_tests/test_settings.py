"""Every URL-like setting accepts only the schemes its target writes to, and every operational knob is settable
from `targets:` in world.yaml or the environment, validated when the definitions load."""

from __future__ import annotations

import os

import pytest

from synth_platform.definitions import build_definitions
from synth_platform.domains import load_platform
from synth_platform.resources import URL_SCHEMES
from synth_platform.specs.loader import SpecError
from synth_platform_tests.config_files import edit_yaml

BAD = {
    "SYNTH_BUCKET_URL": ["az://my-bucket/meters", "ftp://host/meters", "gs:/my-bucket", "gcs://my-bucket",
                         "s3:my-bucket", "gs://", "s3://"],
    "SYNTH_DELTA_ROOT": ["ftp://host/delta", "s3:/my-bucket/delta", "file:///tmp/delta", "az://container"],
    "SYNTH_DATABASE_URL": ["ftp://u:hunter2@host/db", "postgres://u:hunter2@host/db",
                           "postgresql://u:hunter2@host/db", "mysql://u:hunter2@host/db", "/tmp/synth.db"],
    "TINYBIRD_API_URL": ["ftp://api.tinybird.co", "htps://api.tinybird.co", "http://api.tinybird.co",
                         "api.tinybird.co", "s3://api.tinybird.co"],
    "SYNTH_MQTT_URL": ["tcp://127.0.0.1:1883", "mqtt:/127.0.0.1", "mqtt://", "ws://broker:9001",
                       "127.0.0.1:1883"],
    "SYNTH_COLLECTOR_URL": ["http://collector.example.com/readings", "ftp://collector/readings", "collector:8080",
                            "https://"],
}  # fmt: skip
CASES = [(variable, value) for variable, values in BAD.items() for value in values]


@pytest.fixture
def tables_only(config_dir):
    edit_yaml(config_dir / "world.yaml", domains=["tables"])
    return config_dir


@pytest.mark.parametrize(("variable", "value"), CASES)
def test_bad_url_fails_at_load_and_writes_nothing(tables_only, monkeypatch, tmp_path, _data_dir, variable, value):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(variable, value)
    before = set(os.listdir(tmp_path))
    with pytest.raises(SpecError) as err:
        build_definitions(load_platform(tables_only))
    text = str(err.value)
    assert f"environment: {variable}: " in text and "accepted: " in text
    accepted = URL_SCHEMES[variable]
    assert all(("a local folder" if s == "" else f"{s}://") in text for s in accepted)
    assert "hunter2" not in text and ("***" in text or "hunter2" not in value)
    assert set(os.listdir(tmp_path)) == before and not _data_dir.exists()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("SYNTH_BUCKET_URL", "gs://bucket/prefix"), ("SYNTH_DELTA_ROOT", "s3://bucket/delta"),
     ("SYNTH_DATABASE_URL", "postgresql+psycopg://u:pw@127.0.0.1/db"), ("TINYBIRD_API_URL", "http://127.0.0.1:8123"),
     ("TINYBIRD_API_URL", "https://api.us-east.tinybird.co"), ("SYNTH_BUCKET_URL", "relative/folder"),
     ("SYNTH_BUCKET_URL", "s3://bucket/prefix"), ("SYNTH_MQTT_URL", "mqtts://broker.example.com:8883"),
     ("SYNTH_COLLECTOR_URL", "https://collector.example.com/readings"),
     ("SYNTH_COLLECTOR_URL", "http://127.0.0.1:8080/readings")],
)  # fmt: skip
def test_accepted_urls_load(tables_only, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    build_definitions(load_platform(tables_only))


def test_knobs_from_world_yaml_and_environment(tables_only, monkeypatch):
    edit_yaml(
        tables_only / "world.yaml",
        targets={"bucket": {"staging_mb": 64, "upload_workers": 3}, "database": {"pool_size": 7},
                 "tinybird": {"max_in_flight": 4}},
    )  # fmt: skip
    monkeypatch.setenv("SYNTH_BUCKET_UPLOAD_WORKERS", "5")  # the environment wins
    monkeypatch.setenv("SYNTH_DELTA_STORAGE_OPTIONS", '{"AWS_REGION": "eu-west-1"}')
    monkeypatch.setenv("SYNTH_DATABASE_CONNECT_ATTEMPTS", "2")
    resources = build_definitions(load_platform(tables_only)).resources
    bucket, delta, database, tinybird = (resources[k] for k in ("bucket", "delta", "database", "tinybird"))
    assert (bucket.staging_mb, bucket.upload_workers) == (64, 5)
    assert delta.storage_options == {"AWS_REGION": "eu-west-1"}
    assert (database.pool_size, database.connect_attempts) == (7, 2)
    assert tinybird.max_in_flight == 4


@pytest.mark.parametrize(
    ("targets", "env", "message"),
    [
        ({"bucket": {"staging_mb": 0}}, {}, "world.yaml: targets.bucket.staging_mb: Input should be greater than"),
        ({"bucket": {"stagin_mb": 10}}, {}, "world.yaml: targets.bucket.stagin_mb: unknown key"),
        ({"tinybird": {"max_in_flight": 100}}, {}, "targets.tinybird.max_in_flight: Input should be less than"),
        ({"printer": {}}, {}, "targets.printer: unknown key"),
        ({}, {"SYNTH_DATABASE_POOL_SIZE": "many"}, "environment: SYNTH_DATABASE_POOL_SIZE: not valid JSON"),
        ({}, {"SYNTH_BUCKET_ATTEMPTS": "0"}, "SYNTH_BUCKET_ATTEMPTS"),
        ({}, {"SYNTH_DELTA_STORAGE_OPTIONS": "[1, 2]"}, "SYNTH_DELTA_STORAGE_OPTIONS"),
    ],
)
def test_bad_knobs_fail_at_load(tables_only, monkeypatch, targets, env, message):
    edit_yaml(tables_only / "world.yaml", targets=targets)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SpecError, match=message.replace(".", r"\.")):
        build_definitions(load_platform(tables_only))
