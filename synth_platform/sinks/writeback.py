"""Handing written bytes to the disk early, so a file's final fsync finds little left to write."""

import os

WRITEBACK_BYTES = 16 << 20  # a local file starts going to disk every 16 MB


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing a range to disk without waiting (Linux starts writeback on DONTNEED, then drops the clean
    pages: output files are not read again). Without this, the whole file would wait for the final fsync."""
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
