from __future__ import annotations

import sys
from collections import deque

import pytest
from IPython.core.error import UsageError
from PIL import Image

from nbchat.conversation import sessions as _sessions
from nbchat.notebook import context as _context
from tests.fakeserver import FakeServer
from tests.test_magics import shell  # noqa: F401  (the real IPython shell fixture)

FIX = "Use `qty`:\n\n```python\nresult = total(df, 'qty')\n```\n\nThe column is called qty."


@pytest.fixture
def ip(shell, monkeypatch):  # noqa: F811
    """The test shell with no error raised yet and set_next_input recorded."""
    for name in ("last_type", "last_value", "last_traceback", "last_exc"):
        monkeypatch.delattr(sys, name, raising=False)
    monkeypatch.setattr(_context, "_remembered", None)
    monkeypatch.setattr(_context, "_ran", deque(maxlen=50))
    placed: list[tuple[str, bool]] = []
    monkeypatch.setattr(
        shell, "set_next_input", lambda s, replace=False: placed.append((s, replace))
    )
    shell.placed = placed
    return shell


def run(ip, source: str):
    """Run ``source`` as a notebook cell: in the history, with its errors kept by IPython."""
    return ip.run_cell(source, store_history=True)


def failing_cells(ip):
    run(ip, "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2], 'qty': [3, 4]})")
    run(ip, "def total(frame, column='price'):\n    return frame[column].sum()")
    result = run(ip, "result = total(df)")
    assert isinstance(result.error_in_exec, KeyError)
    return ip.execution_count - 1


def test_no_error_says_so_in_one_line_and_sends_nothing(ip, capsys):
    ip.run_line_magic("chat", "fix")
    ip.run_line_magic("chat", "explain --code")
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "There is no error to fix: no cell has raised an exception in this kernel.",
        "There is no error to explain: no cell has raised an exception in this kernel.",
    ]
    assert ip.server.requests == []


def test_fix_sends_the_failing_cell_its_traceback_and_its_variables(ip, capsys):
    cell = failing_cells(ip)
    ip.server.reply(FIX)
    run(ip, "%chat fix")
    assert f"Fixing In [{cell}]: KeyError: 'price'" in capsys.readouterr().out
    sent = ip.server.last["messages"][-1]["content"]
    assert sent.startswith("This notebook cell failed. Find the cause and fix it.")
    assert f"The cell In [{cell}]:\n```python\nresult = total(df)\n```" in sent
    assert f"  In [{cell}], line 1\n    result = total(df)" in sent
    assert f"  In [{cell - 1}], line 2, in total\n    return frame[column].sum()" in sent
    assert "library frame" in sent and sent.count("KeyError: 'price'") >= 1
    assert "`df`: pandas DataFrame, 2 rows × 2 columns" in sent
    assert "`total`: function total(frame, column='price')" in sent
    assert "`frame`: the same object as `df`" in sent
    assert "`column`: str of 5 characters: 'price'" in sent
    # The reply streams like any other, into the session's conversation.
    assert "The column is called qty." in str(ip.publisher.outputs[-1]["data"])
    assert ip.placed == []
    ip.server.reply("Because the column is qty.")
    ip.run_line_magic("chat", "Why did it fail?")
    follow_up = ip.server.last["messages"]
    assert [m["role"] for m in follow_up] == ["user", "assistant", "user"]
    assert follow_up[0]["content"] == sent


def test_fix_code_puts_the_proposed_cell_below_without_running_it(ip, capsys):
    failing_cells(ip)
    ip.server.reply(FIX)
    run(ip, "%chat fix --code")
    assert ip.placed == [("result = total(df, 'qty')", False)]
    assert "result" not in ip.user_ns
    assert "The code is in the next input, not run." in capsys.readouterr().out
    assert "one ```python block" in ip.server.last["messages"][-1]["content"]


