"""Recordings in, ``input_audio`` content parts out; spoken replies out as playable WAV.

A recording may be WAV or MP3 bytes or a file of them, a numpy array of samples (with its
sample rate), or an IPython ``Audio`` object. WAV is written with the standard library's
``wave`` (16-bit PCM), so no ffmpeg is needed; MP3 is sent as it is. The format is read from
the bytes themselves, never from a file name: anything else is an :class:`AudioError`.
"""

from __future__ import annotations

import base64
import binascii
import html
import io
import os
import sys
import wave
from dataclasses import dataclass
from typing import Any

from ..protocol.exceptions import NbchatError
from .sizes import human_bytes, read_file

__all__ = [
    "AUDIO_TOKENS_PER_SECOND",
    "MAX_AUDIO_BYTES",
    "PCM16_RATE",
    "AudioError",
    "AudioPart",
    "SpokenReply",
    "audio_part",
    "estimate_audio_tokens",
    "spoken_reply",
    "wav_from_pcm16",
]

#: Most bytes of one recording read and sent (a file past it is refused before reading it).
MAX_AUDIO_BYTES = 25 * 1024 * 1024
#: The sample rate of the API's ``pcm16`` audio: 24 kHz, 16-bit, mono, little-endian.
PCM16_RATE = 24_000
#: Prompt tokens counted per second of audio: an estimate that errs high (the server's usage,
#: ``prompt_tokens_details.audio_tokens``, is what is billed).
AUDIO_TOKENS_PER_SECOND = 20
# MP3 of unknown length: its duration guessed from its size at this many bytes a second
# (128 kbit/s).
_MP3_BYTES_PER_SECOND = 16_000


class AudioError(NbchatError, ValueError):
    """An object that cannot be sent as a recording; nothing was sent."""


