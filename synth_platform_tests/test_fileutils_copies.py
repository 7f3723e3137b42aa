"""What split and csv-to-ndjson take over without converting: byte ranges of the input copied into the parts by the
kernel (and the fallbacks when it refuses), and numbers whose text is already what orjson writes."""

from __future__ import annotations

import csv
import errno
import io
import os
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth_platform.fileutils import kernels
from synth_platform.fileutils.csv_to_ndjson import csv_to_ndjson
from synth_platform.fileutils.csv_types import json_column
from synth_platform.fileutils.range_copy import RangeCopier
from synth_platform.fileutils.records import FileFormatError
from synth_platform.fileutils.split import split_file
from synth_platform_tests.fileutils_helpers import greedy_parts

HEADER = b"id,text,n\r\n"
RECORDS = [f'{i},"row {i}, with ""quotes""\r\nand a line",{i * 7}\r\n'.encode() for i in range(300)]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "in.csv"
    path.write_bytes(HEADER + b"".join(RECORDS))
    return path


def _split(source: Path, out: Path, max_bytes: int, **kw) -> list[bytes]:
    return [p.path.read_bytes() for p in split_file(source, out, max_bytes, **kw)]


def test_parts_are_copied_by_the_kernel(source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copied = []
    real = os.copy_file_range

    def spy(src: int, dst: int, count: int, offset_src: int | None = None, *args) -> int:
        copied.append(count)
        return real(src, dst, count, offset_src, *args)

    monkeypatch.setattr(os, "copy_file_range", spy)
    parts = _split(source, tmp_path / "parts", 2000, block_size=1500)
    assert parts == greedy_parts(RECORDS, HEADER, 2000) and len(parts) > 5
    # every record went through the kernel copy; only the headers were written from memory
    assert sum(copied) == sum(map(len, RECORDS))


def _refuse(*_args) -> int:
    raise OSError(errno.EXDEV, "Invalid cross-device link")


def _copy_nothing(*_args) -> int:
    return 0  # what some filesystems answer instead of refusing


@pytest.mark.parametrize("refusal", [_refuse, _copy_nothing])
@pytest.mark.parametrize("refused", [["copy_file_range"], ["copy_file_range", "sendfile"]])
def test_parts_are_the_same_when_the_kernel_refuses_to_copy(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused: list[str], refusal
) -> None:
    calls = {"sendfile": 0, "pread": 0}
    for name in calls:
        real = getattr(os, name)

        def counted(*args, _real=real, _name=name):
            calls[_name] += 1
            return _real(*args)

        monkeypatch.setattr(os, name, counted)
    for name in refused:
        monkeypatch.setattr(os, name, refusal)
    assert _split(source, tmp_path / "parts", 2000, block_size=1500) == greedy_parts(RECORDS, HEADER, 2000)
    # the first method the kernel accepts does the copies
    assert (calls["sendfile"] > 0) == (refused == ["copy_file_range"])
    assert (calls["pread"] > 0) == (len(refused) == 2)


@pytest.mark.parametrize("suffix", [".csv", ".ndjson"])
def test_a_part_as_large_as_the_file_holds_all_of_it(tmp_path: Path, suffix: str) -> None:
    records = RECORDS if suffix == ".csv" else [b'{"a": %d}\n' % i for i in range(300)]
    header = HEADER if suffix == ".csv" else b""
    source = tmp_path / f"in{suffix}"
    data = header + b"".join(records)
    eol = b"\r\n" if suffix == ".csv" else b"\n"
    source.write_bytes(data.removesuffix(eol))  # no line ending after the last record: the part gets one
    assert _split(source, tmp_path / "parts", len(data), block_size=4096) == [data]
    assert _split(source, tmp_path / "parts", len(data) - 1, block_size=4096) == [
        data[: -len(records[-1])],
        header + records[-1],
    ]


def test_records_the_csv_module_reads_are_written_among_copied_ones(tmp_path: Path) -> None:
    """From a quote inside an unquoted field on, the csv module reads the file; its records come from memory,
    the ones before from the kernel copy, in one sequence of parts with the header repeated."""
    irregular = [b"%d,5'10\" tall,%d\r\n" % (i, i) for i in range(300, 340)]
    source = tmp_path / "in.csv"
    source.write_bytes(HEADER + b"".join(RECORDS + irregular))
    parts = _split(source, tmp_path / "parts", 1000, block_size=2048)
    assert parts == greedy_parts(RECORDS + irregular, HEADER, 1000)
    rows = [r for p in parts for r in csv.reader(io.StringIO(p.decode(), newline=""))]
    assert rows.count(["id", "text", "n"]) == len(parts)


# numbers as a CSV might spell them: canonical ones (copied as they are) and others (converted)
_INT = st.from_regex(r"[+-]?[0-9]{1,20}", fullmatch=True)
_FLOAT = st.one_of(
    st.from_regex(r"-?(0|[1-9][0-9]{0,16})(\.[0-9]{1,18})?", fullmatch=True),
    st.from_regex(r"[+-]?[0-9]{0,3}\.?[0-9]{0,6}([eE][+-]?[0-9]{1,3})?", fullmatch=True).filter(
        lambda t: (
            any(c.isdigit() for c in t.split("e")[0].split("E")[0])
            and not t.endswith(("e", "E", "+", "-"))
            and t.count(".") <= 1
        )
    ),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    # about 15 significant digits, where the copy must stop
    st.builds("{}.{}".format, st.integers(0, 10**17), st.text("0123456789", min_size=1, max_size=4)),
    st.builds("0.{}{}".format, st.text("0", max_size=5), st.integers(1, 10**17)),
)


def _expected(text: str, type_: str) -> bytes:
    if not text:
        return b"null"
    return orjson.dumps(int(text) if type_ == "int" else float(text))


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.one_of(_FLOAT, st.just("")), min_size=1, max_size=6))
def test_floats_come_out_as_orjson_writes_them(values: list[str]) -> None:
    column, kind = json_column(pa.array(values), "float", empty_as_null=False)
    lines = kernels.render([(column, kind)], [b"", b"\n"]).tobytes().split(b"\n")[:-1]
    assert lines == [_expected(v, "float") for v in values]


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.one_of(_INT, st.just("")), min_size=1, max_size=6))
def test_ints_come_out_as_orjson_writes_them(values: list[str]) -> None:
    if any(v and not -(2**63) <= int(v) < 2**63 for v in values):
        return  # beyond 64 bits: a mismatch error, covered by the round-trip tests
    column, kind = json_column(pa.array(values), "int", empty_as_null=False)
    lines = kernels.render([(column, kind)], [b"", b"\n"]).tobytes().split(b"\n")[:-1]
    assert lines == [_expected(v, "int") for v in values]


