"""Ctrl-C for tests that send themselves SIGINT, even when the run started with it ignored.

A shell starts a background job (``.ci/run &``, ``nohup``) with SIGINT ignored, and Python then
installs no KeyboardInterrupt handler: a test relying on one must install it itself.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


@contextlib.contextmanager
def ctrl_c_raises() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt in the main thread inside the block, as in a terminal."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def child_hears_ctrl_c() -> None:
    """A ``preexec_fn`` for a child process that must hear SIGINT: Python installs its handler
    at start only where SIGINT is not ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
