from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import subprocess
import sys
import uuid
from pathlib import PurePosixPath

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel

from nbchat.convert.data import DataBlock, DataError, data_block, estimate_tokens
from nbchat.protocol.exceptions import NbchatError


def loads(block: DataBlock):
    return json.loads(block.text)


# ---------------------------------------------------------------------------------------------
# DataFrames


def test_a_small_frame_is_split_json_with_shape_and_dtypes():
    frame = pd.DataFrame(
        {
            "n": [1, 2],
            "x": [0.5, np.nan],
            "day": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "name": ["蓝", None],
            "ok": [True, False],
        }
    )
    block = data_block(frame)
    dtypes = [str(t) for t in frame.dtypes]
    assert block.text == (
        '{"kind":"DataFrame","shape":[2,5],"columns":["n","x","day","name","ok"],'
        f'"dtypes":{json.dumps(dtypes, separators=(",", ":"))},'
        '"data":[[1,0.5,"2024-01-01","蓝",true],[2,null,"2024-01-02",null,false]]}'
    )
    assert not block.truncated
    assert block.note is None
    assert (block.rows, block.columns, block.rows_shown) == (2, 5, 2)
    assert block.kind == "DataFrame"


def test_datetimes_with_a_time_or_a_zone_keep_it():
    frame = pd.DataFrame(
        {
            "at": pd.to_datetime(["2024-01-01 12:30", "2024-01-02 00:00"]),
            "utc": pd.to_datetime(["2024-01-01", "2024-01-02"]).tz_localize("UTC"),
            "gap": pd.to_timedelta(["1h", None]),
        }
    )
    rows = loads(data_block(frame))["data"]
    assert rows[0][0] == "2024-01-01T12:30:00"
    assert rows[1][0] == "2024-01-02T00:00:00"
    assert rows[0][1] == "2024-01-01T00:00:00+00:00"
    assert rows[0][2] == "0 days 01:00:00"
    assert rows[1][2] is None


def test_a_meaningful_index_is_included_and_the_default_one_is_not():
    frame = pd.DataFrame({"v": [1, 2]}, index=pd.Index(["a", "b"], name="key"))
    assert loads(data_block(frame))["index"] == ["a", "b"]
    assert "index" not in loads(data_block(frame.reset_index(drop=True)))


def test_past_max_rows_the_head_and_tail_are_kept_with_a_visible_note():
    frame = pd.DataFrame({"i": range(1000)})
    block = data_block(frame, max_rows=5)
    body = loads(block)
    assert body["data"] == [[0], [1], [2], "… 995 rows left out …", [998], [999]]
    assert body["note"] == "rows 3–997 (995 of 1,000) left out"
    assert block.note == body["note"]
    assert block.truncated
    assert block.rows_shown == 5
    assert data_block(frame, max_rows=5) == block


def test_past_max_tokens_rows_are_cut_until_it_fits():
    frame = pd.DataFrame({"i": range(10_000), "word": ["alpha beta gamma"] * 10_000})
    block = data_block(frame, max_rows=10_000, max_tokens=500)
    assert block.tokens <= 500
    assert block.tokens == estimate_tokens(block.text)
    body = loads(block)
    kept = [row[0] for row in body["data"] if isinstance(row, list)]
    assert kept[0] == 0 and kept[-1] == 9999
    assert kept == sorted(kept)
    assert len(kept) == block.rows_shown
    assert f"({10_000 - len(kept):,} of 10,000) left out" in body["note"]
    # One more row would not have fitted.
    bigger = data_block(frame, max_rows=len(kept) + 1, max_tokens=10**6)
    assert bigger.tokens > 500


def test_a_wide_frame_loses_middle_columns_and_says_so():
    frame = pd.DataFrame(np.zeros((2, 300)), columns=[f"c{i}" for i in range(300)])
    block = data_block(frame, max_columns=4)
    body = loads(block)
    assert body["columns"] == ["c0", "c1", "… 296 columns left out …", "c298", "c299"]
    assert body["data"][0] == [0.0, 0.0, "… 296 columns …", 0.0, 0.0]
    assert "columns 2–297 (296 of 300) left out" in block.note
    assert block.columns_shown == 4


