"""Expressions drawn from known Python sandbox escapes. Each is refused when the spec loads, or evaluates to a value
holding nothing of the process, or (where only a row's own values make it too big) fails that row with an error
naming the file, table, column and row id. A planted secret never comes out."""

from __future__ import annotations

import os
import re

import pytest

from synth_platform.specs.loader import SpecError
from synth_platform.world.tables.rows import TableEvaluationError
from synth_platform_tests.tables_helpers import domain, table, world

SECRET = "s3cr3t-planted-for-the-hostile-corpus"
HELPERS = """
import os
from os import getenv


def tag(x):
    return f"T{x}"


def module():
    return os


def reader():
    return getenv


def generator():
    return (i for i in range(3))


def frame():
    import sys
    return sys._getframe()
"""

# rejected when the spec loads: (expression, part of the message)
AT_LOAD = [
    ("'{0.__class__}'.format(fake.name())", "format field"),  # str from a provider
    ("'{0.__class__.__mro__}'.format(row_id)", "format field"),  # int
    ("'{0.__init__.__globals__}'.format(fake.date_time())", "format field"),  # datetime
    ("'{0.year}'.format(fake.date_object())", "format field"),  # attribute without underscore: still a lookup
    ("'{0[0]}'.format(fake.pylist())", "format field"),  # index into a list
    ("'{x.__dict__}'.format(x=fake.pydecimal())", "format field"),  # Decimal, by keyword
    ("'{0.hex}'.format(fake.uuid4())", "format field"),  # UUID
    ("'{0.decode}'.format(fake.binary(length=4))", "format field"),  # bytes
    ("'{0[birthdate]}'.format(fake.profile())", "format field"),  # dict key
    ("'{0.days}'.format(timedelta(days=1))", "format field"),  # timedelta
    ("'{0.real}'.format(fake.pyfloat())", "format field"),  # float
    ("'{0.numerator}'.format(fake.pybool())", "format field"),  # bool
    ("'{0.hour}'.format(fake.time_object())", "format field"),  # time
    ("'{0.__class__}'.format(None)", "format field"),  # None
    ("fake.time_series().gi_frame", "attribute 'gi_frame' is not allowed"),  # generator attributes
    ("helpers.generator().gi_code.co_consts", "attribute 'co_consts' is not allowed"),
    ("fake.pyobject().cr_frame", "attribute 'cr_frame' is not allowed"),  # coroutine attributes
    ("'{0:{1}}'.format(row_id, 'x')", "nested fields"),  # nested format spec
    ("'{0:>{1}}'.format('a', 10 ** 9)", "nested fields"),
    ("f'{row_id:>1000000000}'", "max_value_bytes"),  # huge width in an f-string spec
    ("'{}'.format_map({'a': 1})", "method 'format_map' is not allowed"),
    ("fake.name().format_map(fake.profile())", "method 'format_map' is not allowed"),
    ("fake.profile()['birthdate'].__class__", "dunder attribute"),
    ("fake.date_time().tzinfo", "attribute 'tzinfo' is not allowed"),
    ("fake.name().encode()", "method 'encode' is not allowed"),
    ("fake.pydict().keys()", "method 'keys' is not allowed"),
    ("fake.name().__class__.__base__.__subclasses__()", "dunder"),
    ("(lambda: 0).__code__", "dunder"),
    ("(x for x in [1]).gi_frame", "attribute 'gi_frame' is not allowed"),
    ("row_id.real.__class__", "dunder"),
    ("[].__class__.__base__", "dunder"),
    ("getattr(row_id, 'gi_frame')", "unknown function 'getattr'"),
    ("vars()", "unknown function 'vars'"),
    ("type(row_id)", "unknown function 'type'"),
    ("fake.format('seed_instance', 1)", "is not a Faker provider"),  # Faker internals
    ("fake.parse('{{__repr__}}')", "is not a Faker provider"),
    ("fake.json(data_columns={'a': '{{__repr__}}'})", "not a Faker provider"),
    ("fake.json(data_columns=[('a', 'seed_instance')])", "not a Faker provider"),
    ("fake.pystr_format('{{random}}')", "not a Faker provider"),
    ("fake.random.random()", "fake.random is not allowed"),
    ("fake.factories", "attribute 'factories' is not allowed"),
    ("fake.unique.clear()", "is not a Faker provider"),
    ("fake.provider('faker.providers.date_time')", "is not a Faker provider"),
    ("fake.pytimezone()", "not plain data"),  # a tzinfo object
    ("fake.time_series()", "not plain data"),  # a generator
    ("helpers.os.environ", "attribute 'environ' is not allowed"),  # python_import module walks
    ("helpers.getenv('HOSTILE_SECRET')", "not a function defined in python_import module"),
    ("helpers.module()", "not plain data"),
    ("helpers.reader()", "not plain data"),
    ("helpers.generator()", "not plain data"),
    ("helpers.frame()", "not plain data"),
    ("'a' * 10 ** 9", "max_value_bytes"),  # resource exhaustion
    ("[1] * 10 ** 9", "max_value_bytes"),
    ("2 ** 10 ** 10", "bits"),
    ("10 ** 10 ** 6", "bits"),
    ("math.factorial(10 ** 6)", "math.factorial is not allowed"),
    ("'x'.ljust(10 ** 9)", "max_value_bytes"),
    ("'%*d' % (10 ** 9, 1)", "'*' widths"),
    ("'%1000000000d' % 5", "max_value_bytes"),
    ("'a'.replace('', 'b' * 1000000)", "max_value_bytes"),
    ("','.join(['x' * 1000000] * 2000)", "max_value_bytes"),
    ("fake.binary(length=10 ** 9)", "max_value_bytes"),
    ("fake.pystr(max_chars=10 ** 9)", "max_value_bytes"),
    ("fake.paragraphs(nb=10 ** 8)", "at most 10000"),
    ("fake.pylist(nb_elements=10 ** 8)", "at most 10000"),
    ("fake.password(length=10 ** 9)", "max_value_bytes"),
    ("fake.image(size=(100000, 100000))", "max_value_bytes"),
    ("fake.texts(nb_texts=10 ** 7)", "at most 10000"),
    ("fake.pystruct(count=10 ** 7)", "at most 10000"),
    ("int('9' * 5000)", "constant part fails"),
    ("datetime.now()", "not deterministic"),
    ("date.today()", "not deterministic"),
]

