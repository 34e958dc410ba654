"""Files read within a size limit, and sizes in words: what images, recordings and other
attachments share."""

from __future__ import annotations

import errno
import os

__all__ = ["human_bytes", "read_file"]


def human_bytes(count: int) -> str:
    """``512 B``, ``2.0 kB``, ``31.5 MB`` (decimal units, as file managers show them)."""
    if count < 1000:
        return f"{count} B"
    if count < 1_000_000:
        return f"{count / 1000:.1f} kB"
    return f"{count / 1_000_000:.1f} MB"


def read_file(path: str, *, limit: int, what: str, error: type[Exception]) -> bytes:
    """The bytes of the file at ``path``, refused (``error``, one line naming the file) when
    it is missing, a directory, unreadable or larger than ``limit`` bytes. ``what`` names the
    kind of file in the messages ("image", "audio")."""
    name = os.path.basename(path) or path
    shown = path if len(path) <= 120 else path[:120] + "…"
    try:
        if os.path.isdir(path):
            article = "an" if what[:1] in "aeiou" else "a"
            raise error(f"{shown} is a directory, not {article} {what} file")
        size = os.stat(path).st_size
        if size > limit:
            raise error(f"{name} is {human_bytes(size)}, over the {human_bytes(limit)} limit")
        with open(path, "rb") as file:
            data = file.read(limit + 1)
    except (FileNotFoundError, NotADirectoryError):
        raise error(f"no such {what} file: {shown}") from None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise error(f"no such {what} file: {shown}") from None
        raise error(f"cannot read {shown}: {exc.strerror or exc}") from None
    if len(data) > limit:
        # It grew since it was measured.
        raise error(f"{name} is over the {human_bytes(limit)} limit")
    return data
