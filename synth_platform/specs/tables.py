"""config/tables/*.yaml: table-faker's YAML format plus the streaming extensions (update_policy, cadence,
target). Every file is checked completely at load time, expressions included (see world/tables/catalog.py)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Literal

import pydantic

from synth_platform.specs.loader import Spec
from synth_platform.specs.table_types import ARROW_TYPES

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_ROWS_PER_MINUTE = 60_000
DEFAULT_MAX_VALUE_BYTES = 1 << 20  # longest string/bytes value an expression may produce


def _identifier(value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(f"{value!r} must be an identifier (letters, digits, underscore; not starting with a digit)")
    return value


def parse_null_percentage(value: float | str) -> float:
    """table-faker's forms: a fraction 0..1 (0.1), a percentage 1..100 (10), or '10%' / '%10'."""
    if isinstance(value, str):
        text = value.strip()
        if not (text.endswith("%") or text.startswith("%")):
            raise ValueError(f"{value!r}: use a fraction (0.1), a percentage (10) or '10%'")
        try:
            number = float(text.strip("%"))
        except ValueError:
            raise ValueError(f"{value!r} is not a percentage") from None
        if not 0 <= number <= 100:
            raise ValueError(f"{value!r} is outside 0%..100%")
        return number / 100
    if isinstance(value, bool) or not 0 <= value <= 100:
        raise ValueError(f"{value!r}: use a fraction 0..1, a percentage 1..100 or '10%'")
    return float(value) if value <= 1 else value / 100


class TablesConfig(Spec):
    locale: str | list[str] = pydantic.Field("en_US", description="Faker locale(s)")
    seed: int | None = pydantic.Field(
        None, ge=0, lt=2**63, description="Seed of this file's tables; the world seed when omitted"
    )
    python_import: list[str] = pydantic.Field(
        default_factory=list,
        description="Modules (names or .py files next to the YAML) whose functions expressions may call",
    )
    pool_size: int = pydantic.Field(
        1000, ge=1, le=1_000_000, description="Distinct values drawn per Faker call site (extension)"
    )
    reference_date: date | datetime | None = pydantic.Field(
        None, description="Instant Faker's relative dates of static tables count from; default the world's start_date"
    )
    max_value_bytes: int = pydantic.Field(
        DEFAULT_MAX_VALUE_BYTES, ge=64, le=1 << 30, description="Longest string/bytes value (and provider result)"
    )


class ColumnSpec(Spec):
    column_name: str
    data: str | int | float | bool | None = pydantic.Field(description="Python expression (or a literal value)")
    is_primary_key: bool = False
    is_unique: bool = pydantic.Field(False, description="Faker values are made unique per row (extension)")
    type: str | None = pydantic.Field(None, description="Column type (pandas/table-faker or Arrow spelling)")
    null_percentage: float | str | None = pydantic.Field(None, description="0.1, 10, '10%' or '%10'")
    description: str | None = None

    _name = pydantic.field_validator("column_name")(_identifier)

    @pydantic.field_validator("type")
    @classmethod
    def _known_type(cls, v: str | None) -> str | None:
        if v is not None and v not in ARROW_TYPES:
            raise ValueError(f"unknown type {v!r}; use one of {', '.join(sorted(ARROW_TYPES))}")
        return v

    @pydantic.field_validator("null_percentage")
    @classmethod
    def _null_form(cls, v: float | str | None) -> float | str | None:
        if v is not None:
            parse_null_percentage(v)
        return v

    @pydantic.model_validator(mode="after")
    def _key_not_null(self) -> ColumnSpec:
        if self.is_primary_key and self.null_fraction > 0:
            raise ValueError(f"primary key column {self.column_name!r} cannot have null_percentage")
        return self

    @property
    def expression(self) -> str:
        return self.data if isinstance(self.data, str) else repr(self.data)

    @property
    def null_fraction(self) -> float:
        return 0.0 if self.null_percentage is None else parse_null_percentage(self.null_percentage)

    @property
    def unique(self) -> bool:
        return self.is_primary_key or self.is_unique


class CadenceSpec(Spec):
    rows_per_minute: int = pydantic.Field(
        60, ge=1, le=MAX_ROWS_PER_MINUTE, description="Rows appended per minute (the streaming server's default: 60)"
    )
    enabled: bool = pydantic.Field(True, description="Stream live windows (else backfill only)")
    time_column: str = pydantic.Field("event_time", description="Column holding each row's event time (extension)")

    _name = pydantic.field_validator("time_column")(_identifier)


class TableSpec(Spec):
    table_name: str
    row_count: int = pydantic.Field(10, ge=0, description="Rows of a static table; initial rows of an append table")
    start_row_id: int = pydantic.Field(1, ge=0, lt=2**53)
    columns: list[ColumnSpec] = pydantic.Field(min_length=1)
    update_policy: Literal["append", "disabled", "replace"] = pydantic.Field(
        "disabled", description="append when a cadence is given without one (the streaming server's default)"
    )
    cadence: CadenceSpec | None = None
    target: Literal["delta", "database", "parquet"] = pydantic.Field("delta", description="Where rows go (extension)")
    retention_days: int | None = pydantic.Field(None, ge=1, description="Append tables: delete older rows")
    description: str | None = None
    # table-faker's file export options; accepted so its files load unchanged, unused (rows go to `target`)
    export_file_count: int | None = None
    export_file_row_count: int | None = None
    export_file_name: str | None = None

    _name = pydantic.field_validator("table_name")(_identifier)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _policy_from_cadence(cls, data: object) -> object:
        """A cadence alone means append (the streaming server); neither means static (table-faker)."""
        if isinstance(data, dict) and data.get("cadence") is not None:
            policy = data.get("update_policy", "append")
            if policy in ("disabled", "replace"):
                raise ValueError(
                    f"table {data.get('table_name')!r} has a cadence but update_policy {policy}: only append tables "
                    "stream (drop the cadence, or use update_policy append)"
                )
            data = {**data, "update_policy": policy}
        return data

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> TableSpec:
        names = [c.column_name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"column(s) {', '.join(dupes)} declared twice")
        if self.update_policy == "append" and self.cadence is None:
            raise ValueError("update_policy append needs cadence: {rows_per_minute: N}")
        if self.update_policy != "append" and self.retention_days is not None:
            raise ValueError("retention_days applies to update_policy append only")
        if self.cadence is not None and self.cadence.time_column in names:
            raise ValueError(f"column {self.cadence.time_column!r} is the cadence time_column; rename one of them")
        return self

    @property
    def is_append(self) -> bool:
        return self.update_policy == "append"

    @property
    def primary_key(self) -> list[str]:
        return [c.column_name for c in self.columns if c.is_primary_key]


class TablesFile(Spec):
    version: int = 1
    config: TablesConfig = TablesConfig()
    tables: list[TableSpec] = pydantic.Field(min_length=1)
