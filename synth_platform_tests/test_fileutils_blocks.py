"""csv-to-ndjson and split read files in blocks: a block may end anywhere (inside a quoted field, inside a multi-byte
UTF-8 character, between CR and LF) and nothing may change. Checked against Python's csv module, also on random
CSVs (Hypothesis)."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from synth_platform.fileutils.csv_to_ndjson import csv_to_ndjson
from synth_platform.fileutils.records import FileFormatError
from synth_platform.fileutils.split import split_file
from synth_platform_tests.fileutils_helpers import greedy_parts

ROWS = [
    ["id", "text", "n"],
    ["1", 'quoted "word", then a\nnewline', "10"],
    ["2", "東京 🙂 naïve", "-3"],
    ["3", "crlf\r\ninside", ""],
    ["4", "", "007"],
    ["5", "plain", "+8"],
]


def csv_bytes(rows: list[list[str]], delimiter: str = ",", eol: str = "\r\n") -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out, delimiter=delimiter, lineterminator=eol).writerows(rows)
    return out.getvalue().encode()


def reference_ndjson(data: bytes, delimiter: str = ",") -> bytes:
    """What every row says, read by the csv module, as orjson writes it with all columns strings."""
    rows = [r for r in csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=delimiter) if r]
    return b"".join(orjson.dumps(dict(zip(rows[0], r, strict=True))) + b"\n" for r in rows[1:])


def split_bytes(path: Path, out: Path, max_bytes: int, **kw) -> list[bytes]:
    return [p.path.read_bytes() for p in split_file(path, out, max_bytes, **kw)]


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "sample.csv"
    path.write_bytes(csv_bytes(ROWS))
    return path


def test_every_block_size_gives_the_same_output(sample: Path, tmp_path: Path) -> None:
    data = sample.read_bytes()
    ndjson = reference_ndjson(data)
    strings = dict.fromkeys(ROWS[0], "string")
    records = [csv_bytes([r]) for r in ROWS[1:]]
    parts = greedy_parts(records, csv_bytes([ROWS[0]]), 60)
    assert len(parts) > 2
    # sizes 1..len put a block end at every byte: inside the quoted fields, inside 東 and 🙂, between CR and LF
    for size in range(1, len(data) + 2):
        out = tmp_path / f"out-{size}.ndjson"
        csv_to_ndjson(sample, out, strings, block_size=size)
        assert out.read_bytes() == ndjson, size
        assert split_bytes(sample, tmp_path / f"parts-{size}", 60, block_size=size) == parts, size
        inferred = csv_to_ndjson(sample, tmp_path / "inferred.ndjson", block_size=size, jobs=2)
        assert inferred.types == {"id": "int", "text": "string", "n": "string"}  # "007" keeps n a string


def test_block_ends_inside_a_character_and_between_cr_and_lf(sample: Path, tmp_path: Path) -> None:
    data = sample.read_bytes()
    cuts = {
        "inside 東": data.index("東".encode()) + 1,
        "inside 🙂": data.index("🙂".encode()) + 2,
        "between CR and LF of a line end": data.index(b"\r\n") + 1,
        "between CR and LF inside quotes": data.index(b"crlf\r\n") + 5,
        "inside a quoted field": data.index(b"newline") - 2,
    }
    expected = reference_ndjson(data)
    for where, size in cuts.items():
        assert data[:size] != data, where
        out = tmp_path / "out.ndjson"
        csv_to_ndjson(sample, out, dict.fromkeys(ROWS[0], "string"), block_size=size)
        assert out.read_bytes() == expected, where
        nd = tmp_path / "lines.ndjson"
        nd.write_bytes(expected)
        assert b"".join(split_bytes(nd, tmp_path / "nd-parts", 100, block_size=size)) == expected, where


def test_errors_name_the_same_line_whatever_the_block_size(tmp_path: Path) -> None:
    src = tmp_path / "bad.csv"
    src.write_bytes(b'a,b\r\n1,"x\r\ny"\r\n2,z\r\nq,w\r\n3\r\n')  # line 5 has no int, line 6 one field
    src_quote = tmp_path / "open.csv"
    src_quote.write_bytes('a,b\n1,東\n2,"never\nclosed\n'.encode())
    for size in (1, 2, 3, 5, 8, 13, 1 << 20):
        with pytest.raises(FileFormatError, match=r"line 6: 1 fields, the header has 2"):
            csv_to_ndjson(src, tmp_path / "o.ndjson", block_size=size)
        with pytest.raises(FileFormatError, match=r"line 5, column 'a' \(int\): 'q' is not an int"):
            csv_to_ndjson(src, tmp_path / "o.ndjson", {"a": "int", "b": "string"}, block_size=size)
        with pytest.raises(FileFormatError, match=r"record starting on line 3: unexpected end of data"):
            split_file(src_quote, tmp_path / "p", 1000, block_size=size)
    assert not (tmp_path / "o.ndjson").exists()


@pytest.mark.parametrize(
    "text",
    [
        'h,g\n5\'10",x\nplain,"q"\n',  # a quote inside an unquoted field is text for the csv module
        "h,g\ra,b\rc,d\r",  # bare CR line endings
        'h,g\n1,"a\rb"\n2,x"y\n',  # a bare CR inside quotes, then a stray quote
    ],
)
def test_irregular_quoting_reads_as_the_csv_module_reads_it(tmp_path: Path, text: str) -> None:
    src = tmp_path / "odd.csv"
    src.write_text(text, encoding="utf-8", newline="")
    for size in (1, 4, 1 << 20):
        out = tmp_path / "o.ndjson"
        csv_to_ndjson(src, out, {"h": "string", "g": "string"}, block_size=size)
        assert out.read_bytes() == reference_ndjson(src.read_bytes())
        parts = split_file(src, tmp_path / f"p{size}", 40, block_size=size)
        read = [[r for r in csv.reader(io.StringIO(p.path.read_bytes().decode(), newline="")) if r] for p in parts]
        assert [r for rows in read for r in rows[1:]] == list(csv.reader(io.StringIO(text, newline="")))[1:]


def test_progress_bar_stays_off_without_a_terminal(sample: Path, tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "synth_platform",
            "csv-to-ndjson",
            str(sample),
            "-o",
            str(tmp_path / "o.ndjson"),
            "--jobs",
            "2",
            "--block-size",
            "16",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stderr.splitlines() == [
        f"5 rows, {(tmp_path / 'o.ndjson').stat().st_size} bytes -> "
        f"{tmp_path / 'o.ndjson'} (id: int, text: string, n: string)"
    ]


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    src = tmp_path / "big.csv"
    src.write_bytes(csv_bytes([ROWS[0], *ROWS[1:] * 4000]))
    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))  # a terminal 100 columns wide
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "synth_platform",
            "csv-to-ndjson",
            str(src),
            "-o",
            str(tmp_path / "o.ndjson"),
            "--block-size",
            "4KiB",
        ],
        stderr=terminal,
        stdout=subprocess.DEVNULL,
    ) as run:
        os.close(terminal)
        shown = b""
        while chunk := _read_terminal(main):
            shown += chunk
    os.close(main)
    assert run.returncode == 0
    assert b"inferring types:" in shown and b"converting:" in shown and b"B/s" in shown
    assert b"20000 rows" in shown


def _read_terminal(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 16)
    except OSError:  # the process closed its end
        return b""


# Random CSVs: fields of quotes, delimiters, CR/LF and non-ASCII text, or numbers and bools, written by the csv
# module (the irregular quoting it never writes is covered above and by the round-trip tests).
_TEXT = st.text(
    st.sampled_from(['"', ",", ";", "\t", "|", "\n", "\r", " ", "a", "Z", "0", "7", "é", "東", "🙂"]), max_size=8
)
_VALUE = st.one_of(
    _TEXT,
    st.from_regex(r"[+-]?[0-9]{1,4}(\.[0-9]{0,3})?([eE][+-]?[0-9]{1,2})?", fullmatch=True),
    st.sampled_from(["", "true", "False", "TRUE", "0", "-0", "007"]),
)


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, list[list[str]], str, str]:
    width = draw(st.integers(1, 4))
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    header = [f"c{i}" for i in range(width)]
    rows = draw(st.lists(st.lists(_VALUE, min_size=width, max_size=width), max_size=25))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    bom = draw(st.booleans())
    data = csv_bytes([header, *rows], delimiter, eol)
    # csv.writer leaves a CR unquoted when the line ending is LF; the csv module then reads it as a line end
    assume(list(csv.reader(io.StringIO(data.decode(), newline=""), delimiter=delimiter)) == [header, *rows])
    return (b"\xef\xbb\xbf" if bom else b"") + data, rows, delimiter, eol


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=csv_files(), block_size=st.sampled_from([1, 2, 3, 7, 64, 1 << 20]), jobs=st.sampled_from([1, 2]))
def test_converter_matches_the_csv_module(tmp_path: Path, case, block_size: int, jobs: int) -> None:
    data, rows, delimiter, _ = case
    src = tmp_path / "random.csv"
    src.write_bytes(data)
    out = tmp_path / "random.ndjson"
    header_width = len(next(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=delimiter)))
    names = [f"c{i}" for i in range(header_width)]
    result = csv_to_ndjson(
        src, out, dict.fromkeys(names, "string"), delimiter=delimiter, block_size=block_size, jobs=jobs
    )
    assert out.read_bytes() == reference_ndjson(data, delimiter)
    assert result.rows == len(rows)
    # inferred: every value is what Python reads from its text, in the type inference chose
    inferred = csv_to_ndjson(src, out, delimiter=delimiter, block_size=block_size, jobs=jobs)
    parse = {"string": str, "int": int, "float": float, "bool": lambda v: v.lower() == "true"}
    for line, row in zip(out.read_bytes().splitlines(), rows, strict=True):
        expected = {
            n: (parse[inferred.types[n]](v) if v or inferred.types[n] == "string" else None)
            for n, v in zip(names, row, strict=True)
        }
        assert json.loads(line) == expected


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=csv_files(), block_size=st.sampled_from([1, 2, 5, 64, 1 << 20]), max_bytes=st.integers(8, 300))
def test_splitter_matches_the_csv_module(tmp_path: Path, case, block_size: int, max_bytes: int) -> None:
    data, rows, delimiter, eol = case
    src = tmp_path / "random.csv"
    src.write_bytes(data)
    text = data.decode("utf-8-sig")
    header_row = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    header = csv_bytes([header_row], delimiter, eol)
    records = [csv_bytes([r], delimiter, eol) for r in rows]
    out = tmp_path / f"parts-{block_size}-{max_bytes}"
    if any(len(header) + len(r) > max_bytes for r in records):
        with pytest.raises(FileFormatError, match="more than parts of"):
            split_file(src, out, max_bytes, delimiter=delimiter, block_size=block_size)
        return
    assert split_bytes(src, out, max_bytes, delimiter=delimiter, block_size=block_size) == greedy_parts(
        records, header, max_bytes
    )
