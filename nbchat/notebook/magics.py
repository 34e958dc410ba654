"""The ``%%chat`` cell magic and ``%chat`` line magic: parse options, call the layers, display.

Mistakes are UsageErrors (one line, no traceback, nothing sent); failed requests show an error
card and fail the cell with a one-line error, so headless runs stop there.
"""

from __future__ import annotations

import argparse
import copy
import io
import re
import shlex
import textwrap
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments

from . import apiopts, mcpcmd, storecmd
from .settings import Chat as ChatSettings

__all__ = ["ChatMagics"]

SUBCOMMANDS = ("history", "reset", "undo", "sessions", "config", *storecmd.SUBCOMMANDS)
#: ``%chat fix`` / ``%chat explain [options]``: the last error (nbchat/notebook/context.py).
TASKS = ("fix", "explain")


def _logit_bias(text: str) -> tuple[str, float]:
    token, sep, bias = text.partition("=")
    if not sep or not token.strip().isdigit():
        raise ValueError(text)
    return token.strip(), float(bias)


def _tool_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ValueError(text)
    return names


@magics_class
class ChatMagics(Magics):
    """``%%chat`` and ``%chat``."""

    def __init__(self, shell: Any, settings: ChatSettings) -> None:
        super().__init__(shell)
        self.settings = settings

    @magic_arguments()
    @argument("-m", "--model", help="Model name.")
    @argument("-s", "--system", metavar="TEXT", help="System prompt of this conversation.")
    @argument("-t", "--temperature", type=float, help="Sampling temperature, 0–2.")
    @argument("--top-p", type=float, help="Nucleus sampling, 0–1.")
    @argument("--max-tokens", type=int, help="Most tokens in the reply.")
    @argument(
        "--max-completion-tokens",
        type=int,
        metavar="N",
        help="Most tokens in the reply, reasoning included (reasoning models).",
    )
    @argument(
        "--reasoning-effort",
        choices=apiopts.REASONING_EFFORTS,
        help="How hard a reasoning model thinks.",
    )
    @argument("--verbosity", choices=apiopts.VERBOSITIES, help="How long the reply is.")
    @argument("--service-tier", choices=apiopts.SERVICE_TIERS, help="The tier to serve it.")
    @argument("--prompt-cache-key", metavar="KEY", help="Groups requests for prompt caching.")
    @argument("--safety-identifier", metavar="ID", help="A stable id of your end user.")
    @argument("-n", type=int, help="How many choices to generate.")
    @argument("--stop", action="append", metavar="S", help="Stop sequence (repeatable).")
    @argument("--presence-penalty", type=float, help="-2 to 2.")
    @argument("--frequency-penalty", type=float, help="-2 to 2.")
    @argument(
        "--logit-bias",
        action="append",
        type=_logit_bias,
        metavar="ID=BIAS",
        help="Token bias, e.g. 50256=-100 (repeatable).",
    )
    @argument("--seed", type=int, help="Sampling seed.")
    @argument("--user", help="End-user id for abuse monitoring.")
    @argument("--store", action="store_true", default=None, help="Ask the server to store it.")
    @argument(
        "--metadata",
        action="append",
        type=apiopts.metadata_pair,
        metavar="KEY=VALUE",
        help="Label a stored completion (repeatable); filters %%chat stored list.",
    )
    @argument("--no-stream", action="store_true", help="Wait for the whole reply.")
    @argument("--session", default="default", metavar="NAME", help="Named conversation.")
    @argument("--new", action="store_true", help="Start this conversation afresh.")
    @argument("-o", "--out", metavar="VAR", help="Store the result in this variable.")
    @argument("--raw", action="store_true", help="Also show the raw JSON exchanged.")
    @argument("--no-interpolate", action="store_true", help="Keep {braces} as written.")
    @argument("--dry-run", action="store_true", help="Show the request without sending it.")
    @argument("--image", action="append", metavar="VAR", help="Attach an image (repeatable).")
    @argument("--detail", choices=("low", "high", "auto"), help="Image detail.")
    @argument("--data", action="append", metavar="VAR", help="Attach data as JSON (repeatable).")
    @argument("--audio", action="append", metavar="VAR", help="Attach a recording (repeatable).")
    @argument("--sample-rate", type=int, metavar="N", help="--audio: the array's sample rate.")
    @argument("--file", action="append", metavar="PATH_OR_VAR", help="Attach a file (repeatable).")
    @argument(
        "--speak",
        choices=apiopts.VOICES,
        metavar="VOICE",
        help=f"A spoken reply, in one of the voices {', '.join(apiopts.VOICES)}.",
    )
    @argument("--predict", metavar="VAR", help="Text the reply is expected to repeat mostly.")
    @argument(
        "--web-search",
        nargs="?",
        const="",
        choices=("", "low", "medium", "high"),
        metavar="low|medium|high",
        help="Let the model search the web; cite its sources.",
    )
    @argument("--json", action="store_true", help="Ask for a JSON object.")
    @argument("--schema", metavar="NAME", help="Pydantic model or JSON schema for the reply.")
    @argument(
        "--logprobs",
        nargs="?",
        const=5,
        type=int,
        metavar="N",
        help="Show token probabilities with N alternatives (default 5).",
    )
    @argument("--tools", type=_tool_names, metavar="F,G", help="Functions the model may call.")
    @argument("--tool-choice", metavar="auto|required|none|NAME", help="Which tool to call.")
    @argument("--allowed-tools", type=_tool_names, metavar="F,G", help="Only these of --tools.")
    @argument("--no-parallel-tools", action="store_true", help="One tool call at a time.")
    @argument("--confirm", action="store_true", help="Ask before each tool call runs.")
    @argument(
        "--mcp",
        action="append",
        metavar="NAME",
        help="Offer this MCP server's tools (repeatable; all: every enabled server).",
    )
    @argument(
        "--agent",
        action="store_true",
        help="Let the model read the notebook and, with your approval, run code and add cells.",
    )
    @argument("--yes", action="store_true", help="Approve every action of this cell.")
    @argument("--each", metavar="DF", help="Send the cell once per row of DF (nbchat.map).")
    @argument("--concurrency", type=int, metavar="N", help="--each: at most N at once (16).")
    @argument("--via", metavar="online|batch", help="--each: batch sends one Batch API job.")
    @argument(
        "--poll-interval", type=float, metavar="S", help="--each --via batch: poll every S s (10)."
    )
    @argument(
        "--resume",
        action="store_true",
        default=None,
        help="--each: rows sent before come from the store; only the others are sent.",
    )
    @argument("--compare", metavar="A,B", help="Send to these models side by side.")
    @argument(
        "--code",
        nargs="?",
        const="first",
        choices=("first", "all"),
        help="Put the reply's first Python block (all: every one) in the next cell, not run.",
    )
    @argument("--var", action="append", metavar="NAME", help="Describe a variable (repeatable).")
    @argument("--cells", type=int, metavar="N", help="Add the N cells run before this one.")
    # IPython's own $var/{var} expansion would run before nbchat's, so that the line and the
    # cell forms sent different text and --no-interpolate could not work on the line form.
    @no_var_expand
    @argument(
        "--cache", action="store_true", default=None, help="Answer from the store if sent before."
    )
    @argument("--no-cache", dest="cache", action="store_false", default=None, help="Always send.")
    @line_cell_magic
    def chat(self, line: str, cell: str | None = None) -> Any:
        """Chat with a model: ``%%chat [options]`` sends the cell; ``%chat [options] text``
        (``%chat [options] -- text`` when the text itself ends in options).

        ``%chat history|reset|undo|sessions|config [--session NAME]`` manage conversations;
        ``%chat log [N]`` shows the last exchanges kept in the store, ``%chat usage`` their cost;
        ``%chat stored [list [N] | show ID | delete ID]`` the completions a server stored.
        ``%chat fix|explain [options]`` send the last error (``%%chat fix``: the cell adds to it).
        ``%chat compare -m A -m B prompt`` sends to several models side by side.
        ``%chat mcp [NAME | restart NAME]`` shows the MCP servers (one's tools) or restarts one.
        """
        tokens, rest = split_options(line, self.chat.parser)
        if "-h" in tokens or "--help" in tokens:
            print(help_text(self.chat.parser))
            return None
        if cell is None:
            words = rest.split()
            if words[:1] == ["compare"] and (len(words) == 1 or words[1].startswith("-")):
                head = " ".join(["%chat", *map(shlex.quote, tokens), "compare"])
                refuse_options_after(rest.strip()[len("compare") :], self.chat.parser, head)
                return compare_line(self._ip, self.settings, self.chat.parser, tokens, rest)
            if mcpcmd.wants(words):
                return mcpcmd.run(self._ip, self.settings, words)
            if storecmd.wants(words):
                return storecmd.run(self._ip, self.settings, words, self._parse(tokens))
            stored = storecmd.stored_words(rest, self.chat.parser, split_options)
            if stored is not None:
                taken, more = stored
                args = self._parse(tokens + more)
                return storecmd.run_stored(self._ip, self.settings, taken, args)
            if words and words[0] in SUBCOMMANDS:
                # Options may follow the word too (``%chat history --json``); other text
                # after it makes the line an ordinary prompt.
                more, text = split_options(
                    rest.split(None, 1)[1] if len(words) > 1 else "", self.chat.parser
                )
                if not text:
                    return self._subcommand(words[0], self._parse(tokens + more))
            task = self._task(rest, tokens)
            if task is not None:
                return self._run_task(*task, extra="")
            refuse_options_after(line, self.chat.parser, "%chat")
            prompt = rest
        else:
            task = self._task(rest, tokens)
            if task is not None:
                return self._run_task(*task, extra=cell)
            if rest.strip():
                raise UsageError(
                    f"Unexpected text after the options: {rest.strip()!r} "
                    "(the prompt goes in the cell body)"
                )
            prompt = cell
        args = self._parse(tokens)
        from .run import run_cell

        return run_cell(self._ip, self.settings, args, prompt)

    def _task(self, rest: str, tokens: list[str]) -> tuple[str, list[str]] | None:
        """``(task, options)`` for ``fix``/``explain`` followed by options only; other text
        after the word makes the line an ordinary prompt (``%chat explain what a monad is``)."""
        words = rest.split(None, 1)
        if not words or words[0] not in TASKS:
            return None
        more, text = split_options(words[1] if len(words) > 1 else "", self.chat.parser)
        if text:
            return None
        return words[0], tokens + more

    def _run_task(self, task: str, tokens: list[str], *, extra: str) -> Any:
        from .context import task_prompt
        from .run import run_cell

        if "-h" in tokens or "--help" in tokens:
            print(help_text(self.chat.parser))
            return None
        args = self._parse(tokens)
        prompt = task_prompt(self.shell, args, task, extra)
        return None if prompt is None else run_cell(self._ip, self.settings, args, prompt)

    @property
    def _ip(self) -> Any:
        # Registered on a shell, a Magics always has one.
        assert self.shell is not None
        return self.shell

    def _parse(self, tokens: list[str]) -> Any:
        return self.chat.parser.parse_args(tokens)

    def _subcommand(self, name: str, args: Any) -> Any:
        from .run import subcommand

        return subcommand(self._ip, self.settings, name, args)


