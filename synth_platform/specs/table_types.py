"""The column types a table file may declare (`type:`), as Arrow types: the vocabulary the spec checks and the
world's rows are built with."""

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")

# `type:` values of table-faker (pandas dtypes) and Arrow/SQL spellings -> Arrow types.
ARROW_TYPES: dict[str, pa.DataType] = {
    **dict.fromkeys(["string", "str", "object", "category", "text", "utf8"], pa.string()),
    **dict.fromkeys(["int", "int64", "Int64", "long", "bigint", "integer"], pa.int64()),
    **dict.fromkeys(["int32", "Int32"], pa.int32()),
    **dict.fromkeys(["int16", "Int16"], pa.int16()),
    **dict.fromkeys(["int8", "Int8"], pa.int8()),
    **dict.fromkeys(["float", "float64", "Float64", "double"], pa.float64()),
    **dict.fromkeys(["float32", "Float32"], pa.float32()),
    **dict.fromkeys(["bool", "boolean"], pa.bool_()),
    **dict.fromkeys(["date", "date32"], pa.date32()),
    **dict.fromkeys(["datetime", "datetime64", "datetime64[ns]", "datetime64[us]", "timestamp"], TIMESTAMP),
}