def test_a_frame_too_wide_for_the_token_budget_keeps_some_rows():
    frame = pd.DataFrame(np.zeros((3, 200)))
    block = data_block(frame, max_tokens=300)
    assert block.tokens <= 300
    assert block.rows_shown >= 1
    assert block.columns_shown < 50


def test_multiindex_columns_categoricals_and_numpy_scalars():
    frame = pd.DataFrame({("a", "x"): pd.Categorical(["lo", "hi"]), ("b", "y"): [1, 2]})
    body = loads(data_block(frame))
    assert body["columns"] == ["a / x", "b / y"]
    assert body["dtypes"][0] == "category"
    assert body["data"] == [["lo", 1], ["hi", 2]]


def test_a_series_keeps_name_dtype_length_and_index():
    series = pd.Series([1.5, np.inf, -np.inf, np.nan], index=list("abcd"), name="v")
    block = data_block(series)
    assert block.text == (
        '{"kind":"Series","name":"v","dtype":"float64","length":4,'
        '"index":["a","b","c","d"],"data":[1.5,"inf","-inf",null]}'
    )


def test_a_long_series_is_cut_head_and_tail():
    block = data_block(pd.Series(range(50)), max_rows=4)
    body = loads(block)
    assert body["data"] == [0, 1, "… 46 items left out …", 48, 49]
    assert block.rows_shown == 4


def test_a_frame_inside_a_dict_is_converted_too():
    body = loads(data_block({"sales": pd.DataFrame({"q": [1, 2]})}))
    assert body["sales"]["data"] == [[1], [2]]


# ---------------------------------------------------------------------------------------------
# Plain values


def test_dicts_and_lists_are_compact_json():
    block = data_block({"name": "张三", "age": 28, "tags": ["a", "b"], "none": None})
    assert block.text == '{"name":"张三","age":28,"tags":["a","b"],"none":null}'
    assert block.kind == "dict"
    assert block.rows == 4


def test_long_lists_and_dicts_are_cut_in_the_middle():
    block = data_block({"xs": list(range(100)), "k": {str(i): i for i in range(10)}}, max_rows=4)
    body = loads(block)
    assert body["xs"] == [0, 1, "… 96 items left out …", 98, 99]
    assert body["k"] == {"0": 0, "1": 1, "…": "6 keys left out", "8": 8, "9": 9}
    assert block.note == "102 items left out (the middle of long lists and dicts)"


