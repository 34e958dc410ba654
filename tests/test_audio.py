from __future__ import annotations

import base64
import io
import wave

import numpy as np
import pytest

from nbchat.convert import audio as audio_module
from nbchat.convert.audio import (
    AUDIO_TOKENS_PER_SECOND,
    AudioError,
    AudioPart,
    audio_part,
    estimate_audio_tokens,
    spoken_reply,
    wav_from_pcm16,
)
from nbchat.protocol.types import ResponseAudio

MP3_FRAME = b"\xff\xfb\x90\x64" + b"\x00" * 100
ID3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + MP3_FRAME


def read_wav(data: bytes) -> tuple[int, int, int, bytes]:
    with wave.open(io.BytesIO(data), "rb") as reader:
        frames = reader.readframes(reader.getnframes())
        return reader.getnchannels(), reader.getsampwidth(), reader.getframerate(), frames


def test_a_float_array_becomes_16_bit_wav_at_its_rate() -> None:
    samples = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0], dtype="float32")
    part = audio_part(samples, sample_rate=16_000)
    assert part.format == "wav"
    channels, width, rate, frames = read_wav(part.data)
    assert (channels, width, rate) == (1, 2, 16_000)
    assert list(np.frombuffer(frames, "<i2")) == [0, 16383, -16383, 32767, -32767, 32767]
    assert part.seconds == pytest.approx(6 / 16_000)


def test_channels_are_read_from_the_shorter_axis() -> None:
    stereo = np.zeros((2, 1000), dtype="int16")  # channels first, as IPython's Audio takes
    assert read_wav(audio_part(stereo, sample_rate=8000).data)[0] == 2
    assert read_wav(audio_part(stereo.T, sample_rate=8000).data)[0] == 2


@pytest.mark.parametrize(
    ("array", "rate", "message"),
    [
        (np.zeros(10), None, "needs its sample rate"),
        (np.zeros(10, dtype="int32"), 8000, "must be int16"),
        (np.array([0.0, np.nan]), 8000, "NaN"),
        (np.zeros((2, 2, 2)), 8000, "1-D or 2-D"),
        (np.zeros(0), 8000, "no samples"),
        (np.zeros(10), 0, "sample rate"),
    ],
    ids=["no-rate", "int32", "nan", "3-d", "empty", "zero-rate"],
)
def test_arrays_that_are_not_sound_are_one_line_errors(array, rate, message) -> None:
    with pytest.raises(AudioError, match=message) as info:
        audio_part(array, sample_rate=rate)
    assert "\n" not in str(info.value)


def test_wav_and_mp3_bytes_are_sent_as_they_are() -> None:
    wav = wav_from_pcm16(b"\x01\x00" * 2400)
    assert audio_part(wav).data == wav and audio_part(wav).format == "wav"
    for mp3 in (ID3, MP3_FRAME):
        part = audio_part(mp3)
        assert (part.format, part.data) == ("mp3", mp3)
    sent = audio_part(wav).to_dict()
    assert sent == {
        "type": "input_audio",
        "input_audio": {"data": base64.b64encode(wav).decode(), "format": "wav"},
    }


@pytest.mark.parametrize(
    "data",
    [b"OggS\x00\x02" + b"\x00" * 30, b"fLaC" + b"\x00" * 30, b"hello world", b""],
    ids=["ogg", "flac", "text", "empty"],
)
def test_anything_but_wav_or_mp3_is_refused_naming_what_it_is(data: bytes) -> None:
    with pytest.raises(AudioError, match="not WAV or MP3") as info:
        audio_part(data)
    assert "\n" not in str(info.value)


def test_a_file_is_read_by_its_bytes_not_its_name(tmp_path) -> None:
    named_wav = tmp_path / "song.wav"
    named_wav.write_bytes(ID3)
    assert audio_part(named_wav).format == "mp3"
    assert audio_part(str(named_wav)).format == "mp3"
    with pytest.raises(AudioError, match="no such audio file"):
        audio_part(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="directory"):
        audio_part(tmp_path)
    with pytest.raises(AudioError, match="sent as their data"):
        audio_part("https://example.com/a.wav")


def test_a_recording_past_the_limit_is_refused_before_reading(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(audio_module, "MAX_AUDIO_BYTES", 100)
    big = tmp_path / "big.wav"
    big.write_bytes(ID3 + b"\x00" * 200)
    with pytest.raises(AudioError, match="over the 100 B limit"):
        audio_part(big)
    with pytest.raises(AudioError, match="over the 100 B limit"):
        audio_part(ID3 + b"\x00" * 200)


def test_an_ipython_audio_object_is_sent_as_its_wav() -> None:
    from IPython.display import Audio

    player = Audio(data=np.sin(np.linspace(0, 60, 800)), rate=8000)
    part = audio_part(player)
    assert part.format == "wav" and read_wav(part.data)[2] == 8000
    with pytest.raises(AudioError, match="only links"):
        audio_part(Audio(url="https://example.com/a.wav", embed=False))


def test_other_objects_are_refused_with_what_would_do() -> None:
    with pytest.raises(AudioError, match="cannot send a dict as audio"):
        audio_part({"data": "x"})
    same = AudioPart(ID3, "mp3")
    assert audio_part(same) is same


def test_tokens_are_estimated_from_the_length() -> None:
    second = wav_from_pcm16(b"\x00\x00" * 24_000)
    assert estimate_audio_tokens(second, "wav") == AUDIO_TOKENS_PER_SECOND
    encoded = base64.b64encode(second).decode()
    assert estimate_audio_tokens(encoded, "wav") == AUDIO_TOKENS_PER_SECOND
    assert audio_part(second).tokens == AUDIO_TOKENS_PER_SECOND
    # MP3 by its size at 128 kbit/s.
    assert estimate_audio_tokens(b"\x00" * 16_000, "mp3") == AUDIO_TOKENS_PER_SECOND


def test_a_spoken_reply_in_pcm16_plays_as_wav() -> None:
    pcm = b"\x10\x00" * 2400
    audio = ResponseAudio(
        id="audio_1", data=base64.b64encode(pcm).decode(), transcript="Hi", expires_at=5
    )
    spoken = spoken_reply(audio, "pcm16")
    assert spoken is not None
    assert (spoken.id, spoken.transcript, spoken.expires_at, spoken.data) == (
        "audio_1",
        "Hi",
        5,
        pcm,
    )
    assert spoken.wav is not None and read_wav(spoken.wav)[2:] == (24_000, pcm)
    player = spoken.player()
    assert player.mimetype == "audio/wav" and player.data == spoken.wav
    assert "<audio" in spoken._repr_html_() and "data:audio/wav;base64," in spoken._repr_html_()
    assert "0.1 s" in spoken.summary()


def test_a_spoken_reply_in_mp3_plays_as_mp3() -> None:
    audio = ResponseAudio(id="a", data=base64.b64encode(ID3).decode(), transcript="")
    spoken = spoken_reply(audio, "mp3")
    assert spoken is not None and spoken.wav is None
    assert spoken.player().mimetype == "audio/mpeg"
    assert spoken_reply(None) is None
