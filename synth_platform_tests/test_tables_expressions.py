"""Expressions of declarative tables: every feature one by one, and every rejected construct with its message."""

import math
from datetime import date, datetime, timedelta

import pytest

from synth_platform.specs.loader import SpecError
from synth_platform_tests.tables_helpers import domain, table, world


def column(tmp_path, data, rows=40, extra=None, **config):
    """Values of column `x` of a one-table spec (with `base` = row_id * 3 available to read)."""
    cols = {"id": {"data": "row_id", "is_primary_key": True}, "x": data, "base": "row_id * 3", **(extra or {})}
    w = world(tmp_path / "t", [table("t", cols, rows=rows)], config or None)
    data_ = w.table("t").to_pydict()
    return data_["id"], data_["x"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("42", lambda r: 42),
        ("'abc'", lambda r: "abc"),
        ("None", lambda r: None),
        ("2.5", lambda r: 2.5),
        ("True", lambda r: True),
        ("row_id", lambda r: r),
        ("base + 1", lambda r: r * 3 + 1),  # another column, declared after this one
        ("(row_id + 3) * 2 - 1", lambda r: (r + 3) * 2 - 1),
        ("row_id / 4", lambda r: r / 4),
        ("row_id // 3", lambda r: r // 3),
        ("row_id % 5", lambda r: r % 5),
        ("row_id ** 2", lambda r: r**2),
        ("-row_id", lambda r: -r),
        ("row_id > 20", lambda r: r > 20),
        ("5 < row_id <= 30", lambda r: 5 < r <= 30),
        ("row_id in [3, 4, 5]", lambda r: r in [3, 4, 5]),
        ("row_id > 3 and row_id < 9", lambda r: r > 3 and r < 9),
        ("not row_id % 2", lambda r: not r % 2),
        ("'even' if row_id % 2 == 0 else 'odd'", lambda r: "even" if r % 2 == 0 else "odd"),
        ("'id-' + str(row_id)", lambda r: "id-" + str(r)),
        ('f"{row_id:04d}/{base}"', lambda r: f"{r:04d}/{r * 3}"),
        ("round(row_id / 7, 2)", lambda r: round(r / 7, 2)),
        ("int(row_id / 2)", lambda r: int(r / 2)),
        ("float(row_id)", lambda r: float(r)),
        ("str(row_id * 1.5)", lambda r: str(r * 1.5)),
        ("abs(10 - row_id)", lambda r: abs(10 - r)),
        ("max(row_id, 20)", lambda r: max(r, 20)),
        ("math.sqrt(row_id)", lambda r: math.sqrt(r)),
        ("math.floor(row_id / 3)", lambda r: math.floor(r / 3)),
        ("math.pi * row_id", lambda r: math.pi * r),
        ("date(2024, 1, 1) + timedelta(days=row_id)", lambda r: date(2024, 1, 1) + timedelta(days=r)),
        ("datetime(2024, 1, 1, 12) + timedelta(hours=row_id)", lambda r: datetime(2024, 1, 1, 12) + timedelta(hours=r)),
        ("(date(2024, 1, 1) + timedelta(days=row_id)).strftime('%Y-%m-%d')",
         lambda r: (date(2024, 1, 1) + timedelta(days=r)).strftime("%Y-%m-%d")),
        ("('n' + str(row_id)).upper()", lambda r: f"N{r}"),
        ("str(row_id)[:1]", lambda r: str(r)[:1]),
    ],
)  # fmt: skip
def test_expression_features(tmp_path, data, expected):
    ids, values = column(tmp_path, data)
    got = [v.replace(tzinfo=None) if isinstance(v, datetime) else v for v in values]
    assert got == [expected(r) for r in ids]


def test_random_functions_are_in_range_and_vary(tmp_path):
    cols = {
        "id": {"data": "row_id", "is_primary_key": True},
        "dice": "random.randint(1, 6)",
        "u": "random.uniform(10, 20)",
        "p": "random.random()",
        "pick": "random.choice(['a', 'b', 'c'])",
        "mixed": "random.choice([dice, 100])",
        "g": "random.gauss(0, 1)",
    }
    data = world(tmp_path, [table("t", cols, rows=3000)]).table("t").to_pydict()
    assert set(data["dice"]) == {1, 2, 3, 4, 5, 6}
    assert all(10 <= u < 20 for u in data["u"]) and all(0 <= p < 1 for p in data["p"])
    assert set(data["pick"]) == {"a", "b", "c"}
    assert {m for m in data["mixed"] if m != 100} <= set(range(1, 7)) and 100 in data["mixed"]
    assert abs(sum(data["g"]) / 3000) < 0.1


def test_faker_providers_with_arguments_and_locale(tmp_path):
    cols = {
        "id": {"data": "row_id", "is_primary_key": True},
        "name": "fake.first_name()",
        "small": "fake.random_int(min=1, max=3)",
        "day": "date(2024, 5, 1) + timedelta(days=row_id % 3)",
        "same_day": "fake.date_between(start_date=day, end_date=day)",  # per-row arguments
        "mail": {"data": "fake.email()", "is_unique": True},
        "uuid": "fake.uuid4()",
    }
    data = world(tmp_path, [table("t", cols, rows=500)], {"locale": "de_DE", "pool_size": 50}).table("t").to_pydict()
    assert all(isinstance(n, str) and n for n in data["name"]) and len(set(data["name"])) > 10
    assert set(data["small"]) <= {1, 2, 3}
    assert data["same_day"] == data["day"]
    assert len(set(data["mail"])) == 500 and all("@" in m for m in data["mail"])  # unique despite a 50-value pool
    assert len(set(data["uuid"])) == 500 and all(len(u) == 36 and u[14] == "4" for u in data["uuid"])


