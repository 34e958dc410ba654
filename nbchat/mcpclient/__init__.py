"""MCP servers as tools: the ``mcpServers`` configuration, one connection per server on an event
loop thread of nbchat's own, and each server tool as an nbchat ``Tool`` (``nbchat.mcp("NAME")``).

The protocol is the official ``mcp`` SDK's (the ``mcp`` extra); nothing here speaks it by hand.
"""
