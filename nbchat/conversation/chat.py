"""Chat: one conversation — its messages, its settings, and the send/stream/tool loop.

It prints nothing. Whoever wants to watch a reply form passes a listener; a failed call leaves
the history as it was, except that an interrupted stream's partial reply is kept, marked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import warnings
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..protocol.exceptions import IncompleteStreamError, RequestValidationError
from ..protocol.listener import ChatListener
from ..protocol.types import ChatCompletion
from ..transport.client import AsyncClient, Client
from ..transport.prepared import PreparedRequest
from ..transport.profiles import ServerProfile
from ..transport.seams import AsyncSender, StreamSnapshot, SyncSender
from .agenthook import with_agent
from .flow import Flow, adrive, drive
from .lock import ConversationLock
from .prompt import OPTIONS, Prompt, merged_fields
from .reply import NbchatNote, Reply

if TYPE_CHECKING:
    from .toolrun import ToolPolicy

__all__ = ["REFUSED", "Chat", "NbchatNote", "Prompt", "Reply"]

FORMAT_VERSION = 1
#: How a dry run's note begins for a request this server is known to refuse.
REFUSED = "This server would refuse it"


@dataclass
class _Plan:
    """One send's request fields, new messages, tools and parser, shared by its rounds."""

    params: dict[str, Any]
    #: The messages the send adds: a Prompt's messages, then its content as a user message.
    added: list[dict[str, Any]]
    stream: bool
    toolbox: dict[str, Any] | None
    parse: Callable[[ChatCompletion], Any] | None
    #: None follows %config Chat.cache.
    cache: bool | None = None
    log: bool = True
    max_rounds: int = 0
    confirm: Any = None


@dataclass
class _Entry:
    message: dict[str, Any]
    interrupted: bool = False
    #: How an assistant message came about (``Reply.metadata``), kept by ``to_json``.
    meta: dict[str, Any] | None = None


