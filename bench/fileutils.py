"""File utilities on a generated CSV (id, name, amount, active, and a quoted note with a comma, quotes and a
newline in every row), at 100 MB and 1 GB, each command in its own subprocess so its peak RSS is its own:
- csv-to-ndjson with a schema and inferring (every row), rows/s, against a csv.DictReader + json.dumps script
  (measured on the first 300,000 rows: a per-row script's rate does not depend on the file's size);
- split into 64 MB parts, MB/s, against a plain sequential write of as many bytes into one file in the same folder
  (both fsync'd); the same write handed to the disk every 16 MB as it grows (as split does with its parts) is
  printed beside it, not judged;
- peak RSS of each command at 1 GB against 100 MB.
At 1 GB the script, the commands and the plain write run in turn, in each of ROUNDS rounds, and the best sample of
each counts (every sample is printed): the machine's load and the disk's speed change from minute to minute, and
they then reach both sides of each ratio alike. Each command first runs on a tiny file in its process, untimed, as
the imports are: that loads the compiled passes from numba's cache (a fixed cost per process; the time is printed).
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
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bench.meter_files import sequential_write

SIZES_MB = [int(s) for s in os.environ.get("FILEUTILS_BENCH_MB", "100,1000").split(",")]
SCRIPT_ROWS = 300_000
ROUNDS = 3
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
import json, os, resource, sys, tempfile, time
from pathlib import Path
from synth_platform.fileutils.csv_to_ndjson import csv_to_ndjson
from synth_platform.fileutils.split import parse_size, split_file
what, src, out, jobs = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
types = json.loads(sys.argv[5]) if what == "schema" else None


def command(src, out):
    if what == "split":
        parts = split_file(src, out, parse_size(sys.argv[5]))
        return sum(p.records for p in parts), sum(p.bytes for p in parts)
    result = csv_to_ndjson(src, out, types, jobs=jobs)
    return result.rows, result.bytes


# the compiled passes load from numba's cache once per process, as the imports do: not part of the timing
started = time.perf_counter()
with tempfile.TemporaryDirectory() as tmp:
    tiny = Path(tmp) / "tiny.csv"
    with src.open("rb") as f:  # the header and 100 rows (two lines each: the note has a newline)
        tiny.write_bytes(b"".join(f.readlines(1 << 16)[:201]))
    command(tiny, Path(tmp) / ("parts" if what == "split" else "out.ndjson"))
warm = time.perf_counter() - started
started = time.perf_counter()
count, nbytes = command(src, out)
took = time.perf_counter() - started
print(count, nbytes, took, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, warm)
"""
COMMANDS = (("schema", 1), ("schema", 2), ("infer", 1), ("infer", 2), ("split", 1))


class Run(NamedTuple):
    records: int
    bytes: int
    seconds: float
    peak_rss_kb: int
    warm_up: float


def run(what: str, src: Path, out: Path, jobs: int = 1) -> Run:
    """One command in a fresh interpreter (split syncs each part before its rename, as the plain write syncs)."""
    arg = PART_SIZE if what == "split" else json.dumps(TYPES)
    args = [sys.executable, "-c", _CHILD, what, str(src), str(out), str(jobs), arg]
    fields = subprocess.run(args, check=True, capture_output=True, text=True).stdout.split()
    return Run(int(fields[0]), int(fields[1]), float(fields[2]), int(fields[3]), float(fields[4]))


def _remove(path: Path) -> None:
    if path.is_dir():
        for p in path.iterdir():
            p.unlink()
        path.rmdir()
    else:
        path.unlink(missing_ok=True)


