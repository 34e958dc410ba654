"""Rendering: the one safe renderer for outside text, display bundles, the live view and the
logprobs views. It never sends HTTP.
"""