class Chat:
    """A conversation with a chat model.

    ``settings`` are request fields sent with every message (model, temperature, …);
    ``send()`` takes per-call overrides. ``messages`` are plain JSON-ready dicts.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        system: str | None = None,
        client: Client | AsyncClient | None = None,
        stream: bool = True,
        name: str = "default",
        cache: bool | None = None,
        max_history_tokens: int | None = None,
        **settings: Any,
    ) -> None:
        self.name = name
        #: Answer requests seen before from the store; None follows %config Chat.cache.
        self.cache = cache
        #: Requests keep their messages within about this many tokens, leaving out the oldest
        #: exchanges (with a note); the conversation keeps them. None: no limit.
        self.max_history_tokens = max_history_tokens
        self.settings: dict[str, Any] = {k: v for k, v in settings.items() if v is not None}
        if model:
            self.settings["model"] = model
        self.stream = stream
        self._client = client
        # A client the user chose wins over the one the magic's settings name.
        self._client_chosen = client is not None
        self._entries: list[_Entry] = []
        self._tool_policy: Any = None
        self._lock = ConversationLock()
        # asend's AsyncClient twin of a Client, one per event loop (a pool belongs to a loop).
        self._twins: weakref.WeakKeyDictionary[Any, tuple[Any, Any]] = weakref.WeakKeyDictionary()
        self.last: ChatCompletion | None = None
        self.last_reply: Reply | None = None
        if system:
            self.system = system

    # -- history ------------------------------------------------------------------------------

    @property
    def lock(self) -> ConversationLock:
        """The lock every ``send`` and ``asend`` holds. Hold it (``with chat.lock``, or
        ``async with`` in a task) to read the conversation and send with no other send in
        between (the panel does, to know where its exchange starts)."""
        return self._lock

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation as protocol message dicts, ready for any client."""
        return [json.loads(json.dumps(entry.message)) for entry in self._entries]

    @property
    def interrupted(self) -> list[int]:
        """Indices of messages that hold a partial reply cut short by an interruption."""
        return [i for i, entry in enumerate(self._entries) if entry.interrupted]

    @property
    def system(self) -> str | None:
        if self._entries and self._entries[0].message.get("role") == "system":
            return self._entries[0].message.get("content")
        return None

    @system.setter
    def system(self, text: str | None) -> None:
        has = bool(self._entries) and self._entries[0].message.get("role") == "system"
        if text is None:
            if has:
                del self._entries[0]
        elif has:
            self._entries[0] = _Entry({"role": "system", "content": text})
        else:
            self._entries.insert(0, _Entry({"role": "system", "content": text}))

    def add(self, message: dict[str, Any], *, interrupted: bool = False) -> None:
        """Append a message as it is (validated as a request message)."""
        _validate_messages([message])
        self._entries.append(_Entry(dict(message), interrupted))

    def reset(self) -> None:
        """Forget every message but the system prompt."""
        system = self.system
        self._entries.clear()
        self.last = None
        self.last_reply = None
        if system is not None:
            self.system = system

    def undo(self) -> list[dict[str, Any]]:
        """Drop the last exchange (the last user message and all that followed); return it."""
        for i in range(len(self._entries) - 1, -1, -1):
            entry = self._entries[i]
            # The images tools returned ride in a user message of their own: not an exchange.
            if entry.message.get("role") == "user" and not (entry.meta or {}).get("tool_images"):
                dropped = [entry.message for entry in self._entries[i:]]
                del self._entries[i:]
                return dropped
        return []

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        model = self.settings.get("model", "default model")
        return f"Chat(name={self.name!r}, model={model!r}, messages={len(self._entries)})"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from ..render.bundles import history_bundle

        return history_bundle(self)

    # -- persistence --------------------------------------------------------------------------

    def to_json(self, **dumps: Any) -> str:
        """The conversation and its settings as JSON; no credentials are included."""
        data = {
            "version": FORMAT_VERSION,
            "name": self.name,
            "settings": self.settings,
            "stream": self.stream,
            "messages": self.messages,
            "interrupted": self.interrupted,
            # Message index -> how that answer was obtained (model, fingerprint, usage…).
            "metadata": {str(i): entry.meta for i, entry in enumerate(self._entries) if entry.meta},
        }
        return json.dumps(data, ensure_ascii=False, **dumps)

    @property
    def metadata(self) -> dict[int, dict[str, Any]]:
        """Message index -> ``Reply.metadata`` of the send that produced that message."""
        return {i: dict(entry.meta) for i, entry in enumerate(self._entries) if entry.meta}

    @classmethod
    def from_json(cls, text: str | bytes, *, client: Client | AsyncClient | None = None) -> Chat:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"Not a saved conversation: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
            raise ValueError("Not a saved conversation: no 'messages' list")
        if data.get("version", FORMAT_VERSION) > FORMAT_VERSION:
            raise ValueError(f"Saved with a newer nbchat (format {data['version']})")
        chat = cls(client=client, name=data.get("name", "default"), stream=data.get("stream", True))
        chat.settings = dict(data.get("settings") or {})
        _validate_messages(data["messages"])
        marked = set(data.get("interrupted") or [])
        meta = {int(k): v for k, v in (data.get("metadata") or {}).items() if isinstance(v, dict)}
        chat._entries = [
            _Entry(message, i in marked, meta.get(i)) for i, message in enumerate(data["messages"])
        ]
        return chat

    # -- sending ------------------------------------------------------------------------------

    @property
    def client(self) -> Client | AsyncClient:
        if self._client is None:
            from .endpoint import default_client

            self._client = default_client()
        return self._client

    @client.setter
    def client(self, client: Client | AsyncClient | None) -> None:
        self._client = client
        self._client_chosen = client is not None

    @property
    def tool_policy(self) -> ToolPolicy:
        """Which tools the user approved with "always" in this conversation."""
        if self._tool_policy is None:
            from .toolrun import ToolPolicy

            self._tool_policy = ToolPolicy()
        return self._tool_policy

    def use_client_unless_chosen(self, client: Client | AsyncClient) -> None:
        """Use ``client`` unless the user set one on this conversation themselves."""
        if not self._client_chosen:
            self._client = client

    def prepare(
        self, content: Any = None, *, strict: bool = True, **options: Any
    ) -> PreparedRequest:
        """The exact request ``send`` would put on the wire first, without sending it.

        It takes the arguments of ``send`` (or a ``Prompt``); the result holds the method, URL,
        headers (the key masked) and body after settings, attachments, tools, structured
        output, stream options and the server's adaptations, and ``notes`` on how the request
        was fitted to the server. A request the server is known to refuse (images to a model
        that cannot see…) raises RequestValidationError; with ``strict=False`` it is built as
        written instead, with a note saying what the server would refuse (a dry run).
        """
        prompt = Prompt.of(content, **_given(options))
        # Building sends nothing, so an AsyncClient serves too (map binds one).
        return drive(self._prepare_flow(prompt, self.client, strict=strict))

    def request_body(self, content: Any = None, **options: Any) -> dict[str, Any]:
        """The body of ``prepare(...)``: the JSON ``send`` would post."""
        return self.prepare(content, **options).body

    def send(
        self, content: Any = None, *, listener: ChatListener | None = None, **options: Any
    ) -> Reply:
        """Send ``content`` as the next user message and return the Reply.

        ``content`` is a string or a list of content parts (or a whole ``Prompt``); None sends
        the history as it is (to continue after tool results or an interruption). Options, all
        keywords (see ``Prompt``): ``stream``; ``tools``, functions or Tool objects the model
        may call, run and answered until a final reply, at most ``max_rounds`` rounds;
        ``confirm``, True (ask with input()) or a callback ``(tool, arguments) -> "yes" | "no" |
        "always"`` asked before every tool runs (tools made with ``confirm=True`` are asked
        about regardless); ``parse``, turning the final completion into ``reply.parsed``;
        ``images`` (PIL images, arrays, figures, paths, bytes, URLs) and ``data`` (DataFrames,
        dicts, lists…) attached to the message, ``detail`` the images' detail (low, high,
        auto); ``json=True`` for a JSON object and ``schema`` (a pydantic model class or a
        JSON-schema dict) for a reply of that shape (strict json_schema), ``reply.parsed`` then
        holding the validated instance or object — a reply that is not valid raises
        StructuredOutputError (with ``.reply``), never passing as valid; ``cache=True``
        answering a request seen before from the store (``reply.cached``); ``log=False``
        keeping the exchange out of the store; ``agent=True`` adding the notebook's tools
        (``%%chat --agent``: the model reads cells and variables, and runs code or adds a cell
        once you approve each action). Other keywords are request fields
        (``temperature=0``, ``max_tokens=100``); ``recordings`` (WAV/MP3 bytes or paths, arrays
        of samples with ``sample_rate``, IPython Audio) and ``files`` (paths, bytes, uploaded
        file ids) are attached like images; ``allowed_tools=[names]`` limits the model to some
        of ``tools``; ``modalities``/``audio`` ask for a spoken reply (``reply.audio``). Every
        request is built by ``prepare``.

        Sends to one conversation take turns: a panel, a cell and ``asend`` never interleave.
        """
        prompt = Prompt.of(content, **_given(with_agent(options)))
        with self._lock:
            reply = drive(self._flow(prompt, listener, self._sync_client()))
        if listener is None:
            _warn_notes(reply)
        return reply

    async def asend(
        self, content: Any = None, *, listener: ChatListener | None = None, **options: Any
    ) -> Reply:
        """``send`` for async code: ``reply = await chat.asend("Hi")``, on the running loop.

        The same rounds, tool loop (async tools awaited), fallbacks, store, budget and notes;
        cancelling the task that awaits it (interrupting an async cell) keeps the partial reply
        as Ctrl-C does. A Client's requests go through an AsyncClient twin of it (one per
        event loop); an AsyncClient given as the client is used as it is.
        """
        prompt = Prompt.of(content, **_given(with_agent(options)))
        client = self._async_client()
        async with self._lock:
            reply = await adrive(self._flow(prompt, listener, client))
        if listener is None:
            _warn_notes(reply)
        return reply

    # -- the flow of one send (no I/O of its own: see flow.py) --------------------------------

    def _flow(
        self, prompt: Prompt, listener: ChatListener | None, client: SyncSender | AsyncSender
    ) -> Flow[Reply]:
        """Every round of one send: the request, the tool calls, the next request…"""
        from .rounds import Ask, Turn

        plan = yield from self._plan(prompt, client)
        listener = listener or ChatListener()
        checkpoint = len(self._entries)
        self._entries.extend(_Entry(added) for added in plan.added)
        reply = Reply(completion=ChatCompletion())
        turn = Turn(
            client=client,
            listener=listener,
            reply=reply,
            prepare=lambda: self._prepare_round(plan, self.messages, client),
            door={"session": self.name, "cache": plan.cache, "log": plan.log},
            sync_client=self._client if isinstance(self._client, Client) else None,
        )
        rounds_left = plan.max_rounds
        try:
            while True:
                prepared = self._prepare_round(plan, self.messages, client)
                for note in prepared.notes:
                    if note not in reply.notes:
                        reply.notes.append(note)
                reply.prepared = prepared
                reply.request = prepared.body
                listener.on_request(prepared.body)
                completion = yield Ask(turn, prepared)
                reply.completions.append(completion)
                reply.completion = completion
                self.last = completion
                message = _assistant_message(completion)
                calls = _runnable_calls(completion, reply)
                if not (plan.toolbox is not None and calls):
                    if message is not None:
                        self._entries.append(_Entry(message))
                    break
                if rounds_left <= 0:
                    reply.notes.append(
                        f"Stopped after {len(reply.completions) - 1} rounds of tool calls, the "
                        "limit; the model's last tool calls were not run. Raise max_rounds "
                        "(%config Chat.max_tool_rounds) or send again to continue."
                    )
                    break
                rounds_left -= 1
                if plan.params.get("tool_choice") not in (None, "auto", "none"):
                    # A forced choice applies to the first round; forcing it again would
                    # never let the model answer.
                    from ..convert.tools import relaxed_tool_choice

                    plan.params["tool_choice"] = relaxed_tool_choice(plan.params["tool_choice"])
                self._entries.append(_Entry(message or {"role": "assistant", "content": None}))
                results = yield from self._answer_tool_calls(calls, plan, reply)
                listener.on_tool_results(results)
                if any(getattr(result, "stopped", False) for result in results):
                    reply.stopped = True
                    reply.notes.append(
                        "Stopped: you chose Stop, so the calls left were not run and nothing "
                        "more was sent; the conversation keeps every step."
                    )
                    break
        except (KeyboardInterrupt, asyncio.CancelledError) as exc:
            self._keep_partial(checkpoint, reply, turn.inflight)
            _carry(exc, reply)
            raise
        except IncompleteStreamError as exc:
            reply.completion = exc.completion or reply.completion
            self._keep_partial(checkpoint, reply, turn.inflight)
            _carry(exc, reply)
            raise
        except BaseException as exc:
            del self._entries[checkpoint:]
            _carry(exc, reply)
            raise
        self._finish(reply, plan, turn, checkpoint)
        return reply

    def _finish(self, reply: Reply, plan: _Plan, turn: Any, checkpoint: int) -> None:
        """After the last round: timing, notes, metadata, ``nbchat.last``, the parsed value."""
        reply.elapsed = time.perf_counter() - turn.started
        profile = turn.client.profile
        reply.server = profile.kind
        reply.notes.extend(
            note
            for note in _model_notes(plan.params.get("model"), reply.completion, profile)
            if note not in reply.notes
        )
        if len(self._entries) > checkpoint and self._entries[-1].message.get("role") == "assistant":
            self._entries[-1].meta = reply.metadata
        self.last_reply = reply
        _set_last(reply)
        if plan.parse is not None:
            try:
                reply.parsed = plan.parse(reply.completion)
            except Exception as exc:
                # The exchange happened and stays in history; the caller still gets the reply.
                _carry(exc, reply)
                raise

    def _answer_tool_calls(self, calls: list[Any], plan: _Plan, reply: Reply) -> Flow[list[Any]]:
        """Run one round of tool calls and append one tool message per call."""
        from .toolrun import RunTools, ToolPolicy, ToolRunInterrupted

        policy = self.tool_policy
        confirm = plan.confirm
        if callable(confirm):
            # A callback given for this call is asked before every tool; "always" answers
            # still reach the conversation's policy.
            policy = ToolPolicy(confirm_all=True, approved=policy.approved)
        interrupted: ToolRunInterrupted | None = None
        try:
            results = yield RunTools(calls, plan.toolbox, confirm=confirm, policy=policy)
        except ToolRunInterrupted as exc:
            # Every call is answered (the unfinished ones as interrupted): keep them too.
            results, interrupted = exc.results, exc
        for result in results:
            self._entries.append(_Entry(result.message()))
        reply.tool_results.extend(results)
        from .toolround import TOOL_IMAGES, images_message, record_calls

        record_calls(reply.prepared, self.name, results, self.client)
        images = images_message(results, self.client.profile)
        if images is not None and interrupted is None:
            self._entries.append(_Entry(images, meta={TOOL_IMAGES: True}))
        if interrupted is not None:
            raise interrupted
        return list(results)

    def _prepare_flow(
        self, prompt: Prompt, client: SyncSender | AsyncSender, *, strict: bool = True
    ) -> Flow[PreparedRequest]:
        plan = yield from self._plan(prompt, client)
        messages = self.messages + plan.added
        return self._prepare_round(plan, messages, client, strict=strict)

    def _plan(self, prompt: Prompt, client: SyncSender | AsyncSender) -> Flow[_Plan]:
        """What every round of one send shares: fields, tools, attachments, the parser."""
        overrides = prompt.request_fields
        parse = prompt.parse
        if prompt.schema is not None or prompt.json:
            if parse is not None:
                raise RequestValidationError("Pass parse=... or a schema, not both", field="parse")
            parse = _structured_parser(prompt.schema, prompt.json, overrides)
        content = prompt.content
        if prompt.images or prompt.data or prompt.recordings or prompt.files:
            from ..convert.content import build_content

            content, _ = build_content(
                content or "",
                images=prompt.images,
                data=prompt.data,
                detail=prompt.detail,
                recordings=prompt.recordings,
                files=prompt.files,
                sample_rate=prompt.sample_rate,
            )
        params = merged_fields(self.settings, overrides.items())
        if not params.get("model"):
            params["model"] = yield from self._default_model(client)
        toolbox = None
        if prompt.tools:
            from ..convert.tools import tools_by_name

            toolbox = tools_by_name(prompt.tools)
            params["tools"] = [tool.definition() for tool in toolbox.values()]
        # A tool's name forces that tool (a function or a custom tool), as --tool-choice NAME
        # does in a cell; allowed_tools=[names] limits the model to those tools.
        allowed = params.pop("allowed_tools", None)
        if isinstance(params.get("tool_choice"), str) or allowed is not None:
            from ..convert.tools import tool_choice_for

            params["tool_choice"] = tool_choice_for(params.get("tool_choice"), toolbox, allowed)
        added = [dict(m) for m in prompt.messages]
        if added:
            _validate_messages(added)
        if content is not None:
            added.append({"role": "user", "content": content})
        max_rounds = prompt.max_rounds
        if max_rounds is None:
            from ..convert.tools import MAX_ROUNDS

            max_rounds = MAX_ROUNDS
        return _Plan(
            params=params,
            added=added,
            stream=self.stream if prompt.stream is None else prompt.stream,
            toolbox=toolbox,
            parse=parse,
            cache=self.cache if prompt.cache is None else prompt.cache,
            log=prompt.log,
            max_rounds=max_rounds,
            confirm=prompt.confirm,
        )

    def _prepare_round(
        self,
        plan: _Plan,
        messages: list[dict[str, Any]],
        client: SyncSender | AsyncSender,
        *,
        strict: bool = True,
    ) -> PreparedRequest:
        """The one place a request is built: fields, messages, stream options, adaptations."""
        from .trim import fit_history

        profile = client.profile
        messages, trimmed = fit_history(messages, self.max_history_tokens)
        body = {**plan.params, "messages": messages}
        if not plan.stream:
            # A setting meant for streams (Chat.request) must not break an unstreamed call.
            body.pop("stream_options", None)
        elif "stream_options" not in body and profile.supports("stream_usage") is not False:
            # Ask for usage so the footer has token counts (a server may refuse, see below).
            body["stream_options"] = {"include_usage": True}
        try:
            body, notes = profile.adapt(body)
        except RequestValidationError as exc:
            if strict:
                raise
            # Shown, not sent: the request as written, and what this server would refuse.
            notes = [
                f"This server would refuse it: {exc.message.removeprefix('Invalid request: ')}"
            ]
        if plan.stream:
            body["stream"] = True
        prepared = client.build_request(**body)
        if not (trimmed or notes):
            return prepared
        return replace(prepared, notes=(*trimmed, *prepared.notes, *notes))

    def _default_model(self, client: SyncSender | AsyncSender) -> Flow[str]:
        """The model a request names when none is set: the profile's, the one a cassette
        recorded (replaying sends nothing, not even a look at the server's models), or the one
        the server lists."""
        profile = client.profile
        if profile.default_model:
            return str(profile.default_model)
        from .endpoint import replayed_model

        recorded = replayed_model()
        if recorded is not None:
            return recorded
        from .flow import ListModels

        # A server that serves one model (Ollama, LM Studio, vLLM often do) names it itself.
        try:
            listed = yield ListModels(client)
        except Exception:
            listed = []
        if len(listed) == 1:
            profile.remember_model(listed[0])
            return str(listed[0])
        hint = ""
        if listed:
            shown = ", ".join(listed[:5]) + (", …" if len(listed) > 5 else "")
            hint = f" (the server lists {len(listed)}: {shown})"
        raise RequestValidationError(
            f"No model is set{hint}: pass model=..., -m on the cell, or %config Chat.model = '...'",
            field="model",
        )

    # -- clients ------------------------------------------------------------------------------

    def _sync_client(self) -> Client:
        client = self.client
        if isinstance(client, AsyncClient):
            raise RequestValidationError(
                "This conversation's client is an AsyncClient: use await chat.asend(...)",
                field="client",
            )
        return client

    def _async_client(self) -> AsyncClient:
        """An AsyncClient for this loop: the client itself, or a twin of it for this loop."""
        client = self.client
        if isinstance(client, AsyncClient):
            return client
        loop = asyncio.get_running_loop()
        twins = self._twins
        twin = twins.get(loop)
        if twin is None or twin[0] is not client:
            from ..transport.twin import async_twin

            twins[loop] = twin = (client, async_twin(client, connections=_TWIN_CONNECTIONS))
        return twin[1]

    def _keep_partial(self, checkpoint: int, reply: Reply, stream: StreamSnapshot | None) -> None:
        """After an interruption: keep complete tool rounds and the partial text, marked."""
        reply.interrupted = True
        reply.elapsed = 0.0
        _drop_unanswered_tool_calls(self._entries, checkpoint)
        if stream is not None:
            from ..convert.reasoning import split_think

            partial = stream.completion
            reply.completion = partial
            text = split_think(partial.content)[1]
            if text:
                self._entries.append(_Entry({"role": "assistant", "content": text}, True))
        if len(self._entries) == checkpoint + 1 and self._entries[-1].message["role"] == "user":
            # Nothing of the reply arrived: the cell leaves no trace.
            del self._entries[checkpoint:]
        self.last = reply.completion
        self.last_reply = reply
        _set_last(reply)


