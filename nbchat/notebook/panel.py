"""The chat panel: an ipywidgets VBox over one named conversation, streaming in a thread.

``panel("x")`` and ``%%chat --session x`` share one Chat (whose sends are serialised); replies,
tool calls, history and errors are shown with the same bundles as the magic.

Enter sends, Shift+Enter adds a line. ipywidgets sends no key events from a Textarea, so the
panel displays a few lines of JavaScript (in its own Output widget, which JupyterLab trusts) that
turn a plain Enter in the prompt into an end-of-prompt mark appended to the text; the kernel sees
the mark in the synced value and sends. The mark travels in the same widget state as the text, so
the last keystrokes can never arrive after the send. Where front-end JavaScript does not run, the
Send button does the same.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
import weakref
from typing import Any

from ..conversation.chat import Chat, Reply
from ..render.bundles import (
    error_bundle,
    footer_text,
    history_bundle,
    message_bundle,
    reply_bundle,
    turn_heading,
)
from ..render.live import LiveView
from ..render.markdown import escape, html_bundle, markdown_bundle, output_html, thumbnail
from .widgets import VBox, fallback_bundle, ipywidgets_module, output, widget_view_bundle

__all__ = ["ChatPanel", "StopRequested", "panel"]

# Appended to the prompt by the front end when Enter (without Shift) is pressed: a private-use
# character nobody types.
SEND_MARK = "\ue000"
LOGPROB_ALTERNATIVES = 5
#: The conversation's height in JupyterLab's side area: what a 250 px wide panel's controls
#: (about 540 px there) leave of the window, and never less than a few lines.
SIDE_CONVERSATION_HEIGHT = "max(160px, calc(100vh - 560px))"
#: One line of ipywidgets' controls.
_LINE = "var(--jp-widgets-inline-height, 28px)"
_SIDECAR_HINT = (
    "nbchat.panel(sidecar=True) needs the sidecar package (JupyterLab's side area): "
    "pip install sidecar, or pip install 'nbchat[notebooks]'"
)

_ENTER_TO_SEND_JS = """
(function () {
  if (window.__nbchatEnterToSend) { return; }
  window.__nbchatEnterToSend = true;
  document.addEventListener('keydown', function (event) {
    if (event.key !== 'Enter' || event.shiftKey || event.isComposing) { return; }
    var area = event.target;
    if (!area || area.tagName !== 'TEXTAREA' || !area.closest('.nbchat-prompt')) { return; }
    event.preventDefault();
    event.stopPropagation();
    area.value = area.value + '\\ue000';
    area.dispatchEvent(new Event('input', {bubbles: true}));
  }, true);
})();
"""


class StopRequested(KeyboardInterrupt):
    """Raised inside the streaming thread when Stop is pressed.

    A KeyboardInterrupt, so that Chat keeps the partial reply, marked, as for a real interrupt.
    """


def panel(
    session: str | None = None,
    *,
    client: Any = None,
    sidecar: bool | str = False,
    tools: Any = None,
) -> ChatPanel:
    """A chat panel on the conversation ``session`` (the magic's ``--session``; default
    "default"). ``client`` is the server to talk to; otherwise the magic's settings choose it.
    ``tools`` (functions, Tools, ``nbchat.mcp("time")``) are offered with every message; a tool
    that asks for approval is not run from the panel, which cannot ask (the model is told).

    The panel is an ipywidgets widget: display it, or put it in a layout
    (``HBox([nbchat.panel(), plot])``). ``sidecar=True`` (or a tab title) opens it in
    JupyterLab's side area instead, with the ``sidecar`` package.
    """
    if sidecar:
        _sidecar_class()  # say what is missing before anything is made
    made = ChatPanel(session or "default", client=client, tools=tools)
    if sidecar:
        made.open_in_sidecar(None if sidecar is True else str(sidecar))
    return made


def _no_one_to_ask(tool: Any, arguments: dict[str, Any]) -> Any:
    """The panel's answer for tools: run those that need no approval, refuse the others (the
    panel sends from a thread, where nobody can be asked)."""
    from ..conversation.toolrun import Decision

    if not tool.confirm:
        return Decision("yes", "")
    message = f"{tool.name} needs the user's approval, which the chat panel cannot ask for; not run"
    return Decision("no", "nobody", message)


def _sidecar_class() -> Any:
    try:
        from sidecar import Sidecar
    except ImportError:
        raise ImportError(_SIDECAR_HINT) from None
    return Sidecar


class _Area:
    """A display handle over one HTML widget of the live turn; LiveView updates it.

    An HTML widget, not an Output widget's outputs: the front end replaces an HTML widget's
    content at once, where an Output re-renders its outputs asynchronously, emptying the area
    for a moment, and the scrolling conversation would lose the place the user scrolled to.
    The HTML is nbchat's own bundle's, built by the one renderer (outside text escaped).
    """

    def __init__(self, widget: Any) -> None:
        self.widget = widget

    def update(
        self, bundle: dict[str, str], raw: bool = True, metadata: dict[str, Any] | None = None
    ) -> None:
        self.widget.value = _live_html(bundle)


class _PanelListener(LiveView):
    """The magic's live rendering, into the panel's live area, ending early when Stop is set."""

    def __init__(self, owner: ChatPanel, *, rate: float) -> None:
        super().__init__(mode="live", rate=rate, display=self._display_into)
        self._owner = owner

    def _display_into(
        self,
        bundle: dict[str, str],
        raw: bool = True,
        display_id: Any = None,
        metadata: dict[str, Any] | None = None,
    ) -> _Area:
        return self._owner._live_area(bundle)

    def on_request(self, body: dict[str, Any]) -> None:
        if self._owner._stop.is_set():
            raise StopRequested

    def on_chunk(self, chunk: Any, stream: Any) -> None:
        if self._owner._stop.is_set():
            raise StopRequested
        super().on_chunk(chunk, stream)


class ChatPanel(VBox):
    """The chat panel, an ipywidgets VBox: display it, or put it in a layout.

    ``.widget`` is the panel itself (an alias kept from when the panel held its VBox).
    ``send(text)`` sends a message as the Send button does; the ipywidgets messages that
    ``Widget.send`` carries (``focus()``, ``blur()``: dicts) still reach the front end.
    """

    def __init__(
        self,
        session: str = "default",
        *,
        client: Any = None,
        chat: Chat | None = None,
        shell: Any = None,
        list_models: bool = True,
        updates_per_second: float = 10.0,
        tools: Any = None,
        **kwargs: Any,
    ) -> None:
        w = ipywidgets_module()
        from ..conversation.sessions import session as get_session

        self.chat = chat if chat is not None else get_session(session)
        self._shell = shell if shell is not None else _current_shell()
        settings = _magic_settings(self._shell)
        if client is not None:
            self.chat.client = client
        elif settings is not None:
            from ..conversation.sessions import client_for

            self.chat.use_client_unless_chosen(client_for(settings))
        if (
            settings is not None
            and len(self.chat) == 0
            and settings.system
            and not self.chat.system
        ):
            self.chat.system = settings.system
        self._rate = updates_per_second
        from ..convert.tools import tools_by_name

        # Checked now: a tool that cannot be one fails here, not at the first message.
        self.tools = list(tools_by_name(tools).values()) if tools else []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.attachments: list[Any] = []
        # Rendered exchanges sent from this panel, and errors: (start, messages, bundles).
        self._exchanges: list[tuple[int, list[dict[str, Any]], list[dict[str, str]]]] = []
        self._errors: list[tuple[int, list[dict[str, Any]], list[dict[str, str]]]] = []
        self._seen: tuple[int, Any] = (-1, None)
        self._tokens_used = 0
        self._counted: Any = None
        # Display ids of the text fallbacks shown with the panel, kept up to date (see display).
        self._records: list[str] = []
        self._record: dict[str, Any] | None = None
        self.sidecar: Any = None
        self.explorer: Any = None

        defaults = self.chat.settings
        model = defaults.get("model") or (settings.model if settings is not None else "") or ""
        temperature = defaults.get("temperature")
        if temperature is None and settings is not None:
            temperature = settings.temperature
        max_tokens = defaults.get("max_tokens")
        if max_tokens is None and settings is not None:
            max_tokens = settings.max_tokens

        self.title = w.HTML(self._title_html())
        # Each control may shrink to what a 250 px side area leaves and wraps to the next line
        # (min_width 0: a flex item would otherwise keep its content's width and overflow).
        self.model = w.Combobox(
            value=model,
            placeholder="model (server default)",
            options=[],
            ensure_option=False,
            description="Model",
            style={"description_width": "initial"},
            layout=w.Layout(flex="1 1 300px", min_width="0", max_width="480px"),
        )
        self.temperature_on = w.Checkbox(
            value=temperature is not None, description="temperature", indent=False
        )
        self.temperature_on.layout.width = "auto"
        self.temperature = w.FloatSlider(
            value=1.0 if temperature is None else float(temperature),
            min=0.0,
            max=2.0,
            step=0.05,
            readout_format=".2f",
            disabled=temperature is None,
            layout=w.Layout(flex="1 1 150px", min_width="120px", max_width="260px"),
        )
        # Off means the request sets none (the server's own limit), as for the temperature.
        self.max_tokens_on = w.Checkbox(
            value=bool(max_tokens), description="max tokens", indent=False
        )
        self.max_tokens_on.layout.width = "auto"
        self.max_tokens = w.BoundedIntText(
            value=int(max_tokens or 1024),
            min=1,
            max=1_000_000,
            disabled=not max_tokens,
            layout=w.Layout(width="90px"),
        )
        self.json_mode = w.ToggleButton(value=False, description="JSON", tooltip="JSON mode")
        self.logprobs = w.ToggleButton(
            value=False, description="logprobs", tooltip="Ask for token probabilities"
        )
        self.explore_button = w.ToggleButton(
            value=False,
            description="Explore",
            tooltip="Token probabilities of the last reply",
            icon="search",
        )
        for button in (self.json_mode, self.logprobs, self.explore_button):
            button.layout.width = "auto"
        self.system = w.Textarea(
            value=self.chat.system or "",
            placeholder="System prompt (empty: none)",
            continuous_update=False,
            layout=w.Layout(width="100%"),
        )
        system_box = w.Accordion(children=[self.system])
        system_box.set_title(0, "System prompt")
        system_box.selected_index = None

        self.conversation = w.Output(layout=w.Layout(flex="0 0 auto"))
        self.conversation.add_class("nbchat-conversation")
        # The turn being answered streams inside the scrolling conversation, under the others:
        # the box keeps its height while a reply streams, so Send and Stop stay where they are.
        self.live = w.VBox([], layout=w.Layout(flex="0 0 auto"))
        self.live.add_class("nbchat-live")
        # A scroll box that is a reversed flex column starts scrolled to its end and stays there
        # as turns are added and a reply grows (unless the user scrolls up): the newest text is
        # the text in view.
        self.scroller = w.Box(
            [w.VBox([self.conversation, self.live], layout=w.Layout(flex="0 0 auto"))],
            layout=w.Layout(
                height="min(420px, 55vh)",
                overflow="auto",
                display="flex",
                flex_flow="column-reverse",
            ),
        )
        self.scroller.add_class("nbchat-scroller")
        # A line each, empty or not: a status coming and going must not move what is below.
        self.footer = w.HTML("", layout=w.Layout(min_height=_LINE))
        self.footer.add_class("nbchat-panel-footer")

        self.upload = w.FileUpload(accept="image/*", multiple=True, description="Image")
        self.image_var = w.Dropdown(
            options=[],
            description="or variable",
            style={"description_width": "initial"},
            layout=w.Layout(flex="1 1 180px", min_width="0", max_width="280px"),
        )
        self.attach_button = w.Button(description="Attach", tooltip="Attach the chosen image")
        self.clear_attachments = w.Button(description="Clear images", tooltip="Remove attachments")
        for button in (self.attach_button, self.clear_attachments):
            button.layout.width = "auto"
        self.thumbnails = w.HTML("")
        self.thumbnails.add_class("nbchat-thumbnails")

        self.prompt = w.Textarea(
            placeholder="Message — Enter sends, Shift+Enter adds a line",
            continuous_update=True,
            rows=3,
            layout=w.Layout(flex="1 1 200px", min_width="0", width="auto"),
        )
        self.prompt.add_class("nbchat-prompt")
        self.send_button = w.Button(description="Send", button_style="primary", icon="paper-plane")
        self.send_button.add_class("nbchat-send")
        # A plain button: a disabled coloured one fades below a readable contrast.
        self.stop_button = w.Button(description="Stop", icon="stop", tooltip="Stop the reply")
        self.stop_button.add_class("nbchat-stop")
        self.stop_button.disabled = True
        for button in (self.send_button, self.stop_button):
            # Never narrower than their labels.
            button.layout = w.Layout(width="auto", min_width="5.5em", flex="0 0 auto")
        self.status = w.HTML("", layout=w.Layout(min_height=_LINE))
        self.status.add_class("nbchat-status")
        self.explorer_area = w.VBox([])
        self.explorer_area.add_class("nbchat-explorer-area")
        self._keys = w.Output(layout=w.Layout(height="0px", overflow="hidden"))
        self._keys.outputs = (output({"application/javascript": _ENTER_TO_SEND_JS}),)

        row = {"flex_flow": "row wrap", "align_items": "center", "min_width": "0"}
        controls = w.HBox(
            [
                self.model,
                w.HBox(
                    [self.temperature_on, self.temperature],
                    layout=w.Layout(flex="1 1 auto", min_width="0", align_items="center"),
                ),
                w.HBox([self.max_tokens_on, self.max_tokens], layout=w.Layout(**row)),
                self.json_mode,
                self.logprobs,
                self.explore_button,
            ],
            layout=w.Layout(**row),
        )
        images = w.HBox(
            [self.upload, self.image_var, self.attach_button, self.clear_attachments],
            layout=w.Layout(**row),
        )
        # Beside the message box, or under it where the panel is too narrow for both.
        buttons = w.Box(
            [self.send_button, self.stop_button],
            layout=w.Layout(display="flex", flex_flow="column", flex="0 0 auto"),
        )
        super().__init__(
            [
                self.title,
                controls,
                system_box,
                self.scroller,
                self.explorer_area,
                images,
                self.thumbnails,
                w.HBox(
                    [self.prompt, buttons],
                    layout=w.Layout(width="100%", flex_flow="row wrap", align_items="flex-start"),
                ),
                self.status,
                self.footer,
                self._keys,
            ],
            layout=w.Layout(
                border="1px solid var(--jp-border-color2, #8884)",
                padding="6px",
                min_width="0",
                max_width="100%",
            ),
            **kwargs,
        )
        self.add_class("nbchat-panel")

        self.prompt.observe(self._on_prompt, names="value")
        self.send_button.on_click(lambda _: self.send())
        self.stop_button.on_click(lambda _: self.stop())
        self.system.observe(self._on_system, names="value")
        self.temperature_on.observe(self._on_temperature_on, names="value")
        self.max_tokens_on.observe(self._on_max_tokens_on, names="value")
        self.max_tokens.observe(self._on_max_tokens, names="value")
        self.upload.observe(self._on_upload, names="value")
        self.attach_button.on_click(lambda _: self.attach_variable())
        self.clear_attachments.on_click(lambda _: self.clear_images())
        self.explore_button.observe(self._on_explore, names="value")

        self.refresh()
        self._hook_cells()
        if list_models:
            threading.Thread(target=self.load_models, daemon=True).start()

    # -- display ------------------------------------------------------------------------------

    @property
    def widget(self) -> ChatPanel:
        return self

    def __repr__(self) -> str:
        return f"ChatPanel(session={self.chat.name!r}, messages={len(self.chat)})"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        return widget_view_bundle(self, repr(self))

    def _ipython_display_(self) -> None:
        """The widget, then a text fallback of the conversation for viewers without widgets.

        A front end with widgets shows the panel and hides the fallback; nbconvert's HTML
        export and GitHub show the fallback. It is updated (by display id) after every
        exchange, so that a saved or exported notebook holds the conversation so far.
        """
        from IPython.display import display

        if self.sidecar is not None:
            note = f"The nbchat panel on conversation '{self.chat.name}' is in the side area."
            display(html_bundle(f"<small>{escape(note)}</small>", note), raw=True)
        else:
            # Where the widget cannot show, this line says what was here; the record follows.
            name = self.chat.name
            stand_in = f"nbchat panel on conversation '{name}' (a widget; the conversation follows)"
            display(widget_view_bundle(self, stand_in), raw=True)
        display_id = f"nbchat-panel-{uuid.uuid4().hex}"
        self._record = self.record_bundle()
        display(self._record, raw=True, display_id=display_id)
        self._records.append(display_id)

    def record_bundle(self) -> dict[str, Any]:
        """The conversation as the text fallback shows it (text/html and text/plain)."""
        return fallback_bundle(history_bundle(self.chat))

    def _update_records(self) -> None:
        if not self._records:
            return
        record = self.record_bundle()
        if record == self._record:
            return
        self._record = record
        from IPython.display import update_display

        for display_id in self._records:
            update_display(record, raw=True, display_id=display_id)

    def open_in_sidecar(self, title: str | None = None) -> Any:
        """Show the panel in JupyterLab's side area (the ``sidecar`` package); returns it."""
        sidecar = _sidecar_class()(title=title or f"nbchat · {self.chat.name}")
        # The side area is the window's height: the conversation takes what the controls,
        # wrapped onto more lines there, leave, so the message box is in view.
        self.scroller.layout.height = SIDE_CONVERSATION_HEIGHT
        sidecar.outputs = (output(self._repr_mimebundle_()),)
        self.sidecar = sidecar
        return sidecar

    def _title_html(self) -> str:
        # FontAwesome's icon, which ipywidgets ships (an emoji shows as a box without a font).
        return (
            '<i class="fa fa-comments" aria-hidden="true"></i> <b>nbchat</b> — conversation '
            f"<code>{escape(self.chat.name)}</code>"
        )

    # -- models -------------------------------------------------------------------------------

    def load_models(self) -> list[str]:
        """Fill the model picker from the server's model list; on failure it stays free text."""
        try:
            from ..transport.client import Client

            client = self.chat.client
            listed = client.models() if isinstance(client, Client) else []
            names = sorted(str(name) for name in listed)
        except Exception:
            return []
        self.model.options = names
        if not self.model.value and len(names) == 1:
            self.model.value = names[0]
        return names

    # -- sending ------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def request_fields(self) -> dict[str, Any]:
        """The per-message request fields the controls set (None leaves the conversation's)."""
        fields: dict[str, Any] = {}
        model = self.model.value.strip()
        if model:
            fields["model"] = model
        if self.temperature_on.value:
            fields["temperature"] = round(self.temperature.value, 4)
        if self.max_tokens_on.value and self.max_tokens.value:
            fields["max_tokens"] = int(self.max_tokens.value)
        if self.json_mode.value:
            fields["response_format"] = {"type": "json_object"}
        if self.logprobs.value:
            fields["logprobs"] = True
            fields["top_logprobs"] = LOGPROB_ALTERNATIVES
        return fields

    def send(self, text: Any = None, buffers: Any = None) -> threading.Thread | None:
        """Send ``text`` (default: the prompt box) with the attachments; returns the thread.

        The reply streams in a thread; a cell sending to the same conversation meanwhile waits
        for it (Chat serialises sends), and the panel waits for a cell in the same way.
        """
        if isinstance(text, dict):
            # ipywidgets' own custom messages to the front end (focus(), blur()).
            super().send(text, buffers)
            return None
        if text is None:
            text = self.prompt.value
        text = str(text).replace(SEND_MARK, "").strip()
        if self.busy:
            self.status.value = "Still answering — Stop it first."
            return None
        if not text and not self.attachments:
            self.status.value = "Write a message first."
            return None
        content: Any = text
        if self.attachments:
            content = [{"type": "text", "text": text}] if text else []
            content += [part.to_dict() for part in self.attachments]
        thumbs = [part.thumbnail for part in self.attachments if part.thumbnail]
        self.prompt.value = ""
        self.attachments = []
        self.thumbnails.value = ""
        self._stop.clear()
        if any(item["data"] == _EMPTY for item in self.conversation.outputs):
            # The first turn streams in: "no messages yet" would stand above it.
            self.conversation.outputs = ()
        self.send_button.disabled = True
        self.stop_button.disabled = False
        self.status.value = "Answering…"
        self._clear_live()
        self._live_area(_user_bundle(text, thumbs))
        self._live_area(_ASSISTANT_HEAD)
        thread = threading.Thread(
            target=self._run, args=(content, text, thumbs), daemon=True, name="nbchat-panel"
        )
        self._thread = thread
        thread.start()
        return thread

    def stop(self) -> None:
        """End the reply being streamed; what arrived so far is kept, marked as interrupted."""
        if self.busy:
            self._stop.set()
            self.status.value = "Stopping…"

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the reply in progress; True when none is running any more."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.busy

    def _run(self, content: Any, text: str, thumbs: list[str]) -> None:
        """The worker thread: send, then show the outcome. Nothing may escape it: an error
        here would end the thread silently and leave the panel stuck on "Answering"."""
        try:
            # Held from here to the exchange being remembered: a cell's send waiting for the
            # conversation cannot slip in between and be taken for part of this exchange.
            with self.chat.lock:
                start = len(self.chat)
                try:
                    status = self._exchange(content, text, thumbs, start)
                except Exception as exc:
                    self._errors.append((start, self.chat.messages[:start], [error_bundle(exc)]))
                    status = f"⚠ {escape(type(exc).__name__)}"
        finally:
            self._clear_live()
            self.send_button.disabled = False
            self.stop_button.disabled = True
        try:
            self.status.value = status
            self.refresh(force=True)
            if self.explore_button.value:
                self._show_explorer()
        except Exception as exc:
            # The conversation view itself failed to draw: say so where it would have been.
            self.conversation.outputs = (*self.conversation.outputs, output(error_bundle(exc)))
            self.status.value = f"⚠ {escape(type(exc).__name__)}"

    def _exchange(self, content: Any, text: str, thumbs: list[str], start: int) -> str:
        """One send and its rendering into ``_exchanges``/``_errors``; returns the status."""
        chat = self.chat
        listener = _PanelListener(self, rate=self._rate)
        user = _user_bundle(text, thumbs)
        try:
            extra: dict[str, Any] = {}
            if self.tools:
                extra = {"tools": self.tools, "confirm": _no_one_to_ask}
            reply = chat.send(content, listener=listener, **extra, **self.request_fields())
        except StopRequested:
            partial = chat.last_reply
            # Stopped before anything came, the last reply is an older one: nothing to show.
            if partial is not None and partial.interrupted and len(chat) > start:
                self._remember(start, [user, _assistant(reply_bundle(partial))])
            # The reply's own card says it was interrupted and kept: the status says no more.
            return "Stopped."
        except Exception as exc:
            # The same card as the magic shows; an incomplete stream also keeps its partial.
            kept: Reply | None = chat.last_reply
            if kept is None or not kept.interrupted or len(chat) == start:
                kept = None
            bundles = [user]
            if kept is not None:
                bundles.append(_assistant(reply_bundle(kept)))
            bundles.append(error_bundle(exc))
            if kept is not None:
                self._remember(start, bundles)
            else:
                self._errors.append((start, chat.messages[:start], bundles))
            return f"⚠ {escape(type(exc).__name__)}"
        self._remember(start, [user, _assistant(reply_bundle(reply))])
        return ""

    def _live_area(self, bundle: dict[str, str]) -> _Area:
        """A new area at the end of the live turn, showing ``bundle``'s HTML."""
        w = ipywidgets_module()
        area = w.HTML(_live_html(bundle))
        # Styled as JupyterLab styles rendered HTML outputs: the finished turn looks the same.
        area.add_class("jp-RenderedHTMLCommon")
        self.live.children = (*self.live.children, area)
        return _Area(area)

    def live_html(self) -> list[str]:
        """The HTML of the turn being answered, area by area (empty when none is)."""
        return [child.value for child in self.live.children]

    def _clear_live(self) -> None:
        old, self.live.children = self.live.children, ()
        for child in old:
            child.close()

    def _remember(self, start: int, bundles: list[dict[str, str]]) -> None:
        self._exchanges.append((start, self.chat.messages[start:], bundles))

    # -- the conversation view ----------------------------------------------------------------

    def refresh(self, force: bool = False) -> None:
        """Redraw the conversation from the Chat (the magic may have changed it)."""
        messages = self.chat.messages
        key = (len(messages), messages[-1] if messages else None)
        if not force and key == self._seen:
            return
        self._seen = key
        shown = self._bundles(messages) or [_EMPTY]
        self.conversation.outputs = tuple(output(b) for b in shown)
        reply = self.chat.last_reply
        self.footer.value = ""
        if reply is not None and reply.completion.choices:
            text = footer_text(
                reply.completion,
                time_to_first_token=reply.time_to_first_token,
                elapsed=reply.elapsed or None,
                counted_tokens=reply.output_chunks,
            )
            self._tokens_used += 0 if reply is self._counted else _tokens(reply)
            self._counted = reply
            used = (
                f" · {self._tokens_used} tokens used from this panel" if self._tokens_used else ""
            )
            self.footer.value = f"<small>Last reply: {escape(text)}{escape(used)}</small>"
        if self.system.value != (self.chat.system or ""):
            self.system.value = self.chat.system or ""
        self._refresh_image_variables()
        self._update_records()

    def _bundles(self, messages: list[dict[str, Any]]) -> list[dict[str, str]]:
        """What the conversation area shows: exchanges sent from here as they were shown
        live, error cards where they happened, other messages as ``%chat history`` shows them."""
        exchanges = {
            start: (len(kept), bundles)
            for start, kept, bundles in self._exchanges
            if kept and messages[start : start + len(kept)] == kept
        }
        errors: dict[int, list[dict[str, str]]] = {}
        for start, before, bundles in self._errors:
            if messages[:start] == before:
                errors.setdefault(start, []).extend(bundles)
        interrupted = set(self.chat.interrupted)
        shown: list[dict[str, str]] = []
        i = 0
        while i < len(messages):
            shown.extend(errors.pop(i, ()))
            if i in exchanges:
                count, bundles = exchanges[i]
                shown.extend(bundles)
                i += count
                continue
            shown.append(message_bundle(messages[i], i in interrupted))
            i += 1
        for bundles in errors.values():
            shown.extend(bundles)
        return shown

    def _hook_cells(self) -> None:
        """Redraw after every cell, so that %%chat turns in the same session show up here."""
        shell = self._shell
        if shell is None or not hasattr(shell, "events"):
            return
        ref = weakref.ref(self)

        def after_cell(*_: Any) -> None:
            me = ref()
            if me is None:
                with contextlib.suppress(ValueError):
                    shell.events.unregister("post_run_cell", after_cell)
                return
            if not me.busy:
                me.refresh()

        shell.events.register("post_run_cell", after_cell)
        self._after_cell: Any = after_cell

    def close(self) -> None:
        """Stop any reply, unhook from the shell and close the panel and its widgets."""
        if getattr(self, "_thread", None) is not None:
            self.stop()
        hook = getattr(self, "_after_cell", None)
        if hook is not None and self._shell is not None:
            with contextlib.suppress(ValueError):
                self._shell.events.unregister("post_run_cell", hook)
            self._after_cell = None
        for child in _descendants(self):
            child.close()
        if getattr(self, "sidecar", None) is not None:
            self.sidecar.close()
            self.sidecar = None
        super().close()

    # -- controls -----------------------------------------------------------------------------

    def _on_prompt(self, change: dict[str, Any]) -> None:
        value = change["new"]
        if SEND_MARK in value:
            self.send(value)

    def _on_system(self, change: dict[str, Any]) -> None:
        text = change["new"].strip()
        if text != (self.chat.system or ""):
            self.chat.system = text or None

    def _on_temperature_on(self, change: dict[str, Any]) -> None:
        self.temperature.disabled = not change["new"]

    def _on_max_tokens_on(self, change: dict[str, Any]) -> None:
        self.max_tokens.disabled = not change["new"]

    def _on_max_tokens(self, change: dict[str, Any]) -> None:
        # A limit typed or set is a limit meant.
        self.max_tokens_on.value = True

    def _on_explore(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self._show_explorer()
        else:
            self.explorer_area.children = ()

    def _show_explorer(self) -> None:
        reply = self.chat.last_reply
        w = ipywidgets_module()
        if reply is None:
            self.explorer_area.children = (w.HTML("<i>No reply yet.</i>"),)
            return
        from .explorer import explore

        try:
            explorer = explore(reply.completion)
        except ValueError as exc:
            self.explorer_area.children = (w.HTML(f"<i>{escape(_first_line(exc))}</i>"),)
            return
        self.explorer = explorer
        self.explorer_area.children = (explorer,)

    # -- images -------------------------------------------------------------------------------

    def attach(self, obj: Any, detail: str = "auto") -> Any:
        """Attach an image (anything nbchat's image conversion takes) to the next message."""
        from ..convert.images import image_part

        part = image_part(obj, detail)
        self.attachments.append(part)
        self._show_thumbnails()
        return part

    def attach_variable(self) -> None:
        name = self.image_var.value
        if not name:
            self.status.value = "Choose an image variable first."
            return
        namespace = self._shell.user_ns if self._shell is not None else {}
        try:
            self.attach(namespace[name])
        except Exception as exc:
            self.status.value = f"⚠ {escape(name)}: {escape(_first_line(exc))}"

    def clear_images(self) -> None:
        self.attachments = []
        self._show_thumbnails()

    def _on_upload(self, change: dict[str, Any]) -> None:
        files = change["new"]
        if not files:
            return
        for item in files:
            try:
                self.attach(bytes(item["content"]))
            except Exception as exc:
                name = item.get("name", "file")
                self.status.value = f"⚠ {escape(name)}: {escape(_first_line(exc))}"
        # Forget the upload so the same file can be chosen again.
        with contextlib.suppress(Exception):
            self.upload.value = ()

    def _show_thumbnails(self) -> None:
        cells = []
        for part in self.attachments:
            tip = part.summary() if hasattr(part, "summary") else "image"
            image = _thumbnail_html(part.thumbnail, tip) if part.thumbnail else ""
            cells.append(
                f'<span title="{escape(tip)}">{image}</span>'
                if image
                else f'<span title="{escape(tip)}">[image]</span> '
            )
        self.thumbnails.value = "".join(cells)

    def _refresh_image_variables(self) -> None:
        if self._shell is None:
            return
        names = [
            name
            for name, value in self._shell.user_ns.items()
            if not name.startswith("_") and _is_image(value)
        ]
        if list(self.image_var.options) != names:
            self.image_var.options = names


def _live_html(bundle: dict[str, str]) -> str:
    # An HTML widget sets the line height of a one-line control (28 px): text in it would be
    # spaced apart until the finished turn, rendered as an output, closes up.
    html = bundle.get("text/html", "")
    return f'<div style="line-height:var(--jp-content-line-height, 1.6)">{html}</div>'


def _tokens(reply: Any) -> int:
    return sum(c.usage.total_tokens or 0 for c in reply.completions if c.usage is not None)


def _is_image(value: Any) -> bool:
    import sys

    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(value, pil.Image)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _thumbnail_html(src: str, alt: str) -> str:
    """One of our own thumbnails; anything that is not one is left out rather than loaded."""
    try:
        return thumbnail(src, alt=alt)
    except ValueError:
        return ""


def _user_bundle(text: str, thumbs: list[str]) -> dict[str, str]:
    images = "".join(_thumbnail_html(src, "image") for src in thumbs)
    plain = f"[user] {text}" + (f" [+{len(thumbs)} images]" if thumbs else "")
    return markdown_bundle(
        text,
        plain=plain,
        before=turn_heading("user"),
        after=f"<div>{images}</div>" if images else "",
    )


_ASSISTANT_HEAD = html_bundle(turn_heading("assistant"), "[assistant]")
_EMPTY = html_bundle(
    '<div style="font-size:0.85em;opacity:0.75">No messages yet: write one below.</div>', ""
)


def _assistant(bundle: dict[str, str]) -> dict[str, str]:
    """A reply's bundle under the heading the conversation's other replies have."""
    return {
        **bundle,
        "text/html": output_html(turn_heading("assistant") + bundle["text/html"]),
        "text/plain": f"[assistant] {bundle['text/plain']}",
    }


def _descendants(widget: Any) -> list[Any]:
    found = []
    for child in getattr(widget, "children", ()):
        found.extend(_descendants(child))
        found.append(child)
    return found


def _magic_settings(shell: Any) -> Any:
    if shell is None:
        return None
    from .settings import Chat as ChatSettings

    return next(
        (c for c in getattr(shell, "configurables", ()) if isinstance(c, ChatSettings)), None
    )


def _current_shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()
