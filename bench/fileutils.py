"""File utilities on a generated CSV (id, name, amount, active, and a quoted note with a comma, quotes and a
newline in every row), at 100 MB and 1 GB, each command in its own subprocess so its peak RSS is its own:
- csv-to-ndjson with a schema and inferring (every row), rows/s, against a csv.DictReader + json.dumps script
  (measured on the first 300,000 rows: a per-row script's rate does not depend on the file's size);
- split into 64 MB parts, MB/s, against a plain sequential write of as many bytes (both fsync'd at the end);
- peak RSS of each command at 1 GB against 100 MB.
Targets: >= 10x the script with a schema, >= 5x inferring, split >= 50% of the write rate, peak RSS at 1 GB at most
1.3x the one at 100 MB. FILEUTILS_BENCH_MB="100,1000" sets the sizes (the last one is the one measured for speed);
SYNTH_BENCH_DIR where the files go (deleted afterwards).
"""

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bench.meter_files import sequential_write

SIZES_MB = [int(s) for s in os.environ.get("FILEUTILS_BENCH_MB", "100,1000").split(",")]
SCRIPT_ROWS = 300_000
PART_SIZE = "64MB"
TYPES = {"id": "int", "name": "string", "amount": "float", "active": "bool", "note": "string"}


def generate(path: Path, megabytes: int) -> int:
    """A CSV of about `megabytes` MB, rendered 200,000 rows at a time; returns its rows."""
    rows, step = 0, 200_000
    with open(path, "wb") as out:
        out.write(b"id,name,amount,active,note\n")
        while out.tell() < megabytes * 1_000_000:
            i = pa.array(np.arange(rows, rows + step))
            cents = pc.multiply(i, 25)
            units = pc.cast(pc.divide(cents, 100), pa.string())
            hundredths = pc.utf8_lpad(pc.cast(pc.multiply(pc.bit_wise_and(i, 3), 25), pa.string()), 2, "0")
            line = pc.binary_join_element_wise(
                pc.cast(i, pa.string()),
                pc.binary_join_element_wise("Zürich", pc.cast(pc.bit_wise_and(i, 127), pa.string()), " "),
                pc.binary_join_element_wise(units, hundredths, "."),
                pc.if_else(pc.equal(pc.bit_wise_and(i, 1), 0), "True", "False"),
                '"a, ""quoted""\nnote"',
                ",",
            )
            text = pc.binary_join_element_wise(line, "", "\n")  # each row and its newline
            out.write(text.buffers()[2].slice(0, int(np.frombuffer(text.buffers()[1], np.int32)[step])))
            rows += step
    return rows


def script(src: Path, out_path: Path) -> tuple[int, float]:
    """The per-row reference: csv.DictReader, Python conversions, json.dumps, on the first SCRIPT_ROWS rows."""
    started = time.perf_counter()
    rows = 0
    with open(src, encoding="utf-8", newline="") as f, open(out_path, "w", encoding="utf-8") as out:
        for row in csv.DictReader(f):
            row["id"], row["amount"], row["active"] = int(row["id"]), float(row["amount"]), row["active"] == "True"
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            rows += 1
            if rows == SCRIPT_ROWS:
                break
    return rows, time.perf_counter() - started


