"""End to end in JupyterLab, driven in headless Chromium by Playwright: the chat panel and a
``%%chat`` reply, in the light and the dark theme, fed replies that would run script if anything
rendered them as HTML; the panel's geometry while a reply streams and in JupyterLab's side
area; the explorer on a one-line reply; compare; and the HTML export of a finished ``--each``.

Screenshots are kept in ``out/screenshots/`` (the path is printed).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import hostile
from tests.browser.lab import ROOT, Lab
from tests.browser.llm_server import PWNED, SHORT, LLMServer

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
SHOTS = ROOT / "out" / "screenshots"
# WCAG's minimum contrast for normal text, and the 3:1 asked here of a disabled control.
READABLE = 4.5
DISABLED = 3.0
# The height of the window the issue was seen in: Stop was drawn at y=908 while a reply streamed.
SHORT_WINDOW = 857
# JupyterLab's side area is 250 px wide by default; people widen it.
SIDE_WIDTHS = (250, 360, 450)
LONG_MODEL = "gpt-4.1-mini-2025-04-14"
# An emoji in our chrome shows as a box where no emoji font is installed (Debian's Chromium).
_EMOJI_JS = "(el) => /\\p{Extended_Pictographic}/u.test(el.innerText)"


def _missing() -> str | None:
    if importlib.util.find_spec("jupyterlab") is None:
        return "JupyterLab is not installed (pip install jupyterlab)"
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install playwright)"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"Chromium is not at {CHROMIUM} (apt-get install -y chromium)"
    return None


def _cell(source: str) -> dict:
    return {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {},
        "outputs": [],
        "source": source,
    }


def _notebook(base_url: str) -> dict:
    setup = (
        "import os\n"
        "os.environ['OPENAI_API_KEY'] = 'test-key'\n"
        "import nbchat\n"
        "%load_ext nbchat\n"
        f"%config Chat.base_url = {base_url!r}\n"
        "%config Chat.model = 'slow-model'\n"
        "%config Chat.max_retries = 0"
    )
    return {
        "cells": [
            _cell(setup),
            _cell("%%chat --session browser\nSay something hostile"),
            _cell("p = nbchat.panel('browser')\np"),
            _cell("side = nbchat.panel('aside', sidecar=True)\nside"),
            _cell("%%chat --session one --logprobs\nSay hello"),
            _cell("nbchat.explore(nbchat.last)"),
            _cell("%chat compare -m slow-model -m other-model Say hi"),
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


# The contrast of an element's text with what is behind it (WCAG's ratio, 1 to 21). The text and
# the element's background are composited as the browser does: each element's background under
# what it paints, its opacity applied to the whole group, up to the page (white) — so a faded
# disabled button fades its background and its label alike.
_CONTRAST_JS = """
(el) => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) { return [0, 0, 0, 0]; }
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (a, b) => {
    const alpha = a[3] + b[3] * (1 - a[3]);
    if (alpha === 0) { return [0, 0, 0, 0]; }
    const mix = (i) => (a[i] * a[3] + b[i] * b[3] * (1 - a[3])) / alpha;
    return [mix(0), mix(1), mix(2), alpha];
  };
  const paint = (node, colour) => {
    for (; node; node = node.parentElement) {
      const style = getComputedStyle(node);
      colour = over(colour, parse(style.backgroundColor));
      colour = [colour[0], colour[1], colour[2], colour[3] * Number(style.opacity)];
    }
    return over(colour, [255, 255, 255, 1]);
  };
  const text = paint(el, parse(getComputedStyle(el).color));
  const base = paint(el, [0, 0, 0, 0]);
  const lum = (rgb) => rgb.slice(0, 3).map((v) => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  }).reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const [a, b] = [lum(text), lum(base)];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}
