"""End to end: the chat panel in JupyterLab, driven in headless Chromium by Playwright."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.browser.lab import ROOT, Lab
from tests.browser.llm_server import SHORT, LLMServer

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("NBCHAT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = ROOT / "test-results"


def _missing() -> str | None:
    if importlib.util.find_spec("jupyterlab") is None:
        return "JupyterLab is not installed (pip install jupyterlab)"
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install playwright)"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"Chromium is not at {CHROMIUM} (apt-get install -y chromium)"
    return None


def _notebook(base_url: str) -> dict:
    source = (
        "import nbchat\n"
        "from nbchat.notebook.panel import panel\n"
        f"client = nbchat.Client(api_key='test-key', base_url={base_url!r}, max_retries=0)\n"
        "p = panel('browser', client=client)\n"
        "p"
    )
    return {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": source,
            }
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path).start()
    yield lab
    lab.stop()


@pytest.mark.skipif(_missing() is not None, reason=_missing() or "")
def test_panel_sends_streams_stops_and_explores_in_jupyterlab(lab, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(exist_ok=True)
    started = time.monotonic()
    with LLMServer(delay=0.05) as server, sync_playwright() as pw:
        (tmp_path / "panel.ipynb").write_text(json.dumps(_notebook(server.base_url)))
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(lab.url("panel.ipynb"))
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            page.wait_for_function("() => window.jupyterapp !== undefined")
            # Run the cell once the kernel is up (the command waits for it).
            page.wait_for_selector(
                ".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000
            )
            # Not awaited: the command's promise ends with the cell, which is checked below.
            run_all = "() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }"
            page.evaluate(run_all)

            prompt = page.locator(".nbchat-prompt textarea")
            try:
                # JupyterLab sometimes asks which kernel to use although the notebook names
                # one; accept its choice and run the cell again.
                deadline = time.monotonic() + 60
                next_try = time.monotonic() + 3
                cell_prompt = page.locator(".jp-Cell .jp-InputPrompt").first
                while not prompt.is_visible():
                    accept = page.locator(".jp-Dialog .jp-mod-accept")
                    if accept.count() and accept.first.is_visible():
                        accept.first.click()
                    elif time.monotonic() > next_try:
                        # A run asked for before the kernel was connected is dropped: ask
                        # again while the cell has not started ("[ ]:", not "[*]:").
                        if cell_prompt.inner_text().strip() == "[ ]:":
                            page.evaluate(run_all)
                        next_try = time.monotonic() + 3
                    if time.monotonic() > deadline:
                        raise AssertionError("no panel")
                    page.wait_for_timeout(200)
            except AssertionError:
                page.screenshot(path=str(SHOTS / "panel-0-no-panel.png"))
                raise AssertionError(
                    "The panel did not appear; JupyterLab log:\n" + lab.log.read_text()[-3000:]
                ) from None
            conversation = page.locator(".nbchat-conversation")
            page.screenshot(path=str(SHOTS / "panel-1-open.png"))

            # Shift+Enter adds a line; Enter sends.
            prompt.click()
            prompt.type("Say")
            prompt.press("Shift+Enter")
            prompt.type("hello")
            assert prompt.input_value() == "Say\nhello"
            prompt.press("Enter")
            expect(conversation).to_contain_text(SHORT, timeout=30_000)
            expect(page.locator(".nbchat-footer")).to_contain_text("tokens")
            assert server.requests[-1]["messages"][-1]["content"] == "Say\nhello"
            assert server.requests[-1]["stream"] is True
            expect(prompt).to_have_value("")
            page.screenshot(path=str(SHOTS / "panel-2-answered.png"))

            # A long reply: watch it stream, then stop it midway.
            prompt.fill("Tell a long story")
            page.locator("button.nbchat-send").click()
            live = page.locator(".nbchat-live")
            expect(live).to_contain_text("word3", timeout=30_000)
            page.screenshot(path=str(SHOTS / "panel-3-streaming.png"))
            page.locator("button.nbchat-stop").click()
            expect(conversation).to_contain_text("Interrupted", timeout=30_000)
            shown = conversation.inner_text()
            assert "word3" in shown and "word399" not in shown
            expect(page.locator("button.nbchat-send")).to_be_enabled()
            page.screenshot(path=str(SHOTS / "panel-4-stopped.png"))

            # Ask again with logprobs, then open the explorer on the reply.
            page.get_by_role("button", name="logprobs").click()
            # fill() replaces the text: the kernel's emptying of the box after a send can
            # arrive after the next keystrokes (see the panel's note on this).
            prompt.fill("Say hello again")
            prompt.press("Enter")
            expect(conversation).to_contain_text("Say hello again", timeout=30_000)
            # The Send button is enabled before the request starts too: wait for the answer
            # itself, so that Explore opens on this reply and not on the one before it.
            deadline = time.monotonic() + 30
            while conversation.inner_text().count(SHORT) < 2:
                assert time.monotonic() < deadline, (
                    f"the logprobs reply never finished: {conversation.inner_text()[-600:]!r}, "
                    f"{len(server.requests)} requests"
                )
                page.wait_for_timeout(100)
            expect(page.locator("button.nbchat-send")).to_be_enabled(timeout=30_000)
            assert server.requests[-1]["logprobs"] is True
            page.get_by_role("button", name="Explore").click()
            tokens = page.locator(".nbchat-explorer .nbx-tok")
            expect(tokens.first).to_be_visible(timeout=30_000)
            count = tokens.count()
            assert count == len(range(0, len(SHORT), 6))
            assert page.locator(".nbchat-explorer .nbx-low").count() == (count + 2) // 3
            tokens.nth(1).click()
            popup = tokens.nth(1).locator(".nbx-pop")
            expect(popup).to_be_visible()
            expect(popup).to_contain_text("p = 0.950")
            # The last alternative is on screen, not clipped by the widget boxes around it.
            box = popup.locator("tr").last.bounding_box()
            point = [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2]
            hit = "([x, y]) => !!document.elementFromPoint(x, y)?.closest('.nbx-pop')"
            assert page.evaluate(hit, point)
            page.screenshot(path=str(SHOTS / "panel-5-explorer.png"))
        finally:
            browser.close()
    assert time.monotonic() - started < 120
