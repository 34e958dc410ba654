from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from nbchat.convert.describe import describe
from nbchat.convert.tokenbudget import text_tokens


def test_a_dataframe_shows_shape_dtypes_missing_values_and_head_and_tail_within_budget():
    frame = pd.DataFrame(
        {"city": [f"c{i}" for i in range(5000)], "price": np.linspace(0, 1, 5000), "n": range(5000)}
    )
    frame.loc[7, "price"] = np.nan
    described = describe(frame, "df", max_tokens=400)
    lines = described.text.splitlines()
    assert lines[0] == "`df`: pandas DataFrame, 5,000 rows × 3 columns"
    assert lines[1].startswith("dtypes: city ") and lines[1].endswith(", price float64, n int64")
    assert lines[2] == "missing values: price 1"
    data = json.loads(lines[4])
    assert data["shape"] == [5000, 3]
    assert data["data"][0][0] == "c0" and data["data"][-1][0] == "c4999"
    assert described.tokens <= 400
    assert described.kind == "DataFrame" and described.image is None


def test_series_and_arrays_give_min_max_and_mean():
    series = describe(pd.Series([1.0, 2.0, np.nan, 5.0], name="x"), "s")
    assert series.text.startswith("`s`: pandas Series 'x', 4 values, dtype float64\n")
    assert "min 1, max 5, mean 2.66667; 1 NaN" in series.text
    array = describe(np.arange(12).reshape(3, 4), "a")
    assert array.text.splitlines()[:2] == [
        "`a`: numpy ndarray, shape 3×4, dtype int64",
        "min 0, max 11, mean 5.5",
    ]
    assert '"data":[[0,1,2,3],[4,5,6,7],[8,9,10,11]]' in array.text
    assert "min" not in describe(np.array(["a", "b"]), "w").text


def test_dicts_and_lists_give_length_keys_types_and_a_sample():
    d = describe({f"k{i}": i for i in range(30)}, "d", max_tokens=200)
    assert d.text.startswith("`d`: dict of 30 keys\nkeys: 'k0', 'k1',")
    assert "… (10 more)" in d.text
    listed = describe([1, 2, "x"] * 100, "xs", max_tokens=150)
    assert listed.text.startswith("`xs`: list of 300 items (int ×200, str ×100)")
    assert "left out" in listed.text and listed.tokens <= 150
    assert describe({3, 1, 2}, "s").text.endswith("[1,2,3]")


def test_functions_and_classes_give_signature_and_docstring_or_their_notebook_source():
    described = describe(json.dumps, "dumps", max_tokens=200)
    assert described.text.startswith("`dumps`: function json.dumps(obj, *, skipkeys=False")
    assert "Serialize ``obj`` to a JSON formatted ``str``" in described.text
    assert described.tokens <= 200

    def area(width: float, height: float = 1.0) -> float:
        """The area of a rectangle."""
        return width * height

    own = describe(area, "area")
    assert "function " in own.text and "(width: 'float', height: 'float' = 1.0)" in own.text
    assert "return width * height" in own.text  # user code: its source says the most

    cls = describe(pd.Timedelta, "T", max_tokens=300)
    assert cls.text.startswith("`T`: class pandas.Timedelta(")
    assert "methods: " in cls.text


def test_modules_give_their_name_and_all():
    described = describe(json, "json")
    assert described.text.startswith("`json`: module json")
    assert "__all__ (" in described.text and "dumps" in described.text


def test_objects_that_describe_themselves_in_any_spelling():
    class Book:
        def _repr_llm_(self):
            return "A **book** about birds."

    class Chatlab:
        def __llm__(self):
            return "chatlab spelling"

    class Other:
        def repr_llm(self):
            return "other spelling"

    assert describe(Book(), "b").text == (
        "`b`: Book, as it describes itself (_repr_llm_):\nA **book** about birds."
    )
    assert describe(Chatlab(), "c").text.endswith("(__llm__):\nchatlab spelling")
    assert describe(Other(), "o").text.endswith("(repr_llm):\nother spelling")
    # The class itself is not one of its instances.
    assert "describes itself" not in describe(Book, "Book").text


def test_a_failing_or_wrong_self_description_falls_back_to_a_summary():
    class Broken:
        def __init__(self):
            self.title = "T"

        def _repr_llm_(self):
            raise RuntimeError("oops")

    class NotText:
        def _repr_llm_(self):
            return 42

    broken = describe(Broken(), "x")
    assert "its _repr_llm_() raised RuntimeError; summarised instead" in broken.text
    assert '{"title":"T"}' in broken.text
    not_text = describe(NotText(), "y").text
    assert "describes itself" not in not_text
    assert not_text.startswith("`y`: NotText (its _repr_llm_() returned int, not str;")


