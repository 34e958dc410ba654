"""End to end in JupyterLab, in headless Chromium: an ``%%chat --agent`` cell shows the code the
model proposes with Run / Skip / Stop buttons, runs it in the kernel only after Run, tells the
model when Skip is clicked, and ends the turn at Stop; a ``--mcp time`` cell calls the real time
server. The model is a scripted loopback server. Screenshots go to ``out/screenshots/``.
"""

from __future__ import annotations

import json
import shutil
import time

import pytest

from tests.browser.lab import Lab
from tests.browser.test_panel_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS, _missing, _shoot
from tests.scriptedmodel import ScriptedModel

pytestmark = pytest.mark.browser


def _cell(source: str) -> dict:
    return {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {},
        "outputs": [],
        "source": source,
    }


def _notebook(base_url: str, config: str) -> dict:
    setup = (
        "import os\n"
        "os.environ['OPENAI_API_KEY'] = 'test-key'\n"
        "%load_ext nbchat\n"
        f"%config Chat.base_url = {base_url!r}\n"
        "%config Chat.model = 'script-model'\n"
        f"%config Chat.mcp_config = {config!r}\n"
        "xs = [1, 2, 3, 4]"
    )
    return {
        "cells": [
            _cell(setup),
            _cell("%%chat --agent\nWhat is the mean of xs?"),
            _cell("%%chat --agent\nDelete my notes"),
            _cell("%%chat --agent\nRun two things"),
            _cell("%%chat --mcp time\nWhat time is it in Tokyo?"),
            _cell("print('done', mean_xs, 'gone' if 'deleted' not in dir() else 'deleted')"),
            _cell("%%chat --agent\nCount slowly"),
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


SCRIPT = [
    {
        "content": "Let me see your variables.",
        "tool_calls": [{"name": "list_variables", "arguments": {}}],
    },
    {
        "content": "I will compute the mean.",
        "tool_calls": [
            {"name": "run_python", "arguments": {"code": "mean_xs = sum(xs) / len(xs)\nmean_xs"}}
        ],
    },
    "The mean of xs is 2.5.",
    {
        "content": None,
        "tool_calls": [{"name": "run_python", "arguments": {"code": "deleted = True"}}],
    },
    "Understood, I left your notes alone.",
    {
        "content": "Two steps.",
        "tool_calls": [
            {"name": "run_python", "arguments": {"code": "step_one = 1"}, "id": "c1"},
            {"name": "run_python", "arguments": {"code": "step_two = 2"}, "id": "c2"},
        ],
    },
    {
        "content": None,
        "tool_calls": [{"name": "time__get_current_time", "arguments": {"timezone": "Asia/Tokyo"}}],
    },
    "It is evening in Tokyo.",
    {
        "content": "Counting.",
        "tool_calls": [
            {
                "name": "run_python",
                "arguments": {"code": "import time\nfor count in range(600):\n    time.sleep(0.1)"},
            }
        ],
    },
    "(never asked for: the turn was interrupted)",
]


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path).start()
    yield lab
    lab.stop()


def _run_all(page) -> None:
    """Run every cell once the kernel is up; JupyterLab drops a run asked for too early."""
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    run_all = "() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }"
    page.evaluate(run_all)
    prompt = page.locator(".jp-Cell .jp-InputPrompt").first
    deadline = time.monotonic() + 90
    next_try = time.monotonic() + 3
    while not any(c.isdigit() for c in prompt.inner_text()):
        accept = page.locator(".jp-Dialog .jp-mod-accept")
        if accept.count() and accept.first.is_visible():
            accept.first.click()
        elif time.monotonic() > next_try:
            if "*" not in prompt.inner_text():
                page.evaluate(run_all)
            next_try = time.monotonic() + 3
        assert time.monotonic() < deadline, "the cells never ran"
        page.wait_for_timeout(200)


def _click(page, cell: int, label: str) -> None:
    button = page.locator(".jp-Cell").nth(cell).get_by_role("button", name=label)
    button.wait_for(timeout=60_000)
    button.click()


@pytest.mark.skipif(
    _missing() is not None or shutil.which("mcp-server-time") is None,
    reason=_missing() or "mcp-server-time is not installed",
)
def test_agent_cells_ask_with_buttons_in_jupyterlab(lab, tmp_path, capsys):
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "mcp.json"
    config.write_text(
        json.dumps({"mcpServers": {"time": {"command": shutil.which("mcp-server-time")}}})
    )
    with ScriptedModel(SCRIPT) as model, sync_playwright() as pw:
        (tmp_path / "agent.ipynb").write_text(json.dumps(_notebook(model.base_url, str(config))))
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1100})
            page.set_default_timeout(60_000)
            page.goto(lab.url("agent.ipynb"))
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            page.wait_for_function("() => window.jupyterapp !== undefined")
            _run_all(page)

            first = page.locator(".jp-Cell").nth(1)
            try:
                expect(first).to_contain_text("mean_xs = sum(xs) / len(xs)", timeout=60_000)
            except AssertionError:
                _shoot(page, "agent-0-failed")
                raise
            _shoot(page, "agent-1-proposed")
            _click(page, 1, "Run")
            expect(first).to_contain_text("The mean of xs is 2.5.", timeout=60_000)
            expect(first).to_contain_text("result: 2.5")
            _shoot(page, "agent-2-ran")

            second = page.locator(".jp-Cell").nth(2)
            expect(second).to_contain_text("deleted = True")
            _click(page, 2, "Skip")
            expect(second).to_contain_text("I left your notes alone", timeout=60_000)

            third = page.locator(".jp-Cell").nth(3)
            expect(third).to_contain_text("step_one = 1")
            _click(page, 3, "Stop")
            expect(third).to_contain_text("Stopped", timeout=60_000)

            fourth = page.locator(".jp-Cell").nth(4)
            expect(fourth).to_contain_text("It is evening in Tokyo.", timeout=60_000)
            last = page.locator(".jp-Cell").nth(5)
            expect(last).to_contain_text("done 2.5 gone", timeout=60_000)
            first.scroll_into_view_if_needed()
            _shoot(page, "agent-3-done")

            # Ctrl-C (the kernel's interrupt) while the model's code runs stops it and the turn.
            slow = page.locator(".jp-Cell").nth(6)
            expect(slow).to_contain_text("for count in range(600)")
            _click(page, 6, "Run")
            page.wait_for_timeout(2000)
            page.evaluate("() => window.jupyterapp.commands.execute('kernelmenu:interrupt')")
            expect(slow).to_contain_text("Interrupted", timeout=30_000)
            slow.scroll_into_view_if_needed()
            _shoot(page, "agent-4-interrupted")
            with capsys.disabled():
                print(f"\nscreenshots: {SHOTS}")
        finally:
            browser.close()
    told = [m for m in model.requests[4]["messages"] if m["role"] == "tool"][-1]["content"]
    assert "declined" in told
    # Stop: no request after it; the fourth cell's request is the next one. Ctrl-C: none either.
    assert len(model.requests) == 9
