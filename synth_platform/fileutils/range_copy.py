"""Byte ranges of one file appended to another inside the kernel, so the data never passes through Python.

`copy_file_range` copies page-cache pages to page-cache pages (or shares blocks, on filesystems that can); where
the kernel refuses it (an older kernel, two filesystems it will not copy across, a filesystem without it),
`sendfile` does the same copy, and where that is refused too, `pread` + `write` in 8 MB pieces. A method refused
(or copying nothing, as some filesystems answer) is not tried again for the same source.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

_PIECE = 8 << 20
# what the kernel answers when a method does not apply to these two files (the data is untouched)
_UNSUPPORTED = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF}


class RangeCopier:
    """Appends ranges of `source` (open for reading as `fd`) at the current position of other files."""

    def __init__(self, source: Path, fd: int):
        self.source, self.fd = source, fd
        self.methods = [_copy_file_range, _sendfile, _read_write]

    def copy(self, out_fd: int, offset: int, length: int) -> None:
        """Append source[offset:offset + length] at out_fd's position (and advance it)."""
        while length > 0:
            method = self.methods[0]
            try:
                done = method(self.fd, out_fd, offset, min(length, 1 << 30))
            except OSError as exc:
                if exc.errno not in _UNSUPPORTED or len(self.methods) == 1:
                    raise
                self.methods.pop(0)
                continue
            if done == 0:  # nothing copied: some filesystems answer so instead of refusing; or the file shrank
                if len(self.methods) == 1:
                    raise OSError(errno.EIO, f"{self.source} changed while being read (it ended at byte {offset})")
                self.methods.pop(0)
                continue
            offset += done
            length -= done


def write_all(fd: int, data: bytes | memoryview) -> None:
    """os.write until all of `data` is written (a write may take only part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_write(fd: int, out_fd: int, offset: int, length: int) -> int:
    data = os.pread(fd, min(length, _PIECE), offset)
    write_all(out_fd, data)
    return len(data)


def _copy_file_range(fd: int, out_fd: int, offset: int, length: int) -> int:
    if not hasattr(os, "copy_file_range"):
        raise OSError(errno.ENOSYS, "no copy_file_range")
    return os.copy_file_range(fd, out_fd, length, offset)


def _sendfile(fd: int, out_fd: int, offset: int, length: int) -> int:
    if not hasattr(os, "sendfile"):
        raise OSError(errno.ENOSYS, "no sendfile")
    return os.sendfile(out_fd, fd, offset, length)
