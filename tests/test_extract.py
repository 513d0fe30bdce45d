"""Finding image references in answer text and fields (pure units)."""

from __future__ import annotations

import pytest

from console.upstream.extract import ImageRef, clean_url, ref_from_field, refs_from_text
from testkit.images import JPEG, PNG, b64, data_url


def urls(text: str) -> list[str]:
    return [ref.value for ref in refs_from_text(text) if ref.origin == "url"]


@pytest.mark.parametrize("alt", ["image", "Generated Image", "3f2a-uuid", "", "图片 ✓"])
def test_markdown_with_any_alt(alt):
    assert urls(f"![{alt}](https://x.test/a.jpg)") == ["https://x.test/a.jpg"]


def test_markdown_angle_brackets_and_title():
    text = '![a](<https://x.test/a.jpg>) ![b](https://x.test/b.png "Title") ![c](https://x.test/c.png \'t\')'
    assert urls(text) == ["https://x.test/a.jpg", "https://x.test/b.png", "https://x.test/c.png"]


def test_g2_two_markdown_images_joined():
    text = "![image](https://imagine-public.x.ai/imagine-public/images/1.jpg)\n\n![image](https://imagine-public.x.ai/imagine-public/images/2.jpg)"
    assert urls(text) == [
        "https://imagine-public.x.ai/imagine-public/images/1.jpg",
        "https://imagine-public.x.ai/imagine-public/images/2.jpg",
    ]


def test_bare_url_line_and_query_string_kept():
    assert urls("http://h:8000/v1/files/image?id=9f2c\n") == ["http://h:8000/v1/files/image?id=9f2c"]


def test_u0026_and_html_entities_unescaped():
    assert urls("![i](http://h/a?x=1\\u0026y=2)") == ["http://h/a?x=1&y=2"]
    assert urls('<img src="http://h/a?x=1&amp;y=2">') == ["http://h/a?x=1&y=2"]


def test_relative_urls_kept_for_the_client_to_resolve():
    assert urls("![image](/v1/files/image/abc-final.jpg)") == ["/v1/files/image/abc-final.jpg"]
    assert urls("/images/users-1-generated-2-image.jpg") == ["/images/users-1-generated-2-image.jpg"]


def test_trailing_punctuation_dropped_from_bare_urls():
    assert urls("See https://x.test/a.png. Done") == ["https://x.test/a.png"]


def test_data_url_and_label_kept_whole():
    text = f"![image]({data_url(JPEG, 'image/png')})"
    refs = refs_from_text(text)
    assert refs == [ImageRef("data_url", data_url(JPEG, "image/png"))]


def test_two_data_urls_in_one_delta_in_order():
    text = f"![image]({data_url(JPEG, 'image/jpeg')})\n\n![image]({data_url(PNG)})"
    assert [ref.value for ref in refs_from_text(text)] == [data_url(JPEG, "image/jpeg"), data_url(PNG)]


def test_mixed_order_is_order_of_appearance():
    text = f"![a](https://x.test/1.png) ![b]({data_url(PNG)}) https://x.test/3.png"
    assert [ref.origin for ref in refs_from_text(text)] == ["url", "data_url", "url"]


def test_bare_base64_whole_answer_even_wrapped():
    body = b64(JPEG)
    wrapped = "\n".join(body[i : i + 76] for i in range(0, len(body), 76))
    assert refs_from_text(body) == [ImageRef("base64", body)]
    assert refs_from_text(wrapped) == [ImageRef("base64", body)]


def test_think_block_and_text_without_images():
    assert refs_from_text("<think>\n正在生成第1张图片中，当前进度50%\n</think>\n") == []
    assert refs_from_text("I can't help with that request.") == []


def test_literal_error_padding_and_empty_are_ignored():
    assert refs_from_text("error") == []
    assert ref_from_field("error", base64_field=False) is None
    assert ref_from_field("", base64_field=True) is None
    assert ref_from_field(None, base64_field=True) is None


def test_fields_classified():
    assert ref_from_field("abcd", base64_field=True) == ImageRef("base64", "abcd")
    assert ref_from_field("data:image/png;base64,AAAA", base64_field=True).origin == "data_url"
    assert ref_from_field("http://h/x?a=1\\u0026b=2", base64_field=False) == ImageRef("url", "http://h/x?a=1&b=2")


def test_repeats_dropped():
    text = "![a](https://x.test/1.png)\n![a](https://x.test/1.png)\nhttps://x.test/1.png"
    assert urls(text) == ["https://x.test/1.png"]


def test_clean_url():
    assert clean_url(" http://h/a\\/b?x=1\\u0026y=2, ") == "http://h/a/b?x=1&y=2"


def test_describe_never_prints_payloads():
    ref = ImageRef("data_url", data_url(PNG))
    assert ref.describe() == f"data_url ({len(data_url(PNG))} chars)"