#: Connections of the AsyncClient twin ``asend`` uses for a Client (one send at a time per
#: conversation; a few for conversations sharing a loop).
_TWIN_CONNECTIONS = 4


def _given(options: dict[str, Any]) -> dict[str, Any]:
    """Options as ``send`` got them, leaving out those left at their defaults, so a Prompt
    passed as the content keeps its own."""
    return {
        name: value
        for name, value in options.items()
        if name not in OPTIONS or not _is_default(name, value)
    }


def _is_default(name: str, value: Any) -> bool:
    if name in ("images", "data", "messages", "recordings", "files"):
        return not value
    if name in ("json",):
        return value is False
    if name == "log":
        return value is True
    return value is None


def _carry(exc: BaseException, reply: Reply) -> None:
    """What arrived before ``exc`` rides on it as ``exc.reply`` (``NbchatError.reply``): the
    one place every caller — a cell, the panel, compare — reads it from."""
    if getattr(exc, "reply", None) is None:
        with contextlib.suppress(AttributeError):
            exc.reply = reply  # type: ignore[attr-defined]


def _warn_notes(reply: Reply) -> None:
    # Plain Python has no display: what the notes say would otherwise go unseen.
    for note in reply.notes:
        warnings.warn(note, NbchatNote, stacklevel=3)


