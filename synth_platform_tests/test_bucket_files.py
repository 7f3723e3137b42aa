"""BucketResource against a local folder, GCS (gcp-storage-emulator in-process) and S3 (moto's server in-process),
each with its real client."""

from __future__ import annotations

import os
import time
from contextlib import suppress
from datetime import date

import orjson
import pytest

from synth_platform.sinks.files import BucketResource
from synth_platform.sinks.parts import Piece, write_pieces
from synth_platform.sinks.prefix_writer import MANIFEST
from synth_platform.sinks.stores import UploadFailed
from synth_platform_tests.gcs_emulator import fail_uploads
from synth_platform_tests.s3_server import puts

PREFIX = "stream/dt=2026-03-01/"


@pytest.fixture(params=["local", "gcs", "s3"])
def bucket(request: pytest.FixtureRequest, tmp_path) -> BucketResource:
    if request.param == "local":
        return BucketResource(url=str(tmp_path / "bucket"))
    if request.param == "s3":
        url = f"s3://{request.getfixturevalue('s3').bucket}/data"
    else:
        url = request.getfixturevalue("gcs_bucket_url")
    return BucketResource(url=url, upload_workers=4, staging_dir=str(tmp_path / "staging"), retry_backoff_seconds=0)


def pieces(groups: dict[str, int], size: int = 100) -> list[Piece]:
    return [Piece(g, 1, (f"{g}-{i}|".encode() * size)[:size], i, 1) for g, n in groups.items() for i in range(n)]


def write(bucket: BucketResource, groups: dict[str, int], max_bytes: int = 250, prefix: str = PREFIX, **extra):
    with bucket.replace_prefix(prefix) as writer:
        write_pieces(writer, pieces(groups), "ndjson", max_bytes)
        return writer.commit({"note": "test", **extra})


def test_files_manifest_and_size_split(bucket: BucketResource):
    result = write(bucket, {"part-00000": 5, "part-00001": 1})
    names = sorted(n.removeprefix(PREFIX) for n in bucket.list(PREFIX))
    assert names == [MANIFEST, "part-00000-001.ndjson", "part-00000-002.ndjson", "part-00000.ndjson",
                     "part-00001.ndjson"]  # fmt: skip
    manifest = orjson.loads(bucket.read_bytes(PREFIX + MANIFEST))
    assert manifest["rows"] == 6 and manifest["bytes"] == 600 and manifest["note"] == "test"
    by_name = {f["name"]: f for f in manifest["files"]}
    assert by_name["part-00000.ndjson"]["bytes"] == 200 and by_name["part-00000-002.ndjson"]["first"] == 4
    listed = bucket.list(PREFIX)
    for f in manifest["files"]:
        info = listed[PREFIX + f["name"]]
        assert info.size == f["bytes"] and bucket.checksum(info) == f["crc32c"]
    assert result.rows == 6


def test_a_large_local_file_is_handed_to_the_disk_as_it_grows_and_stays_intact(tmp_path):
    """Past the writeback step (16 MB) the file is flushed in ranges while written; every byte must survive."""
    bucket = BucketResource(url=str(tmp_path / "bucket"))
    blocks = [Piece("part-00000", 1, bytes([65 + i]) * 7_000_000, i, 1) for i in range(6)]  # 42 MB
    with bucket.replace_prefix(PREFIX) as writer:
        write_pieces(writer, blocks, "ndjson", 100_000_000)
        writer.commit({})
    data = bucket.read_bytes(PREFIX + "part-00000.ndjson")
    assert data == b"".join(p.data for p in blocks)
    listed = bucket.list(PREFIX)
    (entry,) = bucket.manifest(PREFIX)["files"]
    assert bucket.checksum(listed[PREFIX + entry["name"]]) == entry["crc32c"] and entry["bytes"] == 42_000_000


def test_rewriting_a_prefix_replaces_it_and_removes_stale_files(bucket: BucketResource):
    write(bucket, {"part-00000": 5, "part-00001": 2, "part-00002": 1})
    write(bucket, {"part-00000": 1}, prefix="stream/dt=2026-03-02/")
    result = write(bucket, {"part-00000": 2})
    assert sorted(n.removeprefix(PREFIX) for n in bucket.list(PREFIX)) == [MANIFEST, "part-00000.ndjson"]
    assert result.deleted == 4
    assert bucket.read_bytes(PREFIX + "part-00000.ndjson") == b"".join(p.data for p in pieces({"part-00000": 2}))
    assert bucket.manifest("stream/dt=2026-03-02/")["rows"] == 1  # another prefix is untouched


def test_a_killed_writer_s_temp_files_are_removed_once_abandoned(tmp_path):
    bucket = BucketResource(url=str(tmp_path / "bucket"))
    write(bucket, {"part-00000": 1})
    folder = tmp_path / "bucket" / PREFIX
    abandoned, recent = folder / ".part-00001.ndjson.dead0001.tmp", folder / ".part-00002.ndjson.live0001.tmp"
    abandoned.write_bytes(b'{"partial": ')
    recent.write_bytes(b'{"partial": ')
    os.utime(abandoned, (time.time() - 7200, time.time() - 7200))  # a run killed two hours ago
    write(bucket, {"part-00000": 1})
    assert not abandoned.exists(), "the next write of the prefix removes a dead run's half-written file"
    assert recent.exists(), "a temp file that a running writer may still own is left alone"


