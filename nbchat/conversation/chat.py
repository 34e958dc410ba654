"""Chat: one conversation — its messages, its settings, and the send/stream/tool loop.

It prints nothing. Whoever wants to watch a reply form passes a listener; a failed call leaves
the history as it was, except that an interrupted stream's partial reply is kept, marked.
"""

from __future__ import annotations

import json
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..protocol.exceptions import BadRequestError, IncompleteStreamError, RequestValidationError
from ..protocol.listener import ChatListener
from ..protocol.types import ChatCompletion, ChatCompletionChunk
from ..transport.prepared import PreparedRequest

__all__ = ["Chat", "NbchatNote", "Reply"]

FORMAT_VERSION = 1


class NbchatNote(UserWarning):
    """How a request was fitted to its server, or why a reply is not what was asked for."""


@dataclass
class _Plan:
    """One send's request fields, new content, tools and parser, shared by its rounds."""

    params: dict[str, Any]
    content: Any
    stream: bool
    toolbox: dict[str, Any] | None
    parse: Callable[[ChatCompletion], Any] | None
    #: send(cache=...): None follows the conversation's, then %config Chat.cache.
    cache: bool | None = None


@dataclass
class _Entry:
    message: dict[str, Any]
    interrupted: bool = False
    #: How an assistant message came about (``Reply.metadata``), kept by ``to_json``.
    meta: dict[str, Any] | None = None