_CHILD = """
import json, os, resource, sys, time
from pathlib import Path
from synth_platform.fileutils.csv_to_ndjson import csv_to_ndjson
from synth_platform.fileutils.split import parse_size, split_file
what, src, out, jobs = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
started = time.perf_counter()
if what == "split":
    parts = split_file(src, out, parse_size(sys.argv[5]))
    for p in parts:
        with open(p.path, "rb+") as f:
            os.fsync(f.fileno())
    count, nbytes = sum(p.records for p in parts), sum(p.bytes for p in parts)
else:
    types = json.loads(sys.argv[5]) if what == "schema" else None
    result = csv_to_ndjson(src, out, types, jobs=jobs)
    count, nbytes = result.rows, result.bytes
print(count, nbytes, time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def run(what: str, src: Path, out: Path, jobs: int = 1) -> tuple[int, int, float, int]:
    """(records, bytes written, seconds, peak RSS in kB) of one command in a fresh interpreter."""
    arg = PART_SIZE if what == "split" else json.dumps(TYPES)
    args = [sys.executable, "-c", _CHILD, what, str(src), str(out), str(jobs), arg]
    fields = subprocess.run(args, check=True, capture_output=True, text=True).stdout.split()
    return int(fields[0]), int(fields[1]), float(fields[2]), int(fields[3])


def _remove(path: Path) -> None:
    if path.is_dir():
        for p in path.iterdir():
            p.unlink()
        path.rmdir()
    else:
        path.unlink(missing_ok=True)


def main() -> bool:
    results: dict[int, dict[str, tuple[int, int, float, int]]] = {}
    with tempfile.TemporaryDirectory(prefix="fileutils-bench-", dir=os.environ.get("SYNTH_BENCH_DIR")) as tmp:
        root = Path(tmp)
        for mb in SIZES_MB:
            src = root / f"in-{mb}.csv"
            started = time.perf_counter()
            rows = generate(src, mb)
            size = src.stat().st_size
            took = time.perf_counter() - started
            print(f"{mb} MB input: {rows:,} rows, {size / 1e6:,.0f} MB, generated in {took:.1f}s")
            if mb == SIZES_MB[-1]:
                base_rows, base_s = script(src, root / "script.ndjson")
                _remove(root / "script.ndjson")
            results[mb] = {}
            for what, jobs in (("schema", 1), ("schema", 2), ("infer", 1), ("infer", 2), ("split", 1)):
                out = root / ("parts" if what == "split" else "out.ndjson")
                results[mb][f"{what}/{jobs}"] = r = run(what, src, out, jobs)
                _remove(out)
                rate = f"{r[0] / r[2]:,.0f} rows/s" if what != "split" else f"{size / 1e6 / r[2]:,.0f} MB/s"
                print(
                    f"  {what:6} jobs={jobs}: {r[0]:,} records, {r[1] / 1e6:,.0f} MB out in {r[2]:.1f}s = {rate}, "
                    f"peak RSS {r[3] / 1024:,.0f} MB"
                )
            if mb == SIZES_MB[-1]:
                plain = sequential_write(root / "plain.bin", results[mb]["split/1"][1])
            _remove(src)
    big, small = results[SIZES_MB[-1]], results[SIZES_MB[0]]
    per_row = base_rows / base_s
    schema = max(big["schema/1"][0] / big["schema/1"][2], big["schema/2"][0] / big["schema/2"][2])
    infer = max(big["infer/1"][0] / big["infer/1"][2], big["infer/2"][0] / big["infer/2"][2])
    split_rate, write_rate = big["split/1"][1] / big["split/1"][2], big["split/1"][1] / plain
    growth = max(big[k][3] / small[k][3] for k in big)
    print(f"DictReader + json.dumps script: {base_rows:,} rows in {base_s:.1f}s = {per_row:,.0f} rows/s")
    print(
        f"plain sequential write of {big['split/1'][1] / 1e6:,.0f} MB (+fsync): {write_rate / 1e6:,.0f} MB/s; "
        f"split {split_rate / 1e6:,.0f} MB/s"
    )
    ok = schema / per_row >= 10 and infer / per_row >= 5 and split_rate / write_rate >= 0.5 and growth <= 1.3
    print(
        f"csv-to-ndjson / script = {schema / per_row:.1f}x with a schema (target >= 10x), {infer / per_row:.1f}x "
        f"inferring (target >= 5x); split / sequential write = {split_rate / write_rate:.0%} (target >= 50%); "
        f"peak RSS {SIZES_MB[-1]} / {SIZES_MB[0]} MB input <= {growth:.2f}x (target <= 1.3x)"
    )
    print("fileutils: " + ("meets targets" if ok else "BELOW TARGET"))
    return ok