def help_text(parser: Any) -> str:
    """``%chat -h``: the options as plain text to the terminal's width.

    IPython's own formatting is reStructuredText for ``%chat?`` (a ``::`` block, ````code````,
    ``<N>``), which a terminal or an output area shows as it is.
    """
    shown = copy.copy(parser)
    shown.formatter_class = _PlainHelp
    shown.description = (parser.description or "").replace("``", "")
    return str(shown.format_help()).rstrip()


class _PlainHelp(argparse.HelpFormatter):
    """argparse's help, with each line of the description kept and wrapped on its own."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines = textwrap.dedent(text).strip().splitlines()
        return "\n".join(
            textwrap.fill(
                line.strip(),
                width,
                initial_indent=indent,
                subsequent_indent=indent + "  ",
                break_long_words=False,
                break_on_hyphens=False,
            )
            for line in lines
        )

    def add_usage(self, usage: Any, actions: Any, groups: Any, prefix: Any = None) -> None:
        super().add_usage(usage, actions, groups, "usage: %")


def split_options(line: str, parser: Any) -> tuple[list[str], str]:
    """Split ``line`` into option tokens and the free text after them (kept as written).

    Only the options are shell-split, so a prompt may hold quotes and apostrophes freely.
    """
    tokens, text, _ = _split(line, parser)
    return tokens, text


def refuse_options_after(line: str, parser: Any, command: str) -> None:
    """A UsageError when the one-line prompt in ``line`` ends in nbchat's own options.

    ``%chat Hello there --max-tokens 5`` would otherwise send "--max-tokens 5" as text (and a
    trailing ``--dry-run`` would send the request). The words count as options only when all of
    them, to the end of the line, parse as this magic's options; ``--`` before the prompt keeps
    them as text, and a prompt that merely mentions a flag (``what does --verbose do?``) is
    sent as it is. The error shows the command with the options moved before the prompt.
    """
    tokens, text, explicit = _split(line, parser)
    if not text or explicit:
        return
    names = {name for action in parser._actions for name in action.option_strings}
    for word in re.finditer(r"\S+", text):
        option = word.group().split("=", 1)[0]
        if option not in names or word.start() == 0:
            continue
        trailing = text[word.start() :]
        try:
            more, left = _split(trailing, parser)[:2]
            if left or "-h" in more or "--help" in more:
                continue
            parser.parse_args(tokens + more)
        except UsageError:
            continue
        prompt = text[: word.start()].rstrip()
        head = " ".join([command, *map(shlex.quote, tokens)])
        raise UsageError(
            f"Options go before the prompt: {head} {trailing} {prompt} "
            f"(or {head} -- {text} to send {trailing!r} as part of the prompt)"
        )


def _split(line: str, parser: Any) -> tuple[list[str], str, bool]:
    """``split_options``, and whether ``--`` marked where the text starts."""
    takes_value = set()
    for action in parser._actions:
        if action.nargs == 0:
            continue
        takes_value.update(action.option_strings)
    optional_value = {
        opt: action
        for action in parser._actions
        if action.nargs == "?"
        for opt in action.option_strings
    }
    stream = io.StringIO(line)
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    tokens: list[str] = []
    while True:
        start = stream.tell()
        try:
            token = lexer.get_token()
        except ValueError as exc:
            if tokens and tokens[-1] in takes_value:
                raise UsageError(f"Bad quoting in the options: {exc}") from None
            return tokens, line[start:].strip(), False
        if token is None or token == lexer.eof:
            return tokens, "", False
        if not token.startswith("-") or token in ("-", "--") or _is_number(token):
            if token == "--":
                return tokens, line[stream.tell() :].strip(), True
            return tokens, line[start:].strip(), False
        tokens.append(token)
        name = token.split("=", 1)[0]
        if name in takes_value and "=" not in token:
            mark = stream.tell()
            try:
                value = lexer.get_token()
            except ValueError as exc:
                raise UsageError(f"Bad quoting in the value of {token}: {exc}") from None
            if value is None or value == lexer.eof:
                if name in optional_value:
                    return tokens, "", False
                raise UsageError(f"Option {token} needs a value")
            if name in optional_value and not _optional_value(optional_value[name], value):
                if value == "--":
                    return tokens, line[stream.tell() :].strip(), True
                if value.startswith("-") and value != "-":
                    # "--code -t 0 …": the next option, read on its own.
                    stream.seek(mark)
                    continue
                # "--logprobs Tell me…": the option's value is optional; the rest is prompt.
                return tokens, line[mark:].strip(), False
            tokens.append(value)


def _optional_value(action: Any, token: str) -> bool:
    """Whether ``token`` is the value of an option whose value is optional (else: prompt)."""
    return token in action.choices if action.choices else _is_number(token)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def compare_line(
    shell: Any,
    settings: ChatSettings,
    parser: Any,
    tokens: list[str],
    rest: str,
) -> Any:
    """``%chat compare -m A -m B [options] prompt``: each ``-m`` adds a column."""
    from .run import run_cell

    after = rest.strip()[len("compare") :].strip()
    more, prompt = split_options(after, parser)
    models, others = _take_models([*tokens, *more])
    if not models:
        raise UsageError(
            "%chat compare needs models: %chat compare -m MODEL_A -m MODEL_B Your prompt"
        )
    return run_cell(shell, settings, parser.parse_args(others), prompt, models=models)


def _take_models(tokens: list[str]) -> tuple[list[str], list[str]]:
    """Every ``-m``/``--model`` value (argparse would keep only the last one), and the rest."""
    models: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in ("-m", "--model"):
            if i + 1 >= len(tokens):
                raise UsageError(f"Option {token} needs a value")
            models.append(tokens[i + 1])
            i += 2
            continue
        if token.startswith("--model="):
            models.append(token.split("=", 1)[1])
        elif token.startswith("-m") and len(token) > 2 and not token.startswith("--"):
            models.append(token[2:])
        else:
            rest.append(token)
        i += 1
    return models, rest
