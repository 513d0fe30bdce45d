"""The text a model sent with its images: what is kept, what is removed, how long it may be, how fast."""

from __future__ import annotations

import base64
import os
import time

import pytest

from console.upstream import answer_text
from tests.figures import record

PNG = "iVBORw0KGgo" + "A" * 120


@pytest.mark.parametrize(("text", "expected"), [
    ("Here is your image.\n![Generated Image](/images/abc.jpg)", "Here is your image."),
    (f"<think>\n50%\n100%\n</think>\nA cat on a mat. ![x](data:image/png;base64,{PNG})  Enjoy!", "A cat on a mat. Enjoy!"),
    (f"![x](data:image/png;base64,{PNG})", None),
    ("/v1/files/image/abc-final.png", None),
    ("https://host/files/abc-final.jpg\n", None),
    ("<img src='https://x/y.png' alt=\"a\"> caption\t\n  here https://h/x.png.", "caption here"),
    (PNG, None),
    (f"before\n{PNG}\nafter", "before after"),
    ("<think>cut off while thinking ![a](https://x/y.png)", None),
    ("done</think> the answer", "done the answer"),
    ("", None),
    ("   \n ", None),
    ("Ein Bild für dich 🐱", "Ein Bild für dich 🐱"),
])
def test_the_answer_text_drops_images_thinking_and_base64(text, expected):
    assert answer_text(text) == expected


def test_a_long_answer_text_is_cut_at_2000_characters_with_an_ellipsis():
    kept = answer_text("word " * 1000 + "![a](https://x/y.png)")
    assert len(kept) == 2000 and kept.endswith(" word…")
    assert answer_text("猫" * 2000) == "猫" * 2000
    assert answer_text("猫" * 2001) == "猫" * 1999 + "…"


def test_the_answer_text_of_a_24_mb_data_url_is_read_in_one_pass():
    payload = base64.b64encode(b"\xff\xd8\xff" + os.urandom(18_000_000)).decode()
    answers = {"data_url": f"Here you go! ![image](data:image/jpeg;base64,{payload}) Enjoy.", "bare_base64": payload,
               "unclosed_think": "<think>" * 200_000}
    seconds = {}
    for name, text in answers.items():
        began = time.perf_counter()
        kept = answer_text(text)
        seconds[name] = time.perf_counter() - began
        assert kept == ("Here you go! Enjoy." if name == "data_url" else None)
    record("answer_text", mb=round(len(answers["data_url"]) / 1e6, 1), data_url_ms=round(seconds["data_url"] * 1000, 1),
           bare_base64_ms=round(seconds["bare_base64"] * 1000, 1),
           unclosed_think_ms=round(seconds["unclosed_think"] * 1000, 1))
