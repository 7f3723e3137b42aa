"""Arrow schemas -> SQLAlchemy tables, so a generator's schema is the only definition of a table."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

# Key and indexed strings need a bounded length on MySQL (utf8mb4 index prefix limit).
_KEY_STRING = sa.String(191)


def _sql_type(arrow_type: pa.DataType, keyed: bool) -> sa.types.TypeEngine:
    if pa.types.is_timestamp(arrow_type):
        return sa.DateTime(timezone=arrow_type.tz is not None).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    if pa.types.is_date(arrow_type):
        return sa.Date()
    if pa.types.is_boolean(arrow_type):
        return sa.Boolean()
    if pa.types.is_integer(arrow_type):
        return sa.BigInteger() if arrow_type.bit_width > 32 else sa.Integer()
    if pa.types.is_floating(arrow_type):
        return sa.Double()
    if pa.types.is_decimal(arrow_type):
        return sa.Numeric(arrow_type.precision, arrow_type.scale)
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return _KEY_STRING if keyed else sa.Text()
    raise TypeError(f"no SQL type for arrow type {arrow_type}")


def sql_table(
    name: str,
    schema: pa.Schema,
    primary_key: Sequence[str] = (),
    indexes: Sequence[Sequence[str]] = (),
    metadata: sa.MetaData | None = None,
) -> sa.Table:
    keyed = set(primary_key) | {c for idx in indexes for c in idx}
    columns = [
        sa.Column(
            f.name,
            _sql_type(f.type, f.name in keyed),
            primary_key=f.name in primary_key,
            nullable=f.nullable and f.name not in primary_key,
            autoincrement=False,
        )
        for f in schema
    ]
    table = sa.Table(name, metadata or sa.MetaData(), *columns)
    for cols in indexes:
        sa.Index(f"ix_{name}_{'_'.join(cols)}", *(table.c[c] for c in cols))
    return table