def _structured_parser(
    schema: Any, json: bool, overrides: dict[str, Any]
) -> Callable[[ChatCompletion], Any]:
    from ..convert.formats import response_format_for
    from ..convert.parsing import parse_reply

    if schema is not None and json:
        raise RequestValidationError("Pass json=True or schema=..., not both", field="schema")
    overrides.setdefault("response_format", response_format_for(schema, json=json))

    def parse_structured(completion: ChatCompletion) -> Any:
        choice = completion.choices[0] if completion.choices else None
        message = choice.message if choice is not None else None
        return parse_reply(
            message.content if message else None,
            message.refusal if message else None,
            schema_or_model=schema,
            finish_reason=choice.finish_reason if choice is not None else None,
        )

    return parse_structured


def _assistant_message(completion: ChatCompletion) -> dict[str, Any] | None:
    """The assistant message to keep in history, in the reference's request format."""
    if not completion.choices:
        return None
    from ..convert.reasoning import split_think

    message = completion.choices[0].message
    # A reasoning model's thinking stays out of the history: servers refuse it back.
    result: dict[str, Any] = {"role": "assistant", "content": split_think(message.content)[1]}
    from .toolrun import known_calls

    # A kind of call nbchat does not know stays in the reply, out of the history (see below).
    calls = known_calls(message.tool_calls)
    if calls:
        result["tool_calls"] = [call.to_dict() for call in calls]
    if message.refusal:
        result["refusal"] = message.refusal
    if message.function_call is not None:
        result["function_call"] = message.function_call.to_dict()
    audio_id = getattr(message.audio, "id", None)
    if isinstance(audio_id, str) and audio_id:
        # A spoken reply goes back by the id of its audio, as the API requires (the server
        # keeps the audio; its transcript is not the content).
        result["audio"] = {"id": audio_id}
        if not result["content"]:
            del result["content"]
            return result
    if result["content"] is None and len(result) == 2:
        return None
    return result


