"""The page in Chinese speaks one vocabulary: the glossary in its string table, dates in the page's
language, table exports in the page's language, option labels, fonts that have Chinese, and a run
bar whose progress bar keeps its width under a long reason."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from console.messages import Message, say
from console.messages import chinese
from console.sources import table_export
from console.sources.table_export import export_run
from console.store import Store
from tests.browser import open_tab, start_run, wait_count
from tests.helpers import make_sources

ROOT = Path(__file__).resolve().parents[1]
HAN = "\u4e00-\u9fff"


def js_object(text: str) -> dict:
    """Read a JS object literal of strings and nested objects (unquoted keys, // comments, trailing commas)."""
    out, i = [], 0
    identifier = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
    while i < len(text):
        char = text[i]
        if char == '"':
            end = i + 1
            while text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            out.append(text[i:end + 1])
            i = end + 1
        elif text.startswith("//", i):
            i = text.index("\n", i)
        elif char.isalpha() or char == "_":
            word = identifier.match(text, i)
            out.append(json.dumps(word.group()))
            i = word.end()
        else:
            out.append(char)
            i += 1
    return json.loads(re.sub(r",(\s*})", r"\1", "".join(out)))


def page_strings() -> dict[str, dict]:
    source = (ROOT / "static" / "js" / "i18n.js").read_text(encoding="utf-8")
    return js_object(source.split("const STRINGS = ", 1)[1].split("\n};\n", 1)[0] + "\n}")


def forms(entry) -> list[str]:
    return [entry] if isinstance(entry, str) else list(entry.values())


def placeholders(entry) -> set[str]:
    return {name for form in forms(entry) for name in re.findall(r"\{(\w+)\}", form)}


# Words the glossary replaced, with what they are instead.
NOT_IN_CHINESE = {
    "源图": "原图 (a source image)",
    "说明文字": "标注 (a caption)",
    "说明文件": "标注文件 (the .txt caption file)",
    "张/分钟": "项/分钟 (the rate counts tasks)",
    "新任务": "新批次 (a run)",
    "历史任务": "历史批次 (the runs)",
    "本次运行": "本批次 (this run)",
    "个运行": "个批次 (a run)",
    "本运行": "本批次 (this run)",
    "试运行": "试跑 (a pilot)",
    "目录结构": "布局 (a dataset layout)",
    "编辑文件夹": "图生图（文件夹） (the edit mode)",
}


def test_the_chinese_table_speaks_the_glossary_with_full_width_punctuation():
    strings = page_strings()
    english, chinese = strings["en"], strings["zh"]
    assert sorted(set(english) - set(chinese)) == [] and sorted(set(chinese) - set(english)) == []
    for key, entry in chinese.items():
        assert placeholders(entry) == placeholders(english[key]), key
        for form in forms(entry):
            for word, instead in NOT_IN_CHINESE.items():
                assert word not in form, f"{key}: {form!r} says {word}; the glossary says {instead}"
            assert not re.search(f"[{HAN}][;:,!?] ", form), f"{key}: ASCII punctuation after Chinese in {form!r}"
            assert not re.search(f"[{HAN}] ?[()]|[()] ?[{HAN}]", form), f"{key}: ASCII parentheses beside Chinese in {form!r}"
    assert chinese["rate"] == "{rate} 项/分钟" and chinese["run"] == "新批次" and chinese["history"] == "历史批次"
    assert chinese["running"] == "运行中" and chinese["layout"] == "布局" and chinese["caption"] == "标注 .txt"
    assert [chinese[f"mode_{mode}"] for mode in ("edit", "generate", "table")] == ["图生图（文件夹）", "文生图", "表格批量"]
    assert chinese["batch_chip"].startswith("批量作业 ") and chinese["response_format"] == "响应格式"


# -- table exports -------------------------------------------------------------------------------

def failed_run(tmp_path: Path) -> tuple[Store, str]:
    store = Store(tmp_path / "export.db")
    run_id = store.create_run("/in", False, "p", {"model": "m"}, [("a.png", "/in/a.png"), ("b.png", "/in/b.png")])
    first, second = store.tasks_since(run_id).tasks
    store.set_status([first.id], "failed", error=say("engine.interrupted"))
    store.set_status([second.id], "stopped", error="the gateway said: nope")
    return store, run_id


def exported_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def test_a_chinese_export_names_its_columns_statuses_and_coded_errors_in_chinese(tmp_path):
    store, run_id = failed_run(tmp_path)
    header, first, second = exported_rows(export_run(store, run_id, "csv", "zh"))
    assert header[0] == "原图" and header[-6:-3] == ["状态", "错误", "结果文件"]
    assert first[-6:-4] == ["失败", "已中断"]  # the message's code has its Chinese on the page
    assert second[-6:-4] == ["已停止", "the gateway said: nope"]  # a text without a code stays as it was said
    header, first, second = exported_rows(export_run(store, run_id, "csv", "en"))
    assert header[0] == "source" and first[-6:-4] == ["failed", "interrupted"] and second[-6] == "stopped"
    store.close()


def test_a_chinese_export_fills_nested_messages_lists_and_numbers_as_the_page_does(monkeypatch):
    monkeypatch.setattr(chinese, "page_table", lambda: {
        "x.outer": "{count} 个任务被拒绝（{names}）：{reason}",
        "x.inner": {"other": "第 {row} 行"},
    })
    inner = Message("row 2", "x.inner", {"row": 2})
    outer = Message("1200 tasks refused", "x.outer", {"count": 1200, "names": ["a.png", inner], "reason": inner})
    assert table_export._said(outer, "zh") == "1,200 个任务被拒绝（a.png；第 2 行）：第 2 行"
    assert table_export._said(Message("gone", "x.unknown", {}), "zh") == "gone"  # no Chinese: its English
    assert table_export._said(outer, "en") == "1200 tasks refused"


def test_a_run_export_without_lang_follows_accept_language(app, client):
    from console.web.services import store

    with app.app_context():
        run_id = store().create_run("/in", False, "p", {"model": "m"}, [("a.png", "/in/a.png")])
    url = f"/api/runs/{run_id}/export.csv"
    first_cell = lambda answer: exported_rows(answer.data)[0][0]  # noqa: E731
    assert first_cell(client.get(url)) == "source"  # a script: English
    assert first_cell(client.get(url, headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})) == "原图"
    assert first_cell(client.get(url + "?lang=en", headers={"Accept-Language": "zh-CN"})) == "source"  # lang wins
    assert first_cell(client.get(url, headers={"Accept-Language": "fr-FR,de;q=0.5"})) == "source"
    template = client.get("/api/tables/template.csv", headers={"Accept-Language": "zh-CN"})
    assert exported_rows(template.data)[0][0] == "source"  # the template link without lang is the English one