def test_a_write_without_commit_leaves_no_manifest(bucket: BucketResource):
    write(bucket, {"part-00000": 1})
    with pytest.raises(RuntimeError, match="boom"), bucket.replace_prefix(PREFIX) as writer:
        write_pieces(writer, pieces({"part-00000": 1}), "ndjson", 1000)
        raise RuntimeError("boom")
    assert bucket.manifest(PREFIX) is None


def test_delete_before_removes_whole_old_days(bucket: BucketResource):
    for day in ("2026-02-27", "2026-02-28", "2026-03-01"):
        write(bucket, {"part-00000": 1}, prefix=f"stream/dt={day}/")
    write(bucket, {"part-00000": 1}, prefix="other/dt=2026-02-01/")
    assert bucket.delete_before("stream", date(2026, 3, 1)) == 4
    assert {n.split("/")[1] for n in bucket.list("stream/")} == {"dt=2026-03-01"}
    assert bucket.list("other/")


def test_a_failed_gcs_upload_fails_the_write_and_loses_nothing(gcs_bucket_url, tmp_path):
    staging = tmp_path / "staging"
    bucket = BucketResource(url=gcs_bucket_url, staging_dir=str(staging), attempts=3, retry_backoff_seconds=0)
    write(bucket, {"part-00000": 1, "part-00001": 1, "part-00002": 1})
    with fail_uploads("part-00001") as refused, pytest.raises(UploadFailed) as failure:
        write(bucket, {"part-00000": 2, "part-00001": 2, "part-00002": 2}, max_bytes=1000)
    assert len(refused) == 3  # every attempt reached the server
    assert "part-00001.ndjson" in str(failure.value) and "no manifest" in str(failure.value)
    assert bucket.manifest(PREFIX) is None  # never a manifest over missing files
    kept = list(staging.rglob("part-00001.ndjson"))
    assert len(kept) == 1 and kept[0].read_bytes() == b"".join(p.data for p in pieces({"part-00001": 2}))
    assert not list(staging.rglob("part-00000.ndjson"))  # confirmed uploads leave staging
    # a retry once the target is healthy completes the prefix
    write(bucket, {"part-00000": 2, "part-00001": 2, "part-00002": 2}, max_bytes=1000)
    assert bucket.manifest(PREFIX)["rows"] == 6


def test_staging_stays_bounded(gcs_bucket_url, tmp_path):
    staging = tmp_path / "staging"
    bucket = BucketResource(url=gcs_bucket_url, staging_dir=str(staging), staging_mb=1, upload_workers=2)
    peak = 0

    def staged_bytes() -> int:
        total = 0
        for f in staging.rglob("*"):
            with suppress(FileNotFoundError):  # an upload may finish and remove it meanwhile
                total += f.stat().st_size if f.is_file() else 0
        return total

    def watched():
        nonlocal peak
        for piece in pieces({f"part-{i:05d}": 1 for i in range(12)}, size=400_000):
            peak = max(peak, staged_bytes())
            yield piece

    with bucket.replace_prefix(PREFIX) as writer:
        write_pieces(writer, watched(), "ndjson", 10_000_000)
        writer.commit({})
    assert bucket.manifest(PREFIX)["rows"] == 12
    assert peak <= 1_000_000 + 400_000  # the limit plus the file being written
    assert not [f for f in staging.rglob("*") if f.is_file()]


def test_s3_multipart_uploads_keep_the_whole_file_s_crc32c(s3, tmp_path):
    """Past part_mb a file goes up in parts (put by a bounded pool); S3 stores the whole object's CRC32C, which
    must equal the writer's, and the bytes read back are the bytes written."""
    bucket = BucketResource(url=f"s3://{s3.bucket}/data", part_mb=5, staging_dir=str(tmp_path / "staging"))
    blocks = [Piece("part-00000", 1, bytes([65 + i]) * 4_000_000, i, 1) for i in range(3)]  # 12 MB: 3 parts
    with puts() as stored, bucket.replace_prefix(PREFIX) as writer:
        write_pieces(writer, blocks, "ndjson", 100_000_000)
        writer.commit({})
    assert stored == ["data/" + PREFIX + "part-00000.ndjson", "data/" + PREFIX + MANIFEST]  # the manifest last
    (entry,) = bucket.manifest(PREFIX)["files"]
    head = s3.client.head_object(Bucket=s3.bucket, Key="data/" + PREFIX + entry["name"], ChecksumMode="ENABLED")
    assert head["ChecksumCRC32C"] == entry["crc32c"] and head["ChecksumType"] == "FULL_OBJECT"
    assert bucket.read_bytes(PREFIX + entry["name"]) == b"".join(p.data for p in blocks)
    assert not list((tmp_path / "staging").rglob("*.ndjson"))  # confirmed, so gone from staging


def test_an_s3_put_whose_checksum_differs_is_not_accepted(s3, tmp_path):
    store = BucketResource(url=f"s3://{s3.bucket}/data", attempts=2, retry_backoff_seconds=0).store
    local = tmp_path / "part.ndjson"
    local.write_bytes(b'{"a":1}\n')
    with pytest.raises(UploadFailed, match="differs from the file's"):
        store.put_file(local, PREFIX + "part.ndjson", "AAAAAA==")  # not this file's CRC32C
    assert local.exists()  # kept for a retry
