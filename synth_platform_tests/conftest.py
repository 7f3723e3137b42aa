"""Fixtures shared by the suite: real databases, a temp config dir, a temp Dagster instance."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

from synth_platform.specs import DEFAULT_CONFIG_DIR
from synth_platform_tests.services import MARIADB_ADMIN_URL, POSTGRES_ADMIN_URL, scratch_database
from synth_platform_tests.tinybird_server import tinybird_server  # noqa: F401  (fixture for the suite)


# A fresh database per test: tests must not see each other's rows (a scratch database costs ~0.1 s).
@pytest.fixture
def postgres_url() -> str:
    with scratch_database(POSTGRES_ADMIN_URL) as url:
        yield url


@pytest.fixture
def mariadb_url() -> str:
    with scratch_database(MARIADB_ADMIN_URL) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'synth.db'}"


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs against SQLite, PostgreSQL and MariaDB."""
    return request.getfixturevalue(
        {"sqlite": "sqlite_url", "postgresql": "postgres_url", "mariadb": "mariadb_url"}[request.param]
    )


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A copy of the shipped config/ that a test may edit (see `edit_yaml`)."""
    target = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, target)
    return target


def edit_yaml(file: Path, **changes: object) -> None:
    """Set top-level keys of a YAML file (dotted keys reach into mappings)."""
    data = yaml.safe_load(file.read_text()) or {}
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    file.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def instance() -> dg.DagsterInstance:
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Embedded targets of every test live in its own temp folder, never in the repo's .data/."""
    monkeypatch.setenv("SYNTH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SYNTH_DATABASE_URL", raising=False)
    return tmp_path / "data"
