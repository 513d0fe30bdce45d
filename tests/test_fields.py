"""The shared field checks: what each accepts, what it returns, and the message naming the field."""

from __future__ import annotations

import math

import pytest

from console.fields import FieldError, Range, choice, flag, kib, number, plain, plain_json, quoted, text

WHOLE = Range(1, 64, whole=True)


@pytest.mark.parametrize("value, expected", [(1, 1), (64, 64), (4.0, 4), (None, None), ("", None)])
def test_a_whole_number_in_range_is_kept_as_an_int(value, expected):
    got = number(value, "concurrency", WHOLE, optional=True)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("value, message", [
    (None, "concurrency is required"),
    ("4", "concurrency must be a number"),
    (True, "concurrency must be a number"),
    (1.5, "concurrency must be a whole number"),
    (math.nan, "concurrency must be a whole number"),
    (math.inf, "concurrency must be a whole number"),
    (0, "concurrency must be between 1 and 64; got 0"),
    (65, "concurrency must be between 1 and 64; got 65"),
    (10**30, "concurrency must be between 1 and 64; got 1e+30"),
])
def test_a_bad_whole_number_is_named_with_what_is_wrong(value, message):
    with pytest.raises(FieldError) as caught:
        number(value, "concurrency", WHOLE)
    assert str(caught.value) == message and caught.value.field == "concurrency"


def test_a_number_without_upper_bound_and_a_meaning_says_it_in_one_message():
    pilot = Range(1, None, whole=True)
    assert pilot.check(10**9, "'pilot'") == 10**9
    for bad in (0, "3", 2.5, False):
        with pytest.raises(FieldError, match=r"^'pilot' must be a whole number of tasks, at least 1; got "):
            pilot.check(bad, "'pilot'", meaning="a whole number of tasks, at least 1")
    with pytest.raises(FieldError, match="'pilot' must be at least 1; got 0"):
        pilot.check(0, "'pilot'")


def test_a_fractional_range_keeps_floats_and_refuses_nan():
    tolerance = Range(0, 10)
    assert tolerance.check(2, "t") == 2.0 and isinstance(tolerance.check(2, "t"), float)
    with pytest.raises(FieldError, match="between 0 and 10; got nan"):
        tolerance.check(math.nan, "t")
    assert tolerance.as_json() == {"min": 0, "max": 10, "whole": False}


def test_flag_choice_and_text():
    assert flag(None, "'x'", False) is False and flag(True, "'x'") is True
    with pytest.raises(FieldError, match="^'x' must be true or false$"):
        flag("yes", "'x'", False)
    with pytest.raises(FieldError, match="^stream must be true or false$"):
        flag(None, "stream")  # no default: absent is not allowed
    assert choice("", "'mode'", ("edit", "table"), "edit") == "edit"
    with pytest.raises(FieldError, match=r"^'mode' must be one of edit, table; got 'x{80}'$"):
        choice("x" * 500, "'mode'", ("edit", "table"))
    assert text(None, quoted("find"), default="d") == "d"
    with pytest.raises(FieldError, match="^'find' must be a string$"):
        text(3, quoted("find"))
    with pytest.raises(FieldError, match=r"^'find' must be at most 3 characters; got 4$"):
        text("abcd", quoted("find"), max_chars=3)
    with pytest.raises(FieldError, match=r"^'replace' must be at most 8 KiB of text; got 8,194 bytes$"):
        text("é" * 4097, quoted("replace"), max_bytes=8192)
    with pytest.raises(FieldError, match=r"lone surrogate \(a\\ud800\)"):
        text("a\ud800", quoted("prompt"))


def test_plain_json_numbers_and_sizes():
    assert plain_json({"a": [1, "é"]}, "extra_body") == {"a": [1, "é"]}
    with pytest.raises(FieldError, match="extra_body is not plain JSON"):
        plain_json({"a": math.inf}, "extra_body")
    with pytest.raises(FieldError, match="extra_body is not valid text"):
        plain_json({"a": "\udc80"}, "extra_body")
    assert [plain(1073741824), plain(0.5), plain(2.0)] == ["1073741824", "0.5", "2"]
    assert [kib(8192), kib(4096), kib(1000)] == ["8 KiB", "4 KiB", "1,000 bytes"]
