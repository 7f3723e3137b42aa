"""Fixtures of the suite (registered by conftest.py): real databases, a temp config dir, a temp Dagster instance."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from synth_platform.specs import DEFAULT_CONFIG_DIR
from synth_platform_tests.services import MARIADB_ADMIN_URL, POSTGRES_ADMIN_URL, scratch_database


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
    """A copy of the shipped config/ that a test may edit (see `config_files.edit_yaml`)."""
    target = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, target)
    return target


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