"""

# Whatever in the page could run or load: evidence that outside text became markup.
_ACTIVE_JS = """
(roots) => {
  const found = [];
  for (const root of document.querySelectorAll(roots)) {
    for (const el of root.querySelectorAll('*')) {
      const tag = el.tagName.toLowerCase();
      if (['script', 'iframe', 'object', 'embed', 'svg', 'style', 'form', 'base', 'meta']
          .includes(tag) && !el.closest('.nbx-style-ok')) {
        if (!(tag === 'style' && el.textContent.includes('.nbx-tok'))) { found.push(tag); }
      }
      for (const attr of el.attributes) {
        const value = attr.value.trim().toLowerCase();
        if (attr.name.startsWith('on')) { found.push(tag + ' ' + attr.name); }
        if (['href', 'src', 'srcset', 'action'].includes(attr.name)
            && /^(javascript|vbscript|data):/.test(value)
            && !(tag === 'img' && value.startsWith('data:image/'))) {
          found.push(tag + ' ' + attr.name + '=' + value.slice(0, 30));
        }
      }
      if (tag === 'img' && !el.src.startsWith('data:image/')) { found.push('img ' + el.src); }
    }
  }
  return found;
}
"""
_OUTPUTS = ".jp-OutputArea-output, .nbchat-conversation, .nbchat-live, .nbchat-explorer"


def _shoot(page, name: str, showing=None) -> None:
    """A screenshot for people to look at; with ``showing`` (a locator), once that is painted
    inside the window (JupyterLab draws a notebook's cells only near the view, so a screenshot
    taken right after a scroll or a theme change can catch an empty notebook)."""
    if showing is not None:
        page.wait_for_function(
            """(el) => {
              const box = el.getBoundingClientRect();
              return box.height > 0 && box.top >= 0 && box.top < window.innerHeight;
            }""",
            arg=showing.first.element_handle(),
            timeout=10_000,
        )
    page.evaluate(
        "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"
    )
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def _contrast(target, text: str | None = None) -> float:
    if text is not None:
        target = target.get_by_text(text, exact=False)
    return target.first.evaluate(_CONTRAST_JS)


def _readability(page) -> dict[str, float]:
    """Contrast of the texts that matter, in the theme the page shows now."""
    reply = page.locator(".jp-Cell").nth(1).locator(".jp-OutputArea-output")
    panel = page.locator(".jp-Cell .nbchat-panel")
    checks = {
        "%%chat heading": (reply, "Hostile reply"),
        "%%chat paragraph": (reply, "words,"),
        "%%chat inline code": (reply.locator("code"), "kept"),
        "%%chat code block": (reply.locator("pre"), "not bold"),
        "%%chat footer": (reply, "finish: stop"),
        "panel title": (panel.locator(".widget-html"), "conversation"),
        "panel reply": (panel.locator(".nbchat-conversation"), SHORT),
        "panel user turn": (panel.locator(".nbchat-conversation"), "Say hello again"),
        "panel error card": (panel.locator(".nbchat-conversation"), "Bad <img"),
        "panel footer": (panel.locator(".nbchat-panel-footer"), None),
        "panel turn heading": (panel.locator(".nbchat-turn-head"), None),
        "explorer token": (panel.locator(".nbx-tok.nbx-low"), None),
        "explorer pop-up": (panel.locator(".nbx-pop td"), None),
        "explorer summary": (panel.locator(".nbchat-explorer .widget-html small"), None),
        "side panel title": (page.locator("#jp-right-stack .nbchat-panel .widget-html"), None),
        "compare footer": (page.locator(".jp-Cell").nth(6).locator(".nbchat-footer"), None),
        "compare reply": (
            page.locator(".jp-Cell").nth(6).locator(".jp-OutputArea-output"),
            "Hello",
        ),
    }
    return {name: round(_contrast(*where), 2) for name, where in checks.items()}


def _disabled_contrast(page) -> dict[str, float]:
    """Contrast of the controls shown disabled: Stop while nothing streams, the max tokens box
    while it is off."""
    panel = page.locator(".jp-Cell .nbchat-panel")
    checks = {
        "disabled Stop": panel.locator("button.nbchat-stop"),
        "disabled max tokens": panel.locator(".widget-inline-hbox input[type=number]:disabled"),
    }
    return {name: round(where.first.evaluate(_CONTRAST_JS), 2) for name, where in checks.items()}


def _set_theme(page, theme: str, light: bool) -> None:
    page.evaluate(
        "(theme) => window.jupyterapp.commands.execute('apputils:change-theme', {theme})", theme
    )
    page.wait_for_function(
        f"() => document.body.dataset.jpThemeLight === '{str(light).lower()}'", timeout=30_000
    )
    # The theme's style sheet is in; give the widgets a frame to restyle.
    page.wait_for_timeout(500)


def _run_all(page, prompt) -> None:
    """Run every cell once the kernel is up; JupyterLab drops a run asked for too early."""
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
    # Not awaited: the command's promise ends with the cells, which are checked below.
    run_all = "() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }"
    page.evaluate(run_all)
    deadline = time.monotonic() + 60
    next_try = time.monotonic() + 3
    cell_prompt = page.locator(".jp-Cell .jp-InputPrompt").first
    while not prompt.is_visible():
        accept = page.locator(".jp-Dialog .jp-mod-accept")
        if accept.count() and accept.first.is_visible():
            # JupyterLab sometimes asks which kernel to use although the notebook names one.
            accept.first.click()
        elif time.monotonic() > next_try:
            if cell_prompt.inner_text().strip() == "[ ]:":
                page.evaluate(run_all)
            next_try = time.monotonic() + 3
        if time.monotonic() > deadline:
            raise AssertionError("no panel")
        page.wait_for_timeout(200)


def _wait_for_count(page, area, text: str, count: int, timeout: float = 30) -> None:
    """Wait until ``text`` shows ``count`` times in ``area`` (a reply that has finished)."""
    deadline = time.monotonic() + timeout
    while area.inner_text().count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} never came: {area.inner_text()[-600:]!r}"
        page.wait_for_timeout(100)


def _send(page, prompt, text: str) -> None:
    # fill() replaces the text: the kernel's emptying of the box after a send can arrive after
    # the next keystrokes (see the panel's note on this).
    prompt.fill(text)
    prompt.press("Enter")


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path).start()
    yield lab
    lab.stop()


@pytest.mark.skipif(_missing() is not None, reason=_missing() or "")
def test_panel_and_chat_reply_in_jupyterlab_light_and_dark(lab, tmp_path, capsys):
    from playwright.sync_api import expect, sync_playwright

    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    with capsys.disabled():
        print(f"\nscreenshots: {SHOTS}")
    started = time.monotonic()
    with LLMServer(delay=0.05) as server, sync_playwright() as pw:
        notebook = tmp_path / "panel.ipynb"
        notebook.write_text(json.dumps(_notebook(server.base_url)))
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            # The corpus's payloads call alert(); any dialog means one ran. Any request that is
            # not to JupyterLab means something outside was loaded.
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            elsewhere: list[str] = []
            page.on(
                "request",
                lambda request: (
                    None
                    if request.url.startswith((lab.base, "data:", "blob:"))
                    else elsewhere.append(request.url)
                ),
            )
            page.goto(lab.url("panel.ipynb"))
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            page.wait_for_function("() => window.jupyterapp !== undefined")
            prompt = page.locator(".jp-Cell .nbchat-prompt textarea")
            try:
                _run_all(page, prompt)
            except AssertionError:
                _shoot(page, "0-no-panel")
                raise AssertionError(
                    "The panel did not appear; JupyterLab log:\n" + lab.log.read_text()[-3000:]
                ) from None
            conversation = page.locator(".jp-Cell .nbchat-conversation")
            cell_reply = page.locator(".jp-Cell").nth(1).locator(".jp-OutputArea-output")

            # The %%chat cell's hostile reply: its Markdown renders, its HTML is text.
            expect(cell_reply.first).to_contain_text("finish: stop", timeout=30_000)
            expect(cell_reply.locator("h3")).to_have_text("Hostile reply")
            expect(cell_reply.locator("table")).to_be_visible()
            expect(cell_reply.first).to_contain_text("<script>window.")
            # ...and the panel on the same conversation shows it from the history.
            expect(conversation).to_contain_text("Say something hostile")
            expect(conversation).to_contain_text("onerror=")
            # The side panel opened in JupyterLab's right-hand area.
            expect(page.locator("#jp-right-stack .nbchat-panel")).to_be_visible()
            _shoot(page, "1-open")
            # The other cells ran too: a one-line reply with logprobs, its explorer, compare.
            expect(page.locator(".jp-Cell").nth(5).locator(".nbx-tok").first).to_be_visible()
            _wait_for_count(page, page.locator(".jp-Cell").nth(6), "finish: stop", 2)

            # Our own chrome shows no emoji (boxes without an emoji font): icons or text.
            panel = page.locator(".jp-Cell .nbchat-panel").first
            side = page.locator("#jp-right-stack .nbchat-panel")
            for chrome in (panel.locator(".widget-html").first, panel.locator("button"), side):
                for i in range(chrome.count()):
                    assert not chrome.nth(i).evaluate(_EMOJI_JS), chrome.nth(i).inner_text()
            expect(panel.locator(".widget-html").first.locator("i.fa-comments")).to_be_visible()
            # Cell turns and the panel's own are headed alike.
            expect(
                conversation.locator(".nbchat-turn-head, .nbchat-message > strong")
            ).to_have_text(["You", "Assistant"])

            _check_side_area(page)

            # Shift+Enter adds a line; Enter sends.
            prompt.click()
            prompt.type("Say")
            prompt.press("Shift+Enter")
            prompt.type("hello")
            assert prompt.input_value() == "Say\nhello"
            prompt.press("Enter")
            expect(conversation).to_contain_text(SHORT, timeout=30_000)
            expect(page.locator(".jp-Cell .nbchat-panel-footer")).to_contain_text("tokens")
            assert server.requests[-1]["messages"][-1]["content"] == "Say\nhello"
            assert server.requests[-1]["stream"] is True
            expect(prompt).to_have_value("")

            # A hostile reply streamed into the panel, and an error whose message is hostile.
            _send(page, prompt, "Be hostile here too")
            _wait_for_count(page, conversation, "Hostile reply", 2)
            expect(page.locator(".jp-Cell button.nbchat-send")).to_be_enabled()
            # The conversation area keeps its newest turn in view.
            conversation.scroll_into_view_if_needed()
            expect(conversation.locator(".nbchat-footer").last).to_be_in_viewport()
            _send(page, prompt, "Please fail")
            expect(conversation).to_contain_text("BadRequestError", timeout=30_000)
            expect(conversation).to_contain_text('Bad <img src=x onerror="window.')

            # A long reply, in a window as short as the issue's: watch it stream, then stop it
            # midway. The panel keeps its size and Stop its place, the newest text is in view
            # until the user scrolls up, and then the text stays where the user put it.
            page.set_viewport_size({"width": 1400, "height": SHORT_WINDOW})
            _stream_and_stop(page, prompt)
            page.set_viewport_size({"width": 1400, "height": 1000})
            expect(conversation).to_contain_text("Interrupted", timeout=30_000)
            shown = conversation.inner_text()
            assert "word3" in shown and "word399" not in shown
            # Said once, by the reply's card: not again in the status line.
            assert "kept" not in page.locator(".jp-Cell .nbchat-status").first.inner_text()
            expect(page.locator(".jp-Cell button.nbchat-send")).to_be_enabled()

            # Ask again with logprobs, then open the explorer on the reply.
            page.locator(".jp-Cell").get_by_role("button", name="logprobs").click()
            _send(page, prompt, "Say hello again")
            expect(conversation).to_contain_text("Say hello again", timeout=30_000)
            # The Send button is enabled before the request starts too: wait for the answer
            # itself, so that Explore opens on this reply and not on the one before it.
            _wait_for_count(page, conversation, SHORT, 2)
            expect(page.locator(".jp-Cell button.nbchat-send")).to_be_enabled(timeout=30_000)
            assert server.requests[-1]["logprobs"] is True
            page.locator(".jp-Cell").get_by_role("button", name="Explore").click()
            tokens = page.locator(".jp-Cell .nbchat-panel .nbchat-explorer .nbx-tok")
            expect(tokens.first).to_be_visible(timeout=30_000)
            count = tokens.count()
            assert count == len(range(0, len(SHORT), 6))
            assert (
                page.locator(".jp-Cell .nbchat-panel .nbchat-explorer .nbx-low").count()
                == (count + 2) // 3
            )
            tokens.nth(1).click()
            popup = tokens.nth(1).locator(".nbx-pop")
            expect(popup).to_be_visible()
            expect(popup).to_contain_text("p = 95.0%")
            # The last alternative is on screen, not clipped by the widget boxes around it.
            box = popup.locator("tr").last.bounding_box()
            point = [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2]
            hit = "([x, y]) => !!document.elementFromPoint(x, y)?.closest('.nbx-pop')"
            assert page.evaluate(hit, point)
            _check_cell_explorer(page)

            # Nothing the server wrote ran, loaded or became markup.
            assert page.evaluate(f"() => window.{PWNED}") is None
            assert dialogs == []
            assert server.fetched == [] and elsewhere == []
            assert page.evaluate(_ACTIVE_JS, _OUTPUTS) == []
            assert page.locator(".jp-Notebook").is_visible()

            # Readable in the light theme and in the dark one.
            contrast = {}
            for theme, light in (("JupyterLab Light", True), ("JupyterLab Dark", False)):
                name = "light" if light else "dark"
                _set_theme(page, theme, light)
                heading = cell_reply.locator("h3")
                heading.scroll_into_view_if_needed()
                _shoot(page, f"3-{name}-chat-reply", showing=heading)
                error = conversation.get_by_text("BadRequestError")
                error.scroll_into_view_if_needed()
                _shoot(page, f"4-{name}-panel-error", showing=error)
                tokens.nth(1).click()
                tokens.nth(1).scroll_into_view_if_needed()
                _shoot(page, f"5-{name}-explorer")
                contrast[name] = _readability(page)
                contrast[f"{name}, disabled"] = _disabled_contrast(page)
            with capsys.disabled():
                print(f"contrast: {json.dumps(contrast)}")
            for theme, ratios in contrast.items():
                least = DISABLED if theme.endswith("disabled") else READABLE
                low = {name: ratio for name, ratio in ratios.items() if ratio < least}
                assert not low, f"hard to read in the {theme} theme: {low}"
            assert page.evaluate(f"() => window.{PWNED}") is None
            assert dialogs == [] and elsewhere == []

            # The notebook JupyterLab saves holds the conversation as text for static viewers,
            # kept up to date by the panel after the cell that showed it had finished.
            page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
            deadline = time.monotonic() + 30
            while "Say hello again" not in notebook.read_text():
                assert time.monotonic() < deadline, "the saved notebook has no conversation"
                page.wait_for_timeout(200)
        finally:
            browser.close()
    saved = json.loads(notebook.read_text())
    _check_static_export(saved)
    assert time.monotonic() - started < 150


def _box(locator) -> dict[str, float]:
    # A streaming area replaces its HTML ten times a second: an element found a moment ago may
    # be gone when measured, and its successor is measured instead.
    for _ in range(20):
        box = locator.bounding_box()
        if box is not None:
            return box
        time.sleep(0.05)
    raise AssertionError(f"{locator} is not shown")


def _stream_and_stop(page, prompt) -> None:
    """Send the long prompt, check the panel's geometry while it streams, then press Stop."""
    from playwright.sync_api import expect

    panel = page.locator(".jp-Cell .nbchat-panel").first
    stop = page.locator(".jp-Cell button.nbchat-stop")
    scroller = page.locator(".jp-Cell .nbchat-scroller")
    live = page.locator(".jp-Cell .nbchat-live")
    panel.evaluate("(e) => e.scrollIntoView({block: 'end'})")
    resting, stop_at = _box(panel), _box(stop)
    prompt.fill("Tell a long story")
    page.locator(".jp-Cell button.nbchat-send").click()
    for word in ("word3", "word40", "word90"):
        expect(live).to_contain_text(word, timeout=30_000)
        # The panel neither grows nor moves, and Stop stays where it was, on screen.
        now, here = _box(panel), _box(stop)
        assert abs(now["height"] - resting["height"]) <= 1 and abs(now["y"] - resting["y"]) <= 1
        assert abs(here["y"] - stop_at["y"]) <= 1 and here["y"] + here["height"] <= SHORT_WINDOW
        # The live turn is inside the conversation box, its newest text in view.
        frame, cursor = _box(scroller), _box(live.locator(".nbchat-cursor"))
        assert frame["y"] <= cursor["y"] and cursor["y"] + cursor["height"] <= (
            frame["y"] + frame["height"] + 1
        )
    _shoot(page, "2-streaming")
    # Scrolled up, the text in view stays put while more arrives.
    probe = (
        "(e) => { const r = e.getBoundingClientRect();"
        " const el = document.elementFromPoint(r.x + 40, r.bottom - 60);"
        " return [el.textContent.slice(0, 40), el.getBoundingClientRect().y]; }"
    )
    scroller.evaluate("(e) => { e.scrollTop = -120; }")
    page.wait_for_timeout(200)
    seen = scroller.evaluate(probe)
    expect(live).to_contain_text("word130", timeout=30_000)
    assert scroller.evaluate("(e) => e.scrollTop") < -120
    text, y = scroller.evaluate(probe)
    assert text == seen[0] and abs(y - seen[1]) <= 2, (seen, text, y)
    _shoot(page, "2-scrolled-up")
    stop.click()
    expect(page.locator(".jp-Cell button.nbchat-send")).to_be_enabled(timeout=30_000)
    page.wait_for_timeout(300)
    # The finished turn takes the live one's place: the panel keeps its size, nothing jumps.
    assert abs(_box(panel)["height"] - resting["height"]) <= 1


