"""A chat model on this machine: llama-cpp-python's OpenAI-compatible server in a subprocess.

``start()`` runs it (SmolLM2-135M-Instruct by default) and ``adapt_request()`` fits a request to it.

One job per module: ``supervisor`` starts, reuses and stops the process; ``child`` is what runs
inside it (the patches applied before the server starts); ``adapt`` fits requests to the
server and holds the table of what it does with each part of the protocol.
"""

from __future__ import annotations

from .adapt import adapt_request, explain_broken_stream
from .supervisor import (
    DEFAULT_CONTEXT,
    INSTALL_HINT,
    LocalServer,
    LocalServerError,
    LocalServerUnavailable,
    default_model_path,
    free_port,
    start,
    stop_all,
)

__all__ = [
    "DEFAULT_CONTEXT",
    "INSTALL_HINT",
    "LocalServer",
    "LocalServerError",
    "LocalServerUnavailable",
    "adapt_request",
    "default_model_path",
    "explain_broken_stream",
    "free_port",
    "start",
    "stop_all",
]
