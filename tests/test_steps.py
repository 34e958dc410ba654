"""The steps of an agent's turn as shown: the proposed code exactly (never as Markdown or HTML),
the decision on it, each call's result; and the live view keeping them in order."""

from __future__ import annotations

from nbchat.conversation.toolrun import ToolResult
from nbchat.render.live import LiveView
from nbchat.render.steps import decision_bundle, proposal_bundle, proposal_text, results_bundle
from tests.fakeserver import FakeServer

HOSTILE = "<img src=x onerror=alert(1)>\n# not a heading\n**not bold**"


def test_proposed_code_is_shown_exactly_and_escaped():
    bundle = proposal_bundle("run_python", {"code": HOSTILE})
    html = bundle["text/html"]
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<h1>" not in html and "<strong>not" not in html
    assert HOSTILE in bundle["text/plain"]
    assert "wants to add this cell below" in proposal_text("insert_cell", {"code": "x"})


def test_other_tools_show_their_call_and_decisions_their_kind():
    assert "lookup(q=" in proposal_bundle("lookup", {"q": "<b>"})["text/plain"]
    assert "&lt;b&gt;" in proposal_bundle("lookup", {"q": "<b>"})["text/html"]
    assert decision_bundle("refused", "refused: nobody")["text/plain"] == "✗ refused: nobody"
    assert "<script>" not in decision_bundle("declined", "<script>")["text/html"]


def test_results_are_code_blocks_open_for_the_code_the_model_ran():
    ran = ToolResult(
        "c1", "run_python", {"code": "1"}, True, "stdout:\n<b>hi</b>", approval="approved by user"
    )
    read = ToolResult("c2", "list_variables", {}, True, "x: int")
    html = results_bundle([ran, read], open_names=("run_python",))["text/html"]
    assert html.count("<details") == 2 and '<details class="nbchat-tool-result" open>' in html
    assert "&lt;b&gt;hi&lt;/b&gt;" in html and "approved by user" in html


def recorder():
    shown = []

    class Handle:
        def __init__(self, index):
            self.index = index

        def update(self, bundle, raw=True, metadata=None):
            shown[self.index] = bundle

    def display(bundle, raw=True, display_id=None, metadata=None):
        shown.append(bundle)
        return Handle(len(shown) - 1)

    return shown, display


def test_steps_mode_keeps_each_round_where_it_happened_and_the_answer_last():
    import nbchat

    server = FakeServer()
    server.reply("Thinking about it.", tool_calls=[{"id": "c1", "name": "look", "arguments": {}}])
    server.reply("The answer.")
    shown, display = recorder()
    between = []

    def look() -> str:
        """Looks."""
        # What an approval shows goes between the round's text and the results.
        shown.append({"text/plain": "PROPOSAL"})
        between.append(len(shown))
        return "seen"

    view = LiveView(mode="live", rate=0, display=display, steps=True)
    chat = nbchat.Chat("m", client=server.client())
    reply = chat.send("Go", tools=[look], listener=view)
    view.finish(reply)
    texts = [bundle.get("text/plain", "") for bundle in shown]
    first_round = next(i for i, t in enumerate(texts) if t.startswith("Thinking about it."))
    proposal = texts.index("PROPOSAL")
    result = next(i for i, t in enumerate(texts) if "look() -> seen" in t)
    answer = next(i for i, t in enumerate(texts) if "The answer." in t)
    assert first_round < proposal < result < answer
    assert "▌" not in shown[first_round]["text/html"]  # the round's area was finished


def test_a_stopped_turn_in_a_terminal_ends_with_its_note_and_no_repeated_calls():
    import io

    import nbchat

    server = FakeServer()
    server.reply("Two steps.", tool_calls=[{"id": "c1", "name": "act", "arguments": {}}])

    @nbchat.tool(confirm=True)
    def act() -> str:
        """Acts."""
        return "acted"

    out = io.StringIO()
    view = LiveView(mode="text", out=out, steps=True)
    chat = nbchat.Chat("fake-model", client=server.client())
    reply = chat.send("Go", tools=[act], listener=view, confirm=lambda tool, args: "stop")
    view.finish(reply)
    text = out.getvalue()
    assert text.count("Stopped: you chose Stop") == 1 and "[tool call]" not in text
    assert "act({}) (failed) -> " in text and text.count("Two steps.") == 1