def test_explain_takes_options_and_other_text_after_it_is_a_prompt(ip):
    failing_cells(ip)
    ip.server.reply("It means the column is missing.")
    ip.run_line_magic("chat", "explain -t 0 --max-tokens 50")
    body = ip.server.last
    assert body["temperature"] == 0 and body["max_tokens"] == 50
    assert body["messages"][-1]["content"].startswith("This notebook cell failed. Explain")
    ip.server.reply("A monad is…")
    ip.run_line_magic("chat", "explain what a monad is")
    assert ip.server.last["messages"][-1]["content"] == "explain what a monad is"


def test_help_after_fix_shows_the_options(ip, capsys):
    ip.run_line_magic("chat", "fix -h")
    out = capsys.readouterr().out
    assert "--code" in out and "--var NAME" in out and "--cells N" in out
    assert ip.server.requests == []


def test_the_cell_form_adds_its_body_to_the_instructions(ip):
    failing_cells(ip)
    ip.server.reply(FIX)
    ip.run_cell_magic("chat", "fix --no-stream", "Keep the default argument.")
    sent = ip.server.last["messages"][-1]["content"]
    assert sent.startswith("This notebook cell failed. Find the cause and fix it.")
    assert "\n\nKeep the default argument.\n\nThe cell In [" in sent
    assert "stream" not in ip.server.last


def test_a_failing_chat_cell_does_not_hide_the_error_to_fix(ip):
    cell = failing_cells(ip)
    ip.server.reply(FIX)
    run(ip, "%chat fix")
    ip.server.error(500, "overloaded", type="server_error")
    run(ip, "%chat fix")  # fails: now sys.last_value is the chat cell's own error
    assert type(sys.last_value).__name__ == "ChatCellError"
    run(ip, "%chat --bogus-option hi")  # a usage error in a chat cell
    ip.server.reply(FIX)
    run(ip, "%chat fix --dry-run")
    assert f"The cell In [{cell}]:" in ip.publisher.text()


def test_a_syntax_error_is_fixed_from_its_cell(ip):
    result = run(ip, "values = [1, 2\nprint(values)")
    assert isinstance(result.error_before_exec, SyntaxError)
    ip.server.reply("```python\nvalues = [1, 2]\nprint(values)\n```")
    run(ip, "%chat fix --code")
    sent = ip.server.last["messages"][-1]["content"]
    assert "values = [1, 2\nprint(values)" in sent and "SyntaxError" in sent
    assert "Traceback" not in sent
    assert ip.placed == [("values = [1, 2]\nprint(values)", False)]


def test_code_puts_the_first_python_block_or_all_of_them_joined(ip, capsys):
    reply = "```bash\npip install x\n```\n\n```python\na = 1\n```\n\n```py\nb = 2\n```"
    ip.server.reply(reply).reply(reply).reply("No code here.")
    ip.run_cell_magic("chat", "--code", "Write it")
    ip.run_line_magic("chat", "--code all Write them")
    assert ip.server.last["messages"][-1]["content"] == "Write them"
    ip.run_line_magic("chat", "--code Say hi")
    assert ip.placed == [("a = 1", False), ("a = 1\n\nb = 2", False)]
    out = capsys.readouterr().out
    assert out.count("The code is in the next input, not run.") == 2
    assert "The reply has no Python code block; no cell was added." in out
    with pytest.raises(UsageError):
        ip.run_line_magic("chat", "--code=some hi")


def test_a_cut_off_code_block_is_placed_with_a_warning(ip, capsys):
    ip.server.reply("```python\ndef f():\n    return", finish_reason="length")
    ip.run_line_magic("chat", "--code Write f")
    assert ip.placed == [("def f():\n    return", False)]
    assert "The reply was cut off inside it: check it before running." in capsys.readouterr().out