@dataclass(frozen=True, repr=False)
class AudioPart:
    """One recording ready to send: its bytes, format and length."""

    data: bytes
    format: str
    seconds: float | None = None
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The ``input_audio`` content part of a user message."""
        encoded = base64.b64encode(self.data).decode("ascii")
        return {"type": "input_audio", "input_audio": {"data": encoded, "format": self.format}}

    @property
    def tokens(self) -> int:
        return estimate_audio_tokens(self.data, self.format)

    def summary(self) -> str:
        length = f"{self.seconds:.1f} s, " if self.seconds is not None else ""
        return f"{self.format.upper()} audio, {length}{human_bytes(len(self.data))}"

    def __repr__(self) -> str:
        return f"AudioPart({self.summary()})"

    def _repr_html_(self) -> str:
        return f"<div><small>🎙 {html.escape(self.summary())}</small></div>"


def audio_part(obj: Any, *, sample_rate: int | None = None) -> AudioPart:
    """Turn ``obj`` into an :class:`AudioPart`.

    ``obj`` may be WAV or MP3 bytes, a path to such a file (str or ``os.PathLike``), a numpy
    array of samples (1-D, or 2-D with channels on the shorter axis; floats in -1…1 or int16)
    with ``sample_rate``, an IPython ``Audio`` object, or an AudioPart. Raises AudioError.
    """
    if isinstance(obj, AudioPart):
        return obj
    if sample_rate is not None and (
        isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 1
    ):
        raise AudioError(f"the sample rate must be a whole number of Hz, not {sample_rate!r}")
    if _is_ndarray(obj):
        if sample_rate is None:
            raise AudioError(
                "a numpy array of samples needs its sample rate (--sample-rate N, or sample_rate=N)"
            )
        wav = _wav_from_array(obj, sample_rate)
        return AudioPart(wav, "wav", _wav_seconds(wav), "array")
    if _is_ipython_audio(obj):
        data = getattr(obj, "data", None)
        if not isinstance(data, bytes):
            raise AudioError(
                "the Audio object only links to its sound (url=…, embed=False): pass the file "
                "or its bytes instead"
            )
        return _from_bytes(data, "Audio object")
    if isinstance(obj, bytes | bytearray | memoryview):
        return _from_bytes(bytes(obj), "bytes")
    if isinstance(obj, str | os.PathLike):
        path = os.fspath(obj)
        if isinstance(path, bytes):
            path = path.decode()
        if path.startswith(("http://", "https://")):
            raise AudioError(
                "recordings are sent as their data: download the file and pass its path"
            )
        data = read_file(path, limit=MAX_AUDIO_BYTES, what="audio", error=AudioError)
        return _from_bytes(data, f"file {os.path.basename(path) or path}")
    raise AudioError(
        f"cannot send a {type(obj).__name__} as audio: pass WAV or MP3 bytes, a file path, a "
        "numpy array with a sample rate, or an IPython Audio object"
    )


def _from_bytes(data: bytes, source: str) -> AudioPart:
    if len(data) > MAX_AUDIO_BYTES:
        raise AudioError(
            f"the {source} is {human_bytes(len(data))}, over the "
            f"{human_bytes(MAX_AUDIO_BYTES)} limit for a recording"
        )
    kind = _format_of(data)
    if kind == "wav":
        return AudioPart(data, "wav", _wav_seconds(data), source)
    if kind == "mp3":
        return AudioPart(data, "mp3", None, source)
    head = data[:12]
    raise AudioError(
        f"the {source} is not WAV or MP3 audio (it starts with {head!r}); the API takes only "
        "those two: convert it first (e.g. with ffmpeg -i in.ogg out.wav)"
    )


def _format_of(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:3] == b"ID3":
        return "mp3"
    # An MPEG audio frame: 11 sync bits, then layer III (01) of MPEG 1, 2 or 2.5.
    if len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0 and data[1] & 0x06 == 0x02:
        return "mp3"
    return None


def _is_ndarray(obj: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(obj, numpy.ndarray)


def _is_ipython_audio(obj: Any) -> bool:
    display = sys.modules.get("IPython.display") or sys.modules.get("IPython.lib.display")
    audio = getattr(display, "Audio", None)
    return audio is not None and isinstance(obj, audio)


def _wav_from_array(array: Any, rate: int) -> bytes:
    import numpy as np

    samples = np.asarray(array)
    if samples.ndim == 2:
        # Channels on the shorter axis; WAV interleaves them frame by frame.
        if samples.shape[0] < samples.shape[1]:
            samples = samples.T
    elif samples.ndim != 1:
        raise AudioError(f"audio samples must be 1-D or 2-D, not {samples.ndim}-D")
    if samples.size == 0:
        raise AudioError("the array holds no samples")
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    if channels > 8:
        raise AudioError(f"{channels} channels: is the array the right way round?")
    if samples.dtype == np.int16:
        pcm = samples
    elif np.issubdtype(samples.dtype, np.floating):
        if not np.isfinite(samples).all():
            raise AudioError("the samples hold NaN or infinity")
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    elif np.issubdtype(samples.dtype, np.integer) or samples.dtype == np.bool_:
        raise AudioError(
            f"integer samples must be int16, not {samples.dtype}; floats are read in -1…1"
        )
    else:
        raise AudioError(f"cannot read {samples.dtype} samples as sound")
    return _wav(np.ascontiguousarray(pcm, dtype="<i2").tobytes(), rate, channels)


def _wav(pcm: bytes, rate: int, channels: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(pcm)
    return out.getvalue()


def wav_from_pcm16(pcm: bytes, rate: int = PCM16_RATE, channels: int = 1) -> bytes:
    """Raw 16-bit little-endian PCM (the API's ``pcm16``) as a WAV file."""
    return _wav(pcm[: len(pcm) // 2 * 2], rate, channels)


def _wav_seconds(data: bytes) -> float | None:
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            rate = reader.getframerate()
            return reader.getnframes() / rate if rate else None
    except (wave.Error, EOFError):
        return None


def estimate_audio_tokens(data: bytes | str, fmt: str) -> int:
    """Prompt tokens of a recording (bytes, or its base64 text): its length in seconds at
    :data:`AUDIO_TOKENS_PER_SECOND`, an upper estimate."""
    if isinstance(data, str):
        try:
            data = base64.b64decode(data, validate=False)
        except (binascii.Error, ValueError):
            return len(data) // 4
    seconds = _wav_seconds(data) if fmt == "wav" else None
    if seconds is None:
        seconds = len(data) / _MP3_BYTES_PER_SECOND
    return max(1, round(seconds * AUDIO_TOKENS_PER_SECOND))


# ---------------------------------------------------------------------------------------------
# Spoken replies

_MEDIA_TYPES = {
    "wav": "audio/wav",
    "pcm16": "audio/wav",  # played as the WAV it is wrapped in
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "opus": "audio/ogg",
    "aac": "audio/aac",
}


@dataclass(frozen=True, repr=False)
class SpokenReply:
    """A spoken reply (``reply.audio``): the audio the server sent, its transcript, and the id
    by which the conversation refers to it (until ``expires_at``, a Unix time).

    ``data`` is the audio as sent, in ``format`` (``pcm16`` is raw 24 kHz samples); ``wav``
    the same as a WAV file where it can be one. ``player()`` is an ``IPython.display.Audio``.
    """

    id: str
    data: bytes
    transcript: str
    expires_at: int | None
    format: str | None

    @property
    def wav(self) -> bytes | None:
        """The audio as a WAV file (raw ``pcm16`` wrapped), or None for other formats."""
        if self.format == "pcm16":
            return wav_from_pcm16(self.data)
        if self.format == "wav" or _format_of(self.data) == "wav":
            return self.data
        return None

    @property
    def media_type(self) -> str:
        known = _MEDIA_TYPES.get(self.format or "")
        if known:
            return known
        return "audio/mpeg" if _format_of(self.data) == "mp3" else "audio/wav"

    def player(self) -> Any:
        """An ``IPython.display.Audio`` that plays the reply."""
        from IPython.display import Audio

        player = Audio(data=self.wav or self.data)
        player.mimetype = self.media_type
        return player

    def summary(self) -> str:
        kind = (self.format or "audio").upper()
        seconds = _wav_seconds(self.wav) if self.wav else None
        length = f", {seconds:.1f} s" if seconds is not None else ""
        return f"{kind}{length}, {human_bytes(len(self.data))}"

    def __repr__(self) -> str:
        return f"SpokenReply(id={self.id!r}, {self.summary()})"

    def _repr_html_(self) -> str:
        return str(self.player()._repr_html_())


def spoken_reply(audio: Any, fmt: str | None = None) -> SpokenReply | None:
    """The :class:`SpokenReply` of a message's ``audio`` (a ResponseAudio), or None when it
    carries no sound. ``fmt`` is the format the request asked for."""
    if audio is None:
        return None
    encoded = getattr(audio, "data", "") or ""
    try:
        data = base64.b64decode(encoded, validate=False)
    except (binascii.Error, ValueError):
        data = b""
    return SpokenReply(
        id=getattr(audio, "id", "") or "",
        data=data,
        transcript=getattr(audio, "transcript", "") or "",
        expires_at=getattr(audio, "expires_at", None),
        format=fmt,
    )