def _check_side_area(page) -> None:
    """The side panel at JupyterLab's default width and wider: controls wrap, buttons keep
    their labels, nothing scrolls sideways, a long model id fits, the message box is in view."""
    side = page.locator("#jp-right-stack .nbchat-panel")
    stack = page.locator("#jp-right-stack")
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").nth(1)
    side.locator(".widget-text input").first.fill(LONG_MODEL)
    measure = """(e) => {
      const wide = [...e.querySelectorAll('*')].filter((el) => el.clientWidth > 0
        && getComputedStyle(el).overflowX !== 'visible' && el.scrollWidth > el.clientWidth + 1);
      const input = e.querySelector('.widget-text input');
      return {
        wide: wide.map((el) => el.className.toString()),
        sideways: e.scrollWidth > e.clientWidth + 1 || e.parentElement.scrollWidth >
          e.parentElement.clientWidth + 1,
        clipped: [...e.querySelectorAll('button')].filter((b) => b.scrollWidth > b.clientWidth
          || b.clientWidth < 40).map((b) => b.innerText),
        model: input.scrollWidth <= input.clientWidth,
        prompt: e.querySelector('.nbchat-prompt textarea').getBoundingClientRect().bottom,
        send: e.querySelector('button.nbchat-send').getBoundingClientRect().bottom,
      };
    }"""
    for width in SIDE_WIDTHS:
        grip, now = _box(handle), _box(stack)["width"]
        x, y = grip["x"] + grip["width"] / 2, grip["y"] + 300
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + (now - width) / 2, y, steps=4)
        page.mouse.move(x + now - width, y, steps=4)
        page.mouse.up()
        page.wait_for_timeout(400)
        assert abs(_box(stack)["width"] - width) <= 2
        _shoot(page, f"6-side-{width}")
        found = side.evaluate(measure)
        assert not found["wide"] and not found["sideways"], (width, found)
        assert not found["clipped"], (width, found["clipped"])
        assert found["model"], f"{LONG_MODEL} does not fit at {width} px"
        viewport = page.viewport_size["height"]
        assert found["prompt"] <= viewport and found["send"] <= viewport, (width, found)


