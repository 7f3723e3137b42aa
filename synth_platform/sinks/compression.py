"""gzip for the bulk paths (meter part files, Tinybird batches) through ISA-L (isal): at its level 1 about four
times zlib's speed on NDJSON, with a better ratio; the output is ordinary gzip any reader takes. It releases the
GIL, so blocks compress in parallel."""

from isal import igzip, isal_zlib


def gzip_member(data: bytes | memoryview, level: int = 1) -> bytes:
    """One gzip member; members concatenate into a valid .gz file, so pieces compress independently."""
    compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def gunzip(data: bytes) -> bytes:
    """The content of a gzip file of any number of members."""
    return igzip.decompress(data)
