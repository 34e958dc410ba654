"""Protocol layer: pydantic types of the Chat Completions API, the exception tree, JSON-schema
helpers and the listener hooks. It imports nothing else of nbchat's.
"""