def test_var_describes_variables_for_the_model(ip):
    import pandas as pd

    class Book:
        def _repr_llm_(self):
            return "A book about birds, 1998."

    ip.user_ns.update(df=pd.DataFrame({"x": [1, 2, 3]}), book=Book(), n=7)
    ip.server.reply("ok")
    ip.run_line_magic("chat", "--var df --var book --var df.columns What is here?")
    sent = ip.server.last["messages"][-1]["content"]
    assert sent.startswith("What is here?\n\n`df`: pandas DataFrame, 3 rows × 1 column")
    assert "`book`: Book, as it describes itself (_repr_llm_):\nA book about birds, 1998." in sent
    assert "`df.columns`: pandas.Index" in sent
    ip.server.reply("ok")
    ip.run_line_magic("chat", "--var n")  # context alone is a prompt
    assert ip.server.last["messages"][-1]["content"] == "`n`: int 7"


def test_var_mistakes_are_usage_errors_and_nothing_is_sent(ip):
    ip.user_ns["openai_api_key"] = "sk-abcdefghijklmnopqrstuvwxyz"
    with pytest.raises(UsageError, match="--var missing: 'missing' is not defined"):
        ip.run_line_magic("chat", "--var missing hi")
    with pytest.raises(UsageError, match="--var openai_api_key: the name looks like a credential"):
        ip.run_line_magic("chat", "--var openai_api_key hi")
    with pytest.raises(UsageError, match="takes a variable name"):
        ip.run_line_magic("chat", "--var 'df[0]' hi")
    with pytest.raises(UsageError, match="--cells needs a number of cells of at least 1"):
        ip.run_line_magic("chat", "--cells 0 hi")
    assert ip.server.requests == []


def test_an_image_variable_is_attached_when_the_server_can_see(ip, monkeypatch):
    ip.user_ns["img"] = Image.new("RGB", (64, 32), "red")
    ip.server.reply("A red block.")
    ip.run_line_magic("chat", "--var img What is it?")
    content = ip.server.last["messages"][-1]["content"]
    assert content[0]["text"].endswith(
        "`img`: PIL image, 64×32 pixels, mode RGB (attached below as an image)"
    )
    assert content[1]["type"] == "image_url"
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")
    blind = FakeServer()
    monkeypatch.setattr(
        _sessions, "client_for", lambda settings: blind.client(server="llama-cpp-python")
    )
    blind.reply("I cannot see it.")
    ip.run_line_magic("chat", "--new --var img What is it?")
    text = blind.last["messages"][-1]["content"]
    assert isinstance(text, str)
    assert "not attached: this server does not take images" in text


def test_cells_sends_the_cells_run_before_this_one_with_their_outputs(ip):
    first = ip.execution_count
    run(ip, "first = 1")
    second = ip.execution_count
    run(ip, "second = first + 1\nsecond")
    run(ip, "%chat --dry-run hi")  # chat cells are in the conversation already
    ip.server.reply("They add.")
    run(ip, "%chat --cells 2 What do these do?")
    sent = ip.server.last["messages"][-1]["content"]
    assert sent.startswith(
        "What do these do?\n\nThe notebook cells run before this one, oldest first:\n\n"
    )
    assert f"In [{first}]:\n```python\nfirst = 1\n```" in sent
    assert f"In [{second}]:\n```python\nsecond = first + 1\nsecond\n```\nOut[{second}]: 2" in sent
    assert sent.count("In [") == 2


def test_secrets_in_cells_and_errors_never_reach_the_request(ip):
    key = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"
    run(ip, f"client_key = '{key}'\npassword = 'hunter2'\nconfig = {{'token': 'abc', 'n': 1}}")
    run(ip, "raise ValueError('bad key ' + client_key)")
    ip.server.reply("ok").reply("ok")
    run(ip, "%chat fix --cells 2 --var config")
    sent = ip.server.last["messages"][-1]["content"]
    assert key not in sent and "hunter2" not in sent and "'abc'" not in sent
    assert "[hidden]" in sent and "ValueError: bad key" in sent
    assert "`client_key`" not in sent  # a credential's name is not described at all