# -- the page in Chinese ---------------------------------------------------------------------------

def to_chinese(tab) -> None:
    tab.click("[data-testid=lang-switch]")
    tab.wait_for_function("document.documentElement.lang === 'zh-CN'")


@pytest.mark.browser
def test_a_chinese_page_on_an_english_browser_dates_exports_and_keeps_the_bar_wide(browser, server, fake, tmp_path):
    tab = open_tab(browser, server.url, locale="en-US")
    try:
        start_run(tab, fake, make_sources(tmp_path / "src", 2))
        wait_count(tab, "done", 2)
        to_chinese(tab)
        wait_count(tab, "done", 2)
        tab.wait_for_function("document.querySelector('#history .history-item .muted')?.textContent.includes('2/2')")
        meta = tab.locator("#history .history-item .muted").first.inner_text()
        assert re.match(r"\d{1,2}月\d{1,2}日 \d{2}:\d{2} · 2/2 完成", meta), meta  # not the browser's "Dec 6, 02:32 PM"
        assert tab.inner_text("#run-panel > summary") == "新批次" and tab.inner_text("#runs-panel > summary") == "历史批次"

        link = tab.get_attribute("[data-testid=export-csv]", "href")
        assert link.endswith("/export.csv?lang=zh"), link
        assert tab.get_attribute("#zip-link", "href").endswith("/export.zip?lang=zh")  # its skipped.txt is for a person
        with tab.expect_download() as download:
            tab.click("[data-testid=export-csv]")
        rows = exported_rows(Path(download.value.path()).read_bytes())
        assert rows[0][:3] == ["原图", "提示词", "数量"] and rows[0][-6:] == ["状态", "错误", "结果文件", "调用次数", "费用", "币种"]
        assert [row[-6] for row in rows[1:]] == ["完成", "完成"]
        tab.click("[data-testid=lang-switch]")  # back in English, the link follows
        tab.wait_for_function("document.querySelector('[data-testid=export-xlsx]').href.endsWith('lang=en')")

        # A long reason under the bar: measured in one step, before a poll can redraw it
        for width in (1400, 900):
            tab.set_viewport_size({"width": width, "height": 900})
            measured = tab.evaluate("""() => {
              const bar = document.querySelector('#progress .bar'), reason = document.getElementById('cooling');
              const before = bar.getBoundingClientRect().width;
              reason.textContent = '已暂停：' + '网关返回：上游额度已用完，请在服务商控制台充值后再继续。'.repeat(12);
              reason.hidden = false;
              const after = bar.getBoundingClientRect(), box = reason.getBoundingClientRect();
              const result = {before, after: after.width, barBottom: after.bottom, reasonTop: box.top, lines: box.height};
              reason.hidden = true;
              return result;
            }""")
            assert abs(measured["after"] - measured["before"]) < 1, measured
            assert measured["reasonTop"] >= measured["barBottom"] and measured["lines"] > 20, measured  # below, wrapped
        assert tab.console_errors == [], tab.console_errors
    finally:
        tab.context.close()


# An option label without Chinese must be an identifier a user types in files or settings.
IDENTIFIER = re.compile(r"^(—|[a-z]+_[a-z_]+|musubi-tuner|png|jpeg|webp|gemini|responses|images|multipart · image(\[\])?|JSON · images\[\]"
                        r"|JSON · image \(Seedream\))$")


@pytest.mark.browser
def test_option_labels_and_fonts_are_chinese(browser, server):
    tab = open_tab(browser, server.url, locale="zh-CN")
    try:
        assert tab.evaluate("document.documentElement.lang") == "zh-CN"
        options = tab.evaluate("""() => [...document.querySelectorAll('select')].map((select) =>
          [select.name || select.id, [...select.options].map((o) => [o.value, o.textContent.trim()])])""")
        english = [(select, value, label) for select, items in options for value, label in items
                   if not re.search(f"[{HAN}]", label) and not IDENTIFIER.match(label)]
        assert english == [], english
        labels = dict(options)
        assert dict(labels["format"])["keep"] == "保持原格式" and dict(labels["api_mode"])["auto"] == "自动"
        assert dict(labels["token_field"])["none"] == "不发送" and dict(labels["layout"])["flat"] == "平铺文件（按模板命名）"
        fonts = tab.evaluate("""() => ['body', '.output', '#debug-text', '.sidebar label'].map((selector) =>
          getComputedStyle(document.querySelector(selector)).fontFamily)""")
        for family in fonts:
            assert "Noto Sans CJK SC" in family and "WenQuanYi Micro Hei" in family, family
            assert family.rstrip().endswith(("sans-serif", "monospace")), family
        assert tab.console_errors == [], tab.console_errors
    finally:
        tab.context.close()