@pytest.mark.parametrize(
    ("value", "named"), [(b"bytes", "bytes"), ({"a": 1}, "dict"), (None, "None")]
)
def test_a_self_description_that_is_not_text_says_what_it_returned(value, named):
    class Odd:
        def __init__(self):
            self.size = 3

        def _repr_llm_(self):
            return value

    text = describe(Odd(), "odd").text
    first = text.splitlines()[0]
    assert first == f"`odd`: Odd (its _repr_llm_() returned {named}, not str; summarised instead)"
    assert '{"size":3}' in text  # the summary by type follows


def test_a_later_spelling_that_gives_text_wins_over_one_that_does_not():
    class Both:
        def _repr_llm_(self):
            return None

        def __llm__(self):
            return "described by __llm__"

    text = describe(Both(), "b").text
    assert text == "`b`: Both, as it describes itself (__llm__):\ndescribed by __llm__"


def test_a_self_description_is_cut_to_the_budget():
    class Long:
        def _repr_llm_(self):
            return "word " * 10_000

    described = describe(Long(), "long", max_tokens=100)
    assert described.tokens <= 100
    assert "characters left out" in described.text


def test_descriptions_are_deterministic_and_hold_no_addresses():
    @dataclasses.dataclass
    class Point:
        x: int
        y: int
        owner: object

    value = Point(1, 2, object())
    first, second = describe(value, "p"), describe(value, "p")
    assert first == second
    assert not re.search(r"0x[0-9a-f]{6,}", first.text)
    assert '"x":1' in first.text and '"y":2' in first.text


@pytest.mark.parametrize("name", ["api_key", "OPENAI_API_KEY", "db_password", "token"])
def test_credential_names_are_never_shown(name):
    described = describe("hunter2", name)
    assert described.hidden
    assert "hunter2" not in described.text
    assert "looks like a credential" in described.text


def test_values_that_look_like_keys_are_hidden_wherever_they_are():
    key = "sk-proj-abcdefghijklmnopqrstuvwxyz012345"
    assert key not in describe(key, "s").text
    nested = {"user": "ana", "settings": {"api_key": "plain", "token": "x"}, "note": f"use {key}"}
    text = describe(nested, "config").text
    assert "plain" not in text and key not in text and '"user":"ana"' in text
    frame = pd.DataFrame({"user": ["ana"], "password": ["letmein"], "note": [f"Bearer {key}"]})
    text = describe(frame, "users").text
    assert "letmein" not in text and key not in text and "ana" in text

    class Holder:
        def __init__(self):
            self.secret = "s3"
            self.name = "n"

    text = describe(Holder(), "h").text
    assert '"secret":"[hidden]"' in text and '"name":"n"' in text


def test_images_are_described_and_attached_only_when_the_server_can_see():
    image = Image.new("RGBA", (640, 480))
    seen = describe(image, "img")
    assert seen.text == "`img`: PIL image, 640×480 pixels, mode RGBA (attached below as an image)"
    assert seen.image is image
    blind = describe(image, "img", attach_images=False)
    assert blind.image is None
    assert "not attached: this server does not take images" in blind.text
    why = describe(image, "img", attach_images=False, not_attached="only the error is sent")
    assert why.text.endswith("(not attached: only the error is sent)")


def test_strings_numbers_and_none():
    assert describe(42, "n").text == "`n`: int 42"
    assert describe(None, "v").text == "`v`: NoneType None"
    assert describe("hello", "s").text == "`s`: str of 5 characters: 'hello'"
    long = describe("line\n" * 5000, "t", max_tokens=120)
    assert long.text.startswith("`t`: str of 25,000 characters:\n```text\n")
    assert long.tokens <= 120


def test_every_description_fits_its_budget():
    values = [
        pd.DataFrame(np.random.default_rng(0).normal(size=(2000, 40))),
        list(range(100_000)),
        {i: str(i) * 50 for i in range(2000)},
        np.zeros((300, 300)),
        pd,
    ]
    for value in values:
        for budget in (80, 300, 1000):
            assert text_tokens(describe(value, "v", max_tokens=budget).text) <= budget


def test_a_clients_credentials_are_in_no_description_of_it():
    from nbchat import Client

    client = Client(
        api_key="sk-abcdefghijklmnopqrstuvwxyz",
        base_url="http://bob:pw-secret-1@h.test/v1?api-key=QUERY-1",
        headers={"Authorization": "Token abc123xyz", "x-api-key": "zzz-123"},
    )
    text = describe(client, "client").text
    for secret in ("sk-abcdefghij", "pw-secret-1", "QUERY-1", "abc123xyz", "zzz-123"):
        assert secret not in text, secret
    assert "Client(base_url='http://h.test/v1?api-key=" in text
    assert '"Authorization":"[hidden]"' in text
