"""The conversation: Chat (history, the one request path, the tool loop), named sessions, the
endpoint a request goes to, and history trimming. It prints nothing.
"""
