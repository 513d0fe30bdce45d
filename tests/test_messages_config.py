"""The config family of messages: profile, preset, settings, import, saved prompt and URL policy refusals carry
their code and parameters beside their English text, and a page in Chinese says them in Chinese."""

from __future__ import annotations

import asyncio
import re

import pytest

from console.config import ConfigError, ConfigStore
from console.messages import carried
from console.netguard import BlockedURL
from console.profile import ApiProfile, ProfileError
from console.settings import resolve

POOL = [{"api_key": "sk-second", "api_url": "", "concurrency": 99}]


def nested(params: dict, name: str) -> dict:
    """Return the message a parameter holds ({code, params, text})."""
    value = params[name]
    assert isinstance(value, dict) and "code" in value, (name, value)
    return value


# (route method, path, body) → (status, code, some parameters the message must carry)
REFUSALS = [
    pytest.param("put", "/api/settings", {"api": {"api_key": "sk-测试"}}, 400, "config.header_bad_char",
                 {"field": "api_key", "position": 4}, id="key-with-a-chinese-character"),
    pytest.param("put", "/api/settings", {"api": {"api_url": "https：//api.example.com/v1"}}, 400,
                 "config.header_bad_char", {"field": "api_url", "position": 6}, id="url-with-a-full-width-colon"),
    pytest.param("put", "/api/settings", {"api": {"api_url": "ftp://example.com/v1"}}, 400, "config.url_scheme",
                 {"field": "api_url", "url": "ftp://example.com/v1"}, id="url-scheme"),
    pytest.param("put", "/api/settings", {"api": {"api_url": "https://"}}, 400, "config.url_no_host",
                 {"field": "api_url"}, id="url-no-host"),
    pytest.param("put", "/api/settings", {"api": {"extra_headers": {"Host": "x"}}}, 400, "config.header_reserved",
                 {"field": "extra_headers", "header": "Host"}, id="reserved-header"),
    pytest.param("put", "/api/settings", {"api": {"extra_headers": ["x"]}}, 400, "config.headers_not_object",
                 {"field": "extra_headers"}, id="headers-not-object"),
    pytest.param("put", "/api/settings", {"api": {"extra_body": 3}}, 400, "config.not_object",
                 {"field": "extra_body"}, id="body-not-object"),
    pytest.param("put", "/api/settings", {"api": {"concurrency": 0}}, 400, "fields.outside",
                 {"field": "concurrency", "low": "1", "high": "64", "got": "0"}, id="concurrency-out-of-range"),
    pytest.param("put", "/api/settings", {"api": {"nope": 1}}, 400, "config.profile_unknown_fields",
                 {"names": "nope"}, id="unknown-field"),
    pytest.param("put", "/api/settings", {"api": {"proxy_url": "ftp://proxy"}}, 400, "config.proxy_field",
                 {"field": "proxy_url"}, id="proxy-scheme"),
    pytest.param("put", "/api/settings", {"api": {"proxy_url": "http://127.0.0.1：7890"}}, 400, "config.proxy_field",
                 {"field": "proxy_url"}, id="proxy-full-width-colon"),
    pytest.param("put", "/api/settings", {"api": {"key_pool": POOL}}, 400, "fields.outside",
                 {"got": "99"}, id="pooled-key-concurrency"),
    pytest.param("put", "/api/settings", {"api": {"delivery": "batch", "key_pool": ["sk-2"]}}, 400,
                 "config.batch_with_pool", {}, id="batch-with-a-pool"),
    pytest.param("put", "/api/settings", {"api": {"prices": {"image": "a"}}}, 400, "config.price_not_number",
                 {"field": "prices.image", "got": "'a'"}, id="price"),
    pytest.param("put", "/api/settings", {"x": 1}, 400, "config.settings_unknown", {"names": "x"}, id="section"),
    pytest.param("put", "/api/presets/zz/p", {}, 400, "config.preset_kind", {"kind": "zz"}, id="preset-kind"),
    pytest.param("put", "/api/presets/api/p", {"api_key": "sk-ａbc"}, 400, "config.header_bad_char",
                 {"field": "api_key", "position": 4}, id="preset-full-width-letter"),
    pytest.param("put", "/api/presets/save/p", {"layout": "nope"}, 400, "config.at", {}, id="save-preset-rule"),
    pytest.param("post", "/api/presets/api/none/apply", {}, 404, "config.no_preset",
                 {"kind": "api", "name": "none"}, id="no-preset"),
    pytest.param("delete", "/api/presets/save/none", None, 404, "config.no_preset",
                 {"kind": "save", "name": "none"}, id="no-save-preset"),
    pytest.param("post", "/api/config/import", {"format": "other"}, 400, "config.import_format",
                 {"format": "other"}, id="import-format"),
    pytest.param("post", "/api/config/import", {"version": 7}, 400, "config.import_version",
                 {"version": 7}, id="import-version"),
    pytest.param("post", "/api/config/import", {"hello": 1}, 400, "config.import_nothing", {}, id="import-nothing"),
    pytest.param("post", "/api/config/import", {"presets": {"api": {"p": {"api_key": "sk-\u3000x"}}}}, 400,
                 "config.at", {"where": "presets.api['p']"}, id="import-bad-preset"),
    pytest.param("post", "/api/config/import", {"snippets": {"a": " "}}, 400, "config.prompt_blank",
                 {"where": "snippets['a']"}, id="import-blank-prompt"),
    pytest.param("put", "/api/snippets/a", {"text": ""}, 400, "config.prompt_blank", {"where": "text"},
                 id="blank-prompt"),
    pytest.param("delete", "/api/snippets/none", None, 404, "config.no_snippet", {"name": "none"}, id="no-prompt"),
    pytest.param("post", "/api/test-connection", {"api": [1]}, 400, "config.api_not_object", {}, id="connection-api"),
]


