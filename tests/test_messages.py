"""Server messages: each code has its English words, its Chinese on the page, and the same parameters in both.

The page says a server message in its own language from the message's code (console/messages,
static/js/messages); a code the page does not know falls back to English, so a code missing from the
Chinese table would put an English sentence on a Chinese page. These checks fail first.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import pytest

from console import messages
from console.messages import CATALOG, FAMILIES, Message, carried, placeholders, restored, say, stored

ROOT = Path(__file__).resolve().parents[1]
PAGE_TABLES = ROOT / "static" / "js" / "messages"
CODE_USE = re.compile(r"""\bsay\(\s*["']([a-z_]+\.[a-z0-9_]+)["']""")
PAGE_PLACEHOLDER = re.compile(r"\{(\w+)(?::[^}]*)?\}")


def page_table(family: str) -> dict[str, object]:
    """Read static/js/messages/<family>.js: strict JSON after `export default`."""
    text = (PAGE_TABLES / f"{family}.js").read_text(encoding="utf-8")
    body = text.split("\nexport default", 1)[1].strip().rstrip(";")
    return json.loads(body)


def family_names() -> list[str]:
    return [family.__name__.rsplit(".", 1)[1] for family in FAMILIES]


def page_placeholders(entry: object) -> set[str]:
    forms = [entry] if isinstance(entry, str) else list(entry.values())  # type: ignore[union-attr]
    return {name for form in forms for name in PAGE_PLACEHOLDER.findall(form)}


@pytest.mark.parametrize("family", family_names())
def test_every_code_has_its_chinese_with_the_same_parameters(family):
    table = page_table(family)
    english = {code: words for code, words in CATALOG.items() if code.startswith(family + ".")}
    missing = sorted(set(english) - set(table))
    assert not missing, f"static/js/messages/{family}.js has no Chinese for {missing}"
    stale = sorted(set(table) - set(english))
    assert not stale, f"static/js/messages/{family}.js translates codes the server no longer has: {stale}"
    for code, words in english.items():
        assert page_placeholders(table[code]) == placeholders(words), code
        if not isinstance(words, str):
            assert isinstance(table[code], (str, dict)), code


@pytest.mark.parametrize("family", family_names())
def test_the_chinese_uses_full_width_punctuation(family):
    for code, entry in page_table(family).items():
        for form in [entry] if isinstance(entry, str) else entry.values():
            bare = PAGE_PLACEHOLDER.sub("", form)
            assert not re.search(r"[;,:?!](\s|$)", bare), f"{code}: {form!r} uses ASCII punctuation"
            assert re.search(r"[\u4e00-\u9fff]", bare), f"{code}: {form!r} is not Chinese"


def test_every_code_said_in_the_code_exists_and_every_code_is_said():
    used: set[str] = set()
    for path in (ROOT / "console").rglob("*.py"):
        used.update(CODE_USE.findall(path.read_text(encoding="utf-8")))
    unknown = sorted(used - set(CATALOG))
    assert not unknown, f"say() is called with codes the catalog lacks: {unknown}"
    unused = sorted(set(CATALOG) - used)
    assert not unused, f"the catalog has codes nothing says (say them with a literal code, or drop them): {unused}"


def test_a_message_is_its_english_text_with_its_code_and_parameters():
    inner = say("fields.not_flag", field="'pilot'")
    assert inner == "'pilot' must be true or false" and isinstance(inner, str)
    assert inner.as_json() == {"code": "fields.not_flag", "params": {"field": "'pilot'"}}
    outer = say("fields.not_json", field="x", reason=inner)
    assert outer.as_json()["params"]["reason"] == {**inner.as_json(), "text": str(inner)}
    assert pickle.loads(pickle.dumps(outer)).as_json() == outer.as_json()


def test_an_exception_carries_its_message_and_the_store_keeps_its_code():
    message = say("fields.not_number", field="n")
    assert carried(ValueError(message)) is message
    assert carried(ValueError("plain")) is None
    back = restored(str(message), stored(message))
    assert isinstance(back, Message) and back.as_json() == message.as_json()
    assert restored("plain", None) == "plain" and not isinstance(restored("plain", None), Message)
    assert restored("text", "not json") == "text"
    assert stored("plain") is None


def test_byte_counts_are_named_in_the_units_people_read():
    assert [messages.sized(n) for n in (0, 900, 1024, 2 * 1024**2 + 1, 67108864, 73 * 1024**2 + 300 * 1024, 3 * 1024**3)] == [
        "0 bytes", "900 bytes", "1 KiB", "2 MiB", "64 MiB", "73.3 MiB", "3 GiB"]
    assert str(say("upstream.over_cap", what="download x", cap=messages.sized(64 * 1024**2))) == "download x: more than 64 MiB"
    assert str(say("sources.image_too_large", pixels="20000×20000", limit=178956970)) == (
        "image too large: 20000×20000 pixels (limit 178,956,970)")


def test_plural_forms_are_picked_by_count():
    plural = [code for code, words in CATALOG.items() if not isinstance(words, str)]
    for code in plural:
        assert set(CATALOG[code]) >= {"one", "other"}, code
        assert "count" in placeholders(CATALOG[code]), code


def test_codes_are_named_family_dot_name():
    for code in CATALOG:
        assert re.fullmatch(r"[a-z]+\.[a-z0-9_]+", code), code
    assert set(messages.__all__) >= {"say", "Message", "carried"}