def test_fix_hides_a_password_in_a_url_from_the_source_a_local_and_the_message(ip):
    run(
        ip,
        "def connect(url):\n"
        "    dsn = url.replace('postgresql', 'postgresql+psycopg')\n"
        "    raise ConnectionError(f'could not connect to {dsn}')",
    )
    run(ip, "connect('postgresql://admin:PASSWORD@db.internal:5432/sales')")
    ip.server.reply("ok")
    run(ip, "%chat fix --cells 1")
    sent = ip.server.last["messages"][-1]["content"]
    assert "PASSWORD" not in sent
    # The source, the local variables (url, dsn), the message and the earlier cell: each kept
    # readable, the password alone hidden.
    assert "connect('postgresql://admin:[hidden]@db.internal:5432/sales')" in sent
    assert "`url`: str of 50 characters: 'postgresql://admin:[hidden]@db.internal:5432" in sent
    assert "`dsn`: str of 58 characters: 'postgresql+psycopg://admin:[hidden]@db" in sent
    assert "ConnectionError: could not connect to postgresql+psycopg://admin:[hidden]@db" in sent


def test_cells_hide_passwords_in_outputs_and_in_env_settings(ip):
    run(ip, "%env PGPASSWORD=hunter2-env")
    run(ip, "dsn = 'mysql://root:hunter2-out@localhost/shop'\ndsn")
    ip.server.reply("ok")
    run(ip, "%chat --cells 2 What do these do?")
    sent = ip.server.last["messages"][-1]["content"]
    assert "hunter2" not in sent
    assert "%env PGPASSWORD=[hidden]" in sent
    assert "Out[" in sent and "'mysql://root:[hidden]@localhost/shop'" in sent


@pytest.mark.parametrize(
    "name", ["PGPASSWORD", "DBPASSWORD", "GITHUBTOKEN", "SECRETKEY", "APITOKEN", "AUTHTOKEN"]
)
def test_var_refuses_credential_names_written_as_one_upper_case_word(ip, name):
    ip.user_ns[name] = "hunter2"
    with pytest.raises(UsageError, match=f"--var {name}: the name looks like a credential"):
        ip.run_line_magic("chat", f"--var {name} hi")
    assert ip.server.requests == []


def test_var_still_describes_ordinary_names_that_contain_credential_words(ip):
    names = ["tokenizer", "max_tokens", "n_tokens", "keyboard", "monkey", "secretary"]
    ip.user_ns.update(dict.fromkeys(names, 3))
    ip.server.reply("ok")
    ip.run_line_magic("chat", " ".join(f"--var {name}" for name in names) + " hi")
    sent = ip.server.last["messages"][-1]["content"]
    assert [f"`{name}`: int 3" in sent for name in names] == [True] * len(names)


def test_fix_leaves_out_locals_named_as_one_upper_case_credential_word(ip):
    run(ip, "def f():\n    PGPASSWORD = 'hunter2'\n    tokenizer = 'bpe'\n    1 / 0")
    run(ip, "f()")
    ip.server.reply("ok")
    run(ip, "%chat fix")
    sent = ip.server.last["messages"][-1]["content"]
    assert "hunter2" not in sent and "`PGPASSWORD`" not in sent
    assert "`tokenizer`: str of 3 characters: 'bpe'" in sent


def test_dry_run_shows_the_budget_by_part_and_what_would_be_trimmed(ip, capsys):
    import pandas as pd

    ip.user_ns["df"] = pd.DataFrame({"x": range(50)})
    ip.server.reply("a" * 800).reply("b" * 800)
    ip.run_line_magic("chat", "-s 'Be brief.' first question " + "q" * 800)
    ip.run_line_magic("chat", "second question " + "q" * 800)
    ip.run_line_magic("config", "Chat.max_history_tokens = 300")
    ip.run_line_magic("chat", "--dry-run --var df --data df Describe it")
    text = ip.publisher.text()
    for row in ("system", "history", "this prompt", "attachments", "tools", "total"):
        assert f"  {row} " in text
    assert "--var df ~" in text and "--data df ~" in text
    assert "left out by max_history_tokens (300): the 2 oldest exchanges, 4 messages" in text
    assert "Note: Left out the 2 oldest exchanges (4 messages" in capsys.readouterr().out
    assert "context window unknown for this server" in text
    body = ip.server.requests  # nothing was sent by the dry run
    assert len(body) == 2