@pytest.mark.parametrize("method, path, body, status, code, params", REFUSALS)
def test_a_refusal_carries_its_code_and_parameters(client, method, path, body, status, code, params):
    answer = getattr(client, method)(path, json=body) if body is not None else getattr(client, method)(path)
    assert answer.status_code == status, answer.get_json()
    data = answer.get_json()
    assert data["error_msg"]["code"] == code, data
    for name, value in params.items():
        assert data["error_msg"]["params"][name] == value, (name, data)


def test_a_stray_input_method_character_is_named_for_what_it_is(client):
    """The character is its own message, so the page can say "全角字符" or "汉字" instead of a bare code point."""
    cases = {"sk-测试": ("config.char_cjk", "测"), "sk-ａbc": ("config.char_wide", "ａ"),
             "sk-。x": ("config.char_cjk_punctuation", "。"), "sk-\u3000x": ("config.char_wide_space", None),
             "sk-éx": ("config.char_visible", "é"), "sk-\u200bx": ("config.char_invisible", None)}
    for key, (code, char) in cases.items():
        data = client.put("/api/settings", json={"api": {"api_key": key}}).get_json()
        described = nested(data["error_msg"]["params"], "char")
        assert described["code"] == code, (key, described)
        assert described["params"]["point"] == f"{ord(key[3]):04X}"
        if char:
            assert described["params"]["char"] == char
        assert "it may be a stray character from copy-paste or an input method" in data["error"]  # English unchanged


