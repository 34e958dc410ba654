"""Conversions: notebook objects (images, data, functions, variables, errors, code) into request
parts, and replies (structured output, code blocks, reasoning) back. Pure functions.
"""
