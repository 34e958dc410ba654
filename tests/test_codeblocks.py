from __future__ import annotations

from nbchat.convert.codeblocks import code_blocks, fenced, python_code

REPLY = """Here is the fix:

```bash
pip install pandas
```

```python title="fix.py"
import pandas as pd
df = pd.read_csv("x.csv")
```

And a helper:

~~~py
def helper():
    return 1
~~~
"""


def test_blocks_are_read_with_their_language_from_the_info_string():
    blocks = code_blocks(REPLY)
    assert [block.language for block in blocks] == ["bash", "python", "py"]
    assert blocks[1].code == 'import pandas as pd\ndf = pd.read_csv("x.csv")'
    assert all(block.closed for block in blocks)


def test_the_first_python_block_or_all_of_them_joined():
    first = python_code(REPLY)
    assert first is not None
    assert first.code == 'import pandas as pd\ndf = pd.read_csv("x.csv")'
    joined = python_code(REPLY, every=True)
    assert joined is not None
    assert joined.code == (
        'import pandas as pd\ndf = pd.read_csv("x.csv")\n\ndef helper():\n    return 1'
    )
    assert "pip install" not in joined.code


def test_a_fence_of_four_backticks_holds_a_fence_of_three():
    reply = "````python\nprint('''\n```\n''')\n````\n"
    block = python_code(reply)
    assert block is not None
    assert block.code == "print('''\n```\n''')"


def test_code_spans_and_indented_code_are_not_blocks():
    reply = "Run `x = 1` first.\n\n    y = 2\n\nThat is all."
    assert code_blocks(reply) == []
    assert python_code(reply) is None


def test_unlabelled_blocks_count_only_when_no_block_is_labelled_and_they_parse():
    assert python_code("```\nx = [1, 2]\n%timeit sum(x)\n```").code == "x = [1, 2]\n%timeit sum(x)"
    assert python_code("```\nThis is not code, is it?\n```") is None
    labelled = "```\nx = 1\n```\n\n```python\ny = 2\n```"
    assert python_code(labelled).code == "y = 2"


def test_quarto_and_pandoc_spellings_and_pycon_sessions():
    assert python_code("```{python}\na = 1\n```").code == "a = 1"
    assert python_code("``` .python\nb = 2\n```").code == "b = 2"
    session = "```pycon\n>>> x = 2\n>>> for i in range(2):\n...     print(i)\n0\n1\n```"
    assert python_code(session).code == "x = 2\nfor i in range(2):\n    print(i)"


def test_a_reply_cut_off_inside_a_block_leaves_it_open():
    block = python_code("Sure:\n\n```python\ndef f():\n    return")
    assert block is not None
    assert block.code == "def f():\n    return"
    assert block.closed is False
    assert python_code("```python\nx = 1\n```").closed is True


def test_no_reply_has_no_blocks():
    assert code_blocks(None) == []
    assert python_code("") is None


def test_fenced_code_cannot_be_closed_by_its_own_lines():
    code = "s = '''\n```\n````\n'''"
    text = fenced(code, "python")
    assert text.startswith("`````python\n") and text.endswith("\n`````")
    assert python_code(text).code == code
    assert fenced("x = 1") == "```\nx = 1\n```"