def test_nested_messages_reach_the_json(client):
    pool = client.put("/api/settings", json={"api": {"key_pool": POOL}}).get_json()
    field = nested(pool["error_msg"]["params"], "field")
    assert field["code"] == "config.pool_key_field" and field["params"] == {"field": "key_pool", "number": 2,
                                                                           "name": "concurrency"}
    assert pool["error"] == "key_pool: key 2 concurrency must be between 1 and 64; got 99"

    proxy = client.put("/api/settings", json={"api": {"proxy_url": "ftp://proxy"}}).get_json()
    assert nested(proxy["error_msg"]["params"], "problem")["code"] == "config.proxy_scheme"
    wide = client.put("/api/settings", json={"api": {"proxy_url": "http://127.0.0.1：7890"}}).get_json()
    problem = nested(wide["error_msg"]["params"], "problem")
    assert problem["code"] == "config.proxy_bad_char" and problem["params"] == {"position": 17, "point": "FF1A"}

    imported = client.post("/api/config/import", json={"presets": {"api": {"p": {"api_key": "sk-\u3000x"}}}}).get_json()
    inner = nested(imported["error_msg"]["params"], "problem")
    assert inner["code"] == "config.header_bad_char"
    assert nested(inner["params"], "char")["code"] == "config.char_wide_space"



def test_a_save_preset_is_named_in_the_message(tmp_path):
    with pytest.raises(ConfigError) as caught:
        ConfigStore(tmp_path).put_preset("save", "p", 3)
    message = carried(caught.value)
    assert message.code == "config.not_object" and message == "save preset 'p' must be a JSON object"
    assert message.as_json()["params"]["field"] == {"code": "config.save_preset_where", "params": {"name": "p"},
                                                     "text": "save preset 'p'"}


def test_the_english_words_stay_as_they_were(client):
    said = {
        "sk-测试": "api_key: '测' (U+6D4B) at position 4 cannot be sent in an HTTP header (only visible ASCII characters "
                 "can); it may be a stray character from copy-paste or an input method; retype it",
        "sk ab": "api_key: a space (U+0020) at position 3 cannot be sent in an HTTP header (only visible ASCII "
                 "characters can); it may be a stray character from copy-paste or an input method; retype it",
    }
    for key, english in said.items():
        assert client.put("/api/settings", json={"api": {"api_key": key}}).get_json()["error"] == english
    data = client.put("/api/settings", json={"api": {"extra_headers": {"X-K": "••••••••"}}}).get_json()
    assert data["error"] == "extra_headers['X-K']: the mask '••••••••' stands for no stored value; type the value itself"
    data = client.post("/api/config/import", json={"version": 2}).get_json()
    assert data["error"] == "unsupported config version 2; this console reads version 1"
    data = client.put("/api/settings", json={"api": {"proxy_url": "socks5://proxy"}}).get_json()
    assert data["error"] == "proxy_url needs a port, like socks5://127.0.0.1:1080; got socks5://proxy"


def test_a_profile_error_keeps_its_message_through_the_profile_checks():
    with pytest.raises(ProfileError) as caught:
        ApiProfile.from_dict({"key_pool": [{"api_key": "sk-1"}, {"api_key": "sk-1"}]})
    message = carried(caught.value)
    assert message.code == "config.pool_entry_repeats"
    assert message.params["other"] == 2 and message.params["where"].code == "config.pool_key"


@pytest.mark.parametrize("url, code, params", [
    ("http://127.0.0.1:9/v1", "config.policy_private_hint", {"url": "http://127.0.0.1:9/v1", "addresses": "127.0.0.1"}),
    ("ftp://example.com/v1", "config.policy_scheme", {"url": "ftp://example.com/v1"}),
    ("http://127.0.0.1:12607/v1?key=secret", "config.policy_own", {"port": "12607"}),
])
def test_a_refused_url_carries_its_code(url, code, params):
    from console.upstream.policy import api_policy

    policy = api_policy(ApiProfile(api_url=url, allow_private_api=code == "config.policy_own"), resolve({}))
    with pytest.raises(BlockedURL) as caught:
        asyncio.run(_check(url, policy))
    message = carried(caught.value)
    assert message is not None and message.code == code, caught.value
    for name, value in params.items():
        assert message.params[name] == value
    assert "secret" not in str(message) and "secret" not in repr(message.as_json())  # the key stays masked
    if code == "config.policy_private_hint":
        assert "hint" in message.params and "purpose" in message.params


async def _check(url, policy):
    from console.netguard import check_url

    return await check_url(url, policy)


