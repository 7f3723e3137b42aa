"""Building table worlds from inline specs for the declarative-tables tests."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import yaml

from synth_platform.domains.tables import load_tables
from synth_platform.world.tables.catalog import TablesDomain
from synth_platform.world.tables.rows import TableWorld

START = date(2026, 1, 1)


def write_spec(directory: Path, tables: list[dict[str, Any]], config: dict[str, Any] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    file = directory / "spec.yaml"
    file.write_text(yaml.safe_dump({"version": 1, "config": config or {}, "tables": tables}, sort_keys=False))
    return file


def domain(directory: Path, tables: list[dict[str, Any]], config: dict[str, Any] | None = None) -> TablesDomain:
    write_spec(directory, tables, config)
    return load_tables(directory)


def world(directory: Path, tables: list[dict[str, Any]], config: dict[str, Any] | None = None, seed: int = 7):
    return TableWorld(domain(directory, tables, config).catalog, seed, START)


def table(name: str, columns: dict[str, Any], rows: int = 50, **extra: Any) -> dict[str, Any]:
    """A table spec; columns maps name -> data expression, or -> a dict of column keys (with `data`)."""
    cols = [{"column_name": k, **(v if isinstance(v, dict) else {"data": v})} for k, v in columns.items()]
    return {"table_name": name, "row_count": rows, "columns": cols, **extra}