def _runnable_calls(completion: ChatCompletion, reply: Reply) -> list[Any]:
    """The tool calls of the reply the loop can answer; a note for the kinds it cannot (they
    are kept in the reply, but neither run nor sent back)."""
    from .toolrun import known_calls

    calls = completion.choices[0].message.tool_calls if completion.choices else None
    known = known_calls(calls)
    for call in calls or ():
        if call not in known:
            note = (
                f"The reply holds a {call.type!r} tool call, which nbchat cannot run; it is "
                "kept in the reply and left out of the conversation."
            )
            if note not in reply.notes:
                reply.notes.append(note)
    return known


_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")


def _model_notes(asked: Any, completion: ChatCompletion, profile: ServerProfile) -> list[str]:
    """Say when another model answered than the one asked for (a dated snapshot of the same
    name is the same model), and when the local model answered because nothing else is set."""
    answered = completion.model or ""
    if profile.local:
        local = profile.default_model
        if asked and local and asked != local:
            return [
                f"The local model {local} answered, not {asked}: no API key or base URL is "
                "set (see %chat config)."
            ]
        return []
    if not asked or not answered or answered == asked:
        return []
    base = _SNAPSHOT.sub("", answered)
    # Same model: a dated snapshot, Ollama's ":latest" tag, a provider-prefixed name.
    if (
        base == asked
        or answered.startswith((asked + "-", asked + ":"))
        or asked.endswith("/" + answered)
    ):
        return []
    return [f"{answered} answered; {asked} was asked for."]


