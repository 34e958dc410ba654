def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "browser: end-to-end test in JupyterLab and headless Chromium "
        "(needs the jupyterlab and playwright packages and /usr/bin/chromium)",
    )
