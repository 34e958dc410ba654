"""An agent cell where approval buttons can be clicked: rewritten to an async cell only there,
run in a worker with the widget as its way to ask, and the model's code handed back to the main
thread."""

from __future__ import annotations

import asyncio
import threading

from nbchat.notebook import agentcell
from nbchat.notebook.agentcell import in_main_thread, rewrite, stop_requested, widget_asker


def test_only_agent_cells_where_a_click_can_arrive_are_rewritten(monkeypatch):
    cell = ["%%chat --agent -t 0\n", "Do it\n"]
    monkeypatch.setattr(agentcell, "_widgets_can_answer", lambda: False)
    assert rewrite(cell) == cell
    monkeypatch.setattr(agentcell, "_widgets_can_answer", lambda: True)
    (line,) = rewrite(cell)
    assert line.startswith("await __import__('nbchat.notebook.agentcell'")
    assert "'--agent -t 0'" in line and "'Do it\\n'" in line
    assert rewrite(["%%chat --agent --yes\n", "x\n"]) == ["%%chat --agent --yes\n", "x\n"]
    assert rewrite(["%%chat -t 0\n", "x\n"]) == ["%%chat -t 0\n", "x\n"]
    assert rewrite(["print(1)\n"]) == ["print(1)\n"]


def test_no_widget_in_a_plain_kernel_or_shell():
    # The test shell has no frontend that answers: cells stay synchronous.
    assert not agentcell._widgets_can_answer()


def test_the_magic_runs_in_a_worker_that_asks_with_the_widget_and_hands_code_back():
    ran_in: list[str] = []

    class Shell:
        def find_cell_magic(self, name):
            def magic(line, cell):
                assert widget_asker() is not None and not stop_requested()
                ran_in.append(threading.current_thread().name)
                return in_main_thread(lambda: threading.current_thread().name)

            return magic

    async def main():
        return await agentcell.run(Shell(), "--agent", "hi")

    where = asyncio.run(main())
    assert ran_in and ran_in[0] != threading.main_thread().name
    assert where == threading.main_thread().name
    assert widget_asker() is None  # only inside the agent cell


def test_ctrl_c_of_the_cell_sets_stop_and_waits_for_the_turn_to_end():
    seen: list[bool] = []

    class Shell:
        def find_cell_magic(self, name):
            def magic(line, cell):
                while not stop_requested():
                    threading.Event().wait(0.01)
                seen.append(True)
                return "ended"

            return magic

    async def main():
        task = asyncio.ensure_future(agentcell.run(Shell(), "--agent", "hi"))
        await asyncio.sleep(0.1)
        task.cancel()  # what ipykernel does with an async cell on Ctrl-C
        return await task

    assert asyncio.run(main()) == "ended" and seen == [True]