def _drop_unanswered_tool_calls(entries: list[_Entry], checkpoint: int) -> None:
    """Remove a trailing assistant tool_calls message whose calls have no tool answers."""
    while len(entries) > checkpoint:
        last = entries[-1].message
        if last.get("role") == "assistant" and last.get("tool_calls"):
            del entries[-1]
            continue
        if last.get("role") == "tool":
            # Keep only complete rounds: find the assistant message these answer.
            i = len(entries) - 1
            while i > checkpoint and entries[i].message.get("role") == "tool":
                i -= 1
            calls = entries[i].message.get("tool_calls") or []
            answered = {e.message.get("tool_call_id") for e in entries[i + 1 :]}
            if {c["id"] for c in calls} <= answered:
                return
            del entries[i:]
            continue
        return


def _validate_messages(messages: Iterable[dict[str, Any]]) -> None:
    from pydantic import TypeAdapter, ValidationError

    from ..protocol.types import Message

    adapter = TypeAdapter(list[Message])
    try:
        adapter.validate_python(list(messages))
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in error["loc"])
        raise ValueError(f"Invalid message at {where}: {error['msg']}") from None


#: The last Reply any conversation produced (a cell's, too); ``nbchat.last`` reads it.
last_completion: Reply | None = None


def _set_last(reply: Reply) -> None:
    global last_completion
    last_completion = reply
