"""The example payloads of the protocol reference, transcribed once as Python literals.

Tests import them instead of repeating them. They are shared: copy one before changing it.
Where the reference elides a part ("[...]"), it is filled in from the reference's own examples.
"""

from __future__ import annotations

from typing import Any

# ---------------------------------------------------------------------------------------------
# Requests and their parts

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "获取指定城市的当前天气信息。",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "城市名称,如:Beijing, China"},
                "units": {
                    "type": ["string", "null"],
                    "enum": ["celsius", "fahrenheit"],
                    "description": "温度单位,默认 celsius",
                },
            },
            "required": ["location", "units"],
            "additionalProperties": False,
        },
    },
}

SYSTEM_MESSAGE = {"role": "system", "content": "你是一个专业的客服助手,回答要简洁、友好。"}

USER_MESSAGE = {"role": "user", "content": "今天天气怎么样?"}

IMAGE_MESSAGE = {
    "role": "user",
    "content": [
        {"type": "text", "text": "这张图片里有什么?"},
        {
            "type": "image_url",
            "image_url": {"url": "https://example.com/image.jpg", "detail": "auto"},
        },
    ],
}

ASSISTANT_MESSAGE = {"role": "assistant", "content": "今天天气晴朗,气温25度。"}

ASSISTANT_TOOL_CALL_MESSAGE = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {
            "id": "call_abc123",
            "type": "function",
            "function": {
                "name": "get_weather",
                "arguments": '{"location": "Beijing", "units": "celsius"}',
            },
        }
    ],
}

TOOL_MESSAGE = {
    "role": "tool",
    "tool_call_id": "call_abc123",
    "content": '{"temperature": 25, "condition": "晴天"}',
}

ALL_FIELDS_REQUEST = {
    "model": "gpt-4.1",
    "messages": [USER_MESSAGE],
    "temperature": 1.0,
    "top_p": 1.0,
    "max_tokens": 4096,
    "n": 1,
    "stop": ["\n", "END"],
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "logit_bias": {"50256": -100},
    "seed": 42,
    "user": "user-abc123",
    "tools": [WEATHER_TOOL],
    "tool_choice": "auto",
    "stream": False,
    "logprobs": False,
    "top_logprobs": None,
    "response_format": {"type": "text"},
    "parallel_tool_calls": True,
    "store": False,
}

SIMPLE_REQUEST = {
    "model": "gpt-4.1",
    "messages": [
        {"role": "system", "content": "你是一个有帮助的助手。"},
        {"role": "user", "content": "用一句话解释量子纠缠。"},
    ],
    "temperature": 0.7,
    "max_tokens": 200,
}

TOOL_REQUEST = {
    "model": "gpt-4.1",
    "messages": [{"role": "user", "content": "北京现在天气怎么样?"}],
    "tools": [WEATHER_TOOL],
    "tool_choice": "auto",
}

TOOL_RESULT_REQUEST = {
    "model": "gpt-4.1",
    "messages": [
        {"role": "user", "content": "北京现在天气怎么样?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc123xyz",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"location": "Beijing, China", "units": "celsius"}',
                    },
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_abc123xyz",
            "content": '{"temperature": 28, "condition": "晴天", "humidity": 45}',
        },
    ],
    "tools": [WEATHER_TOOL],
}

PARALLEL_TOOL_RESULTS_REQUEST = {
    "model": "gpt-4.1",
    "messages": [
        {"role": "user", "content": "北京和上海现在天气怎么样?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_001",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"location": "Beijing, China", "units": "celsius"}',
                    },
                },
                {
                    "id": "call_002",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"location": "Shanghai, China", "units": "celsius"}',
                    },
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_001", "content": '{"temperature": 28}'},
        {"role": "tool", "tool_call_id": "call_002", "content": '{"temperature": 32}'},
    ],
}

TOOL_CHOICES = [
    "auto",
    "required",
    "none",
    {"type": "function", "function": {"name": "get_weather"}},
]

VISION_REQUEST = {
    "model": "gpt-4.1",
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "请描述这张图片,并告诉我图中文字内容。"},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/screenshot.png", "detail": "high"},
                },
            ],
        }
    ],
    "max_tokens": 500,
}

