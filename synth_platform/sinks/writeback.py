"""Handing written bytes to the disk early, so a file's final fsync finds little left to write."""

import os
from typing import BinaryIO

WRITEBACK_BYTES = 16 << 20  # a local file starts going to disk every 16 MB


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing a range to disk without waiting (Linux starts writeback on DONTNEED, then drops the clean
    pages: output files are not read again). Without this, the whole file would wait for the final fsync."""
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


class Writeback:
    """A growing local file handed to the disk every WRITEBACK_BYTES. It also keeps writing fast: once the page
    cache holds many dirty pages, writes stall waiting for the disk (a plain 1.75 GB write took 3-5x as long as
    the same write handed over as it grew)."""

    def __init__(self, file: BinaryIO):
        self.file = file
        self.handed_over = 0  # bytes whose writeback has been started

    def grew(self, size: int) -> None:
        """The file now holds `size` bytes (some may still be in `file`'s buffer)."""
        if size - self.handed_over >= WRITEBACK_BYTES:
            self.file.flush()
            start_writeback(self.file.fileno(), self.handed_over, size - self.handed_over)
            self.handed_over = size