def _check_cell_explorer(page) -> None:
    """``nbchat.explore(nbchat.last)`` on a one-line reply: the last token's pop-up shows whole,
    with no scroll bar in the output."""
    from playwright.sync_api import expect

    cell = page.locator(".jp-Cell").nth(5)
    tokens = cell.locator(".nbx-tok")
    last = tokens.last
    last.scroll_into_view_if_needed()
    last.click()
    popup = last.locator(".nbx-pop")
    expect(popup).to_be_visible()
    rows = popup.locator("tr")
    assert rows.count() == 5
    box = _box(rows.last)
    point = [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2]
    hit = "([x, y]) => !!document.elementFromPoint(x, y)?.closest('.nbx-pop')"
    assert page.evaluate(hit, point)
    area = cell.locator(".jp-OutputArea-output").first
    assert area.evaluate("(e) => e.scrollHeight <= e.clientHeight + 1"), "the output scrolls"
    expect(cell.locator(".nbchat-explorer")).to_contain_text("(geometric)")
    _shoot(page, "5-cell-explorer")


def _check_static_export(saved: dict) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    outputs = saved["cells"][2]["outputs"]
    (record,) = [
        o
        for o in outputs
        if o.get("data", {}).get("application/vnd.jupyter.widget-view+json", {}).get("model_id")
        == ""
    ]
    text = record["data"]["text/plain"]
    assert "Say hello again" in ("".join(text) if isinstance(text, list) else text)
    page, _ = HTMLExporter().from_notebook_node(nbformat.reads(json.dumps(saved), as_version=4))
    body = page.split('class="jp-Cell ', 1)[1].split("</main>", 1)[0]
    assert "Say hello again" in body and "Hello from the test server!" in body
    hostile.assert_inert(body, "HTML export of the saved notebook")