def test_max_history_tokens_trims_what_a_cell_sends_with_a_visible_note(ip):
    ip.run_line_magic("config", "Chat.max_history_tokens = 200")
    for i in range(3):
        ip.server.reply(f"answer {i} " + "a" * 400)
        ip.run_line_magic("chat", f"question {i} " + "q" * 400)
    sent = ip.server.last["messages"]
    assert [m["content"][:10] for m in sent] == ["question 2"]
    assert "Left out the 2 oldest exchanges" in ip.publisher.text()
    assert len(_sessions.session("default")) == 6


def test_the_budget_says_what_would_have_to_go_to_fit_a_known_window(ip, monkeypatch):
    server = FakeServer()
    client = server.client()
    client.profile.context_window = 600
    monkeypatch.setattr(_sessions, "client_for", lambda settings: client)
    server.reply("answer " * 300)
    ip.run_line_magic("chat", "--max-tokens 100 first " + "question " * 300)
    ip.run_line_magic("chat", "--max-tokens 100 --dry-run second")
    text = ip.publisher.text()
    assert "of the 600-token window: over it by" in text
    assert "the 1 oldest exchanges sent would have to be left out" in text
    assert "%config Chat.max_history_tokens = " in text


def test_options_after_an_option_whose_value_is_optional_are_still_options(ip):
    failing_cells(ip)
    ip.server.reply(FIX)
    run(ip, "%chat fix --code -t 0 --max-tokens 40")
    body = ip.server.last
    assert body["temperature"] == 0 and body["max_tokens"] == 40
    assert ip.placed == [("result = total(df, 'qty')", False)]
    ip.server.reply("ok")
    ip.run_line_magic("chat", "--code -- -x is a prompt")
    assert ip.server.last["messages"][-1]["content"] == "-x is a prompt"


def test_cells_outside_the_history_are_found_too_as_nbval_runs_them(ip):
    def quiet(source):
        return ip.run_cell(source, store_history=False)

    quiet("import pandas as pd\ndf = pd.DataFrame({'a': [1, 2], 'qty': [3, 4]})")
    quiet("def total(frame, column='price'):\n    return frame[column].sum()")
    quiet("df.shape")
    quiet("result = total(df)")
    ip.server.reply(FIX)
    quiet("%chat fix --cells 2")
    sent = ip.server.last["messages"][-1]["content"]
    assert "The cell:\n```python\nresult = total(df)\n```" in sent
    assert "In [ ]:\n```python\ndf.shape\n```\nOut[ ]: (2, 2)" in sent
    assert "In [ ]:\n```python\nresult = total(df)\n```\n(it raised KeyError: 'price')" in sent


def test_an_error_from_before_the_extension_was_loaded_comes_from_sys_last_value(ip):
    cell = failing_cells(ip)
    _context._ran.clear()  # as if nbchat had been loaded after the failure
    ip.server.reply(FIX)
    run(ip, "%chat fix")
    sent = ip.server.last["messages"][-1]["content"]
    assert f"The cell In [{cell}]:\n```python\nresult = total(df)\n```" in sent
    ip.server.error(500, "overloaded", type="server_error")
    run(ip, "%chat fix")
    _context._ran.clear()
    ip.server.reply(FIX)
    run(ip, "%chat fix")  # sys.last_value is the chat cell's error: the one before is fixed
    assert f"The cell In [{cell}]:" in ip.server.last["messages"][-1]["content"]
