from __future__ import annotations

import nbchat

EXPECTED = {
    # the client and its protocol types
    "Client",
    "AsyncClient",
    "DEFAULT_BASE_URL",
    "ChatStream",
    "AsyncChatStream",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    # conversations
    "Chat",
    "ChatListener",
    "Reply",
    "session",
    "last",
    # the store: every exchange, its cost, the budget, replay
    "log",
    "tool_log",
    "BudgetExceededError",
    "ReplayMissError",
    "CassetteError",
    # one prompt over many rows, or many models
    "map",
    "amap",
    "compare",
    "batch_file",
    "read_batch_output",
    # errors
    "NbchatError",
    "RequestValidationError",
    "APIError",
    "APIConnectionError",
    "APITimeoutError",
    "APIResponseValidationError",
    "IncompleteStreamError",
    "ResponseDecodingError",
    "ResponseTooLargeError",
    "APIStatusError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "UnprocessableEntityError",
    "RateLimitError",
    "InternalServerError",
    "ServiceUnavailableError",
    "UnsupportedFeatureError",
    "StoredCompletionsUnsupportedError",
    # tools
    "tool",
    "as_tool",
    "Tool",
    "ToolArgumentsError",
    "ToolDefinitionError",
    "ToolPolicy",
    "ToolResult",
    "ToolRunInterrupted",
    "run_tool_calls",
    "arun_tool_calls",
    "Decision",
    "ToolOutput",
    # MCP servers as tools
    "mcp",
    "MCPConfigError",
    "MCPServerError",
    "MCPTimeoutError",
    "MCPToolError",
    "Prompt",
    # notebook objects in, structured results out
    "image_part",
    "ImagePart",
    "ImageError",
    "estimate_image_tokens",
    "data_block",
    "DataBlock",
    "DataError",
    "audio_part",
    "AudioError",
    "file_part",
    "FileInputError",
    "response_format_for",
    "parse_reply",
    "to_frame",
    "StructuredOutputError",
    "logprobs_frame",
    "logprobs_html",
    "logprobs_summary",
    "LogprobsError",
    # widgets
    "panel",
    "ChatPanel",
    "explore",
    # the extension
    "load_ipython_extension",
    "unload_ipython_extension",
    "__version__",
}


def test_public_names_are_exactly_the_intended_ones():
    assert set(nbchat.__all__) == EXPECTED
    assert len(nbchat.__all__) == len(set(nbchat.__all__))


def test_every_public_name_resolves():
    for name in nbchat.__all__:
        assert hasattr(nbchat, name), name
    assert set(nbchat.__all__) <= set(dir(nbchat))


def test_unknown_attribute_is_an_attribute_error():
    try:
        nbchat.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("no error")


def test_errors_form_one_tree():
    assert issubclass(nbchat.RateLimitError, nbchat.APIStatusError)
    assert issubclass(nbchat.APIStatusError, nbchat.APIError)
    assert issubclass(nbchat.APITimeoutError, nbchat.APIConnectionError)
    assert issubclass(nbchat.ServiceUnavailableError, nbchat.InternalServerError)
    for name in (
        "RequestValidationError",
        "APIError",
        "ToolDefinitionError",
        "ImageError",
        "DataError",
        "StructuredOutputError",
        "LogprobsError",
        "BudgetExceededError",
        "ReplayMissError",
    ):
        assert issubclass(getattr(nbchat, name), nbchat.NbchatError), name


def test_the_names_for_type_checkers_are_the_export_table():
    # The table is the one list: __all__ is derived from it, and the imports type checkers
    # read name the same names from the same modules.
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(nbchat))
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    )
    imported = {
        alias.name: node.module
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert imported == nbchat._EXPORTS
    assert nbchat.__all__ == sorted([*nbchat._EXPORTS, *nbchat._OWN])
