"""Declarative tables: config/tables/*.yaml compiled into a catalog; one asset per table (Delta, SQL or Parquet)."""

from datetime import datetime
from pathlib import Path

from synth_platform.assets import tables as assets
from synth_platform.automation.retention import RetentionRule, Targets
from synth_platform.domains.record import Domain
from synth_platform.specs.loader import SpecError, load
from synth_platform.specs.tables import TablesFile
from synth_platform.streams.tables import expire
from synth_platform.world.tables.catalog import CompiledTable, TablesDomain, build_catalog


def load_tables(directory: Path) -> TablesDomain:
    """Every table file of the folder, compiled (expressions, foreign keys and table order checked)."""
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    if not files:
        raise SpecError(directory, [("", "no table files (*.yaml) found")])
    loaded = tuple((f, load(TablesFile, f)) for f in files)
    return TablesDomain(loaded, build_catalog(loaded))


def retention(domain: TablesDomain) -> list[RetentionRule]:
    def rule(table: CompiledTable) -> RetentionRule:
        def delete(targets: Targets, cutoff: datetime) -> dict[str, int]:
            return expire(table, targets.database, targets.delta, targets.bucket, cutoff)

        needs = frozenset({"database", "delta", "bucket"})
        return RetentionRule(table.name, table.spec.retention_days, needs, delete)

    tables = domain.catalog.tables.values()
    return [rule(t) for t in tables if t.spec.is_append and t.spec.retention_days]


DOMAIN = Domain("tables", lambda config: load_tables(config / "tables"), assets.build, retention)