# -- the page in Chinese ------------------------------------------------------------------------------

ENGLISH_SENTENCE = re.compile(r"\b(must|cannot|should|expected|got|position|between|header|stands for|object)\b")


def _chinese_tab(browser, server):
    from tests.browser import open_tab

    tab = open_tab(browser, server.url, locale="zh-CN")
    tab.evaluate("localStorage.setItem('ibc.lang', 'zh')")
    if not tab.locator("#api-form").is_visible():
        tab.click("#api-panel > summary")
    tab.evaluate("document.getElementById('advanced').open = true")
    return tab


def _saved_error(tab) -> str:
    tab.evaluate("document.getElementById('toasts').replaceChildren()")
    tab.click("[data-testid=save-settings]")
    toast = tab.locator(".toast-error").last
    toast.wait_for(timeout=10_000)
    return toast.inner_text()


@pytest.mark.browser
def test_the_profile_form_says_the_servers_refusals_in_chinese(browser, server):
    tab = _chinese_tab(browser, server)
    try:
        assert tab.evaluate("document.documentElement.lang") == "zh-CN"

        tab.fill("#api-form [name=api_key]", "sk-测试")
        text = _saved_error(tab)
        assert "api_key 的第 4 个字符是汉字“测”（U+6D4B）" in text and "输入法" in text, text
        assert not ENGLISH_SENTENCE.search(text), text
        tab.fill("#api-form [name=api_key]", "")

        tab.fill("#api-form [name=api_url]", "https：//api.example.com/v1")
        text = _saved_error(tab)
        assert "api_url 的第 6 个字符是全角字符“：”（U+FF1A）" in text, text
        assert not ENGLISH_SENTENCE.search(text), text
        tab.fill("#api-form [name=api_url]", "ftp://api.example.com/v1")
        text = _saved_error(tab)
        assert text.startswith("api_url 必须以 http:// 或 https:// 开头"), text
        tab.fill("#api-form [name=api_url]", "")

        # the browser's own range check would stop the form first: take it off so the server's answers
        tab.evaluate("document.querySelector('#api-form [name=concurrency]').removeAttribute('max')")
        tab.fill("#api-form [name=concurrency]", "99")
        text = _saved_error(tab)
        assert "concurrency 必须在 1 到 64 之间；收到的是 99" in text, text
        assert not ENGLISH_SENTENCE.search(text), text
        tab.fill("#api-form [name=concurrency]", "4")

        tab.fill("#api-form [name=extra_headers]", '{"Host": "example.com"}')
        text = _saved_error(tab)
        assert "extra_headers：Host 由控制台自己设置，不能覆盖" in text, text
        tab.fill("#api-form [name=extra_headers]", "[1]")
        text = _saved_error(tab)  # the page's own check, before anything is sent
        assert text == "额外请求头（JSON）：必须是 JSON 对象", text
        tab.fill("#api-form [name=extra_headers]", "")

        tab.fill("#api-form [name=proxy_url]", "socks5://127.0.0.1")
        text = _saved_error(tab)
        assert "proxy_url 无效：需要写明端口" in text, text
        assert not ENGLISH_SENTENCE.search(text), text
        tab.fill("#api-form [name=proxy_url]", "")

        # batch delivery refused with a key pool: said in Chinese, and the page still points at Delivery
        tab.evaluate("document.getElementById('key-pool').open = true")
        tab.click("[data-testid=key-pool-add]")
        tab.locator("[data-testid=pool-row] [data-field=api_key]").fill("sk-second")
        tab.select_option("#api-form [name=delivery]", "batch")
        text = _saved_error(tab)
        assert text.startswith("交付方式（delivery）为“batch”（批量作业）时只能用一个密钥"), text
        assert tab.evaluate("document.querySelector('#api-form [name=delivery]').hasAttribute('aria-invalid')")
    finally:
        errors = [e for e in tab.console_errors if "status of 400" not in e]
        tab.context.close()
    assert errors == [], errors
