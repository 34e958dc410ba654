"""The values the specification lists for some request fields, importable without the protocol
types themselves (the cell magic's options offer them when the extension loads)."""

__all__ = [
    "AUDIO_FORMATS",
    "INPUT_AUDIO_FORMATS",
    "REASONING_EFFORTS",
    "SERVICE_TIERS",
    "VERBOSITIES",
    "VOICES",
    "WEB_SEARCH_CONTEXT_SIZES",
]

#: ``reasoning_effort``.
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
#: ``service_tier``, asked for and reported.
SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority", "fast")
#: ``verbosity``.
VERBOSITIES = ("low", "medium", "high")
#: The voices of spoken replies (``audio.voice``); a custom voice is ``{"id": ...}``.
VOICES = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")
#: ``audio.format`` of spoken replies.
AUDIO_FORMATS = ("wav", "aac", "mp3", "flac", "opus", "pcm16")
#: ``input_audio.format`` of recordings sent.
INPUT_AUDIO_FORMATS = ("wav", "mp3")
#: ``web_search_options.search_context_size``.
WEB_SEARCH_CONTEXT_SIZES = ("low", "medium", "high")
