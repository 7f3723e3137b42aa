"""csv-to-ndjson and split: round trips on files with quoted commas, quoted newlines and non-ASCII text."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from synth_platform.cli import main
from synth_platform.fileutils.csv_to_ndjson import csv_to_ndjson, infer_types
from synth_platform.fileutils.records import FileFormatError
from synth_platform.fileutils.split import parse_size, split_file
from synth_platform.world import seeding

HEADER = ["id", "name", "note", "amount", "active", "zip", "empty"]
WORDS = ["Zürich", "東京", "naïve, café", 'say "hi"', "line one\nline two", "a,b,c", "emoji 🙂", "plain", ""]


def rows(n: int) -> list[list[str]]:
    key = seeding.stream_key(7, "fileutils")
    picks = seeding.integers(key, len(WORDS), np.arange(n)[:, None], np.arange(2)[None, :])
    return [
        [str(i), WORDS[a], WORDS[b], f"{i * 1.25:.2f}", "true" if i % 3 else "False", f"{i % 100:05d}", ""]
        for i, (a, b) in enumerate(picks)
    ]


def write_csv(path: Path, data: list[list[str]], newline: str = "\n") -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator=newline)
        w.writerow(HEADER)
        w.writerows(data)
    return path


def read_csv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def test_inference_types_every_column_without_changing_a_value(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", rows(50))
    types = infer_types(src)
    # zip codes keep their leading zeros as strings; an all-empty column stays a string
    assert types == {"id": "int", "name": "string", "note": "string", "amount": "float", "active": "bool",
                     "zip": "string", "empty": "string"}  # fmt: skip


def test_csv_to_ndjson_round_trip_loses_no_row(tmp_path: Path) -> None:
    data = rows(500)
    src = write_csv(tmp_path / "in.csv", data, newline="\r\n")
    out = tmp_path / "out.ndjson"
    result = csv_to_ndjson(src, out)
    lines = out.read_bytes().splitlines()
    assert result.rows == len(lines) == len(data)  # the first data row included
    objects = [json.loads(line) for line in lines]
    for obj, row in zip(objects, data, strict=True):
        assert list(obj) == HEADER
        assert obj["id"] == int(row[0]) and obj["amount"] == float(row[3])
        assert obj["active"] == (row[4].lower() == "true")
        assert [obj["name"], obj["note"], obj["zip"], obj["empty"]] == [row[1], row[2], row[5], row[6]]
    assert any("\n" in o["name"] for o in objects) and any("," in o["note"] for o in objects)
    assert any("東京" in o["name"] for o in objects)


def test_schema_types_and_mismatch_names_line_and_column(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", rows(20))
    schema = tmp_path / "schema.yaml"
    schema.write_text("columns: {id: string, name: string, note: string, amount: float, active: bool, "
                      "zip: int, empty: int}\n")  # fmt: skip
    out = tmp_path / "out.ndjson"
    assert main(["csv-to-ndjson", str(src), "-o", str(out), "--schema", str(schema)]) == 0
    first = json.loads(out.read_bytes().splitlines()[0])
    assert first["id"] == "0" and first["zip"] == 0 and first["empty"] is None

    schema.write_text("columns: {id: int, name: int, note: string, amount: float, active: bool, zip: string, "
                      "empty: string}\n")  # fmt: skip
    with pytest.raises(FileFormatError, match=r"line 2, column 'name' \(int\)"):
        csv_to_ndjson(src, out, {**dict.fromkeys(HEADER, "string"), "name": "int"})
    assert main(["csv-to-ndjson", str(src), "-o", str(out), "--schema", str(schema)]) == 1
    assert first == json.loads(out.read_bytes().splitlines()[0])  # a failed run leaves the previous output


def test_inference_from_a_prefix_fails_clearly_on_a_later_misfit(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("a,b\n1,x\n2,y\n3.5,z\n", encoding="utf-8")
    with pytest.raises(FileFormatError, match=r"line 4, column 'a' \(int\)"):
        csv_to_ndjson(src, tmp_path / "o.ndjson", infer_rows=2)
    assert csv_to_ndjson(src, tmp_path / "o.ndjson").types["a"] == "float"


@pytest.mark.parametrize(
    "text, reason",
    [
        ("a,b\n1,2\n3\n", r"line 3: 1 fields, the header has 2"),
        ('a,b\n1,"open\n', r"record starting on line 2: unexpected end of data"),
        ("a,a\n1,2\n", r"column names must be unique"),
        ("", r"empty file"),
    ],
)
def test_bad_csv_fails_with_its_line(tmp_path: Path, text: str, reason: str) -> None:
    src = tmp_path / "bad.csv"
    src.write_text(text, encoding="utf-8")
    with pytest.raises(FileFormatError, match=reason):
        csv_to_ndjson(src, tmp_path / "o.ndjson")
    assert not (tmp_path / "o.ndjson").exists()


def test_csv_split_round_trip_with_header_in_every_part(tmp_path: Path) -> None:
    data = rows(400)
    src = write_csv(tmp_path / "big.csv", data)
    out = tmp_path / "parts"
    (out).mkdir()
    (out / "big.part-00999.csv").write_text("stale")
    parts = split_file(src, out, parse_size("2KiB"))
    assert len(parts) > 5
    assert sorted(p.name for p in out.iterdir()) == sorted(p.path.name for p in parts)
    body: list[list[str]] = []
    for p in parts:
        assert p.path.stat().st_size == p.bytes <= 2048
        part_rows = read_csv(p.path)
        assert part_rows[0] == HEADER
        assert len(part_rows) - 1 == p.records
        body += part_rows[1:]
    assert body == data
    header_len = len(",".join(HEADER)) + 1
    joined = b"".join(p.path.read_bytes()[header_len if i else 0 :] for i, p in enumerate(parts))
    assert joined == src.read_bytes()  # byte for byte: records are copied, never re-quoted


def test_ndjson_split_round_trip_via_cli(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", rows(300))
    nd = tmp_path / "in.ndjson"
    assert main(["csv-to-ndjson", str(src), "-o", str(nd)]) == 0
    code = subprocess.run(
        [sys.executable, "-m", "synth_platform", "split", str(nd), str(tmp_path / "p"), "--max-size", "3kB"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert code.returncode == 0, code.stderr
    parts = sorted((tmp_path / "p").iterdir())
    assert len(parts) == len(code.stdout.splitlines()) > 3
    assert all(p.stat().st_size <= 3000 for p in parts)
    assert b"".join(p.read_bytes() for p in parts) == nd.read_bytes()
    assert sum(len(io.BytesIO(p.read_bytes()).readlines()) for p in parts) == 300


def test_split_refuses_a_record_larger_than_a_part(tmp_path: Path) -> None:
    src = tmp_path / "x.csv"
    src.write_text('a,b\n1,"' + "é" * 100 + '"\n', encoding="utf-8")
    with pytest.raises(FileFormatError, match=r"record on line 2 is 205 bytes \(\+ 4 bytes of header\)"):
        split_file(src, tmp_path / "p", 100)


def test_help_lists_the_file_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "synth_platform", "--help"], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert "csv-to-ndjson" in out and "split" in out and "demo" in out
