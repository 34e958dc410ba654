from __future__ import annotations

import httpx
import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError

from nbchat import Client
from nbchat.conversation import sessions
from nbchat.local.adapt import profile as local_profile
from tests import storeutil

store_shell = storeutil.store_shell
fresh_store = storeutil.fresh_store


def _shown(shell) -> str:
    return "\n".join(str(o.get("text/plain", "")) for o in shell.publisher.outputs)


@pytest.mark.parametrize(
    ("line", "cell", "title"),
    [
        ("", "Hello", "Dry run (not sent)"),
        ("--each rows", "Say {x}", "Dry run (not sent): the request for row 1 of 3"),
        ("--compare a,b", "Hello", "Dry run (not sent): b"),
        ("--var rows", "Describe it", "Dry run (not sent)"),
    ],
    ids=["prompt", "each", "compare", "context"],
)
def test_every_form_of_cell_is_shown_by_the_one_dry_run_and_sends_nothing(
    store_shell, line, cell, title
):
    store_shell.user_ns["rows"] = [{"x": 1}, {"x": 2}, {"x": 3}]
    store_shell.run_cell_magic("chat", f"--dry-run {line}".strip(), cell)
    assert title in _shown(store_shell)
    assert store_shell.server.requests == []


def _local(monkeypatch):
    client = Client(
        api_key="",
        base_url="http://127.0.0.1:9/v1",
        server=local_profile("smollm2"),
        transport=httpx.MockTransport(lambda request: httpx.Response(500)),
    )
    monkeypatch.setattr(sessions, "client_for", lambda settings: client)
    return client


def test_a_dry_run_shows_a_request_the_server_would_refuse_and_names_the_attachment(
    store_shell, monkeypatch, capsys
):
    _local(monkeypatch)
    store_shell.user_ns["fig"] = np.zeros((8, 8, 3), dtype=np.uint8)
    store_shell.run_cell_magic("chat", "--image fig --dry-run", "What is this?")
    printed = capsys.readouterr().out
    assert '"image_url"' in _shown(store_shell)  # the request as written, image and all
    assert "This server would refuse it: the image attached with --image fig" in printed
    assert "messages.0" not in printed
    with pytest.raises(UsageError, match="the image attached with --image fig"):
        store_shell.run_cell_magic("chat", "--image fig", "What is this?")


def test_the_dry_runs_estimate_is_the_budgets(store_shell, capsys):
    from nbchat.conversation.sessions import session
    from nbchat.store.budget import estimate_prompt_tokens

    store_shell.user_ns["df"] = pd.DataFrame({"a": range(5), "b": list("vwxyz")})
    store_shell.run_cell_magic("chat", "--data df --dry-run -o sent", "Summarise")
    table = _shown(store_shell)
    total = estimate_prompt_tokens(store_shell.user_ns["sent"])
    assert f"total        {total:,}" in table
    assert session().messages == []