def test_python_import_functions(tmp_path):
    (tmp_path / "helpers.py").write_text(
        "def tag(x):\n    return f'T{x}'\n\n"
        "def tf_expose(fn):\n    fn.__tf_exported__ = True\n    fn.__tf_export_name__ = fn.__name__\n    return fn\n\n"
        "@tf_expose\ndef triple(x):\n    return 3 * x\n"
    )
    cols = {"id": {"data": "row_id", "is_primary_key": True}, "a": "helpers.tag(row_id)", "b": "triple(row_id)"}
    data = world(tmp_path, [table("t", cols, rows=5)], {"python_import": ["helpers"]}).table("t").to_pydict()
    assert data["a"] == [f"T{i}" for i in data["id"]] and data["b"] == [3 * i for i in data["id"]]


def test_declared_types(tmp_path):
    cols = {
        "id": {"data": "row_id", "is_primary_key": True, "type": "int32"},
        "s": {"data": "row_id", "type": "string"},
        "f": {"data": "row_id", "type": "float"},
        "d": {"data": "datetime(2024, 1, 1) + timedelta(days=row_id)", "type": "date"},
    }
    t = world(tmp_path, [table("t", cols, rows=3)]).table("t")
    assert [str(f.type) for f in t.schema] == ["int32", "string", "double", "date32[day]"]
    assert t.column("s").to_pylist() == ["1", "2", "3"]


@pytest.mark.parametrize("form", [0.25, 25, "25%", "%25"])
def test_null_percentage_forms_give_that_share(tmp_path, form):
    cols = {"id": {"data": "row_id", "is_primary_key": True}, "x": {"data": "row_id", "null_percentage": form}}
    x = world(tmp_path, [table("t", cols, rows=20_000)]).table("t").column("x")
    assert abs(x.null_count / 20_000 - 0.25) < 0.015


def test_rows_are_a_pure_function_of_seed_spec_and_range(tmp_path):
    cols = {
        "id": {"data": "row_id", "is_primary_key": True},
        "name": "fake.name()",
        "n": "random.randint(0, 10**6)",
        "email": {"data": "fake.email()", "null_percentage": 0.3},
    }
    spec = [table("t", cols, rows=2000)]
    a, b = world(tmp_path / "a", spec), world(tmp_path / "b", spec)
    full = a.table("t")
    assert full.equals(b.table("t"))
    part = b.rows("t", a.row_ids("t")[700:900])  # a slice regenerates alone
    assert part.to_pylist() == full.slice(700, 200).to_pylist()
    assert not world(tmp_path / "c", spec, seed=8).table("t").equals(full)


REJECTED = [
    ("__import__('os')", "dunders", "__import__"),
    ("row_id.__class__", "dunder attribute '__class__'", "row_id.__class__"),
    ("(lambda: 1)()", "lambda is not allowed", "lambda: 1"),
    ("[i for i in [1, 2]]", "comprehensions are not allowed", "[i for i in [1, 2]]"),
    ("import os", "imports are not allowed", "import os"),
    ("return 5", "function bodies are not supported", "return 5"),
    ("a = 1", "only a single expression", "a = 1"),
    ("(y := 1)", "assignment expressions", "y := 1"),
    ("os.system('ls')", "unknown name 'os'", "os"),
    ("eval('1')", "unknown function 'eval'", "eval"),
    ("open('/etc/passwd')", "unknown function 'open'", "open"),
    ("getattr(row_id, 'real')", "unknown function 'getattr'", "getattr"),
    ("missing + 1", "unknown name 'missing'", "missing"),
    ("fake.seed_instance(1)", "is not a Faker provider", "fake.seed_instance"),
    ("fake.no_such_provider()", "is not a Faker provider", "fake.no_such_provider"),
    ("datetime.now()", "not deterministic", "datetime.now()"),
    ("random.shuffle([1, 2])", "random.shuffle is not allowed", "random.shuffle"),
    ("row_id.bit_length()", "method 'bit_length' is not allowed", "row_id.bit_length"),
    ("event_time", "only in tables with update_policy append", "event_time"),
    ("foreign_key('t', 'id', distribution='pareto')", "unknown distribution 'pareto'", "foreign_key("),
]


@pytest.mark.parametrize(("data", "message", "construct"), REJECTED)
def test_rejected_constructs_name_file_table_column_and_construct(tmp_path, data, message, construct):
    cols = {"id": {"data": "row_id", "is_primary_key": True}, "bad": data}
    with pytest.raises(SpecError) as err:
        domain(tmp_path / "tables", [table("t", cols)])
    text = str(err.value)
    assert "spec.yaml" in text and "tables[0].columns[1].data" in text
    assert "table 't', column 'bad'" in text and message in text and construct in text


def test_column_cycle_is_named(tmp_path):
    cols = {"id": {"data": "row_id", "is_primary_key": True}, "a": "b + 1", "b": "c + 1", "c": "a + 1"}
    with pytest.raises(SpecError, match=r"columns read each other in a cycle: a -> b -> c -> a"):
        domain(tmp_path, [table("t", cols)])


def test_primary_key_cannot_have_nulls_and_types_are_checked(tmp_path):
    with pytest.raises(SpecError, match="cannot have null_percentage"):
        domain(tmp_path / "a", [table("t", {"id": {"data": "row_id", "is_primary_key": True, "null_percentage": 5}})])
    with pytest.raises(SpecError, match="unknown type 'int128'"):
        domain(tmp_path / "b", [table("t", {"id": {"data": "row_id", "type": "int128"}})])
    with pytest.raises(SpecError, match="use a fraction"):
        domain(tmp_path / "c", [table("t", {"id": {"data": "row_id", "null_percentage": "lots"}})])
