from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from nbchat.notebook.cell import cell_request
from tests import storeutil

store_shell = storeutil.store_shell
fresh_store = storeutil.fresh_store


def _request(shell, line: str, text: str = "Hello {name}", **kw):
    magic = shell.find_cell_magic("chat").__self__
    args = magic.chat.parser.parse_args(line.split())
    return cell_request(shell, magic.settings, args, text, **kw)


def test_every_form_is_read_into_one_request_value(store_shell):
    shell = store_shell
    shell.user_ns.update(name="Ada", rows=[{"name": "x"}])
    prompt = _request(shell, "-t 0.5 --json")
    assert prompt.form == "prompt" and prompt.content == "Hello Ada" and prompt.prompt.json
    assert prompt.fields["temperature"] == 0.5 and prompt.fields["model"] == "fake-model"
    each = _request(shell, "--each rows --concurrency 2 --json")
    assert each.form == "each" and each.text == "Hello {name}"  # filled in per row
    assert each.concurrency == 2 and each.fields["response_format"] == {"type": "json_object"}
    compare = _request(shell, "--compare a,b")
    assert compare.form == "compare" and compare.models == ["a", "b"]
    assert "model" not in compare.fields  # each column names its own
    assert _request(shell, "", models=["c"]).models == ["c"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--each rows --var name", "--var does not apply to --each"),
        ("--compare a,b --cells 2", "--cells does not apply to compare"),
        ("--concurrency 3", "--concurrency goes with --each DF"),
        ("--resume", "--resume goes with --each DF"),
        ("--each rows --compare a,b", "Use --each or --compare, not both"),
        ("--json --schema S", "Use --json or --schema, not both"),
    ],
)
def test_options_a_form_cannot_use_are_refused_in_one_line(store_shell, line, message):
    store_shell.user_ns.update(name="Ada", rows=[{"name": "x"}], S=dict)
    with pytest.raises(UsageError, match=message):
        _request(store_shell, line)