def _round(root: Path, src: Path, with_baselines: bool) -> dict[str, float | Run]:
    """Every command once, and (at the measured size) the two baselines between them, so a change in the
    machine's load or the disk's speed during the round reaches both sides."""
    samples: dict[str, float | Run] = {}
    if with_baselines:
        rows, seconds = script(src, root / "script.ndjson")
        _remove(root / "script.ndjson")
        samples["script"] = rows / seconds
    for what, jobs in COMMANDS:
        out = root / ("parts" if what == "split" else "out.ndjson")
        samples[f"{what}/{jobs}"] = run(what, src, out, jobs)
        _remove(out)
        if what == "split" and with_baselines:  # the same bytes, right after the split, on the same filesystem
            nbytes = samples["split/1"].bytes
            samples["write"] = nbytes / sequential_write(root / "plain.bin", nbytes)
            # not the target's reference: the same write handed to the disk as it grows, as split does
            samples["write+wb"] = nbytes / sequential_write(root / "plain.bin", nbytes, handed_over=True)
    return samples


def _rate(key: str, sample: float | Run) -> float:
    """rows/s (script and csv-to-ndjson) or bytes/s (split and the plain write)."""
    if not isinstance(sample, Run):
        return sample
    return (sample.bytes if key.startswith("split") else sample.records) / sample.seconds


def main() -> bool:
    rounds: dict[int, list[dict[str, float | Run]]] = {}
    with tempfile.TemporaryDirectory(prefix="fileutils-bench-", dir=os.environ.get("SYNTH_BENCH_DIR")) as tmp:
        root = Path(tmp)
        for mb in SIZES_MB:
            src = root / f"in-{mb}.csv"
            started = time.perf_counter()
            rows = generate(src, mb)
            took = time.perf_counter() - started
            print(f"{mb} MB input: {rows:,} rows, {src.stat().st_size / 1e6:,.0f} MB, generated in {took:.1f}s")
            measured = mb == SIZES_MB[-1]
            rounds[mb] = []
            for i in range(ROUNDS if measured else 1):
                rounds[mb].append(samples := _round(root, src, measured))
                for key, sample in samples.items():
                    unit = "MB/s" if key in ("split/1", "write", "write+wb") else "rows/s"
                    scale = 1e6 if unit == "MB/s" else 1
                    line = f"  round {i + 1} {key:8} {_rate(key, sample) / scale:>12,.0f} {unit}"
                    if isinstance(sample, Run):
                        line += (
                            f"  ({sample.records:,} records, {sample.bytes / 1e6:,.0f} MB in {sample.seconds:.2f}s, "
                            f"peak RSS {sample.peak_rss_kb / 1024:,.0f} MB, warm-up {sample.warm_up:.2f}s)"
                        )
                    print(line, flush=True)
            _remove(src)
    big, small = rounds[SIZES_MB[-1]], rounds[SIZES_MB[0]]
    best = {key: max(_rate(key, r[key]) for r in big) for key in big[0]}
    schema, infer = max(best["schema/1"], best["schema/2"]), max(best["infer/1"], best["infer/2"])
    split = best["split/1"] / best["write"]
    commands = [f"{what}/{jobs}" for what, jobs in COMMANDS]
    growth = max(max(r[key].peak_rss_kb for r in big) / small[0][key].peak_rss_kb for key in commands)
    largest = max(r[key].peak_rss_kb for r in big for key in commands)
    print(
        f"best of {ROUNDS}: script {best['script']:,.0f} rows/s; csv-to-ndjson {schema:,.0f} rows/s with a schema, "
        f"{infer:,.0f} inferring; split {best['split/1'] / 1e6:,.0f} MB/s, plain write {best['write'] / 1e6:,.0f} MB/s "
        f"(handed to the disk as it grows: {best['write+wb'] / 1e6:,.0f} MB/s)"
    )
    ok = schema / best["script"] >= 10 and infer / best["script"] >= 5 and split >= 0.5 and growth <= 1.3
    print(
        f"csv-to-ndjson / script = {schema / best['script']:.1f}x with a schema (target >= 10x), "
        f"{infer / best['script']:.1f}x inferring (target >= 5x); split / sequential write = {split:.0%} (target "
        f">= 50%); peak RSS {SIZES_MB[-1]} / {SIZES_MB[0]} MB input <= {growth:.2f}x (target <= 1.3x, "
        f"largest {largest / 1024:,.0f} MB)"
    )
    print("fileutils: " + ("meets targets" if ok else "BELOW TARGET"))
    return ok
