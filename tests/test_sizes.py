from __future__ import annotations

import pytest

from nbchat.convert.sizes import human_bytes, read_file


class Refused(ValueError):
    pass


def test_sizes_in_words() -> None:
    assert [human_bytes(n) for n in (0, 999, 1000, 31_500_000)] == [
        "0 B",
        "999 B",
        "1.0 kB",
        "31.5 MB",
    ]


def test_a_file_is_read_within_its_limit(tmp_path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"12345")
    assert read_file(str(path), limit=5, what="image", error=Refused) == b"12345"
    with pytest.raises(Refused, match=r"a\.bin is 5 B, over the 4 B limit"):
        read_file(str(path), limit=4, what="image", error=Refused)


@pytest.mark.parametrize(
    ("name", "message"),
    [("missing.png", "no such image file"), ("", "is a directory, not an image file")],
)
def test_what_cannot_be_read_is_named(tmp_path, name, message) -> None:
    with pytest.raises(Refused, match=message):
        read_file(str(tmp_path / name), limit=10, what="image", error=Refused)
    with pytest.raises(Refused, match="x" * 3):
        read_file("x" * 5000, limit=10, what="audio", error=Refused)