@pytest.mark.parametrize(
    ("type_", "values", "copied"),
    [
        ("int", ["0", "-12", "9223372036854775807", ""], True),
        ("int", ["007"], False),
        ("int", ["-0"], False),
        ("int", ["+5"], False),
        ("int", ["9223372036854775808"], None),  # beyond 64 bits: an error, whatever the spelling
        ("float", ["117684.00", "-0.5", "12", "0.0001", "-0.000", "12345678901234.5", ""], True),
        ("float", ["0.00001"], False),  # orjson writes it with an exponent from 1e-5 down
        ("float", ["123456789012345.5"], False),  # 16 significant digits
        ("float", ["0.1000000000000000055"], False),  # more digits than a float keeps
        ("float", ["1e3"], False),
        ("float", ["+1.5"], False),
    ],
)
def test_only_canonical_numbers_are_copied(type_: str, values: list[str], copied: bool | None) -> None:
    if copied is None:
        with pytest.raises(ValueError, match="is not an int"):
            json_column(pa.array(values), type_, empty_as_null=False)
        return
    text = pa.array(values)
    column, kind = json_column(text, type_, empty_as_null=False)
    assert (column is text) == copied  # no conversion: the column goes to rendering as it is
    lines = kernels.render([(column, kind)], [b"", b"\n"]).tobytes().split(b"\n")[:-1]
    assert lines == [_expected(v, type_) for v in values]


def test_converter_output_with_canonical_numbers(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"id,amount\n1,117684.00\n-2,0.50\n3,\n,7\n")
    out = tmp_path / "out.ndjson"
    csv_to_ndjson(source, out, {"id": "int", "amount": "float"})
    assert out.read_bytes() == (
        b'{"id":1,"amount":117684.0}\n{"id":-2,"amount":0.5}\n{"id":3,"amount":null}\n{"id":null,"amount":7.0}\n'
    )


def test_a_pipe_is_refused_clearly(tmp_path: Path) -> None:
    fifo = tmp_path / "in.ndjson"
    os.mkfifo(fifo)
    with pytest.raises(FileFormatError, match="not a regular file"):
        split_file(fifo, tmp_path / "parts", 1000)


def test_a_range_past_the_end_of_the_source_fails(source: Path, tmp_path: Path) -> None:
    """A source that shrank after its records were found: every method copies nothing, and that is an error."""
    size = source.stat().st_size
    with open(source, "rb") as src, open(tmp_path / "out", "wb") as out:
        copier = RangeCopier(source, src.fileno())
        with pytest.raises(OSError, match="changed while being read"):
            copier.copy(out.fileno(), size - 10, 20)
    assert (tmp_path / "out").read_bytes() == source.read_bytes()[-10:]


def test_the_longest_lines_fit_the_room_rendering_reserves(tmp_path: Path) -> None:
    """Every byte escaped as \\u00XX, `false`, `null` and `.0` added: the most each value can grow."""
    source = tmp_path / "in.csv"
    rows = [["\x01\x1f" * 50, "false", "", "7"], ["\x02", "FALSE", "", "-0"]]
    with open(source, "w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([["s", "b", "n", "x"], *rows])
    out = tmp_path / "out.ndjson"
    csv_to_ndjson(source, out, {"s": "string", "b": "bool", "n": "int", "x": "float"})
    assert out.read_bytes() == b"".join(
        orjson.dumps({"s": s, "b": False, "n": None, "x": float(x)}) + b"\n" for s, _, _, x in rows
    )
