"""The notebooks run as tests against the local model, whatever the shell's environment has."""

import os

for variable in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
    os.environ.pop(variable, None)
