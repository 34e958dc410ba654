"""Transport layer: the HTTP client, SSE decoding, streams and their accumulation, retries,
bounded bodies, prepared requests and server profiles. It knows nothing of notebooks.
"""