BASE64_IMAGE_PART = {
    "type": "image_url",
    "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQAAAQ...", "detail": "low"},
}

STREAM_REQUEST = {
    "model": "gpt-4.1",
    "messages": [{"role": "user", "content": "写一首关于秋天的诗"}],
    "stream": True,
}

JSON_MODE_REQUEST = {
    "model": "gpt-4.1",
    "messages": [
        {"role": "system", "content": "你必须以 JSON 格式回复,包含字段:name, age, city。"},
        {"role": "user", "content": "介绍一下张三,28岁,住在上海。"},
    ],
    "response_format": {"type": "json_object"},
}

# The response_format of the json_schema request: the person_info schema, already strict.
PERSON_INFO_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "person_info",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "age": {"type": "integer"},
                "city": {"type": "string"},
            },
            "required": ["name", "age", "city"],
            "additionalProperties": False,
        },
    },
}

JSON_SCHEMA_REQUEST = {
    "model": "gpt-4.1",
    "messages": [{"role": "user", "content": "介绍一下张三,28岁,住在上海。"}],
    "response_format": PERSON_INFO_FORMAT,
}

LOGPROBS_REQUEST = {
    "model": "gpt-4.1",
    "messages": [{"role": "user", "content": "天空是什么颜色?"}],
    "logprobs": True,
    "top_logprobs": 3,
}

MULTI_TURN_REQUEST = {
    "model": "gpt-4.1",
    "messages": [
        {"role": "system", "content": "你是一个专业助手。"},
        {"role": "user", "content": "北京今天天气?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_001",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location":"Beijing"}'},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_001",
            "content": '{"temp": 28, "condition": "晴"}',
        },
        {"role": "assistant", "content": "北京今天晴天,气温28°C。"},
        {"role": "user", "content": "那上海呢?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_002",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location":"Shanghai"}'},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_002",
            "content": '{"temp": 32, "condition": "多云"}',
        },
    ],
}

# ---------------------------------------------------------------------------------------------
# Responses

CHAT_RESPONSE = {
    "id": "chatcmpl-A1B2C3D4E5F6G7H8",
    "object": "chat.completion",
    "created": 1716936000,
    "model": "gpt-4.1-2025-04-14",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": (
                    "量子纠缠是指两个粒子无论相距多远,对其中一个的测量会瞬间影响另一个的状态。"
                ),
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 35,
        "completion_tokens": 32,
        "total_tokens": 67,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "system_fingerprint": "fp_a1b2c3d4e5",
}

TOOL_CALL_RESPONSE = {
    "id": "chatcmpl-A1B2C3D4E5F6G7H8",
    "object": "chat.completion",
    "created": 1716936000,
    "model": "gpt-4.1-2025-04-14",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_abc123xyz",
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": '{"location": "Beijing, China", "units": "celsius"}',
                        },
                    }
                ],
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 82, "completion_tokens": 23, "total_tokens": 105},
}

TOOL_FOLLOW_UP_RESPONSE = {
    "id": "chatcmpl-B2C3D4E5F6G7H8I9",
    "object": "chat.completion",
    "created": 1716936010,
    "model": "gpt-4.1-2025-04-14",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "北京现在天气晴朗,气温28°C,湿度45%,是个好天气!",
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 130, "completion_tokens": 25, "total_tokens": 155},
}

PARALLEL_TOOL_CALLS_RESPONSE = {
    "choices": [
        {
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_001",
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": '{"location": "Beijing, China", "units": "celsius"}',
                        },
                    },
                    {
                        "id": "call_002",
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": '{"location": "Shanghai, China", "units": "celsius"}',
                        },
                    },
                ],
            },
            "finish_reason": "tool_calls",
        }
    ]
}

JSON_MODE_CONTENT = '{"name": "张三", "age": 28, "city": "上海"}'

LOGPROBS_RESPONSE = {
    "choices": [
        {
            "message": {"role": "assistant", "content": "蓝色"},
            "logprobs": {
                "content": [
                    {
                        "token": "蓝",
                        "logprob": -0.0023,
                        "bytes": [232, 147, 157],
                        "top_logprobs": [
                            {"token": "蓝", "logprob": -0.0023, "bytes": [232, 147, 157]},
                            {"token": "天", "logprob": -6.21, "bytes": [229, 164, 169]},
                            {"token": "深", "logprob": -7.45, "bytes": [230, 150, 177]},
                        ],
                    },
                    {
                        "token": "色",
                        "logprob": -0.0001,
                        "bytes": [232, 137, 178],
                        "top_logprobs": [
                            {"token": "色", "logprob": -0.0001, "bytes": [232, 137, 178]},
                        ],
                    },
                ]
            },
            "finish_reason": "stop",
        }
    ]
}