# evaluate, and hold nothing of the process
EVALUATE = [
    "'{0!r}|{1!r}'.format(fake.profile(), fake.uuid4(cast_to=None))",
    "'{0}-{x:>8}'.format(fake.name(), x=row_id)",
    "f'{fake.date_time()!r}{fake.pydecimal()!r}{fake.binary(length=8)!r}'",
    "str(fake.pyiterable()) + str(fake.pytuple()) + str(fake.pydict())",
    "str(fake.simple_profile())",
    "fake.json(data_columns={'n': '{{name}}', 'e': 'email'}, num_rows=2)",
    "fake.pystr_format('?#-{{random_int}}')",
    "str(fake.uuid4(cast_to=None))",
    "fake.name().zfill(40).center(60)",
    "'%s|' % fake.name() + '%r' % fake.date_object()",
    "helpers.tag(fake.word())",
    "str(fake.pyobject())",
]

# only a row's own values make these too big: that row fails, naming file, table, column and row id
AT_RUN = [
    ("fake.name() * 10 ** 7", "max_value_bytes"),
    ("fake.name().zfill(10 ** 9)", "max_value_bytes"),
    ("('ab' * row_id) * 10 ** 6", "max_value_bytes"),
    ("tmpl.format(row_id)", "format field"),
]

_PROCESS = re.compile(r"object at 0x|<module|<function|<built-in|<class|<bound|<generator|<frame|site-packages|environ")


def _spec(tmp_path, data, rows=20):
    (tmp_path).mkdir(parents=True, exist_ok=True)
    (tmp_path / "helpers.py").write_text(HELPERS)
    cols = {"id": {"data": "row_id", "is_primary_key": True}, "tmpl": "'{0.__class__}'", "bad": data}
    return [table("t", cols, rows=rows)], {"python_import": ["helpers"]}


def test_corpus_is_large_enough():
    assert len(AT_LOAD) + len(EVALUATE) + len(AT_RUN) >= 40 and len(AT_LOAD) >= 40


@pytest.fixture(autouse=True)
def planted_secret(monkeypatch):
    monkeypatch.setenv("HOSTILE_SECRET", SECRET)


@pytest.mark.parametrize(("data", "message"), AT_LOAD)
def test_refused_at_load(tmp_path, data, message):
    tables, config = _spec(tmp_path / "tables", data)
    with pytest.raises(SpecError) as err:
        domain(tmp_path / "tables", tables, config)
    text = str(err.value)
    assert message in text and "table 't', column 'bad'" in text and "spec.yaml" in text
    assert SECRET not in text


@pytest.mark.parametrize("data", EVALUATE)
def test_evaluates_to_plain_values_without_the_process(tmp_path, data):
    tables, config = _spec(tmp_path / "tables", data)
    values = world(tmp_path / "tables", tables, config).table("t").column("bad").to_pylist()
    assert len(values) == 20 and all(v is not None for v in values)
    text = repr(values)
    assert SECRET not in text and not _PROCESS.search(text), text[:500]
    assert os.getcwd() not in text


@pytest.mark.parametrize(("data", "message"), AT_RUN)
def test_row_level_excess_fails_naming_the_row(tmp_path, data, message):
    tables, config = _spec(tmp_path / "tables", data)
    w = world(tmp_path / "tables", tables, config)
    with pytest.raises(TableEvaluationError) as err:
        w.table("t")
    text = str(err.value)
    assert "spec.yaml" in text and "table 't', column 'bad', row id 1" in text and message in text
    assert SECRET not in text


def test_installed_modules_cannot_be_imported(tmp_path):
    cols = {"id": {"data": "row_id", "is_primary_key": True}, "x": "os.getenv('HOSTILE_SECRET')"}
    with pytest.raises(SpecError, match=r"config.python_import\[0\]: cannot import 'os'.*config folder only"):
        domain(tmp_path, [table("t", cols)], {"python_import": ["os"]})


def test_values_are_bounded_by_max_value_bytes(tmp_path):
    cols = {"id": {"data": "row_id", "is_primary_key": True}, "x": "fake.pystr(min_chars=200, max_chars=300)"}
    with pytest.raises(SpecError, match="max_value_bytes"):
        domain(tmp_path / "a", [table("t", cols)], {"max_value_bytes": 100})
    cols = {"id": {"data": "row_id", "is_primary_key": True}, "x": "'ab' * row_id"}
    w = world(tmp_path / "b", [table("t", cols, rows=100)], {"max_value_bytes": 100})
    with pytest.raises(TableEvaluationError, match=r"table 't', column 'x', row id 51: .*exceeds max_value_bytes"):
        w.table("t")
