from __future__ import annotations

import json
import subprocess
import sys


def test_loading_the_extension_imports_no_heavy_modules():
    code = (
        "import sys, json\n"
        "from IPython.testing import globalipapp\n"
        "globalipapp.start_ipython()\n"
        "ip = globalipapp.get_ipython()\n"
        "before = set(sys.modules)\n"
        "ip.run_line_magic('load_ext', 'nbchat')\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    heavy = {"PIL", "pandas", "ipywidgets", "httpx", "pydantic", "numpy", "matplotlib"}
    assert not heavy & {name.split(".")[0] for name in loaded}
    assert "nbchat.notebook.magics" in loaded


def test_load_registers_magics_and_settings_once():
    from IPython.testing import globalipapp

    globalipapp.start_ipython()
    ip = globalipapp.get_ipython()
    ip.run_line_magic("load_ext", "nbchat")
    ip.run_line_magic("reload_ext", "nbchat")
    settings = [c for c in ip.configurables if type(c).__name__ == "Chat"]
    assert len(settings) == 1
    assert "chat" in ip.magics_manager.magics["cell"]
    assert "chat" in ip.magics_manager.magics["line"]
    ip.run_line_magic("config", "Chat.temperature = 0.5")
    assert settings[0].temperature == 0.5
    ip.run_line_magic("unload_ext", "nbchat")
    ip.config.pop("Chat", None)
    assert "chat" not in ip.magics_manager.magics["cell"]


def test_a_line_prompt_ending_in_a_question_mark_is_sent_not_taken_as_help():
    from IPython.testing import globalipapp

    globalipapp.start_ipython()
    ip = globalipapp.get_ipython()
    ip.run_line_magic("load_ext", "nbchat")
    try:
        code = ip.transform_cell("x = 1\n%chat -t 0 And in Spanish?\n")
        assert code == "x = 1\nget_ipython().run_line_magic('chat', '-t 0 And in Spanish?')\n"
        cell = ip.transform_cell("%%chat\nHow are you?\n")
        assert cell == "get_ipython().run_cell_magic('chat', '', 'How are you?\\n')\n"
        assert "pinfo" in ip.transform_cell("len?\n")
    finally:
        ip.run_line_magic("unload_ext", "nbchat")
        ip.config.pop("Chat", None)
    assert "pinfo" in ip.transform_cell("%chat Why?\n")


def test_each_cell_run_is_recorded_for_chat_fix_once_and_not_after_unload():
    from IPython.testing import globalipapp

    from nbchat.notebook import context, extension

    globalipapp.start_ipython()
    ip = globalipapp.get_ipython()
    ip.run_line_magic("load_ext", "nbchat")
    ip.run_line_magic("reload_ext", "nbchat")
    assert ip.events.callbacks["post_run_cell"].count(extension.record_cell) == 1
    context._ran.clear()
    ip.run_cell("1 / 0", store_history=False)
    assert [(r.source, type(r.error).__name__) for r in context._ran] == [
        ("1 / 0", "ZeroDivisionError")
    ]
    ip.run_line_magic("unload_ext", "nbchat")
    assert extension.record_cell not in ip.events.callbacks["post_run_cell"]
    ip.run_cell("2 + 2", store_history=False)
    assert len(context._ran) == 1
    ip.run_line_magic("load_ext", "nbchat")


def test_the_notebook_vs_code_names_in_the_namespace_reaches_the_store(monkeypatch):
    from IPython.testing import globalipapp

    from nbchat.store import config
    from nbchat.store.exchange import notebook_path

    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    globalipapp.start_ipython()
    ip = globalipapp.get_ipython()
    ip.run_line_magic("load_ext", "nbchat")
    try:
        ip.user_ns["__vsc_ipynb_file__"] = "/work/analysis.ipynb"
        ip.run_cell("x = 1")
        assert notebook_path() == "/work/analysis.ipynb"
    finally:
        ip.user_ns.pop("__vsc_ipynb_file__", None)
        config.configure(notebook="")
        ip.run_line_magic("unload_ext", "nbchat")