# The annotated "every response field" example, with its placeholders filled.
FULL_RESPONSE = {
    "id": "chatcmpl-xxx",
    "object": "chat.completion",
    "created": 1716936000,
    "model": "gpt-4.1-2025-04-14",
    "system_fingerprint": "fp_xxx",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "...",
                "tool_calls": [
                    {
                        "id": "call_001",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    }
                ],
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 35,
        "completion_tokens": 32,
        "total_tokens": 67,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
}

ERROR_BODY = {
    "error": {
        "message": (
            "This model's maximum context length is 128000 tokens. "
            "However, you requested 150000 tokens."
        ),
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}

# ---------------------------------------------------------------------------------------------
# Streaming: the events byte for byte as a server sends them, and the chunks they carry

STREAM_BYTES = (
    'data: {"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1716936000,'
    '"model":"gpt-4.1-2025-04-14","choices":[{"index":0,"delta":{"role":"assistant","content":""},'
    '"logprobs":null,"finish_reason":null}]}\n\n'
    'data: {"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1716936000,'
    '"model":"gpt-4.1-2025-04-14","choices":[{"index":0,"delta":{"content":"秋"},'
    '"logprobs":null,"finish_reason":null}]}\n\n'
    'data: {"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1716936000,'
    '"model":"gpt-4.1-2025-04-14","choices":[{"index":0,"delta":{"content":"风"},'
    '"logprobs":null,"finish_reason":null}]}\n\n'
    'data: {"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1716936000,'
    '"model":"gpt-4.1-2025-04-14","choices":[{"index":0,"delta":{},"logprobs":null,'
    '"finish_reason":"stop"}]}\n\n'
    "data: [DONE]\n\n"
).encode()

STREAM_CHUNKS = [
    {
        "id": "chatcmpl-abc",
        "object": "chat.completion.chunk",
        "created": 1716936000,
        "model": "gpt-4.1-2025-04-14",
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
    },
    {
        "id": "chatcmpl-abc",
        "object": "chat.completion.chunk",
        "created": 1716936000,
        "model": "gpt-4.1-2025-04-14",
        "choices": [
            {"index": 0, "delta": {"content": "秋"}, "logprobs": None, "finish_reason": None}
        ],
    },
    {
        "id": "chatcmpl-abc",
        "object": "chat.completion.chunk",
        "created": 1716936000,
        "model": "gpt-4.1-2025-04-14",
        "choices": [
            {"index": 0, "delta": {"content": "风"}, "logprobs": None, "finish_reason": None}
        ],
    },
    {
        "id": "chatcmpl-abc",
        "object": "chat.completion.chunk",
        "created": 1716936000,
        "model": "gpt-4.1-2025-04-14",
        "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
    },
]

TOOL_STREAM_BYTES = (
    b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_abc",'
    b'"type":"function","function":{"name":"get_weather","arguments":""}}]},'
    b'"finish_reason":null}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":'
    b'{"arguments":"{\\"loc"}}]},"finish_reason":null}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":'
    b'{"arguments":"ation\\":"}}]},"finish_reason":null}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":'
    b'{"arguments":"\\"Beijing\\"}"}}]},"finish_reason":null}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\n'
    b"data: [DONE]\n\n"
)

TOOL_STREAM_CHUNKS: list[dict[str, Any]] = [
    {
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_abc",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ""},
                        }
                    ]
                },
                "finish_reason": None,
            }
        ]
    },
    {
        "choices": [
            {
                "index": 0,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"loc'}}]},
                "finish_reason": None,
            }
        ]
    },
    {
        "choices": [
            {
                "index": 0,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'ation":'}}]},
                "finish_reason": None,
            }
        ]
    },
    {
        "choices": [
            {
                "index": 0,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"Beijing"}'}}]},
                "finish_reason": None,
            }
        ]
    },
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
]
