"""A day of meter reading files into moto's S3 server (its own process, as S3 is another machine): the bucket sink
(staging, CRC32C per file, bounded parallel uploads checksummed and verified by S3, manifest last) vs a plain loop
of boto3 `upload_file` over the same files, in the same run (best of two each). Target: sink >= 0.8x the loop's MB/s."""

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3

from synth_platform.sinks.files import BucketResource
from synth_platform.specs.meters import MetersSpec
from synth_platform.streams.meters import write_readings_window
from synth_platform.world.meter_ids import id_numbers
from synth_platform.world.windows import Window
from synth_platform_tests.services import free_port, reachable

METERS, PER_PART = 160, 20  # 8 files of ~21 MB NDJSON
SEED = 1
CHUNK = 8 << 20


def main() -> bool:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not reachable("127.0.0.1", port, 0.2) and time.monotonic() < deadline:
            time.sleep(0.1)
        return _run(f"http://127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait(10)


def _run(endpoint: str) -> bool:
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1",
                      AWS_ENDPOINT_URL=endpoint)  # fmt: skip
    client = boto3.client("s3")
    bucket_name = f"bench-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket_name)
    spec = MetersSpec.model_validate({"fleet": {"count": METERS}, "output": {"format": "ndjson",
                                      "meters_per_part": PER_PART}})  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        local = BucketResource(url=str(Path(tmp) / "bucket"))
        result = write_readings_window(local, spec, SEED, id_numbers(SEED, METERS), Window.for_day("2026-03-02"), "")
        files = [(Path(local.uri(result.prefix + f.name)), result.prefix + f.name) for f in result.files]
        total = sum(p.stat().st_size for p, _ in files)
        print(f"{len(files)} files, {total / 1e6:,.0f} MB NDJSON (one day of {METERS} meters)")

        def sink(run: int) -> float:
            bucket = BucketResource(url=f"s3://{bucket_name}/sink{run}", staging_dir=str(Path(tmp) / "staging"))
            started = time.perf_counter()
            with bucket.replace_prefix(result.prefix) as writer:
                for path, name in files:
                    with writer.open(name.removeprefix(result.prefix)) as staged, open(path, "rb") as source:
                        for chunk in iter(lambda s=source: s.read(CHUNK), b""):
                            staged.write(chunk)
                writer.commit({"bench": True})
            return total / (time.perf_counter() - started) / 1e6

        def loop(run: int) -> float:
            started = time.perf_counter()
            for path, name in files:
                client.upload_file(str(path), bucket_name, f"loop{run}/{name}")
            return total / (time.perf_counter() - started) / 1e6

        # best of two, alternating, so that neither side gets only the cold or only the warm server
        sink_rate, loop_rate = 0.0, 0.0
        for run in range(2):
            sink_rate, loop_rate = max(sink_rate, sink(run)), max(loop_rate, loop(run))
        print(f"sink: {sink_rate:,.1f} MB/s (staging, CRC32C verified by S3 and read back, manifest last)")
        print(f"boto3 upload_file loop: {loop_rate:,.1f} MB/s")

    stored = {o["Key"]: o["Size"] for o in client.list_objects_v2(Bucket=bucket_name)["Contents"]}
    assert all(stored[f"sink0/{n}"] == stored[f"loop0/{n}"] for _, n in files), "the two uploads differ"
    ratio = sink_rate / loop_rate
    ok = ratio >= 0.8
    print(f"sink / upload_file loop = {ratio:.2f}x (target >= 0.8x)")
    print("s3_upload: " + ("meets target" if ok else "BELOW TARGET"))
    return ok