@pytest.mark.skipif(_missing() is not None, reason=_missing() or "")
def test_a_finished_each_exports_as_a_static_line_and_a_plain_frame(tmp_path, capsys):
    """``%%chat --each`` run headlessly, exported to HTML and looked at in Chromium: the bar is
    one line of text, not the widget's repr; the frame shows no "None" and short latencies."""
    import nbformat
    from nbconvert import HTMLExporter
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with LLMServer(delay=0.05) as server:
        notebook = _notebook(server.base_url)
        notebook["cells"] = [
            notebook["cells"][0],
            _cell("import pandas as pd\nrows = pd.DataFrame({'text': list('abcde')})"),
            _cell("%%chat --each rows -o out\nSay {text}"),
            _cell("out"),
        ]
        source = tmp_path / "each.ipynb"
        source.write_text(json.dumps(notebook))
        subprocess.run(
            [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
             str(source), "--output", "executed.ipynb"],
            cwd=tmp_path, check=True, timeout=180, capture_output=True,
        )  # fmt: skip
    executed = nbformat.read(tmp_path / "executed.ipynb", as_version=4)
    bar = [o for o in executed.cells[2].outputs if o.get("output_type") == "display_data"]
    assert len(bar) == 1 and set(bar[0]["data"]) == {"text/html", "text/plain"}, bar
    line = bar[0]["data"]["text/plain"]
    assert re.fullmatch(r"nbchat\.map: 5 of 5 rows, 0 errors, 80 tokens, \d+\.\d s", line), line

    page_html, _ = HTMLExporter().from_notebook_node(executed)
    body = page_html.split('class="jp-Cell ', 1)[1]
    assert "HBox(" not in body and "widget-view" not in body
    assert line in body
    frame = executed.cells[3].outputs[0]["data"]["text/html"]
    assert ">None<" not in frame
    latencies = re.findall(r"<td>(\d+\.\d+)</td>\s*</tr>", frame)
    assert len(latencies) == 5 and all(len(value.split(".")[1]) <= 3 for value in latencies)
    export = tmp_path / "each.html"
    export.write_text(page_html)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 700})
            page.goto(export.as_uri())
            shown = page.locator(".jp-Cell").nth(2).inner_text()
            assert line in shown and "HBox" not in shown
            page.screenshot(path=str(SHOTS / "7-each-export.png"), full_page=True)
        finally:
            browser.close()
