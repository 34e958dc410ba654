"""The kinds of server nbchat has a profile for, importable without the profiles themselves
(the settings read them when the extension loads)."""

KINDS = (
    "openai",
    "azure",
    "llama-cpp-python",
    "llama-server",
    "vllm",
    "ollama",
    "lmstudio",
    "openrouter",
    "generic",
)