@dataclass
class Reply:
    """What one ``send`` produced: the final completion, and everything about how it came."""

    completion: ChatCompletion
    completions: list[ChatCompletion] = field(default_factory=list)
    #: The body of the last request sent (``prepared.body``).
    request: dict[str, Any] = field(default_factory=dict)
    #: The last request sent, as ``Chat.prepare`` built it (URL, masked headers, body, notes).
    prepared: PreparedRequest | None = None
    parsed: Any = None
    tool_results: list[Any] = field(default_factory=list)
    interrupted: bool = False
    elapsed: float = 0.0
    time_to_first_token: float | None = None
    #: Streamed chunks that carried output, for servers that report no usage in streams.
    output_chunks: int = 0
    notes: list[str] = field(default_factory=list)
    #: The kind of server that answered (``client.profile.kind``).
    server: str | None = None

    @property
    def metadata(self) -> dict[str, Any]:
        """How this answer was obtained, as a saved notebook records it (``metadata["nbchat"]``).

        ``request_hash`` is the prepared request's key; ``model`` the one the server reported.
        """
        from .._version import __version__

        completion = self.completion
        body = self.request
        usage = completion.usage.to_dict() if completion.usage is not None else None
        return {
            "request_hash": self.prepared.key if self.prepared is not None else None,
            "model": completion.model or None,
            "system_fingerprint": completion.system_fingerprint,
            "seed": body.get("seed"),
            "temperature": body.get("temperature"),
            "usage": usage,
            "latency": round(self.elapsed, 3) if self.elapsed else None,
            "version": __version__,
            "server": self.server,
        }

    #: True when nothing was sent: every round came from the response cache or a cassette.
    cached: bool = False
    #: US dollars billed for this reply (all rounds); None when the price is unknown.
    cost: float | None = None
    #: For a cached reply, where and when the original came from (``nbchat.store`` Origin).
    origin: Any = None

    @property
    def content(self) -> str | None:
        """The answer's text, without a reasoning model's leading ``<think>`` block."""
        from ..convert.reasoning import split_think

        return split_think(self.completion.content)[1]

    @property
    def reasoning(self) -> str | None:
        """A reasoning model's thinking (``reasoning_content``, ``reasoning`` or ``<think>``)."""
        from ..convert.reasoning import reasoning_of

        if not self.completion.choices:
            return None
        return reasoning_of(self.completion.choices[0].message)

    @property
    def audio(self) -> Any:
        """A spoken reply (``nbchat.convert.audio.SpokenReply``: the audio's bytes, its
        transcript, its id and expiry, ``player()``), or None."""
        from ..convert.audio import spoken_reply

        if not self.completion.choices:
            return None
        asked = self.request.get("audio")
        fmt = asked.get("format") if isinstance(asked, dict) else None
        return spoken_reply(self.completion.choices[0].message.audio, fmt)

    @property
    def citations(self) -> list[Any]:
        """The web sources the reply cites (``url_citation`` annotations), numbered as shown:
        ``Citation(number, url, title, start, end, text)``."""
        from ..convert.citations import citations_of

        if not self.completion.choices:
            return []
        return citations_of(self.completion.choices[0].message)

    @property
    def value(self) -> Any:
        """The parsed object for structured replies, the text otherwise."""
        return self.parsed if self.parsed is not None else self.content

    def __str__(self) -> str:
        return self.content or ""

    def __getattr__(self, name: str) -> Any:
        # A Reply reads as its final completion too (``nbchat.last.usage``, ``.choices``):
        # nbchat.last was the ChatCompletion before it was the Reply.
        if name.startswith("_") or name == "completion":
            raise AttributeError(name)
        return getattr(self.completion, name)

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        from ..render.bundles import reply_bundle, reply_metadata

        # (data, metadata): a saved notebook records how the answer came (metadata["nbchat"]).
        return reply_bundle(self), reply_metadata(self)


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
        client: Any = None,
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
        self._inflight: Any = None
        self._tool_policy: Any = None
        self._lock = threading.RLock()
        self.last: ChatCompletion | None = None
        self.last_reply: Reply | None = None
        if system:
            self.system = system

    # -- history ------------------------------------------------------------------------------

    @property
    def lock(self) -> threading.RLock:
        """The lock every ``send`` holds. Hold it to read the conversation and send with no
        other send in between (the panel does, to know where its exchange starts)."""
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
            if self._entries[i].message.get("role") == "user":
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
    def from_json(cls, text: str | bytes, *, client: Any = None) -> Chat:
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
    def client(self) -> Any:
        if self._client is None:
            from .endpoint import default_client

            self._client = default_client()
        return self._client

    @client.setter
    def client(self, client: Any) -> None:
        self._client = client
        self._client_chosen = client is not None

    @property
    def tool_policy(self) -> Any:
        """Which tools the user approved with "always" in this conversation."""
        if self._tool_policy is None:
            from .toolrun import ToolPolicy

            self._tool_policy = ToolPolicy()
        return self._tool_policy

    def use_client_unless_chosen(self, client: Any) -> None:
        """Use ``client`` unless the user set one on this conversation themselves."""
        if not self._client_chosen:
            self._client = client

    def prepare(
        self,
        content: Any = None,
        *,
        stream: bool | None = None,
        tools: Sequence[Any] | None = None,
        images: Sequence[Any] = (),
        data: Sequence[Any] = (),
        detail: str | None = None,
        schema: Any = None,
        json: bool = False,
        **overrides: Any,
    ) -> PreparedRequest:
        """The exact request ``send`` would put on the wire first, without sending it.

        It takes the arguments of ``send``; the result holds the method, URL, headers (the key
        masked) and body after settings, attachments, tools, structured output, stream options
        and the server's adaptations, and ``notes`` on how the request was fitted to the server.
        """
        plan = self._plan(content, stream, tools, images, data, detail, schema, json, overrides)
        messages = self.messages
        if plan.content is not None:
            messages.append({"role": "user", "content": plan.content})
        return self._prepare_round(plan, messages)

    def request_body(
        self, content: Any = None, *, stream: bool | None = None, **overrides: Any
    ) -> dict[str, Any]:
        """The body of ``prepare(...)``: the JSON ``send`` would post."""
        return self.prepare(content, stream=stream, **overrides).body

    def send(
        self,
        content: Any = None,
        *,
        stream: bool | None = None,
        listener: ChatListener | None = None,
        tools: Sequence[Any] | None = None,
        max_rounds: int | None = None,
        confirm: Any = None,
        parse: Callable[[ChatCompletion], Any] | None = None,
        images: Sequence[Any] = (),
        data: Sequence[Any] = (),
        detail: str | None = None,
        schema: Any = None,
        json: bool = False,
        cache: bool | None = None,
        **overrides: Any,
    ) -> Reply:
        """Send ``content`` as the next user message and return the Reply.

        ``content`` is a string or a list of content parts; None sends the history as it is
        (to continue after tool results or an interruption). ``tools`` are functions or Tool
        objects the model may call; their calls run and are answered until a final reply, at
        most ``max_rounds`` rounds. ``confirm`` is True (ask with input()) or a callback
        ``(tool, arguments) -> "yes" | "no" | "always"`` asked before every tool runs; tools
        made with ``confirm=True`` are asked about regardless. ``parse`` turns the final
        completion into ``reply.parsed``. ``images`` (PIL images, arrays, figures, paths,
        bytes, URLs) and ``data`` (DataFrames, dicts, lists…) are attached to the message;
        ``detail`` is the images' detail (low, high, auto). ``json=True`` asks for a JSON
        object and ``schema`` (a pydantic model class or a JSON-schema dict) for a reply of
        that shape (strict json_schema); ``reply.parsed`` then holds the validated instance
        or object, and a reply that is not valid raises StructuredOutputError (with
        ``.reply``), never passing as valid. ``cache=True`` answers a request seen before
        from the store (``reply.cached``). ``recordings`` (WAV/MP3 bytes or paths, arrays of
        samples with ``sample_rate``, IPython Audio) and ``files`` (paths, bytes, uploaded
        file ids) are attached too; ``allowed_tools=[names]`` limits the model to some of
        ``tools``; ``modalities``/``audio`` ask for a spoken reply (``reply.audio``). Every
        request is built by ``prepare``.

        Sends to one conversation are serialised: a panel and a cell never interleave.
        """
        with self._lock:
            reply = self._send(
                content,
                stream=stream,
                listener=listener or ChatListener(),
                tools=tools,
                max_rounds=max_rounds,
                confirm=confirm,
                parse=parse,
                images=images,
                data=data,
                detail=detail,
                schema=schema,
                json=json,
                cache=cache,
                overrides=overrides,
            )
        if listener is None:
            # Plain Python has no display: what the notes say would otherwise go unseen.
            for note in reply.notes:
                warnings.warn(note, NbchatNote, stacklevel=2)
        return reply

    def _send(
        self,
        content: Any,
        *,
        stream: bool | None,
        listener: ChatListener,
        tools: Sequence[Any] | None,
        max_rounds: int | None,
        confirm: Any,
        parse: Callable[[ChatCompletion], Any] | None,
        images: Sequence[Any],
        data: Sequence[Any],
        detail: str | None,
        schema: Any,
        json: bool,
        cache: bool | None,
        overrides: dict[str, Any],
    ) -> Reply:
        plan = self._plan(content, stream, tools, images, data, detail, schema, json, overrides)
        plan.cache = cache
        if plan.parse is not None and parse is not None:
            raise RequestValidationError("Pass parse=... or a schema, not both", field="parse")
        parse = plan.parse or parse
        checkpoint = len(self._entries)
        if plan.content is not None:
            self._entries.append(_Entry({"role": "user", "content": plan.content}))
        reply = Reply(completion=ChatCompletion())
        self._inflight = None
        started = time.perf_counter()
        rounds_left = max_rounds
        if rounds_left is None:
            from ..convert.tools import MAX_ROUNDS

            rounds_left = MAX_ROUNDS
        try:
            while True:
                prepared = self._prepare_round(plan, self.messages)
                completion = self._one_request(prepared, plan, listener, reply, started)
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
                results = self._answer_tool_calls(calls, plan.toolbox, confirm, reply)
                listener.on_tool_results(results)
        except KeyboardInterrupt:
            self._keep_partial(checkpoint, reply)
            raise
        except IncompleteStreamError as exc:
            reply.completion = exc.completion or reply.completion
            self._keep_partial(checkpoint, reply)
            raise
        except BaseException:
            self._inflight = None
            del self._entries[checkpoint:]
            raise
        reply.elapsed = time.perf_counter() - started
        reply.server = self.client.profile.kind
        reply.notes.extend(
            note
            for note in _model_notes(
                plan.params.get("model"), reply.completion, self.client.profile
            )
            if note not in reply.notes
        )
        if len(self._entries) > checkpoint and self._entries[-1].message.get("role") == "assistant":
            self._entries[-1].meta = reply.metadata
        self.last_reply = reply
        _set_last(reply)
        if parse is not None:
            try:
                reply.parsed = parse(reply.completion)
            except Exception as exc:
                # The exchange happened and stays in history; the caller still gets the reply.
                exc.reply = reply  # type: ignore[attr-defined]
                raise
        return reply

    def _answer_tool_calls(
        self, calls: list[Any], toolbox: dict[str, Any], confirm: Any, reply: Reply
    ) -> list[Any]:
        """Run one round of tool calls and append one tool message per call."""
        from .toolrun import ToolPolicy, ToolRunInterrupted, run_tool_calls

        policy = self.tool_policy
        if callable(confirm):
            # A callback given for this call is asked before every tool; "always" answers
            # still reach the conversation's policy.
            policy = ToolPolicy(confirm_all=True, approved=policy.approved)
        interrupted: ToolRunInterrupted | None = None
        try:
            results = run_tool_calls(calls, toolbox, confirm=confirm, policy=policy)
        except ToolRunInterrupted as exc:
            # Every call is answered (the unfinished ones as interrupted): keep them too.
            results, interrupted = exc.results, exc
        for result in results:
            self._entries.append(_Entry(result.message()))
        reply.tool_results.extend(results)
        if interrupted is not None:
            raise interrupted
        return results

    def _plan(
        self,
        content: Any,
        stream: bool | None,
        tools: Sequence[Any] | None,
        images: Sequence[Any],
        data: Sequence[Any],
        detail: str | None,
        schema: Any,
        json: bool,
        overrides: dict[str, Any],
    ) -> _Plan:
        """What every round of one send shares: fields, tools, attachments, the parser."""
        overrides = dict(overrides)
        parse = None
        if schema is not None or json:
            parse = _structured_parser(schema, json, overrides)
        # Recordings and files (input_audio and file parts) come as send(recordings=[...],
        # files=[...], sample_rate=...), beside images and data.
        recordings = overrides.pop("recordings", None) or ()
        files = overrides.pop("files", None) or ()
        sample_rate = overrides.pop("sample_rate", None)
        if images or data or recordings or files:
            from ..convert.content import build_content

            content, _ = build_content(
                content or "",
                images=images,
                data=data,
                detail=detail,
                recordings=recordings,
                files=files,
                sample_rate=sample_rate,
            )
        params = self._params(overrides)
        toolbox = None
        if tools:
            from ..convert.tools import tools_by_name

            toolbox = tools_by_name(tools)
            params["tools"] = [tool.definition() for tool in toolbox.values()]
        # A tool's name forces that tool (a function or a custom tool), as --tool-choice NAME
        # does in a cell; allowed_tools=[names] limits the model to those tools.
        allowed = params.pop("allowed_tools", None)
        if isinstance(params.get("tool_choice"), str) or allowed is not None:
            from ..convert.tools import tool_choice_for

            params["tool_choice"] = tool_choice_for(params.get("tool_choice"), toolbox, allowed)
        use_stream = self.stream if stream is None else stream
        return _Plan(params, content, use_stream, toolbox, parse)

    def _prepare_round(self, plan: _Plan, messages: list[dict[str, Any]]) -> PreparedRequest:
        """The one place a request is built: fields, messages, stream options, adaptations."""
        from .trim import fit_history

        client = self.client
        profile = client.profile
        messages, trimmed = fit_history(messages, self.max_history_tokens)
        body = {**plan.params, "messages": messages}
        if not plan.stream:
            # A setting meant for streams (Chat.request) must not break an unstreamed call.
            body.pop("stream_options", None)
        elif "stream_options" not in body and profile.supports("stream_usage") is not False:
            # Ask for usage so the footer has token counts (a server may refuse, see below).
            body["stream_options"] = {"include_usage": True}
        body, notes = profile.adapt(body)
        if plan.stream:
            body["stream"] = True
        prepared = client.build_request(**body)
        if not (trimmed or notes):
            return prepared
        return replace(prepared, notes=(*trimmed, *prepared.notes, *notes))

    def _params(self, overrides: dict[str, Any]) -> dict[str, Any]:
        params = {**self.settings}
        for key, value in overrides.items():
            if value is None:
                params.pop(key, None)
            else:
                params[key] = value
        if not params.get("model"):
            params["model"] = self._default_model()
        return params

    def _default_model(self) -> str:
        client = self.client
        profile = client.profile
        if profile.default_model:
            return profile.default_model
        # A server that serves one model (Ollama, LM Studio, vLLM often do) names it itself.
        try:
            listed = list(client.models())
        except Exception:
            listed = []
        if len(listed) == 1:
            profile.remember_model(listed[0])
            return listed[0]
        hint = ""
        if listed:
            shown = ", ".join(listed[:5]) + (", …" if len(listed) > 5 else "")
            hint = f" (the server lists {len(listed)}: {shown})"
        raise RequestValidationError(
            f"No model is set{hint}: pass model=..., -m on the cell, or %config Chat.model = '...'",
            field="model",
        )

    def _one_request(
        self,
        prepared: PreparedRequest,
        plan: _Plan,
        listener: ChatListener,
        reply: Reply,
        started: float,
    ) -> ChatCompletion:
        client = self.client
        for note in prepared.notes:
            if note not in reply.notes:
                reply.notes.append(note)
        reply.prepared = prepared
        reply.request = prepared.body
        listener.on_request(prepared.body)
        from ..store.exchange import answer

        # The store answers from a cassette or the cache, or sends (below), and logs it.
        return answer(
            prepared,
            client=client,
            session=self.name,
            cache=self.cache if plan.cache is None else plan.cache,
            listener=listener,
            reply=reply,
            send=lambda watch: self._send_now(prepared, plan, watch, reply, started),
        )

    def _send_now(
        self,
        prepared: PreparedRequest,
        plan: _Plan,
        listener: ChatListener,
        reply: Reply,
        started: float,
    ) -> ChatCompletion:
        client = self.client
        tried: set[str] = set()
        while True:
            try:
                if not prepared.stream:
                    completion = client.send_completion(prepared)
                    listener.on_completion(completion)
                    return completion
                stream = client.send_stream(prepared)
                break
            except BadRequestError as exc:
                # A server that lacks a feature the request uses: learned once for the
                # endpoint (every conversation on it stops asking), sent again without it.
                note = client.profile.fallback(exc, prepared.body)
                if note is None or note in tried:
                    raise
                tried.add(note)
                reply.notes.append(note)
                prepared = self._prepare_round(plan, self.messages)
                reply.prepared = prepared
                reply.request = prepared.body
        self._inflight = stream
        try:
            with stream:
                for chunk in stream:
                    if _has_output(chunk):
                        reply.output_chunks += 1
                        if reply.time_to_first_token is None:
                            reply.time_to_first_token = time.perf_counter() - started
                    listener.on_chunk(chunk, stream)
        except IncompleteStreamError as exc:
            explain = client.profile.explain_broken_stream
            if explain is None or stream.completion.choices:
                raise
            # Some servers drop a stream they cannot serve without saying why; ask again.
            real = explain(client, prepared.body)
            if real is None:
                raise
            self._inflight = None
            raise real from exc
        self._inflight = None
        completion = stream.completion
        if completion.usage is not None and "stream_options" in prepared.body:
            client.profile.learn("stream_usage", True)
        listener.on_completion(completion)
        return completion

    def _keep_partial(self, checkpoint: int, reply: Reply) -> None:
        """After an interruption: keep complete tool rounds and the partial text, marked."""
        stream, self._inflight = self._inflight, None
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


def _has_output(chunk: ChatCompletionChunk) -> bool:
    for choice in chunk.choices or ():
        delta = choice.delta
        if delta.content or delta.refusal or delta.tool_calls:
            return True
    return False


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


def _model_notes(asked: Any, completion: ChatCompletion, profile: Any) -> list[str]:
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