def test_a_list_over_the_token_budget_is_cut_to_fit():
    block = data_block(list(range(5000)), max_rows=5000, max_tokens=100)
    assert block.tokens <= 100
    body = loads(block)
    assert body[0] == 0 and body[-1] == 4999
    assert "items left out" in body[len(body) // 2]


def test_a_single_value_over_budget_is_cut_as_text():
    block = data_block({"x": "word " * 90}, max_tokens=20)
    assert block.tokens <= 20
    assert "text cut at" in block.text
    assert "text cut at" in block.note


def test_numpy_scalars_and_special_floats():
    value = {
        "i": np.int64(3),
        "f": np.float32(0.5),
        "b": np.bool_(True),
        "nan": float("nan"),
        "inf": np.inf,
        "when": np.datetime64("2024-05-01T10:00"),
        "nat": np.datetime64("NaT"),
        "pd_nat": pd.NaT,
        "na": pd.NA,
    }
    assert loads(data_block(value)) == {
        "i": 3,
        "f": 0.5,
        "b": True,
        "nan": None,
        "inf": "inf",
        "when": "2024-05-01T10:00:00",
        "nat": None,
        "pd_nat": None,
        "na": None,
    }


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: float


class Person(BaseModel):
    name: str
    born: dt.date


def test_standard_library_values_have_readable_json():
    value = {
        "date": dt.date(2024, 1, 2),
        "time": dt.time(9, 30),
        "delta": dt.timedelta(hours=1),
        "money": decimal.Decimal("12.50"),
        "count": decimal.Decimal("3"),
        "id": uuid.UUID(int=1),
        "path": PurePosixPath("/tmp/x"),
        "colour": Colour.RED,
        "set": {3, 1, 2},
        "tuple": (1, "a"),
        "bytes": b"hi",
        "blob": b"\xff\xfe",
        1: "int key",
    }
    assert loads(data_block(value)) == {
        "date": "2024-01-02",
        "time": "09:30:00",
        "delta": "1:00:00",
        "money": 12.5,
        "count": 3,
        "id": "00000000-0000-0000-0000-000000000001",
        "path": "/tmp/x",
        "colour": "red",
        "set": [1, 2, 3],
        "tuple": [1, "a"],
        "bytes": "hi",
        "blob": "<2 bytes>",
        "1": "int key",
    }


def test_dataclasses_and_pydantic_models_become_objects():
    assert loads(data_block(Point(1, 2.5))) == {"x": 1, "y": 2.5}
    assert loads(data_block([Person(name="a", born=dt.date(2000, 1, 1))])) == [
        {"name": "a", "born": "2000-01-01"}
    ]


def test_unknown_objects_nested_become_their_str():
    class Thing:
        def __str__(self) -> str:
            return "thing!"

    assert loads(data_block({"t": Thing()})) == {"t": "thing!"}


def test_very_long_strings_are_cut_with_a_note():
    body = loads(data_block(["x" * 2000]))
    assert body[0] == "x" * 500 + "…(+1,500 chars)"


def test_float_digits_rounds_to_significant_digits():
    assert data_block([1 / 3, 123456.789], float_digits=4).text == "[0.3333,123500.0]"
    assert data_block([1 / 3]).text == "[0.3333333333333333]"


@pytest.mark.parametrize("obj", [object(), lambda x: x, open])
def test_an_unsupported_top_level_object_is_a_data_error(obj):
    with pytest.raises(DataError, match=r"cannot put a .* into the prompt as data") as info:
        data_block(obj)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, NbchatError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("option", ["max_rows", "max_columns", "max_tokens"])
def test_budgets_must_be_positive(option):
    with pytest.raises(DataError, match="at least 1"):
        data_block([1], **{option: 0})


def test_float_digits_out_of_range_is_an_error():
    with pytest.raises(DataError, match="float_digits"):
        data_block([1.0], float_digits=0)


# ---------------------------------------------------------------------------------------------
# Token estimate and display


@pytest.mark.parametrize(
    ("text", "tokens"), [("", 0), ("abcd", 1), ("abcde", 2), ("蓝色", 2), ("ab蓝", 2)]
)
def test_token_estimate_is_ascii_over_4_plus_one_per_other_character(text, tokens):
    assert estimate_tokens(text) == tokens


def test_prompt_labels_the_data_with_its_name():
    block = data_block(pd.DataFrame({"a": [1]}), name="df")
    assert block.prompt() == f"Data `df` (DataFrame 1 row × 1 column):\n{block.text}"
    assert block.to_part() == {"type": "text", "text": block.prompt()}
    assert data_block([1]).prompt() == "[1]"


def test_repr_str_and_html_summarise():
    block = data_block(pd.DataFrame({"a": range(500)}), name="df", max_rows=10)
    assert repr(block) == (
        f"DataBlock(df: DataFrame 500 rows × 1 column, 10 of 500 shown, ~{block.tokens} tokens)"
    )
    assert str(block) == block.text
    html = block._repr_html_()
    assert "<details>" in html and "490 of 500" in html
    assert data_block({"<b>": 1})._repr_html_().count("&lt;b&gt;") == 1


def test_dicts_and_lists_work_without_pandas_or_numpy():
    code = (
        "import sys\n"
        "sys.modules['pandas'] = None\n"
        "sys.modules['numpy'] = None\n"
        "from nbchat.convert.data import data_block\n"
        "print(data_block({'a': [1, 2, 3, 4, 5]}, max_rows=2).text)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == '{"a":[1,"… 3 items left out …",5]}'


def test_importing_the_module_does_not_import_pandas_or_numpy():
    code = (
        "import sys, nbchat.convert.data\n"
        "print([m for m in ('pandas', 'numpy') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
